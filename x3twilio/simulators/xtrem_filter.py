"""Xtrem's `filter` and `orderBy` arguments: relaxed-JSON strings, typed by the schema.

`{isClosed: {_ne: 'yes'}}` compares an enum by its value name, `{orderFromSupplier: 'FR053'}`
a reference by its key (as in Sage's purchasing example), `{orderFromSupplier: {code: {code:
'FR053'}}}` walks into it. Operators: `_eq _ne _lt _lte _gt _gte _in _nin _regex`, and
`_and _or _not` (a top-level array and-s its members). A property the node lacks is refused
with a message naming it and the node.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from graphql import GraphQLField, GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLOutputType


class FilterError(ValueError):
    """A filter, orderBy or cursor the server refuses; the message is the one it answers."""


class Lookup(Protocol):
    """What filters need from the resolver: the schema's fields and resolved values."""

    def field(self, type_name: str, name: str) -> GraphQLField | None: ...

    def value(self, type_name: str, name: str, source: Any) -> Any: ...

    def key(self, type_name: str, source: Any) -> str: ...


# ---------------------------------------------------------------- relaxed JSON

_RELAXED = re.compile(
    r"""\s*(?:(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    |(?P<num>[+-]?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_$][\w$]*)|(?P<punct>[{}\[\]:,]))""",
    re.VERBOSE,
)


def parse_relaxed(text: str) -> Any:
    """X3's filter and orderBy strings: JSON with single quotes and bare keys allowed."""
    tokens, pos = [], 0
    while text[pos:].strip():
        match = _RELAXED.match(text, pos)
        if match is None or not match.lastgroup:
            raise FilterError(f"Invalid filter or orderBy near {text[pos : pos + 20]!r}")
        tokens.append((match.lastgroup, match[match.lastgroup]))
        pos = match.end()
    tokens.append(("end", ""))
    reader = _Reader(tokens)
    result = reader.value()
    if reader.peek()[0] != "end":
        raise FilterError("Invalid filter or orderBy: text after the value")
    return result


class _Reader:
    """Recursive descent over relaxed-JSON tokens."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.position = tokens, 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.position]

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.position]
        if token[0] != "end":
            self.position += 1
        return token

    def value(self) -> Any:
        kind, text = self.take()
        if text == "{":
            return self._object()
        if text == "[":
            return self._array()
        if kind == "str":
            return _unquote(text)
        if kind == "num":
            return Decimal(text.lstrip("+"))
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(text, text)
        raise FilterError(f"Invalid filter or orderBy: unexpected {text or 'end'!r}")

    def _object(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while not self._closing("}"):
            kind, key = self.take()
            if self.take()[1] != ":":
                raise FilterError(f"Invalid filter or orderBy: expected ':' after {key!r}")
            out[_unquote(key) if kind == "str" else key] = self.value()
        return out

    def _array(self) -> list[Any]:
        out = []
        while not self._closing("]"):
            out.append(self.value())
        return out

    def _closing(self, close: str) -> bool:
        """Past a separating comma: is the container closed here?"""
        if self.peek()[1] == ",":
            self.take()
        if self.peek()[0] == "end":
            raise FilterError("Invalid filter or orderBy: unexpected end")
        if self.peek()[1] == close:
            self.take()
            return True
        return False


def _unquote(text: str) -> str:
    inner = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), inner)


# ---------------------------------------------------------------- typed values


def leaf_name(field_type: GraphQLOutputType) -> str:
    """The named type under NonNull/List wrappers."""
    while isinstance(field_type, GraphQLNonNull | GraphQLList):
        field_type = field_type.of_type
    return str(getattr(field_type, "name", ""))


def typed(type_name: str, value: Any) -> Any:
    """A wire value (or a filter literal) as filters and sorting compare it."""
    if value is None:
        return None
    try:
        if type_name == "Decimal":
            return Decimal(str(value))
        if type_name == "Int":
            return int(Decimal(str(value)))
        if type_name == "Datetime":
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if type_name == "Boolean":
            return value if isinstance(value, bool) else str(value).lower() == "true"
    except (ValueError, InvalidOperation):
        raise FilterError(f"Invalid value {value!r} for a {type_name}") from None
    return str(value)[:10] if type_name == "Date" else str(value)


def plain(value: Any) -> Any:
    """A typed value as JSON holds it (in a cursor)."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value) if isinstance(value, Decimal) else value


# ---------------------------------------------------------------- filters

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "_eq": lambda a, b: a == b,
    "_ne": lambda a, b: a != b,
    "_gt": lambda a, b: a > b,
    "_gte": lambda a, b: a >= b,
    "_lt": lambda a, b: a < b,
    "_lte": lambda a, b: a <= b,
    "_in": lambda a, b: a in b,
    "_nin": lambda a, b: a not in b,
    "_regex": lambda a, b: re.search(str(b), str(a)) is not None,
}
_LOGIC = ("_and", "_or", "_not")


