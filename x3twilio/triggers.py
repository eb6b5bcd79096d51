"""What makes a rule fire: its `when` conditions (typed against the source's fields), its
`due:` date window, and `on: created`; each loaded and checked from the rule's YAML."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from x3twilio.decoding import parse_stamp
from x3twilio.sources import Record, Source
from x3twilio.yamlnode import Node, did_you_mean

# `FIELD within N days`, `FIELD today`, `FIELD in N days`, `FIELD N days ago` (README "Rules").
_DUE = re.compile(
    r"^\s*(?P<field>\w+)\s+(?:within\s+(?P<within>\d+)\s+days?|(?P<today>today)"
    r"|in\s+(?P<ahead>\d+)\s+days?|(?P<ago>\d+)\s+days?\s+ago)\s*$"
)

DUE_FORMS = "'FIELD within N days', 'FIELD today', 'FIELD in N days' or 'FIELD N days ago'"

MAX_DUE_DAYS = 366

ON_EVENTS = ("created",)  # `on:` values: what happened to a record, not what it holds

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "in": lambda value, options: value in options,
    "not_in": lambda value, options: value not in options,
    "exists": lambda value, wanted: (value not in (None, "")) == wanted,
}


@dataclass(frozen=True)
class Condition:
    name: str
    op: str
    value: Any

    def holds(self, record: Record) -> bool:
        actual = record.value(self.name)
        if actual is None and self.op not in ("exists", "ne", "not_in"):
            return False
        try:
            return _OPERATORS[self.op](actual, self.value)
        except TypeError:  # e.g. a date compared with garbage: not a match
            return False

    def describe(self) -> str:
        return f"{self.name} {self.op} {self.value!r}"


@dataclass(frozen=True)
class DueTrigger:
    """Fires while today + first <= field <= today + last (days; negative: in the past).

    `within 3 days` is (0, 3), `today` (0, 0), `in 3 days` (3, 3), `2 days ago` (-2, -2).
    """

    field: str
    first: int
    last: int

    def window(self, today: date) -> tuple[date, date]:
        """The dates that fire today, first to last: what X3 is asked for."""
        return today + timedelta(self.first), today + timedelta(self.last)

    def holds(self, record: Record, today: date) -> bool:
        value = record.value(self.field)
        if isinstance(value, datetime):
            value = value.date()
        first, last = self.window(today)
        return isinstance(value, date) and first <= value <= last

    def describe(self, today: date | None = None) -> str:
        """As the rule wrote it (`due_date in 3 days`), with the dates it means `today`:
        `due_date within 3 days of 2026-11-20`, `due_date in 3 days: 2026-11-23`."""
        if self.first != self.last:
            text = f"{self.field} within {_days(self.last)}"
            return f"{text} of {today}" if today else text
        if self.first == 0:
            text = f"{self.field} today"
        elif self.first > 0:
            text = f"{self.field} in {_days(self.first)}"
        else:
            text = f"{self.field} {_days(-self.first)} ago"
        return f"{text}: {self.window(today)[0]}" if today else text


def _days(count: int) -> str:
    return f"{count} day" if count == 1 else f"{count} days"


def on_key(item: Any) -> Any:
    """YAML 1.1 reads a bare `on:` key as the boolean true: give it back its name."""
    if not isinstance(item, dict) or "on" in item or not any(k is True for k in item):
        return item  # `1:` is no `on:`, though 1 == True
    return {("on" if key is True else key): value for key, value in item.items()}


def load_on(spec: Node, due: DueTrigger | None) -> bool:
    """`on: created` (the only event so far); it and `due:` are different triggers."""
    event = spec.get("on", str, None)
    if event is None:
        return False
    if event not in ON_EVENTS:
        raise spec.error("on", f"unknown event {event!r}; expected {' or '.join(ON_EVENTS)}")
    if due is not None:
        raise spec.error("on", "a rule fires on: created or on a due: date, not both")
    return True


def load_due(spec: Node, source: Source) -> DueTrigger:
    text = spec.get("due", str)
    match = _DUE.match(text)
    if not match:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise spec.error("due", f"expected {DUE_FORMS}, got {shown!r}")
    name = match["field"]
    dates = [n for n in sorted(source.names()) if source.kind_of(n) in ("date", "datetime")]
    if not source.knows(name) or source.kind_of(name) not in ("date", "datetime", "raw"):
        raise spec.error(
            "due", f"{name!r} is not a date field of {source.name}{did_you_mean(name, dates)}"
        )
    given = match["within"] or match["ahead"] or match["ago"] or "0"
    days = int(given) if len(given) <= 4 else MAX_DUE_DAYS + 1  # 5000 digits: not an int
    if days > MAX_DUE_DAYS:
        raise spec.error("due", f"expected at most {MAX_DUE_DAYS} days, got {given[:8]}")
    if match["ahead"]:
        return DueTrigger(name, days, days)
    if match["ago"]:
        return DueTrigger(name, -days, -days)
    return DueTrigger(name, 0, days)


def load_conditions(node: Node, source: Source) -> tuple[Condition, ...]:
    conditions = []
    for key in list(node.data):
        name, raw = str(key), node.raw(key)
        if not source.knows(name):
            suggestion = did_you_mean(name, source.names())
            raise node.error(name, f"unknown field of {source.name}{suggestion}")
        kind = source.kind_of(name)
        for op, literal in _operator_pairs(raw):
            if op not in _OPERATORS:
                raise node.error(
                    name, f"unknown operator {op!r}; expected one of " + ", ".join(_OPERATORS)
                )
            try:
                value = _coerce_operand(op, literal, kind, source.field_by_name(name))
            except ValueError as exc:
                raise node.error(name, str(exc)) from None
            conditions.append(Condition(name, op, value))
    return tuple(conditions)


def _operator_pairs(raw: Any) -> list[tuple[str, Any]]:
    if isinstance(raw, dict):
        return [(str(op), value) for op, value in raw.items()]
    if isinstance(raw, list):
        return [("in", raw)]
    return [("eq", raw)]


def _coerce_operand(op: str, literal: Any, kind: str, field: Any) -> Any:
    if op == "exists":
        if not isinstance(literal, bool):
            raise ValueError("exists takes true or false")
        return literal
    if op in ("in", "not_in"):
        if not isinstance(literal, list):
            raise ValueError(f"{op} takes a list")
        return tuple(_coerce(v, kind, field) for v in literal)
    return _coerce(literal, kind, field)


def _coerce(literal: Any, kind: str, field: Any) -> Any:
    """Turn a YAML literal into the type the decoded field has."""
    if kind in ("menu", "yesno"):
        words = set(field.menu.values())
        if isinstance(literal, bool):  # YAML reads a bare no/yes as a boolean
            literal = "yes" if literal else "no"
        if isinstance(literal, int) and literal in field.menu:
            return field.menu[literal]
        if literal not in words:
            raise ValueError(f"{literal!r} is not one of {', '.join(sorted(words))}")
        return literal
    try:
        return _COERCE[kind](literal)
    except (ValueError, TypeError, InvalidOperation):
        raise ValueError(f"{literal!r} is not a valid {kind}") from None


def _to_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _to_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else parse_stamp(str(value))


_COERCE: dict[str, Callable[[Any], Any]] = {
    "text": str,
    "int": int,
    "decimal": lambda v: Decimal(str(v)),
    "date": _to_date,
    "datetime": _to_datetime,
    "raw": lambda v: v,
}
