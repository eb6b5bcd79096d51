"""Sage X3's GraphQL API (the Xtrem gateway, `POST /xtrem/api`) over the api1 simulator's store.

The schema is Sage's, as its developer reference pages publish it (`xtrem_schema`), served by
graphql-core: real parsing and validation ("Cannot query field 'x' on type 'Y'."), standard
introspection, execution with resolvers over the same store api1 serves (`xtrem_resolve`), and
Xtrem's filter/orderBy strings (`xtrem_filter`). A record changed through one API is changed
in the other.

Switches (`X3Simulator(graphql={...})`): `generation` "current" (x3... packages) or "legacy"
(xtremX3...), `removed` {type: [property]} a site does not serve, `operations` the API
operations the customer set up ("smsLog", "payment": a custom node with mutations; none by
default, and then no mutations at all), `decimals` "string" or "number", `basic` (HTTP Basic
accepted). Credentials are checked as X3 does: a connected application's HS256 JWT (401
"Error NN: Invalid token") or Basic; a request an X3 Cloud gateway forwarded (environ
`x3sim.gateway_user`) is already authenticated. Faults from `sim.faults` apply, matched against
"POST /xtrem/api query x3Purchasing.purchaseOrder.query(first:20) PORDER".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from graphql import (
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLObjectType,
    OperationDefinitionNode,
    execute,
    parse,
    validate,
)
from graphql.language import DocumentNode, IntValueNode, VariableNode

from . import Faults, Reply, StartResponse, faulted, read_body, send
from .x3_pages import GATEWAY_USER, LOGIN_PAGE, PROXY_PAGE
from .xtrem_filter import FilterError, parse_relaxed
from .xtrem_resolve import Resolver, Store
from .xtrem_schema import XtremSchema, load
from .xtrem_schema import validate as validate_document

__all__ = [
    "GRAPHQL_PATH",
    "ConnectedApp",
    "FilterError",
    "GraphQLEndpoint",
    "parse_relaxed",
    "validate_document",
]

GRAPHQL_PATH = "/xtrem/api"


class ServedX3(Store, Protocol):
    """What the endpoint serves: the store of an X3 simulator, its login and its faults
    (given by whoever builds the endpoint)."""

    user: str
    password: str
    folder: str
    faults: Faults
    latency_ms: float


@dataclass
class ConnectedApp:
    """One connected application as registered in X3 (Administration > ... > Connected apps)."""

    secret: str
    users: set[str]
    url: str | None = None  # None: the endpoint's own URL, as the request reaches it
    validity: int = 600  # "Tokens validity", seconds


@dataclass(frozen=True)
class _Request:
    document: DocumentNode | None
    variables: dict[str, Any]
    operation_name: str | None
    summary: str
    error: Reply | None


class GraphQLEndpoint:
    """`/xtrem/api` of one X3Simulator."""

    def __init__(
        self,
        sim: ServedX3,
        *,
        generation: str = "current",
        removed: Mapping[str, Iterable[str]] | None = None,
        operations: Iterable[str] = (),
        decimals: str = "string",
        basic: bool = True,
    ) -> None:
        if decimals not in ("string", "number"):
            raise ValueError(f"decimals must be 'string' or 'number', not {decimals!r}")
        self.sim = sim
        self.client_id = "x3twilio"
        secret = "sim-connected-app-secret-0123456789"  # HS256 wants 32 bytes or more
        self.apps = {self.client_id: ConnectedApp(secret, {sim.user})}
        self.basic = basic  # public code shows Basic working on /xtrem/api
        self.decimals = decimals  # Xtrem's Decimal as a JSON string, or "number"
        self.tokens: list[str] = []  # JWTs accepted, in order (for tests)
        self.documents: list[str] = []  # every query text received, in order (for tests)
        self.generation, self.operations = generation, tuple(operations)
        self.removed = {name: list(fields) for name, fields in (removed or {}).items()}
        self.xtrem: XtremSchema = load(generation, self.operations, self.removed)

    @property
    def client_secret(self) -> str:
        return self.apps[self.client_id].secret

    def use_legacy_names(self) -> None:
        """Serve the older (2021-2023) generation: xtremX3... packages and their shapes."""
        self.generation = "legacy"
        self.xtrem = load("legacy", self.operations, self.removed)

    @staticmethod
    def serves(path: str) -> bool:
        return path == GRAPHQL_PATH

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse, path: str
    ) -> list[bytes]:
        if environ["REQUEST_METHOD"] != "POST":
            method = environ["REQUEST_METHOD"]
            return send(start_response, _errors(405, f"{method} is not allowed"))
        request = self._parse(read_body(environ))
        fault = self.sim.faults.pick("POST", f"{GRAPHQL_PATH} {request.summary}")
        reply = faulted(
            environ,
            fault,
            self.sim.latency_ms,
            _refusal,
            lambda: self._answer(environ, request),
            _garble,
        )
        return send(start_response, reply)

    # -- one request ---------------------------------------------------------------------

    def _parse(self, body: bytes) -> _Request:
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return _Request(None, {}, None, "", _errors(400, "Invalid JSON body"))
        query, variables = payload.get("query"), payload.get("variables") or {}
        name = payload.get("operationName")
        if not isinstance(query, str) or not isinstance(variables, dict):
            return _Request(None, {}, None, "", _errors(400, "Must provide query string."))
        self.documents.append(query)
        try:
            document = parse(query)
        except GraphQLError as error:
            return _Request(None, {}, None, "", Reply(400, {"errors": [error.formatted]}))
        summary = self._summary(document, variables)
        return _Request(document, variables, name if isinstance(name, str) else None, summary, None)

    def _summary(self, document: DocumentNode, variables: Mapping[str, Any]) -> str:
        """What a fault's `match` is tested against: operation, node, first, api1 class."""
        parts = []
        schema = self.xtrem.schema
        for operation in document.definitions:
            if not isinstance(operation, OperationDefinitionNode):
                continue
            kind = operation.operation.value
            root = schema.mutation_type if kind == "mutation" else schema.query_type
            for package in _fields(operation):
                package_type = _field_type(root, package.name.value)
                nodes: list[FieldNode | None] = [*_fields(package)] or [None]
                for node in nodes:
                    node_type = _field_type(package_type, node.name.value) if node else None
                    node_name = getattr(node_type, "name", "").rpartition("_")[0]
                    cls = self.xtrem.classes.get(node_name, "")
                    ops: list[FieldNode | None] = [*(_fields(node) if node else [])] or [None]
                    for op in ops:
                        names = [f.name.value for f in (package, node, op) if f is not None]
                        first = _argument(op, "first", variables) if op else None
                        args = f"(first:{first})" if first is not None else ""
                        parts.append(f"{kind} {'.'.join(names)}{args} {cls}".strip())
        return " ".join(parts)

    def _answer(self, environ: dict[str, Any], request: _Request) -> Reply:
        gateway = bool(environ.get(GATEWAY_USER))
        refused = None if gateway else self._authenticate(environ)
        if refused is not None:
            return refused
        endpoint = environ.get("HTTP_X_XTREM_ENDPOINT", "")
        if not endpoint and not gateway:
            return _errors(400, "The x-xtrem-endpoint header is missing")
        if endpoint and endpoint != self.sim.folder:
            return _errors(404, f"Unknown endpoint {endpoint!r}")
        if request.error is not None:
            return request.error
        assert request.document is not None
        xtrem = self.xtrem  # one schema for the whole request, even if switched meanwhile
        problems = validate(xtrem.schema, request.document)
        if problems:
            return Reply(200, {"data": None, "errors": [p.formatted for p in problems]})
        result = execute(
            xtrem.schema,
            request.document,
            variable_values=request.variables,
            operation_name=request.operation_name,
            field_resolver=Resolver(self.sim, xtrem, self.decimals),
        )
        assert isinstance(result, ExecutionResult)  # no async resolvers
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [error.formatted for error in result.errors]
        body["extensions"] = {"diagnoses": []}
        return Reply(200, body)

    # -- credentials ---------------------------------------------------------------------

    def _authenticate(self, environ: dict[str, Any]) -> Reply | None:
        scheme, _, credential = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "basic" and self.basic:
            expected = f"{self.sim.user}:{self.sim.password}".encode()
            try:
                given = base64.b64decode(credential, validate=True)
            except ValueError:
                given = b""
            if hmac.compare_digest(given, expected):
                return None
            return Reply(401, "Unauthorized", "text/plain", [("WWW-Authenticate", "Basic")])
        if scheme.lower() != "bearer":
            return Reply(401, "Unauthorized", "text/plain")
        code = self._check_jwt(credential, environ)
        if code is None:
            self.tokens.append(credential)
            return None
        return Reply(401, f"Error {code}: Invalid token", "text/plain")

    def _check_jwt(self, token: str, environ: dict[str, Any]) -> int | None:
        """None if X3 accepts the token, else its error code (21, 41, 42, 45, 50)."""
        try:
            head, body, signature = token.split(".")
            header, claims = json.loads(_b64d(head)), json.loads(_b64d(body))
            given = _b64d(signature)
        except ValueError:
            return 50
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            return 50
        app = self.apps.get(str(claims.get("iss"))) if isinstance(claims, dict) else None
        if app is None:
            return 41
        expected = hmac.new(app.secret.encode(), f"{head}.{body}".encode(), hashlib.sha256)
        if not hmac.compare_digest(given, expected.digest()):
            return 50
        if claims.get("sub") not in app.users:
            return 42
        if claims.get("aud") != (app.url or self._endpoint_url(environ)):
            return 45
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int):
            return 50
        now = self.sim.now().timestamp()
        if iat > now:
            return 21
        if exp <= now or exp - iat > app.validity:
            return 50
        return None

    @staticmethod
    def _endpoint_url(environ: dict[str, Any]) -> str:
        host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        return f"{environ.get('wsgi.url_scheme', 'http')}://{host}{GRAPHQL_PATH}"


