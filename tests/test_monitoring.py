"""Cron operation: Prometheus textfile metrics and the heartbeat pings."""

from __future__ import annotations

import json
import re

from tests.test_poll import HISTORY, ONLY_PO_APPROVED
from x3twilio.simulators import serve


class Heartbeat:
    """A stand-in healthchecks.io: records the paths it is pinged on."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, environ, start_response):
        self.paths.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"OK"]


def test_a_poll_pings_start_and_exit_code_and_writes_metrics(env, tmp_path):
    beat = Heartbeat()
    with serve(beat) as server:
        env.configure(
            monitoring={"heartbeat_url": f"{server.url}/ping/abc", "metrics_file": "x3twilio.prom"}
        )
        env.run("poll")
        env.configure(
            monitoring={"heartbeat_url": f"{server.url}/ping/abc", "metrics_file": "x3twilio.prom"},
            x3={"url": "http://127.0.0.1:9"},
            retry={"attempts": 1},
        )  # X3 down
        env.run("poll", expect=69)
    assert beat.paths == ["/ping/abc/start", "/ping/abc/0", "/ping/abc/start", "/ping/abc/69"]
    metrics = (env.dir / "x3twilio.prom").read_text()
    assert re.search(
        r'^x3twilio_last_success_timestamp_seconds\{command="poll"\} \d+', metrics, re.M
    )
    assert 'x3twilio_run_exit_code{command="poll"} 69' in metrics
    assert "x3twilio_outbox_backlog 0" in metrics
    assert re.search(
        r'^x3twilio_watermark_lag_seconds\{source="purchase_orders"\} \d+$', metrics, re.M
    )


def test_an_unreachable_heartbeat_never_fails_the_run(env):
    env.configure(monitoring={"heartbeat_url": "http://127.0.0.1:9/nothing"})
    env.run("-q", "poll")


def test_json_logs_mirror_the_audit_on_stderr_with_numbers_masked(env):
    env.configure(rules=ONLY_PO_APPROVED, monitoring={"json_logs": True})
    *lines, failure = env.run("poll", "--since", HISTORY, expect=1).stderr.splitlines()
    assert failure.startswith("x3twilio: poll: 1 notification(s) failed; see `x3twilio ")
    events = [json.loads(line)["event"] for line in lines]
    assert events[0] == "run.started" and events[-1] == "run.finished"
    assert "notification.sent" in events
    assert "+33698765432" not in "\n".join(lines) and "+336…5432" in "\n".join(lines)


def test_a_run_that_finds_the_lock_held_pings_no_end_and_leaves_the_metrics_alone(env):
    from x3twilio.state import run_lock

    beat = Heartbeat()
    with serve(beat) as server:
        env.configure(
            monitoring={"heartbeat_url": f"{server.url}/ping/abc", "metrics_file": "x3twilio.prom"}
        )
        env.run("poll")
        before = (env.dir / "x3twilio.prom").read_text()
        with run_lock(env.state_dir):
            assert env.run("-q", "poll", expect=75).stderr == ""
        with run_lock(env.state_dir, name="ingest.lock"):
            assert env.run("-q", "ingest", expect=75).stderr == ""
    # a plain URL is poll's check alone: ingest's success must never mask poll's failure
    assert beat.paths == ["/ping/abc/start", "/ping/abc/0", "/ping/abc/start"]
    assert (env.dir / "x3twilio.prom").read_text() == before  # still the run that did the work


def test_each_command_has_its_own_heartbeat_and_keeps_its_series_in_the_textfile(env, shim):
    beat = Heartbeat()
    with serve(beat) as server:
        env.configure(
            rules=ONLY_PO_APPROVED,
            monitoring={"heartbeat_url": f"{server.url}/{{command}}", "metrics_file": "m.prom"},
        )
        env.run("poll", "--since", HISTORY, expect=1)  # US005's number fails: exit 1
        env.twilio.send_incoming_sms(f"{shim.url}/twilio/sms", "+33612345678", "ok PO")
        env.run("ingest")
        assert beat.paths == ["/poll/start", "/poll/1", "/ingest/start", "/ingest/0"]
        metrics = (env.dir / "m.prom").read_text()
        assert 'x3twilio_run_exit_code{command="poll"} 1' in metrics  # kept by ingest's write
        assert 'x3twilio_run_exit_code{command="ingest"} 0' in metrics
        successes = re.findall(
            r'^x3twilio_last_success_timestamp_seconds\{command="(\w+)"', metrics, re.M
        )
        assert successes == ["ingest"]  # poll exited 1: not a success
        assert re.search(
            r'^x3twilio_last_run_timestamp_seconds\{command="poll"\} \d', metrics, re.M
        )
        reads = re.findall(
            r'^x3twilio_last_read_timestamp_seconds\{source="(\w+)"\}', metrics, re.M
        )
        assert "purchase_orders" in reads
        assert (env.dir / "m.prom").stat().st_mode & 0o777 == 0o644  # node_exporter reads it

        env.configure(
            rules=ONLY_PO_APPROVED,
            monitoring={
                "heartbeat_url": {"ingest": f"{server.url}/only-ingest"},
                "metrics_file": "m.prom",
                "metrics_mode": "0640",
            },
        )
        env.run("poll")
        env.run("ingest")
        assert beat.paths[4:] == ["/only-ingest/start", "/only-ingest/0"]
        assert (env.dir / "m.prom").stat().st_mode & 0o777 == 0o640
