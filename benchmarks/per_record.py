"""Per-record cost: N changed records through rules and templates in `poll --dry-run`.

N approved purchase orders (no latency, page_size 200), two rules over them (one matches
every order, one matches none), a template with dates and amounts, one fixed recipient.
records/s end to end = N / wall of the CLI (start-up included) ≥ 10,000. stdout (the
decisions, tab-separated when piped) goes to a file and is counted.
"""

from __future__ import annotations

from benchmarks.common import (
    PO_RULE,
    Check,
    Context,
    add_purchase_orders,
    cli_args,
    profile_summary,
    run_measured,
    simulators,
    write_bench_config,
)

NAME = "per_record"
NO_MATCH_RULE = {
    "name": "po-big-gbp",
    "source": "purchase_orders",
    "when": {"approval": "approved", "currency": ["GBP", "USD"], "total": {"ge": 1_000_000}},
    "to": ["finance"],
    "message": "Big order {order_number}: {total:,.2f} {currency}",
}


def run(ctx: Context) -> list[Check]:
    count = ctx.scale(50_000, 10_000)
    workdir = ctx.workdir(NAME)
    env = ctx.env()
    with simulators() as sims:
        stamp, since = add_purchase_orders(sims.x3sim, count)
        config = write_bench_config(workdir, sims, [PO_RULE, NO_MATCH_RULE], x3={"page_size": 200})
        # the same command over an empty window first: start-up paths warm, nothing decided
        run_measured(cli_args(ctx, config, "poll", "--dry-run"), env, workdir, "warm")
        before = len(sims.x3_log.hits)
        profile = workdir / "dry-run.prof"
        args = cli_args(ctx, config, "poll", "--dry-run", "--since", since, profile_to=profile)
        proc = run_measured(args, env, workdir, "dry-run", timeout=1800)
        hits = sims.x3_log.hits[before:]
    decided = sum(1 for line in proc.out().splitlines()[1:] if "\twould send\t" in line)
    x3_busy = sum(h.end - h.start for h in hits)
    rate = count / proc.wall
    ctx.note(
        f"{count} orders stamped {stamp}: {decided} decisions printed "
        f"({proc.stdout.stat().st_size / 1e6:.1f} MB), CLI {proc.wall:.2f}s wall, "
        f"{proc.cpu:.2f}s CPU, peak RSS {proc.maxrss_mb:.0f} MB; {len(hits)} X3 requests, "
        f"{x3_busy:.2f}s inside the X3 simulator (same machine, the other core); "
        f"records per CLI CPU second {count / proc.cpu:,.0f}"
    )
    if decided != count:
        ctx.note(f"MISMATCH: {decided} decisions for {count} orders")
    for line in profile_summary(profile):
        ctx.note(line)
    return [
        Check(
            NAME,
            f"dry-run poll, {count:,} records, end to end",
            rate,
            10_000,
            ">=",
            "rec/s",
            "records / CLI wall, start-up included",
        )
    ]
