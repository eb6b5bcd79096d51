"""What `audit` selects: the filters, and the exact test of one parsed record against them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from x3twilio.audit import iso_ms


@dataclass(frozen=True)
class Filters:
    """What `audit` selects; every given field must match. `until` is exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    rule: str | None = None
    source: str | None = None
    record: str | None = None  # the X3 key: `record`, an inbound `reference`, or `matched`
    phone: str | None = None  # `to` or `from`
    status: str | None = None
    event: str | None = None  # "notification.failed" or "failed"; a family: "inbound", "run.*"
    ids: tuple[str, ...] = ()  # the idempotency key (`id`) or the provider's id
    partner: str | None = None  # a supplier's or customer's code, or CLASS:CODE
    _span: tuple[str, str] = field(init=False, repr=False, compare=False)
    _event: tuple[str, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and moment.utcoffset() is None:
                raise ValueError(f"Filters.{name} must be timezone-aware")
        span = (iso_ms(self.since) if self.since else "", iso_ms(self.until) if self.until else "")
        object.__setattr__(self, "_span", span)  # `ts` strings sort as the times do
        object.__setattr__(self, "_event", event_pattern(self.event or ""))

    def matches(self, rec: dict[str, Any]) -> bool:
        """The exact test, on a parsed record."""
        if self.since or self.until:
            ts, (since, until) = rec.get("ts"), self._span
            if not isinstance(ts, str) or ts < since or (until and ts >= until):
                return False
        return (
            (self.rule is None or rec.get("rule") == self.rule)
            and (self.source is None or rec.get("source") == self.source)
            and (self.status is None or rec.get("status") == self.status)
            and self._event_matches(rec.get("event"))
            and (self.record is None or about(rec, self.record))
            and (self.phone is None or self.phone in (rec.get("to"), rec.get("from")))
            and (not self.ids or rec.get("id") in self.ids or rec.get("provider_id") in self.ids)
            and (self.partner is None or of_partner(rec, self.partner))
        )

    def _event_matches(self, event: Any) -> bool:
        if self.event is None:
            return True
        name, family = self._event
        return event == name or (family and isinstance(event, str) and event.startswith(name))


FAMILIES = ("notification", "inbound", "run")


def event_pattern(event: str) -> tuple[str, bool]:
    """(name, is a family): "inbound" and "run.*" are families, "failed" is notification.failed."""
    name = event.removesuffix("*").removesuffix(".")
    if name in FAMILIES or event.endswith((".", ".*")):
        return name + ".", True
    return (name if "." in name else f"notification.{name}"), False


def about(rec: dict[str, Any], key: str) -> bool:
    """Whether a record concerns the X3 record `key` (sent about it, or a reply about it)."""
    matched = rec.get("matched")
    return (
        key in (rec.get("record"), rec.get("reference"), matched)
        or (isinstance(matched, str) and matched.endswith(":" + key))  # CLASS:KEY
    )


def of_partner(rec: dict[str, Any], code: str) -> bool:
    """Sent to that supplier or customer (`partner`), or a reply logged on it (`matched`)."""
    return any(
        isinstance(value, str) and (value == code or value.endswith(":" + code))
        for value in (rec.get("partner"), rec.get("matched"))
    )
