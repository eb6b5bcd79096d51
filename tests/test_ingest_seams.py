"""Ingest, in-process: the spool, outbox and audit trail are real files; X3's notes and
phone book are fakes behind the seams, and the clock is fixed, so waits are exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.test_plan import load
from tests.test_poll import ONLY_PO_APPROVED
from x3twilio.audit import iso_ms, read_records
from x3twilio.config import Config
from x3twilio.errors import X3Error
from x3twilio.ingest import Ingester
from x3twilio.notes import Note, Outcome
from x3twilio.spool import Spool
from x3twilio.spool_payload import dedupe_key, make_payload

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
SUPPLIER = "+33698765432"


class Notebook:
    def __init__(self) -> None:
        self.notes: list[Note] = []
        self.failing: Exception | None = None

    def write(self, note: Note) -> Outcome:
        if self.failing:
            raise self.failing
        self.notes.append(note)
        return Outcome(landed=[f"BPSUPPLIER:{note.partner}"])


class Numbers:
    def find(self, number: str) -> tuple[str, str] | None:
        return ("supplier", "FR001") if number == SUPPLIER else None


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load(tmp_path, ONLY_PO_APPROVED, inbound={"transcription_wait": "10m"})


def spool(config: Config, route: str, at: datetime, again: str = "", **fields: str) -> None:
    """Spool one webhook as the shim does; `again` gets past the spool's own dedupe."""
    body = urlencode(fields).encode()
    url = f"https://x.example.com/twilio/{route}"
    payload, pairs = make_payload(route, iso_ms(at), url, False, body)
    Spool(config.state_dir).write(payload, dedupe_key(route, url, pairs, body, False) + again)


def ingest(config: Config, notebook: Notebook, at: datetime) -> Any:
    return Ingester(
        config,
        clock=lambda: at,
        x3=object(),
        notes=notebook,
        phonebook=Numbers(),  # type: ignore[arg-type]
    ).run()


def test_a_reply_becomes_one_note_however_often_twilio_delivers_it(config):
    notebook = Notebook()
    reply = {"MessageSid": "SM" + "1" * 32, "From": SUPPLIER, "To": "+15017122661"}
    spool(config, "sms", T0, **reply, Body="PO1 arrives Friday")
    report = ingest(config, notebook, T0)
    later = T0 + timedelta(seconds=5)  # one the spool's dedupe missed (pruned since)
    spool(config, "sms", later, again=":pruned", **reply, Body="PO1 arrives Friday")
    again = ingest(config, notebook, T0 + timedelta(minutes=1))
    ((note),) = notebook.notes
    assert (note.partner, note.reference, note.text) == ("FR001", "PO1", "PO1 arrives Friday")
    assert report.counts["logged"] == 1 and again.counts["duplicate"] == 1
    events = [r["event"] for r in read_records(config.state_dir)]
    assert events[0] == "run.started" and events.count("run.finished") == 2


def test_a_voicemail_waits_for_its_transcription_then_is_logged_without_it(config):
    notebook, call = Notebook(), {"CallSid": "CA" + "2" * 32, "From": SUPPLIER, "To": "+1501"}
    spool(config, "voice", T0, **call)
    recording = {"RecordingSid": "RE" + "3" * 32, "RecordingUrl": "https://api.twilio.com/RE3"}
    spool(config, "recording", T0, **call, **recording, RecordingStatus="completed")
    ingest(config, notebook, T0 + timedelta(minutes=9))
    assert notebook.notes == []  # the transcription may still come
    ingest(config, notebook, T0 + timedelta(minutes=10, seconds=1))
    ((note),) = notebook.notes
    assert (note.channel, note.text, note.recording_url) == (
        "voice",
        "(no transcription)",
        "https://api.twilio.com/RE3",
    )
    ingest(config, notebook, T0 + timedelta(minutes=20))
    assert len(notebook.notes) == 1  # logged once


def test_x3_refusing_a_note_for_a_while_keeps_the_reply_for_the_next_run(config):
    notebook = Notebook()
    notebook.failing = X3Error("503 Service Unavailable", status=503, transient=True)
    spool(config, "sms", T0, MessageSid="SM" + "4" * 32, From=SUPPLIER, To="+1501", Body="ok")
    first = ingest(config, notebook, T0)
    assert first.counts["failed"] == 1 and first.exit_code != 0
    notebook.failing = None
    second = ingest(config, notebook, T0 + timedelta(minutes=1))
    assert second.counts["logged"] == 1 and [n.text for n in notebook.notes] == ["ok"]
    finished = [r for r in read_records(config.state_dir) if r["event"] == "run.finished"]
    assert [r["counts"].get("failed", 0) for r in finished] == [1, 0]
