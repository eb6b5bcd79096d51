"""Audit query: `x3twilio audit --status failed --format json` over a 1,000,000-line trail.

Targets, measured in the same run on the same files:
- the same records as `jq -c 'select(.status=="failed")'` (compared line by line);
- at least 5x faster than that jq command;
- within 8x of `grep -c '"status":"failed"'` (the cost of just reading the files).
The trail is written through AuditLog (so it rotates by size, as in production).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.common import Check, Context, debian_tool, median
from x3twilio.audit import AuditLog, audit_files

NAME = "audit_query"
RULES = ("po-approved", "invoice-due-soon", "payment-sent", "po-expected-today")


def run(ctx: Context) -> list[Check]:
    jq = debian_tool(ctx, "jq")
    if jq is None:
        ctx.note("jq is unavailable: the jq comparison is skipped")
    lines = ctx.scale(1_000_000, 100_000)
    home = ctx.workdir("audit")
    state = home / "state"
    started = time.perf_counter()
    _write_trail(state, lines)
    files = [str(p) for p in audit_files(state)]
    size = sum(Path(f).stat().st_size for f in files) / 1e6
    ctx.log(f"wrote {lines:,} records ({size:.0f} MB, {len(files)} files) in "
            f"{time.perf_counter() - started:.0f}s")
    config = home / "x3twilio.yaml"
    config.write_text(_config(state))

    ours_cmd = [sys.executable, "-m", "x3twilio", "--config", str(config), "audit",
                "--status", "failed", "--format", "json"]
    ours_out, ours = _timed(ctx, ours_cmd, home / "ours.jsonl")
    grep_out, grep = _timed(ctx, ["grep", "-c", '"status":"failed"', *files], home / "grep.txt")
    checks = [Check(NAME, "audit --status failed vs grep -c (reading cost)", ours / grep, 8.0,
                    "<=", "x", f"ours {ours:.2f}s, grep -c {grep:.2f}s")]
    if jq is not None:
        jq_out, jq_time = _timed(ctx, [jq, "-c", 'select(.status=="failed")', *files],
                                 home / "jq.jsonl", repeat=1)
        same = _same_records(ours_out, jq_out)
        checks += [
            Check(NAME, "same records as jq", 1.0 if same else 0.0, 1.0, ">=", "",
                  "every line compared as JSON"),
            Check(NAME, "speed-up over jq -c select(...)", jq_time / ours, 5.0, ">=", "x",
                  f"jq {jq_time:.2f}s, ours {ours:.2f}s"),
        ]
    ctx.log(f"matches: {sum(1 for _ in ours_out.open('rb')):,}; grep -c said "
            f"{grep_out.read_text().split()[-1] if grep_out.stat().st_size else '?'}")
    return checks


def _timed(ctx: Context, cmd: list[str], out: Path, repeat: int = 3) -> tuple[Path, float]:
    """Median wall time of `cmd` with stdout to a file (grep to /dev/null stops early)."""
    times = []
    for _ in range(repeat):
        with out.open("wb") as handle:
            start = time.perf_counter()
            subprocess.run(cmd, stdout=handle, env=ctx.env(), check=False, cwd=ctx.root)
            times.append(time.perf_counter() - start)
    return out, median(times)


def _same_records(ours: Path, theirs: Path) -> bool:
    with ours.open("rb") as a, theirs.open("rb") as b:
        return [json.loads(x) for x in a] == [json.loads(y) for y in b]


def _write_trail(state: Path, total: int) -> None:
    """A realistic mix: 5 % failures, queued/sent/status/skipped records, some replies."""
    rng = random.Random(7)
    moment = [datetime(2026, 1, 1, tzinfo=UTC)]
    step = timedelta(days=120) / total

    def clock() -> datetime:
        moment[0] += step
        return moment[0]

    log = AuditLog(state, "20260101T000000Z-bench0", clock)
    for _ in range(total):
        i, rule, r = rng.randrange(10**6), rng.choice(RULES), rng.random()
        to = f"+336{rng.randrange(10**8):08d}"
        base = {"id": f"n-{rng.getrandbits(96):024x}", "rule": rule,
                "source": "purchase_orders", "record": f"PO{i:06d}", "channel": "sms", "to": to}
        if r < 0.05:
            log.write("notification.failed", **base, status="failed", attempt=1,
                      error={"code": 21610, "message": "Attempt to send to unsubscribed "
                             "recipient", "permanent": True})
        elif r < 0.35:
            log.write("notification.queued", **base, status="pending", segments=1,
                      encoding="GSM-7", body=f"Order PO{i:06d} is approved: please deliver "
                      "by 04 Dec 2026. Total 1,250.00 EUR. Reply here with any question.")
        elif r < 0.65:
            log.write("notification.sent", **base, status="sent", attempt=1,
                      provider_id=f"SM{rng.getrandbits(128):032x}")
        elif r < 0.9:
            log.write("notification.status", **base, status="delivered",
                      provider_id=f"SM{rng.getrandbits(128):032x}")
        else:
            log.write("inbound.logged", id=f"SM{rng.getrandbits(128):032x}", to="+15017122661",
                      channel="sms", status="logged", body=f"PO{i:06d} reçu, merci",
                      matched="BPSUPPLIER:FR001", reference=f"PO{i:06d}", **{"from": to})
    log.close()


def _config(state: Path) -> str:
    return f"""x3: {{url: "http://127.0.0.1:9", folder: SEED, user: u, password: p}}
twilio: {{account_sid: AC0, auth_token: t, from: "+15017122661"}}
state_dir: {state}
"""
