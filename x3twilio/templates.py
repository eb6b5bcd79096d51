"""Message templates: {name}, {name:spec}, {name|fallback} and {name|fallback:spec} only,
checked when the rules load.

A fallback is what is written when X3 leaves the value empty (None, or blank text): `{reference|no
reference}`, `{accounting_date|soon:%d %B %Y}`. It sits between the name and the spec because a
name never holds `|` while a spec may (a fill character, strftime text): nothing a spec means can
be read as a fallback. Without a fallback an empty value writes nothing, as X3 holds it: the same
templates fill X3 fields (inbound notes), where an invented word would be stored as data, and a
message is in the operator's language, which a built-in word would not be.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from x3twilio.yamlnode import did_you_mean

if TYPE_CHECKING:
    from babel import Locale

# A sample value per kind, to prove a format spec works before any message is sent.
SAMPLES: dict[str, Any] = {
    "text": "PO123",
    "int": 3,
    "decimal": Decimal("1234.5"),
    "date": date(2026, 1, 31),
    "datetime": datetime(2026, 1, 31, 9, 30, tzinfo=UTC),
    "menu": "approved",
    "yesno": "no",
    "raw": "X",
}
FALLBACK = "|"
# What a fallback cannot hold: Python's format syntax reads these as the end of the name.
_FALLBACK_LIMITS = "a fallback {name|text} cannot hold ':', '!', '{' or '}'"


class TemplateError(ValueError):
    """A template that cannot be rendered; the message says which placeholder and why."""


@dataclass(frozen=True)
class Template:
    text: str
    parts: tuple[tuple[str, str | None, str, str | None], ...]  # (literal, name, spec, fallback)

    @property
    def names(self) -> set[str]:
        return {name for _, name, _, _ in self.parts if name}

    @property
    def literals(self) -> str:
        """Every character the template itself writes: its text and its fallbacks."""
        return "".join(literal + (fallback or "") for literal, _, _, fallback in self.parts)

    def render(self, value: Callable[[str], Any], locale: str | None = None) -> str:
        """Fill the placeholders with value(name); an empty value writes its fallback, or
        nothing when the placeholder has none. With a `locale` (`fr_FR`), dates and amounts
        follow that language's conventions: month and day names, decimal and group marks."""
        out = []
        for literal, name, spec, fallback in self.parts:
            out.append(literal)
            if name is None:
                continue
            found = value(name)
            if fallback is not None and is_empty(found):
                out.append(fallback)
            else:
                out.append(_format(found, spec) if locale is None else _local(found, spec, locale))
        return "".join(out)


def is_empty(value: Any) -> bool:
    """What X3 sends for "nothing": no value, or blank text (dates: the decoders give None)."""
    return value is None or (isinstance(value, str) and not value.strip())


def _format(value: Any, spec: str) -> str:
    if value is None:
        return ""
    if spec and isinstance(value, int | float) and not isinstance(value, bool):
        value = Decimal(str(value))  # raw X3 numbers accept the decimal specs too
    return format(value, spec)


# strftime directives that write words: Babel writes them in the locale's language.
_NAMED = {"%B": "MMMM", "%b": "MMM", "%A": "EEEE", "%a": "EEE"}
_DIRECTIVE = re.compile(r"%[-_0^#]?.")
# The number in what format() wrote: its digits, "," groups and "." decimals; a fill
# character around it (even "." or ",") is left alone.
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def _local(value: Any, spec: str, tag: str) -> str:
    """`value` as `_format` writes it, in the conventions of the language `tag`."""
    locale = _babel_locale(tag)
    if locale is None or value is None:
        return _format(value, spec)
    if isinstance(value, date):  # a datetime too
        return _local_date(value, spec, locale)
    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        return _local_number(_format(value, spec), locale)
    return _format(value, spec)


def known_locale(tag: str) -> bool:
    """Whether Babel knows the language `tag` (`fr_FR`, `pt-BR`); it imports Babel."""
    return _babel_locale(tag) is not None


