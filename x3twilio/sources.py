"""What each X3 source is: class, representation, key, stamps and friendly fields.

A record from X3 carries raw codes (POHNUM, APPFLG=3); rules and templates use
friendly names (order_number, approval="approved"). This module owns that mapping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from x3twilio.decoding import Field, Undecodable, parse_stamp
from x3twilio.errors import X3FieldError

PARTNER_KINDS = ("supplier", "customer")
PARTNER_TYPE = {1: "customer", 2: "supplier"}  # X3's BPRTYP local menu
_X3_CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class Partner:
    """Where a record names its business partner: a code field plus a fixed or coded kind."""

    field: str
    kind: str | None = None  # "supplier" or "customer", or None when kind_field says
    kind_field: str | None = None  # e.g. BPRTYP: 1 customer, 2 supplier

    def of(self, raw: Mapping[str, Any]) -> tuple[str, str] | None:
        code = raw.get(self.field)
        if not code:
            return None
        kind = self.kind or PARTNER_TYPE.get(_as_int(raw.get(self.kind_field or "")) or 0)
        return (kind, str(code)) if kind else None


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Source:
    name: str
    x3_class: str
    representation: str
    key: tuple[str, ...]
    fields: Mapping[str, Field]
    timestamp: str = "UPDDATTIM"
    created: str = "CREDATTIM"  # the creation stamp, read only for `on: created` rules
    partner: Partner | None = None
    where: str | None = None  # the user's filter, and-ed with the change window
    open_where: str | None = None  # the user's "currently open" filter, for due-date rules
    # (friendly field, value) marking a closed record: due-date rules skip it. Checked here,
    # not in X3's `where`, because how api1 compares a boolean is not known (X3_REALITY §2).
    closed: tuple[str, str] | None = None
    computed: Mapping[str, Callable[[Mapping[str, Any]], Any]] = field(default_factory=dict)
    computed_kinds: Mapping[str, str] = field(default_factory=dict)
    computed_from: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # inputs

    def names(self) -> set[str]:
        """Every name a rule or template may use: friendly names and raw codes."""
        return set(self.fields) | set(self.computed) | {f.code for f in self.fields.values()}

    def knows(self, name: str) -> bool:
        """A declared name, or any X3 code (upper case): rules may test undeclared codes."""
        return name in self.names() or _X3_CODE.match(name) is not None

    def kind_of(self, name: str) -> str:
        if name in self.fields:
            return self.fields[name].kind
        if name in self.computed_kinds:
            return self.computed_kinds[name]
        if self.knows(name):
            return "raw"
        raise KeyError(name)

    def field_by_name(self, name: str) -> Field | None:
        return self.fields.get(name)

    def record_key(self, raw: Mapping[str, Any]) -> str:
        return "~".join(key_text(raw[code]) for code in self.key)

    def is_closed(self, record: Record) -> bool:
        """Whether due-date rules should pass this record by (a closed order or item)."""
        return self.closed is not None and record.value(self.closed[0]) == self.closed[1]


def key_text(value: Any) -> str:
    """One part of an api1 key: 1000.0 and 1000 are both "1000"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(slots=True)  # not frozen: built 10,000s of times a second
class Record:
    """One X3 record: its key and change stamp, raw codes, and decoded friendly values."""

    source: Source
    key: str
    stamp: str
    raw: Mapping[str, Any]
    values: Mapping[str, Any]
    created: str | None = None  # the creation stamp as X3 wrote it; None: empty or not read

    def value(self, name: str) -> Any:
        """A friendly (decoded) value, or the raw value of an X3 code."""
        if name in self.values:
            return self.values[name]
        return self.raw.get(name)

    @property
    def partner(self) -> tuple[str, str] | None:
        return self.source.partner.of(self.raw) if self.source.partner else None


