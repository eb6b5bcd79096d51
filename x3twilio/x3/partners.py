"""Suppliers and customers as X3 sends them: addresses, phones, e-mails and contacts.

The shape is the one real X3 folders send (X3_REALITY.md §2, tests/fixtures/x3/): addresses
in a child list with prefixed codes, phones and e-mails in child lists of each address,
contacts in their own list, Yes/No flags as JSON booleans. Every name is a default that a
site can override under `x3.partners`; `check` says which ones its X3 exposes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from x3twilio.phones import is_mobile, to_e164

PARTNER_KINDS = ("supplier", "customer")

# role -> X3 code, "{p}" being the class prefix (BPC for customers: captured; BPS for
# suppliers: the same pattern, inferred, since no supplier capture exists).
DEFAULT_ROLES = {
    "language": "LAN",
    "country": "CRY",
    "addresses": "{p}BPRBPA",
    "address_code": "BPR_BPA_BPAADD",
    "address_default": "BPADEFFLG",
    "address_country": "{p}_BPA_CRY",
    "phones": "{p}BPRBPACOLTEL",
    "phone_number": "TELNUM",
    "emails": "{p}BPRBPACOLWEB",
    "email_address": "WEBADR",
    "contacts": "{p}BPRCNT",
    "contact_code": "CNT_CCNCRM",
    "contact_default": "TCDEFFLG",
    "contact_mobile": "CNTMOB",
    "contact_phone": "CNTTEL",
    "contact_email": "WEB",
    "contact_language": "CNTLAN",
    "contact_address": "CNTADD",
    "contact_country": "CNTCRY",
}
# The list each role lives in (absent: the partner itself).
PARENT = {
    **dict.fromkeys(("address_code", "address_default", "address_country"), "addresses"),
    **dict.fromkeys(("phones", "emails"), "addresses"),
    "phone_number": "phones",
    "email_address": "emails",
    **{role: "contacts" for role in DEFAULT_ROLES if role.startswith("contact_")},
}
_DEFAULTS = {
    "supplier": ("BPSUPPLIER", "BPSNUM", "BPS"),
    "customer": ("BPCUSTOMER", "BPCNUM", "BPC"),
}


@dataclass(frozen=True)
class PartnerShape:
    """Where one kind of partner lives in X3: class, representation, key, and field codes."""

    kind: str
    x3_class: str
    representation: str
    key: str
    roles: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def default(cls, kind: str) -> PartnerShape:
        x3_class, key, prefix = _DEFAULTS[kind]
        roles = {role: code.format(p=prefix) for role, code in DEFAULT_ROLES.items()}
        return cls(kind, x3_class, x3_class, key, roles)

    def path(self, role: str) -> tuple[str, ...]:
        """The codes leading to a role, e.g. (BPSBPRBPA, BPSBPRBPACOLTEL, TELNUM)."""
        parent = PARENT.get(role)
        return (*self.path(parent), self.roles[role]) if parent else (self.roles[role],)

    def read(self, code: str, body: Mapping[str, Any]) -> PartnerRecord:
        """A `$details` answer as a partner record (absent parts read as empty)."""
        r = self.roles
        addresses = tuple(
            Address(
                code=_text(row.get(r["address_code"])),
                default=_flag(row.get(r["address_default"])),
                country=_text(row.get(r["address_country"])) or None,
                phones=_column(row.get(r["phones"]), r["phone_number"]),
                emails=_column(row.get(r["emails"]), r["email_address"]),
            )
            for row in _rows(body.get(r["addresses"]))
        )
        contacts = tuple(
            Contact(
                code=_text(row.get(r["contact_code"])),
                default=_flag(row.get(r["contact_default"])),
                mobile=_text(row.get(r["contact_mobile"])),
                phone=_text(row.get(r["contact_phone"])),
                email=_text(row.get(r["contact_email"])),
                language=_text(row.get(r["contact_language"])),
                address=_text(row.get(r["contact_address"])),
                country=_text(row.get(r["contact_country"])),
            )
            for row in _rows(body.get(r["contacts"]))
        )
        return PartnerRecord(
            self.kind,
            code,
            language=_text(body.get(r["language"])),
            country=_text(body.get(r["country"])) or None,
            addresses=addresses,
            contacts=contacts,
        )


@dataclass(frozen=True)
class Phone:
    text: str  # as typed into X3: free text in a national format
    country: str | None  # the country to parse national formats with (ISO)


@dataclass(frozen=True)
class Address:
    code: str
    default: bool
    country: str | None
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()


@dataclass(frozen=True)
class Contact:
    code: str
    default: bool = False
    mobile: str = ""
    phone: str = ""
    email: str = ""
    language: str = ""
    address: str = ""  # the code of the contact's address
    country: str = ""


@dataclass(frozen=True)
class PartnerRecord:
    kind: str
    code: str
    language: str = ""
    country: str | None = None
    addresses: tuple[Address, ...] = ()
    contacts: tuple[Contact, ...] = ()

    def default_address(self) -> Address | None:
        return next((a for a in self.addresses if a.default), None) or next(
            iter(self.addresses), None
        )

    def country_of(self, contact: Contact) -> str | None:
        """A contact's country: its own, its address's, the default address's, the partner's."""
        own = next((a.country for a in self.addresses if a.code == contact.address), None)
        default = self.default_address()
        return contact.country or own or (default.country if default else None) or self.country

    def _contacts(self) -> list[Contact]:
        return sorted(self.contacts, key=lambda c: not c.default)  # the default one first

    def _addresses(self) -> list[Address]:
        default = self.default_address()
        return sorted(self.addresses, key=lambda a: a is not default)

    def mobile(self, region: str) -> Phone | None:
        """Whom to text: the default contact's mobile, then other contacts' mobiles, then an
        address phone that is a mobile number in its address's country. With none, the
        first phone that is not a valid number, so that a typo is reported, not silent."""
        for contact in self._contacts():
            if contact.mobile:
                return Phone(contact.mobile, self.country_of(contact))
        phones = [
            Phone(text, address.country or self.country)
            for address in self._addresses()
            for text in address.phones
        ]
        found = next((p for p in phones if is_mobile(p.text, p.country or region)), None)
        broken = (p for p in phones if to_e164(p.text, p.country or region) is None)
        return found or next(broken, None)

    def email(self) -> str | None:
        """The default address's e-mail, then the contacts' (the default one first)."""
        default = self.default_address()
        found = [*(default.emails if default else ()), *(c.email for c in self._contacts())]
        return next((e for e in found if e), None)

    def languages(self, reached: str, region: str) -> tuple[str, ...]:
        """The X3 language codes to write to `reached` in, most preferred first: the language
        of the contact whose mobile or e-mail it is (CNTLAN), then the partner's (LAN)."""
        own = (
            c.language
            for c in self._contacts()
            if reached in (c.email, to_e164(c.mobile, self.country_of(c) or region))
        )
        return tuple(code for code in (next(own, ""), self.language) if code)

    def phones(self) -> Iterator[Phone]:
        """Every number X3 holds for this partner (who may be texting us)."""
        for contact in self.contacts:
            country = self.country_of(contact)
            yield from (Phone(t, country) for t in (contact.mobile, contact.phone) if t)
        for address in self.addresses:
            yield from (Phone(t, address.country or self.country) for t in address.phones)


