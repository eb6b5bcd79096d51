"""WhatsApp as a channel: rules with templates, the 24-hour window at send time, Twilio's
WhatsApp errors, ingest of WhatsApp replies, `check`; end to end through the simulators."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Env
from tests.test_poll import FR001_TEXTED, HISTORY, edit
from x3twilio.builtin_sources import BUILTIN
from x3twilio.config import load_config
from x3twilio.doctor import whatsapp_checks, whatsapp_warnings
from x3twilio.errors import ConfigError
from x3twilio.model import Notification
from x3twilio.outbox import Outbox
from x3twilio.rules import Rule, load_rules
from x3twilio.senders.twilio import TwilioApiError, outcome_for
from x3twilio.senders.whatsapp import TwilioWhatsAppSender
from x3twilio.simulators import RunningServer
from x3twilio.simulators.twilio_whatsapp import (
    APPROVED_TEMPLATE_SID,
    PENDING_TEMPLATE_SID,
)
from x3twilio.transport import Outcome, Retrier
from x3twilio.whatsapp import WINDOW_REASON, content_of, message_fields, within_window
from x3twilio.yamlnode import Node

NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
VARIABLES = {"1": "{order_number}", "2": "{expected_date:%d %B %Y}"}
TEMPLATE = {"content_sid": APPROVED_TEMPLATE_SID, "variables": VARIABLES}
PO_WHATSAPP = {
    "name": "po-whatsapp",
    "source": "purchase_orders",
    "channel": "whatsapp",
    "when": {"approval": "approved", "supplier": "FR001"},
    "to": ["supplier"],
    "message": "Order {order_number} is approved: please deliver by {expected_date:%d %b %Y}.",
    "template": TEMPLATE,
}
FREE_TEXT_ONLY = {k: v for k, v in PO_WHATSAPP.items() if k != "template"}
TEMPLATE_TEXT = "Purchase order {} is ready for collection on {}."  # the simulator's


def rule(**spec: Any) -> Rule:
    node = Node("rules.yaml", "", {"rules": [{**PO_WHATSAPP, **spec}]})
    return load_rules(node, BUILTIN, {"buyers": ("+33612000001",)})[0]


def values(name: str) -> Any:
    return {"order_number": "PO42", "expected_date": datetime(2026, 12, 4, tzinfo=UTC)}.get(name)


def note(content: str | None = None, to: str = "+33698765432") -> Notification:
    return Notification(
        "n-1", "po-whatsapp", "purchase_orders", "PO42", "whatsapp", to, "Hi", content=content
    )


# -- rules ------------------------------------------------------------------------------


def test_a_whatsapp_rule_loads_its_template_and_reads_the_fields_of_its_variables() -> None:
    loaded = rule(template={"content_sid": APPROVED_TEMPLATE_SID, "variables": {1: "{total}"}})

    assert loaded.channel == "whatsapp"
    assert loaded.content is not None and loaded.content.sid == APPROVED_TEMPLATE_SID
    assert list(loaded.content.variables) == ["1"]  # YAML's number key, as Twilio names it
    assert {"total", "order_number", "expected_date"} <= loaded.names()


def test_a_whatsapp_rule_without_a_template_sends_free_text_only() -> None:
    assert rule(template=None).content is None


@pytest.mark.parametrize(
    ("spec", "where", "problem"),
    [
        ({"template": {"content_sid": "HX123"}}, "template.content_sid", "HX and 32 hex"),
        ({"template": {"content_sid": "MG" + "0" * 32}}, "template.content_sid", "HX"),
        (
            {"template": {**TEMPLATE, "variables": {"1": "{ordre}"}}},
            "template.variables.1",
            "unknown placeholder {ordre}",
        ),
        (
            {"template": {**TEMPLATE, "variables": {"1": "{expected_date:Y}"}}},
            "template.variables.1",
            "% directives",
        ),
        ({"template": {**TEMPLATE, "variables": {"a b": "x"}}}, "template.variables.a b", ""),
        ({"template": {**TEMPLATE, "sid": "x"}}, "template.sid", "unknown field"),
        ({"channel": "sms"}, "template", "for channel whatsapp, not sms"),
        ({"channel": "whatsup"}, "channel", "sms, email, voice or whatsapp"),
        ({"to": ["+3361200"]}, "to[0]", "E.164"),
    ],
)
def test_a_bad_whatsapp_rule_is_refused_at_load_naming_the_key(
    spec: dict[str, Any], where: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        rule(**spec)

    assert f"rules[0].{where}" in str(caught.value)
    assert problem in str(caught.value)


def test_content_of_renders_the_variables_like_a_message_in_the_recipients_language() -> None:
    loaded = rule()

    english = json.loads(content_of(loaded, values, None) or "")
    french = json.loads(content_of(loaded, values, "fr_FR") or "")

    assert english == {
        "sid": APPROVED_TEMPLATE_SID,
        "variables": {"1": "PO42", "2": "04 December 2026"},
    }
    assert french["variables"]["2"] == "04 décembre 2026"
    assert content_of(rule(template=None), values, None) is None


# -- the 24-hour window ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wrote", "within"),
    [
        (None, False),
        (NOW - timedelta(hours=1), True),
        (NOW - timedelta(hours=23, minutes=49), True),
        (NOW - timedelta(hours=23, minutes=51), False),  # the safety margin: a template
        (NOW - timedelta(days=3), False),
    ],
)
def test_free_text_is_trusted_until_ten_minutes_before_the_window_closes(
    wrote: datetime | None, within: bool
) -> None:
    assert within_window(wrote, NOW) is within


def test_inside_the_window_free_text_goes_outside_it_the_template() -> None:
    content = content_of(rule(), values, None)
    recent, old = NOW - timedelta(hours=2), NOW - timedelta(hours=30)

    assert message_fields(note(content), recent, NOW) == {"Body": "Hi"}
    assert message_fields(note(content), old, NOW) == {
        "ContentSid": APPROVED_TEMPLATE_SID,
        "ContentVariables": json.dumps({"1": "PO42", "2": "04 December 2026"}),
    }
    assert message_fields(note(None), None, NOW) == {"Body": "Hi"}  # Twilio refuses it
    bare = json.dumps({"sid": APPROVED_TEMPLATE_SID, "variables": {}})
    assert message_fields(note(bare), None, NOW) == {"ContentSid": APPROVED_TEMPLATE_SID}


# -- the sender, against the simulator --------------------------------------------------


def whatsapp_sender(
    env: Env, wrote: datetime | None, asked: list[str] | None = None
) -> TwilioWhatsAppSender:
    """The sender against the Twilio simulator; the supplier last wrote at `wrote`, and each
    number the sender asks about is put in `asked`."""
    env.configure(twilio=whatsapp_twilio(env))
    config = load_config(env.config_path, env={})

    def last_inbound(number: str) -> datetime | None:
        (asked if asked is not None else []).append(number)
        return wrote

    return TwilioWhatsAppSender(
        config.twilio,
        config.public_url,
        requests.Session(),
        Retrier(config.retry),
        last_inbound=last_inbound,
        clock=lambda: NOW,
    )


def test_the_sender_sends_the_template_to_a_supplier_who_has_not_written(env: Env) -> None:
    asked: list[str] = []
    sender = whatsapp_sender(env, wrote=None, asked=asked)

    sid = sender.send(note(content_of(rule(), values, None)), None)

    (sent,) = env.twilio.messages
    assert sid == sent["sid"] and asked == ["+33698765432"]
    assert (sent["to"], sent["from"]) == ("whatsapp:+33698765432", env.twilio.whatsapp_sender)
    assert sent["content_sid"] == APPROVED_TEMPLATE_SID
    assert sent["body"] == TEMPLATE_TEXT.format("PO42", "04 December 2026")


def test_the_sender_sends_free_text_to_a_supplier_who_wrote_an_hour_ago(env: Env) -> None:
    sender = whatsapp_sender(env, wrote=NOW - timedelta(hours=1))

    sender.send(note(content_of(rule(), values, None)), None)

    (sent,) = env.twilio.messages
    assert sent["body"] == "Hi" and not sent.get("content_sid")


def test_a_template_sent_but_unanswered_is_found_in_twilios_list_by_its_number(env: Env) -> None:
    sender = whatsapp_sender(env, wrote=None)
    n = note(content_of(rule(), values, None))
    sid = sender.send(n, None)

    assert sender.find_sent(n, datetime.now(UTC) - timedelta(minutes=1)) == sid


def test_free_text_refused_at_create_outside_the_window_fails_for_good_with_the_reason(
    env: Env,
) -> None:
    env.twilio.whatsapp_window_refusal = "create"
    sender = whatsapp_sender(env, wrote=None)

    with pytest.raises(TwilioApiError) as caught:
        sender.send(note(None), None)

    assert caught.value.code == 63016 and caught.value.outcome is Outcome.REFUSED
    assert WINDOW_REASON in str(caught.value)
    assert env.twilio.messages == []


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (63016, Outcome.REFUSED),  # outside the window: this message, for good
        (63003, Outcome.REFUSED),  # not a WhatsApp user
        (21654, Outcome.REFUSED),
        (21655, Outcome.REFUSED),  # the rule's content_sid: fixed in the rules, replayed
        (21656, Outcome.REFUSED),
        (63007, Outcome.ACCOUNT),  # whatsapp_from is not our sender: the run stops
        (21910, Outcome.ACCOUNT),  # an SMS From to a WhatsApp To: configuration
    ],
)
def test_each_whatsapp_error_means_one_thing(code: int, outcome: Outcome) -> None:
    assert outcome_for(400, code, creating=True) is outcome


# -- the outbox ---------------------------------------------------------------------------


def test_the_outbox_keeps_the_newest_whatsapp_message_and_each_notifications_content(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path)
    outbox.wrote_on_whatsapp("+33698765432", "2026-12-02T09:00:00.000Z")
    outbox.wrote_on_whatsapp("+33698765432", "2026-12-01T09:00:00.000Z")  # late, older
    outbox.add([], [note('{"sid": "HX1", "variables": {}}')], "2026-12-02T09:00:00.000Z")

    assert outbox.last_whatsapp("+33698765432") == "2026-12-02T09:00:00.000Z"
    assert outbox.last_whatsapp("+33600000000") is None
    assert [n.content for n in outbox.due("9999")] == ['{"sid": "HX1", "variables": {}}']


def test_an_outbox_from_before_whatsapp_gains_the_content_column(tmp_path: Path) -> None:
    Outbox(tmp_path).close()
    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    db.execute("ALTER TABLE notifications DROP COLUMN content")
    db.execute("DROP TABLE whatsapp_windows")
    db.commit()
    db.close()
    assert Outbox(tmp_path, readonly=True).last_whatsapp("+33698765432") is None

    outbox = Outbox(tmp_path)
    outbox.add([], [note("{}")], "2026-12-02T09:00:00.000Z")

    assert [n.content for n in outbox.due("9999")] == ["{}"]


# -- check --------------------------------------------------------------------------------


def test_check_offline_warns_about_a_whatsapp_rule_without_sender_or_template(env: Env) -> None:
    env.configure(rules=[FREE_TEXT_ONLY])

    result = env.run("check", "--offline")

    assert (
        "rule po-whatsapp: channel whatsapp has no sender: set twilio.whatsapp_from"
        in result.stderr
    )
    assert f"rule po-whatsapp: no template: {WINDOW_REASON}" in result.stderr
    config = load_config(env.config_path, env={})
    assert len(whatsapp_warnings(config)) == 2


def test_check_online_asks_whatsapp_whether_each_template_is_approved(env: Env) -> None:
    unknown = "HX" + "0" * 32
    rules = [
        PO_WHATSAPP,
        {**PO_WHATSAPP, "name": "pending", "template": {"content_sid": PENDING_TEMPLATE_SID}},
        {**PO_WHATSAPP, "name": "unknown", "template": {"content_sid": unknown}},
    ]
    env.configure(rules=rules, twilio=whatsapp_twilio(env))
    config = load_config(env.config_path, env={})

    checks = whatsapp_checks(config, requests.Session())

    assert [(c.name, c.ok) for c in checks] == [
        ("WhatsApp template po-whatsapp", True),
        ("WhatsApp template pending", False),
        ("WhatsApp template unknown", False),
    ]
    assert "is pending, not approved" in checks[1].detail
    assert "wait for WhatsApp to approve it" in checks[1].fix
    assert checks[2].detail == f"{unknown} is not a Content template of this account"


# -- end to end: poll, the shim, ingest, audit ----------------------------------------------


def whatsapp_twilio(env: Env) -> dict[str, str]:
    return {"whatsapp_from": env.twilio.whatsapp_sender, "content_url": env.twilio_server.url}


def fr001_orders(env: Env) -> list[dict[str, Any]]:
    return [p for p in env.x3.records("PORDER") if p["BPSNUM"] == "FR001" and p["APPFLG"] == 3]


def approve_one(env: Env) -> str:
    """A buyer approves one more FR001 order in X3; the next poll sees it."""
    po = next(p for p in env.x3.records("PORDER") if p["BPSNUM"] == "FR001" and p["APPFLG"] == 1)
    edit(env, "PORDER", po["POHNUM"], {"APPFLG": 3})
    env.next_second()
    return str(po["POHNUM"])


def long_date(po: dict[str, Any]) -> str:
    return datetime.fromisoformat(po["EXTRCPDAT1"]).strftime("%d %B %Y")


def test_an_approved_order_goes_to_a_silent_supplier_as_the_template_filled_in(env: Env) -> None:
    env.configure(rules=[PO_WHATSAPP], twilio=whatsapp_twilio(env))

    env.run("poll", "--since", HISTORY)

    orders = {po["POHNUM"]: po for po in fr001_orders(env)}
    messages = env.twilio.messages
    assert orders and len(messages) == len(orders)
    for message in messages:
        assert message["to"] == f"whatsapp:{FR001_TEXTED}"
        assert message["from"] == env.twilio.whatsapp_sender
        assert message["content_sid"] == APPROVED_TEMPLATE_SID
    expected = {TEMPLATE_TEXT.format(key, long_date(po)) for key, po in orders.items()}
    assert {m["body"] for m in messages} == expected
    sent = [r for r in env.audit() if r["event"] == "notification.sent"]
    assert {r["channel"] for r in sent} == {"whatsapp"} and len(sent) == len(orders)


def test_a_supplier_who_writes_on_whatsapp_is_logged_in_x3_and_answered_in_free_text(
    env: Env, shim: RunningServer
) -> None:
    env.configure(rules=[PO_WHATSAPP], twilio=whatsapp_twilio(env))
    env.run("poll")  # the first poll starts from now
    approve_one(env)
    env.run("poll")
    (template,) = env.twilio.messages
    assert template["content_sid"] == APPROVED_TEMPLATE_SID

    env.twilio.send_incoming_whatsapp(f"{shim.url}/twilio/sms", FR001_TEXTED, "Noted, thanks")
    sid = env.twilio.inbound[-1]["sid"]
    env.run("ingest")
    order = approve_one(env)
    env.run("poll")

    assert f"Noted, thanks [{sid}]" in env.notes("FR001")
    (logged,) = [r for r in env.audit() if r["event"] == "inbound.logged"]
    assert (logged["channel"], logged["from"]) == ("whatsapp", FR001_TEXTED)
    assert logged["matched"] == "BPSUPPLIER:FR001"
    free_text = env.twilio.messages[-1]
    assert not free_text.get("content_sid")
    assert free_text["body"].startswith(f"Order {order} is approved")
    assert env.twilio.messages[-1]["status"] != "failed"
    assert env.run("ingest").returncode == 0
    assert not Outbox(env.state_dir, readonly=True).opted_out(FR001_TEXTED)


def test_stop_on_whatsapp_does_not_opt_the_number_out_of_sms(env: Env, shim: RunningServer) -> None:
    env.configure(rules=[PO_WHATSAPP], twilio=whatsapp_twilio(env))
    env.twilio.send_incoming_whatsapp(f"{shim.url}/twilio/sms", FR001_TEXTED, "STOP")

    env.run("ingest")

    outbox = Outbox(env.state_dir, readonly=True)
    assert not outbox.opted_out(FR001_TEXTED)
    assert outbox.last_whatsapp(FR001_TEXTED) is not None


def test_free_text_outside_the_window_is_failed_by_twilio_and_the_audit_says_why(
    env: Env, shim: RunningServer
) -> None:
    env.configure(rules=[FREE_TEXT_ONLY], twilio=whatsapp_twilio(env))
    env.run("poll", "--since", HISTORY)
    assert env.twilio.deliver_callbacks() > 0

    env.run("ingest")

    statuses = [r for r in env.audit() if r["event"] == "notification.status"]
    assert statuses and all(r["status"] == "failed" for r in statuses)
    assert all(r["error"]["code"] == 63016 for r in statuses)
    assert all(r["error"]["message"] == WINDOW_REASON for r in statuses)
    assert all(r["error"]["permanent"] for r in statuses)
    stored = Outbox(env.state_dir, readonly=True).for_record(
        "purchase_orders", statuses[0]["record"]
    )
    assert [(n.error_code, delivery) for n, delivery in stored] == [(63016, "failed")]
    shown = env.run("audit", "--event", "notification.status").stdout
    assert "error 63016: WhatsApp allows free text only within 24 h" in shown


def test_free_text_refused_at_create_is_reported_failed_with_63016(env: Env) -> None:
    env.configure(rules=[FREE_TEXT_ONLY], twilio=whatsapp_twilio(env))
    env.twilio.whatsapp_window_refusal = "create"

    env.run("poll", "--since", HISTORY, expect=1)

    failed = [r for r in env.audit() if r["event"] == "notification.failed"]
    assert failed and len(failed) == len(fr001_orders(env))
    assert all(r["error"]["code"] == 63016 and r["error"]["permanent"] for r in failed)
    assert all(WINDOW_REASON in r["error"]["message"] for r in failed)
    assert env.twilio.messages == []
