"""Message templates: {name} and {name:spec} only, checked when the rules load."""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

# A sample value per kind, to prove a format spec works before any message is sent.
SAMPLES: dict[str, Any] = {
    "text": "PO123",
    "int": 3,
    "decimal": Decimal("1234.5"),
    "date": date(2026, 1, 31),
    "datetime": datetime(2026, 1, 31, 9, 30, tzinfo=UTC),
    "menu": "approved",
    "yesno": "no",
    "raw": "X",
}


class TemplateError(ValueError):
    """A template that cannot be rendered; the message says which placeholder and why."""


@dataclass(frozen=True)
class Template:
    text: str
    parts: tuple[tuple[str, str | None, str], ...]  # (literal, name, spec)

    @property
    def names(self) -> set[str]:
        return {name for _, name, _ in self.parts if name}

    def render(self, value: Callable[[str], Any]) -> str:
        """Fill the placeholders with value(name); missing values render empty."""
        out = []
        for literal, name, spec in self.parts:
            out.append(literal)
            if name is not None:
                out.append(_format(value(name), spec))
        return "".join(out)


def _format(value: Any, spec: str) -> str:
    if value is None:
        return ""
    if spec and isinstance(value, int | float) and not isinstance(value, bool):
        value = Decimal(str(value))  # raw X3 numbers accept the decimal specs too
    return format(value, spec)


def compile_template(text: str, kinds: Mapping[str, str]) -> Template:
    """Parse `text`; every placeholder must be a known name with a working spec."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"malformed template: {exc}") from None
    parts: list[tuple[str, str | None, str]] = []
    for literal, name, spec, conversion in parsed:
        if name is None:
            parts.append((literal, None, ""))
            continue
        _check_placeholder(name, spec or "", conversion, kinds)
        parts.append((literal, name, spec or ""))
    return Template(text, tuple(parts))


def _check_placeholder(
    name: str, spec: str, conversion: str | None, kinds: Mapping[str, str]
) -> None:
    if not name:
        raise TemplateError("empty placeholder {}: name the field, e.g. {order_number}")
    if not name.isidentifier():
        raise TemplateError(
            f"placeholder {{{name}}}: only plain names are allowed (no attribute or index access)"
        )
    if conversion:
        raise TemplateError(f"placeholder {{{name}!{conversion}}}: conversions are not allowed")
    if "{" in spec:
        raise TemplateError(f"placeholder {{{name}}}: nested placeholders are not allowed")
    if name not in kinds:
        known = ", ".join(sorted(kinds))
        raise TemplateError(f"unknown placeholder {{{name}}}; known names: {known}")
    try:
        _format(SAMPLES[kinds[name]], spec)
    except (ValueError, TypeError) as exc:
        raise TemplateError(f"placeholder {{{name}:{spec}}}: bad format spec ({exc})") from None
