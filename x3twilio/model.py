"""The things the tool decides and keeps, as types: notifications, voicemails, and the names
of their statuses, channels, audit events and run counts (a typo in one is a type error)."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias, TypeGuard, get_args

# pending: to send · sending: a request may be in flight (reconcile before resending)
# sent: the provider accepted it · failed: permanent, for a person · skipped: never to send
Status = Literal["pending", "sending", "sent", "failed", "skipped"]
Channel = Literal["sms", "email", "voice", "whatsapp"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)
# Every event the audit trail holds (INTERFACE.md "Audit records").
Event = Literal[
    "run.started",
    "run.finished",
    "record.rejected",
    "notification.queued",
    "notification.sent",
    "notification.failed",
    "notification.skipped",
    "notification.status",
    "inbound.received",
    "inbound.logged",
    "inbound.failed",
]
# What a run counts, as its summary line and run.finished report them.
Count = Literal[
    "records",
    "rejected",
    "decided",
    "queued",
    "skipped",
    "duplicate",
    "deferred",
    "sent",
    "failed",
    "unconfirmed",
    "internal",
    "status",
    "stale_status",
    "unknown_status",
    "opted_in",
    "opted_out",
    "unmatched",
    "quarantined",
    "logged",
    "not_logged",
]
Counts: TypeAlias = "Counter[Count]"


def is_channel(text: object) -> TypeGuard[Channel]:
    return text in CHANNELS


def notification_id(*parts: str) -> str:
    """A deterministic idempotency key: the same decision always gets the same id."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"n-{digest[:24]}"


@dataclass(frozen=True)
class Notification:
    id: str
    rule: str
    source: str
    record: str
    channel: Channel
    to: str
    body: str
    status: Status = "pending"
    reason: str | None = None  # why it was skipped
    attempts: int = 0
    provider_id: str | None = None
    in_flight_since: str | None = None  # an attempt may have reached the provider
    created: str = ""
    error_code: int | None = None
    error_message: str | None = None
    subject: str | None = None  # email only
    not_before: str = ""  # quiet hours: not sent before this time (UTC, ISO)
    partner: str = ""  # CLASS:CODE of the supplier or customer it was sent to, if any
    # WhatsApp only: the rule's approved template, rendered (JSON {"sid": …, "variables": {…}}),
    # sent instead of `body` when the recipient has not written within 24 hours
    content: str | None = None
    fallback_of: str | None = None  # the id of the notification this one stands in for


@dataclass(frozen=True)
class Voicemail:
    """What the call, recording and transcription callbacks told about one voicemail."""

    call_sid: str
    from_number: str | None = None
    to_number: str | None = None
    recording_sid: str | None = None
    recording_url: str | None = None
    recorded_at: str | None = None
    transcription: str | None = None
    transcribed: int = 0
    logged: int = 0


class NotificationAudit(Protocol):
    """Writes one notification's audit record (and tells the run's progress)."""

    def __call__(self, event: Event, n: Notification, **extra: Any) -> None: ...


class InboundAudit(Protocol):
    """Writes one audit record of ingest; returns it as written."""

    def __call__(self, event: Event, **fields: Any) -> dict[str, Any]: ...
