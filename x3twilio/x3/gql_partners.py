"""Suppliers and customers over GraphQL: what their nodes offer, straight onto PartnerRecord.

Sage's current Supplier and Customer nodes carry no address or contact collections
(X3_REALITY.md §3): a partner is read through its default address (an Address type with
phone-number and e-mail collections) and its default contact (an object on customers, on
some builds only a String code). Which of these this X3 has is read from its schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from x3twilio.x3.gql_props import dig, render
from x3twilio.x3.gql_schema import Absent, Resolved, Schema
from x3twilio.x3.graphql_nodes import (
    ADDRESS,
    CONTACT,
    EMAIL,
    MOBILE_TYPES,
    PARTNER,
    PHONE,
    alternatives,
)
from x3twilio.x3.partners import Address, Contact, PartnerRecord

_ROWS = {"phones": 20, "emails": 10}


@dataclass(frozen=True)
class Collection:
    """A collection field of the address, and its rows' fields by role."""

    name: str
    fields: Mapping[str, Resolved]


@dataclass(frozen=True)
class PartnerPlan:
    own: Mapping[str, Resolved] = field(default_factory=dict)  # country, language
    address: tuple[str, ...] = ()  # the path to the default address object, if any
    address_fields: Mapping[str, Resolved] = field(default_factory=dict)  # code, country
    collections: Mapping[str, Collection] = field(default_factory=dict)  # phones, emails
    contact: tuple[str, ...] = ()  # the path to the default contact
    contact_fields: Mapping[str, Resolved] = field(default_factory=dict)  # empty: a code
    missing: tuple[str, ...] = ()  # what this X3 lacks, in words, for `check`

    def ways_to_mobiles(self) -> list[str]:
        ways = []
        if "mobile" in self.contact_fields:
            ways.append(".".join(self.contact_fields["mobile"].path))
        if "phones" in self.collections:
            ways.append(".".join([*self.address, self.collections["phones"].name]))
        return ways

    def selection(self) -> str:
        tree: dict[str, Any] = {}
        for resolved in self.own.values():
            _add(tree, resolved.path)
        if self.address:
            branch = _add(tree, self.address)
            for resolved in self.address_fields.values():
                _add(branch, resolved.path)
            for role, collection in self.collections.items():
                rows = _add(
                    branch, (collection.name, f"query(first: {_ROWS[role]})", "edges", "node")
                )
                for resolved in collection.fields.values():
                    _add(rows, resolved.path)
        if self.contact:
            branch = _add(tree, self.contact)
            for resolved in self.contact_fields.values():
                _add(branch, resolved.path)
        return render(tree)

    def record(self, kind: str, code: str, row: Mapping[str, Any]) -> PartnerRecord:
        own = {role: _text(dig(row, *r.path)) for role, r in self.own.items()}
        addresses: tuple[Address, ...] = ()
        found = dig(row, *self.address) if self.address else None
        if isinstance(found, Mapping):
            values = {role: _text(dig(found, *r.path)) for role, r in self.address_fields.items()}
            phones = self._rows(found, "phones")
            phones.sort(key=lambda p: str(p.get("type")) not in MOBILE_TYPES)  # mobiles first
            addresses = (
                Address(
                    code=values.get("code", ""),
                    default=True,
                    country=values.get("country") or None,
                    phones=tuple(p["number"] for p in phones if p.get("number")),
                    emails=tuple(
                        e["address"] for e in self._rows(found, "emails") if e.get("address")
                    ),
                ),
            )
        contacts: tuple[Contact, ...] = ()
        person = dig(row, *self.contact) if self.contact else None
        if isinstance(person, Mapping):
            values = {role: _text(dig(person, *r.path)) for role, r in self.contact_fields.items()}
            contacts = (
                Contact(
                    code=values.get("code", ""),
                    default=True,
                    mobile=values.get("mobile", ""),
                    phone=values.get("phone", ""),
                    email=values.get("email", ""),
                    language=values.get("language", ""),
                ),
            )
        elif isinstance(person, str) and person.strip():
            contacts = (Contact(code=person.strip(), default=True),)
        return PartnerRecord(
            kind,
            code,
            language=own.get("language", ""),
            country=own.get("country") or None,
            addresses=addresses,
            contacts=contacts,
        )

    def _rows(self, address: Mapping[str, Any], role: str) -> list[dict[str, str]]:
        collection = self.collections.get(role)
        if collection is None:
            return []
        edges = dig(address, collection.name, "query", "edges") or []
        nodes = [e.get("node") for e in edges if isinstance(e, Mapping)]
        rows = [
            {r: _text(dig(n, *res.path)) for r, res in collection.fields.items()}
            for n in nodes
            if isinstance(n, Mapping)
        ]
        return sorted(rows, key=lambda r: int(r["index"]) if r.get("index", "").isdigit() else 0)