def matches(lookup: Lookup, type_name: str, condition: Any, source: Any) -> bool:
    """Does the source (a record of `type_name`) satisfy the filter?"""
    if isinstance(condition, list):
        return all(matches(lookup, type_name, c, source) for c in condition)
    if not isinstance(condition, dict):
        raise FilterError(f"Invalid filter: expected an object, got {condition!r}")
    for name, wanted in condition.items():
        if name in ("_and", "_or"):
            if not isinstance(wanted, list):
                raise FilterError(f"Invalid filter: {name} takes a list")
            test = all if name == "_and" else any
            ok = test(matches(lookup, type_name, c, source) for c in wanted)
        elif name == "_not":
            ok = not matches(lookup, type_name, wanted, source)
        else:
            ok = _matches_property(lookup, type_name, name, wanted, source)
        if not ok:
            return False
    return True


def _operators(wanted: Any) -> bool:
    return isinstance(wanted, dict) and bool(wanted) and all(k in _COMPARE for k in wanted)


def _matches_property(lookup: Lookup, type_name: str, name: str, wanted: Any, source: Any) -> bool:
    field = lookup.field(type_name, name)
    if field is None:
        raise FilterError(f"Invalid filter: property '{name}' not found on node {type_name}")
    target = leaf_name(field.type)
    value = lookup.value(type_name, name, source)
    if _is_object(field.type):
        if target.endswith("_Collection"):
            raise FilterError(f"Invalid filter: collection '{name}' cannot be filtered here")
        if isinstance(wanted, dict) and not _operators(wanted):
            return value is not None and matches(lookup, target, wanted, value)
        actual = lookup.key(target, value) if value is not None else None
        return _compare(actual, wanted, "String")
    return _compare(typed(target, value), wanted, target)


def _is_object(field_type: Any) -> bool:
    while isinstance(field_type, GraphQLNonNull | GraphQLList):
        field_type = field_type.of_type
    return isinstance(field_type, GraphQLObjectType)


def _compare(actual: Any, wanted: Any, type_name: str) -> bool:
    if not _operators(wanted):
        return bool(actual == typed(type_name, wanted))
    for op, literal in wanted.items():
        if op in ("_in", "_nin"):
            if not isinstance(literal, list):
                raise FilterError(f"Invalid filter: {op} takes a list")
            value: Any = [typed(type_name, v) for v in literal]
        else:
            value = literal if op == "_regex" else typed(type_name, literal)
        if actual is None or (value is None and op not in ("_eq", "_ne")):
            if op == "_ne" and value is not None:
                continue  # a missing value differs from any given one
            return False
        try:
            if not _COMPARE[op](actual, value):
                return False
        except TypeError:
            raise FilterError(f"Invalid filter: {op} cannot compare {literal!r}") from None
    return True


# ---------------------------------------------------------------- orderBy

SortPath = tuple[tuple[str, str], ...]  # ((type, property), ...) down to a leaf


def sort_paths(lookup: Lookup, type_name: str, order: Any) -> list[tuple[SortPath, int]]:
    """orderBy {a: 1, b: {code: -1}} -> [(path to a, 1), (path to b.code, -1)]."""
    if not isinstance(order, dict):
        raise FilterError("Invalid orderBy: expected an object")
    out: list[tuple[SortPath, int]] = []
    for name, direction in order.items():
        field = lookup.field(type_name, name)
        if field is None:
            raise FilterError(f"Invalid orderBy: property '{name}' not found on node {type_name}")
        step = ((type_name, name),)
        if isinstance(direction, dict):
            if not _is_object(field.type):
                raise FilterError(f"Invalid orderBy on {name}: {direction!r}")
            out += [
                (step + path, d) for path, d in sort_paths(lookup, leaf_name(field.type), direction)
            ]
        elif direction in (1, -1):
            out.append((step, int(direction)))
        else:
            raise FilterError(f"Invalid orderBy on {name}: {direction!r} (1 or -1)")
    return out


def sort_value(lookup: Lookup, path: SortPath, source: Any) -> Any:
    """The typed value at the end of a path (a reference: its key)."""
    value = source
    for type_name, name in path:
        if value is None:
            return None
        value = lookup.value(type_name, name, value)
    type_name, name = path[-1]
    field = lookup.field(type_name, name)
    assert field is not None
    target = leaf_name(field.type)
    if _is_object(field.type):
        return None if value is None else lookup.key(target, value)
    return typed(target, value)


def compare_keys(a: list[Any], b: list[Any], directions: list[int]) -> int:
    """Order two sort keys; None sorts first ascending."""
    for x, y, direction in zip(a, b, directions, strict=True):
        if x == y:
            continue
        if x is None or y is None:
            return -direction if x is None else direction
        return direction if x > y else -direction
    return 0
