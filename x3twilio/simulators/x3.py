"""Simulator of the Sage X3 REST api1 (SData JSON), as a WSGI app.

Routes, envelopes, errors and quirks follow SAGE_X3.md §1 and §5: key paging with
`$links.$next.$url`, SData `where`/`orderBy`, a 500 for an unknown property, `$diagnoses`
bodies, HTTP Basic with realm "Syracuse", and UPDDATTIM stamped to the UTC second.
Control routes under `/_sim/` let tests in another process inject faults and read data.
"""

from __future__ import annotations

import base64
import hmac
import json
import operator
import re
import threading
import time
import traceback
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from itertools import islice
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from . import (
    Faults,
    StartResponse,
    abort_connection,
    read_body,
    request_target,
    respond,
    sleep_ms,
)
from .sdata import (
    Predicate,
    SDataSyntaxError,
    UnknownProperty,
    comparable,
    compile_where,
    parse_order_by,
)
from .x3data import (
    CLASSES,
    ClassDef,
    Dataset,
    Record,
    build_dataset,
    default,
    dimension,
    key_of,
    stamp,
)

API_PREFIX = "/api1/x3/erp/"
DEFAULT_COUNT = 20
MAX_COUNT = 200
FAULT_KINDS = (
    *("500", "503", "429", "401", "html", "html200", "garbage", "diagnoses"),  # refusals
    *("timeout", "reset"),  # the real answer, late or never
)
_UUIDS = uuid.UUID("6f3b0c1e-58a4-4d7e-9a39-1c0de5ac0e31")
_RESOURCE = re.compile(r"(?P<cls>[A-Za-z0-9_]+)(?:\((?P<key>.*)\))?")
_NUMBERED = re.compile(r"(?P<name>[A-Z_][A-Z0-9_]*?)(?P<index>[1-9][0-9]*)")


class SimError(Exception):
    """A request the simulated X3 refuses: an HTTP status and a `$diagnoses` message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(SimError, KeyError):
    """No record with that key (X3's message 721)."""

    def __init__(self, cls: str, key: str) -> None:
        super().__init__(404, "721 : Record does not exist")
        self.cls, self.key = cls, key


@dataclass
class Reply:
    status: int
    body: bytes | str | dict[str, Any] | list[Any] = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


def diagnoses(message: str, severity: str = "error", trace: str = "") -> dict[str, Any]:
    entry = {"$severity": severity, "$message": message}
    if trace:
        entry["$stackTrace"] = trace
    return {"$diagnoses": [entry]}


# ---------------------------------------------------------------- storage


@dataclass(frozen=True)
class _Bound:
    """`key=gt.X`: a comparison on the primary key (a prefix of it for composite keys)."""

    op: str
    probe: tuple[Any, ...]

    def admits(self, typed: tuple[Any, ...]) -> bool:
        return bool(_KEY_OPS[self.op](typed[: len(self.probe)], self.probe))

    def span(self, typed: list[tuple[Any, ...]]) -> range:
        """Positions in the sorted key index that satisfy the bound."""
        size = len(self.probe)
        find = bisect_right if self.op in ("gt", "le") else bisect_left
        edge = find(typed, self.probe, key=lambda t: t[:size])
        return range(edge, len(typed)) if self.op in ("gt", "ge") else range(edge)


_KEY_OPS = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}


