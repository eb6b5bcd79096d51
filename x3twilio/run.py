"""Opening a run: poll, replay and ingest each hold their lock, open the outbox and the audit
trail, and bracket their work with run.started and run.finished, here and only here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from x3twilio.audit import AuditLog, log_line
from x3twilio.config import Config
from x3twilio.errors import ExitCode, RemoteError
from x3twilio.model import Counts
from x3twilio.outbox import Outbox
from x3twilio.state import LOCK, run_lock


@dataclass(frozen=True)
class Run:
    outbox: Outbox
    audit: AuditLog


class Report(Protocol):
    """What a run reports: poll's and replay's RunReport, ingest's IngestReport."""

    run_id: str
    counts: Counts

    @property
    def exit_code(self) -> ExitCode: ...


@contextmanager
def opened(
    config: Config,
    report: Report,
    clock: Callable[[], datetime],
    *,
    lock: str = LOCK,
    **started: Any,
) -> Iterator[Run]:
    """Hold `lock` for the run and give it the outbox and the audit trail. run.finished tells
    the report's counts and exit code; a remote failure that ends the run early is told as
    its error."""
    with run_lock(config.state_dir, name=lock):
        outbox = Outbox(config.state_dir)
        mirror = log_line if config.monitoring.json_logs else None
        audit = AuditLog(config.state_dir, report.run_id, clock, mirror=mirror)
        try:
            audit.write("run.started", **started)
            try:
                yield Run(outbox, audit)
            except RemoteError as exc:
                counts = dict(report.counts)
                audit.write("run.finished", counts=counts, error=str(exc), exit_code=exc.exit_code)
                raise
            counts = dict(report.counts)
            audit.write("run.finished", counts=counts, error=None, exit_code=report.exit_code)
        finally:
            audit.close()
            outbox.close()