def exposure_fix(source: Source, code: str) -> tuple[str, str]:
    """(what is missing, how to fix it) when X3 lacks a property `source` needs."""
    field_ = next((f for f in source.fields.values() if f.code == code), None)
    if code == source.timestamp:
        what, fix = f"{code} (the change stamp)", f"set sources.{source.name}.timestamp"
    elif code == source.created:
        what, fix = f"{code} (the creation stamp)", f"set sources.{source.name}.created"
    elif field_ is not None:
        what = f"{code} ({field_.name})"
        fix = f"set sources.{source.name}.fields.{field_.name}.code to this site's name for it"
    else:
        what, fix = code, f"correct {code} in the rules or in sources.{source.name}"
    fix += (
        f", or point sources.{source.name}.representation at one that has it"
        f" (`x3twilio x3 describe {source.x3_class}` lists what X3 exposes)"
    )
    return what, fix


def not_exposed(source: Source, code: str, why: str = "") -> X3FieldError:
    """The error `poll` stops with (exit 78); `check` says the same in its table."""
    what, fix = exposure_fix(source, code)
    return X3FieldError(
        code,
        f"source {source.name}: {source.x3_class} (representation "
        f"{source.representation}.$query) does not expose {what}"
        + (f"; {why}" if why else "")
        + f". Fix: {fix}",
    )


def fields_for(source: Source, names: set[str] | None) -> tuple[Field, ...]:
    """The fields to decode for rules that read `names` (all of them when None)."""
    if names is None or not names.isdisjoint(source.computed):
        return tuple(source.fields.values())  # computed values need their inputs
    if source.closed:
        names = names | {source.closed[0]}
    return tuple(f for f in source.fields.values() if f.name in names)


def stamped(source: Source, details: Mapping[str, Any]) -> Mapping[str, Any]:
    """A `$details` answer with its change stamp: it may carry only `$etag` (captured
    $details do), which is the same UTC update stamp; likewise `$creDate` for the
    creation stamp (SData's resource metadata)."""
    added = {}
    if source.timestamp not in details and "$etag" in details:
        added[source.timestamp] = details["$etag"]
    if source.created not in details and "$creDate" in details:
        added[source.created] = details["$creDate"]
    return {**details, **added} if added else details


def decode(
    source: Source,
    raw: Mapping[str, Any],
    fields: tuple[Field, ...] | None = None,
    created: bool | None = None,
) -> Record:
    """Decode one raw X3 resource; Undecodable names the record, field and value.

    `fields` (from fields_for) limits decoding to what the rules read: the rest of a
    record costs nothing on the hot path. `created`: whether to read the creation stamp
    (rules.reads_created says); None: when decoding every field. Off, a garbage CREDATTIM
    costs nothing: a source without `on: created` rules never rejects a record for it.
    """
    for code in source.key:
        part = raw.get(code)
        if isinstance(part, bool) or not isinstance(part, str | int | float) or part == "":
            raise Undecodable(None, code, part, f"the key field {code} is {part!r}")
    key = source.record_key(raw)
    stamp = raw.get(source.timestamp)
    if not _is_stamp(stamp):
        problem = f"the change stamp {source.timestamp} is {stamp!r}, not a UTC timestamp"
        raise Undecodable(key, source.timestamp, stamp, problem)
    reads_created = fields is None if created is None else created
    born = _created(source, raw, key) if reads_created else None
    values: dict[str, Any] = {}
    for f in source.fields.values() if fields is None else fields:
        value = raw.get(f.code)
        try:
            values[f.name] = f.decode(value)
        except ValueError as exc:
            raise Undecodable(key, f.code, value, f"({f.name}) {exc}") from None
    if fields is None or len(values) == len(source.fields):
        for name, compute in source.computed.items():
            values[name] = compute(values)
    return Record(source, key, stamp, raw, values, born)


def _is_stamp(value: Any) -> TypeGuard[str]:
    """Text that parses as a UTC timestamp."""
    if not isinstance(value, str):
        return False
    try:
        parse_stamp(value)
    except ValueError:
        return False
    return True


def _created(source: Source, raw: Mapping[str, Any], key: str) -> str | None:
    """The creation stamp as X3 wrote it; None when X3 leaves it empty or absent."""
    value = raw.get(source.created)
    if value in (None, ""):
        return None
    if not _is_stamp(value):
        problem = f"the creation stamp {source.created} is {value!r}, not a UTC timestamp"
        raise Undecodable(key, source.created, value, problem)
    return value