class _Table:
    """One class's records by key, plus a sorted key index for key paging."""

    def __init__(self, cls: ClassDef) -> None:
        self.cls = cls
        self.rows: dict[str, Record] = {}
        self.kinds = [cls.fields[name] for name in cls.keys]
        # Shared by bulk-loaded rows: stored values are never mutated in place.
        self.template = cls.defaults()
        self.sequence = 0  # last auto-number handed out
        self._typed: list[tuple[Any, ...]] | None = None
        self._keys: list[str] = []

    def _by_key(self, pair: tuple[str, Record]) -> tuple[Any, ...]:
        return self.typed(pair[1])

    def typed(self, record: Mapping[str, Any]) -> tuple[Any, ...]:
        pairs = zip(self.cls.keys, self.kinds, strict=True)
        return tuple(comparable(record.get(name), kind) for name, kind in pairs)

    def parse_key(self, text: str) -> tuple[Any, ...]:
        parts = text.split("~", len(self.kinds) - 1)
        try:
            return tuple(comparable(p, k) for p, k in zip(parts, self.kinds, strict=False))
        except ValueError:
            raise SimError(400, f"Invalid key value {text!r}") from None

    def put(self, key: str, record: Record) -> None:
        """Store a record; copy-on-write, so readers may keep the old one."""
        new = key not in self.rows
        self.rows[key] = record
        if new and self._typed is not None:
            typed = self.typed(record)
            position = bisect_right(self._typed, typed)
            self._typed.insert(position, typed)
            self._keys.insert(position, key)

    def invalidate(self) -> None:
        self._typed = None

    def index(self) -> tuple[list[tuple[Any, ...]], list[str]]:
        if self._typed is None:
            pairs = sorted((self.typed(r), k) for k, r in self.rows.items())
            self._typed = [typed for typed, _ in pairs]
            self._keys = [key for _, key in pairs]
        return self._typed, self._keys

    def select(
        self, where: Predicate, order: list[tuple[str, bool]], bound: _Bound | None, limit: int
    ) -> list[tuple[str, Record]]:
        """Filter, sort, apply the key bound, and take `limit` rows (as X3 pages)."""
        if _is_key_order(order, self.cls.keys):
            typed, keys = self.index()
            span = bound.span(typed) if bound else range(len(keys))
            hits = ((keys[i], self.rows[keys[i]]) for i in span)
            return list(islice(((k, r) for k, r in hits if where(r)), limit))
        rows = sorted(((k, r) for k, r in self.rows.items() if where(r)), key=self._by_key)
        for name, descending in reversed(order):
            kind = self.cls.fields[name]
            rows.sort(key=lambda kr: comparable(kr[1].get(name), kind), reverse=descending)
        kept = (kr for kr in rows if bound is None or bound.admits(self.typed(kr[1])))
        return list(islice(kept, limit))


def _is_key_order(order: list[tuple[str, bool]], keys: tuple[str, ...]) -> bool:
    """True when `order` sorts like the primary key, so the key index can serve it."""
    for position, (name, descending) in enumerate(order):
        if position == len(keys):
            return True  # the key is unique: what follows it never matters
        if descending or name != keys[position]:
            return False
    return True


def _copy(record: Mapping[str, Any]) -> Record:
    """Copy a record (child rows and arrays too) so callers cannot change the store."""
    return {name: _copy_value(value) for name, value in record.items()}


def _copy_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy_value(item) for item in value]
    return _copy(value) if isinstance(value, dict) else value


# ---------------------------------------------------------------- values in and out


def _convert(cls: str, name: str, kind: str, value: Any) -> Any:
    """Check one incoming property value against its X3 type; return the raw value."""
    if value is None:
        return default(kind)
    try:
        return _CONVERTERS[kind[0] if "*" not in kind else "*"](kind, value)
    except (TypeError, ValueError):
        raise SimError(400, f"Invalid value {value!r} for property {name} in class {cls}") from None


