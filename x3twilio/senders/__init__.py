"""Channels that deliver notifications: SMS, voice and WhatsApp through Twilio, email through
SendGrid.

What a failed request means (`Outcome`, `outcome_of`) is said once, in `transport`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

    from x3twilio.channel import Sender
    from x3twilio.config import Config
    from x3twilio.transport import Retrier


def make_senders(
    config: Config,
    session: requests.Session,
    retrier: Retrier,
    *,
    last_whatsapp: Callable[[str], str | None] | None = None,
) -> dict[str, Sender]:
    """One sender per channel the rules use.

    `last_whatsapp(number)`: when that number last wrote on WhatsApp (UTC, ISO), for the
    24-hour window; by default read from the outbox, on a connection of the sending thread.
    """
    from x3twilio.senders.twilio import TwilioSender, TwilioVoiceSender

    channels = {rule.channel for rule in config.rules} | {
        rule.fallback.channel for rule in config.rules if rule.fallback
    }
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
    if "whatsapp" in channels:
        from x3twilio.senders.whatsapp import TwilioWhatsAppSender

        last = last_whatsapp or (lambda number: _last_whatsapp(config, number))
        senders["whatsapp"] = TwilioWhatsAppSender(
            config.twilio,
            config.public_url,
            session,
            retrier,
            last_inbound=lambda number: _stamp(last(number)),
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


def _last_whatsapp(config: Config, number: str) -> str | None:
    """When `number` last wrote on WhatsApp; the senders run in worker threads, and an SQLite
    connection belongs to the thread that opened it: one read-only connection per look-up."""
    from x3twilio.outbox import Outbox

    outbox = Outbox(config.state_dir, readonly=True)
    try:
        return outbox.last_whatsapp(number)
    finally:
        outbox.close()


def _stamp(text: str | None) -> datetime | None:
    from x3twilio.decoding import parse_stamp

    return parse_stamp(text) if text else None
