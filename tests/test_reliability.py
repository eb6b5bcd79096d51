"""Never lose, never duplicate: ambiguous sends, retries, expiry and replay."""

from __future__ import annotations

import time

import pytest

from tests.test_poll import ONLY_PO_APPROVED, approve_one_fr001_order, edit, set_mobile

MESSAGES = "POST /2010-04-01/Accounts/"


def sent_records(env) -> list[dict]:
    return [r for r in env.audit() if r["event"] == "notification.sent"]


@pytest.mark.parametrize("fault", ["reset", "timeout"])
def test_an_ambiguous_send_is_looked_up_in_twilio_not_sent_again(env, fault):
    order = approve_one_fr001_order(env)
    env.configure(rules=ONLY_PO_APPROVED, twilio={"timeout": "0.5s", "settle": "2s"})
    env.twilio.faults.add(fault, match=MESSAGES, delay=1.5)  # Twilio accepts it, then...
    env.run("poll")
    (message,) = env.twilio.messages
    assert order in message["body"]
    (sent,) = sent_records(env)
    assert sent["provider_id"] == message["sid"]


def test_a_crash_between_accepted_and_recorded_is_reconciled_on_the_next_run(env):
    approve_one_fr001_order(env)
    env.configure(rules=ONLY_PO_APPROVED, twilio={"settle": "2s"})  # the simulator lists at once
    env.twilio.faults.add("reset", match="Messages.json", times=0)  # every answer is lost
    env.run("poll", expect=69)  # Twilio looked unreachable: the run stops
    assert len(env.twilio.messages) >= 1  # but it had accepted the message
    env.twilio.faults.clear()
    env.run("poll")
    assert len(env.twilio.messages) == 1
    assert sent_records(env)[0]["provider_id"] == env.twilio.messages[0]["sid"]


def test_a_429_burst_is_retried_and_sent_once(env):
    approve_one_fr001_order(env)
    env.twilio.faults.add("429", match=MESSAGES, times=2)
    env.run("poll")
    assert len(env.twilio.messages) == 1


def test_a_notification_older_than_max_age_expires_instead_of_retrying(env):
    approve_one_fr001_order(env)
    env.configure(
        rules=ONLY_PO_APPROVED, retry={"max_age": "1s", "attempts": 1}, twilio={"settle": "1s"}
    )
    env.twilio.faults.add("500", match=MESSAGES, times=0)
    env.run("poll", expect=69)
    env.twilio.faults.clear()
    time.sleep(1.2)
    env.run("poll", expect=1)
    failed = [r for r in env.audit() if r["event"] == "notification.failed"]
    assert failed[-1]["reason"] == "expired" and failed[-1]["error"]["permanent"] is False
    assert len(env.twilio.messages) == 0  # the 500s never created it
    row = next(line for line in env.run("audit").stdout.splitlines() if "expired" in line)
    assert "not sent within retry.max_age" in row  # the reason, in words
    assert "None" not in row and "transient" not in row


def test_replay_sends_a_fixed_number_and_never_resends_what_twilio_has(env):
    env.configure(rules=ONLY_PO_APPROVED)
    env.run("poll")
    po = next(p for p in env.x3.records("PORDER") if p["BPSNUM"] == "US005")
    edit(env, "PORDER", po["POHNUM"], {"APPFLG": 3, "CLEFLG": False})
    env.next_second()
    env.run("poll", expect=1)  # +1 500-555-0001: 21211, permanent
    assert env.twilio.messages == []
    (failed,) = [r for r in env.audit() if r["event"] == "notification.failed"]

    dry = env.run("replay", "--dry-run").stdout
    assert failed["id"] not in dry  # permanent failures need --include-permanent
    dry = env.run("replay", "--dry-run", "--include-permanent").stdout
    assert failed["id"] in dry

    set_mobile(env, "US005", "(415) 555-0142")  # fixed in X3
    env.run("replay", "--include-permanent")
    (message,) = env.twilio.messages
    assert message["to"] == "+14155550142" and po["POHNUM"] in message["body"]
    replayed = [r for r in env.audit() if r.get("replay_of") == failed["id"]]
    assert [r["event"] for r in replayed] == ["notification.queued", "notification.sent"]

    env.run("replay", "--include-permanent")
    env.run("poll")
    assert len(env.twilio.messages) == 1


def test_replay_reprocesses_a_failed_inbound_item(env, shim):
    env.configure(
        inbound={
            "notes": [
                {
                    "about": "partner",
                    "mode": "create",
                    "class": "NOSUCHCLASS",
                    "fields": {"MSGSID": "{sid}", "TEXT": "{text}"},
                }
            ]
        }
    )
    env.twilio.send_incoming_sms(f"{shim.url}/twilio/sms", "+33612345678", "PO42 ok")
    env.run("ingest", expect=1)  # X3 refuses the class: kept in failed/ for a person
    assert len(list((env.state_dir / "inbox" / "failed").iterdir())) == 1
    env.configure()  # fixed: the example's target
    env.run("replay")
    assert "re PO42: PO42 ok" in env.notes("FR001")
    assert not list((env.state_dir / "inbox" / "failed").iterdir())