def _fields(node: Any) -> list[FieldNode]:
    selection_set = getattr(node, "selection_set", None)
    selections = selection_set.selections if selection_set else ()
    return [s for s in selections if isinstance(s, FieldNode) and not s.name.value.startswith("__")]


def _field_type(parent: Any, name: str) -> Any:
    """The named type of a field (None if the parent or the field is unknown)."""
    if not isinstance(parent, GraphQLObjectType) or name not in parent.fields:
        return None
    found = parent.fields[name].type
    while hasattr(found, "of_type"):
        found = found.of_type
    return found


def _argument(field: FieldNode, name: str, variables: Mapping[str, Any]) -> Any:
    for argument in field.arguments or ():
        if argument.name.value == name:
            if isinstance(argument.value, VariableNode):
                return variables.get(argument.value.name.value)
            if isinstance(argument.value, IntValueNode):
                return int(argument.value.value)
    return None


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _errors(status: int, message: str) -> Reply:
    return Reply(status, {"errors": [{"message": message}]})


def _garble(reply: Reply) -> Reply:
    """A "garbage" fault: the first half of the JSON the answer would have been."""
    text = json.dumps(reply.body).encode()
    return Reply(200, text[: max(len(text) // 2, 1)])


def _refusal(kind: str) -> Reply | None:
    """The answer of a fault that replaces the real one (None: answer normally)."""
    retry = [("Retry-After", "1")]
    lost = {"message": "Session lost: request failed"}
    return {
        "500": _errors(500, "Unexpected error in the X3 session"),
        "503": Reply(503, {"errors": [{"message": "No session available"}]}, headers=retry),
        "429": Reply(429, {"errors": [{"message": "Too many requests"}]}, headers=retry),
        "401": Reply(401, "Error 50: Invalid token", "text/plain"),
        "html": Reply(502, PROXY_PAGE, "text/html"),
        "html200": Reply(200, LOGIN_PAGE, "text/html; charset=utf-8"),
        "diagnoses": Reply(
            200,
            {
                "data": None,
                "errors": [lost],
                "extensions": {"diagnoses": [{"severity": "error", **lost}]},
            },
        ),
    }.get(kind)
