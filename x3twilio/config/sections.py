"""The smaller sections of the file: twilio, sendgrid, defaults, retry, sending, monitoring,
groups."""

from __future__ import annotations

from pathlib import Path

from x3twilio.config.model import (
    Config,
    MonitoringConfig,
    RetryConfig,
    SendGridConfig,
    SendingConfig,
    TwilioConfig,
)
from x3twilio.config.options import declared, read
from x3twilio.config.urls import service_url
from x3twilio.locales import TAG_FORMS, X3_LANGUAGES, is_tag, is_x3_code
from x3twilio.phones import is_e164
from x3twilio.quiethours import QuietHours, zone_named
from x3twilio.rules import fits
from x3twilio.yamlnode import Node

MONITORED = ("poll", "ingest")


def load_twilio(node: Node) -> TwilioConfig:
    twilio = TwilioConfig(
        account_sid=read(node, TwilioConfig, "account_sid"),
        auth_token=read(node, TwilioConfig, "auth_token"),
        from_number=read(node, TwilioConfig, "from_number"),
        messaging_service_sid=read(node, TwilioConfig, "messaging_service_sid"),
        api_key_sid=read(node, TwilioConfig, "api_key_sid"),
        api_key_secret=read(node, TwilioConfig, "api_key_secret"),
        whatsapp_from=_whatsapp_sender(node),
        api_url=service_url(node, "api_url", declared(TwilioConfig, "api_url").default),
        content_url=service_url(node, "content_url", declared(TwilioConfig, "content_url").default),
        timeout=read(node, TwilioConfig, "timeout"),
        previous_auth_token=read(node, TwilioConfig, "previous_auth_token") or None,
        voice_language=read(node, TwilioConfig, "voice_language"),
        voice=read(node, TwilioConfig, "voice"),
        settle=read(node, TwilioConfig, "settle"),
    )
    if not (twilio.from_number or twilio.messaging_service_sid):
        raise node.error("from", "give the sending number (from) or messaging_service_sid")
    if twilio.from_number and not is_e164(twilio.from_number):
        raise node.error("from", f"{twilio.from_number!r} is not a valid E.164 number")
    if bool(twilio.api_key_sid) != bool(twilio.api_key_secret):
        raise node.error("api_key_secret", "api_key_sid and api_key_secret go together")
    node.done()
    return twilio


def _whatsapp_sender(node: Node) -> str | None:
    """`whatsapp:+E164`, as Twilio's From wants it (a bare +E164 gains the prefix)."""
    given = read(node, TwilioConfig, "whatsapp_from")
    if given is None:
        return None
    number = given.strip().removeprefix("whatsapp:")
    if not is_e164(number):
        raise node.error("whatsapp_from", f"expected whatsapp:+E164 (a number), got {given!r}")
    return f"whatsapp:{number}"


def load_languages(root: Node) -> dict[str, str]:
    """X3 language code -> language tag: the built-in table, with `languages:` over it."""
    table = dict(X3_LANGUAGES)
    for code, tag in root.items("languages"):
        where = f"languages.{code}"
        if not is_x3_code(code):
            raise root.error(where, "expected an X3 language code (up to 3 letters or digits)")
        if not isinstance(tag, str) or not is_tag(tag):
            raise root.error(where, f"expected {TAG_FORMS}, got {tag!r}")
        table[code.upper()] = tag
    return table


def load_region(root: Node) -> str:
    defaults = root.child("defaults")
    fallback = declared(Config, "region").default
    region = str(defaults.get("region", str, fallback)).upper()
    if len(region) != 2 or not region.isalpha():
        raise defaults.error("region", f"expected an ISO country code such as FR, got {region!r}")
    defaults.done()
    return region


def load_retry(node: Node) -> RetryConfig:
    retry = RetryConfig(
        attempts=read(node, RetryConfig, "attempts"),
        initial=read(node, RetryConfig, "initial"),
        maximum=read(node, RetryConfig, "maximum"),
        budget=read(node, RetryConfig, "budget"),
        max_age=read(node, RetryConfig, "max_age"),
    )
    node.done()
    return retry


def load_sending(node: Node) -> SendingConfig:
    quiet = None
    if node.has("quiet_hours"):
        window = node.child("quiet_hours")
        try:
            quiet = QuietHours.parse(window.get("start", str), window.get("end", str))
        except ValueError as exc:
            raise node.error("quiet_hours", str(exc)) from None
        window.done()
    timezone = read(node, SendingConfig, "timezone")
    try:
        zone_named(timezone)
    except ValueError as exc:
        raise node.error("timezone", str(exc)) from None
    rate = read(node, SendingConfig, "rate_limit")  # messages per second
    sending = SendingConfig(
        concurrency=read(node, SendingConfig, "concurrency"),
        rate_limit=rate,
        max_per_recipient=read(node, SendingConfig, "max_per_recipient"),
        digest=read(node, SendingConfig, "digest"),
        quiet_hours=quiet,
        timezone=timezone,
        max_segments=read(node, SendingConfig, "max_segments"),
    )
    node.done()
    return sending


def load_monitoring(node: Node, base: Path) -> MonitoringConfig:
    metrics = read(node, MonitoringConfig, "metrics_file")
    mode = read(node, MonitoringConfig, "metrics_mode")
    try:
        metrics_mode = int(str(mode), 8)
    except ValueError:
        metrics_mode = -1
    if not 0 <= metrics_mode <= 0o666:
        raise node.error("metrics_mode", f"expected a file mode such as 0644, got {mode!r}")
    heartbeats: dict[str, str] = {}
    url: str | None = None
    if isinstance(node.data.get("heartbeat_url"), dict):
        beats = node.child("heartbeat_url")
        for command in map(str, beats.data):
            if command not in MONITORED:
                raise beats.error(command, f"expected one of {', '.join(MONITORED)}")
            heartbeats[command] = service_url(beats, command)
        beats.done()
    elif node.get("heartbeat_url", str, ""):
        url = service_url(node, "heartbeat_url")
    monitoring = MonitoringConfig(
        metrics_file=base / metrics if metrics else None,
        metrics_mode=metrics_mode,
        heartbeats=heartbeats,
        heartbeat_url=url,
        json_logs=read(node, MonitoringConfig, "json_logs"),
    )
    node.done()
    return monitoring


def load_sendgrid(node: Node) -> SendGridConfig:
    sendgrid = SendGridConfig(
        api_key=read(node, SendGridConfig, "api_key"),
        from_email=read(node, SendGridConfig, "from_email"),
        from_name=read(node, SendGridConfig, "from_name"),
        reply_to=read(node, SendGridConfig, "reply_to"),
        api_url=service_url(node, "api_url", declared(SendGridConfig, "api_url").default),
        timeout=read(node, SendGridConfig, "timeout"),
        html=read(node, SendGridConfig, "html"),
    )
    if not fits(sendgrid.from_email, "email"):
        raise node.error("from_email", f"{sendgrid.from_email!r} is not an email address")
    node.done()
    return sendgrid


def load_groups(root: Node) -> dict[str, tuple[str, ...]]:
    groups = {}
    node = root.child("groups")
    for name, members in root.items("groups"):
        if not isinstance(members, list) or not members:
            raise node.error(name, "expected a list of E.164 phone numbers")
        for i, member in enumerate(members):
            if not isinstance(member, str) or not (is_e164(member) or fits(member, "email")):
                raise node.error(
                    name, f"[{i}] {member!r} is neither a valid E.164 phone number nor an email"
                )
        groups[name] = tuple(members)
    return groups
