"""Send throughput: N SMS through `poll`, Twilio answering in 100 ms.

1. `sending.concurrency` C: achieved rate = messages / (last − first arrival at the Twilio
   simulator) ≥ 0.9 × C / 0.1 s.
2. `sending.rate_limit` R: every 1-second window of arrivals holds between 0.95 R and R
   messages, and Twilio answers no 429.

The orders are approved purchase orders, the rule texts one fixed number (no X3
$details look-ups), and `poll --since` reads them as history.
"""

from __future__ import annotations

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


PROBE_CONCURRENCY = 32  # no target: where the rate stops following C


def run(ctx: Context) -> list[Check]:
    checks = _concurrency(ctx)
    checks += _rate_limited(ctx)
    _probe(ctx)
    return checks


def _rate(creates: list[Hit]) -> tuple[float, float]:
    """Arrivals per second between the first and the last arrival, and that span."""
    times = sorted(h.start for h in creates)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return ((len(times) - 1) / span if span else 0.0), span  # n arrivals, n − 1 intervals


def _probe(ctx: Context) -> None:
    count, c = ctx.scale(2000, 500), PROBE_CONCURRENCY
    creates = _poll(ctx, f"probe-concurrency-{c}", count, {"concurrency": c})
    rate, span = _rate(creates)
    ceiling = c / (LATENCY_MS / 1000)
    ctx.note(
        f"probe, concurrency {c} (no target): {rate:.1f} msg/s = {rate / ceiling:.2f} of "
        f"C/latency {ceiling:.0f}/s; most in flight at once {_max_in_flight(creates)}"
    )


def _poll(ctx: Context, label: str, count: int, sending: dict[str, object]) -> list[Hit]:
    """Add `count` approved orders, poll them through Twilio; return the create requests."""
    workdir = ctx.workdir(f"{NAME}-{label}")
    with simulators(twilio_latency_ms=LATENCY_MS) as sims:
        _, since = add_purchase_orders(sims.x3sim, count)
        config = write_bench_config(workdir, sims, [PO_RULE], sending=sending)
        profile = workdir / f"{label}.prof"
        args = cli_args(ctx, config, "poll", "--since", since, profile_to=profile)
        proc = run_measured(args, ctx.env(), workdir, label, timeout=1800)
        creates = sims.twilio_log.select("POST", MESSAGES)
        statuses = sims.twilio_log.statuses()
        sent = len(sims.twsim.messages)
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
    in_flight = _max_in_flight(creates)
    ctx.note(
        f"concurrency {c}: {len(creates)} arrivals in {span:.1f}s; most requests in flight at "
        f"once at the simulator {in_flight}; ideal C/latency = {ceiling:.0f}/s"
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


def _max_in_flight(hits: list[Hit]) -> int:
    edges = sorted([(h.start, 1) for h in hits] + [(h.end, -1) for h in hits])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def _rate_limited(ctx: Context) -> list[Check]:
    count, c, r = ctx.scale(5000, 500), ctx.concurrency, ctx.rate_limit
    label = f"rate-limit-{r:g}"
    creates = _poll(ctx, label, count, {"concurrency": c, "rate_limit": r})
    times = sorted(h.start for h in creates)
    counts = _window_counts(times, 1.0)
    full = counts[: _full_windows(times, 1.0)]  # windows that end before the last arrival
    busiest = max(counts, default=0)
    quietest = min(full, default=0)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    mean = (len(times) - 1) / span if span else 0.0
    over = sum(1 for n in counts if n > r)
    refused = sum(1 for h in creates if h.status == 429)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    ctx.note(
        f"{label}: mean {mean:.2f}/s over {span:.1f}s; 1-s sliding windows (one per arrival): "
        f"max {busiest}, min {quietest} (of {len(full)} full windows), {over} above {r:g}; "
        f"gaps between arrivals min {min(gaps, default=0) * 1000:.1f} ms, "
        f"max {max(gaps, default=0) * 1000:.1f} ms (ideal {1000 / r:.1f} ms); 429s {refused}"
    )
    return [
        Check(NAME, f"busiest 1-s window, rate_limit {r:g}/s", busiest, r, "<=", "msg", "≤ R"),
        Check(
            NAME,
            f"quietest 1-s window, rate_limit {r:g}/s",
            quietest,
            0.95 * r,
            ">=",
            "msg",
            "≥ 0.95 R",
        ),
        Check(NAME, f"HTTP 429 from Twilio, rate_limit {r:g}/s", refused, 0, "<=", "", "none"),
    ]


def _window_counts(times: list[float], width: float) -> list[int]:
    """For each arrival, how many arrivals fall in [it, it + width)."""
    counts, j = [], 0
    for i, start in enumerate(times):
        j = max(j, i)
        while j < len(times) and times[j] < start + width:
            j += 1
        counts.append(j - i)
    return counts


def _full_windows(times: list[float], width: float) -> int:
    """How many of the windows (one per arrival) end at or before the last arrival."""
    return sum(1 for t in times if t + width <= times[-1]) if times else 0
