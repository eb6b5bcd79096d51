"""Rules: which records of a source notify whom, on which channel, with what text."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from x3twilio.decoding import parse_stamp
from x3twilio.locales import X3_LANGUAGES, choose, load_texts
from x3twilio.model import Channel, is_channel
from x3twilio.phones import is_e164
from x3twilio.quiethours import QuietHours
from x3twilio.sources import Record, Source
from x3twilio.templates import Template
from x3twilio.yamlnode import Node, did_you_mean

# What a rule may hold: `done` suggests these even when a rule did not read them (`due`).
RULE_KEYS = (
    "name",
    "source",
    "when",
    "due",
    "once_per",
    "to",
    "channel",
    "message",
    "subject",
    "urgent",
    "quiet_hours",
    "max_delay",
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PARTNER_WORDS = ("supplier", "customer", "partner")
# `FIELD within N days`, `FIELD today`, `FIELD in N days`, `FIELD N days ago` (README "Rules").
_DUE = re.compile(
    r"^\s*(?P<field>\w+)\s+(?:within\s+(?P<within>\d+)\s+days?|(?P<today>today)"
    r"|in\s+(?P<ahead>\d+)\s+days?|(?P<ago>\d+)\s+days?\s+ago)\s*$"
)
DUE_FORMS = "'FIELD within N days', 'FIELD today', 'FIELD in N days' or 'FIELD N days ago'"
MAX_DUE_DAYS = 366

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


@dataclass(frozen=True)
class Recipient:
    kind: str  # "number", "group" or "partner"
    value: str  # E.164, group name, or supplier/customer/partner


@dataclass(frozen=True)
class Rule:
    name: str
    source: str
    conditions: tuple[Condition, ...]
    due: DueTrigger | None
    once_per: tuple[str, ...]
    recipients: tuple[Recipient, ...]
    channel: Channel
    template: Template
    subject: Template | None = None  # email only
    urgent: bool = False  # sent even in quiet hours
    quiet_hours: QuietHours | bool = True  # True: the sending section's window
    max_delay: float | None = None  # seconds; also Twilio's ValidityPeriod
    # language key -> (message, subject), in the file's order (the first: `template`, `subject`);
    # empty when the rule has one text for everyone.
    translations: Mapping[str, tuple[Template, Template | None]] = field(default_factory=dict)

    def names(self) -> set[str]:
        """Every field this rule reads: conditions, due date, once_per, templates (in every
        language)."""
        used = {c.name for c in self.conditions} | set(self.once_per)
        if self.due:
            used.add(self.due.field)
        texts = [(self.template, self.subject), *self.translations.values()]
        for template, subject in texts:
            used |= template.names | (subject.names if subject else set())
        return used

    def text_for(
        self, *x3_codes: str, table: Mapping[str, str] = X3_LANGUAGES
    ) -> tuple[Template, Template | None, str | None]:
        """(message, subject, locale to render with) for a recipient whose X3 language codes
        are `x3_codes`, most preferred first (contact's CNTLAN, partner's LAN); `table`: the
        configuration's `languages`. One text for everyone: no locale, rendered as written."""
        if not self.translations:
            return self.template, self.subject, None
        key, locale = choose(list(self.translations), *x3_codes, table=table)
        template, subject = self.translations[key]
        return template, subject, locale

    def quiet_window(self, default: QuietHours | None) -> QuietHours | None:
        """The window that holds this rule back: its own, the sending section's, or none."""
        if self.urgent or self.quiet_hours is False:
            return None
        return default if self.quiet_hours is True else self.quiet_hours

    def matches(self, record: Record, today: date) -> bool:
        if self.due and not self.due.holds(record, today):
            return False
        return all(c.holds(record) for c in self.conditions)


def needed(source: Source, rules: Iterable[Rule]) -> Iterator[tuple[str, str | None, str]]:
    """(X3 code, the kind it is read as or None, why) for every field `source` needs from X3:
    its key and change stamp, its partner, and what its rules and templates read."""
    for code in source.key:
        yield code, None, "key"
    yield source.timestamp, "datetime", "change stamp"
    if source.partner:
        yield source.partner.field, "text", "recipient"
        if source.partner.kind_field:
            yield source.partner.kind_field, None, "recipient"
    if source.closed:
        closed = source.fields[source.closed[0]]
        yield closed.code, closed.kind, "open or closed"
    for rule in rules:
        if rule.source != source.name:
            continue
        why = f"rule {rule.name}"
        for name in sorted(rule.names()):
            declared = source.field_by_name(name)
            if declared is not None:
                yield declared.code, declared.kind, why
            elif name in source.computed:
                inputs = (source.fields[n] for n in source.computed_from.get(name, ()))
                yield from ((f.code, f.kind, why) for f in inputs)
            else:
                yield name, None, why  # a raw X3 code