def _alpha(kind: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(value)
    return str(value)


def _number(kind: str, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(value)
    number = float(value) if isinstance(value, str) else value
    return int(number) if kind == "M" else number


def _date(kind: str, value: Any) -> str:
    if kind == "DT":
        return stamp(comparable(value, "DT")) if value else ""
    return date.fromisoformat(value).isoformat() if value else ""


def _array(kind: str, value: Any) -> list[str]:
    size = dimension(kind)
    if not isinstance(value, list) or len(value) > size:
        raise TypeError(value)
    return [_alpha("A", v) if v is not None else "" for v in value] + [""] * (size - len(value))


_CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    "A": _alpha,
    "N": _number,
    "M": _number,
    "D": _date,
    "*": _array,
}


def _absorb(cls: str, spec: Mapping[str, str], body: Mapping[str, Any], base: Record) -> Record:
    """Merge incoming properties (arrays or TEL1..TEL5 style) into a copy of `base`."""
    record = dict(base)
    for name, value in body.items():
        if name.startswith("$"):
            continue  # $uuid, $etag...: framework properties the client echoes back
        if name in spec:
            record[name] = _convert(cls, name, spec[name], value)
            continue
        numbered = _NUMBERED.fullmatch(name)
        kind = spec.get(numbered["name"], "") if numbered else ""
        if not numbered or int(numbered["index"]) > dimension(kind):
            raise SimError(400, f"Property {name} not found in class {cls}")
        array = list(record[numbered["name"]])
        array[int(numbered["index"]) - 1] = _alpha("A", "" if value is None else value)
        record[numbered["name"]] = array
    return record


def _absorb_record(cls: ClassDef, body: Mapping[str, Any], base: Record) -> Record:
    scalars = {k: v for k, v in body.items() if k not in cls.children}
    record = _absorb(cls.name, cls.fields, scalars, base)
    for name, spec in cls.children.items():
        if name not in body:
            continue
        rows = body[name]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise SimError(400, f"Property {name} of class {cls.name} must be a list of objects")
        empty = {n: default(k) for n, k in spec.items()}
        record[name] = [_absorb(cls.name, spec, row, empty) for row in rows]
    return record


def _out(spec: Mapping[str, str], record: Mapping[str, Any], numbered: bool) -> dict[str, Any]:
    """Serialise a row's scalar fields; dimensioned ones as arrays or as TEL1..TEL5."""
    out: dict[str, Any] = {}
    for name, kind in spec.items():
        value = record.get(name)
        if "*" in kind and numbered:
            out.update({f"{name}{i + 1}": v for i, v in enumerate(value or [])})
        else:
            out[name] = list(value) if isinstance(value, list) else value
    return out


# ---------------------------------------------------------------- requests


@dataclass
class _Request:
    environ: dict[str, Any]
    cls: ClassDef
    table: _Table
    key: str | None
    query: str
    params: dict[str, str]

    def record_key(self) -> str:
        if self.key is None:
            raise SimError(400, "This request needs a key: CLASS('KEY')")
        return self.key

    def param(self, name: str) -> str:
        return self.params.get(name, "")

    def base(self) -> str:
        env = self.environ
        host = env.get("HTTP_HOST") or f"{env['SERVER_NAME']}:{env['SERVER_PORT']}"
        return f"{env.get('wsgi.url_scheme', 'http')}://{host}"

    def url(self, query: str | None = None) -> str:
        path = request_target(self.environ).partition("?")[0]
        query = self.query if query is None else query
        return f"{self.base()}{path}?{query}" if query else f"{self.base()}{path}"


def _split_target(environ: dict[str, Any]) -> tuple[str, str]:
    path, _, query = request_target(environ).partition("?")
    return unquote(path), query


def _page_size(params: Mapping[str, str]) -> int:
    text = params.get("count", "")
    if not text:
        return DEFAULT_COUNT
    if not text.isdigit() or int(text) < 1:
        raise SimError(400, f"Invalid count parameter {text!r}")
    return min(int(text), MAX_COUNT)


def _bound(table: _Table, text: str) -> _Bound | None:
    if not text:
        return None
    op, _, key = text.partition(".")
    if op not in ("gt", "ge", "lt", "le") or not key:
        raise SimError(400, f"Invalid key parameter {text!r}")
    return _Bound(op, table.parse_key(key))


def _next_query(query: str, last_key: str) -> str:
    """The request's query string verbatim, with `key=gt.<last key>` replaced or appended."""
    paging = f"key=gt.{quote(last_key, safe='~')}"
    parts = [paging if p.startswith("key=") else p for p in query.split("&") if p]
    return "&".join(parts if paging in parts else [*parts, paging])


def _json_object(environ: dict[str, Any]) -> dict[str, Any]:
    try:
        body = json.loads(read_body(environ) or b"{}")
    except ValueError:
        raise SimError(400, "Invalid JSON in request body") from None
    if not isinstance(body, dict):
        raise SimError(400, "The request body must be a JSON object")
    return body


def _unauthorized() -> Reply:
    body = diagnoses("Authentication failed: invalid user name or password")
    return Reply(401, body, headers=[("WWW-Authenticate", 'Basic realm="Syracuse"')])


_PROXY_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head><body>"
    "<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)
_LOGIN_PAGE = (
    '<!DOCTYPE html><html><head><title>Sage X3</title></head><body class="syracuse-login">'
    '<form method="post" action="/auth/login/submit"><input name="login"/>'
    '<input type="password" name="password"/><button>Sign in</button></form></body></html>'
)


def _refusal(kind: str) -> Reply | None:
    """The answer of a fault that replaces the real one (None: answer normally)."""
    retry = [("Retry-After", "1")]
    return {
        "500": Reply(500, diagnoses("Unexpected error in the X3 session", "fatal")),
        "503": Reply(503, diagnoses("No session available in the pool", "error"), headers=retry),
        "429": Reply(429, diagnoses("Too many requests", "error"), headers=retry),
        "401": _unauthorized(),
        "html": Reply(502, _PROXY_PAGE, "text/html"),
        "html200": Reply(200, _LOGIN_PAGE, "text/html; charset=utf-8"),
        "diagnoses": Reply(200, {"$resources": [], **diagnoses("Session lost: request failed")}),
    }.get(kind)


def _garbled(reply: Reply) -> Reply:
    body = reply.body if isinstance(reply.body, bytes | str) else json.dumps(reply.body)
    data = body.encode() if isinstance(body, str) else body
    return Reply(200, data[: max(len(data) // 2, 1)])


# ---------------------------------------------------------------- the simulator


class X3Simulator:
    """Sage X3 REST api1 over a seeded distributor dataset; a thread-safe WSGI app."""

    def __init__(
        self,
        user: str = "admin",
        password: str = "admin-secret",
        folder: str = "SEED",
        clock: Callable[[], datetime] | None = None,
        dimensioned: str = "array",
        dataset: Dataset | None = None,
    ) -> None:
        if dimensioned not in ("array", "numbered"):
            raise ValueError(f"dimensioned must be 'array' or 'numbered', not {dimensioned!r}")
        self.user, self.password, self.folder = user, password, folder
        self.dimensioned = dimensioned
        self.faults = Faults()
        self.latency_ms: float = 0
        self.requests = 0
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._tables = {name: _Table(cls) for name, cls in CLASSES.items()}
        self._load(build_dataset(self.now()) if dataset is None else dataset)
        from .graphql import GraphQLEndpoint  # GraphQL over the same store (imports this)

        self.graphql = GraphQLEndpoint(self)

    def _load(self, dataset: Dataset) -> None:
        for name, rows in dataset.items():
            table = self._table(name)
            for key, record in rows.items():
                table.rows[key] = {**table.template, **_copy(record)}

    # ------------------------------------------------------------ Python API

    def now(self) -> datetime:
        """The simulator's clock, in UTC, truncated to the second (X3's granularity)."""
        return self._clock().astimezone(UTC).replace(microsecond=0)

    def get(self, cls: str, key: str) -> Record:
        with self._lock:
            return _copy(self._record(cls, key))

    def records(self, cls: str) -> list[Record]:
        with self._lock:
            table = self._table(cls)
            return [_copy(table.rows[key]) for key in table.index()[1]]

    def update(self, cls: str, key: str, **changes: Any) -> Record:
        """Change a record as a PUT would; an explicit UPDDATTIM/UPDUSR wins over the stamp."""
        return _copy(self._update(cls, key, changes, keep_audit=True))

    def create(self, cls: str, record: Mapping[str, Any]) -> Record:
        """Create a record as a POST would (stamped, auto-numbered when the class has one)."""
        return _copy(self._insert(cls, record)[1])

    def add_records(
        self, cls: str, records: Iterable[Mapping[str, Any]], stamp: datetime | str | None = None
    ) -> None:
        """Bulk insert raw records, unchecked but for field names (for volume tests)."""
        when = _stamp_text(stamp) if stamp is not None else ""
        with self._lock:
            table = self._table(cls)
            allowed = set(table.cls.fields) | set(table.cls.children)
            try:
                for record in records:
                    unknown = record.keys() - allowed
                    if unknown:
                        raise SimError(400, f"Property {min(unknown)} not found in class {cls}")
                    self._bulk_one(table, record, when)
            finally:
                table.invalidate()  # rebuilt by the next query, once for the whole batch

    def _bulk_one(self, table: _Table, record: Mapping[str, Any], when: str) -> None:
        row = {**table.template, **_copy(record)}
        for name in ("CREDATTIM", "UPDDATTIM"):
            if name in row and (when or not row[name]):
                row[name] = when or stamp(self.now())
        key = self._assign_key(table, row)
        if key in table.rows:
            raise SimError(409, f"Record {key} already exists in class {table.cls.name}")
        table.rows[key] = row

    # ------------------------------------------------------------ data operations

    def _table(self, cls: str) -> _Table:
        table = self._tables.get(cls)
        if table is None:
            raise SimError(404, f"Class {cls} not found")
        return table

    def _record(self, cls: str, key: str) -> Record:
        record = self._table(cls).rows.get(key)
        if record is None:
            raise NotFound(cls, key)
        return record

    def _assign_key(self, table: _Table, record: Record) -> str:
        missing = [name for name in table.cls.keys if record.get(name) in ("", None)]
        if missing and not table.cls.counter:
            raise SimError(400, f"Mandatory property {missing[0]} is empty")
        while missing:  # only single-key classes are auto-numbered
            table.sequence += 1
            record[missing[0]] = f"{table.cls.counter}{table.sequence:07d}"
            missing = [] if key_of(table.cls, record) not in table.rows else missing
        return key_of(table.cls, record)

    def _insert(self, cls: str, body: Mapping[str, Any]) -> tuple[str, Record]:
        with self._lock:
            table = self._table(cls)
            record = _absorb_record(table.cls, body, table.cls.defaults())
            key = self._assign_key(table, record)
            if key in table.rows:
                raise SimError(409, f"Record {key} already exists in class {cls}")
            now = stamp(self.now())
            audit = {"CREDATTIM": now, "UPDDATTIM": now, "CREUSR": self.user, "UPDUSR": self.user}
            record.update({k: v for k, v in audit.items() if k in table.cls.fields})
            table.put(key, record)
            return key, record

    def _update(
        self, cls: str, key: str, changes: Mapping[str, Any], keep_audit: bool = False
    ) -> Record:
        with self._lock:
            table = self._table(cls)
            old = self._record(cls, key)
            record = _absorb_record(table.cls, changes, old)
            changed = [k for k in table.cls.keys if record[k] != old[k]]
            if changed:
                raise SimError(400, f"Key property {changed[0]} cannot be modified")
            audit = {"UPDDATTIM": stamp(self.now()), "UPDUSR": self.user}
            for name, value in audit.items():
                if name in table.cls.fields and not (keep_audit and name in changes):
                    record[name] = value
            table.put(key, record)
            return record

    # ------------------------------------------------------------ WSGI

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self.requests += 1
        send = self._dated(start_response)
        path, query = _split_target(environ)
        if path.startswith("/_sim/"):
            return self._send(send, self._control(environ, path))
        if self.graphql.serves(path):
            return self.graphql(environ, send, path)
        fault = self.faults.pick(environ["REQUEST_METHOD"], request_target(environ))
        kind = fault.kind if fault else ""
        sleep_ms(self.latency_ms)
        refusal = _refusal(kind)
        if refusal is not None:
            return self._send(send, refusal)
        if fault is not None and kind == "timeout":
            time.sleep(fault.delay)
        reply = self._handle(environ, path, query)
        if kind == "reset":  # after processing: a write may have happened, unanswered
            raise abort_connection(environ)
        return self._send(send, _garbled(reply) if kind == "garbage" else reply)

    def _dated(self, start_response: StartResponse) -> StartResponse:
        """Add X3's clock as the Date header: clients read the server time from it."""

        def start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            return start_response(status, [*headers, ("Date", self._http_date())], *rest)

        return start

    def _http_date(self) -> str:
        return format_datetime(self._clock().astimezone(UTC), usegmt=True)

    @staticmethod
    def _send(send: StartResponse, reply: Reply) -> list[bytes]:
        return respond(send, reply.status, reply.body, reply.content_type, reply.headers)

    def _handle(self, environ: dict[str, Any], path: str, query: str) -> Reply:
        try:
            return self._route(environ, path, query)
        except UnknownProperty as error:  # X3 answers a bad property with a 500
            return Reply(500, diagnoses(str(error), trace=f"{type(error).__name__}: {error}"))
        except SDataSyntaxError as error:
            return Reply(400, diagnoses(str(error)))
        except SimError as error:
            return Reply(error.status, diagnoses(error.message))
        except Exception as error:  # keep serving, as X3 does, with the trace in the body
            return Reply(500, diagnoses(repr(error), "fatal", traceback.format_exc()))

    def _authorized(self, environ: dict[str, Any]) -> bool:
        scheme, _, encoded = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        try:
            given = base64.b64decode(encoded, validate=True)
        except ValueError:
            return False
        expected = f"{self.user}:{self.password}".encode()
        return scheme.lower() == "basic" and hmac.compare_digest(given, expected)

    def _route(self, environ: dict[str, Any], path: str, query: str) -> Reply:
        if not self._authorized(environ):
            return _unauthorized()
        if not path.startswith(API_PREFIX):
            raise SimError(404, f"Resource {path} not found")
        folder, _, resource = path[len(API_PREFIX) :].partition("/")
        match = _RESOURCE.fullmatch(resource)
        if folder != self.folder:
            raise SimError(404, f"Endpoint {folder} not found")
        if match is None:
            raise SimError(404, f"Resource {resource} not found")
        table = self._table(match["cls"])
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        key = _unquote_key(match["key"])
        request = _Request(environ, table.cls, table, key, query, params)
        facet = self._facet(request)
        method = environ["REQUEST_METHOD"]
        handler = _ROUTES.get((method, key is not None, facet))
        if handler is None and method not in ("GET", "PUT", "POST"):
            raise SimError(405, f"Method {method} is not allowed")
        if handler is None:
            raise SimError(400, f"Facet {facet or '(none)'} is not valid for {method} {resource}")
        return handler(self, request)

    @staticmethod
    def _facet(request: _Request) -> str:
        representation = request.param("representation")
        if not representation:
            raise SimError(400, "The representation parameter is mandatory")
        name, _, facet = representation.partition(".")
        if name != request.cls.name:
            raise SimError(404, f"Representation {name} not found")
        return facet

    # ------------------------------------------------------------ api1 handlers

    def _query(self, request: _Request) -> Reply:
        cls, table = request.cls, request.table
        count = _page_size(request.params)
        types = {n: k for n, k in cls.fields.items() if "*" not in k}
        where = compile_where(request.param("where"), types, cls.name)
        order = parse_order_by(request.param("orderBy"), types, cls.name)
        bound = _bound(table, request.param("key"))
        with self._lock:
            rows = table.select(where, order, bound, count + 1)
        numbered = self.dimensioned == "numbered"
        body: dict[str, Any] = {
            "$url": request.url(),
            "$descriptor": cls.descriptor,
            "$startIndex": 1,
            "$itemsPerPage": count,
            "$resources": [
                {"$uuid": self._uuid(cls.name, k), "$key": k, **_out(cls.fields, r, numbered)}
                for k, r in rows[:count]
            ],
            "$links": {},
        }
        if len(rows) > count:
            next_url = request.url(_next_query(request.query, rows[count - 1][0]))
            body["$links"] = {"$next": {"$url": next_url}}
        return Reply(200, body)

    def _details(self, request: _Request) -> Reply:
        key = request.record_key()
        with self._lock:
            record = self._record(request.cls.name, key)
        return Reply(200, self._full(request.cls, key, record))

    def _put(self, request: _Request) -> Reply:
        key = request.record_key()
        record = self._update(request.cls.name, key, _json_object(request.environ))
        return Reply(200, self._full(request.cls, key, record))

    def _post(self, request: _Request) -> Reply:
        key, record = self._insert(request.cls.name, _json_object(request.environ))
        name = request.cls.name
        location = (
            f"{request.base()}{API_PREFIX}{self.folder}/{name}"
            f"('{quote(key.replace(chr(39), chr(39) * 2), safe='~')}')"
            f"?representation={name}.$details"
        )
        meta = {
            "$key": key,
            "$url": location,
            "$creUser": record.get("CREUSR", self.user),
            "$creDate": record.get("CREDATTIM", ""),
            "$updUser": record.get("UPDUSR", self.user),
            "$updDate": record.get("UPDDATTIM", ""),
        }
        body = {**self._full(request.cls, key, record), **meta}
        return Reply(201, body, headers=[("Location", location)])

    def _full(self, cls: ClassDef, key: str, record: Record) -> dict[str, Any]:
        """The details facet: the record, its `$uuid`/`$etag`, children embedded."""
        numbered = self.dimensioned == "numbered"
        body = {"$uuid": self._uuid(cls.name, key), "$etag": record.get("UPDDATTIM", "")}
        body.update(_out(cls.fields, record, numbered))
        for name, spec in cls.children.items():
            body[name] = [
                {"$uuid": self._uuid(cls.name, f"{key}/{name}/{i}"), **_out(spec, row, numbered)}
                for i, row in enumerate(record.get(name, []))
            ]
        return body

    def _uuid(self, cls: str, key: str) -> str:
        return str(uuid.uuid5(_UUIDS, f"{self.folder}/{cls}/{key}"))

    # ------------------------------------------------------------ control routes

    def _control(self, environ: dict[str, Any], path: str) -> Reply:
        method = environ["REQUEST_METHOD"]
        try:
            if path == "/_sim/faults":
                return self._control_faults(method, environ)
            if path == "/_sim/latency" and method == "POST":
                self.latency_ms = float(_json_object(environ).get("ms", 0))
                return Reply(200, {"ms": self.latency_ms})
            if path.startswith("/_sim/records/") and method == "GET":
                return Reply(200, self.records(path.removeprefix("/_sim/records/")))
        except SimError as error:
            return Reply(error.status, diagnoses(error.message))
        except (TypeError, ValueError) as error:
            return Reply(400, diagnoses(f"Invalid control request: {error}"))
        return Reply(404, diagnoses(f"No control route {method} {path}"))

    def _control_faults(self, method: str, environ: dict[str, Any]) -> Reply:
        if method == "DELETE":
            self.faults.clear()
            return Reply(204)
        if method == "GET":
            return Reply(200, [asdict(fault) for fault in list(self.faults.items)])
        if method != "POST":
            raise SimError(405, f"{method} is not allowed on /_sim/faults")
        body = _json_object(environ)
        if body.get("kind") not in FAULT_KINDS:
            raise SimError(400, f"Unknown fault kind {body.get('kind')!r}")
        options = {k: body[k] for k in ("skip", "times", "delay") if k in body}
        fault = self.faults.add(str(body["kind"]), str(body.get("match", "")), **options)
        return Reply(201, asdict(fault))


def _unquote_key(text: str | None) -> str | None:
    """`'PISU~PI1~1'` -> `PISU~PI1~1` (the path is already URL-decoded)."""
    if text is None:
        return None
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text


def _stamp_text(value: datetime | str) -> str:
    return stamp(value) if isinstance(value, datetime) else value


_Handler = Callable[[X3Simulator, _Request], Reply]
_ROUTES: dict[tuple[str, bool, str], _Handler] = {
    ("GET", False, "$query"): X3Simulator._query,
    ("GET", True, "$details"): X3Simulator._details,
    ("GET", True, "$edit"): X3Simulator._details,
    ("PUT", True, "$edit"): X3Simulator._put,
    ("POST", False, "$create"): X3Simulator._post,
}
