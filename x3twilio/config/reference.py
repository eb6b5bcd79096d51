"""README's configuration reference table, printed from the options' declarations.

`python -m x3twilio.config.reference` prints it; a test holds README to exactly this output,
so a default or a bound changed in the code cannot leave the documentation behind.
"""

from __future__ import annotations

import sys
from dataclasses import MISSING
from typing import Any

from x3twilio.config.model import (
    Config,
    InboundConfig,
    MonitoringConfig,
    NoteTarget,
    RetryConfig,
    SendGridConfig,
    SendingConfig,
    TwilioConfig,
)
from x3twilio.config.options import Declared, Option, options_of
from x3twilio.config.x3_model import OAuth2Config, X3Config
from x3twilio.yamlnode import seconds_text

# Each section and where it sits in the file, in the table's order.
SECTIONS: tuple[tuple[str, type], ...] = (
    ("x3", X3Config),
    ("x3.oauth2", OAuth2Config),
    ("twilio", TwilioConfig),
    ("sendgrid", SendGridConfig),
    ("", Config),
    ("retry", RetryConfig),
    ("sending", SendingConfig),
    ("monitoring", MonitoringConfig),
    ("inbound", InboundConfig),
    ("inbound.notes[]", NoteTarget),
)
HEADER = ("| key | default | meaning |", "| --- | --- | --- |")


def reference_table() -> str:
    """The Markdown table, one row per option, ending with a newline."""
    rows = list(HEADER)
    for prefix, cls in SECTIONS:
        for found in options_of(cls):
            key = f"{prefix}.{found.key}" if prefix else found.key
            rows.append(f"| `{key}` | {_default(found)} | {_meaning(found.option)} |")
    return "\n".join(rows) + "\n"


def _default(found: Declared) -> str:
    option, value = found.option, found.default
    if option.shown is not None:
        return option.shown
    if value is MISSING:
        return "required"
    if value is None or value in ("", ()):
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if option.duration:
        return f"`{seconds_text(value)}`"
    return f"`{value}`"


def _meaning(option: Option) -> str:
    low = 0.0 if option.duration and option.low is None else option.low  # as read() applies
    if low is None or option.high is None:
        return option.doc
    if option.duration:
        return f"{option.doc}, {seconds_text(low)}–{seconds_text(option.high)}"
    return f"{option.doc}, {_number(low)}–{_number(option.high)}"


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


if __name__ == "__main__":
    sys.stdout.write(reference_table())
