"""The import contract: the product never reaches into the simulators (only `demo` runs them),
nor into graphql-core (the simulators' GraphQL server), a cron run imports little, and no
module imports itself back through others (not even from inside a function)."""

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
        "print(sorted(m for m in sys.modules "
        "if m.startswith(('graphql', 'x3twilio.simulators', 'babel'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each module of the package at `root` and the package's modules it imports, wherever
    the import stands (top level, in a function, under TYPE_CHECKING)."""
    paths = {module_name(path, root): path for path in root.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                for alias in node.names:  # `from pkg import module` imports that module
                    submodule = f"{base}.{alias.name}"
                    targets.add(submodule if submodule in paths else base)
        graph[name] = {target for target in targets if target in paths and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import one another (strongly connected, Tarjan's)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_back_through_others():
    assert cycles(import_graph(PACKAGE)) == []


def test_a_cycle_behind_a_function_level_relative_import_is_found(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("def make():\n    from pkg.sub import impl\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "impl.py").write_text("from .. import make\nfrom . import helper\n")
    (package / "sub" / "helper.py").write_text("import json\n")
    assert import_graph(package)["pkg.sub.impl"] == {"pkg", "pkg.sub.helper"}
    assert cycles(import_graph(package)) == [["pkg", "pkg.sub.impl"]]
