"""What may go out now: expiry, opt-out and quiet hours per notification, then per-recipient
caps and digests. What is screened out is recorded in the outbox and the audit trail."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from x3twilio.audit import iso_ms
from x3twilio.config import Config
from x3twilio.decoding import parse_stamp
from x3twilio.model import Counts, Notification, NotificationAudit
from x3twilio.outbox import Outbox
from x3twilio.quiethours import held_until, until_text, zone_of
from x3twilio.rules import Rule
from x3twilio.senders.base import DIGEST_SEPARATOR

MAX_BODY = 1600  # Twilio's limit for a concatenated SMS
QUIET = "quiet_hours"


def quiet_hold(
    config: Config, rule: Rule | None, to: str, now: datetime
) -> tuple[datetime, ZoneInfo] | None:
    """When a notification of `rule` to `to` may go out, if quiet hours hold it back now:
    the one test poll, replay and dry runs share."""
    window = rule.quiet_window(config.sending.quiet_hours) if rule else None
    return held_until(window, to, config.sending.timezone, now)


def outcome_text(n: Notification, config: Config) -> str:
    """What a decision comes to, in words: `would send`, `deferred until 07:00 Europe/Paris`."""
    if n.reason == QUIET and n.not_before:
        zone = zone_of(n.to, config.sending.timezone)
        return f"deferred until {until_text(parse_stamp(n.not_before), zone)}"
    return n.reason or "would send"


class Screening:
    """The screening a dispatcher applies before it sends; shares its outbox, audit and counts."""

    def __init__(
        self,
        config: Config,
        outbox: Outbox,
        audit: NotificationAudit,
        counts: Counts,
        rules: dict[str, Rule],
        clock: Callable[[], datetime],
    ) -> None:
        self.config, self.outbox, self.audit, self.counts = config, outbox, audit, counts
        self.rules, self.clock = rules, clock

    def screened(self, notes: list[Notification]) -> list[list[Notification]]:
        """The batches to send, per recipient; the rest is expired, skipped or deferred."""
        now = self.clock()
        by_recipient: dict[str, list[Notification]] = defaultdict(list)
        for n in notes:
            if self._screened_out(n, now):
                continue
            by_recipient[n.to].append(n)
        return [b for items in by_recipient.values() for b in self._batches(items)]

    def _screened_out(self, n: Notification, now: datetime) -> bool:
        rule = self.rules.get(n.rule)
        if self.too_old(n, rule, now):
            self.expire(n, self.age_limit(n))
            return True
        if self.outbox.opted_out(n.to):  # they texted STOP: nothing until START
            self.outbox.mark_skipped(n, "opted_out", iso_ms(now))
            self.audit("notification.skipped", n, status="skipped", reason="opted_out")
            self.counts["skipped"] += 1
            return True
        held = quiet_hold(self.config, rule, n.to, now)
        if held is not None:
            self.outbox.defer(n, iso_ms(held[0]), iso_ms(now), reason=QUIET)
            self.audit(
                "notification.skipped",
                n,
                status="pending",
                reason=QUIET,
                not_before=iso_ms(held[0]),
                deferred_until=until_text(*held),
            )
            self.counts["deferred"] += 1
            return True
        return False

    def age_limit(self, n: Notification) -> str:
        """The setting that decides when `n` is too old, in words."""
        rule = self.rules.get(n.rule)
        return "retry.max_age" if rule is None or not rule.max_delay else "the rule's max_delay"

    def too_old(self, n: Notification, rule: Rule | None, now: datetime) -> bool:
        age = now - parse_stamp(n.created)
        limit = self.config.retry.max_age
        if rule is not None and rule.max_delay:
            limit = min(limit, rule.max_delay)
        return age > timedelta(seconds=limit)

    def _batches(self, items: list[Notification]) -> list[list[Notification]]:
        """One request per notification, within the per-recipient cap; or digests."""
        cap = self.config.sending.max_per_recipient
        if cap is None or len(items) <= cap:
            return [[n] for n in items]
        if not self.config.sending.digest or items[0].channel in ("voice", "whatsapp"):
            return [[n] for n in items[:cap]]  # the rest waits for the next run
        digests: list[list[Notification]] = [[]]
        for n in items:
            if digests[-1] and len(digest_body(digests[-1] + [n])) > MAX_BODY:
                digests.append([])
            digests[-1].append(n)
        return digests[:cap]

    def expire(self, n: Notification, limit: str) -> None:
        """Too old to be useful: stop retrying and say so (replay can still send it)."""
        held = " (held by quiet hours)" if n.reason == QUIET else ""
        message = f"not sent within {limit}{held}" + (
            f"; last failure: {n.error_message}" if n.error_message else ""
        )
        self.outbox.mark_failed(n, iso_ms(self.clock()), n.error_code, message, None)
        self.audit(
            "notification.failed",
            n,
            status="failed",
            reason="expired",
            error={"message": message, "permanent": False}
            | ({"code": n.error_code} if n.error_code is not None else {}),
        )
        self.counts["failed"] += 1


def digest_body(batch: list[Notification]) -> str:
    """One message for several notifications to one recipient, within MAX_BODY."""
    return DIGEST_SEPARATOR.join(n.body for n in batch)[:MAX_BODY]
