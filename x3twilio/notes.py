"""Writing a supplier's or customer's reply into X3, exactly once on every target it belongs to.

A reply lands on the partner who wrote it and on the document it references (a purchase
order, an invoice), as configured under `inbound.notes`: a line appended to a text field
through `$edit`, or a record created in a user class. A note is never shortened and old
notes are never dropped to make room: what does not fit is reported, and the audit trail
keeps the reply whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Protocol

from x3twilio.config import NoteTarget
from x3twilio.errors import X3Error
from x3twilio.sources import Source
from x3twilio.x3.base import X3Client
from x3twilio.x3.partners import PARTNER_KINDS, PartnerShape


@dataclass(frozen=True)
class Note:
    kind: str  # supplier or customer
    partner: str  # its X3 code
    reference: str  # the key of the document it is about, or ""
    phone: str
    sid: str  # Twilio's MessageSid or CallSid: the idempotency marker
    text: str
    received: str  # UTC, ISO 8601
    channel: str  # sms or voice
    recording_url: str = ""  # a voicemail's recording
    reference_source: str = ""  # the source of `reference`, e.g. purchase_orders

    def line(self) -> str:
        """One timestamped line, ending with the marker that keeps it from being written twice."""
        when = self.received[:16].replace("T", " ")
        about = f" re {self.reference}" if self.reference else ""
        kind = {"sms": "SMS", "whatsapp": "WhatsApp"}.get(self.channel, "Voicemail")
        return f"{when} UTC {kind} from {self.phone}{about}: {self.text} [{self.sid}]"


@dataclass(frozen=True)
class Place:
    """One record a note goes to: class, representation, key (no key for a create)."""

    x3_class: str
    representation: str
    key: str

    def __str__(self) -> str:
        return f"{self.x3_class}:{self.key}"


@dataclass
class Outcome:
    landed: list[str] = field(default_factory=list)  # CLASS:KEY of each record written
    refused: list[str] = field(default_factory=list)  # why a target could not take it


class Notebook(Protocol):
    """Where ingest writes a note: X3 (NoteWriter), or a fake in tests."""

    def write(self, note: Note) -> Outcome: ...


class NoteWriter:
    def __init__(
        self,
        targets: tuple[NoteTarget, ...],
        client: X3Client,
        partners: Mapping[str, PartnerShape],
        sources: Mapping[str, Source],
    ) -> None:
        self.targets, self.client = targets, client
        self.partners, self.sources = partners, sources

    def write(self, note: Note) -> Outcome:
        """Log `note` on each target it belongs to; a repeat writes nothing twice."""
        outcome = Outcome()
        for target in self.targets:
            place = self._place(target, note)
            if place is None:
                continue
            try:
                if target.mode == "create":
                    outcome.landed.append(self.client.retrier.call(self._create, target, note))
                else:
                    outcome.landed.append(
                        self.client.retrier.call(self._append, target, place, note)
                    )
            except NoRoom as exc:  # this note does not fit this target: say why
                outcome.refused.append(str(exc))
            # An X3FieldError (a target this X3 cannot take at all) is setup trouble: it
            # stops ingest with 78 and the reply stays spooled until the config is fixed.
        return outcome

    def _place(self, target: NoteTarget, note: Note) -> Place | None:
        """The record `target` puts this note on, or None when it is not about one."""
        if target.on in (note.kind, "partner"):
            shape = self.partners[note.kind]
            x3_class, representation, key = shape.x3_class, shape.representation, note.partner
        elif target.on == note.reference_source and note.reference:
            source = self.sources[target.on]
            x3_class, representation = source.x3_class, source.representation
            key = note.reference
        else:
            return None
        if target.x3_class and target.x3_class != x3_class:
            x3_class = representation = target.x3_class
        return Place(x3_class, target.representation or representation, key)

    def _append(self, target: NoteTarget, place: Place, note: Note) -> str:
        field_, limit = target.text_field or "", target.max_length
        record = self.client.details(place.x3_class, place.key, place.representation)
        if record is None:
            if target.on in PARTNER_KINDS or target.on == "partner":
                raise X3Error(f"{place.x3_class} {place.key} does not exist; cannot log the reply")
            raise NoRoom(f"{place.x3_class} {place.key} (referenced) does not exist in X3")
        current = str(record.get(field_) or "")
        if f"[{note.sid}]" in current:  # written before a crash: do not write it twice
            return str(place)
        line = note.line()
        text = f"{current}\n{line}" if current.strip() else line
        if len(text) > limit:
            raise NoRoom(
                f"{place.x3_class} {place.key} {field_}: {len(current)} of {limit} characters "
                f"used, the reply needs {len(text) - len(current)}; it is not written there "
                "(the audit trail keeps it whole)"
            )
        self.client.edit(place.x3_class, place.key, {field_: text}, place.representation)
        return str(place)

    def _create(self, target: NoteTarget, note: Note) -> str:
        x3_class, marker = target.x3_class or "", target.marker or ""
        representation = target.representation or x3_class
        found = self.client.find(x3_class, marker, note.sid, representation)
        if found is not None:  # created before a crash or a lost answer
            return f"{x3_class}:{found.get('$key', note.sid)}"
        values = {**asdict(note), "line": note.line()}
        body = {code: t.render(values.__getitem__) for code, t in target.fields.items()}
        created = self.client.create(x3_class, body, representation)
        return f"{x3_class}:{created.get('$key', note.sid)}"


class NoRoom(Exception):
    """A target cannot take this note (full, or the referenced record is missing)."""
