"""Sending policy: quiet hours, urgency, per-recipient caps and digests, the rate limiter."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.test_poll import HISTORY, ONLY_PO_APPROVED
from x3twilio.quiethours import QuietHours
from x3twilio.sending import RateLimiter

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
