"""The import contract: the product never reaches into the simulators (only `demo` runs them),
nor into graphql-core (the simulators' GraphQL server), and a cron run imports little."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "x3twilio"
MAY_RUN_SIMULATORS = {"demo.py"}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else f"x3twilio.{node.module}"
            names.add(base)
    return names


def test_product_code_never_imports_the_simulators_or_graphql_core():
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "simulators" or str(relative) in MAY_RUN_SIMULATORS:
            continue
        bad = {
            name
            for name in imported(path)
            if name.startswith(("x3twilio.simulators", "graphql")) or name == "graphql"
        }
        if bad:
            offenders[str(relative)] = sorted(bad)
    assert offenders == {}


def test_a_poll_imports_neither_the_simulators_nor_graphql_core():
    probe = (
        "import sys, x3twilio.cli, x3twilio.pipeline, x3twilio.ingest, x3twilio.x3.graphql; "
        "print(sorted(m for m in sys.modules if m.startswith(('graphql', 'x3twilio.simulators'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
