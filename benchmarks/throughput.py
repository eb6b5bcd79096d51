"""Send throughput: N SMS through `poll`, Twilio answering in 100 ms.

1. `sending.concurrency` C: achieved rate = messages / (last - first arrival at the Twilio
   simulator) >= 0.9 x C / 0.1 s.
2. `sending.rate_limit` R: every 1-second window of arrivals holds between 0.95 R and R
   messages, and Twilio answers no 429.

The orders are approved purchase orders, the rule texts one fixed number (no X3
$details look-ups), and `poll --since` reads them as history. Arrival times come from a
middleware in front of the Twilio simulator.

Diagnostics without a target: concurrency 32 (where the rate stops following C), and both
runs again with state_dir on tmpfs, where fsync costs nothing: what the disk costs.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import (
    PO_RULE,
    Check,
    Context,
    Hit,
    add_purchase_orders,
    cli_args,
    profile_summary,
    run_measured,
    simulators,
    write_bench_config,
)

NAME = "throughput"
LATENCY_MS = 100
MESSAGES = "/Messages.json"
PROBE_CONCURRENCY = 32


def run(ctx: Context) -> list[Check]:
    checks = _concurrency(ctx)
    checks += _rate_limited(ctx)
    _probes(ctx)
    return checks


# ---------------------------------------------------------------- the runs


def _poll(
    ctx: Context, label: str, count: int, sending: dict[str, object], tmpfs: bool = False
) -> list[Hit]:
    """Add `count` approved orders, poll them through Twilio; return the create requests."""
    workdir = ctx.workdir(f"{NAME}-{label}")
    state = Path(tempfile.mkdtemp(dir="/dev/shm")) if tmpfs else workdir / "state"
    try:
        with simulators(twilio_latency_ms=LATENCY_MS) as sims:
            _, since = add_purchase_orders(sims.x3sim, count)
            config = write_bench_config(
                workdir, sims, [PO_RULE], sending=sending, state_dir=str(state)
            )
            profile = workdir / f"{label}.prof"
            args = cli_args(ctx, config, "poll", "--since", since, profile_to=profile)
            proc = run_measured(args, ctx.env(), workdir, label, timeout=1800)
            creates = sims.twilio_log.select("POST", MESSAGES)
            statuses = sims.twilio_log.statuses()
            sent = len(sims.twsim.messages)
    finally:
        if tmpfs:
            shutil.rmtree(state, ignore_errors=True)
    ctx.note(
        f"{label}: {count} orders → {sent} messages accepted, {len(creates)} create requests, "
        f"CLI {proc.wall:.1f}s wall / {proc.cpu:.1f}s CPU; "
        f"statuses {dict(sorted(statuses.items()))}; CLI says: {proc.out().strip()}"
    )
    if sent != count:
        ctx.note(f"{label}: MISMATCH, {sent} messages for {count} orders")
    for line in profile_summary(profile):
        ctx.note(line)
    return creates


def _concurrency(ctx: Context) -> list[Check]:
    count, c = ctx.scale(5000, 1000), ctx.concurrency
    creates = _poll(ctx, f"concurrency-{c}", count, {"concurrency": c})
    rate, span = _rate(creates)
    ceiling = c / (LATENCY_MS / 1000)
    ctx.note(
        f"concurrency {c}: {len(creates)} arrivals in {span:.1f}s; most requests in flight at "
        f"once at the simulator {_max_in_flight(creates)}, "
        f"on average {_mean_in_flight(creates):.2f} "
        f"(the rest of the time a slot is on the client side); ideal C/latency = "
        f"{ceiling:.0f}/s"
    )
    return [
        Check(
            NAME,
            f"send rate, concurrency {c}, Twilio 100 ms",
            rate,
            0.9 * ceiling,
            ">=",
            "msg/s",
            f"0.9 × {c} / 0.1 s",
        )
    ]


def _rate_limited(ctx: Context) -> list[Check]:
    count, c, r = ctx.scale(5000, 500), ctx.concurrency, ctx.rate_limit
    label = f"rate-limit-{r:g}"
    creates = _poll(ctx, label, count, {"concurrency": c, "rate_limit": r})
    windows = Windows.of(creates, r)
    ctx.note(f"{label}: {windows}")
    return [
        Check(
            NAME, f"busiest 1-s window, rate_limit {r:g}/s", windows.busiest, r, "<=", "msg", "≤ R"
        ),
        Check(
            NAME,
            f"quietest 1-s window, rate_limit {r:g}/s",
            windows.quietest,
            0.95 * r,
            ">=",
            "msg",
            "≥ 0.95 R",
        ),
        Check(
            NAME, f"HTTP 429 from Twilio, rate_limit {r:g}/s", windows.refused, 0, "<=", "", "none"
        ),
    ]


def _probes(ctx: Context) -> None:
    """No targets: what limits the rate, measured rather than guessed."""
    c, r = ctx.concurrency, ctx.rate_limit
    creates = _poll(
        ctx,
        f"probe-concurrency-{PROBE_CONCURRENCY}",
        ctx.scale(2000, 500),
        {"concurrency": PROBE_CONCURRENCY},
    )
    ceiling = PROBE_CONCURRENCY / (LATENCY_MS / 1000)
    rate, _ = _rate(creates)
    ctx.note(
        f"probe, concurrency {PROBE_CONCURRENCY}: {rate:.1f} msg/s = {rate / ceiling:.2f} of "
        f"C/latency {ceiling:.0f}/s; most in flight at once {_max_in_flight(creates)}"
    )
    creates = _ideal_closed_loop(ctx, c)
    rate, _ = _rate(creates)
    ctx.note(
        f"calibration, an ideal client ({c} threads in this process, back to back, no "
        f"outbox): {rate:.1f} msg/s = {rate / (c / (LATENCY_MS / 1000)):.2f} of C/latency; "
        f"on average {_mean_in_flight(creates):.2f} in flight at the simulator: the harness's "
        "own ceiling"
    )
    for pace in (r, 0.975 * r):
        ctx.note(f"calibration, an ideal pacer at {pace:g}/s: {_ideal_pacer(ctx, pace, r)}")
    if not Path("/dev/shm").is_dir():
        ctx.note("no /dev/shm: the tmpfs probes are skipped")
        return
    creates = _poll(
        ctx, f"probe-tmpfs-concurrency-{c}", ctx.scale(1000, 500), {"concurrency": c}, tmpfs=True
    )
    rate, _ = _rate(creates)
    ceiling = c / (LATENCY_MS / 1000)
    ctx.note(
        f"probe, state_dir on tmpfs, concurrency {c}: {rate:.1f} msg/s = "
        f"{rate / ceiling:.2f} of C/latency {ceiling:.0f}/s; on average "
        f"{_mean_in_flight(creates):.2f} requests in flight at the simulator"
    )
    creates = _poll(
        ctx,
        f"probe-tmpfs-rate-limit-{r:g}",
        ctx.scale(1000, 500),
        {"concurrency": c, "rate_limit": r},
        tmpfs=True,
    )
    ctx.note(f"probe, state_dir on tmpfs, rate_limit {r:g}: {Windows.of(creates, r)}")


def _ideal_closed_loop(ctx: Context, threads: int) -> list[Hit]:
    """`threads` threads each sending back to back: the best a client can do here."""
    import requests

    each = ctx.scale(125, 50)
    with simulators(twilio_latency_ms=LATENCY_MS) as sims:
        tw = sims.twsim
        url = f"{sims.twilio.url}/2010-04-01/Accounts/{tw.account_sid}/Messages.json"
        form = {"To": PO_RULE["to"][0], "From": tw.phone_number, "Body": "calibration"}

        def loop(n: int) -> None:
            for _ in range(n):
                auth = (tw.account_sid, tw.auth_token)
                requests.post(url, data=form, auth=auth, timeout=10).raise_for_status()

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(loop, [each] * threads))
        return sims.twilio_log.select("POST", MESSAGES)


def _ideal_pacer(ctx: Context, pace: float, limit: float) -> Windows:
    """Sends from this process on an exact grid of 1/pace s, 8 threads: what the
    recorder sees of a sender with no jitter of its own (loopback and threads add some)."""
    import requests

    count = ctx.scale(500, 250)
    with simulators(twilio_latency_ms=LATENCY_MS) as sims:
        tw = sims.twsim
        url = f"{sims.twilio.url}/2010-04-01/Accounts/{tw.account_sid}/Messages.json"
        form = {"To": PO_RULE["to"][0], "From": tw.phone_number, "Body": "calibration"}

        def send() -> None:
            auth = (tw.account_sid, tw.auth_token)
            requests.post(url, data=form, auth=auth, timeout=10).raise_for_status()

        start = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            futures = []
            for i in range(count):
                time.sleep(max(0.0, start + i / pace - time.monotonic()))
                futures.append(pool.submit(send))
            for future in futures:
                future.result()
        return Windows.of(sims.twilio_log.select("POST", MESSAGES), limit)


# ---------------------------------------------------------------- arithmetic


def _rate(creates: list[Hit]) -> tuple[float, float]:
    """Arrivals per second between the first and the last arrival, and that span."""
    times = sorted(h.start for h in creates)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return ((len(times) - 1) / span if span else 0.0), span  # n arrivals, n - 1 intervals


def _mean_in_flight(hits: list[Hit]) -> float:
    """Requests inside the simulator on average, between the first and the last arrival."""
    _, span = _rate(hits)
    return sum(h.end - h.start for h in hits) / span if span else 0.0


def _max_in_flight(hits: list[Hit]) -> int:
    edges = sorted([(h.start, 1) for h in hits] + [(h.end, -1) for h in hits])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


@dataclass
class Windows:
    """1-second sliding windows over arrivals, one starting at each arrival."""

    rate: float
    mean: float
    span: float
    busiest: int
    quietest: int  # over the windows that end before the last arrival
    full: int
    over: int  # windows holding more than `rate`
    min_gap: float
    max_gap: float
    refused: int  # 429 answers

    @classmethod
    def of(cls, creates: list[Hit], rate: float) -> Windows:
        times = sorted(h.start for h in creates)
        counts = _window_counts(times, 1.0)
        full = counts[: sum(1 for t in times if t + 1.0 <= times[-1])] if times else []
        mean, span = _rate(creates)
        gaps = [b - a for a, b in itertools.pairwise(times)] or [0.0]
        return cls(
            rate,
            mean,
            span,
            max(counts, default=0),
            min(full, default=0),
            len(full),
            sum(1 for n in counts if n > rate),
            min(gaps),
            max(gaps),
            sum(1 for h in creates if h.status == 429),
        )

    def __str__(self) -> str:
        return (
            f"mean {self.mean:.2f}/s over {self.span:.1f}s; 1-s sliding windows (one per "
            f"arrival): max {self.busiest}, min {self.quietest} (of {self.full} full windows), "
            f"{self.over} above {self.rate:g}; gaps between arrivals min "
            f"{self.min_gap * 1000:.1f} ms, max {self.max_gap * 1000:.1f} ms (ideal "
            f"{1000 / self.rate:.1f} ms); 429s {self.refused}"
        )


def _window_counts(times: list[float], width: float) -> list[int]:
    """For each arrival, how many arrivals fall in [it, it + width)."""
    counts, j = [], 0
    for i, start in enumerate(times):
        j = max(j, i)
        while j < len(times) and times[j] < start + width:
            j += 1
        counts.append(j - i)
    return counts
