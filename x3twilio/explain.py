"""`explain SOURCE KEY`: why a record did or did not notify, condition by condition."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from x3twilio.config import Config
from x3twilio.outbox import Outbox
from x3twilio.sending import QUIET, outcome_text
from x3twilio.sources import decode, stamped
from x3twilio.transport import Retrier, make_session
from x3twilio.x3 import make_client


def explain(config: Config, source_name: str, key: str) -> list[str]:
    """Lines of plain text: the record, each rule's verdict with reasons, the outbox's story."""
    source = config.sources[source_name]
    client = make_client(config.x3, make_session(), Retrier(config.retry))
    raw = client.details(source.x3_class, key, source.representation)
    if raw is None:
        raise LookupError(f"{source.x3_class} {key} does not exist in X3")
    record = decode(source, stamped(source, raw))
    today = client.server_time(source).date()
    lines = [f"{source.name} {record.key} (changed {record.stamp})"]
    lines += [f"  {name} = {shown(value)}" for name, value in record.values.items()]
    for rule in (r for r in config.rules if r.source == source_name):
        verdict = "matches" if rule.matches(record, today) else "does not match"
        lines.append(f"rule {rule.name}: {verdict}")
        if rule.due:
            ok = rule.due.holds(record, today)
            lines.append(
                f"  {'✓' if ok else '✗'} {rule.due.field} within {rule.due.days} "
                f"days of {today} (is {shown(record.value(rule.due.field))})"
            )
        for condition in rule.conditions:
            ok = condition.holds(record)
            lines.append(
                f"  {'✓' if ok else '✗'} {condition.describe()} "
                f"(is {shown(record.value(condition.name))})"
            )
    outbox = Outbox(config.state_dir, readonly=True)
    history = outbox.for_record(source_name, record.key)
    outbox.close()
    lines.append("outbox: " + ("nothing decided yet" if not history else f"{len(history)} item(s)"))
    for n, delivery in history:
        waiting = n.status == "pending" and n.reason == QUIET
        detail = outcome_text(n, config) if waiting else n.provider_id or n.error_message or ""
        detail = detail or n.reason or ""
        lines.append(
            f"  {n.rule} → {n.to or '(no recipient)'}: {n.status}"
            f"{' / ' + delivery if delivery else ''} {detail}".rstrip()
        )
    return lines


def shown(value: Any) -> str:
    """A value as people write it: 2026-11-27, 109.50, yes; `(empty)` for nothing."""
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date | Decimal | int | float | str):
        return str(value)
    return repr(value)
