"""An X3 class as this X3's GraphQL schema has it (`NodeMap`): which field holds each X3
code, what it lacks, and how a node's answer reads back in api1's shape."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from x3twilio.errors import X3Error, X3FieldError
from x3twilio.x3.gql_props import Prop, dig, menu_numbers, render
from x3twilio.x3.gql_schema import Absent, Resolved, Schema
from x3twilio.x3.graphql_nodes import NodeSpec


@dataclass(frozen=True)
class NodeMap:
    """An X3 class as this X3's schema has it: root, node, and the codes it can read."""

    spec: NodeSpec
    root: str  # the package root this server answers to (x3Purchasing, xtremX3Purchasing)
    type_name: str
    props: Mapping[str, Prop]
    absent: Mapping[str, str] = field(default_factory=dict)  # code -> what the schema lacks

    @property
    def name(self) -> str:
        return f"{self.root}.{self.spec.node}"

    @property
    def x3_class(self) -> str:
        return self.spec.x3_class

    def lookup(self, code: str) -> Prop | None:
        return self.props.get(code)

    def prop(self, code: str, why: str = "") -> Prop:
        found = self.props.get(code)
        if found is None:
            raise self.missing(code, why)
        return found

    def missing(self, code: str, why: str = "") -> X3FieldError:
        spec = self.spec.fields.get(code)
        lacks = self.absent.get(code) or f"no GraphQL path is mapped for {code}"
        what = f"{code} ({spec.written})" if spec else code
        return X3FieldError(
            code,
            f"{self.name} ({self.type_name}) cannot give {what}"
            + (f", needed by {why}" if why else "")
            + f": {lacks}. Fix: map {code} to this X3's field under "
            f"x3.nodes.{self.x3_class}.fields.{code} (`x3twilio check` reads the schema)",
        )

    def decode(self, row: Mapping[str, Any], props: Iterable[Prop] | None = None) -> dict[str, Any]:
        """A node as api1 would have sent it, with its `$key`."""
        out = _decode(props if props is not None else self.props.values(), row, self.name)
        out["$key"] = "~".join(str(out.get(code, "")) for code in self.spec.key)
        return out


def resolve_node(schema: Schema, spec: NodeSpec, packages: Mapping[str, str]) -> NodeMap:
    """Each code of `spec` walked through the schema: what it reads, or what is missing."""
    root = schema.one(lambda: schema.package_root(spec.package, packages.get(spec.package)))
    type_name = schema.one(lambda: schema.node_type(root, spec.node))

    def job(paths: tuple[tuple[str, ...], ...]) -> Any:
        def attempt() -> Resolved:
            problems = []
            for path in paths:
                try:
                    return schema.resolve(type_name, path)
                except Absent as exc:
                    problems.append(str(exc))
            raise Absent("; ".join(problems))

        return attempt

    results = schema.settle({code: job(f.paths) for code, f in spec.fields.items()})
    props, absent = {}, {}
    for code, result in results.items():
        if isinstance(result, Absent):
            absent[code] = str(result)
            continue
        values = menu_numbers(result.values, spec.fields[code].values)
        props[code] = Prop(code, result.path, result.kind, values)
    return NodeMap(spec, root, type_name, props, absent)


def selection(props: Iterable[Prop]) -> str:
    """The selection set that reads these paths: a.b, a.c -> a { b c }."""
    tree: dict[str, Any] = {}
    for prop in props:
        branch = tree
        for part in prop.path:
            branch = branch.setdefault(part, {})
    return render(tree)


def _decode(props: Iterable[Prop], row: Mapping[str, Any], where: str) -> dict[str, Any]:
    out = {}
    for prop in props:
        raw = dig(row, *prop.path)
        try:
            out[prop.code] = prop.to_api1(raw)
        except (TypeError, ValueError) as exc:
            path = ".".join(prop.path)
            raise X3Error(f"{where} sent {path}={raw!r}, not a {prop.kind} ({exc})") from None
    return out
