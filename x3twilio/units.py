"""`x3twilio systemd-units DIR`: the shipped systemd units, pointed at this installation."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

SHIPPED_BIN = "/opt/x3twilio/bin"  # where the units say the tool is (pipx or a venv there)


def units(bin_dir: Path | None = None) -> dict[str, str]:
    """Each unit file's name and text, with ExecStart on `bin_dir` (default: this Python's)."""
    where = str(bin_dir or Path(sys.executable).parent)
    folder = resources.files("x3twilio").joinpath("data/systemd")
    return {
        entry.name: entry.read_text("utf-8").replace(SHIPPED_BIN, where)
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith((".service", ".timer"))
    }


def write_units(target: Path, bin_dir: Path | None = None) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in units(bin_dir).items():
        path = target / name
        path.write_text(text, "utf-8")
        written.append(path)
    return written
