"""Deciding: the notifications a record calls for, from the rules and the addresses already
resolved for it. Pure: no X3, no state, no clock; the same inputs always give the same ids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from x3twilio.locales import X3_LANGUAGES
from x3twilio.model import Notification, notification_id
from x3twilio.recipients import Target
from x3twilio.rules import Rule
from x3twilio.screening import MAX_BODY
from x3twilio.sources import Record


def matching(rules: Sequence[Rule], record: Record, today: date) -> list[Rule]:
    """The rules `record` fires today."""
    return [rule for rule in rules if rule.matches(record, today)]


def decide(
    rule: Rule,
    record: Record,
    targets: Sequence[Target],
    *,
    partner: str = "",
    languages: Mapping[str, str] = X3_LANGUAGES,
) -> list[Notification]:
    """One notification per target, in the target's language: pending, or skipped with the
    target's reason. `partner` is the record's CLASS:CODE; `languages` maps X3's codes."""
    once = [str(record.value(name)) for name in rule.once_per]
    out = []
    for target in targets:
        template, subject, locale = rule.text_for(*target.languages, table=languages)
        nid = notification_id(
            rule.name, record.source.name, record.key, *once, rule.channel, target.identity
        )
        out.append(
            Notification(
                nid,
                rule.name,
                record.source.name,
                record.key,
                rule.channel,
                target.to,
                template.render(record.value, locale)[:MAX_BODY],
                "skipped" if target.reason else "pending",
                target.reason,
                subject=subject.render(record.value, locale) if subject else None,
                partner=partner,
            )
        )
    return out
