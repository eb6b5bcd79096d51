"""`ingest`: the spooled webhooks → delivery statuses, opt-outs, and replies as notes in X3."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from x3twilio.audit import AuditLog, iso_ms, log_line, new_run_id, utc_now
from x3twilio.config import Config
from x3twilio.errors import ExitCode, RemoteError
from x3twilio.notes import Note, NoteWriter
from x3twilio.outbox import Outbox
from x3twilio.phonebook import PhoneBook
from x3twilio.phones import to_e164
from x3twilio.sources import parse_stamp
from x3twilio.spool import Spool, Spooled
from x3twilio.state import run_lock
from x3twilio.transport import Retrier, make_session
from x3twilio.x3 import make_client

# Twilio's default opt-out keywords (TWILIO.md §11): single-word messages only.
STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
START_WORDS = {"START", "UNSTOP", "YES"}
# Delivery statuses only move forward; callbacks arrive out of order (TWILIO.md §7.5).
# Calls (voice notifications) report on the same route: queued → ringing → in-progress → …
RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 0,
    "initiated": 0,
    "sending": 1,
    "ringing": 1,
    "sent": 2,
    "in-progress": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
    "canceled": 3,
    "completed": 3,
    "busy": 3,
    "no-answer": 3,
    "read": 4,
}
TERMINAL = {
    "delivered",
    "undelivered",
    "failed",
    "canceled",
    "read",
    "completed",
    "busy",
    "no-answer",
}


@dataclass
class IngestReport:
    run_id: str
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.PARTIAL if self.counts["failed"] else ExitCode.OK


class Ingester:
    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config, self.clock = config, clock
        self.x3 = make_client(config.x3, make_session(), Retrier(config.retry, sleep=sleep))
        self.notes = NoteWriter(config.inbound.notes, self.x3, config.x3.partners, config.sources)
        self.phonebook = PhoneBook(
            config.state_dir,
            self.x3,
            config.x3.partners,
            config.region,
            config.inbound.phone_index_ttl,
        )
        self.spool = Spool(config.state_dir)
        self.patterns = {
            source: re.compile(pattern, re.IGNORECASE)
            for source, pattern in config.inbound.references.items()
        }
        self.report = IngestReport(new_run_id(clock()))
        self.x3_down = False

    def pending(self) -> Counter[str]:
        """What is waiting in the spool, by route (for --dry-run)."""
        return Counter(item.payload.get("route", "?") for item in self.spool.waiting())

    def run(self) -> IngestReport:
        with run_lock(self.config.state_dir, name="ingest.lock"):
            self.outbox = Outbox(self.config.state_dir)
            self.audit = AuditLog(
                self.config.state_dir,
                self.report.run_id,
                self.clock,
                mirror=log_line if self.config.monitoring.json_logs else None,
            )
            self.audit.write("run.started", command="ingest")
            for item in self.spool.orphans() + self.spool.claim():
                self._process(item)
            self._finish_voicemails()
            self.audit.write(
                "run.finished", counts=dict(self.report.counts), exit_code=self.report.exit_code
            )
            self.audit.close()
            self.outbox.close()
        return self.report

    def _process(self, item: Spooled) -> None:
        route = item.payload.get("route")
        params = dict(item.payload.get("params") or [])
        if self.x3_down and route == "sms":
            self.spool.finish(item, "new")  # X3 is down: keep it for the next run
            return
        try:
            handler = getattr(self, f"_{route}", None)
            if handler is not None:
                handler(params, item.payload)
            self.spool.finish(item, "done")
        except RemoteError as exc:
            self.x3_down = self.x3_down or exc.transient
            self._inbound_failed(params, "sms", exc)
            self.spool.finish(item, "new" if exc.transient else "failed")

    # -- delivery statuses ----------------------------------------------------------------

    def _status(self, params: dict[str, str], payload: dict[str, Any]) -> None:
        sid = params.get("MessageSid") or params.get("CallSid") or ""
        status = params.get("MessageStatus") or params.get("CallStatus") or ""
        found = self.outbox.by_provider_id(sid)
        if found is None:
            self.report.counts["unknown_status"] += 1
            return
        n, current = found
        if current in TERMINAL or RANK.get(status, -1) <= RANK.get(current or "", -1):
            self.report.counts["stale_status"] += 1  # an older status arriving late
            return
        self.outbox.set_delivery(n.id, status, iso_ms(self.clock()))
        error = None
        if params.get("ErrorCode"):
            error = {
                "code": int(params["ErrorCode"]),
                "message": f"carrier error {params['ErrorCode']}",
                "permanent": status != "undelivered",
            }
        self.audit.write(
            "notification.status",
            id=n.id,
            rule=n.rule,
            source=n.source,
            record=n.record,
            channel=n.channel,
            to=n.to,
            status=status,
            provider_id=sid,
            error=error,
        )
        self.report.counts["status"] += 1

    # -- replies --------------------------------------------------------------------------

    def _sms(self, params: dict[str, str], payload: dict[str, Any]) -> None:
        sid = params.get("MessageSid", "")
        if self.outbox.inbound_outcome(sid) in ("logged", "unmatched"):
            self.report.counts["duplicate"] += 1
            return
        sender = to_e164(params.get("From", ""), None) or params.get("From", "")
        body = params.get("Body", "")
        self._keywords(sender, body)
        note = self._note(sender, sid, body, payload["received"], "sms")
        self._log(note, sid, sender, params.get("To", ""), "sms", body=body)

    def _keywords(self, sender: str, body: str) -> None:
        word = body.strip().strip(".!").upper()
        now = iso_ms(self.clock())
        if word in STOP_WORDS:
            self.outbox.opt_out(sender, word, now)
            self.report.counts["opted_out"] += 1
        elif word in START_WORDS:
            self.outbox.opt_in(sender)
            self.report.counts["opted_in"] += 1

    def _voice(self, params: dict[str, str], payload: dict[str, Any]) -> None:
        self.outbox.voicemail(
            params.get("CallSid", ""), from_number=params.get("From"), to_number=params.get("To")
        )

    def _recording(self, params: dict[str, str], payload: dict[str, Any]) -> None:
        if params.get("RecordingStatus", "completed") == "completed":
            self.outbox.voicemail(
                params.get("CallSid", ""),
                recording_sid=params.get("RecordingSid"),
                recording_url=params.get("RecordingUrl"),
                recorded_at=payload["received"],
            )

    def _transcription(self, params: dict[str, str], payload: dict[str, Any]) -> None:
        text = (
            params.get("TranscriptionText")
            if params.get("TranscriptionStatus") == "completed"
            else None
        )
        self.outbox.voicemail(
            params.get("CallSid", ""),
            transcription=text,
            transcribed=1,
            from_number=params.get("From"),
            to_number=params.get("To"),
            recording_url=params.get("RecordingUrl"),
            recorded_at=payload["received"],
        )

    def _finish_voicemails(self) -> None:
        """Log each voicemail once: with its transcription, or without it after the wait."""
        wait = timedelta(seconds=self.config.inbound.transcription_wait)
        for vm in self.outbox.voicemails_waiting():
            recorded = parse_stamp(str(vm["recorded_at"]))
            if not vm["transcribed"] and self.clock() - recorded < wait:
                continue
            if self.x3_down:
                return
            sid, sender = str(vm["call_sid"]), str(vm["from_number"] or "")
            text = str(vm["transcription"] or "(no transcription)")
            try:
                note = self._note(
                    sender,
                    sid,
                    str(vm["transcription"] or ""),
                    str(vm["recorded_at"]),
                    "voice",
                    text,
                )
                if note is not None:
                    note = replace(note, recording_url=str(vm["recording_url"] or ""))
                self._log(
                    note,
                    sid,
                    sender,
                    str(vm["to_number"] or ""),
                    "voice",
                    recording_url=vm["recording_url"],
                    transcription=vm["transcription"],
                )
            except RemoteError as exc:
                self.x3_down = exc.transient
                self._inbound_failed({"CallSid": sid, "From": sender}, "voice", exc)
                continue
            self.outbox.voicemail(sid, logged=1)

    def _note(
        self, sender: str, sid: str, said: str, received: str, channel: str, text: str | None = None
    ) -> Note | None:
        partner = self.phonebook.find(sender) or self.config.inbound.catch_all
        if partner is None:
            return None
        source, reference = self._reference(said, sender)
        return Note(
            partner[0],
            partner[1],
            reference,
            sender,
            sid,
            text if text is not None else said,
            received,
            channel,
            reference_source=source,
        )

    def _reference(self, text: str, sender: str) -> tuple[str, str]:
        """(source, key) of the document the reply is about: named in the text, else the
        last one we sent to that number; ("", "") when neither tells."""
        for source, pattern in self.patterns.items():
            match = pattern.search(text)
            if match:
                return source, match.group(0).upper()
        last = self.outbox.last_sent_to(sender)
        return (last.source, last.record) if last else ("", "")

    def _log(
        self, note: Note | None, sid: str, sender: str, to: str, channel: str, **details: Any
    ) -> None:
        if note is None:
            self.audit.write(
                "inbound.received",
                id=sid,
                **{"from": sender},
                to=to,
                channel=channel,
                status="unmatched",
                matched=None,
                **details,
            )
            self.outbox.record_inbound(sid, "unmatched", iso_ms(self.clock()))
            self.report.counts["unmatched"] += 1
            return
        outcome = self.notes.write(note)
        partner = f"{self.config.x3.partners[note.kind].x3_class}:{note.partner}"
        if outcome.refused:  # permanent: kept whole here, for someone to place by hand
            self.report.counts["failed"] += 1
        self.audit.write(
            "inbound.logged" if outcome.landed else "inbound.failed",
            id=sid,
            **{"from": sender},
            to=to,
            channel=channel,
            status="logged" if outcome.landed else "not_logged",
            matched=partner,
            logged_on=outcome.landed,
            not_logged=outcome.refused or None,
            error={"message": "; ".join(outcome.refused), "permanent": True}
            if outcome.refused
            else None,
            reference=note.reference or None,
            reference_source=note.reference_source or None,
            **details,
        )
        self.outbox.record_inbound(sid, "logged", iso_ms(self.clock()))
        self.report.counts["logged" if outcome.landed else "not_logged"] += 1

    def _inbound_failed(self, params: dict[str, str], channel: str, exc: RemoteError) -> None:
        sid = params.get("MessageSid") or params.get("CallSid") or ""
        self.audit.write(
            "inbound.failed",
            id=sid,
            **{"from": params.get("From")},
            to=params.get("To"),
            channel=channel,
            status="failed",
            body=params.get("Body"),
            error={
                "code": exc.code or exc.status,
                "message": str(exc),
                "permanent": not exc.transient,
            },
        )
        self.report.counts["failed"] += 1
