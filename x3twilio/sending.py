"""Sending what the outbox holds: screened, paced, in parallel, every outcome recorded.

The main thread owns the outbox and the audit trail; worker threads only make the
requests. Each notification is marked in flight before its request leaves.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from x3twilio.audit import iso_ms
from x3twilio.config import Config
from x3twilio.errors import RemoteError
from x3twilio.outbox import Notification, Outbox
from x3twilio.quiethours import zone_of
from x3twilio.rules import Rule
from x3twilio.senders.twilio import OPTED_OUT
from x3twilio.sources import parse_stamp

MAX_BODY = 1600  # Twilio's limit for a concatenated SMS
PACE = 0.975  # share of sending.rate_limit actually used
RETRY_FIRST, RETRY_CAP = 60.0, 3600.0  # seconds between a refused message and its next try
Audit = Callable[..., None]


class Sender(Protocol):
    channel: str
    reconciles: bool  # can an ambiguous failure be looked up with find_sent?

    def send(self, n: Notification, in_flight_since: datetime | None) -> str:
        """The provider's id; SMS also takes validity_period= (seconds)."""
        ...

    def find_sent(self, n: Notification, since: datetime) -> str | None: ...


class RateLimiter:
    """At most `rate` requests per second, evenly spaced; safe to share between threads.

    Each caller books the next free slot under a lock, then sleeps until it: the pace holds
    wherever the caller stands, and time lost to a slow caller is not made up in a burst.
    """

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # 2.5 % under the limit: network jitter must never put rate + 1 requests in a second
        self.interval = 1.0 / (rate * PACE) if rate else 0.0
        self.clock, self.sleep = clock, sleep
        self.next = clock()
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self.clock()
            slot = max(self.next, now)
            self.next = slot + self.interval
        if slot > now:
            self.sleep(slot - now)


