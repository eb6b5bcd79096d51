"""What a failed request means (`Outcome`, `outcome_of`): for this notification, for the run,
and whether the request may have been accepted anyway; and whether it never left
(`never_connected`).

Its own module so that the senders, and the sending loop that reads their outcomes, share it
without importing the package that builds the senders.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from x3twilio.errors import RemoteError


class Outcome(Enum):
    """What a failed request means, decided once where the error is made."""

    # This notification as it is will never be accepted (an invalid To, opted out, a body
    # too long): failed for good, a person fixes the data and replays it.
    REFUSED = "refused"
    # Refused for now, certainly not accepted (429): this notification again after a backoff.
    LATER = "later"
    # About the account or the sender, not this notification (credentials, a suspended
    # account, a From not on the account, a Messaging Service that does not exist, the
    # sender's queue full): the run stops (exit 69) and every notification stays pending.
    ACCOUNT = "account"
    # The service could not be reached, or failed before accepting anything (no connection,
    # a lookup that kept failing): the run stops and every notification stays pending.
    UNREACHABLE = "unreachable"
    # The request may have been accepted (a timeout, a reset, a 5xx, an answer without an
    # id): never posted again in this run; looked up in the provider's list once the
    # settle delay has passed, and sent again only if it is still not there.
    MAYBE_SENT = "maybe_sent"
    # May have been accepted, and the provider cannot be asked (SendGrid): failed for a
    # person to check, never sent again automatically.
    UNCONFIRMED = "unconfirmed"

    @property
    def repeatable(self) -> bool:
        """Whether the same request may be made again at once (the retrier's `transient`)."""
        return self in (Outcome.LATER, Outcome.UNREACHABLE)

    @property
    def stops_run(self) -> bool:
        return self in (Outcome.ACCOUNT, Outcome.UNREACHABLE)


def outcome_of(error: RemoteError) -> Outcome:
    """The outcome a sender gave `error`; for any other remote error, judged by its status."""
    given = getattr(error, "outcome", None)
    if isinstance(given, Outcome):
        return given
    status = error.status
    if status in (401, 403):
        return Outcome.ACCOUNT
    if status == 429:
        return Outcome.LATER
    if status is None or status >= 500:
        return Outcome.UNREACHABLE if error.transient else Outcome.MAYBE_SENT
    return Outcome.LATER if error.transient else Outcome.REFUSED


DIGEST_SEPARATOR = "\n\n"  # between the notifications folded into one digest message


def never_connected(exc: BaseException) -> bool:
    """Whether a request certainly never reached the service (so repeating it is safe)."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError

    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.SSLError):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    # urllib3 wraps a refused or unresolvable connection (NewConnectionError is one)
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, ConnectTimeoutError)
