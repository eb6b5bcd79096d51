"""Sage X3's GraphQL schema, as the simulator serves it: SDL files per generation, the
customer's API operations, fields a site removed, and the binding of properties to the store.

The SDL lives in `data/xtrem_*.graphql`, written from Sage's reference pages. Its `@x3(...)`
directives are the simulator's own binding to the api1 store; they are read here and stripped
before `build_schema`, so introspection shows Sage's schema and nothing else. Xtrem's envelope
types (`X_Operations`, `X_Collection`, `X_Connection`, `X_Edge`) are generated for every name
the SDL uses without defining.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources

from graphql import (
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
    parse,
)
from graphql import (
    validate as graphql_validate,
)
from graphql.language import (
    DirectiveNode,
    DocumentNode,
    InputObjectTypeDefinitionNode,
    ObjectTypeDefinitionNode,
    ObjectTypeExtensionNode,
    StringValueNode,
)

GENERATIONS = ("current", "legacy")
OPERATIONS = ("smsLog", "payment")
_CONNECTION_ARGS = (
    "filter: String, orderBy: String, first: Int, after: String, last: Int, before: String"
)
_DIRECTIVE = re.compile(r"\s*@x3\([^)]*\)")
_ENVELOPE = re.compile(r"\b([A-Z]\w*?)_(Operations|Collection)\b")


@dataclass(frozen=True)
class Binding:
    """Where a property's value comes from: a stored column, a derivation, or both."""

    code: str | None = None
    derive: str | None = None


@dataclass(frozen=True)
class XtremSchema:
    """The built schema, with the binding table read from its SDL."""

    schema: GraphQLSchema
    bindings: Mapping[tuple[str, str], Binding]  # (type, property) -> binding
    classes: Mapping[str, str]  # type -> the api1 class its records come from

    def binding(self, type_name: str, field: str) -> Binding | None:
        return self.bindings.get((type_name, field))

    def object_type(self, name: str) -> GraphQLObjectType:
        found = self.schema.type_map.get(name)
        if not isinstance(found, GraphQLObjectType):
            raise KeyError(name)
        return found


def _sdl(name: str) -> str:
    return (resources.files(__package__) / "data" / f"xtrem_{name}.graphql").read_text("utf-8")


def sdl_text(generation: str = "current", operations: Iterable[str] = ()) -> str:
    """The SDL of one generation and the given API operations, bindings included."""
    if generation not in GENERATIONS:
        raise ValueError(f"generation must be one of {GENERATIONS}, not {generation!r}")
    chosen = list(dict.fromkeys(operations))
    unknown = [op for op in chosen if op not in OPERATIONS]
    if unknown:
        raise ValueError(f"unknown API operation {unknown[0]!r}: known are {OPERATIONS}")
    parts = [_sdl("common"), _sdl(generation)]
    if chosen:
        parts += [_sdl("custom"), *(_sdl(f"op_{op}") for op in chosen)]
    text = "\n".join(parts)
    return text + _envelopes(text)


def _envelopes(text: str) -> str:
    """Xtrem's generated types for the nodes and collections the SDL names."""
    code = re.sub(r"#[^\n]*", "", text)  # names in comments are not uses
    defined = set(re.findall(r"^(?:type|input|enum|scalar)\s+(\w+)", code, re.M))
    out = []
    for node, kind in sorted(set(_ENVELOPE.findall(code))):
        if f"{node}_{kind}" in defined:
            continue
        if kind == "Operations":
            out.append(
                f"type {node}_Operations {{\n  query({_CONNECTION_ARGS}): {node}_Connection\n"
                f"  read(_id: Id!): {node}\n}}"
            )
        else:
            out.append(
                f"type {node}_Collection {{\n  query({_CONNECTION_ARGS}): {node}_Connection\n}}"
            )
        if f"{node}_Connection" not in defined:
            defined.add(f"{node}_Connection")
            out.append(
                f"type {node}_Connection {{\n  edges: [{node}_Edge]\n  pageInfo: PageInfo\n"
                f"  totalCount: Int\n}}\ntype {node}_Edge {{\n  node: {node}\n  cursor: String\n}}"
            )
    return "\n\n# generated: Xtrem's envelope types\n" + "\n".join(out) if out else ""


def load(
    generation: str = "current",
    operations: Iterable[str] = (),
    removed: Mapping[str, Iterable[str]] | None = None,
) -> XtremSchema:
    """Build the schema a site serves; `removed` drops properties ({type: [property]})."""
    text = sdl_text(generation, operations)
    bindings, classes = _read_bindings(parse(text))
    schema = build_schema(_DIRECTIVE.sub("", text))
    for type_name, fields in (removed or {}).items():
        _remove(schema, type_name, list(fields))
    return XtremSchema(schema, bindings, classes)


def _remove(schema: GraphQLSchema, type_name: str, fields: list[str]) -> None:
    found = schema.type_map.get(type_name)
    if not isinstance(found, GraphQLObjectType):
        raise ValueError(f"removed: no object type {type_name!r} in the schema")
    for name in fields:
        if name not in found.fields:
            raise ValueError(f"removed: {type_name} has no property {name!r}")
        del found.fields[name]  # the cached field map: validation and introspection use it


def _read_bindings(document: DocumentNode) -> tuple[dict[tuple[str, str], Binding], dict[str, str]]:
    bindings: dict[tuple[str, str], Binding] = {}
    classes: dict[str, str] = {}
    kinds = (ObjectTypeDefinitionNode, ObjectTypeExtensionNode, InputObjectTypeDefinitionNode)
    for definition in document.definitions:
        if not isinstance(definition, kinds):
            continue
        name = definition.name.value
        args = _x3_args(definition.directives or ())
        if "class" in args:
            classes[name] = args["class"]
        for field in definition.fields or ():
            field_args = _x3_args(field.directives or ())
            if field_args:
                binding = Binding(field_args.get("code"), field_args.get("derive"))
                bindings[(name, field.name.value)] = binding
    return bindings, classes


def _x3_args(directives: Iterable[DirectiveNode]) -> dict[str, str]:
    for directive in directives:
        if directive.name.value == "x3":
            return {
                arg.name.value: arg.value.value
                for arg in directive.arguments or ()
                if isinstance(arg.value, StringValueNode)
            }
    return {}


_SCHEMAS: dict[tuple[str, tuple[str, ...]], XtremSchema] = {}


def validate(
    document: str, generation: str = "current", operations: Iterable[str] = ()
) -> list[str]:
    """graphql-core's validation of a document against Sage's schema: its error messages
    (a syntax error is one message). Empty: the document is valid."""
    key = (generation, tuple(sorted(set(operations))))
    if key not in _SCHEMAS:
        _SCHEMAS[key] = load(generation, key[1])
    try:
        parsed = parse(document)
    except Exception as error:  # graphql-core's GraphQLSyntaxError
        return [str(error).splitlines()[0]]
    return [error.message for error in graphql_validate(_SCHEMAS[key].schema, parsed)]
