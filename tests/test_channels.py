"""Email and voice notifications end to end: the real CLI, the simulators, the shim."""

from __future__ import annotations

import requests

from tests.test_poll import HISTORY
from x3twilio.signature import compute_signature
from x3twilio.simulators import serve
from x3twilio.simulators.sendgrid import DEFAULT_SENDER, SendGridSimulator

PAYMENT_EMAIL = {
    "name": "payment-remittance",
    "source": "payments",
    "channel": "email",
    "when": {"direction": "outgoing", "partner_type": "supplier"},
    "to": ["supplier"],
    "subject": "Remittance advice {payment_number}",
    "message": "We have paid {amount:,.2f} {currency} (ref {payment_number}).",
}
CALL = {
    "name": "call-treasurer",
    "source": "purchase_orders",
    "channel": "voice",
    "when": {"approval": "approved", "supplier": "FR001"},
    "to": ["+33612000002"],
    "message": "Order {order_number} & co <approved>.",
}


def test_an_email_rule_mails_the_suppliers_address_from_x3(env):
    with serve(SendGridSimulator()) as sendgrid:
        env.configure(
            rules=[PAYMENT_EMAIL],
            sendgrid={
                "api_key": sendgrid.app.api_key,
                "from_email": DEFAULT_SENDER,
                "api_url": sendgrid.url,
            },
        )
        env.run("poll", "--since", HISTORY)
        env.run("poll", "--since", HISTORY)
        mails = sendgrid.app.mails
    suppliers = {p["BPR"] for p in env.x3.records("PAYMENTH") if p["SNS"] == 1 and p["BPRTYP"] == 2}
    assert len(mails) == len(suppliers) > 0
    sent = [r for r in env.audit() if r["event"] == "notification.sent"]
    assert {r["provider_id"] for r in sent} == {m["message_id"] for m in mails}
    assert all(m["subject"].startswith("Remittance advice PAY") for m in mails)
    assert all("@" in r["to"] for r in sent)


def test_a_voice_rule_calls_and_its_status_callbacks_update_the_notification(env, shim):
    env.configure(rules=[CALL])
    env.run("poll", "--since", HISTORY)
    calls = env.twilio.calls
    assert calls and all(c["to"] == "+33612000002" for c in calls)
    (sent, *_) = [r for r in env.audit() if r["event"] == "notification.sent"]
    url = f"{shim.url}/twilio/status?n={sent['id']}"
    for sequence, status in enumerate(["ringing", "completed", "in-progress"]):
        params = {
            "CallSid": sent["provider_id"],
            "CallStatus": status,
            "SequenceNumber": str(sequence),
            "To": "+33612000002",
        }
        signature = compute_signature(url, params, env.twilio.auth_token)
        answer = requests.post(
            url, data=params, timeout=5, headers={"X-Twilio-Signature": signature}
        )
        assert answer.status_code == 204
    env.run("ingest")
    statuses = [
        r["status"]
        for r in env.audit()
        if r["event"] == "notification.status" and r["id"] == sent["id"]
    ]
    assert statuses == ["ringing", "completed"]  # in-progress after completed is stale