def load_rules(
    node: Node, sources: Mapping[str, Source], groups: Mapping[str, tuple[str, ...]]
) -> tuple[Rule, ...]:
    items = node.get("rules", list, [])
    rules = [
        _load_rule(Node(node.file, node.where("rules"), {}), i, item, sources, groups)
        for i, item in enumerate(items)
    ]
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.name in seen:
            raise node.error("rules", f"[{i}] duplicate rule name {rule.name!r}")
        seen.add(rule.name)
    return tuple(rules)


def _load_rule(
    parent: Node,
    index: int,
    item: Any,
    sources: Mapping[str, Source],
    groups: Mapping[str, tuple[str, ...]],
) -> Rule:
    spec = Node(parent.file, parent.where(index), item)
    source_name = spec.get("source", str)
    if source_name not in sources:
        raise spec.error(
            "source", f"unknown source {source_name!r}; known: " + ", ".join(sorted(sources))
        )
    source = sources[source_name]
    due = _load_due(spec, source) if spec.has("due") else None
    conditions = _load_conditions(spec.child("when"), source)
    once_per = tuple(spec.get("once_per", list, [due.field] if due else []))
    for i, name in enumerate(once_per):
        if not source.knows(name):
            hint = did_you_mean(name, source.names())
            raise spec.error("once_per", f"[{i}] unknown field {name!r} of {source_name}{hint}")
    channel = spec.get("channel", str, "sms")
    if not is_channel(channel):
        raise spec.error("channel", f"unknown channel {channel!r}; expected sms, email or voice")
    template, subject, translations = load_texts(spec, _kinds(source), channel)
    max_delay = spec.duration("max_delay", 0.0) or None
    if max_delay is not None and not 1 <= max_delay <= 36000:
        raise spec.error("max_delay", "expected 1s to 10h (Twilio's ValidityPeriod range)")
    rule = Rule(
        name=spec.get("name", str),
        source=source_name,
        conditions=conditions,
        due=due,
        once_per=once_per,
        recipients=_load_recipients(spec, source, groups, channel),
        channel=channel,
        template=template,
        subject=subject,
        urgent=spec.get("urgent", bool, False),
        quiet_hours=_load_quiet(spec),
        max_delay=max_delay,
        translations=translations,
    )
    spec.done(also=RULE_KEYS)
    if not conditions and not due:
        raise spec.error("when", "a rule needs conditions (when:) or a due: trigger")
    return rule


def _load_quiet(spec: Node) -> QuietHours | bool:
    """`quiet_hours: false` (never quiet), a window of its own, or the default (true)."""
    value = spec.get("quiet_hours", (bool, dict), True)
    if isinstance(value, bool):
        return value
    node = spec.child("quiet_hours")
    try:
        window = QuietHours.parse(node.get("start", str), node.get("end", str))
    except ValueError as exc:
        raise spec.error("quiet_hours", str(exc)) from None
    node.done()
    return window


def _kinds(source: Source) -> dict[str, str]:
    return {name: source.kind_of(name) for name in source.names()}


def _load_due(spec: Node, source: Source) -> DueTrigger:
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


def _load_conditions(node: Node, source: Source) -> tuple[Condition, ...]:
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


def _load_recipients(
    spec: Node, source: Source, groups: Mapping[str, tuple[str, ...]], channel: str
) -> tuple[Recipient, ...]:
    entries = spec.get("to", (list, str))
    entries = [entries] if isinstance(entries, str) else entries
    if not entries:
        raise spec.error("to", "at least one recipient is needed")
    out = []
    for i, entry in enumerate(entries):
        where = f"to[{i}]"
        if not isinstance(entry, str):
            raise spec.error(where, "expected a phone number, an email, a group or supplier")
        out.append(_recipient(spec, where, entry.strip(), source, groups, channel))
    return tuple(out)


def fits(address: str, channel: str) -> bool:
    """Whether `address` can receive on `channel`: an email, or an E.164 number."""
    return bool(_EMAIL.match(address)) if channel == "email" else is_e164(address)


def _recipient(
    spec: Node,
    where: str,
    entry: str,
    source: Source,
    groups: Mapping[str, tuple[str, ...]],
    channel: str,
) -> Recipient:
    if entry.startswith("+") or "@" in entry:
        if not fits(entry, channel):
            kind = "email address" if channel == "email" else "E.164 phone number"
            raise spec.error(where, f"{entry!r} is not a valid {kind} (channel {channel})")
        return Recipient("number", entry)
    if entry in PARTNER_WORDS:
        partner = source.partner
        if partner is None:
            raise spec.error(where, f"source {source.name} names no supplier or customer")
        if partner.kind and entry not in ("partner", partner.kind):
            raise spec.error(
                where, f"records of {source.name} name a {partner.kind}, not a {entry}"
            )
        return Recipient("partner", entry)
    if entry not in groups:
        known = ", ".join(sorted(groups)) or "none"
        raise spec.error(where, f"unknown group {entry!r}; known groups: {known}")
    if not any(fits(member, channel) for member in groups[entry]):
        raise spec.error(where, f"group {entry!r} has no member who can receive {channel}")
    return Recipient("group", entry)
