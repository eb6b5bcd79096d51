"""`ingest`: the spooled webhooks → delivery statuses, opt-outs, and replies as notes in X3."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from x3twilio.audit import AuditLog, iso_ms, log_line, new_run_id, utc_now
from x3twilio.config import Config
from x3twilio.errors import ExitCode, RemoteError, X3TwilioError
from x3twilio.notes import Note, NoteWriter
from x3twilio.outbox import Outbox
from x3twilio.phonebook import PhoneBook
from x3twilio.phones import to_e164
from x3twilio.sources import parse_stamp
from x3twilio.spool import Inbound, Spool, Spooled, Unusable
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


# A payload that keeps failing on a transient error (X3 answering 5xx for it) is quarantined
# after MAX_ATTEMPTS runs in which X3 answered other items, or MAX_AGE after it was spooled
# (or replayed), whichever comes first; `replay` brings it back.
MAX_ATTEMPTS = 10
MAX_AGE = 3 * 86400.0
DOWN_AFTER = 3  # this many transient failures in a row: X3 is down, the rest waits
_SID = re.compile(r"[A-Za-z]{2}[0-9A-Za-z]{1,62}")
_SHORT = 256  # longest phone number or status text accepted
CHANNELS = {"sms": "sms", "voice": "voice", "recording": "voice", "transcription": "voice"}


@dataclass
class IngestReport:
    run_id: str
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def exit_code(self) -> ExitCode:
        if self.counts["internal"]:
            return ExitCode.INTERNAL
        return ExitCode.PARTIAL if self.counts["failed"] else ExitCode.OK


class Ingester:
    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        replaying: Collection[str] = (),
    ) -> None:
        self.config, self.clock = config, clock
        self.replaying = set(replaying)  # spooled names `replay` put back: audited replay_of
        self.replay_of: str | None = None
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
        self.x3_down = False  # transient failures in a row: the rest waits for the next run
        self.x3_answered = False  # X3 took an item this run: a failing one is failing alone
        self.in_a_row = 0
        self.retry: list[Spooled] = []  # failed transiently: back to new/ at the end, counted

    def pending(self) -> Counter[str]:
        """What is waiting in the spool, by route (for --dry-run)."""
        return Counter(
            item.route if not item.problem else "unusable" for item in self.spool.waiting()
        )

    def run(self) -> IngestReport:
        with run_lock(self.config.state_dir, name="ingest.lock"):
            self.outbox = Outbox(self.config.state_dir)
            self.audit = AuditLog(
                self.config.state_dir,
                self.report.run_id,
                self.clock,
                mirror=log_line if self.config.monitoring.json_logs else None,
            )
            self._audit("run.started", command="ingest")
            # One at a time, read as it comes; items that failed before go after the fresh
            # ones, so they never hold them up.
            for path in self.spool.claim_paths():
                self._process(self.spool.load(path))
            self._put_back()
            self._finish_voicemails()
            self.spool.prune()
            self._audit(
                "run.finished", counts=dict(self.report.counts), exit_code=self.report.exit_code
            )
            self.audit.close()
            self.outbox.close()
        return self.report

    def _audit(self, event: str, **fields: Any) -> dict[str, Any]:
        """One audit record; those about an item `replay` put back say which (`replay_of`)."""
        if self.replay_of and not event.startswith("run."):
            fields.setdefault("replay_of", self.replay_of)
        return self.audit.write(event, **fields)

    def _process(self, item: Spooled) -> None:
        sid = _shown(item.sid)
        self.replay_of = (sid or item.base) if item.base in self.replaying else None
        try:
            self._process_one(item)
        finally:
            self.replay_of = None

    def _process_one(self, item: Spooled) -> None:
        inbound = item.inbound
        if item.problem is not None or inbound is None:
            self._quarantine(item, item.problem or Unusable("unreadable", "cannot be read"))
            return
        try:
            check(inbound)
        except Unusable as unusable:
            self._quarantine(item, unusable)
            return
        if self.x3_down and inbound.route == "sms":
            self._wait(item)  # X3 is down: keep it for the next run
            return
        handler = getattr(self, f"_{inbound.route}")
        try:
            handler(inbound.fields, inbound)
        except RemoteError as exc:
            if exc.status == 401:  # X3 refuses the credentials: no item is at fault
                self._wait(item)
                self._put_back()
                raise
            self._inbound_failed(inbound.fields, CHANNELS.get(inbound.route, "sms"), exc)
            if exc.transient:
                self._failing(item)
            else:
                self.spool.finish(item, "failed")
            return
        except X3TwilioError:
            self._wait(item)  # state or setup trouble: stop the run, keep the item
            self._put_back()
            raise
        except Exception as exc:  # a bug this item triggers: quarantined, never blocking
            self.report.counts["internal"] += 1
            bug = Unusable("internal", f"internal error {type(exc).__name__} (a bug)")
            self._quarantine(item, bug)
            return
        if inbound.route == "sms":
            self.x3_answered, self.in_a_row = True, 0
        self.spool.finish(item, "done")

    def _failing(self, item: Spooled) -> None:
        self.retry.append(item)
        self.in_a_row += 1
        if self.in_a_row >= DOWN_AFTER:
            self.x3_down = True

    def _wait(self, item: Spooled) -> None:
        """Back to new/ untried, as it was; unless it has waited for too long."""
        age = time.time() - item.mtime
        if item.mtime and age >= MAX_AGE:
            self._quarantine(item, _too_old(age))
        else:
            self.spool.finish(item, "new", attempts=item.attempts)

    def _put_back(self) -> None:
        """Return what failed transiently to new/ for the next run: it counts as an attempt
        when X3 answered other items meanwhile; too many, or too old: quarantine."""
        now = time.time()
        retry, self.retry = self.retry, []
        for item in retry:
            attempts = item.attempts + (1 if self.x3_answered else 0)
            if attempts >= MAX_ATTEMPTS:
                self._quarantine(
                    item,
                    Unusable(
                        "retries_exhausted",
                        f"still failing after {attempts} attempts while X3 answered other items",
                    ),
                )
            elif item.mtime and now - item.mtime >= MAX_AGE:
                self._quarantine(item, _too_old(now - item.mtime))
            else:
                self.spool.finish(item, "new", attempts=attempts)

    def _quarantine(self, item: Spooled, problem: Unusable) -> None:
        """Set an item aside for good (replay brings it back) and say why, never echoing
        the payload: only its sid, sender and recipient when they could be read."""
        where = self.spool.finish(item, "quarantine")
        fields = item.known
        self._audit(
            "inbound.failed",
            id=_shown(item.sid) or where.name,
            **{"from": _shown(fields.get("From", ""))},
            to=_shown(fields.get("To", "")),
            channel=_channel(item),
            status="failed",
            reason="quarantined",
            route=item.inbound.route if item.inbound else None,
            spool=f"quarantine/{where.name}",
            error={"code": problem.code, "message": problem.message, "permanent": True},
        )
        self.report.counts["quarantined"] += 1
        self.report.counts["failed"] += 1

    # -- delivery statuses ----------------------------------------------------------------

    def _status(self, params: dict[str, str], inbound: Inbound) -> None:
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
        self._audit(
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

    def _sms(self, params: dict[str, str], inbound: Inbound) -> None:
        sid = params.get("MessageSid", "")
        if self.outbox.inbound_outcome(sid) in ("logged", "unmatched"):
            self.report.counts["duplicate"] += 1
            return
        sender = to_e164(params.get("From", ""), None) or params.get("From", "")
        body = params.get("Body", "")
        self._keywords(sender, body)
        note = self._note(sender, sid, body, inbound.received, "sms")
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

    def _voice(self, params: dict[str, str], inbound: Inbound) -> None:
        self.outbox.voicemail(
            params.get("CallSid", ""), from_number=params.get("From"), to_number=params.get("To")
        )

    def _recording(self, params: dict[str, str], inbound: Inbound) -> None:
        if params.get("RecordingStatus", "completed") == "completed":
            self.outbox.voicemail(
                params.get("CallSid", ""),
                recording_sid=params.get("RecordingSid"),
                recording_url=params.get("RecordingUrl"),
                recorded_at=inbound.received,
            )

    def _transcription(self, params: dict[str, str], inbound: Inbound) -> None:
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
            recorded_at=inbound.received,
        )

    def _finish_voicemails(self) -> None:
        """Log each voicemail once: with its transcription, or without it after the wait."""
        wait = timedelta(seconds=self.config.inbound.transcription_wait)
        for vm in self.outbox.voicemails_waiting():
            try:
                recorded = parse_stamp(str(vm["recorded_at"]))
            except ValueError:  # kept by an older version from a payload it did not check
                recorded = self.clock() - wait
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
                self._inbound_failed({"CallSid": sid, "From": sender}, "voice", exc)
                if exc.transient:
                    self.in_a_row += 1
                    self.x3_down = self.in_a_row >= DOWN_AFTER
                continue
            self.in_a_row = 0
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
            self._audit(
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
        self._audit(
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
        self._audit(
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


def check(inbound: Inbound) -> None:
    """What each route needs, of the kind it needs; Unusable otherwise (never retried)."""
    fields, route = inbound.fields, inbound.route
    need = {
        "sms": ("MessageSid",),
        "status": (),
        "voice": ("CallSid",),
        "recording": ("CallSid",),
        "transcription": ("CallSid",),
    }[route]
    for name in need:
        if not fields.get(name):
            raise Unusable("missing_field", f"a {route} webhook without {name}")
    if route == "status":
        if not (fields.get("MessageSid") or fields.get("CallSid")):
            raise Unusable("missing_field", "a status callback without MessageSid or CallSid")
        if not (fields.get("MessageStatus") or fields.get("CallStatus")):
            raise Unusable("missing_field", "a status callback without a status")
        code = fields.get("ErrorCode", "")
        if code and not (code.isascii() and code.isdigit() and len(code) <= 9):
            raise Unusable("bad_value", "ErrorCode is not a number")
    for name in ("MessageSid", "CallSid", "RecordingSid", "TranscriptionSid"):
        if fields.get(name) and not _SID.fullmatch(fields[name]):
            raise Unusable("bad_value", f"{name} is not a Twilio sid")
    if route == "sms" and not fields.get("From"):
        raise Unusable("missing_field", "an SMS without From")
    for name in ("From", "To", "MessageStatus", "CallStatus", "RecordingStatus"):
        if len(fields.get(name, "")) > _SHORT:
            raise Unusable("bad_value", f"{name} is longer than {_SHORT} characters")


def _too_old(age: float) -> Unusable:
    return Unusable("retries_exhausted", f"still failing {age / 3600:.0f} h after it was spooled")


def _shown(value: str) -> str | None:
    """A sid or phone number fit for the audit trail: short, printable; else left out."""
    if not value or len(value) > _SHORT or not value.isprintable():
        return None
    return value


def _channel(item: Spooled) -> str | None:
    """sms or voice, from the route, else from the sid (SM…/MM… a message, CA… a call)."""
    if item.inbound is not None and item.inbound.route in CHANNELS:
        return CHANNELS[item.inbound.route]
    sid = item.sid
    return "voice" if sid.startswith("CA") else "sms" if sid[:2] in ("SM", "MM") else None
