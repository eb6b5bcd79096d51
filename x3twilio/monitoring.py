"""Cron-native monitoring: a heartbeat URL and Prometheus textfile metrics per run."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from x3twilio.config import Config
from x3twilio.errors import ExitCode, LockHeld, X3TwilioError
from x3twilio.outbox import Outbox
from x3twilio.sources import parse_stamp
from x3twilio.state import Watermarks, write_atomic

LAST_SUCCESS = "last_success.json"


@dataclass
class Run:
    """What a monitored run reports when it ends."""

    command: str
    started: float = field(default_factory=time.time)
    exit_code: int = ExitCode.INTERNAL  # until the run says otherwise
    counts: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def monitored(config: Config, command: str) -> Iterator[Run]:
    """Ping the heartbeat at start and end (with the exit code); write metrics at the end.

    A run that finds another holding the lock did nothing and reports nothing: the run that
    holds it pings the end and writes the metrics (a /75 would page someone for no failure).
    """
    run = Run(command)
    ping(config, "/start")
    try:
        yield run
    except LockHeld:
        raise
    except X3TwilioError as exc:
        run.exit_code = exc.exit_code
        _report(config, run)
        raise
    except BaseException:
        _report(config, run)  # a bug (70) or an interruption
        raise
    _report(config, run)


def _report(config: Config, run: Run) -> None:
    ping(config, f"/{int(run.exit_code)}")
    if config.monitoring.metrics_file:
        with contextlib.suppress(OSError, ValueError, X3TwilioError):
            write_metrics(config, run)


def ping(config: Config, suffix: str) -> None:
    """healthchecks.io convention: URL/start, then URL/<exit code>; never fails the run."""
    url = config.monitoring.heartbeat_url
    if not url:
        return
    import requests

    with contextlib.suppress(requests.RequestException):
        requests.get(url.rstrip("/") + suffix, timeout=5)


def write_metrics(config: Config, run: Run) -> None:
    path = Path(config.monitoring.metrics_file or "")
    now = time.time()
    successes = _last_successes(config.state_dir)
    if run.exit_code in (ExitCode.OK, ExitCode.PARTIAL):
        successes[run.command] = now
        write_atomic(config.state_dir / LAST_SUCCESS, json.dumps(successes).encode())
    lines = [
        "# HELP x3twilio_last_success_timestamp_seconds End of the last run that finished.",
        "# TYPE x3twilio_last_success_timestamp_seconds gauge",
        *(
            f'x3twilio_last_success_timestamp_seconds{{command="{c}"}} {t:.3f}'
            for c, t in sorted(successes.items())
        ),
        "# HELP x3twilio_run_duration_seconds Duration of the last run.",
        "# TYPE x3twilio_run_duration_seconds gauge",
        f'x3twilio_run_duration_seconds{{command="{run.command}"}} {now - run.started:.3f}',
        "# HELP x3twilio_run_exit_code Exit code of the last run.",
        "# TYPE x3twilio_run_exit_code gauge",
        f'x3twilio_run_exit_code{{command="{run.command}"}} {int(run.exit_code)}',
        *_outbox_lines(config),
        *_lag_lines(config),
    ]
    write_atomic(path, ("\n".join(lines) + "\n").encode())


def _last_successes(state_dir: Path) -> dict[str, float]:
    try:
        data = json.loads((state_dir / LAST_SUCCESS).read_bytes())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _outbox_lines(config: Config) -> list[str]:
    outbox = Outbox(config.state_dir, readonly=True)
    try:
        counts = outbox.counts()
    finally:
        outbox.close()
    backlog = counts.get("pending", 0) + counts.get("sending", 0)
    return [
        "# HELP x3twilio_outbox_backlog Notifications waiting to be sent.",
        "# TYPE x3twilio_outbox_backlog gauge",
        f"x3twilio_outbox_backlog {backlog}",
        "# HELP x3twilio_notifications Notifications in the outbox by status.",
        "# TYPE x3twilio_notifications gauge",
        *(f'x3twilio_notifications{{status="{s}"}} {n}' for s, n in sorted(counts.items())),
    ]


def _lag_lines(config: Config) -> list[str]:
    now = datetime.now(UTC)
    marks = Watermarks(config.state_dir).values
    return [
        "# HELP x3twilio_watermark_lag_seconds Age of the newest X3 change processed.",
        "# TYPE x3twilio_watermark_lag_seconds gauge",
        *(
            f'x3twilio_watermark_lag_seconds{{source="{s}"}} '
            f"{(now - parse_stamp(mark)).total_seconds():.0f}"
            for s, mark in sorted(marks.items())
        ),
    ]
