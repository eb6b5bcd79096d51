"""One polling pass: X3 changes → rules → outbox → Twilio → audit, in that order."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from x3twilio.audit import iso_ms, new_run_id, utc_now
from x3twilio.channel import Sender
from x3twilio.config import Config
from x3twilio.decoding import Undecodable, parse_stamp, stamp_literal
from x3twilio.errors import ExitCode
from x3twilio.model import Count, Counts, Event, Notification
from x3twilio.outbox import Outbox
from x3twilio.plan import decide, matching
from x3twilio.recipients import Recipients
from x3twilio.recovery import check_state
from x3twilio.rules import Rule, needed, reads_created
from x3twilio.run import opened
from x3twilio.senders import make_senders
from x3twilio.sending import Dispatcher, audit_fields
from x3twilio.sinks import Applied, DryRun, Sink
from x3twilio.sources import Record, Source, decode, fields_for, not_exposed, stamped
from x3twilio.state import Watermarks
from x3twilio.transport import Retrier, make_session
from x3twilio.x3 import make_client
from x3twilio.x3.base import Page, X3Client
from x3twilio.x3.partners import PartnerDirectory


@dataclass
class RunReport:
    run_id: str
    counts: Counts = field(default_factory=Counter)
    decided: list[Notification] = field(default_factory=list)
    reads: dict[str, float] = field(default_factory=dict)  # source -> when read whole (epoch)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.PARTIAL if self.counts["failed"] or self.counts["rejected"] else ExitCode.OK


class Progress(Protocol):
    """Told how a run is going (after each page read, each notification decided or sent), for
    a live status on a terminal; `counts` are the run's counts so far, read at once."""

    def __call__(self, doing: str, pages: int, counts: Mapping[Count, int]) -> None: ...


def no_progress(doing: str, pages: int, counts: Mapping[Count, int]) -> None:
    """Show nothing: cron, pipes and -q."""


