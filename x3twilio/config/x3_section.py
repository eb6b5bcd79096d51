"""The `x3:` section: where X3 is, how it is signed in to, and where its data lives."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from x3twilio.config.options import declared, read
from x3twilio.config.urls import is_loopback, service_url
from x3twilio.config.x3_model import X3_APIS, X3_AUTHS, GraphQLNode, OAuth2Config, X3Config
from x3twilio.x3.partners import DEFAULT_ROLES, PARTNER_KINDS, PartnerShape, default_shapes
from x3twilio.yamlnode import Node

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load_x3(node: Node, state_dir: Path | None = None) -> X3Config:
    url = service_url(node, "url")
    folder = node.get("folder", str)
    api = read(node, X3Config, "api")
    if api not in X3_APIS:
        raise node.error("api", f"unsupported api {api!r}; expected rest or graphql")
    auth = node.get("auth", str, "connected_app" if api == "graphql" else "basic")
    if auth not in X3_AUTHS:
        raise node.error("auth", f"unknown auth {auth!r}; expected {', '.join(X3_AUTHS)}")
    if api == "rest" and auth == "connected_app":
        # Sage documents connected applications for GraphQL only; api1 takes Basic or OAuth2.
        raise node.error("auth", "api rest takes basic or oauth2; connected_app needs graphql")
    page_size = read(node, X3Config, "page_size")
    token_validity = read(node, X3Config, "token_validity")
    needs = {"basic": ("user", "password"), "connected_app": ("user", "client_id", "client_secret")}
    needs["oauth2"] = ("client_id", "client_secret", "oauth2")
    for key in needs[auth]:
        if node.data.get(key) in (None, ""):
            raise node.error(key, f"required for auth {auth}")
    graphql_path = read(node, X3Config, "graphql_path")
    if not graphql_path.startswith("/"):
        raise node.error("graphql_path", f"expected a path starting with /, got {graphql_path!r}")
    x3 = X3Config(
        api=api,
        url=url,
        folder=folder,
        user=read(node, X3Config, "user"),
        password=str(node.get("password", (str, int), declared(X3Config, "password").default)),
        page_size=page_size,
        timeout=read(node, X3Config, "timeout"),
        lookback=read(node, X3Config, "lookback"),
        settle=read(node, X3Config, "settle"),
        auth=auth,
        client_id=read(node, X3Config, "client_id"),
        client_secret=str(
            node.get("client_secret", (str, int), declared(X3Config, "client_secret").default)
        ),
        audience=read(node, X3Config, "audience"),
        token_validity=token_validity,
        graphql_path=graphql_path,
        oauth2=_load_oauth2(node.child("oauth2")) if node.has("oauth2") else None,
        packages=_load_packages(node),
        nodes=_load_nodes(node),
        mutations=_load_mutations(node.child("mutations")),
        schema_max_age=read(node, X3Config, "schema_max_age"),
        state_dir=state_dir,
        partners=_load_partners(node.child("partners")),
    )
    node.done()
    return x3


def _load_partners(node: Node) -> dict[str, PartnerShape]:
    """x3.partners.supplier|customer: class, representation, key and field codes by role."""
    shapes = default_shapes()
    for kind in map(str, node.data):
        if kind not in PARTNER_KINDS:
            raise node.error(kind, "expected supplier or customer")
        spec, base = node.child(kind), shapes[kind]
        roles, codes = dict(base.roles), spec.child("fields")
        for role in map(str, codes.data):
            if role not in DEFAULT_ROLES:
                raise codes.error(role, "unknown field; known: " + ", ".join(DEFAULT_ROLES))
            roles[role] = codes.get(role, str)
        x3_class = spec.get("class", str, base.x3_class)
        shapes[kind] = PartnerShape(
            base.kind,
            x3_class,
            spec.get("representation", str, x3_class),
            spec.get("key", str, base.key),
            roles,
        )
        spec.done()
    return shapes


def _load_oauth2(node: Node) -> OAuth2Config:
    authorize_url, token_url = service_url(node, "authorize_url"), service_url(node, "token_url")
    service_url(node, "redirect_uri")  # X3 Cloud POSTs the code there; kept as registered
    redirect_uri = node.get("redirect_uri", str).strip()
    parts = urlsplit(redirect_uri)
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        raise node.error(
            "redirect_uri",
            "an http redirect_uri must be on this machine (http://localhost:PORT/...): the "
            "authorisation code would cross the network in clear; use https",
        )
    api1_path = read(node, OAuth2Config, "api1_path")
    if not api1_path.startswith("/") or re.search(r"[?#]|\{(?!folder\})", api1_path):
        raise node.error(
            "api1_path", f"expected a path such as /api1/x3/erp/{{folder}}, got {api1_path!r}"
        )
    oauth2 = OAuth2Config(
        authorize_url=authorize_url,
        token_url=token_url,
        redirect_uri=redirect_uri,
        scope=read(node, OAuth2Config, "scope"),
        customer=read(node, OAuth2Config, "customer"),
        api1_path=api1_path.rstrip("/"),
    )
    node.done()
    return oauth2


def _load_packages(node: Node) -> dict[str, str]:
    packages = {}
    for name, actual in node.items("packages"):
        if not (isinstance(actual, str) and _IDENTIFIER.match(name) and _IDENTIFIER.match(actual)):
            raise node.child("packages").error(
                name, "expected a root name for it, e.g. x3Purchasing: xtremX3Purchasing"
            )
        packages[name] = actual
    return packages


def _load_nodes(node: Node) -> dict[str, GraphQLNode]:
    nodes, parent = {}, node.child("nodes")
    for x3_class, _ in node.items("nodes"):
        spec = parent.child(x3_class)
        name = spec.get("node", str, None)
        if name is not None and not re.fullmatch(r"[A-Za-z_]\w*\.[A-Za-z_]\w*", name):
            raise spec.error("node", f"expected package.node, e.g. x3Custom.smsLog, got {name!r}")
        fields = {}
        for code, path in spec.items("fields"):
            if not isinstance(path, str) or not path.strip():
                raise spec.child("fields").error(code, "expected a GraphQL path such as id")
            fields[code] = path
        key = tuple(str(k) for k in spec.get("key", list, []))
        if name is not None and not (key and fields):
            raise spec.error("fields", "a node of your own needs key and fields")
        nodes[x3_class] = GraphQLNode(name, key, fields)
        spec.done()
    return nodes


def _load_mutations(node: Node) -> dict[str, str]:
    mutations = {op: node.get(op, str, op) for op in ("update", "create")}
    node.done()
    return mutations
