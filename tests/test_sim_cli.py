"""`x3twilio sim` driven by hand, as an operator would: every command a real subprocess.

The simulators run in one background process (`sim --write-config`), the shim in another
(`serve`), and the subcommands (`sim approve`, `pay`, `reply`, `voicemail`) reach them over
HTTP, found from the written configuration alone.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

READY = "Ctrl-C stops."


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("X3TWILIO")}
    return subprocess.run(
        [sys.executable, "-m", "x3twilio", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )


@dataclass
class Sim:
    """One running `x3twilio sim` process and the configuration it wrote."""

    process: subprocess.Popen[str]
    config_path: Path
    stderr_path: Path
    printed: list[str]

    @property
    def config(self) -> dict[str, Any]:
        data: dict[str, Any] = yaml.safe_load(self.config_path.read_text("utf-8"))
        return data

    def run(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        result = cli("--config", str(self.config_path), *args, cwd=self.config_path.parent)
        assert result.returncode == expect, (
            f"{args}: exit {result.returncode}, expected {expect}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        return result

    def get(self, service: str, route: str) -> Any:
        base = {
            "x3": self.config["x3"]["url"],
            "twilio": self.config["twilio"]["api_url"],
            "sendgrid": self.config["sendgrid"]["api_url"],
        }[service]
        return requests.get(f"{base}/_sim/{route}", timeout=5).json()

    def stderr(self) -> str:
        return self.stderr_path.read_text("utf-8")


class Processes:
    """Background processes of one test, all killed when it ends, whatever happened."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.running: list[subprocess.Popen[str]] = []

    def start(self, *args: str, name: str) -> tuple[subprocess.Popen[str], Path]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("X3TWILIO")}
        err = self.tmp_path / f"{name}.err"
        process = subprocess.Popen(
            [sys.executable, "-m", "x3twilio", *args],
            stdout=subprocess.PIPE,
            stderr=err.open("w"),
            text=True,
            cwd=self.tmp_path,
            env=env,
        )
        self.running.append(process)
        return process, err

    def sim(self, name: str, public_url: str) -> Sim:
        config = self.tmp_path / name / "sim.yaml"
        config.parent.mkdir()
        process, err = self.start(
            "sim", "--write-config", str(config), "--public-url", public_url, name=name
        )
        assert process.stdout is not None
        printed = []
        while READY not in printed:  # the line after the configuration is written
            line = process.stdout.readline()
            assert line, f"sim exited {process.wait()}: {err.read_text()}"
            printed.append(line.strip())
        return Sim(process, config, err, printed)

    def shim(self, sim: Sim, port: int) -> subprocess.Popen[str]:
        process, err = self.start(
            "--config", str(sim.config_path), "serve", "--port", str(port), name="shim"
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                    return process
            except requests.ConnectionError:
                pass
            assert process.poll() is None, f"serve exited: {err.read_text()}"
            assert time.monotonic() < deadline, "the shim did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self.running:
            process.kill()
            process.wait(timeout=10)
            if process.stdout:
                process.stdout.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def unapproved_order(sim: Sim, supplier: str = "FR001") -> str:
    orders = sim.get("x3", "records/PORDER")
    return str(next(o for o in orders if o["BPSNUM"] == supplier and o["APPFLG"] == 1)["POHNUM"])


def audit(sim: Sim, *args: str) -> list[dict[str, Any]]:
    out = sim.run("audit", "--format", "json", *args).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_an_operator_should_approve_pay_and_reply_by_hand(processes: Processes) -> None:
    port = free_port()
    sim = processes.sim("one", f"http://127.0.0.1:{port}")
    processes.shim(sim, port)
    sim.run("poll")  # the first poll starts from now
    before = len(sim.get("twilio", "messages"))

    order = unapproved_order(sim)
    approved = sim.run("sim", "approve", order)
    assert f"approved {order} of FR001" in approved.stdout
    sim.run("poll")
    texted = [m for m in sim.get("twilio", "messages")[before:] if order in m["body"]]
    assert len(texted) == 1 and "is approved" in texted[0]["body"]

    replied = sim.run("sim", "reply", f"{order} bien reçu, livraison lundi")
    assert texted[0]["to"] in replied.stdout  # by default from whom we last texted
    sim.run("ingest")
    logged = audit(sim, "--event", "inbound.logged")
    assert [(r["from"], r["matched"], r["reference"]) for r in logged] == [
        (texted[0]["to"], "BPSUPPLIER:FR001", order)
    ]
    notes = sim.get("x3", "records/YSMSLOG")
    assert [(n["BPNUM"], n["DOCNUM"]) for n in notes] == [("FR001", order)]

    paid = sim.run("sim", "pay", "--supplier", "FR001", "--amount", "120.50")
    assert "posted payment PAYSIM0001: 120.50 EUR to FR001" in paid.stdout
    sim.run("poll")
    bodies = [m["body"] for m in sim.get("twilio", "messages")]
    assert any("Payment PAYSIM0001 of 120.50 EUR" in body for body in bodies)
    mails = sim.get("sendgrid", "mails")
    assert [m["subject"] for m in mails] == ["Remittance advice PAYSIM0001"]

    sim.run("sim", "voicemail", "--from", "+447911123456", "The pallets ship Monday")
    sim.run("ingest")
    notes = sim.get("x3", "records/YSMSLOG")
    assert notes[-1]["BPNUM"] == "GB001" and "pallets ship Monday" in notes[-1]["TEXT"]
    assert "Traceback" not in sim.stderr()


def test_a_name_not_in_the_simulator_should_be_a_usage_error(processes: Processes) -> None:
    sim = processes.sim("one", "http://127.0.0.1:8080")

    missing = sim.run("sim", "approve", "PONOPE", expect=2)
    assert "no purchase order PONOPE in the X3 simulator" in missing.stderr
    stranger = sim.run("sim", "pay", "--supplier", "ZZ999", expect=2)
    assert "no supplier ZZ999 in the X3 simulator (it has FR001" in stranger.stderr
    nobody = sim.run("sim", "reply", "hello", expect=2)  # nothing was sent: whom from?
    assert "no SMS was sent yet" in nobody.stderr
    assert "Traceback" not in missing.stderr + stranger.stderr + nobody.stderr


def test_two_simulators_should_neither_share_ports_nor_credentials(processes: Processes) -> None:
    port = free_port()
    one = processes.sim("one", f"http://127.0.0.1:{port}")
    two = processes.sim("two", f"http://127.0.0.1:{port}")  # the same shim address
    processes.shim(one, port)

    a, b = one.config, two.config
    for path in (("x3", "url"), ("twilio", "api_url"), ("sendgrid", "api_url")):
        assert a[path[0]][path[1]] != b[path[0]][path[1]]
    for path in (("x3", "password"), ("twilio", "auth_token"), ("sendgrid", "api_key")):
        assert a[path[0]][path[1]] != b[path[0]][path[1]]
    assert any(a["x3"]["url"] in line for line in one.printed)  # the ports it picked
    assert stat.S_IMODE(one.config_path.stat().st_mode) == 0o600  # it holds their secrets
    assert any(b["twilio"]["api_url"] in line for line in two.printed)

    # The shim serving the first refuses what the second signs: no cross-talk.
    crossed = two.run("sim", "reply", "--from", "+33612345678", "hello", expect=69)
    assert "answered 403: it refused the simulator's signature" in crossed.stderr
    one.run("ingest")
    assert audit(one, "--event", "inbound.logged") == []


def test_replies_to_a_shim_that_is_down_should_say_so_in_one_line(processes: Processes) -> None:
    port = free_port()  # nothing listens there
    sim = processes.sim("one", f"http://127.0.0.1:{port}")

    for command in ("reply", "voicemail"):
        result = sim.run("sim", command, "--from", "+33612345678", "hello", expect=69)
        route = "sms" if command == "reply" else "voice"
        assert result.stderr == (
            f"x3twilio: sim {command}: the shim at http://127.0.0.1:{port}/twilio/{route} is "
            f"not answering (connection refused): start it with `x3twilio --config "
            f"{sim.config_path} serve --port {port}`\n"
        )
    assert "Traceback" not in sim.stderr()


def test_status_callbacks_to_a_dead_shim_should_be_one_line_each(processes: Processes) -> None:
    port = free_port()
    sim = processes.sim("one", f"http://127.0.0.1:{port}")
    sim.run("poll")  # sends the reminders due; their callbacks find no shim
    sent = len(sim.get("twilio", "messages"))
    assert sent > 0

    deadline = time.monotonic() + 10
    while sim.stderr().count("\n") < 2 * sent and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = sim.stderr().splitlines()
    assert len(lines) == 2 * sent  # sent, then delivered, for each
    prefix = f"x3twilio sim: status callback to http://127.0.0.1:{port}/twilio/status"
    assert all(line.startswith(prefix) for line in lines), lines
    assert all(line.endswith(": connection refused") for line in lines), lines


def test_driving_a_simulator_that_is_not_running_should_say_so(processes: Processes) -> None:
    sim = processes.sim("one", "http://127.0.0.1:8080")
    sim.process.kill()
    sim.process.wait(timeout=10)

    result = sim.run("sim", "approve", "POFR0110113", expect=69)
    x3 = sim.config["x3"]["url"]
    assert result.stderr == (
        f"x3twilio: sim approve: the X3 simulator at {x3} is not answering (connection "
        "refused): start it with `x3twilio sim --write-config FILE`, and use that FILE\n"
    )


def test_a_pinned_port_in_use_should_be_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("sim", "--twilio-port", str(port), cwd=tmp_path)

    assert result.returncode == 69
    assert result.stderr == (
        f"x3twilio: sim: cannot listen on 127.0.0.1:{port} (Address already in use): leave "
        "--twilio-port out and the OS picks a free port\n"
    )
