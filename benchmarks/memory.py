"""Memory: peak RSS of `poll` over N changed records ≤ 150 MB (pages are streamed).

N purchase orders changed since the watermark, every 100th approved: the real poll (not a
dry run) reads every page, applies the rule to every record, marks each seen in the
outbox, and sends the 1 % that match (Twilio with no latency). Peak RSS is the CLI
subprocess's own (os.wait4), not this process's (which holds the simulated X3).
A dry run over the same records is reported beside it, without a target: it keeps its
decisions in memory on purpose, to print them.
"""

from __future__ import annotations

from benchmarks.common import (
    PO_RULE,
    Check,
    Context,
    add_purchase_orders,
    cli_args,
    run_measured,
    simulators,
    write_bench_config,
)

NAME = "memory"
LIMIT_MB = 150


def run(ctx: Context) -> list[Check]:
    count = ctx.scale(100_000, 20_000)
    workdir = ctx.workdir(NAME)
    env = ctx.env()
    with simulators() as sims:
        _, since = add_purchase_orders(sims.x3sim, count, approved_every=100)
        config = write_bench_config(
            workdir, sims, [PO_RULE], x3={"page_size": 200}, sending={"concurrency": 8}
        )
        idle = run_measured(cli_args(ctx, config, "-q", "poll"), env, workdir, "baseline")
        poll = run_measured(
            cli_args(ctx, config, "poll", "--since", since), env, workdir, "poll", timeout=1800
        )
        sent = len(sims.twsim.messages)
        dry = run_measured(
            cli_args(ctx, config, "poll", "--dry-run", "--since", since),
            env,
            workdir,
            "dry-run",
            timeout=1800,
        )
    ctx.note(
        f"{count:,} orders ({count // 100:,} approved): poll peak RSS {poll.maxrss_mb:.0f} MB "
        f"in {poll.wall:.1f}s, {sent} messages sent; CLI says: {poll.out().strip()}"
    )
    ctx.note(
        f"for scale: an idle poll (nothing changed) peaks at {idle.maxrss_mb:.0f} MB; "
        f"a dry run over the same {count:,} records at {dry.maxrss_mb:.0f} MB "
        f"({dry.wall:.1f}s; it holds its decisions to print them)"
    )
    return [
        Check(
            NAME,
            f"poll over {count:,} changed records, peak RSS",
            poll.maxrss_mb,
            LIMIT_MB,
            "<=",
            "MB",
            "of the CLI process (wait4 ru_maxrss)",
        )
    ]
