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
from dataclasses import asdict, dataclass, field, replace
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
    BadComparison,
    Predicate,
    SDataSyntaxError,
    UnknownProperty,
    comparable,
    compile_where,
    parse_order_by,
)
from .x3data import (
    CLASSES,
    EMPTY_DATE,
    STAMPS,
    ClassDef,
    Dataset,
    Record,
    Rows,
    Spec,
    build_dataset,
    columns_of,
    default,
    empty_rows,
    key_of,
    letter,
    normal_kind,
    parameter,
    stamp,
)

API_PREFIX = "/api1/x3/erp/"
GATEWAY_USER = "x3sim.gateway_user"  # environ key: the user X3 Cloud's gateway vouches for
DEFAULT_COUNT = 20
MAX_COUNT = 200
FAULT_KINDS = (
    *("500", "503", "429", "401", "html", "html200", "garbage", "diagnoses", "licence"),
    *("timeout", "reset"),  # the real answer, late or never
)
PROTOTYPE_FACETS = ("$query", "$details", "$edit")
_UUIDS = uuid.UUID("6f3b0c1e-58a4-4d7e-9a39-1c0de5ac0e31")
_RESOURCE = re.compile(r"(?P<cls>[A-Za-z0-9_]+)(?:\((?P<key>.*)\))?")
_PROTOTYPE = re.compile(
    r"(?:(?P<cls>[A-Za-z0-9_]+)/)?\$prototypes\('(?P<rep>[A-Za-z0-9_]+)\.(?P<facet>\$\w+)'\)"
)
_TYPES = {
    "A": "application/x-string",
    "I": "application/x-integer",
    "N": "application/x-decimal",
    "M": "application/x-choice",
    "B": "application/x-boolean",
    "D": "application/x-date",
    "DT": "application/x-datetime",
}


class SimError(Exception):
    """A request the simulated X3 refuses: an HTTP status and a `$diagnoses` message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(SimError, KeyError):
    """No record with that key (X3's message 721); over HTTP, `missing_status`."""

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
        self.letters = {name: letter(kind) for name, kind in cls.shape.scalars().items()}
        self.kinds = [self.letters[name] for name in cls.keys]
        self.booleans = [name for name, code in self.letters.items() if code == "B"]
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

    def delete(self, key: str) -> None:
        record = self.rows.pop(key)
        if self._typed is not None:
            position = bisect_left(self._typed, self.typed(record))
            while self._keys[position] != key:
                position += 1
            del self._typed[position], self._keys[position]

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
            kind = self.letters[name]
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
    """Copy a record (child rows too) so callers cannot change the store."""
    return {name: _copy_value(value) for name, value in record.items()}


def _copy_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy_value(item) for item in value]
    return _copy(value) if isinstance(value, dict) else value


def _link(shape: Rows, record: Record) -> Record:
    """Child rows take the header fields they repeat (the partner's code, the order's supplier)."""
    for name, rows in shape.lists().items():
        values = {column: record.get(source) for column, source in rows.inherit.items()}
        current = record.get(name) or []
        if any(row.get(c) != v for row in current for c, v in values.items()):
            record = {**record, name: [{**row, **values} for row in current]}
    return record


