"""Sending policy: quiet hours, urgency, per-recipient caps and digests, the rate limiter;
what each refusal means, and refusals about the account stopping the run."""

from __future__ import annotations

import csv
import io
import itertools
import sqlite3
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.test_poll import HISTORY, ONLY_PO_APPROVED
from x3twilio.pacing import RateLimiter
from x3twilio.quiethours import QuietHours
from x3twilio.senders.twilio import outcome_for
from x3twilio.transport import Outcome

PARIS = ZoneInfo("Europe/Paris")


def window_around_now() -> dict[str, str]:
    now = datetime.now(PARIS)
    return {
        "start": (now - timedelta(hours=1)).strftime("%H:%M"),
        "end": (now + timedelta(hours=1)).strftime("%H:%M"),
    }


def fr001_rule(**extra) -> list[dict]:
    return [{**ONLY_PO_APPROVED[0], "when": {"approval": "approved", "supplier": "FR001"}, **extra}]


def test_quiet_hours_defer_in_the_recipients_zone_and_urgent_rules_go_anyway(env):
    env.configure(rules=fr001_rule(), sending={"quiet_hours": window_around_now()})
    env.run("poll", "--since", HISTORY)
    assert env.twilio.messages == []
    deferred = [r for r in env.audit() if r.get("reason") == "quiet_hours"]
    assert deferred and all(r["not_before"] > r["ts"] for r in deferred)
    env.run("poll", "--since", HISTORY)  # still night: nothing, and no new records either
    assert len([r for r in env.audit() if r.get("reason") == "quiet_hours"]) == len(deferred)

    env.configure(
        rules=fr001_rule(urgent=True, name="po-urgent"),
        sending={"quiet_hours": window_around_now()},
    )
    env.run("poll", "--since", HISTORY)
    assert len(env.twilio.messages) == len(deferred)


def test_a_cap_per_recipient_with_digest_folds_the_rest_into_one_message(env):
    env.configure(rules=fr001_rule(), sending={"max_per_recipient": 1, "digest": True})
    env.run("poll", "--since", HISTORY)
    (message,) = env.twilio.messages
    sent = [r for r in env.audit() if r["event"] == "notification.sent"]
    assert len(sent) > 1 and {r["provider_id"] for r in sent} == {message["sid"]}
    assert all(r["digest"] == len(sent) for r in sent)
    assert message["body"].count("Order ") == len(sent)


def test_a_cap_without_digest_leaves_the_rest_for_the_next_run(env):
    env.configure(rules=fr001_rule(), sending={"max_per_recipient": 1})
    env.run("poll", "--since", HISTORY)
    assert len(env.twilio.messages) == 1
    env.run("poll", "--since", HISTORY)
    assert len(env.twilio.messages) == 2


def test_max_delay_becomes_twilios_validity_period(env):
    env.configure(rules=fr001_rule(max_delay="2h"))
    env.run("poll", "--since", HISTORY)
    assert env.twilio.messages
    assert all(7100 <= int(m["validity_period"]) <= 7200 for m in env.twilio.messages)


def test_quiet_hours_spanning_midnight():
    window = QuietHours.parse("20:00", "07:30")
    at = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)  # 22:00 in Paris
    assert window.resume_at(at, PARIS) == datetime(2026, 11, 27, 6, 30, tzinfo=UTC)
    assert window.resume_at(at.replace(hour=4), PARIS) == datetime(2026, 11, 26, 6, 30, tzinfo=UTC)
    assert window.resume_at(at.replace(hour=12), PARIS) is None


def test_the_rate_limiter_spaces_requests_and_never_bursts():
    now, slept = [100.0], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(4 / 0.975, clock=lambda: now[0], sleep=sleep)  # paced at 4/s
    starts = []
    for _ in range(9):
        limiter.wait()
        starts.append(now[0])
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(abs(gap - 0.25) < 1e-9 for gap in gaps)
    assert (starts[-1] - starts[0]) == 2.0  # 9 requests at 4/s: 8 gaps