class PartnerReader(Protocol):
    def partner(self, shape: PartnerShape, code: str) -> PartnerRecord | None: ...


class PartnerDirectory:
    """Reads suppliers and customers on demand and caches them for the run."""

    def __init__(self, client: PartnerReader, shapes: Mapping[str, PartnerShape]) -> None:
        self.client, self.shapes = client, shapes
        self._cache: dict[tuple[str, str], PartnerRecord | None] = {}

    def record(self, kind: str, code: str) -> PartnerRecord | None:
        key = (kind, code)
        if key not in self._cache:
            self._cache[key] = self.client.partner(self.shapes[kind], code)
        return self._cache[key]


def default_shapes() -> dict[str, PartnerShape]:
    return {kind: PartnerShape.default(kind) for kind in PARTNER_KINDS}


def _rows(value: Any) -> list[Mapping[str, Any]]:
    return [row for row in value if isinstance(row, Mapping)] if isinstance(value, list) else []


def _column(value: Any, code: str) -> tuple[str, ...]:
    """The non-empty values of `code` in a child list (X3 keeps empty slots as "")."""
    return tuple(t for t in (_text(row.get(code)) for row in _rows(value)) if t)


def _flag(value: Any) -> bool:
    return value is True or (not isinstance(value, bool) and value == 2)  # 1/2 on old builds


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
