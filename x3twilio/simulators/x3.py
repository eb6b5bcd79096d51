"""Simulator of the Sage X3 REST api1 (SData JSON), as a WSGI app.

It serves what real X3 sends (X3_REALITY.md; the captured payloads in tests/fixtures/x3/):
`/api1/x3/erp/{FOLDER}/{CLASS}?representation={REP}.$query|$details|$edit|$create`, key
paging with `$links.$next.$url`, SData `where`/`orderBy`, a 500 naming an unknown property
(R9), `$diagnoses` bodies, HTTP Basic with realm "Syracuse", `$etag` = UPDDATTIM stamped to the
UTC second, Yes/No fields as JSON booleans (R20), and discovery at
`{CLASS}/$prototypes('{REP}.$facet')`. Where the vendor's behaviour is unknown or differs
across sites, a constructor switch of `X3Simulator` picks it (its docstring lists them).
Control routes under `/_sim/` let tests in another process inject faults and read data.
"""

from __future__ import annotations

import re
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, quote

from . import Faults, Reply, StartResponse, faulted, request_target, send
from .graphql import GraphQLEndpoint
from .sdata import BadComparison, SDataSyntaxError, UnknownProperty, compile_where, parse_order_by
from .x3_codec import Codec
from .x3_control import FAULT_KINDS, control
from .x3_dataset import build_dataset
from .x3_errors import NotFound, SimError
from .x3_pages import GATEWAY_USER, authorized, diagnoses, refusal, unauthorized
from .x3_representations import Options, Representation, build_representations, describe
from .x3_requests import (
    Request,
    base_url,
    json_object,
    key_bound,
    next_query,
    page_size,
    split_target,
    unquote_key,
)
from .x3_store import X3Store
from .x3data import ClassDef, Dataset, Record, Rows, letter

__all__ = ["API_PREFIX", "FAULT_KINDS", "GATEWAY_USER", "NotFound", "SimError", "X3Simulator"]

API_PREFIX = "/api1/x3/erp/"
PROTOTYPE_FACETS = ("$query", "$details", "$edit")
_UUIDS = uuid.UUID("6f3b0c1e-58a4-4d7e-9a39-1c0de5ac0e31")
_RESOURCE = re.compile(r"(?P<cls>[A-Za-z0-9_]+)(?:\((?P<key>.*)\))?")
_PROTOTYPE = re.compile(
    r"(?:(?P<cls>[A-Za-z0-9_]+)/)?\$prototypes\('(?P<rep>[A-Za-z0-9_]+)\.(?P<facet>\$\w+)'\)"
)


def _choice(name: str, value: Any, allowed: tuple[Any, ...]) -> Any:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, not {value!r}")
    return value


# ---------------------------------------------------------------- the simulator