class Poller:
    def __init__(
        self,
        config: Config,
        *,
        dry_run: bool = False,
        only: tuple[str, ...] = (),
        since: datetime | None = None,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        x3: X3Client | None = None,
        senders: Mapping[str, Sender] | None = None,
        progress: Progress = no_progress,
    ) -> None:
        """`x3` and `senders` default to the real clients; tests pass fakes behind the seams."""
        self.config, self.dry_run, self.since, self.clock = config, dry_run, since, clock
        self.sources = [s for s in config.used_sources() if not only or s.name in only]
        reads: dict[str, set[str]] = {}  # per source: the fields its rules read
        for rule in config.rules:
            reads.setdefault(rule.source, set()).update(rule.names())
        self._fields = {
            name: fields_for(config.sources[name], used) for name, used in reads.items()
        }
        self._needed = {  # what X3's rows must carry: checked on each page's first row
            s.name: tuple(dict.fromkeys(code for code, _, _ in needed(s, config.rules)))
            for s in self.sources
        }
        session = make_session()
        retrier = Retrier(config.retry, sleep=sleep)
        self.x3 = x3 or make_client(config.x3, session, retrier, self._needed)
        self.recipients = Recipients(config, PartnerDirectory(self.x3, config.x3.partners))
        self.senders = (
            dict(senders) if senders is not None else make_senders(config, session, retrier)
        )
        self.sleep = sleep
        self.report = RunReport(new_run_id(clock()))
        self._x3_now: datetime | None = None
        self._replay_of: str | None = None  # set while replaying: audit says what was retried
        self.progress, self.pages, self._doing = progress, 0, "starting"

    def run(self) -> RunReport:
        if self.dry_run:
            sink = self._dry_run()
            self._decide_all()
            self.report.decided = sink.decided
            return self.report
        return self._opened("poll", self._poll_and_send)

    def replay(self, wanted: Callable[[Notification], bool], include_permanent: bool) -> RunReport:
        """Retry failed notifications now; nothing with a provider id is ever sent again."""
        if self.dry_run:
            sink = self._dry_run()
            replayable = self.outbox.replayable(include_permanent)
            self.report.decided = [sink.held(n) for n in replayable if wanted(n)]
            return self.report
        return self._opened("replay", lambda: self._replay(wanted, include_permanent))

    def _dry_run(self) -> DryRun:
        self.outbox = Outbox(self.config.state_dir, readonly=True)
        sink = DryRun(self.config, self.outbox, self.report.counts, self.clock)
        self.sink: Sink = sink
        return sink

    def _opened(self, command: str, body: Callable[[], None]) -> RunReport:
        report = self.report
        sources = [s.name for s in self.sources]
        with opened(self.config, report, self.clock, command=command, sources=sources) as run:
            self.outbox, self.audit = run.outbox, run.audit
            self.sink = Applied(run.outbox, run.audit, self._audit, report.counts, self.clock)
            body()
        return report

    def _poll_and_send(self) -> None:
        self._decide_all()
        self._doing = "sending"
        self.dispatcher().send_due()

    def dispatcher(self) -> Dispatcher:
        return Dispatcher(
            self.config,
            self.outbox,
            self._audit,
            self.report.counts,
            self.senders,
            self.clock,
            self.sleep,
        )

    # -- deciding -------------------------------------------------------------------------

    def _decide_all(self) -> None:
        watermarks = Watermarks(self.config.state_dir)
        check_state(
            self.config.state_dir,
            self.outbox,
            watermarks,
            [] if self.since else self._watermarked(),  # --since: history on purpose
            self.config.x3.lookback,
            self.report.run_id,
        )
        for source in self.sources:
            self._doing = f"reading {source.name}"
            rules = [r for r in self.config.rules if r.source == source.name]
            change_rules = [r for r in rules if r.due is None]
            if change_rules:
                self._poll_changes(source, change_rules, watermarks)
            for rule in rules:
                if rule.due is not None:
                    self._poll_due(source, rule)
            self.report.reads[source.name] = time.time()

    def _watermarked(self) -> list[Source]:
        """The sources read by change (due-date rules read what is due, with no watermark)."""
        changed = {r.source for r in self.config.rules if r.due is None}
        return [s for s in self.sources if s.name in changed]

    def x3_now(self) -> datetime:
        """X3's clock, read once per run: it bounds the change window (never the cron host's)."""
        if self._x3_now is None:
            self._x3_now = self.x3.server_time(self.sources[0])
        return self._x3_now

    def _poll_changes(self, source: Source, rules: list[Rule], watermarks: Watermarks) -> None:
        lookback = timedelta(seconds=self.config.x3.lookback)
        hi = self.x3_now() - timedelta(seconds=self.config.x3.settle)
        mark = watermarks.get(source.name)
        watching = watermarks.since(source.name)  # what was created before is history
        since = parse_stamp(watching) if watching else None
        baseline = self.since is None and mark is None  # first run: starts from now
        if self.since is not None:
            lo = self.since
        else:
            lo = (parse_stamp(mark) if mark else hi) - lookback
        newest: datetime | None = None
        rereading = self.since is not None  # history on purpose: decide again, ids dedupe
        for page in self._pages(source, self.x3.changes(source, lo, hi)):
            records = [r for r in page if not self._from_the_future(r, hi)]
            fresh = [
                r
                for r in records
                if rereading or not self.outbox.is_seen(source.name, r.key, r.stamp)
            ]
            notes = [] if baseline else [n for r in fresh for n in self._decide(rules, r, since)]
            seen = [(source.name, r.key, r.stamp) for r in fresh]
            self.sink.store(seen, notes, dupes=not rereading)
            for r in records:
                stamp = parse_stamp(r.stamp)
                newest = stamp if newest is None or stamp > newest else newest
        moved = stamp_literal(newest or hi) if newest is not None or baseline else None
        self.sink.advance(watermarks, source, moved, stamp_literal(lo))

    def _poll_due(self, source: Source, rule: Rule) -> None:
        assert rule.due is not None
        today = self.x3_now().date()
        f = source.field_by_name(rule.due.field)
        code = f.code if f else rule.due.field
        first, last = rule.due.window(today)
        for records in self._pages(source, self.x3.due(source, code, first, last)):
            notes = [n for r in records if not source.is_closed(r) for n in self._decide([rule], r)]
            self.sink.store([], notes, dupes=False)

    def _pages(self, source: Source, pages: Iterator[Page]) -> Iterator[list[Record]]:
        fields = self._fields[source.name]
        created = reads_created(source, self.config.rules)
        for page in pages:
            if page.resources:
                _check_exposed(source, self._needed[source.name], page.resources[0])
            records = []
            for raw in page.resources:
                try:
                    records.append(decode(source, raw, fields, created=created))
                except Undecodable as exc:
                    self._reject(source, exc)
            self.report.counts["records"] += len(records)
            self.pages += 1
            yield records
            self.progress(self._doing, self.pages, self.report.counts)  # its records decided

    def _from_the_future(self, record: Record, hi: datetime) -> bool:
        """A change stamp past this run's window (X3's clock) cannot be a real change: it is
        rejected, and never moves the watermark (one such stamp would stop the source)."""
        if parse_stamp(record.stamp) < hi:
            return False
        problem = f"its change stamp {record.stamp} is after X3's clock ({stamp_literal(hi)})"
        self._reject(
            record.source,
            Undecodable(record.key, record.source.timestamp, record.stamp, problem),
        )
        return True

    def _reject(self, source: Source, exc: Undecodable) -> None:
        """A record X3 sent that cannot be read costs that record, not the source."""
        self.report.counts["rejected"] += 1
        self.sink.reject(source, exc)

    def _decide(
        self, rules: list[Rule], record: Record, since: datetime | None = None
    ) -> list[Notification]:
        """What `record` calls for (created since `since`, for `on: created` rules); its
        addresses are read from X3 only for the rules it fires."""
        fired = matching(rules, record, self.x3_now().date(), since)
        if not fired:  # most records changed for another reason: nothing else to work out
            return []
        partner, now = self.recipients.partner_key(record), self.clock()
        return [
            n
            for rule in fired
            for n in decide(
                rule,
                record,
                self.recipients.of(rule, record),
                now,
                partner=partner,
                languages=self.config.languages,
            )
        ]

    def _replay(self, wanted: Callable[[Notification], bool], include_permanent: bool) -> None:
        for n in self.outbox.replayable(include_permanent):
            if not wanted(n):
                continue
            self._replay_of = n.id
            again = self._replacements(n) if n.status == "failed" else [n]
            for m in again:
                self.outbox.requeue(m, iso_ms(self.clock()))
            self.dispatcher().send([replace(m, status="pending") for m in again])
        self._replay_of = None

    def _replacements(self, n: Notification) -> list[Notification]:
        """A permanent failure, decided again from X3 as it is now (a number fixed since)."""
        rule = next((r for r in self.config.rules if r.name == n.rule), None)
        source = self.config.sources.get(n.source)
        raw = (
            self.x3.details(source.x3_class, n.record, source.representation)
            if rule and source
            else None
        )
        if rule is None or source is None or raw is None:
            return [n]  # cannot re-read it: retry as it was
        record = decode(source, stamped(source, raw))
        fresh = [m for m in self._decide([rule], record) if m.status == "pending"]
        if not fresh or any(m.id == n.id for m in fresh):
            return [n]  # same recipient (or none valid yet): retry this one
        self.outbox.mark_skipped(n, "replaced", iso_ms(self.clock()))
        added = self.outbox.add([], fresh, iso_ms(self.clock()))
        for m in added:
            self._audit("notification.queued", m)
        return added

    def _audit(self, event: Event, n: Notification, **extra: Any) -> None:
        if self._replay_of:
            extra["replay_of"] = self._replay_of
        self.audit.write(event, **audit_fields(n, event, **extra))
        self.progress(self._doing, self.pages, self.report.counts)


def _check_exposed(source: Source, codes: tuple[str, ...], row: dict[str, Any]) -> None:
    """A field the rules read that X3's rows do not carry at all is a setup mistake: say
    so (exit 78) rather than decide on missing values."""
    for code in codes:
        if code not in row:
            raise not_exposed(source, code)
