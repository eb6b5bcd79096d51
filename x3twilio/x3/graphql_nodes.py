"""Where each X3 class lives in Sage's GraphQL schema: the defaults, and `x3.nodes` over them.

Each line reads `X3CODE  graphql.path`, from Sage's developer reference pages
(https://developer.sage.com/x3/graphql/reference/<package>/<node>/) and its purchasing
examples. Kinds are not written here: they come from the server's introspection. A path
may stop at a reference (`company`): the client walks the schema's types to its scalar
key (`company.code`). `a|b` gives alternatives across generations, the first the server
has wins. Local-menu numbers follow the enum's order in the schema unless a line (or an
override) gives them as `n=value`.

There is no payments node in Sage's schema: PAYMENTH has no default, and a site maps the
node it built under `x3.nodes.PAYMENTH`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from x3twilio.config import X3Config
from x3twilio.errors import X3FieldError

_AUDIT = """
CREDATTIM  _createStamp
UPDDATTIM  _updateStamp
CREUSR     _createUser
UPDUSR     _updateUser
"""

DEFAULTS: dict[str, tuple[str, str, str]] = {
    "PORDER": (
        "x3Purchasing.purchaseOrder",
        "POHNUM",
        """
        POHNUM     id
        BPSNUM     orderFromSupplier
        ORDDAT     orderDate
        CPY        company
        POHFCY     purchaseSite
        RCPFCY     receiptSite
        INVFCY     invoiceSite
        CUR        currency
        PTE        paymentTerm
        ORDREF     internalOrderReference
        BPRPAY     payToBusinessPartner
        BPSINV     billBySupplier
        APPFLG     signatureStatus
        CLEFLG     isClosed
        RCPFLG     receiptStatus
        INVFLG     invoiceStatus
        TOTLINAMT  taxExcludedLinesAmount
        TOTORD     taxExcludedTotalAmount
        TOTTAXAMT  totalTaxAmount
        TTVORD     taxIncludedTotalAmount
        EXTRCPDAT1 expectedReceiptDate
        """
        + _AUDIT,
    ),
    "PINVOICE": (
        "x3InvoicingData.supplierInvoiceHeader",
        "NUM",
        """
        NUM        id
        PIHTYP     category
        BPR        billBySupplier
        BPRPAY     payToBusinessPartner
        BPRSAC     control
        BPRVCR     sourceDocument
        BPRDAT     sourceDocumentDate
        ACCDAT     accountingDate
        CPY        company
        FCY        site
        CUR        currency
        PTE        paymentTerm
        STRDUDDAT  dueDateCalculationStartDate
        AMTNOT     totalAmountExcludingTax
        AMTATI     totalAmountIncludingTax
        BPAPAY     payToBusinessPartnerAddress
        BPYCRY     payToBusinessPartnerCountry
        STA        status
        """
        + _AUDIT,
    ),
    "SINVOICE": (
        "x3Sales.salesInvoice",
        "NUM",
        """
        NUM        id
        INVTYP     category
        BPR        billToCustomer
        BPRPAY     payByBusinessPartner
        BPRVCR     sourceDocumentNumber
        BPRDAT     sourceDocumentDate
        INVDAT     invoiceDate
        ACCDAT     accountingDate|invoiceDate
        CPY        company
        FCY        salesSite
        CUR        currency
        PTE        paymentTerm
        AMTNOT     totalAmountExcludingTax
        AMTATI     totalAmountIncludingTax
        STA        status
        """
        + _AUDIT,
    ),
    "GACCDUDATE": (
        "x3FinanceData.openItem",
        "TYP NUM LIG DUDLIG",
        """
        TYP        documentType
        NUM        documentNumber
        LIG        lineNumber
        DUDLIG     openItemLineNumber
        BPR        businessPartner
        BPRTYP     businessPartnerType
        BPRPAY     payToOrPayByBusinessPartner
        CPY        company
        FCY        site
        CUR        currency
        PAM        paymentMethod
        SNS        sign
        DUDDAT     dueDate
        AMTCUR     amountInCurrency
        PAYCUR     paidAmountInCurrency
        FLGCLE     closedStatus
        """
        + _AUDIT,
    ),
    "BPSUPPLIER": (
        "x3MasterData.supplier",
        "BPSNUM",
        """
        BPSNUM     code
        BPSNAM     companyName1|companyName|code.companyName1
        BPSSHO     shortCompanyName
        BPSTYP     supplierType
        BSGCOD     category
        BPRPAY     payToBusinessPartner
        BPAINV     billBySupplierAddress
        BPAPAY     payToBusinessPartnerAddress
        BPAADD     addressByDefault
        CNTNAM     defaultContact
        CUR        currency
        ENAFLG     isActive|code.isActive
        """
        + _AUDIT,
    ),
    "BPCUSTOMER": (
        "x3MasterData.customer",
        "BPCNUM",
        """
        BPCNUM     code
        BPCNAM     companyName1|companyName|code.companyName1
        BPCSHO     shortCompanyName
        BPCTYP     customerType
        BCGCOD     category
        BPAADD     addressByDefault|defaultAddress
        CNTNAM     defaultContact
        CUR        currency
        PTE        paymentTerm
        BPCSTA     isActive|code.isActive
        """
        + _AUDIT,
    ),
}
PARTNERS = ("BPSUPPLIER", "BPCUSTOMER")

# What a partner record is read from (x3/partners.py: PartnerRecord): the partner's own
# country and language, its default address and its default contact.
PARTNER = {
    "country": "code.country|country",
    "language": "code.language|language",
    "address": "addressByDefault|defaultAddress",
    "contact": "defaultContact",
}
# The Address types' fields (SupplierAddress, CustomerAddress), phones and e-mails being
# collections of their own.
ADDRESS = {
    "code": "code",
    "country": "country",
    "phones": "addressPhoneNumbers",
    "emails": "addressEmails",
}
PHONE = {"number": "addressPhoneNumber", "type": "phoneType", "index": "denormalizedIndex"}
EMAIL = {"address": "addressEmail|email", "index": "denormalizedIndex"}
# A contact object (the customer's defaultContact; a String code on some suppliers).
CONTACT = {
    "code": "code|contact",
    "mobile": "cellPhone|mobilePhone",
    "phone": "landline|telephone",
    "email": "email|emailAddress",
    "language": "language",
}
MOBILE_TYPES = ("mobile", "cellPhone", "mobilePhone")  # phoneType values that are mobiles

# Kind words older configurations wrote after a path: accepted and ignored, since the
# server's schema now says what each field is.
_OLD_KINDS = ("text", "int", "decimal", "date", "stamp", "bool", "enum", "flag")


@dataclass(frozen=True)
class FieldSpec:
    """One X3 code over a GraphQL path (with alternatives), and menu numbers if given."""

    code: str
    paths: tuple[tuple[str, ...], ...]
    values: Mapping[int, str] = field(default_factory=dict)  # menu number -> enum value

    @property
    def written(self) -> str:
        return "|".join(".".join(p) for p in self.paths)


@dataclass(frozen=True)
class NodeSpec:
    """An X3 class as a GraphQL node: package, node, key codes and fields."""

    x3_class: str
    package: str
    node: str
    key: tuple[str, ...]
    fields: Mapping[str, FieldSpec]
    partner: bool = False

    @property
    def name(self) -> str:
        return f"{self.package}.{self.node}"


def parse_field(code: str, spec: str) -> FieldSpec:
    """`signatureStatus 1=no 2=partly` -> FieldSpec (ValueError on a bad spec)."""
    words = spec.split()
    if not words:
        raise ValueError("expected a GraphQL path such as id")
    paths = tuple(tuple(p.split(".")) for p in words[0].split("|"))
    if any(not part.isidentifier() for path in paths for part in path):
        raise ValueError(f"expected a GraphQL path such as company.code, got {words[0]!r}")
    values = {}
    for word in words[1:]:
        if word in _OLD_KINDS:
            continue
        number, _, value = word.partition("=")
        if not number.isdigit() or not value:
            raise ValueError(f"expected menu numbers as number=value (1=no), got {word!r}")
        values[int(number)] = value
    return FieldSpec(code, paths, values)


def parse_table(table: str) -> dict[str, FieldSpec]:
    lines = (line.split(None, 1) for line in table.strip().splitlines() if line.strip())
    return {code: parse_field(code, spec) for code, spec in lines}


def alternatives(text: str) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(p.split(".")) for p in text.split("|"))


def node_specs(config: X3Config) -> dict[str, NodeSpec]:
    """The defaults with the configuration's x3.nodes over them."""
    specs = {}
    for x3_class, (name, key, table) in DEFAULTS.items():
        package, node = name.split(".")
        specs[x3_class] = NodeSpec(
            x3_class, package, node, tuple(key.split()), parse_table(table), x3_class in PARTNERS
        )
    for x3_class, override in config.nodes.items():
        base = specs.get(x3_class)
        name = override.node or (base.name if base else "")
        if not name:
            raise X3FieldError(
                x3_class, f"x3.nodes.{x3_class}: a class of your own needs node, key and fields"
            )
        fields = dict(base.fields) if base else {}
        for code, spec in override.fields.items():
            try:
                fields[code] = parse_field(code, spec)
            except ValueError as exc:
                raise X3FieldError(code, f"x3.nodes.{x3_class}.fields.{code}: {exc}") from None
        package, node = name.split(".")
        keys = override.key or (base.key if base else ())
        specs[x3_class] = NodeSpec(x3_class, package, node, keys, fields, x3_class in PARTNERS)
    return specs


def missing_node(x3_class: str) -> X3FieldError:
    """A class with no node: PAYMENTH (Sage's schema has no payments node) or a custom one."""
    if x3_class == "PAYMENTH":
        why = (
            "Sage's GraphQL schema has no payments node; map the API operation your site "
            "built for payments under x3.nodes.PAYMENTH (node, key, fields), or read "
            "payments through api1 (x3.api: rest)"
        )
    else:
        why = f"map it under x3.nodes.{x3_class} (node, key, fields)"
    return X3FieldError(x3_class, f"class {x3_class} has no GraphQL node. Fix: {why}")
