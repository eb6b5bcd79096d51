"""The sources this tool knows out of the box: X3's purchasing, invoicing and payment classes.

Each maps the X3 codes of one class to the friendly names rules and templates use; a
config may override any of them or add its own (source_config).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from x3twilio.decoding import YES_NO, Field
from x3twilio.sources import PARTNER_TYPE, Partner, Source

# Local menus (X3 "menu locaux"), decoded to words that read well in rules.
LINE_STATUS = {1: "pending", 2: "late", 3: "closed"}
APPROVAL = {1: "no", 2: "partly", 3: "approved", 4: "not_managed", 5: "automatic"}
PROGRESS = {1: "none", 2: "partial", 3: "full"}
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
