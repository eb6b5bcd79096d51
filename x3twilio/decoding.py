"""How X3's JSON values become Python values: the field kinds, their strict decoders, stamps.

A value that is not of its field's kind is refused with a message naming what was expected
and what came; a record that cannot be read is `Undecodable`, naming record, field and value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

KINDS = ("text", "int", "decimal", "date", "datetime", "menu", "yesno")
_EMPTY_DATES = ("", "0000-00-00", "1753-01-01")
YES_NO = {1: "no", 2: "yes"}  # local menu 1; JSON booleans on current builds


@dataclass(frozen=True)
class Field:
    """One friendly name over an X3 property, with how to decode it."""

    name: str
    code: str
    kind: str = "text"
    menu: Mapping[int, str] = field(default_factory=dict)

    def decode(self, raw: Any) -> Any:
        """Turn X3's JSON value into a Python value; ValueError (naming the value) when it
        is not of the kind this field expects."""
        if raw is None:
            return None
        try:
            return _DECODERS[self.kind](self, raw)
        except (TypeError, ValueError, InvalidOperation):
            raise ValueError(f"expected {_EXPECTED[self.kind]}, got {raw!r}") from None


_EXPECTED = {
    "text": "text",
    "int": "an integer",
    "decimal": "a number",
    "date": "a date YYYY-MM-DD",
    "datetime": "a UTC timestamp",
    "menu": "a local-menu number",
    "yesno": "true or false (or 1/2)",
}


def _text(f: Field, raw: Any) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise TypeError(raw)
    return raw if isinstance(raw, str) else str(raw)


def _number(raw: Any) -> int | float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise TypeError(raw)
    return raw


def _int(f: Field, raw: Any) -> int:
    number = _number(raw)
    if number != int(number):
        raise ValueError(raw)
    return int(number)


def _decimal(f: Field, raw: Any) -> Decimal:
    # X3 sends decimals as JSON numbers; str() keeps 771.42 from becoming 771.4199…
    value = Decimal(str(_number(raw) if not isinstance(raw, str) else raw))
    if not value.is_finite():  # NaN or Infinity: never an amount
        raise ValueError(raw)
    return value


def _date(f: Field, raw: Any) -> date | None:
    if not isinstance(raw, str):
        raise TypeError(raw)
    return None if raw in _EMPTY_DATES else date.fromisoformat(raw[:10])


def _datetime(f: Field, raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        raise TypeError(raw)
    return None if raw in _EMPTY_DATES else parse_stamp(raw)


def _menu(f: Field, raw: Any) -> str:
    number = _int(f, raw)
    return f.menu.get(number, str(number))


def _yesno(f: Field, raw: Any) -> str:
    """Local menu 1: JSON true/false on current builds, 1 (no) / 2 (yes) on older ones."""
    if isinstance(raw, bool):
        return "yes" if raw else "no"
    if raw in (1, 2):
        return YES_NO[int(raw)]
    raise ValueError(raw)


_DECODERS: dict[str, Callable[[Field, Any], Any]] = {
    "text": _text,
    "int": _int,
    "decimal": _decimal,
    "date": _date,
    "datetime": _datetime,
    "menu": _menu,
    "yesno": _yesno,
}


def parse_stamp(text: str) -> datetime:
    """Parse an X3 UTC timestamp such as 2024-05-02T09:14:07Z (or with milliseconds)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return value


def stamp_literal(moment: datetime) -> str:
    """A UTC time as X3 writes change stamps: 2024-05-02T09:14:07Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Undecodable(ValueError):
    """A record X3 sent that this source cannot read: which record, field and value."""

    def __init__(self, key: str | None, code: str | None, value: Any, problem: str) -> None:
        self.key, self.code, self.value, self.problem = key, code, value, problem
        where = f"field {code}: " if code else ""
        super().__init__(f"{key or '(no key)'}: {where}{problem}")
