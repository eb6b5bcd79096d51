"""Resolvers: GraphQL properties read from (and mutations written to) the api1 store.

One `Resolver` serves one request. A property's value comes from its `@x3` binding (a stored
column, or a derivation in `DERIVED`), shaped by the property's GraphQL type: a reference to
a node type with an api1 class reads that record, another reference is its code (`Key`),
a `_Collection` is rows, enums come from local-menu numbers (in the enum's value order; NoYes
from a Yes/No field), a Decimal is a JSON string (or number), a Datetime ISO with `Z`.
The derivations (partners, addresses, contacts, keys) are in `xtrem_derived`.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cmp_to_key
from typing import Any, Protocol

from graphql import (
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
)

from .x3_errors import NotFound, SimError
from .x3data import stamp
from .xtrem_derived import DERIVED, View, is_yes
from .xtrem_filter import (
    FilterError,
    SortPath,
    compare_keys,
    leaf_name,
    matches,
    parse_relaxed,
    plain,
    sort_paths,
    sort_value,
    typed,
)
from .xtrem_schema import XtremSchema


class Store(Protocol):
    """The records the resolvers read and write: an X3 simulator's Python API."""

    def get(self, cls: str, key: str) -> dict[str, Any]: ...
    def records(self, cls: str) -> list[dict[str, Any]]: ...
    def create(self, cls: str, record: Mapping[str, Any]) -> dict[str, Any]: ...
    def update(self, cls: str, key: str, **changes: Any) -> dict[str, Any]: ...
    def now(self) -> datetime: ...


DEFAULT_FIRST = 20  # Xtrem's default page size
MAX_FIRST = 1000
_ENVELOPE = ("_Connection", "_Edge")


@dataclass(frozen=True)
class Key:
    """A reference the simulator knows only by its code: `company { code }`."""

    value: str


@dataclass(frozen=True)
class Rows:
    """A collection's rows, of one item type."""

    rows: list[Any]
    type_name: str


@dataclass(frozen=True)
class NodeOps:
    """A node under its package: `query`, `read`, and the mutations set up for it."""

    type_name: str


PACKAGE = object()  # a package field: its nodes resolve from the schema


