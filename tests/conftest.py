"""Fixtures: the simulators on loopback, a configuration pointing at them, the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from x3twilio.demo import sim_config, write_config
from x3twilio.simulators import RunningServer, serve
from x3twilio.simulators.twilio import TwilioSimulator
from x3twilio.simulators.x3 import X3Simulator


class SimClock:
    """X3's clock in the simulator: real UTC time plus an offset tests move forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def x3_clock() -> SimClock:
    return SimClock()


# X3 API variants a module can run over (see `env`): how the CLI reads X3, and the
# simulator switches of that variant. "rest-1/2": an older build sending Yes/No as 1/2.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "rest": ("rest", {}),
    "graphql": ("graphql", {"graphql": {"operations": ("smsLog", "payment")}}),
    "rest-1/2": ("rest", {"yes_no": "menu"}),
}


@pytest.fixture
def x3_server(request: pytest.FixtureRequest, x3_clock: SimClock) -> Iterator[RunningServer]:
    """The X3 simulator: a standard site, or a variant (the env parameter), or the switches
    of a test's `@pytest.mark.x3(...)` (renamed fields, custom representations...)."""
    callspec = getattr(request.node, "callspec", None)
    variant = callspec.params.get("env", "rest") if callspec else "rest"
    marker = request.node.get_closest_marker("x3")
    switches = {**VARIANTS[variant][1], **(marker.kwargs if marker else {})}
    with serve(X3Simulator(clock=x3_clock, **switches)) as server:
        yield server


@pytest.fixture
def twilio_server() -> Iterator[RunningServer]:
    with serve(TwilioSimulator()) as server:
        yield server


@dataclass
class Env:
    """A working directory with a configuration against the running simulators."""

    dir: Path
    x3_server: RunningServer
    twilio_server: RunningServer
    public_url: str = "http://127.0.0.1:8080"  # where the shim listens, once one is served
    api: str = "rest"  # how the CLI reads X3: REST api1 or GraphQL (the same simulated data)
    x3_clock: SimClock = field(default_factory=SimClock)

    def next_second(self) -> None:
        """Move X3's clock on: a run leaves changes of the current second for the next one."""
        self.x3_clock.advance(1.0)

    @property
    def x3(self) -> X3Simulator:
        return self.x3_server.app  # type: ignore[return-value]

    @property
    def twilio(self) -> TwilioSimulator:
        return self.twilio_server.app  # type: ignore[return-value]

    @property
    def config_path(self) -> Path:
        return self.dir / "x3twilio.yaml"

    @property
    def state_dir(self) -> Path:
        return self.dir / "state"

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Write the simulator configuration, with top-level sections replaced or updated."""
        config = sim_config(
            self.x3_server, self.twilio_server, public_url=self.public_url, api=self.api
        )
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key].update(value)
            else:
                config[key] = value
        write_config(self.config_path, config)
        return config

    def query_match(self, cls: str, count: int) -> str:
        """A fault `match` for the pages of a change query on `cls`, whatever the API."""
        if self.api == "graphql":
            from x3twilio.demo import graphql_x3
            from x3twilio.x3.graphql_nodes import DEFAULTS

            mapped = graphql_x3(self.x3)["nodes"].get(cls, {}).get("node")
            node = (mapped or DEFAULTS[cls][0]).split(".")[1]
            return f"{node}.query(first:{count})"
        return f"{cls}?representation={cls}.$query&count={count}"

    def wrong_credentials(self) -> dict[str, str]:
        """x3 keys with the secret wrong: the password (api1) or the client secret (GraphQL)."""
        return {"client_secret": "wrong"} if self.api == "graphql" else {"password": "wrong"}

    def popen(self, *args: str) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("X3TWILIO")}
        return subprocess.Popen(
            [sys.executable, "-m", "x3twilio", "--config", str(self.config_path), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def run(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        """Run the real CLI in a subprocess; fail loudly on an unexpected exit code."""
        process = self.popen(*args)
        out, err = process.communicate(timeout=120)
        result = subprocess.CompletedProcess(process.args, process.returncode, out, err)
        assert result.returncode == expect, (
            f"exit {result.returncode}, expected {expect}\nstdout:\n{out}\nstderr:\n{err}"
        )
        return result

    def audit(self) -> list[dict[str, Any]]:
        records = []
        for path in sorted((self.state_dir / "audit").glob("*.jsonl")):
            records += [json.loads(line) for line in path.read_text().splitlines()]
        return records

    def notes(self, partner: str) -> str:
        """The replies X3 holds for a partner: the YSMSLOG records rules.example.yaml makes."""
        return "\n".join(r["TEXT"] for r in self.x3.records("YSMSLOG") if r["BPNUM"] == partner)

    def watermarks(self) -> dict[str, Any]:
        path = self.state_dir / "watermarks.json"
        return json.loads(path.read_text()) if path.exists() else {}


@pytest.fixture
def env(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    x3_clock: SimClock,
    x3_server: RunningServer,
    twilio_server: RunningServer,
) -> Env:
    """REST api1 by default; a module runs its tests over X3 APIs and site variants with
    `pytestmark = pytest.mark.parametrize("env", ["rest", "graphql"], indirect=True)`."""
    api = VARIANTS[getattr(request, "param", "rest")][0]
    environment = Env(tmp_path, x3_server, twilio_server, api=api, x3_clock=x3_clock)
    environment.configure()
    return environment


@pytest.fixture
def shim(env: Env) -> Iterator[RunningServer]:
    """The webhook shim on loopback, its public_url being the address it is served on."""
    from x3twilio.config import load_config
    from x3twilio.wsgi import Shim

    server = RunningServer(lambda environ, start: [])  # a port first, then the app
    env.public_url = server.url
    env.configure()
    server.app = Shim(load_config(env.config_path, env={}))
    server.httpd.set_app(server.app)
    with server:
        yield server


def on_a_pty(
    env: Env, *args: str, stdout: bool = True, stderr: bool = False, **environ: str
) -> tuple[int, str, str]:
    """Run the CLI with stdout and/or stderr on a pseudo-terminal, as a person at a shell
    sees it. Returns the exit code, what the terminal showed, and the stream that was piped
    ("" when both were on the terminal)."""
    import pty
    import select

    master, slave = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("X3TWILIO")}
    environment.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "x3twilio", "--config", str(env.config_path), *args],
        stdin=subprocess.DEVNULL,
        stdout=slave if stdout else subprocess.PIPE,
        stderr=slave if stderr else subprocess.PIPE,
        env=environment | {"COLUMNS": "250", "LINES": "60", "TERM": "xterm-256color"} | environ,
    )
    os.close(slave)
    chunks = []
    try:
        while select.select([master], [], [], 60)[0]:
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # EIO: the program closed its terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    piped = process.stdout if not stdout else process.stderr if not stderr else None
    text = piped.read().decode() if piped is not None else ""
    process.wait(timeout=60)
    return process.returncode, b"".join(chunks).decode(errors="replace"), text
