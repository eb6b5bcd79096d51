"""Webhook intake: the shim under `gunicorn -w 2` on loopback, signed status callbacks.

Targets: ≥ 1,000 requests/s with p99 ≤ 50 ms, and every accepted payload spooled exactly
once (files in state/inbox/new).

The load generator is wrk (Debian package `wrk`; installed with apt-get when missing and
run as root), one thread, a fixed number of keep-trying connections (closed loop), cycling
through pre-signed distinct requests generated here: each is a MessageStatus callback with
its own MessageSid and I-Twilio-Idempotency-Token, signed over public_url + path + query.
Every 10th request repeats an earlier one byte for byte (Twilio's retry of a delivery): it
must be answered but not spooled again. Without wrk, a multi-process Python generator on
raw sockets stands in (and says so; it costs more CPU per request than wrk).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from benchmarks.common import (
    PO_RULE,
    Check,
    Context,
    debian_tool,
    percentile,
    simulators,
    write_bench_config,
)
from x3twilio.signature import compute_signature

NAME = "webhooks"
WORKERS = 2
CONNECTIONS = 16
REPEAT_EVERY = 10  # every 10th request is a byte-for-byte repeat of the one 5 before it


@dataclass
class Load:
    """What the load generator saw."""

    tool: str
    completed: int  # responses received
    sent: int  # requests handed to the sockets (≥ completed: some in flight at the end)
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class Variant:
    label: str
    extra: tuple[str, ...]  # gunicorn arguments beyond -w 2
    tmpfs: bool = False  # state_dir in /dev/shm: fsync costs nothing (a diagnosis, no target)

    @property
    def command(self) -> str:
        return " ".join(("gunicorn", "-w", str(WORKERS), *self.extra))


VARIANTS = (
    Variant("sync", ()),  # the command README documents
    Variant("threads", ("--threads", "4")),  # the same 2 workers, 4 threads each (gthread)
    Variant("sync-tmpfs", (), tmpfs=True),
)


@dataclass
class Trial:
    load: Load
    files: int
    distinct: int
    low: int  # distinct payloads answered, at the least
    high: int  # ... and at the most (requests in flight when the generator stopped)

    @property
    def rate(self) -> float:
        return self.load.completed / self.load.seconds if self.load.seconds else 0.0

    @property
    def wrong(self) -> int:
        """Payloads spooled twice, answered but not spooled, or spooled but never sent."""
        duplicates = self.files - self.distinct
        return duplicates + max(0, self.low - self.distinct) + max(0, self.distinct - self.high)


def run(ctx: Context) -> list[Check]:
    wrk = _find_wrk(ctx)
    checks = []
    for variant in VARIANTS:
        if variant.tmpfs and not Path("/dev/shm").is_dir():
            ctx.note(f"{variant.label}: no /dev/shm, skipped")
            continue
        trials = [_trial(ctx, variant, wrk, i) for i in range(ctx.scale(3, 1))]
        middle = sorted(trials, key=lambda t: t.rate)[len(trials) // 2]
        tool = middle.load.tool
        where = "state_dir on tmpfs" if variant.tmpfs else "state_dir on disk"
        ctx.note(
            f"{variant.command} ({where}), {len(trials)} trial(s) of {CONNECTIONS} connections: "
            f"req/s {', '.join(f'{t.rate:,.0f}' for t in trials)}; p99 ms "
            f"{', '.join(f'{t.load.p99_ms:.0f}' for t in trials)}; the median trial is reported"
        )
        if variant.tmpfs:
            continue  # the same code without disk waits: says what the disk costs
        checks += [
            Check(
                NAME,
                f"signed requests/s, {variant.command}",
                middle.rate,
                1000,
                ">=",
                "req/s",
                f"median of {len(trials)}, {tool}, {CONNECTIONS} connections",
            ),
            Check(
                NAME,
                f"p99 latency, {variant.command}",
                middle.load.p99_ms,
                50,
                "<=",
                "ms",
                f"that trial, {tool}",
            ),
            Check(
                NAME,
                f"payloads lost or spooled twice, {variant.command}",
                sum(t.wrong for t in trials),
                0,
                "<=",
                "",
                "files in inbox/new against distinct payloads answered, all trials",
            ),
            Check(
                NAME,
                f"non-2xx answers, {variant.command}",
                sum(t.load.non_2xx + t.load.socket_errors for t in trials),
                0,
                "<=",
                "",
                "all trials; 403 would mean a signature mismatch",
            ),
        ]
    return checks


def _trial(ctx: Context, variant: Variant, wrk: str | None, index: int) -> Trial:
    seconds = ctx.scale(10, 5)
    pool_size = ctx.scale(60_000, 25_000)  # more than a run can use: no request reused
    workdir = ctx.workdir(f"{NAME}-{variant.label}-{index}")
    state = Path(tempfile.mkdtemp(dir="/dev/shm")) / "state" if variant.tmpfs else None
    with simulators() as sims:
        port = _free_port()
        public_url = f"http://127.0.0.1:{port}"
        sections = {"state_dir": str(state)} if state else {}
        config = write_bench_config(workdir, sims, [PO_RULE], public_url=public_url, **sections)
        token, account = sims.twsim.auth_token, sims.twsim.account_sid
    requests = _signed_requests(pool_size, public_url, token, account, port)
    try:
        if index == 0 and variant.label in ("sync", "sync-tmpfs"):
            for line in _shim_profile(config, requests[-3000:], workdir, variant.label):
                ctx.note(line)
        with _gunicorn(ctx, config, port, workdir, list(variant.extra)):
            if wrk:
                load = _run_wrk(wrk, requests, port, seconds, workdir)
            else:
                load = _run_python(requests, port, seconds)
        new = (state or workdir / "state") / "inbox" / "new"
        files = list(new.iterdir()) if new.exists() else []
        distinct = len({_sid(p) for p in files})
    finally:
        if state:
            shutil.rmtree(state.parent, ignore_errors=True)
    trial = Trial(load, len(files), distinct, _distinct(load.completed), _distinct(load.sent))
    ctx.note(
        f"{variant.command} trial {index + 1}, {load.tool}: {load.completed:,} responses in "
        f"{load.seconds:.1f}s ({trial.rate:,.0f}/s; {load.sent:,} sent), non-2xx "
        f"{load.non_2xx}, socket errors {load.socket_errors}; latency p50 {load.p50_ms:.1f} "
        f"ms, p99 {load.p99_ms:.1f} ms, max {load.max_ms:.1f} ms; spool {trial.files:,} files, "
        f"{trial.distinct:,} distinct, {trial.low:,} to {trial.high:,} distinct payloads "
        f"answered; lost or doubled {trial.wrong}"
    )
    return trial


def _sid(path: Path) -> str:
    payload = json.loads(path.read_bytes())
    fields = payload.get("fields") or payload.get("params") or []
    return str(dict(map(tuple, fields))["MessageSid"])


def _shim_profile(config: Path, requests: list[bytes], workdir: Path, label: str) -> list[str]:
    """The shim called in-process (no HTTP): its cost per request, and what dominates."""
    import cProfile
    import io
    import pstats

    from x3twilio.config import load_config
    from x3twilio.wsgi import Shim

    loaded = load_config(config, env={})
    shim = Shim(loaded)
    shim.spool.root = loaded.state_dir / "profile-inbox"  # not the inbox the check counts

    def call(raw: bytes) -> None:
        head, _, body = raw.partition(b"\r\n\r\n")
        first, *lines = head.decode().split("\r\n")
        target = first.split(" ")[1]
        headers = dict(line.split(": ", 1) for line in lines)
        path, _, query = target.partition("?")
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "RAW_URI": target,
            "CONTENT_TYPE": headers["Content-Type"],
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(),
            "HTTP_X_TWILIO_SIGNATURE": headers["X-Twilio-Signature"],
            "HTTP_I_TWILIO_IDEMPOTENCY_TOKEN": headers["I-Twilio-Idempotency-Token"],
        }
        shim(environ, lambda status, headers: None)

    half = len(requests) // 2
    start = time.perf_counter()
    for raw in requests[:half]:
        call(raw)
    plain = (time.perf_counter() - start) / half
    profiler = cProfile.Profile()
    profiler.enable()
    for raw in requests[half:]:
        call(raw)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in stats.values())

    def cum(file: str, func: str) -> str:
        spent = sum(r[3] for (f, _, fn), r in stats.items() if fn == func and f.endswith(file))
        return f"{spent / total:.0%}"

    def own(builtin: str) -> str:
        spent = sum(r[2] for (_, _, fn), r in stats.items() if fn == f"<built-in method {builtin}>")
        return f"{spent / total:.0%}"

    return [
        f"shim in-process ({label}: no HTTP), {half} signed requests: {plain * 1000:.2f} ms each "
        f"(one worker's ceiling {1 / plain:,.0f}/s); under cProfile, share of the time in "
        f"Spool.write {cum('spool.py', 'write')} (os.fsync {own('posix.fsync')}, os.open "
        f"{own('posix.open')}, os.replace {own('posix.replace')}, mkdir {own('posix.mkdir')}), "
        f"validate_signature {cum('signature.py', 'validate_signature')}, "
        f"parse_qsl {cum('parse.py', 'parse_qsl')}"
    ]


def _distinct(n: int) -> int:
    """Distinct payloads among the first n requests (every 10th is a repeat)."""
    return n - n // REPEAT_EVERY


def _signed_requests(
    count: int, public_url: str, token: str, account: str, port: int
) -> list[bytes]:
    """Raw HTTP/1.1 requests of signed status callbacks, distinct but for the repeats."""
    out: list[bytes] = []
    for i in range(count):
        if i % REPEAT_EVERY == REPEAT_EVERY - 1:
            out.append(out[i - 5])
            continue
        sid = f"SM{i:032x}"
        target = f"/twilio/status?n=n-{i:024x}"
        params = {
            "AccountSid": account,
            "ApiVersion": "2010-04-01",
            "From": "+15017122661",
            "MessageSid": sid,
            "MessageStatus": "delivered",
            "SmsSid": sid,
            "SmsStatus": "delivered",
            "To": "+33612000001",
        }
        body = urlencode(params)
        signature = compute_signature(public_url + target, params, token)
        head = (
            f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "User-Agent: TwilioProxy/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {signature}\r\nI-Twilio-Idempotency-Token: idem-{i:012d}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        out.append((head + body).encode())
    return out


# ---------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _gunicorn(ctx: Context, config: Path, port: int, workdir: Path, extra: list[str]):  # type: ignore[no-untyped-def]
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        str(WORKERS),
        *extra,
        "-b",
        f"127.0.0.1:{port}",
        "x3twilio.wsgi:application",
    ]
    if (
        "--no-control-socket"
        in subprocess.run(
            [sys.executable, "-m", "gunicorn", "--help"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    ):
        args.append("--no-control-socket")  # gunicorn ≥ 25 otherwise listens in ~/.gunicorn
    log = (workdir / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        args, env=ctx.env(X3TWILIO_CONFIG=str(config)), cwd=workdir, stdout=log, stderr=log
    )
    try:
        _wait_ready(port, server)
        yield server
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _wait_ready(port: int, server: subprocess.Popen[bytes]) -> None:
    """Until /healthz answers, then a few more so both workers have loaded the config."""
    deadline = time.monotonic() + 30
    ok = 0
    while ok < 20:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited {server.returncode} (see gunicorn.log)")
        if time.monotonic() > deadline:
            raise RuntimeError("gunicorn did not answer /healthz within 30 s")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            ok += connection.getresponse().status == 200
            connection.close()
        except OSError:
            time.sleep(0.1)


# ---------------------------------------------------------------- wrk


def _find_wrk(ctx: Context) -> str | None:
    found = debian_tool(ctx, "wrk")
    ctx.note(f"load generator: wrk ({found})" if found
             else "wrk unavailable: falling back to the Python load generator")
    return found


WRK_SCRIPT = r"""
-- Cycles through pre-signed raw requests, one per line, "|" standing for CRLF.
local requests, i = {}, 0
sent = 0  -- a global: done() reads it from each thread with t:get("sent")
function init(args)
  for line in io.lines(args[1]) do
    requests[#requests + 1] = (line:gsub("|", "\r\n"))
  end
end
function request()
  i = i % #requests + 1
  sent = sent + 1
  return requests[i]
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, _)
  local sent_total = 0
  for _, t in ipairs(threads) do sent_total = sent_total + t:get("sent") end
  local e = summary.errors
  io.write(string.format(
    "X3T completed=%d sent=%d duration_us=%d non2xx=%d connect=%d read=%d write=%d " ..
    "timeout=%d p50=%d p99=%d max=%d\n",
    summary.requests, sent_total, summary.duration, e.status, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def _run_wrk(wrk: str, requests: list[bytes], port: int, seconds: int, workdir: Path) -> Load:
    data = workdir / "requests.txt"
    data.write_bytes(b"".join(r.replace(b"\r\n", b"|") + b"\n" for r in requests))
    script = workdir / "signed.lua"
    script.write_text(WRK_SCRIPT, "utf-8")
    args = [
        wrk,
        "-t",
        "1",
        "-c",
        str(CONNECTIONS),
        "-d",
        f"{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/",
        "--",
        str(data),
    ]
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, check=True, timeout=seconds + 60
        )
    finally:
        data.unlink()  # tens of MB per trial
    (workdir / "wrk.out").write_text(done.stdout + done.stderr, "utf-8")
    found = re.search(r"^X3T (.*)$", done.stdout, re.MULTILINE)
    if not found:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    v = {k: int(n) for k, n in (pair.split("=") for pair in found[1].split())}
    if v["sent"] > len(requests):
        raise RuntimeError(f"wrk reused requests ({v['sent']} sent, pool {len(requests)})")
    return Load(
        "wrk",
        v["completed"],
        v["sent"],
        v["duration_us"] / 1e6,
        v["non2xx"],
        v["connect"] + v["read"] + v["write"] + v["timeout"],
        v["p50"] / 1000,
        v["p99"] / 1000,
        v["max"] / 1000,
    )


# ---------------------------------------------------------------- Python fallback


def _run_python(requests: list[bytes], port: int, seconds: int) -> Load:
    """Closed loop over raw sockets: processes x threads, one request per connection."""
    processes = 2
    per = CONNECTIONS // processes
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        shares = [(requests[p::processes], port, seconds, per) for p in range(processes)]
        results = pool.starmap(_python_worker, shares)
    latencies = [x for r in results for x in r[0]]
    return Load(
        "python raw sockets (2 processes)",
        len(latencies),
        sum(r[2] for r in results),
        seconds,
        sum(r[1] for r in results),
        sum(r[3] for r in results),
        percentile(latencies, 50),
        percentile(latencies, 99),
        max(latencies, default=0.0),
    )


def _python_worker(
    requests: list[bytes], port: int, seconds: int, threads: int
) -> tuple[list[float], int, int, int]:
    import threading

    stop = time.monotonic() + seconds
    latencies: list[float] = []
    counters = {"non2xx": 0, "sent": 0, "errors": 0}
    lock = threading.Lock()
    feed = iter(requests)

    def loop() -> None:
        while time.monotonic() < stop:
            with lock:
                raw = next(feed, None)
                counters["sent"] += raw is not None
            if raw is None:
                return
            start = time.perf_counter()
            try:
                status = _one(raw, port)
            except OSError:
                with lock:
                    counters["errors"] += 1
                continue
            with lock:
                latencies.append((time.perf_counter() - start) * 1000)
                counters["non2xx"] += not 200 <= status < 300

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return latencies, counters["non2xx"], counters["sent"], counters["errors"]


def _one(raw: bytes, port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length:\s*(\d+)", head)
        while length and len(body) < int(length[1]):
            chunk = s.recv(4096)
            if not chunk:
                break
            body += chunk
        return int(head.split(b" ", 2)[1])
