"""The SData `where` and `orderBy` languages, as Sage X3 api1 accepts them.

`compile_where` turns a filter into a predicate over raw records; `parse_order_by`
turns a sort clause into (property, descending) pairs. Both check property names
against the representation's field types, since X3 answers an unknown property with a
500 (X3_REALITY.md R9). A served name may map to another stored column (`columns`).

Field types use the letters of x3data: A alphanumeric, I integer, N decimal, M local menu
(an integer; a Yes/No value compares as X3's 1 no / 2 yes), B Yes/No (a boolean, compared
with the literals `true`/`false`), D date ("YYYY-MM-DD"), DT datetime (UTC). How real X3
compares a boolean is not known: the caller picks `true`/`false` literals (B) or 1/2 (M).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

_MIN_DATETIME = datetime.min.replace(tzinfo=UTC)


class SDataError(Exception):
    """A `where` or `orderBy` the simulator refuses."""


class SDataSyntaxError(SDataError):
    """Malformed expression: X3 answers 400."""


class BadComparison(SDataError):
    """A boolean compared with something else (or the reverse): answered with a 500 too."""


class UnknownProperty(SDataError):
    """A property the class does not expose: X3 answers 500 (its documented quirk)."""

    def __init__(self, prop: str, cls: str = "") -> None:
        self.prop = prop
        self.cls = cls
        super().__init__(f"Property {prop} not found in class {cls}".rstrip())


def comparable(value: Any, kind: str) -> Any:
    """Turn a raw field value into something that orders like X3 orders it."""
    if kind in ("N", "M", "I"):
        if isinstance(value, bool):
            return 2.0 if value else 1.0  # a Yes/No as local menu 1: 1 no, 2 yes
        return float(value) if value not in (None, "") else float("-inf")
    if kind == "B":
        return bool(value)
    if kind == "D":
        return date.fromisoformat(value[:10]) if value else date.min
    if kind == "DT":
        return _aware(datetime.fromisoformat(value)) if value else _MIN_DATETIME
    return "" if value is None else str(value)


def _aware(moment: datetime) -> datetime:
    # X3 stores datetimes in UTC; a literal without an offset means UTC too.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# ---------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^']|'')*')
    | (?P<at>@[^@]*@)
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<sym><>|!=|<=|>=|=|<|>)
    | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)

_SYMBOLS = {
    "=": "eq",
    "<>": "ne",
    "!=": "ne",
    "<": "lt",
    "<=": "le",
    ">": "gt",
    ">=": "ge",
}
_COMPARE = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}
_KEYWORDS = {*_COMPARE, "and", "or", "not", "between", "in", "like"}


@dataclass(frozen=True)
class _Token:
    kind: str  # str, at, num, name, sym, punct, end
    text: str
    pos: int

    def word(self) -> str:
        """The keyword this token spells, lower-cased ('' if it is not one)."""
        if self.kind == "sym":
            return _SYMBOLS[self.text]
        if self.kind == "name" and self.text.lower() in _KEYWORDS:
            return self.text.lower()
        return ""


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while text[pos:].strip():
        match = _TOKEN.match(text, pos)
        if not match:
            start = len(text) - len(text[pos:].lstrip())
            raise SDataSyntaxError(f"Unexpected character at position {start + 1}")
        kind = match.lastgroup or ""
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


# ---------------------------------------------------------------- operands


@dataclass(frozen=True)
class _Operand:
    prop: str | None  # a property name, or None for a literal
    kind: str  # the field type, or the literal's own: A, N, B, D, DT
    value: Any = None  # the literal, already parsed
    column: str = ""  # the stored column of a property

    def getter(self, kind: str) -> Callable[[Mapping[str, Any]], Any]:
        if self.prop is not None:
            column, own = self.column or self.prop, self.kind
            return lambda record: comparable(record.get(column), own)
        constant = _coerce(self, kind)
        return lambda record: constant


def _literal(token: _Token) -> _Operand:
    if token.kind == "str":
        return _Operand(None, "A", token.text[1:-1].replace("''", "'"))
    if token.kind == "num":
        return _Operand(None, "N", token.text)
    inner = token.text[1:-1]
    try:
        if "T" in inner:
            return _Operand(None, "DT", _aware(datetime.fromisoformat(inner)))
        return _Operand(None, "D", date.fromisoformat(inner))
    except ValueError:
        raise SDataSyntaxError(f"Invalid date literal {token.text}") from None


def _coerce(literal: _Operand, kind: str) -> Any:
    """Convert a literal to the type of the property it is compared with."""
    value = literal.value
    try:
        if kind == "B":
            return bool(value)
        if kind in ("N", "M", "I"):
            return float(value)
        if kind == "D":
            return _to_date(value)
        if kind == "DT":
            return _to_datetime(value)
    except (TypeError, ValueError):
        raise SDataSyntaxError(f"Cannot compare {value!r} with a {kind} field") from None
    return value.isoformat() if isinstance(value, date) else str(value)


def _to_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    return _aware(datetime.fromisoformat(value))


def _family(kind: str) -> str:
    return "N" if kind in ("M", "I") else kind


# ---------------------------------------------------------------- parser


class _Parser:
    """Recursive descent over the token list, compiling as it goes."""

    def __init__(
        self, text: str, types: Mapping[str, str], cls: str, columns: Mapping[str, str], bools: bool
    ) -> None:
        self.tokens = _tokenize(text)
        self.types = types
        self.cls = cls
        self.columns = columns
        self.bools = bools  # `true`/`false` are literals (else they are property names)
        self.index = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, word: str) -> None:
        token = self.take()
        if token.word() != word and token.text != word:
            raise self.error(token, f"expected '{word}'")

    def error(self, token: _Token, why: str) -> SDataSyntaxError:
        found = repr(token.text) if token.text else "end of expression"
        return SDataSyntaxError(f"Syntax error at position {token.pos + 1}: {why}, found {found}")

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.peek().kind != "end":
            raise self.error(self.peek(), "expected 'and', 'or' or end of expression")
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.peek().word() == "or":
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else lambda r: any(p(r) for p in parts)

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.peek().word() == "and":
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else lambda r: all(p(r) for p in parts)

    def negation(self) -> Predicate:
        if self.peek().word() == "not":
            self.take()
            inner = self.negation()
            return lambda r: not inner(r)
        if self.peek().text == "(":
            self.take()
            inner = self.disjunction()
            self.expect(")")
            return inner
        return self.comparison()

    def operand(self) -> _Operand:
        token = self.take()
        if token.kind in ("str", "num", "at"):
            return _literal(token)
        if token.kind != "name" or token.word():
            raise self.error(token, "expected a property or a literal")
        if self.bools and token.text.lower() in ("true", "false"):
            return _Operand(None, "B", token.text.lower() == "true")
        if self.peek().text == "(":
            raise SDataSyntaxError(f"Function {token.text} is not supported")
        if token.text not in self.types:
            raise UnknownProperty(token.text, self.cls)
        return _Operand(token.text, self.types[token.text], column=self.columns.get(token.text, ""))

    def comparison(self) -> Predicate:
        left = self.operand()
        token = self.take()
        word = token.word()
        negate = word == "not"
        if negate:
            token = self.take()
            word = token.word()
        if word in _COMPARE and not negate:
            return self.binary(left, _COMPARE[word], self.operand())
        if word == "between" and not negate:
            return self.between(left)
        if word == "in":
            return self.membership(left, negate)
        if word == "like":
            return self.like(left, negate)
        raise self.error(token, "expected an operator")

    def binary(self, left: _Operand, compare: Any, right: _Operand) -> Predicate:
        kind = _common_kind(left, right)
        get_left, get_right = left.getter(kind), right.getter(kind)
        return lambda r: bool(compare(get_left(r), get_right(r)))

    def between(self, subject: _Operand) -> Predicate:
        low = self.operand()
        self.expect("and")
        high = self.operand()
        kind = _common_kind(subject, low, high)
        get, get_low, get_high = subject.getter(kind), low.getter(kind), high.getter(kind)
        return lambda r: get_low(r) <= get(r) <= get_high(r)

    def membership(self, subject: _Operand, negate: bool) -> Predicate:
        self.expect("(")
        items = [self.operand()]
        while self.peek().text == ",":
            self.take()
            items.append(self.operand())
        self.expect(")")
        kind = _common_kind(subject, *items)
        if any(item.prop for item in items):
            raise SDataSyntaxError("'in' takes a list of literals")
        values = {_coerce(item, kind) for item in items}
        get = subject.getter(kind)
        return lambda r: (get(r) in values) != negate

    def like(self, subject: _Operand, negate: bool) -> Predicate:
        prop = subject.prop
        if prop is None:
            raise SDataSyntaxError("'like' applies to a property")
        token = self.take()
        if token.kind != "str":
            raise self.error(token, "'like' takes a quoted pattern")
        pattern = _like_regex(_literal(token).value)
        column = subject.column or prop
        return lambda r: bool(pattern.fullmatch(comparable(r.get(column), "A"))) != negate


def _common_kind(*operands: _Operand) -> str:
    """The type both sides are compared as: that of the property involved."""
    props = [o for o in operands if o.prop is not None]
    if not props:
        return operands[0].kind
    kinds = {_family(o.kind) for o in props}
    if len(kinds) > 1:
        names = ", ".join(o.prop or "" for o in props)
        raise SDataSyntaxError(f"Cannot compare properties of different types: {names}")
    kind = props[0].kind
    for literal in operands:
        if literal.prop is None and (literal.kind == "B") != (kind == "B"):
            value = literal.value
            shown = {"B": str(value).lower(), "A": f"'{value}'"}.get(literal.kind, str(value))
            raise BadComparison(f"Cannot compare property {props[0].prop} with {shown}")
    return kind


def _like_regex(pattern: str) -> re.Pattern[str]:
    parts = ("." if ch == "_" else ".*" if ch == "%" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.DOTALL)


# ---------------------------------------------------------------- public API


def compile_where(
    text: str,
    types: Mapping[str, str],
    cls: str = "",
    columns: Mapping[str, str] | None = None,
    booleans: bool = True,
) -> Predicate:
    """Compile an SData filter into a predicate over raw records (blank: all).

    `columns` maps a property to the stored column it reads (default: its own name);
    `booleans`: `true`/`false` are literals for B properties (else property names).
    """
    if not text.strip():
        return lambda record: True
    return _Parser(text, types, cls, columns or {}, booleans).parse()


def parse_order_by(text: str, types: Mapping[str, str], cls: str = "") -> list[tuple[str, bool]]:
    """Parse `A desc, B asc` or `A;B Desc` into (property, descending) pairs."""
    specs: list[tuple[str, bool]] = []
    for part in re.split(r"[,;]", text):
        words = part.split()
        if not words:
            continue
        direction = words[1].lower() if len(words) > 1 else "asc"
        if len(words) > 2 or direction not in ("asc", "desc"):
            raise SDataSyntaxError(f"Invalid orderBy clause: {part.strip()!r}")
        if words[0] not in types:
            raise UnknownProperty(words[0], cls)
        specs.append((words[0], direction == "desc"))
    return specs
