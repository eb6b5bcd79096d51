"""The outbox in-process: each transition of a notification's row, read back through the store's
own queries, over a real SQLite file in a temporary folder (no CLI, no HTTP)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from x3twilio.model import Notification, Voicemail, notification_id
from x3twilio.outbox import FILENAME, Outbox

T0, T1, T2 = "2026-12-02T10:00:00.000Z", "2026-12-02T10:01:00.000Z", "2026-12-02T10:02:00.000Z"


def note(record: str = "PO1", to: str = "+33698765432") -> Notification:
    nid = notification_id("po-approved", "purchase_orders", record, "sms", to)
    return Notification(
        nid, "po-approved", "purchase_orders", record, "sms", to, "PO approved", partner="S:FR001"
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path)


def test_a_decision_is_stored_once_and_is_due(outbox: Outbox) -> None:
    n = note()
    assert outbox.add([("purchase_orders", "PO1", T0)], [n], T0) == [
        Notification(**{**n.__dict__, "created": T0})
    ]
    assert outbox.add([], [n], T1) == []  # the same decision again: nothing new
    assert outbox.is_seen("purchase_orders", "PO1", T0)
    assert outbox.known([n.id, "n-other"]) == {n.id}
    assert [d.id for d in outbox.due(T1)] == [n.id]


def test_sending_then_sent_clears_the_flight_and_the_error(outbox: Outbox) -> None:
    n = outbox.add([], [note()], T0)[0]
    flying = outbox.mark_sending(n, T1)
    outbox.mark_failed(flying, T1, 20500, "Twilio 500", retry_at=T2, ambiguous=True)
    (again,) = outbox.due(T2)
    assert (again.status, again.attempts, again.in_flight_since) == ("sending", 1, T1)
    assert (again.error_code, again.error_message) == (20500, "Twilio 500")
    outbox.mark_sent(again, "SM123", T2)
    found = outbox.by_provider_id("SM123")
    assert found is not None
    sent, delivery = found
    assert (sent.status, sent.in_flight_since, sent.error_code, delivery) == (
        "sent",
        None,
        None,
        None,
    )
    outbox.set_delivery(sent.id, "delivered", T2)
    assert outbox.for_record("purchase_orders", "PO1")[0][1] == "delivered"
    assert outbox.last_sent_to(n.to) == sent
    assert outbox.due(T2) == []


def test_a_permanent_failure_is_replayable_only_when_asked(outbox: Outbox) -> None:
    n = outbox.add([], [note()], T0)[0]
    outbox.mark_failed(n, T1, 21211, "invalid To", retry_at=None)
    assert outbox.replayable(include_permanent=False) == []
    (failed,) = outbox.replayable(include_permanent=True)
    assert (failed.status, failed.not_before, failed.in_flight_since) == ("failed", "", None)
    outbox.requeue(failed, T2)
    assert [(d.status, d.reason) for d in outbox.due(T2)] == [("pending", None)]


def test_deferred_by_quiet_hours_waits_and_is_not_replayed(outbox: Outbox) -> None:
    n = outbox.add([], [note()], T0)[0]
    outbox.defer(n, T2, T0, reason="quiet_hours")
    assert outbox.due(T1) == []
    assert [d.not_before for d in outbox.due(T2)] == [T2]
    assert outbox.replayable(include_permanent=True) == []
    outbox.defer(n, T1, T0)  # a settle delay keeps the reason it had
    assert [d.reason for d in outbox.due(T1)] == ["quiet_hours"]


def test_skipped_leaves_the_queue(outbox: Outbox) -> None:
    n = outbox.add([], [note()], T0)[0]
    outbox.mark_skipped(outbox.mark_sending(n, T0), "replaced", T1)
    (row,) = outbox.for_record("purchase_orders", "PO1")
    assert (row[0].status, row[0].reason, row[0].in_flight_since) == ("skipped", "replaced", None)
    assert outbox.due(T2) == []


def test_opt_outs_inbound_outcomes_and_voicemails(outbox: Outbox) -> None:
    outbox.opt_out("+33698765432", "STOP", T0)
    assert outbox.opted_out("+33698765432")
    outbox.opt_in("+33698765432")
    assert not outbox.opted_out("+33698765432")
    outbox.record_inbound("SM1", "logged", T0)
    assert outbox.inbound_outcome("SM1") == "logged"
    assert outbox.inbound_outcome("SM2") is None
    outbox.voicemail(Voicemail("CA1", from_number="+33698765432", recording_url=""))
    assert outbox.voicemails_waiting() == []  # no recording yet
    told = Voicemail("CA1", recording_url="https://api.twilio.com/RE1", transcription="")
    merged = outbox.voicemail(told)  # what this callback leaves empty keeps what was known
    assert (merged.from_number, merged.recording_url) == (
        "+33698765432",
        "https://api.twilio.com/RE1",
    )
    assert outbox.voicemails_waiting() == [merged]
    logged = outbox.voicemail(Voicemail("CA1", logged=1))
    assert (logged.logged, logged.from_number, logged.transcribed) == (1, "+33698765432", 0)
    assert outbox.voicemails_waiting() == []


def test_an_outbox_from_before_the_partner_column_opens_and_migrates(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.add([], [note()], T0)
    outbox.close()
    db = sqlite3.connect(tmp_path / FILENAME)
    db.execute("ALTER TABLE notifications DROP COLUMN partner")
    db.commit()
    db.close()
    readonly = Outbox(tmp_path, readonly=True)  # a dry run reads a copy, writing nothing
    assert [(d.partner, d.fallback_of) for d in readonly.due(T1)] == [("", None)]
    readonly.close()
    columns = {
        row[1]
        for row in sqlite3.connect(tmp_path / FILENAME).execute("PRAGMA table_info(notifications)")
    }
    assert "partner" not in columns
    migrated = Outbox(tmp_path)
    assert [d.partner for d in migrated.due(T1)] == [""]
    migrated.add([], [note("PO2")], T1)
    assert {d.partner for d in migrated.due(T2)} == {"", "S:FR001"}


def test_a_rebuilt_fallback_keeps_its_link_to_the_first_notification() -> None:
    from x3twilio.recovery import _notifications

    queued = {"event": "notification.queued", "ts": T0, "rule": "po", "source": "s"}
    records = [
        {**queued, "id": "n-1", "record": "PO1", "channel": "sms", "to": "+33698765432"},
        {**queued, "id": "n-2", "record": "PO1", "channel": "email", "to": "a@example.com",
         "fallback_of": "n-1"},
    ]  # fmt: skip
    rebuilt = dict(_notifications(records))
    assert (rebuilt["n-1"].fallback_of, rebuilt["n-2"].fallback_of) == (None, "n-1")
    assert rebuilt["n-2"].channel == "email"
