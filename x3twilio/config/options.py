"""One option of the file, declared once on its dataclass field: key, default, bounds, meaning.

A field declares itself with `field(default=..., metadata=about("what it is for", ...))`; the
section loaders read it with `read` (so the default and the bounds the loader applies are the
ones declared), and `config.reference` prints README's configuration table from the same
declarations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any

from x3twilio.yamlnode import Node

# Bounds shared by several options.
TIMEOUT: dict[str, Any] = {"low": 0.1, "high": 600.0, "duration": True}  # per request: 100ms-10m
DAY = 86400.0
FROM_FIELD: Any = object()  # an Option's default when the field's own default is the file's


@dataclass(frozen=True)
class Option:
    """What the file may say for one field, and what README says about it."""

    doc: str  # one line, the reference table's "meaning"
    key: str = ""  # in the file, under its section; "" = the field's name
    default: Any = FROM_FIELD  # as the file gives it, when not the field's own default
    low: float | None = None
    high: float | None = None
    duration: bool = False  # 30s, 10m, 2h or seconds
    kind: type | tuple[type, ...] | None = None  # None: the default's type (required: str)
    shown: str | None = None  # the default as the reference shows it, when not the value
    problem: str | None = None  # the error when out of bounds, instead of the generic one


def about(doc: str, **declared: Any) -> Mapping[str, Option]:
    """The metadata of a field that is an option of the file (see Option for `declared`)."""
    return {"option": Option(doc, **declared)}


@dataclass(frozen=True)
class Declared:
    """An option with its key and default resolved from the dataclass field."""

    name: str  # the field
    key: str
    default: Any  # MISSING: required
    option: Option


def options_of(cls: type) -> list[Declared]:
    """The options a section dataclass declares, in field order."""
    found = []
    for spec in fields(cls):
        option = spec.metadata.get("option")
        if not isinstance(option, Option):
            continue
        default, factory = option.default, spec.default_factory
        if default is FROM_FIELD:
            default = spec.default if factory is MISSING else factory()
        found.append(Declared(spec.name, option.key or spec.name, default, option))
    return found


def declared(cls: type, name: str) -> Declared:
    """The declaration of field `name` of `cls` (a KeyError is a programming error)."""
    for found in options_of(cls):
        if found.name == name:
            return found
    raise KeyError(f"{cls.__name__}.{name} declares no option")


def read(node: Node, cls: type, name: str) -> Any:
    """The value of option `name` of section `cls` in `node`: checked, or its default."""
    found = declared(cls, name)
    option, key = found.option, found.key
    default = found.default
    if option.duration:
        low = 0.0 if option.low is None else option.low
        if option.high is None:
            return node.duration(key, default, low)
        return node.duration(key, default, low, option.high)
    kind = option.kind or (str if default is MISSING else type(default))  # required: text
    value = node.get(key, kind) if default is MISSING else node.get(key, kind, default)
    if option.low is None or option.high is None:
        return value
    if option.problem is None:  # the generic "expected 1 to 50, got 0"
        numeric: type[int] | type[float] = int if kind is int else float
        return node.number(key, numeric, default, option.low, option.high)
    if not option.low <= value <= option.high:
        raise node.error(key, option.problem)
    return value
