"""Rules: which records of a source notify whom, on which channel, with what text."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from x3twilio.decoding import parse_stamp
from x3twilio.fallback import Fallback, load_fallback
from x3twilio.locales import X3_LANGUAGES, choose, load_texts
from x3twilio.model import Channel, is_channel
from x3twilio.phones import is_e164
from x3twilio.quiethours import QuietHours
from x3twilio.sources import Record, Source
from x3twilio.templates import Template
from x3twilio.triggers import Condition, DueTrigger, load_conditions, load_due, load_on, on_key
from x3twilio.whatsapp import ContentTemplate, load_content
from x3twilio.yamlnode import Node, did_you_mean

# What a rule may hold: `done` suggests these even when a rule did not read them (`due`).
RULE_KEYS = (
    "name",
    "source",
    "when",
    "due",
    "on",
    "once_per",
    "to",
    "channel",
    "message",
    "subject",
    "urgent",
    "quiet_hours",
    "max_delay",
    "fallback",
    "template",
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PARTNER_WORDS = ("supplier", "customer", "partner")


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
    on_created: bool = False  # `on: created`: fires once for records created since watching
    content: ContentTemplate | None = None  # whatsapp only: the template outside 24 h
    fallback: Fallback | None = None  # another channel, when this one does not arrive

    def created_since(self, record: Record, since: datetime | None) -> bool:
        """True unless this rule is `on: created` and `record` was not created at or after
        `since` (None: when watching began is not known, so nothing counts as created)."""
        if not self.on_created:
            return True
        try:
            return since is not None and parse_stamp(record.created or "") >= since
        except ValueError:  # no creation stamp, or not a UTC one
            return False

    def names(self) -> set[str]:
        """Every field this rule reads: conditions, due date, once_per, templates (in every
        language)."""
        used = {c.name for c in self.conditions} | set(self.once_per)
        if self.due:
            used.add(self.due.field)
        texts = [(self.template, self.subject), *self.translations.values()]
        for template, subject in texts:
            used |= template.names | (subject.names if subject else set())
        return used | (self.content.names if self.content else set())

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
        if rule.on_created:
            yield source.created, "datetime", f"{why} (on: created)"
        for name in sorted(rule.names()):
            declared = source.field_by_name(name)
            if declared is not None:
                yield declared.code, declared.kind, why
            elif name in source.computed:
                inputs = (source.fields[n] for n in source.computed_from.get(name, ()))
                yield from ((f.code, f.kind, why) for f in inputs)
            else:
                yield name, None, why  # a raw X3 code


def reads_created(source: Source, rules: Iterable[Rule]) -> bool:
    """Whether records of `source` need their creation stamp (decode's `created`)."""
    return any(r.on_created for r in rules if r.source == source.name)


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
    spec = Node(parent.file, parent.where(index), on_key(item))
    source_name = spec.get("source", str)
    if source_name not in sources:
        raise spec.error(
            "source", f"unknown source {source_name!r}; known: " + ", ".join(sorted(sources))
        )
    source = sources[source_name]
    due = load_due(spec, source) if spec.has("due") else None
    on_created = load_on(spec, due)
    conditions = load_conditions(spec.child("when"), source)
    once_per = tuple(spec.get("once_per", list, [due.field] if due else []))
    for i, name in enumerate(once_per):
        if not source.knows(name):
            hint = did_you_mean(name, source.names())
            raise spec.error("once_per", f"[{i}] unknown field {name!r} of {source_name}{hint}")
    channel = spec.get("channel", str, "sms")
    if not is_channel(channel):
        raise spec.error(
            "channel", f"unknown channel {channel!r}; expected sms, email, voice or whatsapp"
        )
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
        on_created=on_created,
        content=load_content(spec, _kinds(source), channel),
        fallback=load_fallback(spec, channel, _kinds(source)),
    )
    spec.done(also=RULE_KEYS)
    if not conditions and not due and not on_created:
        raise spec.error("when", "a rule needs conditions (when:), a due: trigger or on: created")
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
