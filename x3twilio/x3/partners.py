"""Suppliers and customers: where their mobile numbers live in X3, read once per run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

PARTNER_CLASSES = {"supplier": "BPSUPPLIER", "customer": "BPCUSTOMER"}


class DetailsReader(Protocol):
    def details(self, x3_class: str, key: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Phone:
    text: str  # as typed into X3: free text in a national format
    country: str | None  # the address country (ISO), for parsing national formats


class PartnerDirectory:
    """Reads supplier/customer $details on demand and caches them for the run."""

    def __init__(self, client: DetailsReader) -> None:
        self.client = client
        self._cache: dict[tuple[str, str], dict[str, Any] | None] = {}

    def record(self, kind: str, code: str) -> dict[str, Any] | None:
        key = (kind, code)
        if key not in self._cache:
            self._cache[key] = self.client.details(PARTNER_CLASSES[kind], code)
        return self._cache[key]

    def mobile(self, kind: str, code: str) -> Phone | None:
        """The partner's mobile: default address, then contacts, then other addresses."""
        record = self.record(kind, code)
        if record is None:
            return None
        return next(_mobiles(record), None)

    def email(self, kind: str, code: str) -> str | None:
        """The partner's email: default address WEB, then contacts' WEB."""
        record = self.record(kind, code)
        if record is None:
            return None
        addresses = [a for a in record.get("BPADDRESS") or [] if isinstance(a, dict)]
        default = _default_address(record, addresses)
        rows = ([default] if default else []) + list(record.get("CONTACT") or [])
        found = (e for row in rows if isinstance(row, dict) for e in dimensioned(row, "WEB"))
        return next(found, None)


def _mobiles(record: dict[str, Any]) -> Iterator[Phone]:
    addresses = [a for a in record.get("BPADDRESS") or [] if isinstance(a, dict)]
    default = _default_address(record, addresses)
    country = default.get("CRY") if default else None
    if default and _text(default.get("MOB")):
        yield Phone(_text(default.get("MOB")), country)
    contacts = [c for c in record.get("CONTACT") or [] if isinstance(c, dict)]
    main = record.get("CNTNAM")
    contacts.sort(key=lambda c: c.get("CNTLNA") != main and c.get("CCNCRM") != main)
    for contact in contacts:
        if _text(contact.get("MOB")):
            yield Phone(_text(contact.get("MOB")), country)
    for address in addresses:
        if address is not default and _text(address.get("MOB")):
            yield Phone(_text(address.get("MOB")), address.get("CRY") or country)
    # No mobile anywhere: the first phone at all, so a bad number is reported, not silent.
    for address in ([default] if default else []) + addresses:
        for phone in dimensioned(address, "TEL"):
            yield Phone(phone, address.get("CRY") or country)


def dimensioned(row: dict[str, Any], code: str) -> list[str]:
    """TEL(0..4) arrives as a JSON array or as TEL1..TEL5, depending on the server."""
    value = row.get(code)
    values = value if isinstance(value, list) else [value]
    values += [row.get(f"{code}{i}") for i in range(1, 6)]
    return [t for t in (_text(v) for v in values) if t]


def _default_address(
    record: dict[str, Any], addresses: list[dict[str, Any]]
) -> dict[str, Any] | None:
    code = record.get("BPAADD")
    for address in addresses:
        if code and address.get("BPAADD") == code:
            return address
    for address in addresses:
        if address.get("BPAADDFLG") == 2:
            return address
    return addresses[0] if addresses else None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