class Dispatcher:
    def __init__(
        self,
        config: Config,
        outbox: Outbox,
        audit: Audit,
        counts: Counter[str],
        senders: Mapping[str, Sender],
        clock: Callable[[], datetime],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config, self.outbox, self.audit, self.counts = config, outbox, audit, counts
        self.senders, self.clock = senders, clock
        self.rules: dict[str, Rule] = {r.name: r for r in config.rules}
        self.limiter = RateLimiter(config.sending.rate_limit, sleep=sleep)

    def send_due(self) -> None:
        self.send(self.outbox.due(iso_ms(self.clock())))

    def send(self, notes: list[Notification]) -> None:
        """Screen `notes` (expiry, opt-out, quiet hours, caps), then send what is left."""
        now = self.clock()
        by_recipient: dict[str, list[Notification]] = defaultdict(list)
        for n in notes:
            if self._screened_out(n, now):
                continue
            by_recipient[n.to].append(n)
        batches = [b for items in by_recipient.values() for b in self._batches(items)]
        self._dispatch(batches)

    # -- screening ------------------------------------------------------------------------

    def _screened_out(self, n: Notification, now: datetime) -> bool:
        rule = self.rules.get(n.rule)
        if self._too_old(n, rule, now):
            if not (n.in_flight_since and self.senders[n.channel].reconciles and self._found(n)):
                self._expire(
                    n,
                    "retry.max_age"
                    if rule is None or not rule.max_delay
                    else "the rule's max_delay",
                )
            return True
        if self.outbox.opted_out(n.to):  # they texted STOP: nothing until START
            self.outbox.mark_skipped(n, "opted_out", iso_ms(now))
            self.audit("notification.skipped", n, status="skipped", reason="opted_out")
            self.counts["skipped"] += 1
            return True
        resume = self._quiet_until(n, rule, now)
        if resume is not None:
            self.outbox.defer(n, iso_ms(resume), iso_ms(now))
            self.audit(
                "notification.skipped",
                n,
                status="pending",
                reason="quiet_hours",
                not_before=iso_ms(resume),
            )
            self.counts["deferred"] += 1
            return True
        return False

    def _too_old(self, n: Notification, rule: Rule | None, now: datetime) -> bool:
        age = now - parse_stamp(n.created)
        limit = self.config.retry.max_age
        if rule is not None and rule.max_delay:
            limit = min(limit, rule.max_delay)
        return age > timedelta(seconds=limit)

    def _quiet_until(self, n: Notification, rule: Rule | None, now: datetime) -> datetime | None:
        if rule is None or rule.urgent or rule.quiet_hours is False:
            return None
        window = self.config.sending.quiet_hours if rule.quiet_hours is True else rule.quiet_hours
        if window is None:
            return None
        return window.resume_at(now, zone_of(n.to, self.config.sending.timezone))

    def _batches(self, items: list[Notification]) -> list[list[Notification]]:
        """One request per notification, within the per-recipient cap; or digests."""
        cap = self.config.sending.max_per_recipient
        if cap is None or len(items) <= cap:
            return [[n] for n in items]
        if not self.config.sending.digest or items[0].channel == "voice":
            return [[n] for n in items[:cap]]  # the rest waits for the next run
        digests: list[list[Notification]] = [[]]
        for n in items:
            if digests[-1] and len(_digest_body(digests[-1] + [n])) > MAX_BODY:
                digests.append([])
            digests[-1].append(n)
        return digests[:cap]

    # -- sending --------------------------------------------------------------------------

    def _dispatch(self, batches: list[list[Notification]]) -> None:
        stop: RemoteError | None = None
        running: dict[Future[str], list[Notification]] = {}
        workers = self.config.sending.concurrency
        waiting = iter(batches)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="send") as pool:
            while True:
                # keep a second round queued behind the workers: a worker that finishes
                # takes its next request at once, and marks and outcomes go in chunks
                room = 2 * workers - len(running) if stop is None else 0
                chunk = list(itertools.islice(waiting, room if room >= workers else 0))
                if chunk:
                    self._submit_all(pool, chunk, running)
                if not running:
                    break
                stop = self._collect(running) or stop
        if stop is not None:
            raise stop  # the service is down or refuses us: the rest stays queued

    def _submit_all(
        self,
        pool: ThreadPoolExecutor,
        chunk: list[list[Notification]],
        running: dict[Future[str], list[Notification]],
    ) -> None:
        """Mark a chunk in flight in one transaction, then hand it to the workers."""
        now = iso_ms(self.clock())
        # an earlier attempt may have reached the provider: look before resending
        earlier = [batch[0].in_flight_since for batch in chunk]
        with self.outbox.batch():
            marked = [[self.outbox.mark_sending(n, now) for n in batch] for batch in chunk]
        for batch, since in zip(marked, earlier, strict=True):
            running[self._submit(pool, batch, since)] = batch

    def _submit(
        self, pool: ThreadPoolExecutor, batch: list[Notification], earlier: str | None
    ) -> Future[str]:
        lead = batch[0]
        if len(batch) > 1:
            lead = replace(lead, body=_digest_body(batch))
        since = parse_stamp(earlier) if earlier else None
        validity = self._validity(lead)
        options = {"validity_period": validity} if validity else {}
        return pool.submit(self._send, self.senders[lead.channel], lead, since, options)

    def _send(
        self, sender: Sender, lead: Notification, since: datetime | None, options: dict[str, Any]
    ) -> str:
        self.limiter.wait()  # in the worker, right before its request: the pace is exact
        return sender.send(lead, since, **options)

    def _validity(self, n: Notification) -> int | None:
        """Seconds Twilio may still hold it: the rule's max_delay less the time spent here."""
        rule = self.rules.get(n.rule)
        if rule is None or not rule.max_delay or n.channel != "sms":
            return None
        age = (self.clock() - parse_stamp(n.created)).total_seconds()
        return max(1, min(36000, int(rule.max_delay - age)))

    def _collect(self, running: dict[Future[str], list[Notification]]) -> RemoteError | None:
        """Record every finished request in one transaction; return the error that stops."""
        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
        stop = None
        with self.outbox.batch():
            for future in done:
                batch = running.pop(future)
                try:
                    sid = future.result()
                except RemoteError as exc:
                    maybe_sent = getattr(exc, "maybe_sent", False)  # a person must look first
                    down = not maybe_sent and (
                        exc.status is None or exc.status >= 500 or exc.status in (401, 403)
                    )
                    for n in batch:
                        self._failed(n, exc, retry_now=down)
                    stop = stop or (exc if down else None)
                    continue
                for n in batch:
                    self._sent(n, sid, digest=len(batch) if len(batch) > 1 else None)
        return stop

    def _found(self, n: Notification) -> bool:
        """Whether the provider has an in-flight notification (then it counts as sent)."""
        sender = self.senders[n.channel]
        sid = sender.find_sent(n, parse_stamp(n.in_flight_since or n.created))
        if sid:
            self._sent(n, sid)
        return sid is not None

    def _sent(self, n: Notification, sid: str, digest: int | None = None) -> None:
        # audit first: a crash between the two repeats a record, it never loses one
        self.audit(
            "notification.sent",
            n,
            status="sent",
            provider_id=sid,
            attempt=n.attempts,
            digest=digest,
        )
        self.outbox.mark_sent(n, sid, iso_ms(self.clock()))
        self.counts["sent"] += 1

    def _failed(self, n: Notification, exc: RemoteError, retry_now: bool) -> None:
        now = self.clock()
        retry_at = None
        if retry_now:  # the service was down: cron's cadence is the backoff
            retry_at = iso_ms(now)
        elif exc.transient:  # this message was refused for now (queue full, rate)
            delay = min(RETRY_FIRST * 2 ** (n.attempts - 1), RETRY_CAP)
            retry_at = iso_ms(now + timedelta(seconds=delay))
        if exc.code == OPTED_OUT:  # Twilio's own STOP list: remember it here too
            self.outbox.opt_out(n.to, str(OPTED_OUT), iso_ms(now))
        reconciles = self.senders[n.channel].reconciles
        ambiguous = exc.transient and exc.code != 20429 and reconciles
        error = {"code": exc.code, "message": exc.message, "permanent": retry_at is None}
        # audit first: a crash between the two repeats a record, it never loses one
        self.audit("notification.failed", n, status="failed", attempt=n.attempts, error=error)
        self.outbox.mark_failed(n, iso_ms(now), exc.code, exc.message, retry_at, ambiguous)
        self.counts["failed"] += 1

    def _expire(self, n: Notification, limit: str) -> None:
        """Too old to be useful: stop retrying and say so (replay can still send it)."""
        message = f"not sent within {limit} ({n.error_message or 'no failure recorded'})"
        self.outbox.mark_failed(n, iso_ms(self.clock()), n.error_code, message, None)
        error = {"code": n.error_code, "message": message, "permanent": False}
        self.audit("notification.failed", n, status="failed", reason="expired", error=error)
        self.counts["failed"] += 1


def _digest_body(batch: list[Notification]) -> str:
    return "\n\n".join(n.body for n in batch)[:MAX_BODY]


def audit_fields(n: Notification, event: str, **extra: Any) -> dict[str, Any]:
    """The fields every notification record carries (INTERFACE.md "Audit records")."""
    fields: dict[str, Any] = {
        "id": n.id,
        "rule": n.rule,
        "source": n.source,
        "record": n.record,
        "channel": n.channel,
        "to": n.to,
        "status": n.status,
    }
    if event == "notification.queued":
        fields["body"] = n.body
    fields.update(extra)
    return fields
