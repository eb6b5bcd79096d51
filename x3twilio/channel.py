"""What the dispatcher needs of a channel (SMS, voice, email): send, and find what was sent.

Its own module so that the senders and the dispatcher both depend on it, not on each other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from x3twilio.model import Notification


class Sender(Protocol):
    channel: str
    reconciles: bool  # can an ambiguous failure be looked up with find_sent?

    def send(self, n: Notification, in_flight_since: datetime | None) -> str:
        """The provider's id; SMS also takes validity_period= (seconds)."""
        ...

    def find_sent(self, n: Notification, since: datetime) -> str | None: ...
