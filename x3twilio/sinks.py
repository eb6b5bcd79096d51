"""Where a polling pass's decisions go: into the outbox and the audit trail, or, for a dry
run, into the report only. The pass itself is the same either way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from x3twilio.audit import AuditLog, iso_ms
from x3twilio.config import Config
from x3twilio.decoding import Undecodable
from x3twilio.model import Counts, Event, Notification, NotificationAudit
from x3twilio.outbox import Outbox
from x3twilio.screening import QUIET, quiet_hold
from x3twilio.segments import segment_info
from x3twilio.sources import Source
from x3twilio.state import Watermarks

Seen = tuple[str, str, str]  # (source, record key, change stamp)


class Sink(Protocol):
    def store(self, seen: Sequence[Seen], notes: Sequence[Notification], dupes: bool) -> None:
        """Keep the decisions about records `seen`; `dupes`: audit those already kept."""

    def reject(self, source: Source, exc: Undecodable) -> None:
        """Tell of a record X3 sent that cannot be read."""

    def advance(self, marks: Watermarks, source: Source, stamp: str | None, pruned: str) -> None:
        """Move `source`'s watermark to `stamp` (None: it stays) and forget what was seen
        before `pruned`."""


class Applied:
    """The real run: decisions go to the outbox, then the audit trail."""

    def __init__(
        self,
        outbox: Outbox,
        audit: AuditLog,
        notify: NotificationAudit,
        counts: Counts,
        clock: Callable[[], datetime],
    ) -> None:
        self.outbox, self.audit, self.notify, self.counts, self.clock = (
            outbox, audit, notify, counts, clock
        )  # fmt: skip

    def store(self, seen: Sequence[Seen], notes: Sequence[Notification], dupes: bool) -> None:
        added = self.outbox.add(list(seen), list(notes), iso_ms(self.clock()))
        for n in added:
            skipped = n.status == "skipped"
            event: Event = "notification.skipped" if skipped else "notification.queued"
            self.notify(event, n, reason=n.reason, **_segments(n))
            self.counts["skipped" if skipped else "queued"] += 1
        if dupes and len(added) < len(notes):
            new_ids = {n.id for n in added}
            for n in notes:
                if n.id not in new_ids:
                    self.notify("notification.skipped", n, status="skipped", reason="duplicate")
                    self.counts["duplicate"] += 1

    def reject(self, source: Source, exc: Undecodable) -> None:
        value = exc.value if isinstance(exc.value, str | int | float) else repr(exc.value)
        self.audit.write(
            "record.rejected",
            source=source.name,
            record=exc.key,
            field=exc.code,
            value=value,
            error=str(exc),
        )

    def advance(self, marks: Watermarks, source: Source, stamp: str | None, pruned: str) -> None:
        if stamp is not None:
            marks.save(source.name, stamp)
        self.outbox.prune_seen(source.name, pruned)


class DryRun:
    """A dry run: what would be queued is kept in `decided`, as the send would hold it."""

    def __init__(
        self, config: Config, outbox: Outbox, counts: Counts, clock: Callable[[], datetime]
    ) -> None:
        self.config, self.outbox, self.counts, self.clock = config, outbox, counts, clock
        self.decided: list[Notification] = []

    def store(self, seen: Sequence[Seen], notes: Sequence[Notification], dupes: bool) -> None:
        known = self.outbox.known([n.id for n in notes])
        new = [self.held(n) for n in notes if n.id not in known]
        self.decided.extend(new)
        self.counts["decided"] += len(new)

    def reject(self, source: Source, exc: Undecodable) -> None:
        pass  # counted by the pass; a dry run writes nothing

    def advance(self, marks: Watermarks, source: Source, stamp: str | None, pruned: str) -> None:
        pass

    def held(self, n: Notification) -> Notification:
        """The decision as the send would treat it: deferred by quiet hours, or not."""
        rule = next((r for r in self.config.rules if r.name == n.rule), None)
        held = quiet_hold(self.config, rule, n.to, self.clock()) if n.status != "skipped" else None
        if held is None:
            return n
        self.counts["deferred"] += 1
        return replace(n, reason=QUIET, not_before=iso_ms(held[0]))


def _segments(n: Notification) -> dict[str, Any]:
    """SMS only: how many segments the body costs, and in which encoding."""
    if n.channel != "sms":
        return {}
    info = segment_info(n.body)
    return {"segments": info.segments, "encoding": info.encoding}
