"""Reaching each supplier end to end (the real CLI, the simulators, the shim): in their
language, and on another channel when a text does not arrive."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from babel.dates import format_date

from tests.conftest import Env
from tests.test_poll import FR001_TEXTED, ONLY_PO_APPROVED, edit
from x3twilio.simulators import serve
from x3twilio.simulators.sendgrid import DEFAULT_SENDER, SendGridSimulator

BY_LANGUAGE = {
    **ONLY_PO_APPROVED[0],
    "message": {
        "en": "Order {order_number} is approved: please deliver by {expected_date:%d %B %Y}.",
        "fr": "Commande {order_number} validée : livraison attendue le {expected_date:%d %B %Y}.",
    },
}
WITH_FALLBACK = {
    **ONLY_PO_APPROVED[0],
    "fallback": {"channel": "email", "after": "30m", "subject": "Order {order_number}"},
}


def approve(env: Env, supplier: str) -> dict:
    po = next(p for p in env.x3.records("PORDER") if p["BPSNUM"] == supplier and p["APPFLG"] == 1)
    edit(env, "PORDER", po["POHNUM"], {"APPFLG": 3})
    return po


def test_a_french_suppliers_contact_reads_french_and_a_british_one_english(env: Env) -> None:
    env.configure(rules=[BY_LANGUAGE])
    env.run("poll")
    french, british = approve(env, "FR001"), approve(env, "GB001")
    env.next_second()
    env.run("poll")
    bodies = {m["body"].split()[1]: m["body"] for m in env.twilio.messages}

    def expected(po: dict, locale: str) -> str:
        return format_date(date.fromisoformat(po["EXTRCPDAT1"]), "dd MMMM yyyy", locale=locale)

    assert bodies[french["POHNUM"]] == (
        f"Commande {french['POHNUM']} validée : livraison attendue le {expected(french, 'fr')}."
    )
    assert bodies[british["POHNUM"]] == (
        f"Order {british['POHNUM']} is approved: please deliver by {expected(british, 'en')}."
    )
    assert len(bodies) == 2


@pytest.fixture
def mails(env: Env) -> Iterator[list[dict[str, Any]]]:
    """SendGrid's simulator, and a configuration whose po-approved falls back to email."""
    with serve(SendGridSimulator()) as sendgrid:
        mail = {"api_key": sendgrid.app.api_key, "from_email": DEFAULT_SENDER}
        env.configure(rules=[WITH_FALLBACK], sendgrid={**mail, "api_url": sendgrid.url})
        yield sendgrid.app.mails


def test_an_sms_that_ends_undelivered_is_followed_by_exactly_one_email(
    env: Env, shim: Any, mails: list[dict[str, Any]]
) -> None:
    env.run("poll")
    po = approve(env, "FR001")
    env.next_second()
    env.twilio.unreachable.add(FR001_TEXTED)  # a landline, a carrier block
    env.run("poll")
    assert [m["to"] for m in env.twilio.messages] == [FR001_TEXTED]
    assert mails == []  # the text may still arrive: the email waits
    env.twilio.deliver_callbacks()  # sent, then undelivered (30003)
    env.run("ingest")
    env.run("poll")
    env.run("poll")
    assert [m["subject"] for m in mails] == [f"Order {po['POHNUM']}"]
    records = [r for r in env.audit() if r.get("record") == po["POHNUM"]]
    sent = {r["channel"]: r for r in records if r["event"] == "notification.sent"}
    assert sent["email"]["fallback_of"] == sent["sms"]["id"]
    story = env.run("audit", "--record", po["POHNUM"]).stdout
    assert "undelivered" in story and "email" in story and "sms" in story


def test_a_text_that_arrives_drops_its_fallback(
    env: Env, shim: Any, mails: list[dict[str, Any]]
) -> None:
    env.run("poll")
    po = approve(env, "FR001")
    env.next_second()
    env.run("poll")
    env.twilio.deliver_callbacks()  # sent, then delivered
    env.run("ingest")
    env.run("poll")
    assert mails == []
    dropped = [
        r
        for r in env.audit()
        if r["event"] == "notification.skipped" and r.get("record") == po["POHNUM"]
    ]
    assert [(r["channel"], r["reason"]) for r in dropped] == [("email", "arrived")]
