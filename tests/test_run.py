"""Opening a run, in-process: its lock, and run.started/run.finished however it ends."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.test_plan import load
from tests.test_poll import ONLY_PO_APPROVED
from x3twilio.audit import read_records
from x3twilio.config import Config
from x3twilio.errors import ExitCode, LockHeld, X3Error
from x3twilio.pipeline import RunReport
from x3twilio.run import opened

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load(tmp_path, ONLY_PO_APPROVED)


def test_a_run_is_bracketed_by_started_and_finished_with_its_counts(config):
    report = RunReport("r-1")
    with opened(config, report, lambda: NOW, command="poll"):
        report.counts["failed"] += 1
    started, finished = read_records(config.state_dir)
    assert (started["event"], started["command"], started["run_id"]) == (
        "run.started",
        "poll",
        "r-1",
    )
    assert (finished["counts"], finished["exit_code"]) == ({"failed": 1}, ExitCode.PARTIAL)


def test_a_remote_failure_ends_the_run_with_its_error_and_frees_the_lock(config):
    run = opened(config, RunReport("r-1"), lambda: NOW, command="poll")
    with pytest.raises(X3Error), run:
        raise X3Error("503 Service Unavailable", status=503, transient=True)
    finished = list(read_records(config.state_dir))[-1]
    assert finished["error"] == "X3: 503 Service Unavailable"
    assert finished["exit_code"] == ExitCode.UNAVAILABLE
    with opened(config, RunReport("r-2"), lambda: NOW, command="poll"):
        pass  # the lock was let go


def test_a_second_run_on_the_same_lock_is_refused_and_another_lock_is_not(config):
    with opened(config, RunReport("r-1"), lambda: NOW, command="poll"):
        with pytest.raises(LockHeld), opened(config, RunReport("r-2"), lambda: NOW):
            pass
        with opened(config, RunReport("r-3"), lambda: NOW, lock="ingest.lock"):
            pass
