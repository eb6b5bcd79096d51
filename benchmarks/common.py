"""What every benchmark shares: checks against targets, simulators with a recorder, the CLI.

Each benchmark module exposes `run(ctx: Context) -> list[Check]`. A Check is one figure
beside its target; the target may itself be measured in the same run (a baseline), since
absolute times are not comparable across runs on a noisy machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python benchmarks/run.py` from a clean checkout
    sys.path.insert(0, str(REPO))

from x3twilio.demo import sim_config, write_config  # noqa: E402
from x3twilio.simulators import RunningServer  # noqa: E402
from x3twilio.simulators.twilio import TwilioSimulator  # noqa: E402
from x3twilio.simulators.x3 import X3Simulator  # noqa: E402

FIXED_NUMBER = "+33612000001"
CONFIG_KEYS = ("x3", "twilio", "public_url", "state_dir", "defaults", "retry")


# ---------------------------------------------------------------- results


def say(text: str) -> None:
    """Print a line now (a benchmark runs for minutes: show progress as it comes)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@dataclass
class Check:
    """One measured figure against its target: `value op target`, e.g. 75 msg/s >= 72."""

    benchmark: str
    name: str
    value: float
    target: float
    op: str  # ">=" (more is better) or "<=" (less is better)
    unit: str = ""
    detail: str = ""  # how the target was derived, the baseline it was measured against

    @property
    def ratio(self) -> float:
        """value / target: ≥ 1 passes a ">=" target, ≤ 1 passes a "<=" one."""
        if self.target == 0:
            return float("inf") if self.value else 1.0
        return self.value / self.target

    @property
    def ok(self) -> bool:
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "name": self.name,
            "value": self.value,
            "target": self.target,
            "op": self.op,
            "unit": self.unit,
            "ratio": self.ratio,
            "ok": self.ok,
            "detail": self.detail,
        }


@dataclass
class Context:
    """Options of one `run.py` invocation, a scratch directory, and a log."""

    quick: bool = False
    profile: bool = False
    concurrency: int = 8
    rate_limit: float = 50.0
    keep: bool = False
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="x3twilio-bench-")))
    notes: dict[str, list[str]] = field(default_factory=dict)
    current: str = ""

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def workdir(self, name: str) -> Path:
        path = self.root / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def log(self, text: str) -> None:
        say(f"  [{self.current}] {text}")

    def note(self, text: str) -> None:
        """A line for the report: evidence beside the figures (profiles, counts)."""
        self.notes.setdefault(self.current, []).append(text)
        self.log(text)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of every subprocess: the repo importable, bytecode cached.

        The sandbox sets PYTHONDONTWRITEBYTECODE, which would recompile the package at
        every start; an installed package has its .pyc, so a private cache stands in for
        it (outside the work tree), shared by the CLI and the baselines it is compared to.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("X3TWILIO")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.root / "pycache")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        env.update(extra)
        return env

    def warm(self) -> float:
        """Fill the bytecode cache: every x3twilio module and the libraries it imports."""
        code = (
            "import importlib, pkgutil, x3twilio\n"
            "for m in pkgutil.walk_packages(x3twilio.__path__, 'x3twilio.'):\n"
            "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
            "import requests, yaml, click, rich, rich.console, rich.table, tenacity, phonenumbers\n"
        )
        start = time.perf_counter()
        for args in ([sys.executable, "-c", code], [sys.executable, "-m", "x3twilio", "--help"]):
            subprocess.run(args, env=self.env(), check=True, capture_output=True, cwd=self.root)
        return time.perf_counter() - start


# ---------------------------------------------------------------- simulators


@dataclass
class Hit:
    start: float  # time.monotonic() when the app was called (the request had arrived)
    end: float
    method: str
    path: str
    status: int


