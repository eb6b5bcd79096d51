"""One X3 code over a resolved GraphQL path: its values both ways, as api1 has them.

api1's shapes: text as is, numbers as numbers, dates YYYY-MM-DD, stamps ...Z, Yes/No as
JSON booleans (X3_REALITY.md §2 R20), other local menus as integers. The kind comes from
the server's schema (gql_schema.Resolved), the menu numbers from the enum's order there
unless the table or `x3.nodes` gives them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from x3twilio.decoding import parse_stamp, stamp_literal

# The kinds `check` reports, in x3/discover.py's words (sources.KINDS).
SITE_KINDS = {
    "text": "text",
    "int": "int",
    "decimal": "decimal",
    "date": "date",
    "stamp": "datetime",
    "bool": "yesno",
    "yesno": "yesno",
    "enum": "menu",
}


@dataclass(frozen=True)
class Prop:
    code: str
    path: tuple[str, ...]
    kind: str = "text"
    values: Mapping[int, str] = field(default_factory=dict)  # enum: menu number -> value

    def to_api1(self, raw: Any) -> Any:
        """GraphQL's JSON value -> api1's (ValueError on garbage)."""
        if self.kind in ("date", "stamp", "text"):
            if raw in (None, ""):
                return ""
            text = str(raw)
            if self.kind == "date":
                return date.fromisoformat(text[:10]).isoformat()
            return stamp_literal(parse_stamp(text)) if self.kind == "stamp" else text
        if raw is None:
            return False if self.kind in ("bool", "yesno") else 0
        if self.kind == "bool":
            if isinstance(raw, bool):
                return raw
            raise ValueError(f"not true or false: {raw!r}")
        if self.kind == "yesno":  # enum NoYes: api1 sends a JSON boolean
            if raw in ("yes", "no"):
                return raw == "yes"
            if isinstance(raw, bool):
                return raw
            raise ValueError(f"not yes or no: {raw!r}")
        if self.kind == "enum":  # an unknown value passes through, for sources to name it
            return next((n for n, v in self.values.items() if v == raw), raw)
        if isinstance(raw, bool):
            raise ValueError(f"not a number: {raw!r}")
        try:
            number = Decimal(str(raw))  # Decimal may come as a string or a number
        except InvalidOperation:
            raise ValueError(f"not a number: {raw!r}") from None
        if not number.is_finite():
            raise ValueError(f"not a number: {raw!r}")
        return int(number) if self.kind == "int" else float(number)

    def to_graphql(self, value: Any) -> Any:
        """api1's value (or a filter literal) -> GraphQL's."""
        if value is None:
            return None
        if self.kind in ("bool", "yesno"):
            yes = _truth(value)
            return yes if self.kind == "bool" else ("yes" if yes else "no")
        if self.kind == "enum":
            if isinstance(value, str) and value in self.values.values():
                return value
            menu = 2 if value is True else 1 if value is False else int(value)
            if menu not in self.values:
                raise ValueError(f"{self.code} has no GraphQL value for {menu}")
            return self.values[menu]
        if self.kind in ("int", "decimal"):
            number = Decimal(str(2 if value is True else 1 if value is False else value))
            return int(number) if number == number.to_integral_value() else float(number)
        if isinstance(value, datetime):
            return stamp_literal(value)
        return value.isoformat() if isinstance(value, date) else str(value)


def _truth(value: Any) -> bool:
    """True, 2 (local menu 1: 2 = yes) or 'yes'; False, 1, 'no'."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("yes", "no", "true", "false"):
        return value.lower() in ("yes", "true")
    if int(value) in (1, 2):
        return int(value) == 2
    raise ValueError(f"not yes or no: {value!r}")


def menu_numbers(values: tuple[str, ...], given: Mapping[int, str]) -> dict[int, str]:
    """Menu number -> enum value: as given, else the schema's order from 1 (an X3 local
    menu becomes an enum with its values in order: Sage's X3 builder pages on enums)."""
    return dict(given) if given else dict(enumerate(values, start=1))


def render(tree: Mapping[str, Any]) -> str:
    """A selection set from a tree of field names: {a: {b: {}}, c: {}} -> a { b } c."""
    return " ".join(f"{k} {{ {render(v)} }}" if v else k for k, v in tree.items())


def dig(value: Any, *path: str) -> Any:
    """`value[a][b]...`, or None where a step is missing or not an object."""
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value
