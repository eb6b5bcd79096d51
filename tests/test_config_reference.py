"""README's configuration reference is the options' declarations, and the loader keeps them."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml

from x3twilio.config import load_config, model, x3_model
from x3twilio.config.options import FROM_FIELD, Option, options_of
from x3twilio.config.reference import HEADER, SECTIONS, reference_table
from x3twilio.errors import ConfigError

README = Path(__file__).resolve().parent.parent / "README.md"

MINIMAL = """\
x3: {url: "https://x3.example.com:8124", folder: SEED, user: u, password: p}
twilio: {account_sid: AC1, auth_token: t, from: "+14155550100"}
rules: []
"""


def readme_table() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.index("## Configuration reference\n")
    start = text.index(HEADER[0] + "\n", section)
    return text[start : text.index("\n\n", start) + 1]


def test_readme_holds_exactly_the_generated_table() -> None:
    # On failure: python -m x3twilio.config.reference, and paste it over README's table.
    assert readme_table() == reference_table()


def test_every_declaring_dataclass_is_in_the_table() -> None:
    declaring = {
        cls
        for module in (model, x3_model)
        for _, cls in inspect.getmembers(module, dataclasses.is_dataclass)
        if isinstance(cls, type) and options_of(cls)
    }
    assert declaring == {cls for _, cls in SECTIONS}


def test_the_table_has_one_row_per_option_with_its_default() -> None:
    rows = reference_table().splitlines()[len(HEADER) :]
    assert len(rows) == sum(len(options_of(cls)) for _, cls in SECTIONS)
    assert "| `x3.lookback` | `10m` | how far behind the watermark" in "\n".join(rows)
    assert "| `retry.max` | `10s` | its cap, 0s–1h |" in rows
    assert "| `inbound.max_body` | `65536` | " in "\n".join(rows)


def _sections(tmp_path: Path) -> dict[type, Any]:
    path = tmp_path / "x3twilio.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    config = load_config(path, env={})
    return {
        model.Config: config,
        x3_model.X3Config: config.x3,
        model.TwilioConfig: config.twilio,
        model.RetryConfig: config.retry,
        model.SendingConfig: config.sending,
        model.MonitoringConfig: config.monitoring,
        model.InboundConfig: config.inbound,
    }


def test_an_empty_section_loads_every_declared_default(tmp_path: Path) -> None:
    loaded = _sections(tmp_path)
    given = {"TwilioConfig": "from"}  # what MINIMAL sets besides required keys
    checked = 0
    for cls, section in loaded.items():
        for spec in dataclasses.fields(cls):
            option = spec.metadata.get("option")
            if not isinstance(option, Option) or option.default is not FROM_FIELD:
                continue  # the file's default differs in form from the value (e.g. "0644")
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                continue  # required
            [found] = [d for d in options_of(cls) if d.name == spec.name]
            if given.get(cls.__name__) == found.key:
                continue
            assert getattr(section, spec.name) == found.default, f"{cls.__name__}.{spec.name}"
            checked += 1
    assert checked > 40


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("retry", "attempts", 51, "retry.attempts: expected 1 to 50, got 51"),
        ("x3", "page_size", 201, "x3.page_size: expected 1 to 200 (X3 guards larger pages)"),
        ("sending", "max_segments", 0, "sending.max_segments: expected 1 to 24, got 0"),
        ("x3", "lookback", "8d", "x3.lookback: expected a duration from 0s to 7d, got '8d'"),
    ],
)
def test_the_declared_bounds_are_the_ones_applied(
    tmp_path: Path, section: str, key: str, value: object, message: str
) -> None:
    data = yaml.safe_load(MINIMAL)
    data.setdefault(section, {})[key] = value
    path = tmp_path / "x3twilio.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert message in str(caught.value)
