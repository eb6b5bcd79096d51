"""Channels that deliver notifications: SMS and voice through Twilio, email through SendGrid.

Also the one place that says what a failed request means (`Outcome`, `outcome_of`): for
this notification, for the run, and whether the request may have been accepted anyway.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

    from x3twilio.config import Config
    from x3twilio.errors import RemoteError
    from x3twilio.sending import Sender
    from x3twilio.transport import Retrier


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


def make_senders(config: Config, session: requests.Session, retrier: Retrier) -> dict[str, Sender]:
    """One sender per channel the rules use."""
    from x3twilio.senders.twilio import TwilioSender, TwilioVoiceSender

    channels = {rule.channel for rule in config.rules}
    senders: dict[str, Sender] = {
        "sms": TwilioSender(config.twilio, config.public_url, session, retrier)
    }
    if "voice" in channels:
        senders["voice"] = TwilioVoiceSender(
            config.twilio,
            config.public_url,
            session,
            retrier,
            language=config.twilio.voice_language,
            voice=config.twilio.voice,
            is_known=lambda sid: _known(config, sid),
        )
    if config.sendgrid is not None:
        from x3twilio.senders.sendgrid import SendGridSender

        senders["email"] = SendGridSender(config.sendgrid, session, retrier)
    return senders


def _known(config: Config, provider_id: str) -> bool:
    """Whether a call is already recorded for a notification (a connection per worker thread)."""
    from x3twilio.outbox import Outbox

    outbox = Outbox(config.state_dir, readonly=True)
    try:
        return outbox.by_provider_id(provider_id) is not None
    finally:
        outbox.close()
