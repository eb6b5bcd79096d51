"""Ingest's delivery statuses (forward only, they arrive out of order) and opt-outs (STOP,
START): what Twilio tells about what we sent, kept in the outbox and the audit trail."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from x3twilio.audit import iso_ms
from x3twilio.model import Counts, InboundAudit
from x3twilio.outbox import Outbox
from x3twilio.spool_payload import Inbound
from x3twilio.whatsapp import reason_for

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


class Statuses:
    """Delivery statuses onto the notifications they are about, and opt-out keywords."""

    def __init__(
        self,
        outbox: Outbox,
        audit: InboundAudit,
        counts: Counts,
        clock: Callable[[], datetime],
    ) -> None:
        self.outbox, self.audit, self.counts, self.clock = outbox, audit, counts, clock

    def status(self, params: dict[str, str], inbound: Inbound) -> None:
        sid = params.get("MessageSid") or params.get("CallSid") or ""
        status = params.get("MessageStatus") or params.get("CallStatus") or ""
        found = self.outbox.by_provider_id(sid)
        if found is None:
            self.counts["unknown_status"] += 1
            return
        n, current = found
        if current in TERMINAL or RANK.get(status, -1) <= RANK.get(current or "", -1):
            self.counts["stale_status"] += 1  # an older status arriving late
            return
        code = int(params["ErrorCode"]) if params.get("ErrorCode") else None
        # 63016: WhatsApp refused free text outside its 24-hour window, after the create
        message = (reason_for(code) or f"carrier error {code}") if code is not None else None
        self.outbox.set_delivery(n.id, status, iso_ms(self.clock()), code, message)
        error = None
        if code is not None:
            error = {"code": code, "message": message, "permanent": status != "undelivered"}
        self.audit(
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
        self.counts["status"] += 1

    def keywords(self, sender: str, body: str) -> None:
        word = body.strip().strip(".!").upper()
        now = iso_ms(self.clock())
        if word in STOP_WORDS:
            self.outbox.opt_out(sender, word, now)
            self.counts["opted_out"] += 1
        elif word in START_WORDS:
            self.outbox.opt_in(sender)
            self.counts["opted_in"] += 1
