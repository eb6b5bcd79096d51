"""`ingest`: the spooled webhooks → delivery statuses, opt-outs, and replies as notes in X3.

This module runs the spool: one item at a time, routed to `ingest_statuses` or
`ingest_replies`; what fails is put back, retried, or quarantined, and audited.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from x3twilio.audit import new_run_id, utc_now
from x3twilio.config import Config
from x3twilio.errors import ExitCode, RemoteError, X3TwilioError
from x3twilio.ingest_replies import Replies
from x3twilio.ingest_statuses import Statuses
from x3twilio.model import Counts, Event, Voicemail
from x3twilio.notes import Notebook, NoteWriter
from x3twilio.phonebook import Numbers, PhoneBook
from x3twilio.run import opened
from x3twilio.spool import Spool, Spooled
from x3twilio.spool_payload import Inbound, Unusable
from x3twilio.transport import Retrier, make_session
from x3twilio.whatsapp import is_whatsapp
from x3twilio.x3 import make_client
from x3twilio.x3.base import X3Client

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
    counts: Counts = field(default_factory=Counter)

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
        x3: X3Client | None = None,
        notes: Notebook | None = None,
        phonebook: Numbers | None = None,
    ) -> None:
        """`x3`, `notes` and `phonebook` default to the real ones; tests pass fakes."""
        self.config, self.clock = config, clock
        self.replaying = set(replaying)  # spooled names `replay` put back: audited replay_of
        self.replay_of: str | None = None
        self.x3 = x3 or make_client(config.x3, make_session(), Retrier(config.retry, sleep=sleep))
        self.notes: Notebook = notes or NoteWriter(
            config.inbound.notes, self.x3, config.x3.partners, config.sources
        )
        self.phonebook: Numbers = phonebook or PhoneBook(
            config.state_dir,
            self.x3,
            config.x3.partners,
            config.region,
            config.inbound.phone_index_ttl,
        )
        self.spool = Spool(config.state_dir)
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
        report = self.report
        with opened(self.config, report, self.clock, lock="ingest.lock", command="ingest") as run:
            self.outbox, self.audit = run.outbox, run.audit
            counts = report.counts
            self.statuses = Statuses(self.outbox, self._audit, counts, self.clock)
            self.replies = Replies(
                self.config,
                self.outbox,
                self.notes,
                self.phonebook,
                self.statuses,
                self._audit,
                counts,
                self.clock,
            )
            # One at a time, read as it comes; items that failed before go after the fresh
            # ones, so they never hold them up.
            for path in self.spool.claim_paths():
                self._process(self.spool.load(path))
            self._put_back()
            self._finish_voicemails()
            self.spool.prune()
        return report

    def _audit(self, event: Event, **fields: Any) -> dict[str, Any]:
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
        handler = self._handler(inbound.route)
        try:
            handler(inbound.fields, inbound)
        except RemoteError as exc:
            if exc.status == 401:  # X3 refuses the credentials: no item is at fault
                self._wait(item)
                self._put_back()
                raise
            self._inbound_failed(inbound.fields, _channel_of(inbound), exc)
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

    def _handler(self, route: str) -> Callable[[dict[str, str], Inbound], None]:
        handlers: dict[str, Callable[[dict[str, str], Inbound], None]] = {
            "status": self.statuses.status,
            "sms": self.replies.sms,
            "voice": self.replies.voice,
            "recording": self.replies.recording,
            "transcription": self.replies.transcription,
        }
        return handlers[route]

    def _finish_voicemails(self) -> None:
        """Log each voicemail once: with its transcription, or without it after the wait."""
        for vm in self.replies.voicemails_due():
            if self.x3_down:
                return
            try:
                self.replies.log_voicemail(vm)
            except RemoteError as exc:
                self._inbound_failed(
                    {"CallSid": vm.call_sid, "From": vm.from_number or ""}, "voice", exc
                )
                if exc.transient:
                    self.in_a_row += 1
                    self.x3_down = self.in_a_row >= DOWN_AFTER
                continue
            self.in_a_row = 0
            self.outbox.voicemail(Voicemail(vm.call_sid, logged=1))

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
        return _channel_of(item.inbound)
    sid = item.sid
    return "voice" if sid.startswith("CA") else "sms" if sid[:2] in ("SM", "MM") else None


def _channel_of(inbound: Inbound) -> str:
    """What an inbound item came by: a WhatsApp reply uses the SMS route, from whatsapp:+…"""
    if inbound.route == "sms" and is_whatsapp(inbound.fields.get("From", "")):
        return "whatsapp"
    return CHANNELS.get(inbound.route, "sms")
