"""Inbound: the signed webhook shim, the spool, and `x3twilio ingest` writing notes in X3."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.conftest import Env
from tests.test_poll import FR001_TEXTED, ONLY_PO_APPROVED, approve_one_fr001_order, edit
from x3twilio.signature import compute_signature

pytestmark = pytest.mark.parametrize("env", ["rest", "graphql", "rest-1/2"], indirect=True)
FR001_MOBILE = "+33612345678"  # "06 12 34 56 78" on FR001's head office address, country FR


def spooled(env: Env) -> list:
    new = env.state_dir / "inbox" / "new"
    return sorted(new.iterdir()) if new.exists() else []


def sms_params(env: Env, body: str = "hello", sid: str = "SM" + "1" * 32) -> dict:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": env.twilio.account_sid,
        "From": FR001_MOBILE,
        "To": env.twilio.phone_number,
        "Body": body,
        "NumMedia": "0",
        "FromCity": "",
        "ToZip": "",
        "ApiVersion": "2010-04-01",
    }


def post(url: str, params: dict, signature: str, **headers: str) -> requests.Response:
    return requests.post(
        url, data=params, headers={"X-Twilio-Signature": signature, **headers}, timeout=5
    )


def notes_of(env: Env, supplier: str = "FR001") -> str:
    return env.notes(supplier)


# -- the shim ------------------------------------------------------------------------------


def test_a_validly_signed_sms_is_spooled_once_and_answered_with_empty_twiml(env, shim):
    url, params = f"{shim.url}/twilio/sms", sms_params(env)
    token = env.twilio.auth_token
    for _ in range(2):  # Twilio's retry of the same delivery carries the same token
        answer = post(
            url,
            params,
            compute_signature(url, params, token),
            **{"I-Twilio-Idempotency-Token": "tok-1"},
        )
        assert answer.status_code == 200
        assert answer.headers["Content-Type"].startswith("text/xml")
        assert answer.text == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    assert len(spooled(env)) == 1
    assert oct(spooled(env)[0].stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("forgery", ["none", "tampered", "wrong-token", "other-url"])
def test_forged_webhooks_get_403_and_are_not_spooled(env, shim, forgery, capfd):
    url, params = f"{shim.url}/twilio/sms", sms_params(env)
    token = env.twilio.auth_token
    signature = {
        "none": "",
        "tampered": compute_signature(url, {**params, "Body": "other"}, token),
        "wrong-token": compute_signature(url, params, "not-the-token"),
        "other-url": compute_signature(f"{shim.url}/twilio/status", params, token),
    }[forgery]
    assert post(url, params, signature).status_code == 403
    assert spooled(env) == []


def test_the_signature_is_checked_against_public_url_not_the_host_header(env, shim):
    params = sms_params(env)
    signed_for = "https://proxy.example.com/twilio/sms"  # what Twilio would have called
    answer = post(
        f"{shim.url}/twilio/sms",
        params,
        compute_signature(signed_for, params, env.twilio.auth_token),
        Host="proxy.example.com",
    )
    assert answer.status_code == 403


def test_size_method_and_route_limits(env, shim):
    big = requests.post(f"{shim.url}/twilio/sms", data=b"x" * (1 << 20), timeout=5)
    assert big.status_code == 413
    assert requests.get(f"{shim.url}/twilio/sms", timeout=5).status_code == 405
    assert requests.post(f"{shim.url}/twilio/nope", timeout=5).status_code == 404
    assert requests.get(f"{shim.url}/healthz", timeout=5).text == "ok\n"
    assert spooled(env) == []


def test_a_call_is_answered_with_a_recording_twiml_pointing_back_at_the_shim(env, shim):
    answers = env.twilio.place_incoming_call(f"{shim.url}/twilio/voice", FR001_MOBILE)
    twiml = answers[0].text
    assert answers[0].headers["Content-Type"].startswith("text/xml")
    assert f'recordingStatusCallback="{shim.url}/twilio/recording"' in twiml
    assert f'transcribeCallback="{shim.url}/twilio/transcription"' in twiml
    assert "<Hangup/>" in answers[1].text  # the <Record> action ends the call
    assert [a.status_code for a in answers] == [200, 200, 204, 204]
    assert len(spooled(env)) == 3  # voice, recording, transcription


# -- ingest --------------------------------------------------------------------------------


def test_a_supplier_reply_lands_once_as_a_note_on_that_supplier(env, shim):
    result = env.twilio.send_incoming_sms(
        f"{shim.url}/twilio/sms", FR001_MOBILE, "PO123 reçu, merci"
    )
    assert result.status_code == 200
    sid = env.twilio.inbound[-1]["sid"]
    # the same message again, as if delivered twice without an idempotency token
    params = sms_params(env, "PO123 reçu, merci", sid)
    url = f"{shim.url}/twilio/sms"
    post(url, params, compute_signature(url, params, env.twilio.auth_token))
    env.run("ingest")
    env.run("ingest")
    notes = notes_of(env)
    assert notes.count(f"[{sid}]") == 1
    assert f"SMS from {FR001_MOBILE} re PO123: PO123 reçu, merci [{sid}]" in notes
    (logged,) = [r for r in env.audit() if r["event"] == "inbound.logged"]
    assert logged["matched"] == "BPSUPPLIER:FR001" and logged["reference"] == "PO123"
    assert logged["from"] == FR001_MOBILE and logged["channel"] == "sms"


def test_a_reply_without_a_number_refers_to_the_last_notification_sent(env, shim):
    order = approve_one_fr001_order(env)
    env.run("poll")
    env.twilio.send_incoming_sms(f"{shim.url}/twilio/sms", FR001_TEXTED, "Bien reçu")
    env.run("ingest")
    assert f"re {order}: Bien reçu" in notes_of(env)


def test_an_unknown_sender_is_audited_with_matched_null(env, shim):
    env.twilio.send_incoming_sms(f"{shim.url}/twilio/sms", "+447700900999", "who is this")
    env.run("ingest")
    (received,) = [r for r in env.audit() if r["event"] == "inbound.received"]
    assert received["matched"] is None and received["body"] == "who is this"


def test_a_voicemail_with_its_transcription_becomes_one_note(env, shim):
    env.twilio.place_incoming_call(
        f"{shim.url}/twilio/voice", FR001_MOBILE, transcription="Livraison PO456 demain matin"
    )
    env.run("ingest")
    env.run("ingest")
    notes = notes_of(env)
    assert notes.count("Voicemail from +33612345678 re PO456: Livraison PO456 demain matin") == 1
    (logged,) = [r for r in env.audit() if r["event"] == "inbound.logged"]
    assert logged["channel"] == "voice" and logged["transcription"].startswith("Livraison")
    assert logged["recording_url"].startswith("https://api.twilio.com/")


def test_a_voicemail_whose_transcription_never_comes_is_logged_after_the_wait(env, shim):
    env.configure(inbound={"transcription_wait": "1s"})
    env.twilio.place_incoming_call(f"{shim.url}/twilio/voice", FR001_MOBILE, transcription="")
    time.sleep(1.1)  # that it waits is shown with a fixed clock (test_ingest_seams.py)
    env.run("ingest")
    env.run("ingest")
    assert notes_of(env).count("(no transcription)") == 1


def test_status_callbacks_out_of_order_end_as_delivered(env, shim):
    approve_one_fr001_order(env)
    env.run("poll")
    (message,) = env.twilio.messages
    assert message["status_callback"].startswith(f"{shim.url}/twilio/status?n=")
    # deliver "delivered" first, then "sent", each twice
    pending = env.twilio._pending
    env.twilio._pending = list(reversed(pending))
    assert env.twilio.deliver_callbacks(duplicate=True) == 4
    env.run("ingest")
    statuses = [r["status"] for r in env.audit() if r["event"] == "notification.status"]
    assert statuses == ["delivered"]


def test_stop_skips_the_next_notification_and_start_lifts_it(env, shim):
    env.configure(rules=ONLY_PO_APPROVED)
    env.run("poll")
    env.twilio.send_incoming_sms(f"{shim.url}/twilio/sms", FR001_TEXTED, "STOP")
    env.run("ingest")
    orders = [p for p in env.x3.records("PORDER") if p["BPSNUM"] == "FR001" and p["APPFLG"] == 1]
    edit(env, "PORDER", orders[0]["POHNUM"], {"APPFLG": 3})
    env.next_second()
    env.run("poll")
    assert env.twilio.messages == []
    skipped = [r for r in env.audit() if r["event"] == "notification.skipped"]
    assert [r["reason"] for r in skipped] == ["opted_out"]

    env.twilio.send_incoming_sms(f"{shim.url}/twilio/sms", FR001_TEXTED, "START")
    env.run("ingest")
    edit(env, "PORDER", orders[1]["POHNUM"], {"APPFLG": 3})
    env.next_second()
    env.run("poll")
    assert [m["to"] for m in env.twilio.messages] == [FR001_TEXTED]


def test_x3_down_during_ingest_exits_1_loses_nothing_and_the_next_ingest_logs_it(env, shim):
    env.twilio.send_incoming_sms(f"{shim.url}/twilio/sms", FR001_MOBILE, "PO789 ok")
    env.x3.faults.add("503", match="BPSUPPLIER", times=0)
    result = env.run("ingest", expect=1)
    assert "1 failed" in result.stdout
    assert [r["event"] for r in env.audit() if r["event"].startswith("inbound.")] == [
        "inbound.failed"
    ]
    env.x3.faults.clear()
    env.run("ingest")
    assert "re PO789: PO789 ok" in notes_of(env)


def test_a_payload_written_but_never_published_is_recovered_by_ingest(env, shim):
    import os

    from x3twilio.spool import Spool

    spool = Spool(env.state_dir)
    tmp = spool._dir("tmp") / "123.1.abcd.json"  # as if the shim died before its rename
    params = [["MessageSid", "SM" + "9" * 32], ["From", FR001_MOBILE], ["Body", "PO77 ok"]]
    tmp.write_text(
        json.dumps(
            {
                "route": "sms",
                "received": "2026-11-27T00:00:00.000Z",
                "url": f"{shim.url}/twilio/sms",
                "params": params,
            }
        )
    )
    os.utime(tmp, (time.time() - 120, time.time() - 120))
    env.run("ingest")
    assert "re PO77: PO77 ok" in notes_of(env)


def test_a_customer_reply_lands_on_that_customer(env, shim):
    env.twilio.send_incoming_sms(f"{shim.url}/twilio/sms", "+33614253647", "SI42 reçue")
    env.run("ingest")
    assert "SMS from +33614253647 re SI42: SI42 reçue [" in env.notes("CFR002")


# -- one payload shape; de-duplication on what the signature covers --------------------------


def post_json(shim_url: str, env: Env, document: dict, token: str | None = None):
    """A JSON-bodied webhook as Twilio signs one: the URL (with the body's SHA-256) alone."""
    import hashlib

    body = json.dumps(document).encode()
    url = f"{shim_url}/twilio/status?bodySHA256={hashlib.sha256(body).hexdigest()}"
    headers = {
        "Content-Type": "application/json",
        "X-Twilio-Signature": compute_signature(url, body, env.twilio.auth_token),
    }
    if token:
        headers["I-Twilio-Idempotency-Token"] = token
    return requests.post(url, data=body, headers=headers, timeout=5)


def test_distinct_json_webhooks_are_all_spooled_and_a_repeat_once(env, shim):
    # without a sid: each distinct body is its own event (the key hashes the signed body)
    for n in range(5):
        assert post_json(shim.url, env, {"event": "ping", "n": n}).status_code == 204
    assert post_json(shim.url, env, {"event": "ping", "n": 0}).status_code == 204
    # with a sid and status: one per (sid, status), whatever else differs
    sid = "SM" + "5" * 32
    for status in ("sent", "delivered", "delivered"):
        answer = post_json(shim.url, env, {"MessageSid": sid, "MessageStatus": status})
        assert answer.status_code == 204
    stored = [json.loads(p.read_text()) for p in spooled(env)]
    assert len(stored) == 7
    assert {s["format"] for s in stored} == {"json"}
    statuses = [dict(s["fields"]).get("MessageStatus") for s in stored]
    assert sorted(x for x in statuses if x) == ["delivered", "sent"]
    assert all(s["body"] and s["body_sha256"] for s in stored)  # the raw body, for audit


def test_a_captured_request_replayed_with_fresh_idempotency_tokens_is_stored_once(env, shim):
    url, params = f"{shim.url}/twilio/sms", sms_params(env, "PO55 ok", "SM" + "7" * 32)
    signature = compute_signature(url, params, env.twilio.auth_token)
    for n in range(4):
        answer = post(url, params, signature, **{"I-Twilio-Idempotency-Token": f"fresh-{n}"})
        assert answer.status_code == 200
    for n in range(2):
        post_json(shim.url, env, {"MessageSid": "SM" + "8" * 32, "MessageStatus": "sent"}, f"t{n}")
    assert len(spooled(env)) == 2
    (form,) = [json.loads(p.read_text()) for p in spooled(env) if '"sms"' in p.read_text()]
    assert form["format"] == "form" and dict(form["fields"])["Body"] == "PO55 ok"


def test_a_json_status_callback_is_processed_like_a_form_one(env, shim):
    approve_one_fr001_order(env)
    env.run("poll")
    (message,) = env.twilio.messages
    document = {"MessageSid": message["sid"], "MessageStatus": "delivered", "ErrorCode": None}
    assert post_json(shim.url, env, document).status_code == 204
    env.run("ingest")
    (status,) = [r for r in env.audit() if r["event"] == "notification.status"]
    assert status["status"] == "delivered" and status["provider_id"] == message["sid"]
