"""GraphQL filters and orderBy, typed by the server's schema.

Filters and orderBy are strings holding relaxed JSON ({isClosed: {_ne: 'yes'}}: Sage's
purchasing examples); a source's SData `where` (X3 codes, eq/ne/lt/le/gt/ge, in, between,
like, and/or/not) is turned into one, each literal written as the field's type wants it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from x3twilio.decoding import parse_stamp
from x3twilio.errors import X3Error
from x3twilio.x3.gql_props import Prop

Lookup = Callable[[str], "Prop | None"]


def relaxed(value: Any) -> str:
    """A filter or orderBy value as X3 writes them: {key: 'text', n: 1} (relaxed JSON)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {relaxed(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(relaxed(v) for v in value) + "]"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return json.dumps(value)


def nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """('company', 'code'), v -> {company: {code: v}}."""
    for part in reversed(path):
        value = {part: value}
    return value  # type: ignore[no-any-return]


def merge(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        for k, v in part.items():
            both = isinstance(v, dict) and isinstance(out.get(k), dict)
            out[k] = merge(out[k], v) if both else v
    return out


def all_of(*filters: str | None) -> str | None:
    """Filter texts and-ed together."""
    present = [f for f in filters if f]
    if len(present) < 2:
        return present[0] if present else None
    return "{_and: [" + ", ".join(present) + "]}"


_TOKEN = re.compile(
    r"""\s*(?:(?P<str>'(?:[^']|'')*')|(?P<at>@[^@]*@)|(?P<num>-?\d+(?:\.\d+)?)
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<sym><>|!=|<=|>=|=|<|>)|(?P<punct>[(),]))""",
    re.VERBOSE,
)
_OPS = {"eq": "_eq", "ne": "_ne", "lt": "_lt", "le": "_lte", "gt": "_gt", "ge": "_gte"}
_SYMBOLS = {"=": "eq", "<>": "ne", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


def user_filter(lookup: Lookup, where: str | None, name: str) -> str | None:
    """A source's filter: GraphQL as written ({...}), or SData (X3 codes) translated."""
    if not where or not where.strip():
        return None
    if where.lstrip().startswith(("{", "[")):
        return where.strip()
    try:
        return relaxed(_WhereParser(lookup, where).parse())
    except ValueError as exc:
        raise X3Error(
            f"cannot turn the filter {where!r} into GraphQL for {name}: {exc} "
            "(or write it as a GraphQL filter, e.g. {company: {code: 'FR10'}})"
        ) from None


class _WhereParser:
    """The SData subset sources use: comparisons, in, between, like, and/or/not, ()."""

    def __init__(self, lookup: Lookup, text: str) -> None:
        self.lookup, self.tokens, self.pos = lookup, self._tokenize(text), 0

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while text[pos:].strip():
            match = _TOKEN.match(text, pos)
            if not match or not match.lastgroup:
                raise ValueError(f"unexpected text at {text[pos:].strip()[:20]!r}")
            tokens.append((match.lastgroup, match[match.lastgroup]))
            pos = match.end()
        return [*tokens, ("end", "")]

    def take(self, word: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.pos]
        if word is not None and self.word(token) != word and token[1] != word:
            raise ValueError(f"expected {word!r}, found {token[1] or 'the end'!r}")
        self.pos += 1
        return token

    @staticmethod
    def word(token: tuple[str, str]) -> str:
        kind, text = token
        return _SYMBOLS[text] if kind == "sym" else text.lower() if kind == "name" else ""

    def peek(self) -> str:
        return self.word(self.tokens[self.pos]) or self.tokens[self.pos][1]

    def parse(self) -> dict[str, Any]:
        result = self.either()
        self.take("")
        return result

    def either(self) -> dict[str, Any]:
        parts = [self.both()]
        while self.peek() == "or":
            self.take()
            parts.append(self.both())
        return parts[0] if len(parts) == 1 else {"_or": parts}

    def both(self) -> dict[str, Any]:
        parts = [self.unary()]
        while self.peek() == "and":
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else {"_and": parts}

    def unary(self) -> dict[str, Any]:
        if self.peek() == "not":
            self.take()
            return {"_not": self.unary()}
        if self.peek() == "(":
            self.take()
            inner = self.either()
            self.take(")")
            return inner
        return self.comparison()

    def comparison(self) -> dict[str, Any]:
        kind, code = self.take()
        if kind != "name":
            raise ValueError(f"expected an X3 code, found {code!r}")
        prop = self.lookup(code)
        if prop is None:
            raise ValueError(f"{code} has no GraphQL property (map it under x3.nodes)")
        op = self.peek()
        self.take()
        if op in _OPS:
            return nest(prop.path, {_OPS[op]: self.value(prop)})
        if op == "between":
            low = self.value(prop)
            self.take("and")
            return nest(prop.path, {"_gte": low, "_lte": self.value(prop)})
        if op == "in":
            self.take("(")
            values = [self.value(prop)]
            while self.peek() == ",":
                self.take()
                values.append(self.value(prop))
            self.take(")")
            return nest(prop.path, {"_in": values})
        if op == "like":
            pattern = str(self.value(Prop(code, prop.path)))
            parts = (".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
            return nest(prop.path, {"_regex": "^" + "".join(parts) + "$"})
        raise ValueError(f"unsupported operator {op!r}")

    def value(self, prop: Prop) -> Any:
        kind, text = self.take()
        if kind == "str":
            literal: Any = text[1:-1].replace("''", "'")
        elif kind == "num":
            literal = text
        elif kind == "at":
            inner = text[1:-1]  # @2024-05-01@ or @2024-05-01T10:00:00Z@
            literal = parse_stamp(inner.rstrip("Zz") + "Z") if "T" in inner else inner
        else:
            raise ValueError(f"expected a value, found {text!r}")
        return prop.to_graphql(literal)
