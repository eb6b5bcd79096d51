"""No duplicate after an ambiguous send: the real CLI against a Twilio that finishes creates
after the client gave up. Whatever Twilio created is found once it has settled, nothing is
posted twice in the run that went unanswered, and what Twilio never created goes out in a
later run: one message, or one call, per notification, counted once the simulator is done.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from typing import Any

import pytest

from tests.conftest import Env
from tests.test_poll import HISTORY, edit
from x3twilio.config import TwilioConfig

SETTLE = TwilioConfig.settle  # the default, which these tests keep

CREATES = "POST /2010-04-01/Accounts/"
ORDERS = 6  # approved orders of FR001 added to the simulated X3, besides its own one
SMS_RULE = {
    "name": "po-approved",
    "source": "purchase_orders",
    "when": {"approval": "approved", "supplier": "FR001"},
    "to": ["supplier"],
    "message": "Order {order_number} is approved.",
}
# FR001's one approved order, called out to six people: calls to one number go one at a time
CALL_RULE = {
    "name": "call-buyers",
    "source": "purchase_orders",
    "channel": "voice",
    "when": {"approval": "approved", "closed": "no", "supplier": "FR001"},
    "to": [f"+3361200000{i}" for i in range(2, 8)],
    "message": "Order {order_number} is approved.",
}


def more_fr001_orders(env: Env) -> None:
    """ORDERS more approved orders of FR001 than the dataset has: as many texts to one number."""
    template = next(p for p in env.x3.records("PORDER") if p["BPSNUM"] == "FR001")
    rows = [
        {**template, "POHNUM": f"POAMB{i:03d}", "APPFLG": 3, "CLEFLG": False} for i in range(ORDERS)
    ]
    env.x3.add_records("PORDER", rows)


def created(env: Env, channel: str) -> dict[str, dict[str, Any]]:
    """What Twilio holds by sid, once every delayed create has been processed."""
    assert env.twilio.wait_settled(30), "the simulator still holds delayed creates"
    resources = env.twilio.calls if channel == "voice" else env.twilio.messages
    return {r["sid"]: r for r in resources}


def sent_records(env: Env) -> list[dict[str, Any]]:
    return [r for r in env.audit() if r["event"] == "notification.sent"]


def statuses(env: Env) -> Counter[str]:
    path = env.state_dir / "outbox.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT status FROM notifications").fetchall()
    return Counter(status for (status,) in rows)


def assert_once_each(env: Env, channel: str) -> None:
    """One message or call per notification, each recorded sent once, for what it said."""
    resources = created(env, channel)
    notifications = sum(statuses(env).values())
    assert statuses(env) == {"sent": notifications}
    assert len(resources) == notifications
    sent = sent_records(env)
    assert sorted(Counter(r["id"] for r in sent).values()) == [1] * notifications
    assert sorted(r["provider_id"] for r in sent) == sorted(resources)
    for record in sent:
        resource = resources[record["provider_id"]]
        assert resource["to"] == record["to"]
        if channel == "sms":  # the message found is this notification's text
            assert resource["body"] == f"Order {record['record']} is approved."


@pytest.mark.parametrize("channel", ["sms", "voice"])
def test_creates_twilio_finishes_after_the_client_gave_up_are_found_not_sent_again(
    env: Env, channel: str
) -> None:
    if channel == "sms":
        more_fr001_orders(env)
    env.configure(rules=[SMS_RULE if channel == "sms" else CALL_RULE], twilio={"timeout": "0.5s"})
    # the measured case: Twilio takes 1.5 s over a create the client gives up on at 0.5 s
    env.twilio.faults.add("timeout", match=CREATES, delay=1.5)
    # the 2nd create is answered; the 3rd is created 1 s after the client gave up
    env.twilio.faults.add("late", match=CREATES, skip=1, delay=1.0)
    # the connection of the 4th is reset before Twilio read it: never created
    env.twilio.faults.add("reset_before", match=CREATES, skip=1)

    started = time.monotonic()
    env.run("poll", "--since", HISTORY)
    # the run waited for the settle, then looked up: the two late creates were found
    assert time.monotonic() - started >= SETTLE
    notifications = sum(statuses(env).values())
    assert len(created(env, channel)) == notifications - 1
    assert len([r for r in sent_records(env) if r.get("reconciled")]) == 2
    # the reset one: not there once settled, and never posted twice in the run that made it
    assert statuses(env) == {"sent": notifications - 1, "sending": 1}

    env.run("poll")  # Twilio never had it: sent again now, once
    env.run("poll")  # and nothing more
    assert_once_each(env, channel)


def test_a_run_without_budget_for_the_settle_leaves_it_to_a_later_run(env: Env) -> None:
    more_fr001_orders(env)
    env.configure(
        rules=[SMS_RULE],
        twilio={"timeout": "0.5s"},
        retry={"attempts": 2, "initial": "0.05s", "max": "0.1s", "budget": "1s"},
    )
    env.twilio.faults.add("late", match=CREATES, times=2, delay=1.0)
    unanswered = time.monotonic()
    env.run("poll", "--since", HISTORY)
    (finished,) = [r for r in env.audit() if r["event"] == "run.finished"][-1:]
    assert finished["counts"]["unconfirmed"] == 2
    notifications = sum(statuses(env).values())
    assert notifications > ORDERS
    assert statuses(env) == {"sent": notifications - 2, "sending": 2}

    assert len(created(env, "sms")) == notifications  # Twilio has created both by now...
    env.run("poll")  # ...but they have not settled: never posted again, not looked up yet
    assert len(env.twilio.messages) == notifications
    assert statuses(env)["sending"] == 2

    time.sleep(max(0.0, unanswered + SETTLE + 1.0 - time.monotonic()))
    env.run("poll")  # settled: both are found in Twilio's list
    assert_once_each(env, "sms")
    assert len([r for r in sent_records(env) if r.get("reconciled")]) == 2


def test_an_order_approved_while_a_create_is_unanswered_is_sent_on_its_own(env: Env) -> None:
    """The settle holds back only what went unanswered: new work still goes out."""
    more_fr001_orders(env)
    env.configure(
        rules=[SMS_RULE],
        twilio={"timeout": "0.5s"},
        retry={"attempts": 2, "initial": "0.05s", "max": "0.1s", "budget": "1s"},
    )
    env.twilio.faults.add("late", match=CREATES, delay=0.5)
    env.run("poll", "--since", HISTORY)
    po = next(p for p in env.x3.records("PORDER") if p["BPSNUM"] == "FR001" and p["APPFLG"] == 1)
    edit(env, "PORDER", po["POHNUM"], {"APPFLG": 3})
    env.next_second()
    env.run("poll")
    notifications = sum(statuses(env).values())
    assert statuses(env) == {"sent": notifications - 1, "sending": 1}
    bodies = Counter(m["body"] for m in created(env, "sms").values())
    assert bodies[f"Order {po['POHNUM']} is approved."] == 1
