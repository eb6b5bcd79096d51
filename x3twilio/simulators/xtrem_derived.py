"""The values the GraphQL simulator derives rather than reads (`@x3(derive: ...)` in the
schema): a record's business partner, its addresses and contacts as Xtrem shapes them, and
api1 keys. Each derivation gets the lookup of its request, the node type, the source record
and the binding's column."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .x3data import CLASSES, key_of
from .xtrem_schema import XtremSchema


class RecordLookup(Protocol):
    """What a derivation reads: stored records by key (once per request) and the schema."""

    xtrem: XtremSchema

    def record(self, cls: str, key: str) -> dict[str, Any] | None: ...


class View(dict[str, Any]):
    """A derived row (a partner, an address, a phone slot): its properties are its keys."""


def is_yes(raw: Any) -> bool:
    """A Yes/No field as stored: a boolean, or local menu 1 (2 = yes)."""
    return raw is True or (not isinstance(raw, bool) and raw == 2)


def _prefix(record: Mapping[str, Any]) -> str:
    return "BPS" if "BPSNUM" in record else "BPC"


def _partner_record(lookup: RecordLookup, code: str) -> tuple[dict[str, Any] | None, str]:
    for cls, prefix in (("BPSUPPLIER", "BPS"), ("BPCUSTOMER", "BPC")):
        found = lookup.record(cls, code)
        if found is not None:
            return found, prefix
    return None, ""


def _partner_view(lookup: RecordLookup, record: Mapping[str, Any], prefix: str) -> View:
    code = record[f"{prefix}NUM"]
    return View(
        code=code,
        companyName1=record.get(f"{prefix}NAM"),
        shortCompanyName=record.get(f"{prefix}SHO"),
        country=record.get("CRY"),
        currency=record.get("CUR"),
        language=record.get("LAN"),
        isActive=record.get("ENAFLG" if prefix == "BPS" else "BPCSTA"),
        isSupplier=lookup.record("BPSUPPLIER", code) is not None,
        isCustomer=lookup.record("BPCUSTOMER", code) is not None,
        _createStamp=record.get("CREDATTIM"),
        _updateStamp=record.get("UPDDATTIM"),
    )


def _partner(lookup: RecordLookup, type_name: str, source: Any, code: str | None) -> View | None:
    """The business partner: of a supplier/customer record itself, or named by a column."""
    if code is None:
        return _partner_view(lookup, source, _prefix(source))
    key = source.get(code) or ""
    if not key:
        return None
    record, prefix = _partner_record(lookup, key)
    return _partner_view(lookup, record, prefix) if record else View(code=key)


def _address_view(row: Mapping[str, Any], prefix: str) -> View:
    lines = [row.get(f"BPAADDLIG{i}") for i in (1, 2, 3)]
    phones = row.get(f"{prefix}BPRBPACOLTEL") or []
    emails = row.get(f"{prefix}BPRBPACOLWEB") or []
    return View(
        code=row.get("BPR_BPA_BPAADD"),
        description=row.get("BPADES"),
        isDefault=is_yes(row.get("BPADEFFLG")),
        zipCode=row.get("POSCOD"),
        city=row.get("CTY"),
        state=row.get("SAT"),
        country=row.get(f"{prefix}_BPA_CRY"),
        countryName=row.get("CRYNAM"),
        website=row.get("FCYWEB"),
        externalIdentifier=row.get("EXTNUM"),
        isValid=is_yes(row.get("ADRVAL")),
        addressLines=[
            View(addressLine=line, denormalizedIndex=i)
            for i, line in enumerate(lines, start=1)
            if line
        ],
        # The phone slots keep their number: slot n is TelephoneType's n-th value.
        addressPhoneNumbers=[
            View(
                addressPhoneNumber=s["TELNUM"], phoneType=s["TELTYP"], denormalizedIndex=s["TELTYP"]
            )
            for s in phones
            if s.get("TELNUM")
        ],
        addressEmails=[
            View(email=s["WEBADR"], denormalizedIndex=s["WEBTYP"])
            for s in emails
            if s.get("WEBADR")
        ],
    )


def _addresses(record: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str]:
    prefix = _prefix(record)
    return list(record.get(f"{prefix}BPRBPA") or []), prefix


def _default_address(
    lookup: RecordLookup, type_name: str, source: Any, code: str | None
) -> View | None:
    rows, prefix = _addresses(source)
    found = next((r for r in rows if is_yes(r.get("BPADEFFLG"))), None)
    return _address_view(found, prefix) if found else None


def _named_address(record: Mapping[str, Any] | None, code: str) -> View | None:
    if record is None or not code:
        return None
    rows, prefix = _addresses(record)
    found = next((r for r in rows if r.get("BPR_BPA_BPAADD") == code), None)
    return _address_view(found, prefix) if found else None


def _address(lookup: RecordLookup, type_name: str, source: Any, code: str | None) -> View | None:
    """The partner's own address whose code the column holds (BPAINV, BPAPAY)."""
    return _named_address(source, source.get(code or "") or "")


def _pay_to_address(
    lookup: RecordLookup, type_name: str, source: Any, code: str | None
) -> View | None:
    """On an invoice: the pay-to partner's (BPRPAY) address whose code the column holds."""
    partner, _ = _partner_record(lookup, source.get("BPRPAY") or "")
    return _named_address(partner, source.get(code or "") or "")


def _contact_view(row: Mapping[str, Any]) -> View:
    return View(
        code=row.get("CNT_CCNCRM"),
        firstName=row.get("CNTFNA"),
        lastName=row.get("CNTLNA"),
        landline=row.get("CNTTEL"),
        fax=row.get("CNTFAX"),
        cellPhone=row.get("CNTMOB"),
        email=row.get("WEB"),
    )


def _default_contact_row(source: Mapping[str, Any]) -> Mapping[str, Any] | None:
    rows = source.get(f"{_prefix(source)}BPRCNT") or []
    return next((r for r in rows if is_yes(r.get("TCDEFFLG"))), None)


def _default_contact(
    lookup: RecordLookup, type_name: str, source: Any, code: str | None
) -> View | None:
    row = _default_contact_row(source)
    return _contact_view(row) if row else None


def _default_contact_code(
    lookup: RecordLookup, type_name: str, source: Any, code: str | None
) -> Any:
    row = _default_contact_row(source)
    return row.get("CNT_CCNCRM") if row else None


def _key(lookup: RecordLookup, type_name: str, source: Any, code: str | None) -> str:
    """The api1 key of a record (multi-part keys joined with ~)."""
    return key_of(CLASSES[lookup.xtrem.classes[type_name]], source)


def _line_key(lookup: RecordLookup, type_name: str, source: Any, code: str | None) -> str:
    return key_of(CLASSES["PORDERQ"], source)


Derivation = Callable[[RecordLookup, str, Any, "str | None"], Any]
DERIVED: dict[str, Derivation] = {
    "partner": _partner,
    "defaultAddress": _default_address,
    "address": _address,
    "payToAddress": _pay_to_address,
    "defaultContact": _default_contact,
    "defaultContactCode": _default_contact_code,
    "key": _key,
    "lineKey": _line_key,
}
