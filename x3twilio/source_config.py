"""Sources as the config file gives them: the built-in ones with overrides, plus custom ones."""

from __future__ import annotations

from x3twilio.builtin_sources import BUILTIN
from x3twilio.decoding import KINDS, YES_NO, Field
from x3twilio.sources import PARTNER_KINDS, Partner, Source
from x3twilio.yamlnode import Node


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
        created=spec.get("created", str, base.created if base else "CREDATTIM"),
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