@lru_cache(maxsize=64)
def _babel_locale(tag: str) -> Locale | None:
    """Babel's locale for `tag`; None for one it does not know (`check` warns about those):
    the message still goes, with dates and amounts as without a language."""
    from babel import Locale, UnknownLocaleError  # only a localized render pays for Babel

    try:
        return Locale.parse(tag.replace("-", "_"))  # pt-BR as people write it: pt_BR
    except (UnknownLocaleError, ValueError):
        return None


def _local_date(value: date, spec: str, locale: Locale) -> str:
    from babel.dates import format_date, format_datetime

    if not spec:
        if isinstance(value, datetime):
            return format_datetime(value, "medium", locale=locale)
        return format_date(value, "medium", locale=locale)

    def directive(match: re.Match[str]) -> str:
        pattern = _NAMED.get(match[0])
        return format_date(value, pattern, locale=locale) if pattern else value.strftime(match[0])

    return _DIRECTIVE.sub(directive, spec)


def _local_number(text: str, locale: Locale) -> str:
    from babel.numbers import get_decimal_symbol, get_group_symbol

    marks = {",": get_group_symbol(locale), ".": get_decimal_symbol(locale)}
    return _NUMBER.sub(lambda found: "".join(marks.get(c, c) for c in found[0]), text, count=1)


def compile_template(text: str, kinds: Mapping[str, str]) -> Template:
    """Parse `text`; every placeholder must be a known name with a working spec."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        hint = f" ({_FALLBACK_LIMITS})" if FALLBACK in text else ""
        raise TemplateError(f"malformed template: {exc}{hint}") from None
    parts: list[tuple[str, str | None, str, str | None]] = []
    for literal, field, spec, conversion in parsed:
        if field is None:
            parts.append((literal, None, "", None))
            continue
        name, bar, fallback = field.partition(FALLBACK)
        placeholder = Placeholder(field, name, spec or "", fallback if bar else None)
        placeholder.check(conversion, kinds)
        parts.append((literal, name, placeholder.spec, placeholder.fallback))
    return Template(text, tuple(parts))


@dataclass(frozen=True)
class Placeholder:
    """One {…} of a template, as written (`field`: the name and any |fallback)."""

    field: str
    name: str
    spec: str
    fallback: str | None

    @property
    def shown(self) -> str:
        return f"{{{self.field}:{self.spec}}}" if self.spec else f"{{{self.field}}}"

    def check(self, conversion: str | None, kinds: Mapping[str, str]) -> None:
        name, spec = self.name, self.spec
        if not name:
            raise TemplateError(
                f"empty placeholder {self.shown}: name the field, e.g. {{order_number}}"
            )
        if not name.isidentifier():
            raise TemplateError(
                f"placeholder {self.shown}: only plain names are allowed "
                "(no attribute or index access)"
            )
        if conversion:
            hint = f" ({_FALLBACK_LIMITS})" if self.fallback is not None else ""
            raise TemplateError(
                f"placeholder {{{self.field}!{conversion}}}: conversions are not allowed{hint}"
            )
        if "{" in spec:
            raise TemplateError(f"placeholder {self.shown}: nested placeholders are not allowed")
        if FALLBACK in spec:
            before, _, after = spec.partition(FALLBACK)
            raise TemplateError(
                f"placeholder {self.shown}: a fallback goes after the name, before the format "
                f"spec: {{{name}|{after}:{before}}}"
            )
        if name not in kinds:
            known = ", ".join(sorted(kinds))
            raise TemplateError(
                f"unknown placeholder {{{name}}}{did_you_mean(name, kinds)}; known names: {known}"
            )
        self._check_spec(kinds[name])

    def _check_spec(self, kind: str) -> None:
        colon = f" ({_FALLBACK_LIMITS})" if self.fallback is not None else ""
        if kind in ("date", "datetime") and self.spec and "%" not in self.spec:
            raise TemplateError(
                f"placeholder {self.shown}: a date format spec needs % directives such as "
                f"%d %b %Y (this one writes {self.spec!r} for every date){colon}"
            )
        try:
            _format(SAMPLES[kind], self.spec)
        except (ValueError, TypeError) as exc:
            raise TemplateError(
                f"placeholder {self.shown}: bad format spec ({exc}){colon}"
            ) from None
