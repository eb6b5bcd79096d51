"""One api1 request of the simulated X3: its parts (class, key, representation, query
parameters) and how they are read, refused with a 400 when malformed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from . import read_body, request_target
from .x3_errors import SimError
from .x3_representations import Representation
from .x3_store import KeyBound, Table
from .x3data import ClassDef

DEFAULT_COUNT = 20
MAX_COUNT = 200


@dataclass
class Request:
    environ: dict[str, Any]
    rep: Representation
    table: Table
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
        base = base_url(self.environ)
        return f"{base}{path}?{query}" if query else f"{base}{path}"


def base_url(env: dict[str, Any]) -> str:
    host = env.get("HTTP_HOST") or f"{env['SERVER_NAME']}:{env['SERVER_PORT']}"
    return f"{env.get('wsgi.url_scheme', 'http')}://{host}"


def split_target(environ: dict[str, Any]) -> tuple[str, str]:
    path, _, query = request_target(environ).partition("?")
    return unquote(path), query


def page_size(params: Mapping[str, str]) -> int:
    text = params.get("count", "")
    if not text:
        return DEFAULT_COUNT
    if not text.isdigit() or int(text) < 1:
        raise SimError(400, f"Invalid count parameter {text!r}")
    return min(int(text), MAX_COUNT)


def key_bound(table: Table, text: str) -> KeyBound | None:
    if not text:
        return None
    op, _, key = text.partition(".")
    if op not in ("gt", "ge", "lt", "le") or not key:
        raise SimError(400, f"Invalid key parameter {text!r}")
    return KeyBound(op, table.parse_key(key))


def next_query(query: str, last_key: str) -> str:
    """The request's query string verbatim, with `key=gt.<last key>` replaced or appended."""
    paging = f"key=gt.{quote(last_key, safe='~')}"
    parts = [paging if p.startswith("key=") else p for p in query.split("&") if p]
    return "&".join(parts if paging in parts else [*parts, paging])


def json_object(environ: dict[str, Any]) -> dict[str, Any]:
    try:
        body = json.loads(read_body(environ) or b"{}")
    except ValueError:
        raise SimError(400, "Invalid JSON in request body") from None
    if not isinstance(body, dict):
        raise SimError(400, "The request body must be a JSON object")
    return body


def unquote_key(text: str | None) -> str | None:
    """`'PISU~PI1~1~1'` -> `PISU~PI1~1~1` (the path is already URL-decoded)."""
    if text is None:
        return None
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text
