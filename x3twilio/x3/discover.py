"""What the customer's X3 exposes, asked of X3 itself (api1).

A representation describes itself at `$prototypes('{REP}.{facet}')` (X3_REALITY.md §1); a
server that does not answer it is sampled instead: one `$query` row and that record's
`$details`. `check` compares what sources, rules, partner look-ups and note targets need
with what is found; `x3 describe` lists it for an operator mapping custom fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

# api1 prototype types -> the kinds this tool decodes (sources.KINDS), plus "list".
_TYPES = {
    "application/x-string": "text",
    "application/x-integer": "int",
    "application/x-decimal": "decimal",
    "application/x-boolean": "yesno",
    "application/x-date": "date",
    "application/x-datetime": "datetime",
    "application/x-choice": "menu",
    "application/x-array": "list",
}
# What each of this tool's kinds can read (a menu arrives as an integer; yes/no as a
# boolean, or as 1/2 on older builds).
COMPATIBLE = {
    "text": {"text"},
    "int": {"int", "menu"},
    "decimal": {"decimal", "int"},
    "date": {"date"},
    "datetime": {"datetime"},
    "menu": {"menu", "int"},
    "yesno": {"yesno", "menu", "int"},
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


class Describer(Protocol):
    def prototype(
        self, x3_class: str, representation: str, facet: str
    ) -> dict[str, Any] | None: ...

    def sample(self, x3_class: str, representation: str) -> dict[str, Any] | None: ...

    def details(
        self, x3_class: str, key: str, representation: str | None = None
    ) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Property:
    name: str
    kind: str  # text, int, decimal, yesno, date, datetime, menu, list, or "?" (unknown)
    sample: Any = None
    max_length: int | None = None
    read_only: bool = False  # the prototype's $isDisabled
    children: Mapping[str, Property] = field(default_factory=dict)  # a child list's rows


@dataclass(frozen=True)
class Exposed:
    """What one facet of a representation exposes, and how that was learnt."""

    how: str  # "prototype", "sampled record", "no record to sample", or "introspection"
    properties: Mapping[str, Property]
    label: str = ""  # how `check` names what was looked at, when not a representation
    # code -> (what is missing, the fix), when the API knows better than sources.exposure_fix
    missing: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def find(self, path: tuple[str, ...]) -> Property | bool | None:
        """The property at `path` (child lists walked); False when absent; None when it
        cannot be told (a child list that was empty in the sampled record)."""
        props: Mapping[str, Property] = self.properties
        found: Property | None = None
        for depth, code in enumerate(path):
            found = props.get(code)
            if found is None:
                return None if depth and not props and self.how != "prototype" else False
            props = found.children
        return found

    def walk(self, prefix: str = "") -> Iterator[tuple[str, Property]]:
        for name, prop in sorted(self.properties.items()):
            yield prefix + name, prop
            yield from Exposed(self.how, prop.children).walk(f"{prefix}{name}[].")


def describe(
    client: Describer, x3_class: str, representation: str, facet: str, samples: bool = False
) -> Exposed:
    """What `representation` exposes for `facet` ($query, $details or $edit); with
    `samples`, a prototype's properties also get a sampled record's values."""
    prototype = client.prototype(x3_class, representation, facet)
    if prototype is not None and not samples:
        return Exposed("prototype", _from_prototype(prototype))
    row = client.sample(x3_class, representation)
    if row is not None and facet != "$query":
        key = row.get("$key")
        row = (client.details(x3_class, str(key), representation) if key else None) or row
    sampled = _from_sample(row) if row is not None else {}
    if prototype is not None:
        return Exposed("prototype", _with_samples(_from_prototype(prototype), sampled))
    return Exposed("sampled record" if row is not None else "no record to sample", sampled)


def _with_samples(
    properties: Mapping[str, Property], sampled: Mapping[str, Property]
) -> dict[str, Property]:
    out = {}
    for name, prop in properties.items():
        seen = sampled.get(name)
        children = _with_samples(prop.children, seen.children if seen else {})
        out[name] = replace(prop, sample=seen.sample if seen else None, children=children)
    return out


def _from_prototype(properties: Mapping[str, Any]) -> dict[str, Property]:
    out = {}
    for name, spec in properties.items():
        if name.startswith("$") or not isinstance(spec, Mapping):
            continue
        item = spec.get("$item")
        children = item.get("$properties") if isinstance(item, Mapping) else None
        length = spec.get("$maxLength")
        out[name] = Property(
            name,
            _TYPES.get(str(spec.get("$type")), "?"),
            max_length=length if isinstance(length, int) else None,
            read_only=spec.get("$isDisabled") is True,
            children=_from_prototype(children) if isinstance(children, Mapping) else {},
        )
    return out


def _from_sample(row: Mapping[str, Any]) -> dict[str, Property]:
    out = {}
    for name, value in row.items():
        if name.startswith("$") or name.endswith("_REF"):
            continue  # framework properties and reference titles
        rows = [r for r in value if isinstance(r, Mapping)] if isinstance(value, list) else []
        merged: dict[str, Any] = {}
        for r in rows:  # the first non-empty value of each column, for a better sample
            for k, v in r.items():
                if merged.get(k) in (None, ""):
                    merged[k] = v
        out[name] = Property(
            name,
            "list" if isinstance(value, list) else _kind_of(value),
            None if isinstance(value, list) else value,
            children=_from_sample(merged) if merged else {},
        )
    return out


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "yesno"
    if isinstance(value, int):
        return "int"  # or a local menu: only a prototype tells
    if isinstance(value, float):
        return "decimal"
    if isinstance(value, str) and (_DATE.match(value) or value == "0000-00-00"):
        return "date"
    if isinstance(value, str) and _STAMP.match(value):
        return "datetime"
    return "text" if isinstance(value, str) else "?"
