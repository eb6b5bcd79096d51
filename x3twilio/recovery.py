"""State loss is loud: a lost watermark or outbox stops the poll with the fix, and the
outbox can be rebuilt from the audit trail, which keeps every decision and every send.

A truly first run (no outbox, no audit trail) still starts from now; only a state
directory that has forgotten what its own audit trail remembers is stopped.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from x3twilio.audit import audit_files, read_records
from x3twilio.decoding import parse_stamp, stamp_literal
from x3twilio.errors import StateError
from x3twilio.model import Notification, is_channel
from x3twilio.outbox import Outbox
from x3twilio.sources import Source
from x3twilio.state import Watermarks

_SENT = b'"event":"notification.sent"'  # as audit.py writes it (compact separators)


def _sent_before(state_dir: Path) -> bool:
    """Whether the audit trail records any send: a byte search, newest segment first, so
    a quiet installation's every poll does not parse its whole trail."""
    for path in reversed(audit_files(state_dir)):
        try:
            with (
                path.open("rb") as handle,
                mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
            ):
                if data.find(_SENT) >= 0:
                    return True
        except (OSError, ValueError):  # ValueError: an empty file cannot be mapped
            continue
    return False


def _last_polls(state_dir: Path, this_run: str) -> dict[str, str]:
    """When each source was last polled, by the audit trail (read only when a watermark
    is missing)."""
    last: dict[str, str] = {}
    for rec in read_records(state_dir):
        poll = rec.get("event") == "run.started" and rec.get("command") == "poll"
        if poll and rec.get("run_id") != this_run:
            for name in rec.get("sources") or ():
                last[str(name)] = str(rec.get("ts"))
    return last


def check_state(
    state_dir: Path,
    outbox: Outbox,
    watermarks: Watermarks,
    sources: Iterable[Source],
    lookback: float,
    this_run: str,
) -> None:
    """Stop (StateError, exit 74) when the outbox or a watermark was lost while the audit
    trail or the outbox shows history: polling on would send again, or skip changes."""
    if outbox.is_empty() and _sent_before(state_dir):
        raise StateError(
            f"the outbox {outbox.path} is missing or empty, but the audit trail shows "
            "notifications already sent: polling now could send them again. Run "
            "`x3twilio state rebuild` (it restores them from the audit trail), then poll"
        )
    polls: dict[str, str] | None = None
    for source in sources:
        if watermarks.get(source.name) is not None:
            continue
        last = outbox.remembers(source.name)
        if last is None:
            polls = _last_polls(state_dir, this_run) if polls is None else polls
            last = polls.get(source.name)
        if last is not None:
            since = stamp_literal(parse_stamp(last) - timedelta(seconds=lookback))
            raise StateError(
                f"{watermarks.path} has no watermark for {source.name}, but this state "
                f"directory has polled it (up to {last}): the watermark was lost. Poll with "
                f"`x3twilio poll --since {since}` to read on from there (notification ids "
                "keep anything from being sent twice)"
            )


def rebuild(state_dir: Path, now: str) -> dict[str, int]:
    """Restore the outbox's notifications from the audit trail (idempotent)."""
    found = dict(_notifications(read_records(state_dir)))
    delivery = {
        str(rec["id"]): str(rec["status"])
        for rec in read_records(state_dir)
        if rec.get("event") == "notification.status" and rec.get("id")
    }
    outbox = Outbox(state_dir)
    try:
        restored = outbox.restore(found.values(), delivery, now)
    finally:
        outbox.close()
    statuses: dict[str, int] = {}
    for n in found.values():
        statuses[n.status] = statuses.get(n.status, 0) + 1
    return {"restored": restored, **statuses}


def _notifications(records: Iterable[dict[str, Any]]) -> Iterator[tuple[str, Notification]]:
    """Each notification as its last audit record left it. One that was queued and never
    sent or failed is restored in flight: the next run looks it up at Twilio first."""
    latest: dict[str, Notification] = {}
    for rec in records:
        event, nid = rec.get("event", ""), rec.get("id")
        if not (isinstance(event, str) and event.startswith("notification.") and nid):
            continue
        known = latest.get(nid)
        if event == "notification.queued" or known is None:
            channel = rec.get("channel")
            known = Notification(
                str(nid),
                str(rec.get("rule", "")),
                str(rec.get("source", "")),
                str(rec.get("record", "")),
                channel if is_channel(channel) else "sms",
                str(rec.get("to", "")),
                str(rec.get("body") or (known.body if known else "")),
                status="sending",
                in_flight_since=str(rec.get("ts")),
                created=str(rec.get("ts")),
                partner=str(rec.get("partner") or ""),
                fallback_of=str(rec["fallback_of"]) if rec.get("fallback_of") else None,
            )
        latest[nid] = _apply(known, event, rec)
    yield from latest.items()


def _apply(n: Notification, event: str, rec: dict[str, Any]) -> Notification:
    found = rec.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    if event == "notification.sent":
        return replace(n, status="sent", provider_id=rec.get("provider_id"), in_flight_since=None)
    if event == "notification.failed":
        permanent = bool(error.get("permanent"))
        return replace(
            n,
            status="failed" if permanent else "pending",
            error_code=error.get("code") if isinstance(error.get("code"), int) else None,
            error_message=error.get("message"),
            in_flight_since=None,
        )
    if event == "notification.skipped" and rec.get("reason") not in ("duplicate", "quiet_hours"):
        return replace(n, status="skipped", reason=rec.get("reason"), in_flight_since=None)
    return n
