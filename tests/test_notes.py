"""Replies land where they belong: on the partner and on the document they reference, once,
through both target modes (a line appended with $edit, a record created in a user class)."""

from __future__ import annotations

import pytest

from tests.conftest import Env
from tests.test_poll import ONLY_PO_APPROVED, approve_one_fr001_order

SITE = {  # a site that gave its supplier and order representations a text field for replies
    "ZBPSUPPLIER": {"class": "BPSUPPLIER", "extra": {"ZNOTES": "A"}},
    "ZPORDER": {"class": "PORDER", "extra": {"ZREPLIES": "A"}},
}
LOG = {
    "about": "partner",
    "mode": "create",
    "class": "YSMSLOG",
    "fields": {"BPNUM": "{partner}", "DOCNUM": "{reference}", "MSGSID": "{sid}", "TEXT": "{text}"},
}
ON_SUPPLIER = {"about": "supplier", "mode": "append", "representation": "ZBPSUPPLIER"}
ON_ORDER = {"about": "purchase_orders", "mode": "append", "representation": "ZPORDER"}
pytestmark = pytest.mark.x3(representations=SITE)


def reply(env: Env, shim, text: str) -> None:
    (texted,) = {m["to"] for m in env.twilio.messages}  # it answers from the number we texted
    assert env.twilio.send_incoming_sms(f"{shim.url}/twilio/sms", texted, text).ok


def test_a_reply_naming_an_order_lands_on_the_supplier_and_on_the_order_once(env: Env, shim):
    order = approve_one_fr001_order(env)
    env.configure(
        rules=ONLY_PO_APPROVED,
        inbound={
            "notes": [
                LOG,
                {**ON_SUPPLIER, "field": "ZNOTES"},
                {**ON_ORDER, "field": "ZREPLIES"},
            ]
        },
    )
    env.run("poll")
    reply(env, shim, f"{order} bien reçu, merci")
    env.run("ingest")
    env.run("ingest")  # again: nothing is written twice
    (log,) = env.x3.records("YSMSLOG")
    assert (log["BPNUM"], log["DOCNUM"], log["TEXT"]) == (
        "FR001",
        order,
        f"{order} bien reçu, merci",
    )
    supplier = env.x3.get("BPSUPPLIER", "FR001")["ZNOTES"]
    on_order = env.x3.get("PORDER", order)["ZREPLIES"]
    for text in (supplier, on_order):
        assert text.count(f"re {order}: {order} bien reçu, merci [") == 1
    (logged,) = [r for r in env.audit() if r["event"] == "inbound.logged"]
    assert logged["logged_on"] == [
        f"YSMSLOG:{log['LOGNUM']}",
        "BPSUPPLIER:FR001",
        f"PORDER:{order}",
    ]
    assert logged["reference_source"] == "purchase_orders"


def test_a_reply_without_an_order_number_goes_on_the_order_last_texted(env: Env, shim):
    order = approve_one_fr001_order(env)
    env.configure(rules=ONLY_PO_APPROVED, inbound={"notes": [{**ON_ORDER, "field": "ZREPLIES"}]})
    env.run("poll")
    reply(env, shim, "Bien reçu")
    env.run("ingest")
    assert f"re {order}: Bien reçu [" in env.x3.get("PORDER", order)["ZREPLIES"]


def test_a_reply_that_does_not_fit_is_reported_and_kept_whole_never_cut(env: Env, shim):
    order = approve_one_fr001_order(env)
    full = "x" * 230  # what the supplier's field already holds: old notes stay
    env.x3.update("BPSUPPLIER", "FR001", ZNOTES=full)
    env.configure(
        rules=ONLY_PO_APPROVED, inbound={"notes": [LOG, {**ON_SUPPLIER, "field": "ZNOTES"}]}
    )
    env.run("poll")
    text = f"{order}: " + "la livraison arrivera mardi matin avant dix heures " * 2
    reply(env, shim, text)
    result = env.run("ingest", expect=1)
    assert "1 failed" in result.stdout
    assert env.x3.get("BPSUPPLIER", "FR001")["ZNOTES"] == full
    (log,) = env.x3.records("YSMSLOG")  # the other target still has it, whole
    assert log["TEXT"] == text
    (logged,) = [r for r in env.audit() if r["event"] == "inbound.logged"]
    assert logged["body"] == text
    assert "ZNOTES: 230 of 250 characters used" in logged["not_logged"][0]
