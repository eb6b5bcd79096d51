"""`explain SOURCE KEY`: why a record did or did not notify, condition by condition.

`explanation()` is the structured form (for `--json`); `lines()` renders it for people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from x3twilio.config import Config
from x3twilio.decoding import parse_stamp
from x3twilio.outbox import Outbox
from x3twilio.screening import QUIET, outcome_text
from x3twilio.sources import decode, stamped
from x3twilio.state import Watermarks
from x3twilio.transport import Retrier, make_session
from x3twilio.x3 import make_client


@dataclass(frozen=True)
class Condition:
    """One condition of a rule, as the record meets it or not."""

    text: str  # in words: `status = 3`, `due_date within 5 days (today 2026-11-20)`
    ok: bool
    field: str
    value: Any  # the record's value of `field`


@dataclass(frozen=True)
class Verdict:
    rule: str
    matches: bool
    conditions: list[Condition]


@dataclass(frozen=True)
class Decided:
    """What the outbox holds about the record: one notification and where it stands."""

    rule: str
    to: str
    status: str
    delivery: str  # Twilio's last delivery status, if any
    detail: str  # the provider id, the error, why it waits or was skipped


@dataclass(frozen=True)
class Explanation:
    source: str
    key: str
    stamp: str
    values: dict[str, Any]
    verdicts: list[Verdict] = field(default_factory=list)
    outbox: list[Decided] = field(default_factory=list)


def explanation(config: Config, source_name: str, key: str) -> Explanation:
    """Read the record from X3 and judge it by each rule of its source; LookupError if absent."""
    source = config.sources[source_name]
    client = make_client(config.x3, make_session(), Retrier(config.retry))
    raw = client.details(source.x3_class, key, source.representation)
    if raw is None:
        raise LookupError(f"{source.x3_class} {key} does not exist in X3")
    record = decode(source, stamped(source, raw))
    today = client.server_time(source).date()
    watching = Watermarks(config.state_dir).since(source_name)
    since = parse_stamp(watching) if watching else None
    verdicts = []
    for rule in (r for r in config.rules if r.source == source_name):
        conditions = []
        if rule.on_created:
            text = f"created at or after {watching}" if watching else "created (no poll yet)"
            new = rule.created_since(record, since)
            conditions.append(Condition(text, new, source.created, record.created))
        if rule.due:
            name = rule.due.field
            text = rule.due.describe(today)
            conditions.append(
                Condition(text, rule.due.holds(record, today), name, record.value(name))
            )
        conditions += [
            Condition(c.describe(), c.holds(record), c.name, record.value(c.name))
            for c in rule.conditions
        ]
        fires = rule.matches(record, today) and rule.created_since(record, since)
        verdicts.append(Verdict(rule.name, fires, conditions))
    outbox = Outbox(config.state_dir, readonly=True)
    history = outbox.for_record(source_name, record.key)
    outbox.close()
    decided = []
    for n, delivery in history:
        waiting = n.status == "pending" and n.reason == QUIET
        detail = outcome_text(n, config) if waiting else n.provider_id or n.error_message or ""
        if n.fallback_of:
            detail = f"{detail} (fallback of {n.fallback_of})".strip()
        decided.append(Decided(n.rule, n.to, n.status, delivery or "", detail or n.reason or ""))
    values = dict(record.values)
    return Explanation(source.name, record.key, record.stamp, values, verdicts, decided)


def lines(found: Explanation) -> list[str]:
    """Lines of plain text: the record, each rule's verdict with reasons, the outbox's story."""
    out = [f"{found.source} {found.key} (changed {found.stamp})"]
    out += [f"  {name} = {shown(value)}" for name, value in found.values.items()]
    for verdict in found.verdicts:
        out.append(f"rule {verdict.rule}: {'matches' if verdict.matches else 'does not match'}")
        out += [
            f"  {'✓' if c.ok else '✗'} {c.text} (is {shown(c.value)})" for c in verdict.conditions
        ]
    count = len(found.outbox)
    out.append("outbox: " + (f"{count} item(s)" if count else "nothing decided yet"))
    for d in found.outbox:
        out.append(
            f"  {d.rule} → {d.to or '(no recipient)'}: {d.status}"
            f"{' / ' + d.delivery if d.delivery else ''} {d.detail}".rstrip()
        )
    return out


def explain(config: Config, source_name: str, key: str) -> list[str]:
    return lines(explanation(config, source_name, key))


def shown(value: Any) -> str:
    """A value as people write it: 2026-11-27, 109.50, yes; `(empty)` for nothing."""
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date | Decimal | int | float | str):
        return str(value)
    return repr(value)