# -- what a refusal means: per message, per account, for now, or maybe sent ----------------


@pytest.mark.parametrize(
    ("status", "code", "creating", "outcome"),
    [
        (401, 20003, True, Outcome.ACCOUNT),  # credentials, or a suspended or closed account
        (401, 20005, True, Outcome.ACCOUNT),  # account not active
        (403, 20008, False, Outcome.ACCOUNT),  # test credentials cannot list
        (400, 21606, True, Outcome.ACCOUNT),  # From is not the account's
        (400, 21212, True, Outcome.ACCOUNT),  # From is not a valid number
        (400, 21210, True, Outcome.ACCOUNT),  # calls: From not verified
        (400, 21701, True, Outcome.ACCOUNT),  # no such Messaging Service
        (400, 21611, True, Outcome.ACCOUNT),  # the sender's queue is full
        (403, None, True, Outcome.ACCOUNT),
        (404, 20404, False, Outcome.ACCOUNT),
        (429, 20429, True, Outcome.LATER),
        (400, 21211, True, Outcome.REFUSED),  # invalid To
        (400, 21610, True, Outcome.REFUSED),  # opted out
        (400, 21614, True, Outcome.REFUSED),
        (400, 21217, True, Outcome.REFUSED),
        (400, 12345, True, Outcome.REFUSED),  # unknown 4xx: this message
        (500, 20500, True, Outcome.MAYBE_SENT),  # a create may have been accepted
        (503, 20503, True, Outcome.MAYBE_SENT),
        (500, 20500, False, Outcome.UNREACHABLE),  # a lookup is asked again
    ],
)
def test_each_twilio_error_means_one_thing(
    status: int, code: int | None, creating: bool, outcome: Outcome
) -> None:
    assert outcome_for(status, code, creating) is outcome
    assert outcome.repeatable == (outcome in (Outcome.LATER, Outcome.UNREACHABLE))


def pending_only(env) -> dict[str, int]:
    path = env.state_dir / "outbox.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT status, COUNT(*) FROM notifications GROUP BY status")
        return dict(rows.fetchall())


# every supplier whose number Twilio accepts (FR009's cannot be read, US005's is invalid)
PERSON = {
    **ONLY_PO_APPROVED[0],
    "when": {"approval": "approved", "closed": "no", "supplier": {"not_in": ["FR009", "US005"]}},
}
CALLS = {
    "name": "call-buyer",
    "source": "purchase_orders",
    "channel": "voice",
    "when": {"approval": "approved", "closed": "no", "supplier": "FR001"},
    "to": ["+33612000002", "+33612000003"],
    "message": "Order {order_number} is approved.",
}


def _credentials(env, broken: bool) -> None:
    env.configure(rules=[PERSON], twilio={"auth_token": "0" * 32} if broken else {})


def _suspended(env, broken: bool) -> None:
    env.configure(rules=[PERSON])
    env.twilio.account_status = "suspended" if broken else "active"


def _not_active(env, broken: bool) -> None:
    env.configure(rules=[PERSON])
    env.twilio.faults.clear()
    if broken:
        env.twilio.faults.add("error:20005", match="POST", times=0)


def _from_elsewhere(env, broken: bool) -> None:
    env.configure(rules=[PERSON], twilio={"from": "+15017122662"} if broken else {})


def _no_such_service(env, broken: bool) -> None:
    service = {"messaging_service_sid": "MG" + "0" * 32} if broken else {}
    env.configure(rules=[PERSON], twilio=service)


def _caller_elsewhere(env, broken: bool) -> None:
    env.configure(rules=[CALLS], twilio={"from": "+15017122662"} if broken else {})


