"""What each X3 source is: class, representation, key, timestamp and friendly fields.

A record from X3 carries raw codes (POHNUM, APPFLG=3); rules and templates use
friendly names (order_number, approval="approved"). This module owns that mapping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from x3twilio.errors import X3FieldError
from x3twilio.yamlnode import Node

KINDS = ("text", "int", "decimal", "date", "datetime", "menu", "yesno")
PARTNER_KINDS = ("supplier", "customer")
_EMPTY_DATES = ("", "0000-00-00", "1753-01-01")
_X3_CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class Field:
    """One friendly name over an X3 property, with how to decode it."""

    name: str
    code: str
    kind: str = "text"
    menu: Mapping[int, str] = field(default_factory=dict)

    def decode(self, raw: Any) -> Any:
        """Turn X3's JSON value into a Python value; ValueError (naming the value) when it
        is not of the kind this field expects."""
        if raw is None:
            return None
        try:
            return _DECODERS[self.kind](self, raw)
        except (TypeError, ValueError, InvalidOperation):
            raise ValueError(f"expected {_EXPECTED[self.kind]}, got {raw!r}") from None


_EXPECTED = {
    "text": "text",
    "int": "an integer",
    "decimal": "a number",
    "date": "a date YYYY-MM-DD",
    "datetime": "a UTC timestamp",
    "menu": "a local-menu number",
    "yesno": "true or false (or 1/2)",
}


def _text(f: Field, raw: Any) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise TypeError(raw)
    return raw if isinstance(raw, str) else str(raw)


def _number(raw: Any) -> int | float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise TypeError(raw)
    return raw


def _int(f: Field, raw: Any) -> int:
    number = _number(raw)
    if number != int(number):
        raise ValueError(raw)
    return int(number)


def _decimal(f: Field, raw: Any) -> Decimal:
    # X3 sends decimals as JSON numbers; str() keeps 771.42 from becoming 771.4199…
    value = Decimal(str(_number(raw) if not isinstance(raw, str) else raw))
    if not value.is_finite():  # NaN or Infinity: never an amount
        raise ValueError(raw)
    return value


def _date(f: Field, raw: Any) -> date | None:
    if not isinstance(raw, str):
        raise TypeError(raw)
    return None if raw in _EMPTY_DATES else date.fromisoformat(raw[:10])


def _datetime(f: Field, raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        raise TypeError(raw)
    return None if raw in _EMPTY_DATES else parse_stamp(raw)


def _menu(f: Field, raw: Any) -> str:
    number = _int(f, raw)
    return f.menu.get(number, str(number))


def _yesno(f: Field, raw: Any) -> str:
    """Local menu 1: JSON true/false on current builds, 1 (no) / 2 (yes) on older ones."""
    if isinstance(raw, bool):
        return "yes" if raw else "no"
    if raw in (1, 2):
        return YES_NO[int(raw)]
    raise ValueError(raw)


_DECODERS: dict[str, Callable[[Field, Any], Any]] = {
    "text": _text,
    "int": _int,
    "decimal": _decimal,
    "date": _date,
    "datetime": _datetime,
    "menu": _menu,
    "yesno": _yesno,
}


def parse_stamp(text: str) -> datetime:
    """Parse an X3 UTC timestamp such as 2024-05-02T09:14:07Z (or with milliseconds)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return value


