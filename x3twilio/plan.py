"""Deciding: the notifications a record calls for, from the rules and the addresses already
resolved for it. Pure: no X3, no state, no clock; the same inputs always give the same ids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta

from x3twilio.audit import iso_ms
from x3twilio.fallback import Fallback
from x3twilio.locales import X3_LANGUAGES
from x3twilio.model import Notification, notification_id
from x3twilio.recipients import Target
from x3twilio.rules import Rule
from x3twilio.screening import MAX_BODY
from x3twilio.sources import Record
from x3twilio.templates import Template
from x3twilio.whatsapp import content_of


def matching(
    rules: Sequence[Rule], record: Record, today: date, since: datetime | None = None
) -> list[Rule]:
    """The rules `record` fires today; `on: created` ones only if it was created at or after
    `since`, when the tool began watching its source (None: not known, so it was not)."""
    return [r for r in rules if r.matches(record, today) and r.created_since(record, since)]


def decide(
    rule: Rule,
    record: Record,
    targets: Sequence[Target],
    now: datetime,
    *,
    partner: str = "",
    languages: Mapping[str, str] = X3_LANGUAGES,
) -> list[Notification]:
    """One notification per target, in the target's language: pending, or skipped with the
    target's reason; and its fallback, waiting `after` from `now` (no wait if skipped).
    `partner` is the record's CLASS:CODE; `languages` maps X3's codes to the rule's keys."""
    once = [str(record.value(name)) for name in rule.once_per]
    out = []
    for target in targets:
        nid = notification_id(
            rule.name, record.source.name, record.key, *once, rule.channel, target.identity
        )
        template, subject, locale = rule.text_for(*target.languages, table=languages)
        first = Notification(
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
            content=content_of(rule, record.value, locale),
        )
        out.append(first)
        if rule.fallback and target.fallback:
            text = rule.text_for(*target.fallback.languages, table=languages)
            out.append(_fallback(rule.fallback, first, record, target.fallback, text, now))
    return out


def _fallback(
    fallback: Fallback,
    first: Notification,
    record: Record,
    target: Target,
    text: tuple[Template, Template | None, str | None],
    now: datetime,
) -> Notification:
    """`first`'s stand-in on the fallback channel, in `text` (the rule's, in the target's
    language): at once if `first` is skipped, else once `after` has passed with no receipt
    (or sooner, when `first` fails or is undelivered)."""
    template, _, locale = text
    wait = timedelta(seconds=0 if first.status == "skipped" else fallback.after)
    return Notification(
        notification_id(first.id, "fallback", fallback.channel, target.identity),
        first.rule,
        record.source.name,
        record.key,
        fallback.channel,
        target.to,
        template.render(record.value, locale)[:MAX_BODY],
        subject=fallback.subject.render(record.value, locale) if fallback.subject else None,
        partner=first.partner,
        not_before=iso_ms(now + wait),
        fallback_of=first.id,
    )