def _same_line(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return all(old.get(k) == new.get(k) for k in old.keys() | new.keys() if k not in STAMPS)


# ---------------------------------------------------------------- values in and out


class _TooLong(ValueError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(size, limit)
        self.size, self.limit = size, limit


def _alpha(kind: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(value)
    text = str(value)
    if len(text) > parameter(kind):
        raise _TooLong(len(text), parameter(kind))
    return text


def _number(kind: str, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(value)
    return float(value) if isinstance(value, str) else value


def _integer(kind: str, value: Any) -> int:
    number = _number(kind, value)
    if number != int(number):
        raise ValueError(value)
    return int(number)


def _date(kind: str, value: Any) -> str:
    if isinstance(value, datetime):
        return stamp(value)
    if not isinstance(value, str):
        raise TypeError(value)
    if value in ("", EMPTY_DATE):
        return ""
    return stamp(comparable(value, "DT")) if kind == "DT" else date.fromisoformat(value).isoformat()


_CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    "A": _alpha,
    "I": _integer,
    "N": _number,
    "M": _integer,
    "D": _date,
    "DT": _date,
}


@dataclass(frozen=True)
class _Codec:
    """How values cross an API: Yes/No as JSON booleans, or as local menu 1 (1 no, 2 yes)."""

    menu: bool = False

    def out(self, kind: str, value: Any) -> Any:
        code = letter(kind)
        if code == "B":
            return (2 if value else 1) if self.menu else bool(value)
        return EMPTY_DATE if code == "D" and not value else value

    def into(self, kind: str, value: Any) -> Any:
        """An incoming value as stored; TypeError/ValueError if it does not fit the kind."""
        if value is None:
            return default(kind)
        if letter(kind) != "B":
            return _CONVERTERS[letter(kind)](kind, value)
        if self.menu and not isinstance(value, bool) and value in (1, 2):
            return value == 2
        if not self.menu and isinstance(value, bool):
            return value
        raise TypeError(value)  # boolean mode refuses 1/2; menu mode refuses true/false


STORE = _Codec()  # the Python API's: values as stored


def _convert(cls: str, name: str, kind: str, value: Any, codec: _Codec) -> Any:
    """Check one incoming property value against its X3 type; return the stored value."""
    try:
        return codec.into(kind, value)
    except _TooLong as error:
        raise SimError(
            400,
            f"Value too long for property {name} in class {cls}: "
            f"{error.size} characters, maximum {error.limit}",
        ) from None
    except (TypeError, ValueError):
        raise SimError(400, f"Invalid value {value!r} for property {name} in class {cls}") from None


def _is_reference(view: Rows, name: str) -> bool:
    """`CRY_REF` and the like: the display of a reference, echoed back by clients."""
    code = name.removesuffix("_REF")
    return code != name and code in view.fields and view.column(code) in view.refs


def _absorb(view: Rows, body: Mapping[str, Any], base: Record, cls: str, codec: _Codec) -> Record:
    """Merge incoming properties (served names) into a copy of `base` (stored columns)."""
    record = dict(base)
    for name, value in body.items():
        if name.startswith("$") or _is_reference(view, name):
            continue  # $uuid, $etag, $properties, *_REF: framework data the client echoes
        kind = view.fields.get(name)
        if kind is None:
            raise SimError(400, f"Property {name} not found in class {cls}")
        if isinstance(kind, Rows):
            record[view.column(name)] = _absorb_rows(kind, name, value, cls, codec)
        else:
            record[view.column(name)] = _convert(cls, name, kind, value, codec)
    return record


def _absorb_rows(rows: Rows, name: str, value: Any, cls: str, codec: _Codec) -> list[Record]:
    """A child list in a body replaces the stored one as a whole; slots are padded."""
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise SimError(400, f"Property {name} of class {cls} must be a list of objects")
    if rows.slots and len(value) > rows.slots:
        raise SimError(400, f"Property {name} of class {cls} has at most {rows.slots} rows")
    empty = empty_rows(rows)
    bases = empty if rows.slots else [rows.defaults()] * len(value)
    given = [_absorb(rows, row, base, cls, codec) for row, base in zip(value, bases, strict=False)]
    return given + empty[len(given) :]


# ---------------------------------------------------------------- representations


@dataclass(frozen=True)
class Representation:
    """A representation over a class: what its facets serve, by served name."""

    name: str
    cls: ClassDef
    query: Rows  # the $query rows
    details: Rows  # $details, $edit and $create

    def view(self, facet: str) -> Rows:
        return self.query if facet == "$query" else self.details


def _everything(column: str, kind: str | Rows) -> bool:
    return True


def _view(shape: Rows, keep: Callable[[str, str | Rows], bool], renames: Mapping[str, str]) -> Rows:
    """What a facet serves of `shape`: the header columns `keep` takes, under served names."""
    fields: Spec = {}
    for column, kind in shape.fields.items():
        if keep(column, kind):
            child = _view(kind, _everything, renames) if isinstance(kind, Rows) else kind
            fields[renames.get(column, column)] = child
    columns = {renames[c]: c for c in shape.fields if c in renames}
    keys = tuple(renames.get(k, k) for k in shape.keys)
    return replace(shape, fields=fields, columns=columns, keys=keys)


def _representation(
    name: str, cls: ClassDef, shown: set[str], added: set[str], options: _Options
) -> Representation:
    """`shown`: the columns this representation adds; `added`: the class's columns that
    only custom representations show."""
    left_out = (cls.unpublished | added) - shown
    not_queried = left_out if options.query_stamps else left_out | set(STAMPS)
    not_detailed = left_out | cls.query_only
    renames = options.renamed.get(cls.name, {})

    def in_query(column: str, kind: str | Rows) -> bool:
        return isinstance(kind, str) and column not in not_queried

    def in_details(column: str, kind: str | Rows) -> bool:
        return column not in not_detailed

    return Representation(
        name, cls, _view(cls.shape, in_query, renames), _view(cls.shape, in_details, renames)
    )


@dataclass(frozen=True)
class _Options:
    query_stamps: bool
    renamed: Mapping[str, Mapping[str, str]]
    custom: Mapping[str, Mapping[str, Any]]


def _extras(custom: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """Each custom representation's extra fields, kinds normalised."""
    found = {}
    for name, config in custom.items():
        if config.get("class") not in CLASSES or name in CLASSES:
            raise ValueError(f"Representation {name}: 'class' must name a class, not be one")
        if CLASSES[config["class"]].header and config.get("extra"):
            raise ValueError(f"Representation {name}: lines of {config['class']} take no extra")
        found[name] = {f: normal_kind(k) for f, k in dict(config.get("extra") or {}).items()}
    return found


def _build(options: _Options) -> tuple[dict[str, ClassDef], dict[str, Representation]]:
    """The classes (custom representations' extra fields added) and every representation."""
    extras = _extras(options.custom)
    added: dict[str, dict[str, str]] = {name: {} for name in CLASSES}
    for name, fields in extras.items():
        base = CLASSES[options.custom[name]["class"]]
        added[base.name].update({f: k for f, k in fields.items() if f not in base.fields})
    classes = {name: _with_fields(cls, added[name]) for name, cls in CLASSES.items()}
    _check_renames(classes, options.renamed)
    reps = {
        name: _representation(name, cls, set(), set(added[name]), options)
        for name, cls in classes.items()
    }
    for name, fields in extras.items():
        cls = classes[options.custom[name]["class"]]
        reps[name] = _representation(name, cls, set(fields), set(added[cls.name]), options)
    return classes, reps


def _with_fields(cls: ClassDef, extra: Mapping[str, str]) -> ClassDef:
    if not extra:
        return cls
    fields: Spec = {**cls.shape.scalars(), **extra, **cls.shape.lists()}
    return replace(cls, shape=replace(cls.shape, fields=fields))


def _check_renames(
    classes: Mapping[str, ClassDef], renamed: Mapping[str, Mapping[str, str]]
) -> None:
    for name, renames in renamed.items():
        if name not in classes:
            raise ValueError(f"renamed: unknown class {name!r}")
        known = columns_of(classes[name].shape)
        for old, new in renames.items():
            if old not in known or new in known:
                raise ValueError(f"renamed: {name}.{old} -> {new} (old must exist, new must not)")


def _describe(view: Rows, sortable: bool, codec: _Codec) -> dict[str, Any]:
    """A prototype's `$properties` for what `view` serves."""
    described: dict[str, Any] = {}
    for name, kind in view.fields.items():
        if isinstance(kind, Rows):
            item = {"$properties": _describe(kind, False, codec)}
            described[name] = {"$type": "application/x-array", "$item": item}
            continue
        prop = _type(kind, codec)
        if name in view.keys:
            prop["$isMandatory"] = True
        if sortable:
            prop["$capabilities"] = "sort"
        described[name] = prop
    return described


def _type(kind: str, codec: _Codec) -> dict[str, Any]:
    code, number = letter(kind), parameter(kind)
    if code == "B" and codec.menu:
        return {"$type": _TYPES["M"], "$menu": 1}
    prop: dict[str, Any] = {"$type": _TYPES[code]}
    if code == "A":
        prop["$maxLength"] = number
    if code == "M" and number:
        prop["$menu"] = number
    return prop


# ---------------------------------------------------------------- requests


@dataclass
class _Request:
    environ: dict[str, Any]
    rep: Representation
    table: _Table
    key: str | None
    query: str
    params: dict[str, str]

    @property
    def cls(self) -> ClassDef:
        return self.rep.cls

    def record_key(self) -> str:
        if self.key is None:
            raise SimError(400, "This request needs a key: CLASS('KEY')")
        return self.key

    def param(self, name: str) -> str:
        return self.params.get(name, "")

    def url(self, query: str | None = None) -> str:
        path = request_target(self.environ).partition("?")[0]
        query = self.query if query is None else query
        base = _base(self.environ)
        return f"{base}{path}?{query}" if query else f"{base}{path}"


def _base(env: dict[str, Any]) -> str:
    host = env.get("HTTP_HOST") or f"{env['SERVER_NAME']}:{env['SERVER_PORT']}"
    return f"{env.get('wsgi.url_scheme', 'http')}://{host}"


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
# The licence's daily web-service data volume (WSSIZELIMIT, then WSGRACELIMIT) is used up.
# X3 documents the limit, not the answer: the status 503 and this text are guesses.
LICENCE_MESSAGE = (
    "The data volume allowed by the license for web services has been reached (WSSIZELIMIT)"
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
        "licence": Reply(503, diagnoses(LICENCE_MESSAGE)),
    }.get(kind)


def _garbled(reply: Reply) -> Reply:
    body = reply.body if isinstance(reply.body, bytes | str) else json.dumps(reply.body)
    data = body.encode() if isinstance(body, str) else body
    return Reply(200, data[: max(len(data) // 2, 1)])


def _choice(name: str, value: Any, allowed: tuple[Any, ...]) -> Any:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, not {value!r}")
    return value


# ---------------------------------------------------------------- the simulator


class X3Simulator:
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
        self.user, self.password, self.folder = user, password, folder
        # The base URL `$links` name; None: the one the request came to. Behind a proxy
        # X3 may name its own internal address instead.
        self.links_base = links_base
        self.codec = _Codec(menu=_choice("yes_no", yes_no, ("boolean", "menu")) == "menu")
        self.where_booleans = _choice("where_booleans", where_booleans, ("true", "menu"))
        self.prototypes = prototypes
        self.missing_status = missing_status
        self.faults = Faults()
        self.latency_ms: float = 0
        self.requests = 0
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        options = _Options(query_stamps, renamed or {}, representations or {})
        self._classes, self._reps = _build(options)
        self._tables = {name: _Table(cls) for name, cls in self._classes.items()}
        self._load(build_dataset(self.now()) if dataset is None else dataset)
        from .graphql import GraphQLEndpoint  # GraphQL over the same store (imports this)

        self.graphql = GraphQLEndpoint(self, **(graphql or {}))

    def _load(self, dataset: Dataset) -> None:
        for name, rows in dataset.items():
            table = self._table(name)
            if table.cls.header:
                raise ValueError(f"{name} rows come with their {table.cls.header} records")
            for key, record in rows.items():
                self._place(table, key, {**table.template, **_copy(record)})

    # ------------------------------------------------------------ Python API (stored shape)

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
        """Bulk insert raw records, unchecked but for field names (for volume tests).

        Yes/No values may be given as stored (bools) or as local menu 1 (1 no, 2 yes).
        """
        when = _stamp_text(stamp) if stamp is not None else ""
        with self._lock:
            table = self._table(cls)
            if table.cls.header:
                raise SimError(400, f"Class {cls} is written through {table.cls.header}")
            allowed = set(table.cls.fields)
            try:
                for record in records:
                    unknown = record.keys() - allowed
                    if unknown:
                        raise SimError(400, f"Property {min(unknown)} not found in class {cls}")
                    self._bulk_one(table, record, when)
            finally:  # indexes are rebuilt by the next query, once for the whole batch
                table.invalidate()
                if table.cls.lines:
                    self._table(table.cls.lines).invalidate()

    def _bulk_one(self, table: _Table, record: Mapping[str, Any], when: str) -> None:
        row = {**table.template, **_copy(record)}
        for name in table.booleans:
            if not isinstance(row[name], bool):
                row[name] = row[name] == 2
        for name in STAMPS:
            if name in row and (when or not row[name]):
                row[name] = when or stamp(self.now())
        self._place(table, self._assign_key(table, row), row)

    def _place(self, table: _Table, key: str, row: Record) -> None:
        """Put a raw row in its table (unindexed), and its lines in theirs."""
        if key in table.rows:
            raise SimError(409, f"Record {key} already exists in class {table.cls.name}")
        row = _link(table.cls.shape, row)
        if table.cls.lines:
            row = self._place_lines(self._table(table.cls.lines), row)
        table.rows[key] = row

    def _place_lines(self, lines: _Table, row: Record) -> Record:
        """An order's lines, stamped like it where they are not, into the lines class."""
        name = lines.cls.name
        placed = [{**line, **{s: line.get(s) or row[s] for s in STAMPS}} for line in row[name]]
        for line in placed:
            key = key_of(lines.cls, line)
            if key in lines.rows:
                raise SimError(409, f"Record {key} already exists in class {name}")
            lines.rows[key] = line
        return {**row, name: placed}

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

    def _insert(
        self, cls: str, body: Mapping[str, Any], view: Rows | None = None, codec: _Codec = STORE
    ) -> tuple[str, Record]:
        with self._lock:
            table = self._table(cls)
            if table.cls.header:
                raise SimError(400, f"Lines of class {cls} are created in their {table.cls.header}")
            record = _absorb(view or table.cls.shape, body, table.cls.defaults(), cls, codec)
            key = self._assign_key(table, record)
            if key in table.rows:
                raise SimError(409, f"Record {key} already exists in class {cls}")
            now = stamp(self.now())
            audit = {"CREDATTIM": now, "UPDDATTIM": now, "CREUSR": self.user, "UPDUSR": self.user}
            record.update({k: v for k, v in audit.items() if k in table.cls.fields})
            return key, self._write(table, key, record, None, now)

    def _update(
        self,
        cls: str,
        key: str,
        changes: Mapping[str, Any],
        view: Rows | None = None,
        codec: _Codec = STORE,
        keep_audit: bool = False,
    ) -> Record:
        with self._lock:
            table = self._table(cls)
            old = self._record(cls, key)
            record = _absorb(view or table.cls.shape, changes, old, cls, codec)
            fixed = (*table.cls.keys, *table.cls.shape.inherit)  # a line's are its order's
            changed = [k for k in fixed if record.get(k) != old.get(k)]
            if changed:
                raise SimError(400, f"Property {changed[0]} cannot be modified")
            now = stamp(self.now())
            for name, value in {"UPDDATTIM": now, "UPDUSR": self.user}.items():
                if name in table.cls.fields and not (keep_audit and name in changes):
                    record[name] = value
            return self._write(table, key, record, old, now)

    def _write(
        self, table: _Table, key: str, record: Record, old: Record | None, now: str
    ) -> Record:
        """Store a record; keep an order and its lines (also a class) consistent."""
        record = _link(table.cls.shape, record)
        if table.cls.lines:
            record = self._stamp_lines(table.cls.lines, record, old, now)
        table.put(key, record)
        if table.cls.header:
            self._into_header(table.cls, record)
        return record

    def _stamp_lines(self, name: str, record: Record, old: Record | None, now: str) -> Record:
        """Lines changed by a write of their order are stamped; the lines class follows."""
        lines_table = self._table(name)
        cls = lines_table.cls
        before = {key_of(cls, line): line for line in (old or {}).get(name, [])}
        lines: dict[str, Record] = {}
        for line in record.get(name) or []:
            key = key_of(cls, line)
            if key in lines:
                raise SimError(400, f"Line {key} appears twice in {name}")
            previous = before.get(key)
            if previous is not None and _same_line(previous, line):
                lines[key] = previous
            else:
                created = previous["CREDATTIM"] if previous else now
                lines[key] = {**line, "CREDATTIM": created, "UPDDATTIM": now}
        for key in before.keys() - lines.keys():
            lines_table.delete(key)
        for key, line in lines.items():
            lines_table.put(key, line)
        return {**record, name: list(lines.values())}

    def _into_header(self, cls: ClassDef, line: Record) -> None:
        """A line written through its own class replaces itself in its order."""
        header = self._table(cls.header)
        head_key = key_of(header.cls, {h: line[c] for c, h in cls.shape.inherit.items()})
        order = header.rows[head_key]
        key = key_of(cls, line)
        lines = [line if key_of(cls, other) == key else other for other in order[cls.name]]
        header.put(head_key, {**order, cls.name: lines})

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

    def _authorized(self, environ: dict[str, Any]) -> bool:
        # Behind the simulated X3 Cloud gateway (simulators/cloud.py), which checked the
        # bearer token: a WSGI key, which no HTTP header can set.
        if environ.get(GATEWAY_USER):
            return True
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
        key = _unquote_key(match["key"])
        request = _Request(environ, rep, table, key, query, params)
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

    def _query(self, request: _Request) -> Reply:
        cls, table, view = request.cls, request.table, request.rep.query
        count = _page_size(request.params)
        types = {name: self._compared_as(kind) for name, kind in view.scalars().items()}
        booleans = self.where_booleans == "true"
        where = compile_where(request.param("where"), types, cls.name, view.columns, booleans)
        order = parse_order_by(request.param("orderBy"), types, cls.name)
        stored = [(view.column(name), descending) for name, descending in order]
        bound = _bound(table, request.param("key"))
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
            next_url = request.url(_next_query(request.query, rows[count - 1][0]))
            if self.links_base:
                next_url = self.links_base + next_url[len(_base(request.environ)) :]
            body["$links"] = {"$next": {"$url": next_url}}
        return Reply(200, body)

    def _compared_as(self, kind: str) -> str:
        """The type `where` compares a property as: a Yes/No as 1/2 in "menu" mode."""
        code = letter(kind)
        return "M" if code == "B" and self.where_booleans == "menu" else code

    def _details(self, request: _Request) -> Reply:
        key = request.record_key()
        with self._lock:
            record = self._record(request.cls.name, key)
        return Reply(200, self._full(request.rep, key, record))

    def _put(self, request: _Request) -> Reply:
        key, view = request.record_key(), request.rep.details
        body = _json_object(request.environ)
        record = self._update(request.cls.name, key, body, view, self.codec)
        return Reply(200, self._full(request.rep, key, record))

    def _post(self, request: _Request) -> Reply:
        body = _json_object(request.environ)
        key, record = self._insert(request.cls.name, body, request.rep.details, self.codec)
        location = (
            f"{_base(request.environ)}{API_PREFIX}{self.folder}/{request.cls.name}"
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
                "$url": f"{_base(environ)}{request_target(environ)}",
                "$title": rep.cls.descriptor,
                "$representation": rep.name,
                "$facet": facet,
                "$properties": _describe(view, facet == "$query", self.codec),
            },
        )

    # ------------------------------------------------------------ control routes

    def _control(self, environ: dict[str, Any], path: str) -> Reply:
        method = environ["REQUEST_METHOD"]
        try:
            if path == "/_sim/faults":
                return self._control_faults(method, environ)
            if path == "/_sim/latency" and method == "POST":
                self.latency_ms = float(_json_object(environ).get("ms", 0))
                return Reply(200, {"ms": self.latency_ms})
            if path.startswith("/_sim/records/"):
                return self._control_records(method, path.removeprefix("/_sim/records/"), environ)
        except SimError as error:
            return Reply(error.status, diagnoses(error.message))
        except (TypeError, ValueError) as error:
            return Reply(400, diagnoses(f"Invalid control request: {error}"))
        return Reply(404, diagnoses(f"No control route {method} {path}"))

    def _control_records(self, method: str, target: str, environ: dict[str, Any]) -> Reply:
        """GET {CLASS}: every record; POST {CLASS}: create one; PATCH {CLASS}/{KEY}: change
        one. As the Python API does it (stamped now), for a harness in another process."""
        cls, _, key = target.partition("/")
        if method == "GET" and not key:
            return Reply(200, self.records(cls))
        if method == "POST" and not key:
            return Reply(201, self.create(cls, _json_object(environ)))
        if method == "PATCH" and key:
            return Reply(200, self.update(cls, key, **_json_object(environ)))
        raise SimError(405, f"{method} is not allowed on /_sim/records/{target}")

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
    """`'PISU~PI1~1~1'` -> `PISU~PI1~1~1` (the path is already URL-decoded)."""
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