class Recorder:
    """WSGI middleware: when each request arrived, how long it took, what it answered."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.hits: list[Hit] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        start = time.monotonic()
        status = [0]

        def record_status(line: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            status[0] = int(line[:3])
            return start_response(line, headers, *rest)

        try:
            return self.app(environ, record_status)
        finally:
            hit = Hit(
                start,
                time.monotonic(),
                environ.get("REQUEST_METHOD", ""),
                environ.get("PATH_INFO", ""),
                status[0],
            )
            with self._lock:
                self.hits.append(hit)

    def select(self, method: str, path_suffix: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.method == method and h.path.endswith(path_suffix)]

    def statuses(self) -> Counter[int]:
        with self._lock:
            return Counter(h.status for h in self.hits)

    def busy(self) -> float:
        """Seconds spent inside the app, summed over requests."""
        with self._lock:
            return sum(h.end - h.start for h in self.hits)


@dataclass
class Sims:
    x3: RunningServer
    twilio: RunningServer
    x3_log: Recorder
    twilio_log: Recorder

    @property
    def x3sim(self) -> X3Simulator:
        return self.x3.app  # type: ignore[return-value]

    @property
    def twsim(self) -> TwilioSimulator:
        return self.twilio.app  # type: ignore[return-value]


def _served(app: Any) -> tuple[RunningServer, Recorder]:
    recorder = Recorder(app)
    server = RunningServer(recorder)
    server.app = app  # sim_config reads the simulator's credentials from here
    return server.start(), recorder


@contextlib.contextmanager
def simulators(x3_latency_ms: float = 0, twilio_latency_ms: float = 0) -> Iterator[Sims]:
    """Both simulators in this process (threads), each behind a Recorder."""
    x3sim, twsim = X3Simulator(), TwilioSimulator()
    x3sim.latency_ms, twsim.latency_ms = x3_latency_ms, twilio_latency_ms
    x3, x3_log = _served(x3sim)
    twilio, twilio_log = _served(twsim)
    try:
        yield Sims(x3, twilio, x3_log, twilio_log)
    finally:
        x3.stop()
        twilio.stop()


def add_purchase_orders(
    x3sim: X3Simulator, count: int, approved_every: int = 1, prefix: str = "POBENCH"
) -> tuple[str, str]:
    """Add `count` orders stamped 5 minutes ago; return (stamp, a --since just before it).

    Every `approved_every`-th order is approved and open; the others wait for approval.
    Order lines are left out: api1 $query pages carry header fields only.
    """
    template = next(p for p in x3sim.records("PORDER") if p["APPFLG"] == 3)
    template = {k: v for k, v in template.items() if k != "PORDERQ"}
    template.update(BPSNUM="FR001", CLEFLG=False, RCPFLG=1, INVFLG=1, ORDREF="REF-BENCH")
    when = x3sim.now() - timedelta(minutes=5)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    since = (when - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def rows() -> Iterator[dict[str, Any]]:
        for i in range(count):
            total = 1000 + (i * 37) % 90000 + (i % 100) / 100
            yield {
                **template,
                "POHNUM": f"{prefix}{i:07d}",
                "APPFLG": 3 if i % approved_every == 0 else 1,
                "TOTORD": total,
                "TTVORD": round(total * 1.2, 2),
            }

    x3sim.add_records("PORDER", rows(), stamp=stamp)
    return stamp, since


PO_RULE: dict[str, Any] = {
    "name": "po-approved",
    "source": "purchase_orders",
    "when": {"approval": "approved", "closed": "no"},
    "to": [FIXED_NUMBER],
    "message": "Order {order_number} ({reference}) is approved: please deliver by "
    "{expected_date:%d %b %Y}. Total {total:,.2f} {currency}.",
}


def write_bench_config(
    workdir: Path,
    sims: Sims,
    rules: list[dict[str, Any]],
    public_url: str = "http://127.0.0.1:8080",
    **sections: Any,
) -> Path:
    """The simulator configuration with these rules; dict sections are merged in."""
    example = sim_config(sims.x3, sims.twilio, state_dir="state", public_url=public_url)
    # Only what the benchmarks need: not the example's source filters, e-mail or voice.
    config = {key: example[key] for key in CONFIG_KEYS if key in example}
    config["groups"] = {"finance": [FIXED_NUMBER, "+447911000111"]}
    config["rules"] = rules
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    path = workdir / "x3twilio.yaml"
    write_config(path, config)
    return path


# ---------------------------------------------------------------- subprocesses


@dataclass
class Proc:
    args: list[str]
    returncode: int
    wall: float  # seconds, start to exit
    cpu: float  # user + system seconds of the process (and its waited-for children)
    maxrss_mb: float  # peak resident set size of that process: VmHWM, polled
    rusage_maxrss_mb: float  # what wait4 says: includes this (parent) process's RSS, see below
    stdout: Path
    stderr: Path

    def out(self) -> str:
        return self.stdout.read_text("utf-8", "replace")

    def err(self) -> str:
        return self.stderr.read_text("utf-8", "replace")


class CliFailed(RuntimeError):
    """The CLI exited with a code the benchmark did not expect: its figures mean nothing."""


def run_measured(
    args: list[str],
    env: dict[str, str],
    workdir: Path,
    name: str,
    timeout: float = 900,
    expect: Iterable[int] | None = (0,),
) -> Proc:
    """Run a process, stdout and stderr to files; wall time, CPU and peak RSS of it alone.

    Peak RSS is the VmHWM of /proc/PID/status, polled until the process exits: the
    high-water mark of the address space it exec'ed into. ru_maxrss (from wait4, or
    RUSAGE_CHILDREN) is no good here: Linux folds the RSS of the address space a process
    leaves at exec into it, and a child of this process leaves a copy of this process,
    which holds a simulated X3 of up to 100,000 records.
    """
    stdout, stderr = workdir / f"{name}.out", workdir / f"{name}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        start = time.perf_counter()
        process = subprocess.Popen(args, stdout=out, stderr=err, env=env, cwd=workdir)
        timer = threading.Timer(timeout, _kill, (process,))
        timer.start()
        peak = _HighWater(process.pid)
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
            peak.stop()
        wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    proc = Proc(
        args,
        process.returncode,
        wall,
        usage.ru_utime + usage.ru_stime,
        peak.mb,
        usage.ru_maxrss / 1024,  # KiB on Linux
        stdout,
        stderr,
    )
    if expect is not None and proc.returncode not in tuple(expect):
        tail = proc.err()[-2000:]
        raise CliFailed(f"{' '.join(args[-4:])} exited {proc.returncode}:\n{tail}")
    return proc


class _HighWater(threading.Thread):
    """Polls VmHWM (peak RSS, kB) of a process every 5 ms until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.path = Path(f"/proc/{pid}/status")
        self.kb = 0
        self._done = threading.Event()
        self.start()

    @property
    def mb(self) -> float:
        return self.kb / 1024

    def run(self) -> None:
        while not self._done.is_set():
            try:
                text = self.path.read_text()
            except OSError:
                return  # reaped
            for line in text.splitlines():
                if line.startswith("VmHWM:"):
                    self.kb = max(self.kb, int(line.split()[1]))
            self._done.wait(0.005)

    def stop(self) -> None:
        self._done.set()
        self.join()


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGKILL)


