"""Quiet hours: a window, in the recipient's local time, when nothing is sent."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class QuietHours:
    start: time  # e.g. 20:00
    end: time  # e.g. 07:30 (the window may span midnight)

    @classmethod
    def parse(cls, start: str, end: str) -> QuietHours:
        """Parse HH:MM times; ValueError names the bad one."""
        return cls(_clock(start), _clock(end))

    def resume_at(self, now: datetime, zone: ZoneInfo) -> datetime | None:
        """When sending may resume if `now` falls inside the window, else None."""
        local = now.astimezone(zone)
        today_start = datetime.combine(local.date(), self.start, zone)
        today_end = datetime.combine(local.date(), self.end, zone)
        if self.start <= self.end:
            inside = today_start <= local < today_end
            resume = today_end
        elif local >= today_start:  # evening part of a window over midnight
            inside, resume = True, today_end + timedelta(days=1)
        else:
            inside, resume = local < today_end, today_end
        return resume.astimezone(now.tzinfo) if inside else None


def _clock(text: str) -> time:
    match = _CLOCK.match(str(text).strip())
    if not match:
        raise ValueError(f"expected a time such as 20:00, got {text!r}")
    return time(int(match[1]), int(match[2]))


def zone_named(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


@lru_cache(maxsize=4096)
def zone_of(number: str, default: str) -> ZoneInfo:
    """The recipient's zone from the number when it has one, else `default`."""
    try:
        zones = number_zones.time_zones_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        zones = ()
    known = [z for z in zones if z != "Etc/Unknown"]
    return ZoneInfo(known[0]) if known else ZoneInfo(default)


def held_until(
    window: QuietHours | None, to: str, default_zone: str, now: datetime
) -> tuple[datetime, ZoneInfo] | None:
    """When a message to `to` may go out if `now` is inside the quiet window, and the zone
    that decided it (the recipient's); None when it may go out now."""
    if window is None:
        return None
    zone = zone_of(to, default_zone)
    resume = window.resume_at(now, zone)
    return (resume, zone) if resume is not None else None


def until_text(resume: datetime, zone: ZoneInfo) -> str:
    """`07:00 Europe/Paris`: when a deferred message goes out, in the recipient's time."""
    return f"{resume.astimezone(zone):%H:%M} {zone.key}"


def window_hours(window: QuietHours) -> float:
    """How long the window lasts, in hours (a window over midnight counts across it)."""
    start = window.start.hour * 60 + window.start.minute
    end = window.end.hour * 60 + window.end.minute
    return ((end - start) % (24 * 60)) / 60