class X3Simulator(X3Store):
    """Sage X3 REST api1 over a seeded distributor dataset; a thread-safe WSGI app.

    Switches for what real sites do differently or what is not known (defaults: a standard
    site, as far as the evidence shows it):

    - `yes_no`: "boolean" (Yes/No fields are JSON booleans, as captured) or "menu" (older
      builds: 1 no, 2 yes). Each mode refuses the other's values in a PUT/POST (400).
    - `where_booleans`: "true" (`where` compares a Yes/No property with `true`/`false`) or
      "menu" (with 1/2). The other literal is a 500: `eq 2` in "true" mode cannot compare a
      boolean; `eq true` in "menu" mode is an unknown property `true`.
    - `prototypes`: serve `$prototypes('{REP}.$facet')` (False: 404, as a server without it).
    - `query_stamps`: whether `$query` rows carry UPDDATTIM/CREDATTIM (False: absent from the
      rows and the prototype, and a `where`/`orderBy` on them is a 500).
    - `renamed`: {class: {code: new code}}: the site serves a field under another name; the
      old one is unknown everywhere over HTTP (the store and the Python API keep it).
    - `representations`: {name: {"class": CLASS, "extra": {CODE: KIND}}}: custom
      representations over a class, in every facet; extra fields (kinds as in x3data, "A"
      being text of 250) are stored with the record, "" (or the kind's zero) by default.
    - `missing_status`: the HTTP status of `$details`/`$edit` for a key that does not exist.
    - `links_base`: the base URL its `$links` name, when not the one asked (a proxy in front).
    - `graphql`: the GraphQL endpoint's switches (generation, removed, operations, decimals,
      basic), as `GraphQLEndpoint` takes them.
    """

    def __init__(
        self,
        user: str = "admin",
        password: str = "admin-secret",
        folder: str = "SEED",
        clock: Callable[[], datetime] | None = None,
        dataset: Dataset | None = None,
        *,
        yes_no: str = "boolean",
        where_booleans: str = "true",
        prototypes: bool = True,
        query_stamps: bool = True,
        renamed: Mapping[str, Mapping[str, str]] | None = None,
        representations: Mapping[str, Mapping[str, Any]] | None = None,
        missing_status: int = 404,
        links_base: str | None = None,
        graphql: Mapping[str, Any] | None = None,
    ) -> None:
        self.password, self.folder = password, folder
        # The base URL `$links` name; None: the one the request came to. Behind a proxy
        # X3 may name its own internal address instead.
        self.links_base = links_base
        self.codec = Codec(menu=_choice("yes_no", yes_no, ("boolean", "menu")) == "menu")
        self.where_booleans = _choice("where_booleans", where_booleans, ("true", "menu"))
        self.prototypes = prototypes
        self.missing_status = missing_status
        self.faults = Faults()
        self.latency_ms: float = 0
        self.requests = 0
        options = Options(query_stamps, renamed or {}, representations or {})
        self._classes, self._reps = build_representations(options)
        super().__init__(self._classes, user, clock or (lambda: datetime.now(UTC)))
        self._load(build_dataset(self.now()) if dataset is None else dataset)
        # GraphQL over the same store: a record changed through one API is changed in both.
        self.graphql = GraphQLEndpoint(self, **(graphql or {}))

    # ------------------------------------------------------------ WSGI

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self.requests += 1
        dated = self._dated(start_response)
        path, query = split_target(environ)
        if path.startswith("/_sim/"):
            return send(dated, control(self, environ, path))
        if self.graphql.serves(path):
            return self.graphql(environ, dated, path)
        fault = self.faults.pick(environ["REQUEST_METHOD"], request_target(environ))
        reply = faulted(
            environ, fault, self.latency_ms, refusal, lambda: self._handle(environ, path, query)
        )
        return send(dated, reply)

    def _dated(self, start_response: StartResponse) -> StartResponse:
        """Add X3's clock as the Date header: clients read the server time from it."""

        def start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            return start_response(status, [*headers, ("Date", self._http_date())], *rest)

        return start

    def _http_date(self) -> str:
        return format_datetime(self._clock().astimezone(UTC), usegmt=True)

    def _handle(self, environ: dict[str, Any], path: str, query: str) -> Reply:
        try:
            return self._route(environ, path, query)
        except (UnknownProperty, BadComparison) as error:  # X3 answers these with a 500
            return Reply(500, diagnoses(str(error), trace=f"{type(error).__name__}: {error}"))
        except SDataSyntaxError as error:
            return Reply(400, diagnoses(str(error)))
        except NotFound as error:
            return Reply(self.missing_status, diagnoses(error.message))
        except SimError as error:
            return Reply(error.status, diagnoses(error.message))
        except Exception as error:  # keep serving, as X3 does, with the trace in the body
            return Reply(500, diagnoses(repr(error), "fatal", traceback.format_exc()))

    def _route(self, environ: dict[str, Any], path: str, query: str) -> Reply:
        if not authorized(environ, self.user, self.password):
            return unauthorized()
        if not path.startswith(API_PREFIX):
            raise SimError(404, f"Resource {path} not found")
        folder, _, resource = path[len(API_PREFIX) :].partition("/")
        if folder != self.folder:
            raise SimError(404, f"Endpoint {folder} not found")
        prototype = _PROTOTYPE.fullmatch(resource)
        if prototype is not None and self.prototypes:
            return self._prototype(environ, prototype)
        match = _RESOURCE.fullmatch(resource)
        if match is None:
            raise SimError(404, f"Resource {resource} not found")
        table = self._table(match["cls"])
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        rep, facet = self._facet(table.cls, params.get("representation", ""))
        key = unquote_key(match["key"])
        request = Request(environ, rep, table, key, query, params)
        method = environ["REQUEST_METHOD"]
        handler = _ROUTES.get((method, key is not None, facet))
        if handler is None and method not in ("GET", "PUT", "POST"):
            raise SimError(405, f"Method {method} is not allowed")
        if handler is None:
            raise SimError(400, f"Facet {facet or '(none)'} is not valid for {method} {resource}")
        return handler(self, request)

    def _facet(self, cls: ClassDef, representation: str) -> tuple[Representation, str]:
        if not representation:
            raise SimError(400, "The representation parameter is mandatory")
        name, _, facet = representation.partition(".")
        rep = self._reps.get(name)
        if rep is None or rep.cls.name != cls.name:
            raise SimError(404, f"Representation {name} not found")
        return rep, facet

    # ------------------------------------------------------------ api1 handlers

    def _query(self, request: Request) -> Reply:
        cls, table, view = request.cls, request.table, request.rep.query
        count = page_size(request.params)
        types = {name: self._compared_as(kind) for name, kind in view.scalars().items()}
        booleans = self.where_booleans == "true"
        where = compile_where(request.param("where"), types, cls.name, view.columns, booleans)
        order = parse_order_by(request.param("orderBy"), types, cls.name)
        stored = [(view.column(name), descending) for name, descending in order]
        bound = key_bound(table, request.param("key"))
        with self._lock:
            rows = table.select(where, stored, bound, count + 1)
        body: dict[str, Any] = {
            "$url": request.url(),
            "$descriptor": cls.descriptor,
            "$startIndex": 1,
            "$itemsPerPage": count,
            "$resources": [
                {"$uuid": self._uuid(f"{cls.name}/{k}"), "$key": k, **self._values(view, r)}
                for k, r in rows[:count]
            ],
            "$links": {},
        }
        if len(rows) > count:
            next_url = request.url(next_query(request.query, rows[count - 1][0]))
            if self.links_base:
                next_url = self.links_base + next_url[len(base_url(request.environ)) :]
            body["$links"] = {"$next": {"$url": next_url}}
        return Reply(200, body)

    def _compared_as(self, kind: str) -> str:
        """The type `where` compares a property as: a Yes/No as 1/2 in "menu" mode."""
        code = letter(kind)
        return "M" if code == "B" and self.where_booleans == "menu" else code

    def _details(self, request: Request) -> Reply:
        key = request.record_key()
        with self._lock:
            record = self._record(request.cls.name, key)
        return Reply(200, self._full(request.rep, key, record))

    def _put(self, request: Request) -> Reply:
        key, view = request.record_key(), request.rep.details
        body = json_object(request.environ)
        record = self._update(request.cls.name, key, body, view, self.codec)
        return Reply(200, self._full(request.rep, key, record))

    def _post(self, request: Request) -> Reply:
        body = json_object(request.environ)
        key, record = self._insert(request.cls.name, body, request.rep.details, self.codec)
        location = (
            f"{base_url(request.environ)}{API_PREFIX}{self.folder}/{request.cls.name}"
            f"('{quote(key.replace(chr(39), chr(39) * 2), safe='~')}')"
            f"?representation={request.rep.name}.$details"
        )
        meta = {
            "$key": key,
            "$url": location,
            "$creUser": record.get("CREUSR", self.user),
            "$creDate": record.get("CREDATTIM", ""),
            "$updUser": record.get("UPDUSR", self.user),
            "$updDate": record.get("UPDDATTIM", ""),
        }
        body = {**self._full(request.rep, key, record), **meta}
        return Reply(201, body, headers=[("Location", location)])

    def _full(self, rep: Representation, key: str, record: Record) -> dict[str, Any]:
        """The details facet: `$uuid`, `$etag`, the session context, then the record."""
        path = f"{rep.cls.name}/{key}"
        body = {"$uuid": self._uuid(path), "$etag": record.get("UPDDATTIM", ""), **self._context()}
        return {**body, **self._serialise(rep.details, record, path)}

    def _context(self) -> dict[str, str]:
        return {
            "$actxUser": self.user.upper(),
            "$actxLogin": self.user,
            "$actxFolder": self.folder,
            "$actxSolution": "X3",
            "$actxLan": "ENG",
            "$actxLanIso": "en-GB",
        }

    def _values(self, view: Rows, record: Mapping[str, Any]) -> dict[str, Any]:
        """A `$query` row: the scalar values `view` serves."""
        return {n: self.codec.out(k, record.get(view.column(n))) for n, k in view.scalars().items()}

    def _serialise(
        self, view: Rows, record: Mapping[str, Any], path: str, row: bool = False
    ) -> dict[str, Any]:
        """A `$details` record or child row: values, *_REF objects, child lists (each row
        with its `$uuid`), `$properties` (keys are mandatory; a child row's also disabled)."""
        body: dict[str, Any] = {}
        for name, kind in view.fields.items():
            column = view.column(name)
            if isinstance(kind, Rows):
                rows = enumerate(record.get(column) or [])
                body[name] = [self._row(kind, one, f"{path}/{name}/{i}") for i, one in rows]
                continue
            body[name] = self.codec.out(kind, record.get(column))
            ref = view.refs.get(column)
            if ref is not None:
                body[f"{name}_REF"] = ref(record, column)
        if view.keys:
            flags = {"$isDisabled": True, "$isMandatory": True} if row else {"$isMandatory": True}
            body["$properties"] = {key: dict(flags) for key in view.keys}
        return body

    def _row(self, view: Rows, row: Mapping[str, Any], path: str) -> dict[str, Any]:
        return {"$uuid": self._uuid(path), **self._serialise(view, row, path, row=True)}

    def _uuid(self, path: str) -> str:
        return str(uuid.uuid5(_UUIDS, f"{self.folder}/{path}"))

    def _prototype(self, environ: dict[str, Any], match: re.Match[str]) -> Reply:
        """What a representation's facet serves: each property's type, length, flags."""
        if environ["REQUEST_METHOD"] != "GET":
            raise SimError(405, f"Method {environ['REQUEST_METHOD']} is not allowed")
        rep = self._reps.get(match["rep"])
        if rep is None or match["cls"] not in (None, rep.cls.name):
            raise SimError(404, f"Representation {match['rep']} not found")
        facet = match["facet"]
        if facet not in PROTOTYPE_FACETS:
            raise SimError(404, f"Prototype {rep.name}.{facet} not found")
        view = rep.view(facet)
        return Reply(
            200,
            {
                "$url": f"{base_url(environ)}{request_target(environ)}",
                "$title": rep.cls.descriptor,
                "$representation": rep.name,
                "$facet": facet,
                "$properties": describe(view, facet == "$query", self.codec),
            },
        )


_ROUTES: dict[tuple[str, bool, str], Callable[[X3Simulator, Request], Reply]] = {
    ("GET", False, "$query"): X3Simulator._query,
    ("GET", True, "$details"): X3Simulator._details,
    ("GET", True, "$edit"): X3Simulator._details,
    ("PUT", True, "$edit"): X3Simulator._put,
    ("POST", False, "$create"): X3Simulator._post,
}
