"""Channels that deliver notifications: SMS and voice through Twilio, email through SendGrid.

What a failed request means (`Outcome`, `outcome_of`) is said once, in `transport`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

    from x3twilio.channel import Sender
    from x3twilio.config import Config
    from x3twilio.transport import Retrier


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