class Resolver:
    """The Lookup filters use and graphql-core's field resolver, over one X3 simulator."""

    def __init__(self, sim: Store, xtrem: XtremSchema, decimals: str) -> None:
        self.sim, self.xtrem, self.decimals = sim, xtrem, decimals
        self._records: dict[tuple[str, str], dict[str, Any] | None] = {}

    # -- graphql-core's entry point ------------------------------------------------------

    def __call__(self, source: Any, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
        parent, name = info.parent_type.name, info.field_name
        if source is None and parent in ("Query", "Mutation"):
            return PACKAGE
        if source is PACKAGE:
            return NodeOps(leaf_name(info.return_type).rpartition("_")[0])
        if isinstance(source, NodeOps):
            return self._operation(source.type_name, name, args)
        if isinstance(source, Rows):
            return self.connection(source.type_name, source.rows, args)
        if parent.endswith(_ENVELOPE) or parent == "PageInfo":
            return source.get(name)
        return self.value(parent, name, source)

    def _operation(self, node: str, name: str, args: dict[str, Any]) -> Any:
        cls = self.xtrem.classes[node]
        if name == "query":
            return self.connection(node, self.sim.records(cls), args)
        if name == "read":
            return self.record(cls, str(args["_id"]))
        return self._write(node, cls, name, dict(args["data"]))

    # -- the Lookup filters use ------------------------------------------------------------

    def field(self, type_name: str, name: str) -> GraphQLField | None:
        found = self.xtrem.schema.type_map.get(type_name)
        return found.fields.get(name) if isinstance(found, GraphQLObjectType) else None

    def value(self, type_name: str, name: str, source: Any) -> Any:
        """One property of a source, as graphql-core gets it (leaves on the wire)."""
        field = self.field(type_name, name)
        if field is None:
            return None
        if name == "_access":
            return []
        binding = self.xtrem.binding(type_name, name)
        if binding is None:
            if isinstance(source, Key):
                raw = source.value if name in ("code", "_id") else None
            else:
                raw = source.get(name) if isinstance(source, View) else None
        elif binding.derive:
            raw = DERIVED[binding.derive](self, type_name, source, binding.code)
        else:
            raw = source.get(binding.code) if isinstance(source, Mapping) else None
        return self._shape(field.type, raw)

    def key(self, type_name: str, source: Any) -> str:
        """A source's key, as a filter on a reference compares it."""
        if isinstance(source, Key):
            return source.value
        if self.field(type_name, "_id") is not None:
            found = self.value(type_name, "_id", source)
            return "" if found is None else str(found)
        return str(source.get("code", "")) if isinstance(source, Mapping) else ""

    # -- shaping a stored value --------------------------------------------------------------

    def _shape(self, field_type: Any, raw: Any) -> Any:
        while isinstance(field_type, GraphQLNonNull):
            field_type = field_type.of_type
        if isinstance(field_type, GraphQLList):
            return [self._shape(field_type.of_type, item) for item in raw or []]
        name = field_type.name
        if name.endswith("_Collection"):
            return Rows(list(raw or []), name.removesuffix("_Collection"))
        if isinstance(field_type, GraphQLObjectType):
            if raw is None or raw == "" or isinstance(raw, Mapping | Key):
                return raw or None
            cls = self.xtrem.classes.get(name)
            return self.record(cls, str(raw)) if cls else Key(str(raw))
        if isinstance(field_type, GraphQLEnumType):
            return _enum_out(field_type, raw)
        return self._scalar(name, raw)

    def _scalar(self, name: str, raw: Any) -> Any:
        if name == "Decimal":
            number = Decimal(str(raw or 0))
            return str(number) if self.decimals == "string" else float(number)
        if name == "Int":
            return (2 if raw else 1) if isinstance(raw, bool) else int(raw or 0)
        if name == "Boolean":
            return None if raw is None else is_yes(raw)
        if name in ("Date", "Datetime"):
            if not raw or raw == "0000-00-00":
                return None
            text = str(raw)
            return text.replace("Z", ".000Z") if text.endswith("Z") and "." not in text else text
        return None if raw is None else str(raw)

    def record(self, cls: str, key: str) -> dict[str, Any] | None:
        """A stored record by its key, once per request (None: there is none)."""
        if (cls, key) not in self._records:
            try:
                self._records[(cls, key)] = self.sim.get(cls, key)
            except (NotFound, SimError):
                self._records[(cls, key)] = None
        return self._records[(cls, key)]

    # -- connections ---------------------------------------------------------------------

    def connection(
        self, type_name: str, rows: list[Any], args: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A page of rows: filtered, sorted (then by key), cut by first/after/last/before."""
        first, last = args.get("first"), args.get("last")
        if first is None and last is None:
            first = DEFAULT_FIRST
        for name, count in (("first", first), ("last", last)):
            if count is not None and not 0 < count <= MAX_FIRST:
                raise FilterError(f"{name} must be 1 to {MAX_FIRST}, not {count}")
        filter_text, order_text = args.get("filter") or "", args.get("orderBy") or ""
        condition = parse_relaxed(filter_text) if filter_text else None
        paths = sort_paths(self, type_name, parse_relaxed(order_text)) if order_text else []
        kept = [r for r in rows if condition is None or matches(self, type_name, condition, r)]
        directions = [d for _, d in paths] + [1]

        def sort_key(row: Any) -> list[Any]:
            return [sort_value(self, p, row) for p, _ in paths] + [self.key(type_name, row)]

        def order(a: tuple[list[Any], Any], b: tuple[list[Any], Any]) -> int:
            return compare_keys(a[0], b[0], directions)

        keyed = sorted(((sort_key(r), r) for r in kept), key=cmp_to_key(order))
        # The cursor holds the row's sort values and a check of filter and orderBy: the
        # same cursor under another query is refused (clients must resend both).
        check = str(zlib.crc32(f"{filter_text}|{order_text}".encode()) % 100000)
        start, end = 0, len(keyed)
        if args.get("after"):
            after = _decode(str(args["after"]), check, paths, self)
            start = next(
                (i for i, (k, _) in enumerate(keyed) if order((k, 0), (after, 0)) > 0), end
            )
        if args.get("before"):
            before = _decode(str(args["before"]), check, paths, self)
            end = next(
                (i for i, (k, _) in enumerate(keyed) if order((k, 0), (before, 0)) >= 0), end
            )
        lo, hi = start, min(end, start + first) if first is not None else end
        if last is not None:
            lo = max(lo, hi - last)
        page = keyed[lo:hi]

        def cursor(key: list[Any]) -> str:
            return json.dumps([plain(v) for v in key]) + f"#{check}"

        return {
            "totalCount": len(keyed),
            "edges": [{"cursor": cursor(k), "node": r} for k, r in page],
            "pageInfo": {
                "hasNextPage": hi < len(keyed),
                "hasPreviousPage": lo > 0,
                "startCursor": cursor(page[0][0]) if page else None,
                "endCursor": cursor(page[-1][0]) if page else None,
            },
        }

    # -- mutations -----------------------------------------------------------------------

    def _write(self, node: str, cls: str, operation: str, data: dict[str, Any]) -> Any:
        input_name = f"{node}_Input"
        input_type = self.xtrem.schema.type_map[input_name]
        assert isinstance(input_type, GraphQLInputObjectType)
        key = data.pop("_id", None)
        record = {}
        for name, value in data.items():
            binding = self.xtrem.binding(input_name, name)
            if binding is None or not binding.code:
                raise GraphQLError(f"{input_name}: property {name} is not writable")
            record[binding.code] = _into(input_type.fields[name].type, value)
        try:
            if operation == "create":
                return self.sim.create(cls, record)
            if not key:
                raise GraphQLError(f"{node}: update needs data._id")
            return self.sim.update(cls, str(key), **record)
        except NotFound:
            raise GraphQLError(f"{node}: record not found: {key}") from None
        except SimError as error:
            raise GraphQLError(f"{node}: {error.message}") from None


def _decode(
    text: str, check: str, paths: list[tuple[SortPath, int]], lookup: Resolver
) -> list[Any]:
    values, _, given = text.rpartition("#")
    try:
        raw = json.loads(values)
    except ValueError:
        raw = None
    if given != check or not isinstance(raw, list) or len(raw) != len(paths) + 1:
        raise FilterError("Invalid cursor: it belongs to another filter or orderBy, or is corrupt")
    out = []
    for (path, _), value in zip(paths, raw, strict=False):
        type_name, name = path[-1]
        field = lookup.field(type_name, name)
        leaf = leaf_name(field.type) if field else "String"
        out.append(None if value is None else typed(leaf if leaf in _TYPED else "String", value))
    return [*out, raw[-1]]


_TYPED = ("Decimal", "Int", "Datetime", "Date", "Boolean")


def _enum_out(enum: GraphQLEnumType, raw: Any) -> str | None:
    names: list[str] = list(enum.values)
    if isinstance(raw, str):
        return raw if raw in names else None
    if enum.name == "NoYes" or isinstance(raw, bool):
        return names[1] if is_yes(raw) else names[0]
    number = int(raw or 0)
    return names[number - 1] if 0 < number <= len(names) else None


def _into(field_type: Any, value: Any) -> Any:
    """A mutation input value as the api1 store keeps it."""
    while isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    if value is None:
        return None
    if isinstance(field_type, GraphQLEnumType):
        names = list(field_type.values)
        return value == "yes" if field_type.name == "NoYes" else names.index(value) + 1
    name = getattr(field_type, "name", "")
    if name == "Datetime":
        moment = typed("Datetime", value)
        return stamp(moment)
    if name == "Decimal":
        return float(Decimal(str(value)))
    return value
