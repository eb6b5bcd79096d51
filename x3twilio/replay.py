"""`replay`: retry what failed — notifications through the poller, inbound items through ingest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from x3twilio.audit import iso_ms
from x3twilio.channel import Sender
from x3twilio.config import Config
from x3twilio.errors import ExitCode
from x3twilio.ingest import Ingester, IngestReport
from x3twilio.model import Notification
from x3twilio.pipeline import Poller, RunReport
from x3twilio.spool import Spool, Spooled
from x3twilio.x3.base import X3Client

Window = tuple[datetime | None, datetime | None]


@dataclass
class ReplayOutcome:
    notifications: RunReport
    inbound: list[Spooled] = field(default_factory=list)
    ingest: IngestReport | None = None

    @property
    def exit_code(self) -> ExitCode:
        failed = self.notifications.exit_code or (self.ingest and self.ingest.exit_code)
        return ExitCode.PARTIAL if failed else ExitCode.OK


def replay(
    config: Config,
    window: Window,
    rule: str | None,
    ids: tuple[str, ...],
    include_permanent: bool,
    dry_run: bool,
    *,
    x3: X3Client | None = None,
    senders: Mapping[str, Sender] | None = None,
) -> ReplayOutcome:
    """`x3` and `senders` default to the real clients; tests pass fakes."""
    since, until = (iso_ms(t) if t else None for t in window)

    def wanted(n: Notification) -> bool:
        return (
            (not ids or n.id in ids)
            and (rule is None or n.rule == rule)
            and (since is None or n.created >= since)
            and (until is None or n.created < until)
        )

    poller = Poller(config, dry_run=dry_run, x3=x3, senders=senders)
    outcome = ReplayOutcome(poller.replay(wanted, include_permanent))
    spool = Spool(config.state_dir)
    # Failed (X3 refused them) and quarantined items (unreadable, malformed, unknown route,
    # still failing after ingest's bounds): back to new/ with a fresh count and age; one
    # that still cannot be processed is quarantined again, with a new audit record.
    outcome.inbound = [
        item
        for item in spool.failed() + spool.quarantined()
        if rule is None and _inbound_wanted(item, ids, since, until)
    ]
    if outcome.inbound and not dry_run:
        for item in outcome.inbound:
            spool.requeue(item)
        replaying = {i.base for i in outcome.inbound}
        outcome.ingest = Ingester(config, replaying=replaying, x3=x3).run()
    return outcome


def _inbound_wanted(
    item: Spooled, ids: tuple[str, ...], since: str | None, until: str | None
) -> bool:
    """By sid (or the spooled file's name, for an item without one) and by arrival time
    (the file's time when the payload does not say)."""
    sid = item.inbound.sid if item.inbound else ""
    if item.inbound:
        received = item.inbound.received
    else:
        received = iso_ms(datetime.fromtimestamp(item.mtime, UTC))
    return (
        (not ids or sid in ids or item.name in ids or item.base in ids)
        and (since is None or received >= since)
        and (until is None or received < until)
    )