@pytest.mark.parametrize(
    ("breaks", "said"),
    [
        pytest.param(_credentials, "credentials refused", id="credentials"),
        pytest.param(_suspended, "suspended or closed", id="suspended"),
        pytest.param(_not_active, "not active", id="20005"),
        pytest.param(_from_elsewhere, "twilio.from", id="from-not-on-account"),
        pytest.param(_no_such_service, "twilio.messaging_service_sid", id="no-such-service"),
        pytest.param(_caller_elsewhere, "twilio.from", id="caller-not-on-account"),
    ],
)
def test_an_account_level_refusal_stops_the_run_and_every_notification_stays_pending(
    env, breaks, said
) -> None:
    breaks(env, broken=True)
    result = env.run("poll", "--since", HISTORY, expect=69)
    assert said in result.stderr and "stays queued" in result.stderr
    assert "Traceback" not in result.stderr
    waiting = pending_only(env)
    assert set(waiting) == {"pending"} and waiting["pending"] > 1
    resources = env.twilio.calls if breaks is _caller_elsewhere else env.twilio.messages
    assert resources == []
    audit = env.audit()
    assert not [r for r in audit if r["event"] in ("notification.failed", "notification.sent")]

    breaks(env, broken=False)
    env.run("poll")
    env.run("poll")
    assert pending_only(env) == {"sent": waiting["pending"]}
    sent = [r for r in env.audit() if r["event"] == "notification.sent"]
    assert len({r["id"] for r in sent}) == len(sent) == waiting["pending"] == len(resources)


def test_refusals_about_one_recipient_stay_with_that_notification(env) -> None:
    env.configure(rules=ONLY_PO_APPROVED)
    env.twilio.opted_out.add("+447400123456")  # GB001 texted STOP at Twilio: 21610
    result = env.run("poll", "--since", HISTORY, expect=1)  # US005: 21211, invalid To
    failed = [r for r in env.audit() if r["event"] == "notification.failed"]
    assert {r["error"]["code"] for r in failed} == {21211, 21610}
    assert all(r["error"]["permanent"] for r in failed)
    statuses = pending_only(env)
    assert statuses["failed"] == 2 and statuses["sent"] == len(env.twilio.messages) > 0
    assert "pending" not in statuses and "stays queued" not in result.stderr


def test_what_quiet_hours_hold_back_says_until_when_everywhere(env):
    env.configure(rules=fr001_rule(), sending={"quiet_hours": window_around_now()})
    until = (datetime.now(PARIS) + timedelta(hours=1)).strftime("%H:%M")
    said = f"deferred until {until} Europe/Paris"  # FR001's +33 number: Paris time

    dry = env.run("poll", "--dry-run", "--since", HISTORY).stdout
    assert said in dry and "would send" not in dry

    summary = env.run("poll", "--since", HISTORY).stdout
    deferred = [r for r in env.audit() if r.get("reason") == "quiet_hours"]
    assert f"{len(deferred)} deferred by quiet hours" in summary
    assert all(r["deferred_until"] == f"{until} Europe/Paris" for r in deferred)
    assert said in env.run("audit", "--event", "skipped").stdout
    rows = list(csv.DictReader(io.StringIO(env.run("audit", "--format", "csv").stdout)))
    assert {row["deferred_until"] for row in rows if row["reason"] == "quiet_hours"} == {
        f"{until} Europe/Paris"
    }
    explained = env.run("explain", "purchase_orders", deferred[0]["record"]).stdout
    assert f"pending {said}" in explained

    replayed = env.run("replay", "--dry-run").stdout  # waiting, not failed: not replayed
    assert replayed.splitlines() == ["id\trule\trecord\tto\tstatus\tlast error"]
    env.run("replay")
    assert env.twilio.messages == []
    assert len([r for r in env.audit() if r.get("reason") == "quiet_hours"]) == len(deferred)


def test_check_warns_when_max_delay_expires_what_quiet_hours_hold(env):
    env.configure(
        rules=fr001_rule(max_delay="8h"),
        sending={"quiet_hours": {"start": "21:00", "end": "07:00"}},
    )
    warned = env.run("check", "--offline").stderr
    assert "rule po-approved: max_delay 8h is shorter than the quiet hours 21:00-07:00 (10h)" in (
        warned
    )
    env.configure(rules=fr001_rule(max_delay="8h", urgent=True))
    assert "max_delay" not in env.run("check", "--offline").stderr
