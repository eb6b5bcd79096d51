"""`check`: offline warnings about templates, then each service with the real credentials."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import partial
from typing import Any

import requests

from x3twilio.checks import Check
from x3twilio.config import Config
from x3twilio.errors import RemoteError, X3FieldError
from x3twilio.locales import X3_LANGUAGES, canonical
from x3twilio.quiethours import window_hours
from x3twilio.rules import Rule
from x3twilio.segments import segment_info, ucs2_characters
from x3twilio.senders.twilio import API_VERSION
from x3twilio.sources import Source
from x3twilio.templates import SAMPLES, Template, known_locale
from x3twilio.transport import Retrier, make_session, reason_of
from x3twilio.whatsapp import REASONS as WHATSAPP_REASONS
from x3twilio.whatsapp import TEMPLATE_FORM, WINDOW_REASON
from x3twilio.x3 import make_client
from x3twilio.x3.rest import RestClient
from x3twilio.yamlnode import seconds_text


def template_warnings(config: Config) -> list[str]:
    """SMS templates that turn UCS-2 for one character, or run past the segment budget; a rule
    with texts by language, each text as its language writes dates and amounts."""
    warnings = []
    for rule in config.rules:
        if rule.channel != "sms":
            continue
        source = config.sources[rule.source]
        for language, template in _texts(rule):
            warnings += _sms_warnings(config, rule.name, source, template, language)
    return warnings


def _texts(rule: Rule) -> list[tuple[str, Template]]:
    """(language key, message) of each text of `rule`; ("", message) for its one text."""
    if not rule.translations:
        return [("", rule.template)]
    return [(key, message) for key, (message, _) in rule.translations.items()]


def _sms_warnings(
    config: Config, rule: str, source: Source, template: Template, language: str
) -> list[str]:
    where = f"rule {rule} ({language})" if language else f"rule {rule}"
    sample = template.render(partial(_sample, source), canonical(language) if language else None)
    warnings = []
    odd = ucs2_characters(template.literals)  # its text and fallbacks
    formatted = ucs2_characters(sample)  # what the language writes: "1\u202f234,50", "março"
    if odd or formatted:
        why = "" if odd else f" (in dates or amounts as {language} writes them)"
        warnings.append(
            f"{where}: {', '.join(map(repr, odd or formatted))}{why} makes every "
            "message UCS-2 (70 characters a segment instead of 160)"
        )
    info = segment_info(sample)
    if info.segments > config.sending.max_segments:
        warnings.append(
            f"{where}: about {info.segments} segments per message "
            f"(sending.max_segments is {config.sending.max_segments})"
        )
    return warnings


def language_warnings(config: Config) -> list[str]:
    """Rules whose translations use different placeholders, and languages Babel does not
    know (their dates and amounts are written as without a language)."""
    warnings = []
    for rule in config.rules:
        used = {
            key: message.names | (subject.names if subject else set())
            for key, (message, subject) in rule.translations.items()
        }
        differences = placeholder_differences(used)
        if differences:
            warnings.append(
                f"rule {rule.name}: translations use different placeholders: " + differences
            )
        unknown = [key for key in rule.translations if not known_locale(key)]
        if unknown:
            warnings.append(f"rule {rule.name}: {_unknown(unknown)}")
    tags = {code: tag for code, tag in config.languages.items() if X3_LANGUAGES.get(code) != tag}
    warnings += [
        f"languages.{code}: {_unknown([tag])}"
        for code, tag in tags.items()
        if not known_locale(tag)
    ]
    return warnings


def placeholder_differences(used: Mapping[str, set[str]]) -> str:
    """`fr lacks {expected_date}; de has {amount} the others do not`, or "" when every
    language reads the same names. With two languages, the one without a name lacks it."""
    if len(used) < 2:
        return ""
    everything = set().union(*used.values())
    counts = {name: sum(name in names for names in used.values()) for name in everything}
    single = {name for name, count in counts.items() if count == 1} if len(used) > 2 else set()
    phrases = []
    for key, names in used.items():
        lacks, only = sorted(everything - names - single), sorted(names & single)
        if lacks:
            phrases.append(f"{key} lacks {_braced(lacks)}")
        if only:
            phrases.append(f"{key} has {_braced(only)} the others do not")
    return "; ".join(phrases)


def _braced(names: list[str]) -> str:
    return ", ".join(f"{{{name}}}" for name in names)


def _unknown(tags: list[str]) -> str:
    shown = ", ".join(map(repr, tags))
    return (
        f"Babel knows no language {shown}: dates and amounts in it are written as without "
        "a language"
    )


def delay_warnings(config: Config) -> list[str]:
    """Rules whose max_delay ends inside the quiet window they wait out: what is decided
    when the window opens expires before it closes."""
    warnings = []
    for rule in config.rules:
        window = rule.quiet_window(config.sending.quiet_hours)
        if window is None or not rule.max_delay:
            continue
        hours = window_hours(window)
        if rule.max_delay < hours * 3600:
            warnings.append(
                f"rule {rule.name}: max_delay {seconds_text(rule.max_delay)} is shorter than the "
                f"quiet hours {window.start:%H:%M}-{window.end:%H:%M} ({hours:g}h): what it "
                "decides at their start expires before they end; raise max_delay, or set "
                "urgent: true or quiet_hours: false on the rule"
            )
    return warnings


def whatsapp_warnings(config: Config) -> list[str]:
    """WhatsApp rules with no sender to send from, or with free text only."""
    warnings = []
    twilio = config.twilio
    for rule in config.rules:
        if rule.channel != "whatsapp":
            continue
        if not (twilio.whatsapp_from or twilio.messaging_service_sid):
            warnings.append(
                f"rule {rule.name}: channel whatsapp has no sender: set twilio.whatsapp_from "
                "(whatsapp:+E164) or twilio.messaging_service_sid"
            )
        if rule.content is None:
            warnings.append(
                f"rule {rule.name}: no template: {WINDOW_REASON} ({TEMPLATE_FORM}); "
                "without one a supplier who has not written for 24 h gets nothing (63016)"
            )
    return warnings


def whatsapp_checks(config: Config, session: requests.Session) -> list[Check]:
    """One line per WhatsApp template the rules use: approved by WhatsApp, or the fix."""
    checks = []
    for rule in config.rules:
        if rule.channel != "whatsapp" or rule.content is None:
            continue
        name = f"WhatsApp template {rule.name}"
        try:
            ok, detail, fix = _approval(config, session, rule.content.sid)
        except (requests.RequestException, ValueError) as exc:  # one line, not the run
            ok, detail, fix = False, f"cannot ask the Content API: {str(exc)[:160]}", _CONTENT_FIX
        checks.append(Check(name, ok, detail, fix))
    return checks


_CONTENT_FIX = "check twilio.content_url, the credentials and the network"
_APPROVAL_FIXES = {
    "pending": "wait for WhatsApp to approve it (Console, Content Template Builder)",
    "received": "wait for WhatsApp to approve it (Console, Content Template Builder)",
    "unsubmitted": "submit it for WhatsApp approval (Console, Content Template Builder)",
    "rejected": "edit it and submit it again, or name an approved one in template.content_sid",
    "paused": "WhatsApp paused it (poor feedback): see the Console, or use another template",
    "disabled": "WhatsApp disabled it: name an approved one in template.content_sid",
}


def _approval(config: Config, session: requests.Session, sid: str) -> tuple[bool, str, str]:
    """(approved, what the Content API says, the fix) for template `sid`."""
    twilio = config.twilio
    auth = (twilio.api_key_sid or twilio.account_sid, twilio.api_key_secret or twilio.auth_token)
    url = f"{twilio.content_url}/v1/Content/{sid}/ApprovalRequests"
    response = session.get(url, auth=auth, timeout=twilio.timeout)
    if response.status_code == 404:
        return False, f"{sid} is not a Content template of this account", WHATSAPP_REASONS[21655]
    if response.status_code != 200:
        return False, f"HTTP {response.status_code} from {url}", _CONTENT_FIX
    body = response.json() if response.content else {}
    whatsapp = body.get("whatsapp") if isinstance(body, dict) else None
    status = str(whatsapp.get("status") or "unknown") if isinstance(whatsapp, dict) else "unknown"
    if status == "approved":
        return True, f"{sid} is approved by WhatsApp", ""
    detail = f"{sid} is {status}, not approved: outside 24 h it is refused like free text"
    reason = whatsapp.get("rejection_reason") if isinstance(whatsapp, dict) else None
    if reason:
        detail += f" (WhatsApp: {reason})"
    fix = _APPROVAL_FIXES.get(status, "submit it for WhatsApp approval in the Console")
    return False, detail, fix


def _sample(source: Source, name: str) -> Any:
    return SAMPLES[source.kind_of(name)]


def check_online(config: Config) -> list[Check]:
    session = make_session()
    checks = [
        *_x3_checks(config, session),
        *_twilio_checks(config, session),
        *whatsapp_checks(config, session),
        _guard("Webhook shim", lambda: _shim_check(config, session), UNREACHABLE),
    ]
    if config.sendgrid is not None:
        checks.append(
            _guard("SendGrid", lambda: _sendgrid_check(config, session), "check sendgrid.api_key")
        )
    return checks


def _guard(name: str, probe: Callable[[], Check], fix: str) -> Check:
    try:
        return probe()
    except X3FieldError as exc:
        detail, _, advice = str(exc).partition(". Fix: ")
        return Check(name, False, detail, advice, setup=True)
    except (RemoteError, requests.RequestException) as exc:
        return Check(name, False, _said(exc), UNREACHABLE if _unreached(exc) else fix)


UNREACHABLE = "check the URL, DNS and the network (proxy, firewall) from this machine"


def _said(exc: Exception) -> str:
    if isinstance(exc, requests.RequestException):
        url = exc.request.url if exc.request is not None else "the service"
        what = "no answer in time" if isinstance(exc, requests.Timeout) else reason_of(exc)
        return f"cannot reach {url}: {what}"
    return str(exc)


def _unreached(exc: Exception) -> bool:
    """No answer at all (DNS, refused, timeout): credentials are not what to check."""
    if isinstance(exc, RemoteError):
        return exc.status is None and exc.code is None and exc.transient
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


def _x3_checks(config: Config, session: requests.Session) -> list[Check]:
    client = make_client(config.x3, session, Retrier(config.retry))
    if isinstance(client, RestClient):
        from x3twilio.site import site_checks

        return [*_guarded_site(lambda: site_checks(config, client)), *_reach_checks(config, client)]
    from x3twilio.x3.gql_site import graphql_site_checks  # the schema, introspected

    return [
        *_guarded_site(lambda: graphql_site_checks(config, client)),  # type: ignore[arg-type]
        *_reach_checks(config, client),
    ]


def _guarded_site(probe: Callable[[], list[Check]]) -> list[Check]:
    try:
        return probe()
    except (RemoteError, requests.RequestException) as exc:
        return [Check("X3 fields", False, str(exc), "check x3.url, x3.folder and the credentials")]


def _reach_checks(config: Config, client: Any) -> list[Check]:
    checks = []
    for source in config.used_sources():

        def probe(source: Any = source) -> Check:
            now = client.server_time(source)
            pages = client.changes(source, now - timedelta(days=30), now)
            rows = next(pages).resources
            if rows and source.timestamp not in rows[0]:
                return Check(
                    f"X3 {source.name}",
                    False,
                    f"{source.x3_class} does not expose {source.timestamp}",
                    f"add {source.timestamp} to the query facet of {source.representation}",
                )
            return Check(f"X3 {source.name}", True, f"{source.x3_class} answers")

        checks.append(
            _guard(f"X3 {source.name}", probe, "check x3.url, x3.folder and the credentials")
        )
    return checks


def _twilio_checks(config: Config, session: requests.Session) -> list[Check]:
    twilio = config.twilio
    auth = (twilio.api_key_sid or twilio.account_sid, twilio.api_key_secret or twilio.auth_token)
    base = f"{twilio.api_url}/{API_VERSION}/Accounts/{twilio.account_sid}"

    def get(url: str, **params: str) -> dict[str, Any]:
        response = session.get(url, params=params, auth=auth, timeout=twilio.timeout)
        if response.status_code != 200:
            raise RemoteError(
                "Twilio", f"HTTP {response.status_code} from {url}", status=response.status_code
            )
        body: dict[str, Any] = response.json()
        return body

    def account() -> Check:
        status = get(f"{base}.json").get("status", "?")
        return Check(
            "Twilio account",
            status == "active",
            f"account is {status}",
            "use an active account" if status != "active" else "",
        )

    def number() -> Check:
        if not twilio.from_number:
            return Check("Twilio sender", True, "a Messaging Service sends")
        found = get(f"{base}/IncomingPhoneNumbers.json", PhoneNumber=twilio.from_number)
        numbers = found.get("incoming_phone_numbers") or []
        if not numbers:
            return Check(
                "Twilio sender",
                False,
                f"{twilio.from_number} is not on the account",
                "set twilio.from to one of your Twilio numbers",
            )
        sms = (numbers[0].get("capabilities") or {}).get("sms")
        return Check(
            "Twilio sender",
            bool(sms),
            f"{twilio.from_number} " + ("can send SMS" if sms else "cannot send SMS"),
            "" if sms else "pick an SMS-capable number",
        )

    return [
        _guard("Twilio account", account, "check twilio.account_sid and the token"),
        _guard("Twilio sender", number, "check twilio.from"),
    ]


def _shim_check(config: Config, session: requests.Session) -> Check:
    """What Twilio will call: {public_url}/healthz must answer, or no reply or status lands."""
    url = f"{config.public_url}/healthz"
    try:
        response = session.get(url, timeout=config.twilio.timeout, allow_redirects=False)
    except requests.RequestException as exc:
        return Check(
            "Webhook shim",
            False,
            f"{_said(exc)}: Twilio could not deliver replies or delivery statuses",
            "start the shim (x3twilio-shim.service, or gunicorn) behind public_url, or fix "
            "public_url",
        )
    if response.status_code != 200:
        return Check(
            "Webhook shim",
            False,
            f"{url} answers HTTP {response.status_code}",
            "point public_url's proxy at the shim: /healthz and /twilio/ must reach it",
        )
    return Check("Webhook shim", True, f"{url} answers")


def _sendgrid_check(config: Config, session: requests.Session) -> Check:
    grid = config.sendgrid
    assert grid is not None
    body = {
        "personalizations": [{"to": [{"email": grid.from_email}]}],
        "from": {"email": grid.from_email},
        "subject": "x3twilio check",
        "content": [{"type": "text/plain", "value": "check"}],
        "mail_settings": {"sandbox_mode": {"enable": True}},
    }  # validated, never sent
    response = session.post(
        f"{grid.api_url}/v3/mail/send",
        json=body,
        timeout=grid.timeout,
        headers={"Authorization": f"Bearer {grid.api_key}"},
    )
    ok = response.status_code in (200, 202)
    fixes = {401: "check sendgrid.api_key", 403: "verify sendgrid.from_email as a sender"}
    return Check(
        "SendGrid",
        ok,
        f"HTTP {response.status_code}",
        fixes.get(response.status_code, "see SendGrid's answer"),
    )
