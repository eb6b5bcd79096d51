"""Fault injection: real `x3twilio poll` processes killed and starved while the simulators
misbehave. Whatever happens, every expected SMS reaches Twilio exactly once and is audited.
"""

from __future__ import annotations

import json
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Env
from tests.test_poll import HISTORY, ONLY_PO_APPROVED
from x3twilio.simulators import serve
from x3twilio.simulators.twilio import TwilioSimulator
from x3twilio.simulators.x3 import X3Simulator

pytestmark = pytest.mark.faults
MESSAGES = "Messages.json"
UNSENDABLE = {"FR009", "US005"}  # an unparseable phone; Twilio's magic invalid number


@pytest.fixture
def trial(tmp_path: Path) -> Iterator[Env]:
    """A fresh X3 with 30 more approved orders, a fresh Twilio, both a little slow."""
    x3, twilio = X3Simulator(), TwilioSimulator()
    template = next(p for p in x3.records("PORDER") if p["BPSNUM"] == "FR001")
    x3.add_records(
        "PORDER",
        [{**template, "POHNUM": f"POBULK{i:03d}", "APPFLG": 3, "CLEFLG": False} for i in range(30)],
    )
    x3.latency_ms, twilio.latency_ms = 2, 15
    with serve(x3) as x3_server, serve(twilio) as twilio_server:
        env = Env(tmp_path, x3_server, twilio_server)
        env.configure(
            rules=ONLY_PO_APPROVED,
            retry={"attempts": 4, "initial": "0.05s", "max": "0.2s", "budget": "10s"},
            # The simulator lists a message the moment it takes it: a short settle is
            # enough here (the ambiguous-send tests keep the default and a late create).
            twilio={"settle": "2s"},
        )
        yield env


def expected_orders(env: Env) -> set[str]:
    return {
        p["POHNUM"]
        for p in env.x3.records("PORDER")
        if p["APPFLG"] == 3 and p["CLEFLG"] is False and p["BPSNUM"] not in UNSENDABLE
    }


def unfinished(env: Env) -> int:
    path = env.state_dir / "outbox.sqlite3"
    if not path.exists():
        return 1
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        query = "SELECT COUNT(*) FROM notifications WHERE status IN ('pending', 'sending')"
        return int(db.execute(query).fetchone()[0])


def start_poll(env: Env, **popen: object) -> subprocess.Popen[str]:
    """`x3twilio -q poll --since …` as cron would start it (the operator reads history)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "x3twilio",
            "--config",
            str(env.config_path),
            "-q",
            "poll",
            "--since",
            HISTORY,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def poll(env: Env, **popen: object) -> int:
    process = start_poll(env, **popen)
    _, err = process.communicate(timeout=120)
    assert "Traceback" not in err, err
    return process.returncode


def run_until_done(env: Env) -> None:
    """Normal runs, as cron would make them, until nothing is pending."""
    for _ in range(8):
        assert poll(env) in (0, 1, 69, 75)
        if unfinished(env) == 0:
            return
    raise AssertionError("notifications still pending after 8 runs")


def assert_exactly_once(env: Env) -> None:
    per_order = Counter(m["body"].split()[1] for m in env.twilio.messages)
    assert set(per_order) == expected_orders(env)
    duplicates = {order: n for order, n in per_order.items() if n > 1}
    assert duplicates == {}
    audited = {r["provider_id"] for r in env.audit() if r["event"] == "notification.sent"}
    assert {m["sid"] for m in env.twilio.messages} <= audited


@pytest.mark.parametrize("seed", range(30))
def test_sigkill_at_a_random_moment_loses_and_duplicates_nothing(trial, seed):
    delay = random.Random(seed).uniform(0.3, 1.5)
    process = start_poll(trial)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    run_until_done(trial)
    assert_exactly_once(trial)
    for path in (trial.state_dir / "audit").glob("*.jsonl"):  # every complete line parses
        for line in path.read_bytes().splitlines(keepends=True):
            if line.endswith(b"\n"):
                json.loads(line)


def test_429_bursts(trial):
    for skip in (0, 5, 12):
        trial.twilio.faults.add("429", match=MESSAGES, skip=skip, times=3)
    run_until_done(trial)
    assert_exactly_once(trial)


def test_twilio_500s(trial):
    for skip in (2, 9, 15):
        trial.twilio.faults.add("500", match=MESSAGES, skip=skip, times=2)
    run_until_done(trial)
    assert_exactly_once(trial)


def test_connection_resets_after_twilio_accepted_the_message(trial):
    for skip in (1, 6, 11, 20):
        trial.twilio.faults.add("reset", match="POST /2010-04-01/Accounts/", skip=skip, times=2)
    run_until_done(trial)
    assert_exactly_once(trial)
    assert len(trial.twilio.messages) == len(expected_orders(trial))


def test_x3_500s_and_timeouts_mid_pagination(trial):
    trial.configure(
        rules=ONLY_PO_APPROVED,
        x3={"page_size": 10, "timeout": "0.5s"},
        retry={"attempts": 2, "initial": "0.05s", "max": "0.1s"},
    )
    page = "PORDER?representation=PORDER.$query&count=10"
    trial.x3.faults.add("500", match=page, skip=2, times=0)
    assert poll(trial) == 69
    trial.x3.faults.clear()
    trial.x3.faults.add("timeout", match=page, skip=3, times=3, delay=1.0)
    run_until_done(trial)
    assert_exactly_once(trial)


def test_a_full_disk_is_a_clear_error_and_nothing_is_half_written(trial):
    def small_disk() -> None:  # files cannot grow past 128 KiB: the outbox fills up mid-run
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (128 * 1024, 128 * 1024))

    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "x3twilio",
            "--config",
            str(trial.config_path),
            "poll",
            "--since",
            HISTORY,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=small_disk,
    )
    assert process.returncode == 74, process.stderr  # local state cannot be written
    assert "Traceback" not in process.stderr
    assert "cannot write the outbox" in process.stderr and "disk full" in process.stderr
    run_until_done(trial)
    assert_exactly_once(trial)


def test_five_overlapping_polls(trial):
    processes = [start_poll(trial) for _ in range(5)]
    codes = sorted(p.wait(timeout=120) for p in processes)
    assert codes.count(75) >= 1 and all(c in (0, 1, 75) for c in codes)
    run_until_done(trial)
    assert_exactly_once(trial)
