"""Memory: peak RSS of `poll` over N changed records ≤ 150 MB (pages are streamed).

N purchase orders changed since the watermark, every 100th approved: the real poll (not a
dry run) reads every page, applies the rule to every record, marks each seen in the
outbox, and sends the 1 % that match (Twilio with no latency). Peak RSS is the CLI
subprocess's own VmHWM (see common.run_measured for why not ru_maxrss).
A dry run over the same records is reported beside it, without a target: it keeps its
decisions in memory on purpose, to print them.
"""

from __future__ import annotations

import sys

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
        floor = run_measured([sys.executable, "-m", "x3twilio", "--help"], env, workdir, "help")
        # No watermark yet: reads the 10-minute look-back (all N orders), marks them seen.
        first = run_measured(cli_args(ctx, config, "-q", "poll"), env, workdir, "first")
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
        f"{count:,} orders ({count // 100:,} approved): poll --since peaks at "
        f"{poll.maxrss_mb:.0f} MB in {poll.wall:.1f}s, {sent} messages sent; CLI says: "
        f"{poll.out().strip()}"
    )
    ctx.note(
        f"for scale: `x3twilio --help` peaks at {floor.maxrss_mb:.0f} MB; the first poll "
        f"(no watermark: reads and marks seen the same {count:,} orders, decides nothing) at "
        f"{first.maxrss_mb:.0f} MB; a dry run over them at {dry.maxrss_mb:.0f} MB "
        f"({dry.wall:.1f}s)"
    )
    ctx.note(
        f"ru_maxrss from wait4 for the same poll: {poll.rusage_maxrss_mb:.0f} MB, and "
        f"{floor.rusage_maxrss_mb:.0f} MB for --help: it counts the benchmark process "
        "(the simulated X3) that the CLI was forked from, so VmHWM is used instead"
    )
    return [
        Check(
            NAME,
            f"poll over {count:,} changed records, peak RSS",
            poll.maxrss_mb,
            LIMIT_MB,
            "<=",
            "MB",
            "VmHWM of the CLI process",
        )
    ]
