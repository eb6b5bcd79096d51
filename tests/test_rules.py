"""Rules, templates and phone numbers: the pure decisions."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest

from x3twilio.builtin_sources import BUILTIN
from x3twilio.errors import ConfigError
from x3twilio.phones import to_e164
from x3twilio.rules import load_rules
from x3twilio.sources import decode
from x3twilio.templates import TemplateError, compile_template
from x3twilio.yamlnode import Node

PO = {
    "POHNUM": "POFR0110113",
    "BPSNUM": "FR001",
    "ORDDAT": "2026-11-20",
    "CPY": "FR10",
    "CUR": "EUR",
    "APPFLG": 3,
    "CLEFLG": False,  # Yes/No fields are JSON booleans (X3_REALITY.md §2, R20)
    "RCPFLG": 1,
    "INVFLG": 1,
    "TOTORD": 1250.5,
    "TTVORD": 1500.6,
    "EXTRCPDAT1": "2026-12-04",
    "UPDDATTIM": "2026-11-26T09:14:07Z",
}


def rules(*specs: dict) -> tuple:
    node = Node("rules.yaml", "", {"rules": list(specs)})
    return load_rules(node, BUILTIN, {"finance": ("+33612000001",)})


def rule(**spec) -> object:
    base = {"name": "r", "source": "purchase_orders", "to": ["supplier"], "message": "x"}
    base.update(spec)
    return rules(base)[0]


def test_decoding_maps_codes_to_friendly_typed_values():
    record = decode(BUILTIN["purchase_orders"], PO)
    assert record.key == "POFR0110113"
    assert record.value("approval") == "approved"
    assert record.value("APPFLG") == 3
    assert record.value("total") == Decimal("1250.5")
    assert record.value("expected_date") == date(2026, 12, 4)
    assert record.partner == ("supplier", "FR001")


def test_garbage_field_names_the_record_the_field_and_the_value():
    with pytest.raises(ValueError, match=r"POFR0110113: field EXTRCPDAT1: \(expected_date\) "):
        decode(BUILTIN["purchase_orders"], {**PO, "EXTRCPDAT1": "next week"})


@pytest.mark.parametrize(
    ("code", "value"),
    [("CLEFLG", "no"), ("CLEFLG", 3), ("APPFLG", True), ("TOTORD", "lots"), ("TOTORD", False),
     ("TOTORD", float("nan")), ("TOTORD", "Infinity"), ("ORDDAT", 20261120),
     ("POHFCY", {"$title": "x"})],
)  # fmt: skip
def test_a_value_of_the_wrong_kind_is_refused_with_its_value(code, value):
    with pytest.raises(ValueError, match=rf"field {code}: .*got {re.escape(repr(value))}"):
        decode(BUILTIN["purchase_orders"], {**PO, "POHFCY": "FR011", code: value})


@pytest.mark.parametrize(("raw", "word"), [(False, "no"), (True, "yes"), (1, "no"), (2, "yes")])
def test_yes_no_fields_read_booleans_and_the_older_1_2(raw, word):
    record = decode(BUILTIN["purchase_orders"], {**PO, "CLEFLG": raw})
    assert record.value("closed") == word
    assert rule(when={"closed": False}).matches(record, date(2026, 12, 1)) == (word == "no")


@pytest.mark.parametrize("stamp", ["yesterday", "2026-12-01 10:00", 0, None, "2026-12-01T10:00:00"])
def test_a_record_whose_change_stamp_is_not_a_utc_stamp_is_refused(stamp):
    with pytest.raises(ValueError, match=r"POFR0110113: field UPDDATTIM: the change stamp"):
        decode(BUILTIN["purchase_orders"], {**PO, "UPDDATTIM": stamp})


@pytest.mark.parametrize("key", [None, "", ["PO1"], True, {"a": 1}])
def test_a_record_whose_key_is_null_or_a_list_is_refused(key):
    with pytest.raises(ValueError, match=r"field POHNUM: the key field POHNUM is"):
        decode(BUILTIN["purchase_orders"], {**PO, "POHNUM": key})


def test_an_empty_date_reads_as_none():
    assert (
        decode(BUILTIN["purchase_orders"], {**PO, "EXTRCPDAT1": "0000-00-00"}).value(
            "expected_date"
        )
        is None
    )


def test_order_lines_are_a_source_of_their_own_keyed_by_line_and_sequence():
    line = {"POHNUM": "PO1", "POPLIN": 1000, "POQSEQ": 1, "BPSNUM": "FR001", "LINSTA": 3,
            "EXTRCPDAT": "2026-12-01", "UPDDATTIM": "2026-11-26T09:14:07Z"}  # fmt: skip
    record = decode(BUILTIN["purchase_order_lines"], line)
    assert record.key == "PO1~1000~1" and record.partner == ("supplier", "FR001")
    assert record.value("expected_date") == date(2026, 12, 1)
    assert BUILTIN["purchase_order_lines"].is_closed(record)


def test_open_item_open_amount_is_computed_and_partner_kind_comes_from_the_type():
    record = decode(
        BUILTIN["open_items"],
        {
            "TYP": "PISU",
            "NUM": "PI1",
            "LIG": 2,
            "DUDLIG": 1,
            "BPR": "C1",
            "BPRTYP": 1,
            "DUDDAT": "2026-11-28",
            "AMTCUR": 100,
            "PAYCUR": 40.5,
            "FLGCLE": False,
            "UPDDATTIM": "2026-11-26T09:14:07Z",
        },
    )
    assert record.key == "PISU~PI1~2~1"  # the document line is part of the key
    assert record.value("open_amount") == Decimal("59.5")
    assert record.partner == ("customer", "C1")


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ({"approval": "approved"}, True),
        ({"approval": "no"}, False),
        ({"APPFLG": 3}, True),
        ({"approval": {"in": ["partly", "approved"]}}, True),
        ({"approval": ["no", "partly"]}, False),
        ({"total": {"ge": 1000, "lt": 2000}}, True),
        ({"total": {"gt": 1250.5}}, False),
        ({"closed": False}, True),  # YAML's bare `no`
        ({"expected_date": {"ge": "2026-12-01"}}, True),
        ({"reference": {"exists": True}}, False),
        ({"order_number": {"ne": "X"}, "currency": "EUR"}, True),
    ],
)
def test_conditions(when, expected):
    record = decode(BUILTIN["purchase_orders"], PO)
    assert rule(when=when).matches(record, date(2026, 11, 26)) is expected


def test_due_trigger_window_is_today_through_n_days():
    record = decode(BUILTIN["purchase_orders"], PO)
    due = rule(due="expected_date within 8 days")
    assert due.matches(record, date(2026, 11, 26))
    assert due.matches(record, date(2026, 12, 4))
    assert not due.matches(record, date(2026, 12, 5))
    assert not due.matches(record, date(2026, 11, 25))
    assert due.once_per == ("expected_date",)
    assert rule(due="expected_date today").matches(record, date(2026, 12, 4))


def test_template_formats_dates_and_amounts():
    record = decode(BUILTIN["purchase_orders"], PO)
    r = rule(
        when={"approval": "approved"},
        message="PO {order_number} by {expected_date:%d %b}, {total:,.2f} {currency}",
    )
    assert r.template.render(record.value) == "PO POFR0110113 by 04 Dec, 1,250.50 EUR"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{x[0]}", "only plain names"),
        ("{order_number!r}", "conversions are not allowed"),
        ("{}", "empty placeholder"),
        ("{total:{w}}", "nested placeholders"),
        ("{nope}", "unknown placeholder {nope}"),
        ("{order_number:,.2f}", "bad format spec"),
        ("{unclosed", "malformed template"),
    ],
)
def test_template_errors(text, problem):
    with pytest.raises(TemplateError, match=problem):
        compile_template(text, {"order_number": "text", "total": "decimal", "order_date": "date"})


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("+33 (0)6 12 34 56 78", None, "+33612345678"),
        ("07911 123456", "GB", "+447911123456"),
        ("(415) 555-0199", "US", "+14155550199"),
        ("voir standard", "FR", None),
        ("", "FR", None),
    ],
)
def test_phone_normalisation(text, region, expected):
    assert to_e164(text, region) == expected


@pytest.mark.parametrize(
    "due", ["due_date within 367 days", "due_date within " + "9" * 5000 + " days"]
)
def test_a_due_window_is_bounded(due):
    with pytest.raises(ConfigError, match="due"):
        rules({"name": "r", "source": "open_items", "due": due, "to": ["finance"], "message": "x"})
