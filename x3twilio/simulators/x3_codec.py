"""How values cross the simulated X3's API: checked against their X3 type on the way in
(a 400 naming the property and class), Yes/No as JSON booleans or local menu 1/2 out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from .sdata import comparable
from .x3_errors import SimError
from .x3data import EMPTY_DATE, Record, Rows, default, empty_rows, letter, parameter, stamp


class _TooLong(ValueError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(size, limit)
        self.size, self.limit = size, limit


def _alpha(kind: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(value)
    text = str(value)
    if len(text) > parameter(kind):
        raise _TooLong(len(text), parameter(kind))
    return text


def _number(kind: str, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(value)
    return float(value) if isinstance(value, str) else value


def _integer(kind: str, value: Any) -> int:
    number = _number(kind, value)
    if number != int(number):
        raise ValueError(value)
    return int(number)


def _date(kind: str, value: Any) -> str:
    if isinstance(value, datetime):
        return stamp(value)
    if not isinstance(value, str):
        raise TypeError(value)
    if value in ("", EMPTY_DATE):
        return ""
    return stamp(comparable(value, "DT")) if kind == "DT" else date.fromisoformat(value).isoformat()


_CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    "A": _alpha,
    "I": _integer,
    "N": _number,
    "M": _integer,
    "D": _date,
    "DT": _date,
}


@dataclass(frozen=True)
class Codec:
    """How values cross an API: Yes/No as JSON booleans, or as local menu 1 (1 no, 2 yes)."""

    menu: bool = False

    def out(self, kind: str, value: Any) -> Any:
        code = letter(kind)
        if code == "B":
            return (2 if value else 1) if self.menu else bool(value)
        return EMPTY_DATE if code == "D" and not value else value

    def into(self, kind: str, value: Any) -> Any:
        """An incoming value as stored; TypeError/ValueError if it does not fit the kind."""
        if value is None:
            return default(kind)
        if letter(kind) != "B":
            return _CONVERTERS[letter(kind)](kind, value)
        if self.menu and not isinstance(value, bool) and value in (1, 2):
            return value == 2
        if not self.menu and isinstance(value, bool):
            return value
        raise TypeError(value)  # boolean mode refuses 1/2; menu mode refuses true/false


STORE = Codec()  # the Python API's: values as stored


def _convert(cls: str, name: str, kind: str, value: Any, codec: Codec) -> Any:
    """Check one incoming property value against its X3 type; return the stored value."""
    try:
        return codec.into(kind, value)
    except _TooLong as error:
        raise SimError(
            400,
            f"Value too long for property {name} in class {cls}: "
            f"{error.size} characters, maximum {error.limit}",
        ) from None
    except (TypeError, ValueError):
        raise SimError(400, f"Invalid value {value!r} for property {name} in class {cls}") from None


def _is_reference(view: Rows, name: str) -> bool:
    """`CRY_REF` and the like: the display of a reference, echoed back by clients."""
    code = name.removesuffix("_REF")
    return code != name and code in view.fields and view.column(code) in view.refs


def absorb(view: Rows, body: Mapping[str, Any], base: Record, cls: str, codec: Codec) -> Record:
    """Merge incoming properties (served names) into a copy of `base` (stored columns)."""
    record = dict(base)
    for name, value in body.items():
        if name.startswith("$") or _is_reference(view, name):
            continue  # $uuid, $etag, $properties, *_REF: framework data the client echoes
        kind = view.fields.get(name)
        if kind is None:
            raise SimError(400, f"Property {name} not found in class {cls}")
        if isinstance(kind, Rows):
            record[view.column(name)] = _absorb_rows(kind, name, value, cls, codec)
        else:
            record[view.column(name)] = _convert(cls, name, kind, value, codec)
    return record


def _absorb_rows(rows: Rows, name: str, value: Any, cls: str, codec: Codec) -> list[Record]:
    """A child list in a body replaces the stored one as a whole; slots are padded."""
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise SimError(400, f"Property {name} of class {cls} must be a list of objects")
    if rows.slots and len(value) > rows.slots:
        raise SimError(400, f"Property {name} of class {cls} has at most {rows.slots} rows")
    empty = empty_rows(rows)
    bases = empty if rows.slots else [rows.defaults()] * len(value)
    given = [absorb(rows, row, base, cls, codec) for row, base in zip(value, bases, strict=False)]
    return given + empty[len(given) :]
