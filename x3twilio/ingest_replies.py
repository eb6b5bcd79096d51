"""Ingest's replies and voicemails: each logged as a note on the partner in X3 who sent it,
about the document it names (or the last one we sent to that number)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from x3twilio.audit import iso_ms
from x3twilio.config import Config
from x3twilio.decoding import parse_stamp
from x3twilio.ingest_statuses import Statuses
from x3twilio.model import Counts, InboundAudit, Voicemail
from x3twilio.notes import Note, Notebook
from x3twilio.outbox import Outbox
from x3twilio.phonebook import Numbers
from x3twilio.phones import to_e164
from x3twilio.spool_payload import Inbound
from x3twilio.whatsapp import is_whatsapp, number_of


class Replies:
    """SMS replies and the voicemail callbacks (call, recording, transcription) as notes."""

    def __init__(
        self,
        config: Config,
        outbox: Outbox,
        notes: Notebook,
        phonebook: Numbers,
        statuses: Statuses,
        audit: InboundAudit,
        counts: Counts,
        clock: Callable[[], datetime],
    ) -> None:
        self.config, self.outbox, self.notes, self.phonebook = config, outbox, notes, phonebook
        self.statuses, self.audit, self.counts, self.clock = statuses, audit, counts, clock
        self.patterns = {
            source: re.compile(pattern, re.IGNORECASE)
            for source, pattern in config.inbound.references.items()
        }

    def sms(self, params: dict[str, str], inbound: Inbound) -> None:
        sid = params.get("MessageSid", "")
        if self.outbox.inbound_outcome(sid) in ("logged", "unmatched"):
            self.counts["duplicate"] += 1
            return
        given = params.get("From", "")
        channel = "whatsapp" if is_whatsapp(given) else "sms"
        sender = to_e164(number_of(given), None) or given
        body = params.get("Body", "")
        if channel == "whatsapp":
            # free text to them is allowed for 24 h; STOP on WhatsApp is not Twilio's SMS
            # opt-out, so it never opts the number out of SMS
            self.outbox.wrote_on_whatsapp(sender, inbound.received)
        else:
            self.statuses.keywords(sender, body)
        note = self._note(sender, sid, body, inbound.received, channel)
        self._log(note, sid, sender, params.get("To", ""), channel, body=body)

    def voice(self, params: dict[str, str], inbound: Inbound) -> None:
        self.outbox.voicemail(
            Voicemail(params.get("CallSid", ""), params.get("From"), params.get("To"))
        )

    def recording(self, params: dict[str, str], inbound: Inbound) -> None:
        if params.get("RecordingStatus", "completed") == "completed":
            self.outbox.voicemail(
                Voicemail(
                    params.get("CallSid", ""),
                    recording_sid=params.get("RecordingSid"),
                    recording_url=params.get("RecordingUrl"),
                    recorded_at=inbound.received,
                )
            )

    def transcription(self, params: dict[str, str], inbound: Inbound) -> None:
        text = (
            params.get("TranscriptionText")
            if params.get("TranscriptionStatus") == "completed"
            else None
        )
        self.outbox.voicemail(
            Voicemail(
                params.get("CallSid", ""),
                params.get("From"),
                params.get("To"),
                recording_url=params.get("RecordingUrl"),
                recorded_at=inbound.received,
                transcription=text,
                transcribed=1,
            )
        )

    def voicemails_due(self) -> Iterator[Voicemail]:
        """Voicemails to log now: transcribed, or no longer worth waiting for."""
        wait = timedelta(seconds=self.config.inbound.transcription_wait)
        for vm in self.outbox.voicemails_waiting():
            try:
                recorded = parse_stamp(vm.recorded_at or "")
            except ValueError:  # kept by an older version from a payload it did not check
                recorded = self.clock() - wait
            if not vm.transcribed and self.clock() - recorded < wait:
                continue
            yield vm

    def log_voicemail(self, vm: Voicemail) -> None:
        """One voicemail as a note, with its transcription when there is one."""
        sender, said = vm.from_number or "", vm.transcription or ""
        text = said or "(no transcription)"
        note = self._note(sender, vm.call_sid, said, str(vm.recorded_at), "voice", text)
        if note is not None:
            note = replace(note, recording_url=vm.recording_url or "")
        self._log(
            note,
            vm.call_sid,
            sender,
            vm.to_number or "",
            "voice",
            recording_url=vm.recording_url,
            transcription=vm.transcription,
        )

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
            self.audit(
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
            self.counts["unmatched"] += 1
            return
        outcome = self.notes.write(note)
        partner = f"{self.config.x3.partners[note.kind].x3_class}:{note.partner}"
        if outcome.refused:  # permanent: kept whole here, for someone to place by hand
            self.counts["failed"] += 1
        self.audit(
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
        self.counts["logged" if outcome.landed else "not_logged"] += 1
