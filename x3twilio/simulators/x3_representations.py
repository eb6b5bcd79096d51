"""The simulated X3's representations: what each facet of a class serves, under which
names (a site's renamed fields, custom representations' extra fields), and the prototypes
that describe them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .x3_codec import Codec
from .x3data import (
    CLASSES,
    STAMPS,
    ClassDef,
    Rows,
    Spec,
    columns_of,
    letter,
    normal_kind,
    parameter,
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
    name: str, cls: ClassDef, shown: set[str], added: set[str], options: Options
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
class Options:
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


def build_representations(
    options: Options,
) -> tuple[dict[str, ClassDef], dict[str, Representation]]:
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


def describe(view: Rows, sortable: bool, codec: Codec) -> dict[str, Any]:
    """A prototype's `$properties` for what `view` serves."""
    described: dict[str, Any] = {}
    for name, kind in view.fields.items():
        if isinstance(kind, Rows):
            item = {"$properties": describe(kind, False, codec)}
            described[name] = {"$type": "application/x-array", "$item": item}
            continue
        prop = _type(kind, codec)
        if name in view.keys:
            prop["$isMandatory"] = True
        if sortable:
            prop["$capabilities"] = "sort"
        described[name] = prop
    return described


def _type(kind: str, codec: Codec) -> dict[str, Any]:
    code, number = letter(kind), parameter(kind)
    if code == "B" and codec.menu:
        return {"$type": _TYPES["M"], "$menu": 1}
    prop: dict[str, Any] = {"$type": _TYPES[code]}
    if code == "A":
        prop["$maxLength"] = number
    if code == "M" and number:
        prop["$menu"] = number
    return prop
