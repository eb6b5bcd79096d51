"""`check` against the customer's X3 over GraphQL: the same rows as api1's (site.py), from
the schema the server introspects.

Per source the fields keys, the stamp, rules, templates and recipients need (site.py's
source_check, fed the node as introspected); one row for the package roots; per kind of
partner, how a mobile is reached; per note target, whether a mutation can write it.
"""

from __future__ import annotations

from x3twilio.checks import Check
from x3twilio.config import Config, NoteTarget
from x3twilio.errors import RemoteError, X3FieldError
from x3twilio.rules import needed
from x3twilio.site import partner_kinds, source_check, target_class
from x3twilio.sources import Source
from x3twilio.x3.discover import Exposed, Property
from x3twilio.x3.gql_nodemap import NodeMap
from x3twilio.x3.gql_props import SITE_KINDS
from x3twilio.x3.gql_schema import Absent, package_candidates
from x3twilio.x3.graphql import GraphQLClient
from x3twilio.x3.partners import PartnerShape


def graphql_site_checks(config: Config, client: GraphQLClient) -> list[Check]:
    """Reads the schema afresh (and caches it), then checks what the configuration uses."""
    client.store.create()  # check keeps what it reads for the runs that follow
    client.refresh_schema()
    client.need(
        {s.name: [code for code, _, _ in needed(s, config.rules)] for s in config.used_sources()}
    )
    checks = [_packages_check(config, client)]
    checks += [_source_check(config, s, client) for s in config.used_sources()]
    checks += [_partner_check(config.x3.partners[k], client) for k in partner_kinds(config)]
    checks += [_note_check(config, t, client) for t in config.inbound.notes]
    return checks


def _used_classes(config: Config) -> list[str]:
    classes = [s.x3_class for s in config.used_sources()]
    classes += [config.x3.partners[k].x3_class for k in partner_kinds(config)]
    classes += [target_class(config, t)[0] for t in config.inbound.notes]
    return list(dict.fromkeys(classes))


def _packages_check(config: Config, client: GraphQLClient) -> Check:
    """The package roots this X3 answers to: x3Purchasing, or xtremX3Purchasing on older
    builds (found either way; x3.packages names others)."""
    schema = client.schema()
    schema.roots()
    roots = set(schema.one(schema.root_fields))
    packages = sorted({client.specs[c].package for c in _used_classes(config) if c in client.specs})
    found, lost = [], []
    for package in packages:
        configured = config.x3.packages.get(package)
        root = next((c for c in package_candidates(package, configured) if c in roots), None)
        if root is None:
            lost.append(package)
        else:
            found.append(package if root == package else f"{package}→{root}")
    name = "X3 GraphQL packages"
    if lost:
        known = ", ".join(sorted(r for r in roots if r.startswith(("x3", "xtrem"))))
        return Check(
            name,
            False,
            f"{', '.join(lost)} not among the roots of {client.url} ({known or 'none'})",
            "set x3.packages (e.g. x3Purchasing: xtremX3Purchasing) to this X3's root names",
            setup=True,
        )
    return Check(name, True, "by introspection: " + ", ".join(found))


def _node(client: GraphQLClient, x3_class: str) -> NodeMap | Check:
    try:
        return client.node(x3_class)
    except X3FieldError as exc:
        detail, _, fix = str(exc).partition(". Fix: ")
        return Check(f"X3 {x3_class} node", False, detail, fix, setup=True)


def _source_check(config: Config, source: Source, client: GraphQLClient) -> Check:
    node = _node(client, source.x3_class)
    if isinstance(node, Check):
        return Check(f"X3 {source.name} fields", False, node.detail, node.fix, setup=True)
    properties = {
        code: Property(code, SITE_KINDS.get(prop.kind, "?")) for code, prop in node.props.items()
    }
    missing = {}
    for code, _, _why in needed(source, config.rules):
        if code not in node.props:
            detail, _, fix = str(node.missing(code)).partition(". Fix: ")
            missing[code] = (f"{detail.split(': ', 1)[-1]} (for {code})", fix)
    label = f"{source.x3_class} ({node.name}, by introspection)"
    return source_check(config, source, Exposed("introspection", properties, label, missing))


def _partner_check(shape: PartnerShape, client: GraphQLClient) -> Check:
    name = f"X3 {shape.kind}s"
    node = _node(client, shape.x3_class)
    if isinstance(node, Check):
        return Check(name, False, node.detail, node.fix, setup=True)
    try:
        plan = client.partner_plan(shape.x3_class)
    except (Absent, RemoteError) as exc:
        return Check(name, False, f"{node.name}: {exc}", "check x3.nodes", setup=True)
    where = f"{shape.x3_class} ({node.name}, by introspection)"
    ways = plan.ways_to_mobiles()
    if not ways:
        return Check(
            name,
            False,
            f"{where}: no mobile can be found: " + "; ".join(plan.missing),
            f"map x3.nodes.{shape.x3_class} to a node whose default address or contact has "
            "phones, or read partners through api1 (x3.api: rest)",
            setup=True,
        )
    detail = f"{where}: mobiles from " + " and ".join(ways)
    if plan.missing:
        detail += "; not in this schema: " + "; ".join(plan.missing)
    return Check(name, True, detail)


def _note_check(config: Config, target: NoteTarget, client: GraphQLClient) -> Check:
    x3_class, _ = target_class(config, target)
    name = f"X3 notes on {target.on}"
    alternative = (
        "replies cannot be written through GraphQL here: log them in a node of your own "
        f"(x3.nodes.{target.x3_class or 'YSMSLOG'} with its create mutation, inbound.notes "
        "mode create), or through api1 (x3.api: rest with an inbound.notes target)"
    )
    node = _node(client, x3_class)
    if isinstance(node, Check):
        return Check(name, False, node.detail, alternative, setup=True)
    if target.mode == "append":
        codes, operation, key = [target.text_field or ""], config.x3.mutations["update"], True
    else:
        codes, operation, key = list(target.fields), config.x3.mutations["create"], False
    lacking = [code for code in codes if code not in node.props]
    if lacking:
        return Check(
            name,
            False,
            f"{node.name} has no field for " + ", ".join(lacking) + "; " + alternative,
            f"map {', '.join(lacking)} under x3.nodes.{x3_class}.fields, or {alternative}",
            setup=True,
        )
    try:
        input_type = client.writable(node, operation, dict.fromkeys(codes), key=key)
    except X3FieldError as exc:
        detail, _, fix = str(exc).partition(". Fix: ")
        return Check(name, False, detail, fix, setup=True)
    return Check(
        name,
        True,
        f"replies {'update' if key else 'create'} {node.name} ({operation}, {input_type})",
    )
