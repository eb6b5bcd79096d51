"""Run the x3twilio benchmarks and print each figure beside its target.

    python benchmarks/run.py                  # everything, full scale
    python benchmarks/run.py --quick          # smaller counts, same checks
    python benchmarks/run.py --only webhooks  # one benchmark (repeatable)
    python benchmarks/run.py --profile        # also run the CLI under cProfile, print the top

Exits 0 when every benchmark ran, whether or not it met its target (a miss is reported,
not fatal); 1 when a benchmark crashed or the CLI exited with a code it should not have.

A benchmark is a module here with `NAME` and `run(ctx) -> list[Check]`
(see common.py). `audit_query.py` is picked up when it exists.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import shutil
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for path in (str(REPO), str(REPO / "benchmarks")):
    if path not in sys.path:  # importable as benchmarks.X and as X
        sys.path.insert(0, path)

from benchmarks.common import Check, Context, load_average, say  # noqa: E402

# In the order of the targets; audit_query (target 5) is optional until it lands.
BENCHMARKS = ("throughput", "idle", "per_record", "memory", "audit_query", "webhooks")
OPTIONAL = {"audit_query"}


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    wanted = options.only or list(BENCHMARKS)
    unknown = [name for name in wanted if name not in BENCHMARKS]
    if unknown:
        say(f"unknown benchmark {unknown[0]!r}; known: {', '.join(BENCHMARKS)}")
        return 2
    ctx = Context(
        quick=options.quick,
        profile=options.profile,
        concurrency=options.concurrency,
        rate_limit=options.rate_limit,
        keep=options.keep,
    )
    say(_machine(ctx))
    say(f"bytecode cache warmed in {ctx.warm():.1f}s ({ctx.root / 'pycache'})")
    checks: list[Check] = []
    crashed: list[str] = []
    for name in wanted:
        module = _load(name)
        if module is None:
            say(f"\n== {name}: not present (benchmarks/{name}.py), skipped")
            continue
        ctx.current = name
        say(f"\n== {name} (load average {load_average()})")
        started = time.perf_counter()
        try:
            found = _as_checks(name, module.run(ctx))
        except Exception:
            crashed.append(name)
            say(f"  [{name}] CRASHED:\n{traceback.format_exc()}")
            continue
        say(f"  [{name}] done in {time.perf_counter() - started:.0f}s")
        for check in found:
            say("  " + _line(check))
        checks += found
    say("\n" + _table(checks, crashed))
    if options.json:
        report = {
            "machine": _machine(ctx),
            "quick": ctx.quick,
            "checks": [c.as_dict() for c in checks],
            "notes": ctx.notes,
            "crashed": crashed,
        }
        Path(options.json).write_text(json.dumps(report, indent=2), "utf-8")
    if not ctx.keep:
        shutil.rmtree(ctx.root, ignore_errors=True)
    else:
        say(f"scratch kept in {ctx.root}")
    return 1 if crashed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="run only NAME")
    parser.add_argument("--quick", action="store_true", help="smaller scale, same checks")
    parser.add_argument(
        "--profile", action="store_true", help="run the CLI under cProfile (figures distorted)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="sending.concurrency C")
    parser.add_argument("--rate-limit", type=float, default=50.0, help="sending.rate_limit R")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return parser


def _load(name: str) -> object | None:
    try:
        return importlib.import_module(f"benchmarks.{name}")
    except ModuleNotFoundError as exc:
        if name in OPTIONAL and exc.name == f"benchmarks.{name}":
            return None
        raise


def _as_checks(name: str, found: object) -> list[Check]:
    """Checks as they come; dicts with the same keys (a module written apart) are taken too."""
    checks = []
    for item in found or []:  # type: ignore[attr-defined]
        if isinstance(item, Check):
            checks.append(item)
        elif isinstance(item, dict):
            keys = ("benchmark", "name", "value", "target", "op", "unit", "detail")
            checks.append(Check(**{k: item[k] for k in keys if k in item} | {"benchmark": name}))
        else:
            raise TypeError(f"{name}.run() returned {item!r}, not a Check")
    return checks


def _machine(ctx: Context) -> str:
    cpu = _cpu_model()
    scale = "quick" if ctx.quick else "full"
    return (
        f"x3twilio benchmarks ({scale} scale) · {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · "
        f"Python {platform.python_version()} · {cpu} · {_cores()} cores · "
        f"load average {load_average()}"
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"
    text = f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.2f}"
    return f"{text} {unit}".strip()


def _line(check: Check) -> str:
    verdict = "ok  " if check.ok else "MISS"
    return (
        f"{verdict} {check.name}: {_fmt(check.value, check.unit)} "
        f"(target {check.op} {_fmt(check.target, check.unit)}; {check.detail}) "
        f"ratio {check.ratio:.2f}"
    )


def _table(checks: list[Check], crashed: list[str]) -> str:
    rows = [("benchmark", "figure", "measured", "target", "ratio", "")]
    for c in checks:
        target = f"{c.op} {_fmt(c.target, c.unit)}"
        rows.append(
            (
                c.benchmark,
                c.name,
                _fmt(c.value, c.unit),
                target,
                f"{c.ratio:.2f}",
                "ok" if c.ok else "MISS",
            )
        )
    rows += [(name, "CRASHED", "", "", "", "") for name in crashed]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    missed = sum(1 for c in checks if not c.ok)
    lines.append(f"{len(checks) - missed} of {len(checks)} targets met; {len(crashed)} crashed")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
