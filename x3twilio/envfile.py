"""`--env-file`: secrets for cron and systemd, kept out of command lines and crontabs.

One `KEY=value` per line (`export ` allowed, `#` comments, values optionally quoted, nothing
expanded). A file that group or others can read is refused: it holds the X3 password and the
Twilio token. A value never appears in an error message.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import MutableMapping
from pathlib import Path

from x3twilio.errors import ConfigError

MAX_BYTES = 64 * 1024  # an environment file is a few lines
_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")


def read_env_file(path: Path) -> dict[str, str]:
    """The variables the file sets; ConfigError names the file (and line) on any problem."""
    file = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ConfigError(file, "", f"cannot read the environment file: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(file, "", "the environment file is not a regular file")
        if info.st_mode & 0o077:
            mode = stat.S_IMODE(info.st_mode)
            raise ConfigError(
                file,
                "",
                f"the environment file holds secrets but is readable by others (mode "
                f"{mode:04o}): run `chmod 600 {file}`",
            )
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ConfigError(file, "", "larger than 64 KiB: not an environment file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(file, "", f"not UTF-8 text: the byte at offset {exc.start}") from None
    return dict(_pairs(file, text))


def _pairs(file: str, text: str) -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(stripped)
        if not match:
            raise ConfigError(file, f"line {number}", "expected KEY=value")
        pairs.append((match[1], _unquote(match[2].strip(), file, number)))
    return pairs


def _unquote(value: str, file: str, number: int) -> str:
    if value[:1] in ("'", '"'):
        if len(value) < 2 or value[-1] != value[0]:
            raise ConfigError(file, f"line {number}", "a quoted value is not closed")
        return value[1:-1]
    return value


def load_env_file(path: Path, environ: MutableMapping[str, str]) -> list[str]:
    """Put the file's variables into `environ`; one already set there wins (so a single run
    can override a value). Returns the names taken from the file."""
    taken = []
    for key, value in read_env_file(path).items():
        if key not in environ:
            environ[key] = value
            taken.append(key)
    return taken