def cli_args(ctx: Context, config: Path, *args: str, profile_to: Path | None = None) -> list[str]:
    """`python -m x3twilio --config FILE ARGS`, under cProfile when --profile was given."""
    head = [sys.executable]
    if profile_to is not None and ctx.profile:
        head += ["-m", "cProfile", "-o", str(profile_to)]
    return [*head, "-m", "x3twilio", "--config", str(config), *args]


def profile_summary(path: Path, limit: int = 12) -> list[str]:
    """The functions that dominate a cProfile dump: by own time, then cumulative."""
    import pstats

    if not path.exists():
        return []
    stats = pstats.Stats(str(path))
    rows = []
    for (filename, line, func), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{_short(filename)}:{line}({func})"
        rows.append((tottime, cumtime, calls, where))
    total = max((r[1] for r in rows), default=0.0)
    lines = [f"profile {path.name}: total {total:.2f}s; top by own time"]
    for tottime, cumtime, calls, where in sorted(rows, reverse=True)[:limit]:
        lines.append(f"    own {tottime:6.2f}s  cum {cumtime:6.2f}s  {calls:>8} calls  {where}")
    lines.append("  top x3twilio functions by cumulative time")
    mine = [r for r in rows if "x3twilio/" in r[3] and "simulators" not in r[3]]
    for tottime, cumtime, calls, where in sorted(mine, key=lambda r: -r[1])[:limit]:
        lines.append(f"    cum {cumtime:6.2f}s  own {tottime:6.2f}s  {calls:>8} calls  {where}")
    return lines


def _short(filename: str) -> str:
    for marker in ("x3twilio/", "site-packages/", "python3.11/"):
        if marker in filename:
            return filename[filename.index(marker) :]
    return filename


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


def debian_tool(ctx: Context, name: str) -> str | None:
    """The path of a command, installing its Debian package (same name) when missing and root."""
    found = shutil.which(name)
    apt = shutil.which("apt-get")
    if found or not apt or os.geteuid() != 0:
        return found
    ctx.note(f"{name} not found: installing the Debian package (apt-get install -y {name})")
    for command in ([apt, "install", "-y", "-q", name], [apt, "update", "-q"],
                    [apt, "install", "-y", "-q", name]):
        done = subprocess.run(command, capture_output=True, check=False)
        if done.returncode == 0 and shutil.which(name):
            break
    return shutil.which(name)