def stamp_literal(moment: datetime) -> str:
    """A UTC time as X3 writes change stamps: 2024-05-02T09:14:07Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


# Local menus (X3 "menu locaux"), decoded to words that read well in rules.
YES_NO = {1: "no", 2: "yes"}  # local menu 1; JSON booleans on current builds
LINE_STATUS = {1: "pending", 2: "late", 3: "closed"}
APPROVAL = {1: "no", 2: "partly", 3: "approved", 4: "not_managed", 5: "automatic"}
PROGRESS = {1: "none", 2: "partial", 3: "full"}
PARTNER_TYPE = {1: "customer", 2: "supplier"}
PAYMENT_STATUS = {1: "entered", 2: "accepted", 3: "draft", 9: "in_bank", 11: "unpaid"}
INVOICE_TYPE = {1: "invoice", 2: "additional_invoice", 3: "credit_note", 4: "credit_return"}


def _fields(*specs: tuple[Any, ...]) -> dict[str, Field]:
    out = {}
    for spec in specs:
        name, code, kind, *menu = spec
        out[name] = Field(name, code, kind, menu[0] if menu else YES_NO if kind == "yesno" else {})
    return out


def _open_amount(values: Mapping[str, Any]) -> Decimal | None:
    amount: Decimal | None = values.get("amount")
    paid: Decimal | None = values.get("paid")
    if amount is None:
        return None
    return amount - (paid or Decimal(0))


BUILTIN: dict[str, Source] = {
    "purchase_orders": Source(
        name="purchase_orders",
        x3_class="PORDER",
        representation="PORDER",
        key=("POHNUM",),
        partner=Partner("BPSNUM", kind="supplier"),
        closed=("closed", "yes"),
        fields=_fields(
            ("order_number", "POHNUM", "text"),
            ("supplier", "BPSNUM", "text"),
            ("order_date", "ORDDAT", "date"),
            ("company", "CPY", "text"),
            ("site", "POHFCY", "text"),
            ("currency", "CUR", "text"),
            ("reference", "ORDREF", "text"),
            ("approval", "APPFLG", "menu", APPROVAL),
            ("closed", "CLEFLG", "yesno"),
            ("receipt", "RCPFLG", "menu", PROGRESS),
            ("invoiced", "INVFLG", "menu", PROGRESS),
            ("total", "TOTORD", "decimal"),
            ("total_with_tax", "TTVORD", "decimal"),
            ("expected_date", "EXTRCPDAT1", "date"),  # the header's; EXTRCPDAT is per line
            ("updated", "UPDDATTIM", "datetime"),
        ),
    ),
    "purchase_order_lines": Source(
        name="purchase_order_lines",
        x3_class="PORDERQ",
        representation="PORDERQ",
        key=("POHNUM", "POPLIN", "POQSEQ"),
        partner=Partner("BPSNUM", kind="supplier"),
        closed=("status", "closed"),
        fields=_fields(
            ("order_number", "POHNUM", "text"),
            ("line", "POPLIN", "int"),
            ("sequence", "POQSEQ", "int"),
            ("supplier", "BPSNUM", "text"),
            ("site", "POHFCY", "text"),
            ("item", "ITMREF", "text"),
            ("description", "ITMDES", "text"),
            ("quantity", "QTYUOM", "decimal"),
            ("unit", "UOM", "text"),
            ("expected_date", "EXTRCPDAT", "date"),
            ("status", "LINSTA", "menu", LINE_STATUS),
            ("updated", "UPDDATTIM", "datetime"),
        ),
    ),
    "purchase_invoices": Source(
        name="purchase_invoices",
        x3_class="PINVOICE",
        representation="PINVOICE",
        key=("NUM",),
        partner=Partner("BPR", kind="supplier"),
        fields=_fields(
            ("invoice_number", "NUM", "text"),
            ("supplier", "BPR", "text"),
            ("supplier_reference", "BPRVCR", "text"),
            ("supplier_date", "BPRDAT", "date"),
            ("accounting_date", "ACCDAT", "date"),
            ("company", "CPY", "text"),
            ("currency", "CUR", "text"),
            ("amount", "AMTATI", "decimal"),
            ("amount_excl_tax", "AMTNOT", "decimal"),
            ("status", "STA", "int"),
            ("type", "PIHTYP", "menu", INVOICE_TYPE),
            ("updated", "UPDDATTIM", "datetime"),
        ),
    ),
    "sales_invoices": Source(
        name="sales_invoices",
        x3_class="SINVOICE",
        representation="SINVOICE",
        key=("NUM",),
        partner=Partner("BPR", kind="customer"),
        fields=_fields(
            ("invoice_number", "NUM", "text"),
            ("customer", "BPR", "text"),
            ("reference", "BPRVCR", "text"),
            ("accounting_date", "ACCDAT", "date"),
            ("company", "CPY", "text"),
            ("currency", "CUR", "text"),
            ("amount", "AMTATI", "decimal"),
            ("amount_excl_tax", "AMTNOT", "decimal"),
            ("status", "STA", "int"),
            ("updated", "UPDDATTIM", "datetime"),
        ),
    ),
    "open_items": Source(
        name="open_items",
        x3_class="GACCDUDATE",
        representation="GACCDUDATE",
        key=("TYP", "NUM", "LIG", "DUDLIG"),  # the document line is part of the key
        partner=Partner("BPR", kind_field="BPRTYP"),
        closed=("closed", "yes"),
        fields=_fields(
            ("document_type", "TYP", "text"),
            ("document", "NUM", "text"),
            ("document_line", "LIG", "int"),
            ("line", "DUDLIG", "int"),
            ("partner", "BPR", "text"),
            ("partner_type", "BPRTYP", "menu", PARTNER_TYPE),
            ("company", "CPY", "text"),
            ("currency", "CUR", "text"),
            ("due_date", "DUDDAT", "date"),
            ("amount", "AMTCUR", "decimal"),
            ("paid", "PAYCUR", "decimal"),
            ("closed", "FLGCLE", "yesno"),
            ("updated", "UPDDATTIM", "datetime"),
        ),
        computed={"open_amount": _open_amount},
        computed_kinds={"open_amount": "decimal"},
        computed_from={"open_amount": ("amount", "paid")},
    ),
    "payments": Source(
        name="payments",
        x3_class="PAYMENTH",
        representation="PAYMENTH",
        key=("NUM",),
        partner=Partner("BPR", kind_field="BPRTYP"),
        fields=_fields(
            ("payment_number", "NUM", "text"),
            ("partner", "BPR", "text"),
            ("partner_type", "BPRTYP", "menu", PARTNER_TYPE),
            ("partner_name", "BPANAM", "text"),
            ("method", "PAM", "text"),
            ("bank", "BAN", "text"),
            ("direction", "SNS", "menu", {1: "outgoing", 2: "incoming"}),
            ("amount", "AMTCUR", "decimal"),
            ("currency", "CUR", "text"),
            ("accounting_date", "ACCDAT", "date"),
            ("due_date", "DUDDAT", "date"),
            ("value_date", "VALDAT", "date"),
            ("reference", "REF", "text"),
            ("description", "DES", "text"),
            ("status", "STA", "menu", PAYMENT_STATUS),
            ("company", "CPY", "text"),
            ("site", "FCY", "text"),
            ("updated", "UPDDATTIM", "datetime"),
        ),
    ),
}


def load_sources(node: Node) -> dict[str, Source]:
    """The built-in sources with the config's overrides, plus custom sources."""
    sources = dict(BUILTIN)
    for name, _ in node.items("sources"):
        spec = node.child("sources").child(name)
        sources[name] = _load_source(name, spec, sources.get(name))
    return sources


