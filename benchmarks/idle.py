"""Idle cron run: `x3twilio -q poll` with nothing changed, five sources in use, no latency.

Targets, both against baselines measured in the same run, interleaved with it:
- median wall of the poll ≤ 2.0 x median of `python -c "import requests, yaml, click, rich"`;
- median wall of `x3twilio --help` ≤ 1.5 x median of `python -c pass` + 100 ms.
Also reported: what `-X importtime` blames for the start-up of `--help` and of the poll.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from benchmarks.common import (
    Check,
    CliFailed,
    Context,
    Proc,
    cli_args,
    median,
    profile_summary,
    run_measured,
    simulators,
    write_bench_config,
)

NAME = "idle"
IMPORTS = "import requests, yaml, click, rich"
RULES = [
    {
        "name": "po-approved",
        "source": "purchase_orders",
        "when": {"approval": "approved"},
        "to": ["finance"],
        "message": "Order {order_number} approved: {total:,.2f} {currency}",
    },
    {
        "name": "purchase-invoice-posted",
        "source": "purchase_invoices",
        "when": {"amount": {"gt": 0}},
        "to": ["finance"],
        "message": "Purchase invoice {invoice_number}: {amount:,.2f} {currency}",
    },
    {
        "name": "sales-invoice-posted",
        "source": "sales_invoices",
        "when": {"amount": {"gt": 0}},
        "to": ["finance"],
        "message": "Sales invoice {invoice_number}: {amount:,.2f} {currency}",
    },
    {
        "name": "open-item-changed",
        "source": "open_items",
        "when": {"open_amount": {"gt": 0}},
        "to": ["finance"],
        "message": "{document} line {line}: {open_amount:,.2f} {currency} open",
    },
    {
        "name": "payment-sent",
        "source": "payments",
        "when": {"direction": "outgoing"},
        "to": ["finance"],
        "message": "Payment {payment_number}: {amount:,.2f} {currency}",
    },
]


def run(ctx: Context) -> list[Check]:
    runs = ctx.scale(15, 10)
    workdir = ctx.workdir(NAME)
    env = ctx.env()
    py = sys.executable
    walls: dict[str, list[float]] = {"poll": [], "imports": [], "help": [], "pass": []}
    with simulators() as sims:
        config = write_bench_config(workdir, sims, RULES)
        poll = cli_args(ctx, config, "-q", "poll")
        run_measured(poll, env, workdir, "first-poll")  # no watermark yet: starts from now
        run_measured(poll, env, workdir, "warm-poll")
        before = len(sims.x3_log.hits)
        commands = {
            "poll": poll,
            "imports": [py, "-c", IMPORTS],
            "help": [py, "-m", "x3twilio", "--help"],
            "pass": [py, "-c", "pass"],
        }
        last: dict[str, Proc] = {}
        for i in range(runs):
            for name, args in commands.items():  # interleaved: drift hits all alike
                last[name] = run_measured(args, env, workdir, f"{name}-{i}")
                walls[name].append(last[name].wall)
        x3_requests = (len(sims.x3_log.hits) - before) / runs
        x3_busy = sum(h.end - h.start for h in sims.x3_log.hits[before:]) / runs
        sent = len(sims.twsim.messages)
        if ctx.profile:
            profile = workdir / "poll.prof"
            run_measured(cli_args(ctx, config, "-q", "poll", profile_to=profile), env, workdir, "p")
            for line in profile_summary(profile):
                ctx.note(line)
        importtime_poll = _importtime([py, "-X", "importtime", *poll[1:]], env, workdir, "poll")
        syncs = _fsyncs(poll, env, workdir)
    importtime_help = _importtime(
        [py, "-X", "importtime", "-m", "x3twilio", "--help"], env, workdir, "help"
    )
    m = {name: median(values) for name, values in walls.items()}
    ms = {name: f"{value * 1000:.0f} ms" for name, value in m.items()}
    said = (last["poll"].out() + last["poll"].err())[:200]
    ctx.note(
        f"medians over {runs} interleaved runs: poll {ms['poll']}, imports {ms['imports']}, "
        f"--help {ms['help']}, pass {ms['pass']}; poll CPU {last['poll'].cpu * 1000:.0f} ms; "
        f"per poll {x3_requests:.0f} X3 requests, {x3_busy * 1000:.0f} ms inside the X3 "
        f"simulator; {sent} messages sent (expected 0); poll stdout+stderr {said!r}"
    )
    for line in importtime_help + importtime_poll + syncs:
        ctx.note(line)
    return [
        Check(
            NAME,
            "idle poll, 5 sources (median wall)",
            m["poll"],
            2.0 * m["imports"],
            "<=",
            "s",
            f'2.0 × `python -c "{IMPORTS}"` = 2.0 × {m["imports"] * 1000:.0f} ms',
        ),
        Check(
            NAME,
            "x3twilio --help (median wall)",
            m["help"],
            1.5 * m["pass"] + 0.1,
            "<=",
            "s",
            f"1.5 × `python -c pass` + 100 ms = 1.5 × {m['pass'] * 1000:.0f} ms + 100 ms",
        ),
    ]


def _importtime(args: list[str], env: dict[str, str], workdir: Path, label: str) -> list[str]:
    """The top-level imports that cost the most, and the heaviest modules by own time."""
    proc = run_measured(args, env, workdir, f"importtime-{label}")
    entries = []  # (self µs, cumulative µs, depth, name)
    for line in proc.err().splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|", 2)
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        entries.append((int(own), int(cumulative), depth, name.strip()))
    top = sorted((e for e in entries if e[2] == 0), key=lambda e: -e[1])
    total = sum(e[1] for e in top)
    lines = [
        f"importtime {label}: {len(entries)} modules, {total / 1000:.0f} ms in imports; "
        "top-level by cumulative: " + ", ".join(f"{e[3]} {e[1] / 1000:.0f} ms" for e in top[:8])
    ]
    heavy = sorted(entries, key=lambda e: -e[0])[:8]
    lines.append(
        f"importtime {label}: heaviest by own time: "
        + ", ".join(f"{e[3]} {e[0] / 1000:.1f} ms" for e in heavy)
    )
    mine = sorted((e for e in entries if e[3].startswith("x3twilio")), key=lambda e: -e[1])
    lines.append(
        f"importtime {label}: x3twilio modules by cumulative: "
        + ", ".join(f"{e[3]} {e[1] / 1000:.0f} ms" for e in mine[:8])
    )
    return lines


def _fsyncs(poll: list[str], env: dict[str, str], workdir: Path) -> list[str]:
    """How many fsync/fdatasync calls one idle poll makes, and the wall time spent in them."""
    strace = shutil.which("strace")
    if not strace:
        return ["strace not installed: fsync count of the idle poll not measured"]
    log = workdir / "strace.log"
    args = [strace, "-f", "-qq", "-T", "-e", "trace=fsync,fdatasync", "-o", str(log), *poll]
    try:
        run_measured(args, env, workdir, "strace")
    except CliFailed as exc:  # e.g. ptrace not permitted in this container
        return [f"strace failed: {str(exc)[:200]}"]
    times = [float(t) for t in re.findall(r"<([0-9.]+)>", log.read_text())]
    return [
        f"one idle poll under strace: {len(times)} fsync/fdatasync calls, "
        f"{sum(times) * 1000:.0f} ms in them (longest {max(times, default=0) * 1000:.0f} ms)"
    ]
