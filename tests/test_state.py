"""Local state: atomic watermarks, the run lock, the outbox, and the audit trail."""

from __future__ import annotations

import json
import os
import stat

import pytest

from x3twilio.audit import AuditLog, read_records
from x3twilio.errors import LockHeld, StateError
from x3twilio.model import Notification, notification_id
from x3twilio.outbox import Outbox
from x3twilio.state import Watermarks, run_lock


def note(nid: str = "n-1", **kw) -> Notification:
    fields = {
        "id": nid,
        "rule": "r",
        "source": "purchase_orders",
        "record": "PO1",
        "channel": "sms",
        "to": "+33612345678",
        "body": "hello",
    }
    fields.update(kw)
    return Notification(**fields)


def test_watermark_is_written_atomically_and_never_moves_back(tmp_path):
    marks = Watermarks(tmp_path)
    marks.save("purchase_orders", "2026-01-02T10:00:00Z")
    marks.save("purchase_orders", "2026-01-01T10:00:00Z")
    data = json.loads((tmp_path / "watermarks.json").read_text())
    assert data == {"version": 1, "sources": {"purchase_orders": {"wm": "2026-01-02T10:00:00Z"}}}
    assert stat.S_IMODE(os.stat(tmp_path / "watermarks.json").st_mode) == 0o600
    assert not list(tmp_path.glob(".*.tmp"))
    assert Watermarks(tmp_path).get("purchase_orders") == "2026-01-02T10:00:00Z"


def test_corrupt_watermark_file_is_a_clear_error(tmp_path):
    (tmp_path / "watermarks.json").write_text("{not json")
    with pytest.raises(StateError, match=r"watermarks\.json is unreadable"):
        Watermarks(tmp_path)


def test_second_lock_holder_is_refused_and_lock_is_released_after(tmp_path):
    with run_lock(tmp_path), pytest.raises(LockHeld), run_lock(tmp_path):
        pass
    with run_lock(tmp_path):
        pass


def test_notification_id_is_deterministic_and_sensitive_to_every_part():
    parts = ("po-approved", "purchase_orders", "PO1", "sms", "+33612345678")
    assert notification_id(*parts) == notification_id(*parts)
    assert notification_id(*parts) != notification_id(*parts[:-1], "+33612345679")


def test_outbox_stores_a_key_once_and_survives_reopening(tmp_path):
    outbox = Outbox(tmp_path)
    assert [n.id for n in outbox.add([("purchase_orders", "PO1", "s1")], [note()], "t0")] == ["n-1"]
    assert outbox.add([("purchase_orders", "PO1", "s1")], [note()], "t1") == []
    outbox.close()
    reopened = Outbox(tmp_path)
    assert reopened.known(["n-1", "n-2"]) == {"n-1"}
    assert reopened.is_seen("purchase_orders", "PO1", "s1")
    assert [n.id for n in reopened.due("t9")] == ["n-1"]
    assert stat.S_IMODE(os.stat(tmp_path / "outbox.sqlite3").st_mode) == 0o600


def test_outbox_in_flight_marker_survives_until_a_definite_outcome(tmp_path):
    outbox = Outbox(tmp_path)
    outbox.add([], [note()], "t0")
    sending = outbox.mark_sending(outbox.due("t1")[0], "t1")
    outbox.mark_failed(sending, "t2", None, "timeout", retry_at="t3", ambiguous=True)
    (again,) = outbox.due("t3")
    assert again.status == "sending" and again.in_flight_since == "t1"
    outbox.mark_sent(outbox.mark_sending(again, "t4"), "SM1", "t4")
    assert outbox.due("t9") == []
    assert outbox.counts() == {"sent": 1}


def test_readonly_outbox_never_creates_files(tmp_path):
    outbox = Outbox(tmp_path / "none", readonly=True)
    assert outbox.known(["n-1"]) == set()
    assert not (tmp_path / "none").exists()


def test_audit_repairs_a_torn_tail_and_readers_skip_it(tmp_path):
    log = AuditLog(tmp_path, "run-1")
    log.write("run.started")
    log.close()
    (path,) = (tmp_path / "audit").glob("*.jsonl")
    with path.open("ab") as handle:
        handle.write(b'{"v":1,"event":"notification.se')  # a crash mid-write
    assert [r["event"] for r in read_records(tmp_path)] == ["run.started"]
    log = AuditLog(tmp_path, "run-2")
    log.write("run.finished", counts={"sent": 0})
    log.close()
    assert [r["event"] for r in read_records(tmp_path)] == ["run.started", "run.finished"]
    assert path.read_bytes().count(b"\n") == 2


def test_audit_corruption_in_the_middle_is_loud(tmp_path):
    log = AuditLog(tmp_path, "run-1")
    log.write("run.started")
    log.close()
    (path,) = (tmp_path / "audit").glob("*.jsonl")
    path.write_bytes(b"garbage\n" + path.read_bytes())
    with pytest.raises(StateError, match=r"\.jsonl:1: corrupt audit record"):
        list(read_records(tmp_path))


def test_audit_record_has_the_contract_fields(tmp_path):
    record = AuditLog(tmp_path, "run-1").write("run.started", command="poll")
    assert set(record) == {"v", "ts", "event", "run_id", "command"}
    assert record["v"] == 1 and record["ts"].endswith("Z") and len(record["ts"]) == 24
