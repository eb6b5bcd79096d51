"""Contract tests: suppliers and customers read from the shapes real X3 folders send."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from x3twilio.phones import to_e164
from x3twilio.x3.partners import Address, Contact, PartnerRecord, PartnerShape

FIXTURES = Path(__file__).parent / "fixtures" / "x3"


@pytest.fixture
def captured() -> dict:
    """`$details` of a customer, as a live X3 folder sent it (values invented)."""
    return json.loads((FIXTURES / "bpcustomer-details.json").read_text("utf-8"))


def test_the_captured_customer_gives_its_default_contacts_mobile_with_its_country(captured):
    partner = PartnerShape.default("customer").read("C0042", captured)
    phone = partner.mobile(region="US")  # the region must not matter: the address says GB
    assert phone is not None and (phone.text, phone.country) == ("07700 900 456", "GB")
    # The capture's numbers are Ofcom's drama range, which is no real line: one real
    # mobile in its place is found and normalised with the address country.
    captured["BPCBPRCNT"][0]["CNTMOB"] = "07911 123456"
    phone = PartnerShape.default("customer").read("C0042", captured).mobile("US")
    assert phone is not None and to_e164(phone.text, phone.country) == "+447911123456"


def test_the_captured_customer_has_its_default_address_language_and_email(captured):
    partner = PartnerShape.default("customer").read("C0042", captured)
    address = partner.default_address()
    assert address is not None and (address.code, address.country) == ("MAIN", "GB")
    assert address.phones == ("01632 960 100", "07700 900 123")  # the 5 slots, empties dropped
    assert partner.language == "ENG" and partner.contacts[0].language == "ENG"
    assert partner.email() == "accounts@harbour.example"


def test_every_number_of_the_captured_customer_is_in_the_phone_book(captured):
    partner = PartnerShape.default("customer").read("C0042", captured)
    assert [(p.text, p.country) for p in partner.phones()] == [
        ("07700 900 456", "GB"),  # the contact's mobile
        ("01632 960 102", "GB"),  # the contact's phone
        ("01632 960 101", "GB"),  # the warehouse
        ("01632 960 100", "GB"),  # head office
        ("07700 900 123", "GB"),  # head office's second slot
    ]


def test_without_contacts_an_address_mobile_wins_over_the_landline_before_it(captured):
    captured["BPCBPRCNT"] = []
    main = captured["BPCBPRBPA"][1]["BPCBPRBPACOLTEL"]
    main[0]["TELNUM"], main[1]["TELNUM"] = "020 7946 0018", "07911 123456"  # real numbers
    partner = PartnerShape.default("customer").read("C0042", captured)
    phone = partner.mobile("US")
    assert phone is not None and phone.text == "07911 123456"  # slot 2, not the landline


def test_a_landline_only_partner_gets_no_text_and_a_typo_is_reported():
    landline = PartnerRecord(
        "supplier", "S1", addresses=(Address("MAIN", True, "FR", ("04 72 10 20 30",)),)
    )
    assert landline.mobile("FR") is None
    typo = PartnerRecord(
        "supplier", "S2", addresses=(Address("MAIN", True, "FR", ("voir standard",)),)
    )
    found = typo.mobile("FR")
    assert found is not None and found.text == "voir standard"


def test_the_default_contact_comes_first_and_a_contact_takes_its_addresses_country():
    partner = PartnerRecord(
        "supplier",
        "S1",
        addresses=(Address("MAIN", True, "FR"), Address("UK", False, "GB")),
        contacts=(
            Contact("C1", mobile="06 11 22 33 44"),
            Contact("C2", default=True, mobile="07911 123456", address="UK"),
        ),
    )
    phone = partner.mobile("FR")
    assert phone is not None and (phone.text, phone.country) == ("07911 123456", "GB")


def test_older_builds_send_yes_no_as_1_and_2(captured):
    captured["BPCBPRBPA"][0]["BPADEFFLG"] = 2  # the warehouse, on a build that sends 1/2
    captured["BPCBPRBPA"][1]["BPADEFFLG"] = 1
    partner = PartnerShape.default("customer").read("C0042", captured)
    address = partner.default_address()
    assert address is not None and address.code == "WHS"


def test_suppliers_follow_the_customer_pattern_with_their_prefix():
    shape = PartnerShape.default("supplier")
    assert (shape.x3_class, shape.key) == ("BPSUPPLIER", "BPSNUM")
    assert shape.path("phone_number") == ("BPSBPRBPA", "BPSBPRBPACOLTEL", "TELNUM")
    assert shape.path("contact_mobile") == ("BPSBPRCNT", "CNTMOB")
    assert shape.path("address_country") == ("BPSBPRBPA", "BPS_BPA_CRY")
