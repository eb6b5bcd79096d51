"""Cron-native monitoring: a heartbeat URL and Prometheus textfile metrics per run."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from x3twilio.config import Config
from x3twilio.decoding import parse_stamp
from x3twilio.errors import ExitCode, LockHeld, X3TwilioError
from x3twilio.outbox import Outbox
from x3twilio.state import Watermarks, write_atomic

RUNS = "runs.json"  # per command: its last run and last success; per source: its last read


@dataclass
class Run:
    """What a monitored run reports when it ends."""

    command: str
    started: float = field(default_factory=time.time)
    exit_code: int = ExitCode.INTERNAL  # until the run says otherwise
    counts: dict[str, int] = field(default_factory=dict)
    reads: dict[str, float] = field(default_factory=dict)  # source -> when it was read whole


@contextlib.contextmanager
def monitored(config: Config, command: str) -> Iterator[Run]:
    """Ping the command's heartbeat at start and end (with the exit code); write metrics.

    A run that finds another holding the lock did nothing and reports nothing: the run that
    holds it pings the end and writes the metrics (a /75 would page someone for no failure).
    """
    run = Run(command)
    ping(config, command, "/start")
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
    ping(config, run.command, f"/{int(run.exit_code)}")
    with contextlib.suppress(OSError, ValueError, X3TwilioError):
        history = record(config.state_dir, run, time.time())
        if config.monitoring.metrics_file:
            write_metrics(config, history)


def ping(config: Config, command: str, suffix: str) -> None:
    """healthchecks.io convention: URL/start, then URL/<exit code>; never fails the run."""
    url = config.monitoring.heartbeat(command)
    if not url:
        return
    import requests

    with contextlib.suppress(requests.RequestException):
        requests.get(url.rstrip("/") + suffix, timeout=5)


def record(state_dir: Path, run: Run, now: float) -> dict[str, Any]:
    """Add this run to what is known of every command's and source's last; saved atomically.
    Only exit 0 is a success: a run that exited 1 left failures for a person."""
    history = _history(state_dir)
    last = history["commands"].setdefault(run.command, {})
    last.update(finished=now, duration=now - run.started, exit_code=int(run.exit_code))
    if run.exit_code == ExitCode.OK:
        last["success"] = now
    history["reads"].update(run.reads)
    write_atomic(state_dir / RUNS, json.dumps(history, sort_keys=True).encode())
    return history


def _history(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / RUNS).read_bytes())
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        data = {}
    commands, reads = data.get("commands"), data.get("reads")
    return {
        "commands": commands if isinstance(commands, dict) else {},
        "reads": reads if isinstance(reads, dict) else {},
    }


# name, help, the key of each command's last run it reads
_COMMAND_SERIES = (
    ("last_success_timestamp_seconds", "End of the command's last run that exited 0.", "success"),
    ("last_run_timestamp_seconds", "End of the command's last run, whatever its exit.", "finished"),
    ("run_duration_seconds", "Duration of the command's last run.", "duration"),
    ("run_exit_code", "Exit code of the command's last run.", "exit_code"),
)


def write_metrics(config: Config, history: dict[str, Any]) -> None:
    """Every command's series and the state's gauges, in one file replaced whole."""
    lines = []
    commands = sorted(history["commands"].items())
    for name, text, key in _COMMAND_SERIES:
        lines += [f"# HELP x3twilio_{name} {text}", f"# TYPE x3twilio_{name} gauge"]
        lines += [
            f'x3twilio_{name}{{command="{c}"}} {_number(last[key])}'
            for c, last in commands
            if isinstance(last.get(key), int | float)
        ]
    lines += [
        "# HELP x3twilio_last_read_timestamp_seconds When each source was last read whole.",
        "# TYPE x3twilio_last_read_timestamp_seconds gauge",
        *(
            f'x3twilio_last_read_timestamp_seconds{{source="{s}"}} {_number(t)}'
            for s, t in sorted(history["reads"].items())
            if isinstance(t, int | float)
        ),
        *_outbox_lines(config),
        *_lag_lines(config),
    ]
    path = Path(config.monitoring.metrics_file or "")
    write_atomic(path, ("\n".join(lines) + "\n").encode(), config.monitoring.metrics_mode)


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.3f}"


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
