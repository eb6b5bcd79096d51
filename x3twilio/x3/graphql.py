"""Sage X3 GraphQL client (Xtrem gateway): api1's records, read from GraphQL nodes.

Every record comes back in api1's shape - X3 codes, local-menu integers, Yes/No as
booleans, dates YYYY-MM-DD, stamps ...Z, decimals as numbers - so sources, rules, notes and
the audit trail cannot tell the two APIs apart. Which node and field holds each X3 code is
a default (graphql_nodes.py) or an `x3.nodes` override; what the field is, and whether this
X3 has it at all, comes from the server's own schema (gql_schema.py). A query asks only for
fields the schema has; a needed field it lacks stops the run before any query (exit 78).
This module reads and writes; gql_nodemap.py decodes nodes, gql_transport.py POSTs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from decimal import InvalidOperation
from typing import Any

import requests

from x3twilio.config import X3Config
from x3twilio.decoding import stamp_literal
from x3twilio.errors import X3Error, X3FieldError
from x3twilio.sources import Source
from x3twilio.transport import Retrier
from x3twilio.x3.auth import Auth, make_auth
from x3twilio.x3.base import Page
from x3twilio.x3.gql_nodemap import NodeMap, resolve_node, selection
from x3twilio.x3.gql_partners import PartnerPlan, plan_partner
from x3twilio.x3.gql_props import Prop, dig
from x3twilio.x3.gql_schema import Absent, Schema, SchemaStore
from x3twilio.x3.gql_transport import GraphQLTransport
from x3twilio.x3.gql_where import all_of, merge, nest, relaxed, user_filter
from x3twilio.x3.graphql_nodes import missing_node, node_specs
from x3twilio.x3.partners import PartnerRecord, PartnerShape

PAGE = """query Page($first: Int!, $after: String, $filter: String, $orderBy: String) {
  %(root)s { %(node)s {
    query(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
      edges { node { %(selection)s } }
      pageInfo { hasNextPage endCursor }
    }
  } }
}"""
READ = """query Read { %(root)s { %(node)s { read(_id: %(id)s) { %(selection)s } } } }"""
WRITE = """mutation Write($data: %(input)s!) {
  %(root)s { %(node)s { %(operation)s(data: $data) { %(selection)s } } }
}"""


class GraphQLClient:
    def __init__(
        self,
        config: X3Config,
        session: requests.Session,
        retrier: Retrier,
        auth: Auth | None = None,
        needs: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.config, self.session, self.retrier = config, session, retrier
        self.auth = auth or make_auth(config, session)
        self.transport = GraphQLTransport(config, session, self.auth)
        self.specs = node_specs(config)
        self.store = SchemaStore(config.state_dir)
        self.needs = {name: tuple(codes) for name, codes in (needs or {}).items()}
        self._schema: Schema | None = None
        self._maps: dict[str, NodeMap] = {}
        self._partners: dict[str, PartnerPlan] = {}

    @property
    def url(self) -> str:
        return self.transport.url

    def run(
        self, query: str, variables: dict[str, Any], label: str = "GraphQL"
    ) -> tuple[dict[str, Any], datetime | None]:
        """POST one operation; the `data`, and X3's clock from the Date header."""
        return self.transport.run(query, variables, label)

    def need(self, needs: Mapping[str, Iterable[str]]) -> None:
        """What each source's rules read (rules.needed): queries ask for just that."""
        self.needs.update({name: tuple(codes) for name, codes in needs.items()})

    # -- the schema ----------------------------------------------------------------------

    @property
    def source(self) -> str:
        return f"{self.url} folder {self.config.folder}"

    def schema(self) -> Schema:
        if self._schema is None:
            cached = self.store.read(self.source, self.config.schema_max_age)
            self._schema = Schema(self._introspect, self.source, cached, self.store.write)
        return self._schema

    def refresh_schema(self) -> Schema:
        """Read the schema afresh (check does), forgetting what was resolved from it."""
        self._schema = Schema(self._introspect, self.source, None, self.store.write)
        self._maps.clear()
        self._partners.clear()
        return self._schema

    def _introspect(self, query: str) -> dict[str, Any]:
        data, _ = self.retrier.call(self.run, query, {}, "introspection")
        return data

    def node(self, x3_class: str) -> NodeMap:
        if x3_class not in self._maps:
            spec = self.specs.get(x3_class)
            if spec is None:
                raise missing_node(x3_class)
            try:
                self._maps[x3_class] = resolve_node(self.schema(), spec, self.config.packages)
            except Absent as exc:
                raise X3FieldError(
                    x3_class,
                    f"{x3_class} is mapped to {spec.name}, which this X3 does not have: {exc}. "
                    f"Fix: set x3.packages.{spec.package} to this X3's root name, or map "
                    f"x3.nodes.{x3_class}.node (`x3twilio check` lists the roots)",
                ) from None
        return self._maps[x3_class]

    def partner_plan(self, x3_class: str) -> PartnerPlan:
        if x3_class not in self._partners:
            node = self.node(x3_class)
            self._partners[x3_class] = plan_partner(self.schema(), node.type_name)
        return self._partners[x3_class]

    # -- reading -------------------------------------------------------------------------

    def source_props(self, source: Source) -> tuple[NodeMap, list[Prop]]:
        """The node and the fields a source's queries ask for: its key and stamp, and what
        its rules need (all its declared fields that this X3 has, until told)."""
        node = self.node(source.x3_class)
        required = [*source.key, source.timestamp, *self.needs.get(source.name, ())]
        wanted = [*required]
        if source.name not in self.needs:
            if source.partner:
                wanted += [source.partner.field, source.partner.kind_field or ""]
            wanted += [f.code for f in source.fields.values()]
        props = []
        for code in dict.fromkeys(c for c in wanted if c):
            if code in node.props:
                props.append(node.props[code])
            elif code in required:
                raise _for_source(node.missing(code), source)
        return node, props

    def pages(
        self,
        node: NodeMap,
        props: Iterable[Prop],
        filter_text: str | None,
        order: dict[str, Any],
        count: int | None = None,
    ) -> Iterator[Page]:
        """Every page of a query, with the same filter and orderBy on each (cursors need it)."""
        props = list(props)
        text = PAGE % {"root": node.root, "node": node.spec.node, "selection": selection(props)}
        variables: dict[str, Any] = {
            "first": count or self.config.page_size,
            "filter": filter_text,
            "orderBy": relaxed(order),
            "after": None,
        }
        seen: set[str] = set()
        while True:
            data, server_time = self.retrier.call(self.run, text, dict(variables), node.name)
            connection = dig(data, node.root, node.spec.node, "query")
            if not isinstance(connection, dict):
                raise X3Error(f"the answer for {node.name} has no query connection")
            rows = [e.get("node") for e in connection.get("edges") or [] if isinstance(e, dict)]
            decoded = [node.decode(row, props) for row in rows if isinstance(row, dict)]
            yield Page(decoded, server_time)
            info = connection.get("pageInfo") or {}
            if count is not None or not info.get("hasNextPage"):
                return
            cursor = info.get("endCursor")
            if not isinstance(cursor, str) or not cursor or cursor in seen:
                raise X3Error(f"paging loops on {node.name}: endCursor {cursor!r} repeats")
            seen.add(cursor)
            variables["after"] = cursor

    def changes(self, source: Source, lo: datetime, hi: datetime) -> Iterator[Page]:
        """Records stamped in [lo, hi), and-ed with the source's own filter; by stamp, key."""
        node, props = self.source_props(source)
        stamp = node.props[source.timestamp]
        window = nest(stamp.path, {"_gte": stamp_literal(lo), "_lt": stamp_literal(hi)})
        order = merge(nest(stamp.path, 1), self._key_order(node))
        where = all_of(relaxed(window), self._where(node, source.where))
        return self.pages(node, props, where, order)

    def due(self, source: Source, code: str, first: date, last: date) -> Iterator[Page]:
        """Open records whose date `code` falls in [first, last]."""
        node, props = self.source_props(source)
        dated = _source_prop(node, code, source, "a due-date rule")
        window = nest(dated.path, {"_gte": first.isoformat(), "_lte": last.isoformat()})
        where = all_of(
            relaxed(window),
            self._open(node, source),
            self._where(node, source.open_where),
            self._where(node, source.where),
        )
        return self.pages(node, [*props, dated], where, self._key_order(node))

    def keys(self, x3_class: str, key: str, representation: str | None = None) -> Iterator[str]:
        """Every key of a class (suppliers, customers), page by page."""
        node = self.node(x3_class)
        for page in self.pages(node, [node.prop(key)], None, self._key_order(node)):
            yield from (str(row[key]) for row in page.resources if row.get(key))

    def find(
        self, x3_class: str, field: str, value: str, representation: str | None = None
    ) -> dict[str, Any] | None:
        """The first record whose `field` equals `value`, if any."""
        node = self.node(x3_class)
        prop = node.prop(field, "a look-up")
        where = relaxed(nest(prop.path, {"_eq": prop.to_graphql(value)}))
        page = next(self.pages(node, node.props.values(), where, self._key_order(node), count=1))
        return page.resources[0] if page.resources else None

    def server_time(self, source: Source) -> datetime:
        """X3's clock (the Date of a one-row answer), which bounds this run's change window."""
        node = self.node(source.x3_class)
        keys = [_source_prop(node, code, source, "the key") for code in node.spec.key]
        page = next(self.pages(node, keys, None, self._key_order(node), count=1))
        if page.server_time is None:
            raise X3Error(f"{self.url} sends no Date header; cannot read X3's clock")
        return page.server_time

    def partner(self, shape: PartnerShape, code: str) -> PartnerRecord | None:
        """A supplier or customer from what its node offers: its default address (phones,
        e-mails) and its default contact, straight onto a PartnerRecord."""
        node = self.node(shape.x3_class)
        plan = self.partner_plan(shape.x3_class)
        found = self._read(node, code, plan.selection() or "_id")
        return None if found is None else plan.record(shape.kind, code, found)

    def details(
        self, x3_class: str, key: str, representation: str | None = None
    ) -> dict[str, Any] | None:
        """One record, or None if it does not exist."""
        node = self.node(x3_class)
        found = self._read(node, key, selection(node.props.values()))
        return node.decode(found) if found is not None else None

    def _read(self, node: NodeMap, key: str, chosen: str) -> dict[str, Any] | None:
        text = READ % {
            "root": node.root,
            "node": node.spec.node,
            "id": json.dumps(key),
            "selection": chosen,
        }
        data, _ = self.retrier.call(self.run, text, {}, node.name)
        found = dig(data, node.root, node.spec.node, "read")
        return found if isinstance(found, dict) else None

    # -- writing -------------------------------------------------------------------------

    def edit(
        self,
        x3_class: str,
        key: str,
        changes: dict[str, Any],
        representation: str | None = None,
    ) -> dict[str, Any]:
        """Update through the configured mutation (x3.mutations.update), as api1's $edit PUT."""
        node = self.node(x3_class)
        operation = self.config.mutations["update"]
        input_type = self.writable(node, operation, changes, key=True)
        data = {"_id": key, **self._input(node, changes)}
        return self.retrier.call(self._write, node, operation, input_type, data)

    def create(
        self, x3_class: str, body: dict[str, Any], representation: str | None = None
    ) -> dict[str, Any]:
        """One create mutation, not retried: a lost answer may hide a created record,
        so callers retry only after checking whether it exists."""
        node = self.node(x3_class)
        operation = self.config.mutations["create"]
        input_type = self.writable(node, operation, body)
        return self._write(node, operation, input_type, self._input(node, body))

    def writable(
        self, node: NodeMap, operation: str, values: Mapping[str, Any], key: bool = False
    ) -> str:
        """The mutation's input type, once the schema shows the mutation takes every field
        to be written; otherwise an X3FieldError (nothing invalid is ever sent)."""
        schema = self.schema()
        try:
            name, inputs = schema.one(
                lambda: schema.mutation_input(node.root, node.spec.node, operation)
            )
        except Absent as exc:
            raise X3FieldError(
                operation,
                f"replies cannot be written through GraphQL to {node.name}: {exc} (mutations "
                "exist only for the API operations set up in X3). Fix: set one up and name "
                f"it under x3.mutations.{'update' if key else 'create'}, or log replies "
                "through api1 (an inbound.notes target with x3.api: rest)",
            ) from None
        wanted = [node.prop(code).path[0] for code in values] + (["_id"] if key else [])
        lacking = [name for name in wanted if name not in inputs and name != "_id"]
        if lacking:
            raise X3FieldError(
                lacking[0],
                f"replies cannot be written through GraphQL: {node.name}.{operation} takes no "
                + ", ".join(lacking)
                + f" in {name}. Fix: correct inbound.notes fields, or x3.nodes.{node.x3_class}",
            )
        return name

    def _write(
        self, node: NodeMap, operation: str, input_type: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        text = WRITE % {
            "input": input_type,
            "root": node.root,
            "node": node.spec.node,
            "operation": operation,
            "selection": selection(node.props.values()),
        }
        answer, _ = self.run(text, {"data": data}, f"{node.name}.{operation}")
        written = dig(answer, node.root, node.spec.node, operation)
        if not isinstance(written, dict):
            raise X3Error(f"{node.name}.{operation} answered without the record")
        return node.decode(written)

    def _input(self, node: NodeMap, values: Mapping[str, Any]) -> dict[str, Any]:
        """api1 codes -> mutation input; a reference is given by its _id (the code)."""
        out = {}
        for code, value in values.items():
            prop = node.prop(code)
            try:
                out[prop.path[0]] = prop.to_graphql(value)
            except (TypeError, ValueError, InvalidOperation) as exc:
                raise X3Error(f"{node.name}: cannot write {code}={value!r}: {exc}") from None
        return out

    # -- filters -------------------------------------------------------------------------

    def _key_order(self, node: NodeMap) -> dict[str, Any]:
        return merge(*(nest(node.prop(code, "the key").path, 1) for code in node.spec.key))

    def _where(self, node: NodeMap, where: str | None) -> str | None:
        return user_filter(node.lookup, where, node.name)

    def _open(self, node: NodeMap, source: Source) -> str | None:
        """Leave closed records out in X3 already: {isClosed: {_ne: 'yes'}} on a NoYes
        enum (Sage's purchasing example), {closedStatus: {_ne: 2}} on an Int."""
        if source.closed is None:
            return None
        declared = source.fields[source.closed[0]]
        prop = node.props.get(declared.code)
        if prop is None:
            return None
        value: Any = source.closed[1]
        if declared.kind == "yesno":
            value = value == "yes"
        elif declared.kind == "menu":
            value = next((n for n, word in declared.menu.items() if word == value), None)
        try:
            closed = prop.to_graphql(value)
        except (TypeError, ValueError):
            return None  # the record's own value still says: sources check it
        return None if closed is None else relaxed(nest(prop.path, {"_ne": closed}))


def _source_prop(node: NodeMap, code: str, source: Source, why: str) -> Prop:
    try:
        return node.prop(code, why)
    except X3FieldError as exc:
        raise _for_source(exc, source) from None


def _for_source(exc: X3FieldError, source: Source) -> X3FieldError:
    return X3FieldError(exc.code, f"source {source.name}: {exc}")
