"""Writing a supplier's or customer's reply into X3 as a timestamped note, exactly once."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from x3twilio.config import NoteTarget
from x3twilio.errors import X3Error
from x3twilio.x3 import X3Client
from x3twilio.x3.partners import PARTNER_CLASSES

NOTES_FIELDS = {"supplier": "BPSREM", "customer": "BPCREM"}


@dataclass(frozen=True)
class Note:
    kind: str  # supplier or customer
    partner: str  # its X3 code
    reference: str  # the document it is about, or ""
    phone: str
    sid: str  # Twilio's MessageSid or CallSid: the idempotency marker
    text: str
    received: str  # UTC, ISO 8601
    channel: str  # sms or voice
    recording_url: str = ""  # a voicemail's recording

    def line(self, limit: int = 10_000) -> str:
        """One timestamped line; a long text is shortened, never the header or the marker."""
        when = self.received[:16].replace("T", " ")
        about = f" re {self.reference}" if self.reference else ""
        kind = "SMS" if self.channel == "sms" else "Voicemail"
        head, tail = f"{when} UTC {kind} from {self.phone}{about}: ", f" [{self.sid}]"
        room = max(limit - len(head) - len(tail), 1)
        text = self.text if len(self.text) <= room else self.text[: room - 1] + "…"
        return head + text + tail


class NoteWriter:
    def __init__(self, target: NoteTarget, client: X3Client) -> None:
        self.target, self.client = target, client

    def write(self, note: Note) -> str:
        """Log `note` in X3 (once, even if asked twice) and say where: CLASS:KEY."""
        if self.target.mode == "create":
            return self.client.retrier.call(self._create, note)
        return self.client.retrier.call(self._append, note)

    def _append(self, note: Note) -> str:
        x3_class, field = PARTNER_CLASSES[note.kind], NOTES_FIELDS[note.kind]
        record = self.client.details(x3_class, note.partner)
        if record is None:
            raise X3Error(f"{x3_class} {note.partner} does not exist; cannot log the reply")
        current = str(record.get(field) or "")
        if f"[{note.sid}]" not in current:  # written before a crash: do not write it twice
            text = _fit(current, note.line(self.target.max_length), self.target.max_length)
            self.client.edit(x3_class, note.partner, {field: text})
        return f"{x3_class}:{note.partner}"

    def _create(self, note: Note) -> str:
        x3_class, marker = self.target.x3_class or "", self.target.marker or ""
        found = self.client.find(x3_class, marker, note.sid)
        if found is not None:  # created before a crash or a lost answer
            return f"{x3_class}:{found.get('$key', note.sid)}"
        values = {**asdict(note), "line": note.line()}
        body = {code: t.render(values.__getitem__) for code, t in self.target.fields.items()}
        created = self.client.create(x3_class, body)
        return f"{x3_class}:{created.get('$key', note.sid)}"


def _fit(current: str, line: str, limit: int) -> str:
    """Append `line`; drop the oldest lines while the field would overflow."""
    lines = [*current.splitlines(), line] if current.strip() else [line]
    while len(lines) > 1 and len("\n".join(lines)) > limit:
        lines.pop(0)
    return "\n".join(lines)[-limit:]