def plan_partner(schema: Schema, type_name: str) -> PartnerPlan:
    """What this X3's partner node offers for reaching the partner."""
    jobs: dict[str, Callable[[], Any]] = {
        f"own.{role}": _scalar(schema, type_name, text)
        for role, text in PARTNER.items()
        if role in ("country", "language")
    }
    jobs["address"] = lambda: _object(schema, type_name, alternatives(PARTNER["address"]))
    jobs["contact"] = lambda: _reference(schema, type_name, alternatives(PARTNER["contact"]))
    found = schema.settle(jobs)
    missing = [
        f"the partner's {r}"
        for r in ("country", "language")
        if isinstance(found[f"own.{r}"], Absent)
    ]
    own = {r: v for r in ("country", "language") if isinstance(v := found[f"own.{r}"], Resolved)}
    address: tuple[str, ...] = ()
    address_fields: dict[str, Resolved] = {}
    collections: dict[str, Collection] = {}
    if isinstance(found["address"], Absent):
        missing.append(f"a default address ({PARTNER['address']}): {found['address']}")
    else:
        address, address_type = found["address"]
        address_fields, collections, lacks = _address(schema, address_type)
        missing += lacks
    contact: tuple[str, ...] = ()
    contact_fields: dict[str, Resolved] = {}
    if isinstance(found["contact"], Absent):
        missing.append(f"a default contact ({PARTNER['contact']}): {found['contact']}")
    else:
        contact, contact_type = found["contact"]
        if contact_type:
            results = schema.settle(
                {role: _scalar(schema, contact_type, text) for role, text in CONTACT.items()}
            )
            contact_fields = {r: v for r, v in results.items() if isinstance(v, Resolved)}
            if "mobile" not in contact_fields:
                missing.append(f"the default contact's mobile ({CONTACT['mobile']})")
        else:
            missing.append("the default contact's phones (it is only a code here)")
    return PartnerPlan(
        own, address, address_fields, collections, contact, contact_fields, tuple(missing)
    )


def _address(
    schema: Schema, address_type: str
) -> tuple[dict[str, Resolved], dict[str, Collection], list[str]]:
    jobs: dict[str, Callable[[], Any]] = {
        role: _scalar(schema, address_type, ADDRESS[role]) for role in ("code", "country")
    }
    for role, rows in (("phones", PHONE), ("emails", EMAIL)):
        jobs[role] = _collection(schema, address_type, ADDRESS[role], rows)
    found = schema.settle(jobs)
    fields = {r: v for r in ("code", "country") if isinstance(v := found[r], Resolved)}
    collections = {r: v for r in ("phones", "emails") if isinstance(v := found[r], Collection)}
    lacks = [
        f"the address's {r} ({found[r]})" for r in ("phones", "emails") if r not in collections
    ]
    return fields, collections, lacks


def _scalar(schema: Schema, type_name: str, text: str) -> Callable[[], Resolved]:
    def job() -> Resolved:
        problems = []
        for path in alternatives(text):
            try:
                return schema.resolve(type_name, path)
            except Absent as exc:
                problems.append(str(exc))
        raise Absent("; ".join(problems))

    return job


def _object(
    schema: Schema, type_name: str, paths: tuple[tuple[str, ...], ...]
) -> tuple[tuple[str, ...], str]:
    """The first of `paths` that leads to one object: (path, its type)."""
    problems = []
    for path in paths:
        current = type_name
        try:
            for part in path:
                ref = schema.field(current, part)
                if ref.list or ref.kind not in ("OBJECT", "INTERFACE"):
                    raise Absent(f"{current}.{part} is not one object")
                current = ref.name
            return path, current
        except Absent as exc:
            problems.append(str(exc))
    raise Absent("; ".join(problems))


def _reference(
    schema: Schema, type_name: str, paths: tuple[tuple[str, ...], ...]
) -> tuple[tuple[str, ...], str]:
    """An object (path, type), or a scalar code (path, "")."""
    for path in paths:
        try:
            ref = schema.field(type_name, path[0]) if len(path) == 1 else None
        except Absent:
            continue
        if ref is not None and ref.kind not in ("OBJECT", "INTERFACE") and not ref.list:
            return path, ""
    return _object(schema, type_name, paths)


def _collection(
    schema: Schema, type_name: str, name: str, rows: Mapping[str, str]
) -> Callable[[], Collection]:
    def job() -> Collection:
        connection = schema.field(schema.field(type_name, name).name, "query")
        edges = schema.field(connection.name, "edges")
        row_type = schema.field(edges.name, "node").name
        fields = {}
        for role, text in rows.items():
            try:
                fields[role] = _scalar(schema, row_type, text)()
            except Absent:
                if role != "index":
                    raise
        return Collection(name, fields)

    return job


def _add(tree: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for part in path:
        tree = tree.setdefault(part, {})
    return tree


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    return str(value).strip()
