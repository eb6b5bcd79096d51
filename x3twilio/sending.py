"""Sending what the outbox holds: screened, paced, in parallel, every outcome recorded.

The main thread owns the outbox and the audit trail; worker threads only make the
requests. Each notification is marked in flight before its request leaves.

A request whose outcome is unknown (no answer, a reset, a 5xx, the process killed) is never
posted again in the run that made it. The notification stays in flight until its settle
delay has passed (`twilio.settle` after the client stopped waiting: long enough for Twilio to
have created what it accepted), then Twilio's list is asked: there, it is sent; not there, it
is sent again by a later run. A run waits for the settle of its own unanswered requests as
long as its retry budget allows, and leaves the rest to the next run.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from x3twilio.audit import iso_ms
from x3twilio.channel import Sender
from x3twilio.config import Config
from x3twilio.decoding import parse_stamp
from x3twilio.errors import RemoteError
from x3twilio.model import Counts, Event, Notification, NotificationAudit
from x3twilio.outbox import Outbox
from x3twilio.pacing import RateLimiter
from x3twilio.rules import Rule
from x3twilio.screening import Screening, digest_body
from x3twilio.senders.twilio import OPTED_OUT
from x3twilio.transport import Outcome, outcome_of

RETRY_FIRST, RETRY_CAP = 60.0, 3600.0  # seconds between a refused message and its next try
NOT_FOUND = "not in Twilio's list once settled"
LOOKING = "looking up what an unanswered request may have created"


class Dispatcher:
    def __init__(
        self,
        config: Config,
        outbox: Outbox,
        audit: NotificationAudit,
        counts: Counts,
        senders: Mapping[str, Sender],
        clock: Callable[[], datetime],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config, self.outbox, self.audit, self.counts = config, outbox, audit, counts
        self.senders, self.clock, self.sleep = senders, clock, sleep
        self.rules: dict[str, Rule] = {r.name: r for r in config.rules}
        self.limiter = RateLimiter(config.sending.rate_limit, sleep=sleep)
        self.screening = Screening(config, outbox, audit, counts, self.rules, clock)
        self.settle = config.twilio.settle
        self.workers = config.sending.concurrency
        self._started = time.monotonic()
        self._settling: list[Notification] = []  # in flight; not_before: its settle end
        self._unanswered = 0  # requests that may have been accepted, in a row
        self._mine: set[str] = set()  # ids whose request this run left unanswered
        self._calling: set[str] = set()  # numbers a call is being placed to
        self._held: set[str] = set()  # numbers with an unresolved call: no other call now

    def send_due(self) -> None:
        """Send what is due; wait for in-flight ones that settle within the retry budget."""
        now = self.clock()
        stamp = iso_ms(now)
        self._settle_fallbacks(stamp)
        horizon = now + timedelta(seconds=min(self.settle, self._time_left()))
        due, settling = [], []
        for n in self.outbox.due(iso_ms(horizon)):
            if n.not_before <= stamp:
                due.append(n)
            elif n.in_flight_since and self._reconciles(n):
                settling.append(n)
        self.send(due, settling)

    def _settle_fallbacks(self, now: str) -> None:
        """A fallback whose first notification arrived is dropped; one whose first failed,
        was skipped or undelivered is due now (else it waits for its time, `after`)."""
        for n in self.outbox.fallbacks_not_needed():
            self.outbox.mark_skipped(n, "arrived", now)
            self.audit("notification.skipped", n, status="skipped", reason="arrived")
            self.counts["skipped"] += 1
        self.outbox.release_fallbacks(now)

    def send(self, notes: list[Notification], settling: Iterable[Notification] = ()) -> None:
        """Settle what is in flight, screen `notes` (expiry, opt-out, quiet hours, caps),
        send what is left, then look up what this run left unanswered once it has settled.

        `settling`: in-flight notifications whose settle ends later (`not_before`).
        """
        now = self.clock()
        self._settling, self._unanswered = list(settling), 0
        looked_up: list[Notification] = []
        fresh: list[Notification] = []
        for n in notes:
            if not (n.in_flight_since and self._reconciles(n)):
                fresh.append(n)
            elif n.not_before <= n.in_flight_since:
                # marked in flight and never resolved: its run died mid-request, at some
                # moment before now; Twilio may still be creating it
                self._settling.append(self._settle_from(n, now))
            elif n.not_before > iso_ms(now):
                self._settling.append(n)  # unanswered lately: its settle is still running
            else:
                looked_up.append(n)  # an unanswered request of an earlier run, settled
        self._held = {n.to for n in self._settling if self._one_at_a_time(n)}
        try:
            fresh += self._look_up(looked_up)
            stop = self._dispatch(self.screening.screened(fresh))
            if stop is None:
                stop, again = self._await_settling()
                self._held = {n.to for n in self._settling if self._one_at_a_time(n)}
                if again and stop is None:  # absent once settled, and not this run's
                    stop = self._dispatch(self.screening.screened(again))
        finally:
            if self._settling:
                self.counts["unconfirmed"] += len(self._settling)
        if stop is not None:
            raise stop  # the service is down or refuses us: the rest stays queued

    def _reconciles(self, n: Notification) -> bool:
        sender = self.senders.get(n.channel)
        return sender is not None and sender.reconciles

    # -- settling what may have been accepted ---------------------------------------------

    def _settle_from(self, n: Notification, now: datetime) -> Notification:
        """In flight until `now` + settle: written down, so the next run waits no longer."""
        end = iso_ms(now + timedelta(seconds=self.settle))
        self.outbox.defer(n, end, iso_ms(now))
        return replace(n, not_before=end)

    def _look_up(self, notes: list[Notification]) -> list[Notification]:
        """Settled in-flight notifications: record the found as sent, return the others
        cleared for sending again (in this run: their request was an earlier run's)."""
        again = []
        for n in notes:
            try:
                sid = self._find(n)
            except RemoteError as exc:
                if outcome_of(exc).stops_run:
                    raise _stopping(exc, LOOKING) from None
                if self._one_at_a_time(n):
                    self._held.add(n.to)
                continue  # cannot tell: it stays in flight for the next run
            if sid is None:
                again += self._absent(n)
        return again

    def _await_settling(self) -> tuple[RemoteError | None, list[Notification]]:
        """Look up each in-flight notification once settled, while the budget allows.

        Returns what stops the run, if anything, and the notifications Twilio does not
        hold whose unanswered request was an earlier run's: they may go out again now.
        What this run left unanswered and Twilio does not hold stays in flight, settled:
        a later run sends it again (never twice in the run that made the request).
        """
        queue = sorted(self._settling, key=lambda n: n.not_before)
        self._settling = []
        again: list[Notification] = []
        for i, n in enumerate(queue):
            pause = (parse_stamp(n.not_before) - self.clock()).total_seconds()
            if pause > self._time_left():  # the rest settle later still: the next run's
                self._settling += queue[i:]
                break
            if pause > 0:
                self.sleep(pause)
            try:
                sid = self._find(n)
            except RemoteError as exc:
                if outcome_of(exc).stops_run:
                    self._settling += queue[i:]
                    return _stopping(exc, LOOKING), again
                self._settling.append(n)
                continue
            if sid is not None:
                continue
            if n.id in self._mine and not self.screening.too_old(
                n, self.rules.get(n.rule), self.clock()
            ):
                self._settling.append(n)
            else:
                again += self._absent(n)
        return None, again

    def _absent(self, n: Notification) -> list[Notification]:
        """Twilio has had its time and does not hold `n`: it may go out again (or expire)."""
        if self.screening.too_old(n, self.rules.get(n.rule), self.clock()):
            self.screening.expire(n, self.screening.age_limit(n))
            return []
        now = iso_ms(self.clock())
        self.outbox.mark_failed(n, now, n.error_code, n.error_message or NOT_FOUND, now)
        return [replace(n, status="pending", in_flight_since=None, not_before=now)]

    def _find(self, n: Notification) -> str | None:
        """The provider's id for in-flight `n` (recorded as sent), or None: not there."""
        sender = self.senders[n.channel]
        sid = sender.find_sent(n, parse_stamp(n.in_flight_since or n.created))
        if sid:
            self._sent(n, sid, reconciled=True)
        return sid

    # -- sending --------------------------------------------------------------------------

    def _dispatch(self, batches: list[list[Notification]]) -> RemoteError | None:
        """Send every batch, unless something stops the run: then return what did."""
        stop: RemoteError | None = None
        running: dict[Future[str], list[Notification]] = {}
        workers = self.workers
        waiting = deque(batches)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="send") as pool:
            while True:
                # keep a second round queued behind the workers: a worker that finishes
                # takes its next request at once, and marks and outcomes go in chunks
                room = 2 * workers - len(running) if stop is None else 0
                chunk = self._take(waiting, room) if room >= workers else []
                if chunk:
                    self._submit_all(pool, chunk, running)
                if not running:
                    break
                stop = self._collect(running) or stop
        return stop

    def _take(self, waiting: deque[list[Notification]], room: int) -> list[list[Notification]]:
        """Up to `room` batches, in order; a call waits while another to its number is out.

        A call keeps no trace of what it said, so two unanswered calls to one number could
        not be told apart in Twilio's list: calls to one number go one after the other, and
        none while one of them is unresolved (those wait for a later run).
        """
        taken: list[list[Notification]] = []
        later: list[list[Notification]] = []
        while waiting and len(taken) < room:
            batch = waiting.popleft()
            lead = batch[0]
            if self._one_at_a_time(lead):
                if lead.to in self._held:
                    continue  # left pending, untouched, for a later run
                if lead.to in self._calling:
                    later.append(batch)
                    continue
                self._calling.add(lead.to)
            taken.append(batch)
        waiting.extendleft(reversed(later))
        return taken

    def _one_at_a_time(self, n: Notification) -> bool:
        return bool(getattr(self.senders.get(n.channel), "one_at_a_time", False))

    def _submit_all(
        self,
        pool: ThreadPoolExecutor,
        chunk: list[list[Notification]],
        running: dict[Future[str], list[Notification]],
    ) -> None:
        """Mark a chunk in flight in one transaction, then hand it to the workers."""
        now = iso_ms(self.clock())
        # an earlier attempt that may have reached a provider that cannot be asked
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
            lead = replace(lead, body=digest_body(batch))
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
                self._calling.discard(batch[0].to)
                try:
                    sid = future.result()
                except RemoteError as exc:
                    outcome = self._outcome(exc, batch[0])
                    for n in batch:
                        self._failed(n, exc, outcome)
                    if outcome is Outcome.MAYBE_SENT and self._one_at_a_time(batch[0]):
                        self._held.add(batch[0].to)
                    stop = stop or self._stops(exc, outcome)
                    continue
                self._unanswered = 0
                for n in batch:
                    self._sent(n, sid, digest=len(batch) if len(batch) > 1 else None)
        return stop

    def _outcome(self, exc: RemoteError, n: Notification) -> Outcome:
        outcome = outcome_of(exc)
        if outcome is Outcome.MAYBE_SENT and not self._reconciles(n):
            return Outcome.UNCONFIRMED  # it cannot be looked up: a person decides
        return outcome

    def _stops(self, exc: RemoteError, outcome: Outcome) -> RemoteError | None:
        """The error that stops the run, if this one does.

        One unanswered request does not: it is settled and looked up later. A 5xx answer
        does (the service says it is failing), and so do as many unanswered requests in a
        row as there are workers (none answered in between): the service looks down.
        """
        if outcome is Outcome.MAYBE_SENT:
            self._unanswered += 1
            failing = exc.status is not None and exc.status >= 500
            if not failing and self._unanswered < self.workers:
                return None
            why = "" if failing else f" ({self._unanswered} requests in a row unanswered)"
            return RemoteError(
                exc.service,
                f"{exc.message}{why}; the run stops: a later run looks up what may have "
                "been accepted once it has settled, and every other notification stays "
                "queued",
                status=exc.status,
                code=exc.code,
            )
        if outcome.stops_run:
            return _stopping(exc)
        return None

    def _sent(
        self, n: Notification, sid: str, digest: int | None = None, reconciled: bool = False
    ) -> None:
        # audit first: a crash between the two repeats a record, it never loses one
        self.audit(
            "notification.sent",
            n,
            status="sent",
            provider_id=sid,
            attempt=n.attempts,
            digest=digest,
            reconciled=reconciled or None,
        )
        self.outbox.mark_sent(n, sid, iso_ms(self.clock()))
        self.counts["sent"] += 1

    def _failed(self, n: Notification, exc: RemoteError, outcome: Outcome) -> None:
        now = self.clock()
        if outcome is Outcome.MAYBE_SENT:  # not known yet: no record until it is
            end = iso_ms(now + timedelta(seconds=self.settle))
            self.outbox.mark_failed(n, iso_ms(now), exc.code, exc.message, end, ambiguous=True)
            self._settling.append(replace(n, not_before=end))
            self._mine.add(n.id)
            return
        if outcome.stops_run:  # not about this notification: pending, due at once
            self.outbox.mark_failed(n, iso_ms(now), exc.code, exc.message, iso_ms(now))
            return
        retry_at = None
        if outcome is Outcome.LATER:  # this message was refused for now (429)
            delay = min(RETRY_FIRST * 2 ** (n.attempts - 1), RETRY_CAP)
            retry_at = iso_ms(now + timedelta(seconds=delay))
        if exc.code == OPTED_OUT:  # Twilio's own STOP list: remember it here too
            self.outbox.opt_out(n.to, str(OPTED_OUT), iso_ms(now))
        error = {"code": exc.code, "message": exc.message, "permanent": retry_at is None}
        # audit first: a crash between the two repeats a record, it never loses one
        self.audit("notification.failed", n, status="failed", attempt=n.attempts, error=error)
        self.outbox.mark_failed(n, iso_ms(now), exc.code, exc.message, retry_at)
        self.counts["failed"] += 1

    def _time_left(self) -> float:
        """Seconds left of the run's retry budget (the senders' retrier keeps the count)."""
        lefts: list[float] = [
            retrier.deadline - retrier.clock()
            for sender in self.senders.values()
            if (retrier := getattr(sender, "retrier", None)) is not None
        ]
        if not lefts:
            lefts = [self.config.retry.budget - (time.monotonic() - self._started)]
        return max(0.0, min(lefts))


def _stopping(exc: RemoteError, doing: str = "") -> RemoteError:
    """`exc`, saying that the run stops and that nothing waiting in the outbox is lost."""
    if not outcome_of(exc).stops_run:
        return exc
    return RemoteError(
        exc.service,
        f"{exc.message}{f' ({doing})' if doing else ''}; the run stops, and every "
        "notification stays queued for the next run",
        status=exc.status,
        code=exc.code,
    )


def audit_fields(n: Notification, event: Event, **extra: Any) -> dict[str, Any]:
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
    if n.partner:
        fields["partner"] = n.partner
    if n.fallback_of:
        fields["fallback_of"] = n.fallback_of
    if event == "notification.queued":
        fields["body"] = n.body
    fields.update(extra)
    return fields