def _load_source(name: str, spec: Node, base: Source | None) -> Source:
    cls = spec.get("class", str, base.x3_class if base else None)
    if cls is None:
        raise spec.error("class", "required for a custom source")
    fields = dict(base.fields) if base else {}
    fields_node = spec.child("fields")
    for fname, _ in spec.items("fields"):
        fields[fname] = _load_field(fname, fields_node.child(fname))
    fields_node.done()
    key = spec.get("key", list, list(base.key) if base else None)
    if not key:
        raise spec.error("key", "required for a custom source: the X3 key field(s)")
    source = Source(
        name=name,
        x3_class=cls,
        representation=spec.get("representation", str, base.representation if base else cls),
        key=tuple(str(k) for k in key),
        fields=fields,
        timestamp=spec.get("timestamp", str, base.timestamp if base else "UPDDATTIM"),
        partner=_load_partner(spec) if spec.has("partner") else (base.partner if base else None),
        where=spec.get("where", str, None),
        open_where=spec.get("open_where", str, base.open_where if base else None),
        closed=base.closed if base else None,
        computed=base.computed if base else {},
        computed_kinds=base.computed_kinds if base else {},
        computed_from=base.computed_from if base else {},
    )
    spec.get("enabled", bool, True)  # accepted for symmetry; sources run when a rule uses them
    spec.done()
    return source


def _load_field(name: str, spec: Node) -> Field:
    kind = spec.get("type", str, "text")
    if kind not in KINDS:
        raise spec.error("type", f"unknown type {kind!r}; expected one of {', '.join(KINDS)}")
    menu: dict[int, str] = {}
    for number, word in spec.items("values"):
        if not str(number).isdigit():
            raise spec.child("values").error(number, "menu values are keyed by integers")
        menu[int(number)] = str(word)
    if kind == "menu" and not menu:
        raise spec.error("values", "a menu field needs its values, e.g. {1: no, 2: yes}")
    field_ = Field(name, spec.get("code", str), kind, menu or (YES_NO if kind == "yesno" else {}))
    spec.done()
    return field_


def _load_partner(spec: Node) -> Partner:
    node = spec.child("partner")
    kind = node.get("kind", str, None)
    if kind is not None and kind not in PARTNER_KINDS:
        raise node.error("kind", "expected supplier or customer")
    partner = Partner(node.get("field", str), kind, node.get("kind_field", str, None))
    if not kind and not partner.kind_field:
        raise node.error("kind", "give kind (supplier|customer) or kind_field")
    node.done()
    return partner


@dataclass(slots=True)  # not frozen: built 10,000s of times a second
class Record:
    """One X3 record: its key and change stamp, raw codes, and decoded friendly values."""

    source: Source
    key: str
    stamp: str
    raw: Mapping[str, Any]
    values: Mapping[str, Any]

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
    $details do), which is the same UTC update stamp."""
    if source.timestamp in details or "$etag" not in details:
        return details
    return {**details, source.timestamp: details["$etag"]}


class Undecodable(ValueError):
    """A record X3 sent that this source cannot read: which record, field and value."""

    def __init__(self, key: str | None, code: str | None, value: Any, problem: str) -> None:
        self.key, self.code, self.value, self.problem = key, code, value, problem
        where = f"field {code}: " if code else ""
        super().__init__(f"{key or '(no key)'}: {where}{problem}")


def decode(
    source: Source, raw: Mapping[str, Any], fields: tuple[Field, ...] | None = None
) -> Record:
    """Decode one raw X3 resource; Undecodable names the record, field and value.

    `fields` (from fields_for) limits decoding to what the rules read: the rest of a
    record costs nothing on the hot path.
    """
    for code in source.key:
        part = raw.get(code)
        if isinstance(part, bool) or not isinstance(part, str | int | float) or part == "":
            raise Undecodable(None, code, part, f"the key field {code} is {part!r}")
    key = source.record_key(raw)
    stamp = raw.get(source.timestamp)
    try:
        if not isinstance(stamp, str):
            raise TypeError(stamp)
        parse_stamp(stamp)
    except (TypeError, ValueError):
        problem = f"the change stamp {source.timestamp} is {stamp!r}, not a UTC timestamp"
        raise Undecodable(key, source.timestamp, stamp, problem) from None
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
    return Record(source, key, stamp, raw, values)
