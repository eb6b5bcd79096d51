"""A faithful Twilio REST API (2010-04-01) and webhook sender, as a WSGI app.

Serves Messages, Calls and IncomingPhoneNumbers with Basic auth (Account SID +
Auth Token, an API key, or the test credentials with their magic numbers), the
exact error bodies and codes, list filters and paging, injected faults, and the
concurrency limit. It also plays Twilio's side of the webhooks: signed status
callbacks, incoming messages and calls with their recording and transcription
callbacks. Wire-level details follow shared/reference/TWILIO.md.

Faults (`faults.add(kind, match, skip=, times=, delay=)`): an HTTP status ("429", "500",
...), "error:<code>" (Twilio's answer for that error code), "html", "garbage", "timeout"
(the request is processed `delay` seconds after it arrived, whatever the client does),
"late" (the client gets no answer; the request is processed `delay` seconds after the
client gave up and closed the connection, so the message or call appears in the list
after the client stopped waiting), "reset" (processed, then the connection is reset) and
"reset_before" (reset, nothing processed). `wait_settled()` waits for the delayed ones.
`account_status = "suspended"` (or "closed") refuses the account's credentials with 401
and 20003, as Twilio documents for such an account.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import random
import re
import select
import socket
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urljoin

import phonenumbers
import requests

from x3twilio.segments import segment_info
from x3twilio.signature import compute_signature
from x3twilio.simulators import (
    SOCKET_KEY,
    Fault,
    Faults,
    StartResponse,
    abort_connection,
    read_body,
    request_target,
    respond,
    sleep_ms,
)

Clock = Callable[[], datetime]
Form = list[tuple[str, str]]

API_VERSION = "2010-04-01"
API_BASE = "https://api.twilio.com"
MAX_BODY_CHARS = 1600
E164 = re.compile(r"\+[1-9]\d{1,14}")
USER_AGENT = "TwilioProxy/1.1"

# -- errors -----------------------------------------------------------------------

ERROR_TEXT: dict[int, str] = {
    20001: "Invalid parameter: {detail}",
    20003: "Authenticate",
    20004: "Method not allowed",
    20005: "Account not active",
    20008: "Resource not accessible with Test Account Credentials",
    20404: "The requested resource {path} was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21201: "No 'To' number is specified",
    21205: "Url parameter is required.",
    21210: "The source phone number provided, {from_}, is not yet verified for your "
    "account. You may only make calls from phone numbers that you've verified or "
    "purchased from Twilio.",
    21211: "The 'To' number {to} is not a valid phone number.",
    21212: "The 'From' number {from_} is not a valid phone number, shortcode, or "
    "alphanumeric sender ID.",
    21213: "No 'From' number is specified",
    21214: "'To' phone number cannot be reached",
    21215: "Account not authorized to call {to}. Perhaps you need to enable some "
    "international permissions.",
    21216: "Account not allowed to call {to}",
    21217: "Phone number does not appear to be valid",
    21408: "Permission to send an SMS has not been enabled for the region indicated "
    "by the 'To' number: {to}.",
    21421: "PhoneNumber is invalid",
    21422: "PhoneNumber is not available",
    21452: "No phone numbers found in area code {area}",
    21602: "Message body is required.",
    21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided ({from_}) is not a valid message-enabled "
    "phone number for this account.",
    21610: "Attempt to send to unsubscribed recipient",
    21611: "This 'From' number has exceeded the maximum number of queued messages",
    21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' "
    "phone number: {from_} via SMS.",
    21614: "'To' number {to} is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21701: "The Messaging Service Sid {msid} is invalid.",
    21705: "The Messaging Service Sid {msid} is invalid.",
    30400: "Parameters are not valid",
    30409: "This message cannot be canceled",
}
# 20005's HTTP status is not documented (TWILIO.md has no 20005): 401, like 20003.
ERROR_STATUS = {20003: 401, 20004: 405, 20005: 401, 20008: 403, 20404: 404, 20429: 429}
ERROR_STATUS |= {20500: 500, 20503: 503}
ERROR_DETAIL = {20003: "Your AccountSid or AuthToken was incorrect."}
STATUS_CODES = {401: 20003, 429: 20429, 500: 20500, 503: 20503}


class ApiError(Exception):
    """A Twilio REST error: HTTP status plus the JSON body of TWILIO.md §2.3."""

    def __init__(self, code: int, **context: str) -> None:
        self.code = code
        self.status = ERROR_STATUS.get(code, 400)
        template = ERROR_TEXT.get(code, "Error {code}")
        self.message = template.format(code=code, **_defaults(context))
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.code in ERROR_DETAIL:
            body["detail"] = ERROR_DETAIL[self.code]
        body["more_info"] = f"https://www.twilio.com/docs/errors/{self.code}"
        body["status"] = self.status
        return body


def _defaults(context: Mapping[str, str]) -> dict[str, str]:
    keys = ("to", "from_", "msid", "path", "area", "detail")
    return dict.fromkeys(keys, "") | dict(context)


class Reply(NamedTuple):
    status: int
    body: bytes | dict[str, Any] | list[Any] = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = []

    @classmethod
    def error(cls, error: ApiError) -> Reply:
        extra = [("WWW-Authenticate", 'Basic realm="Twilio API"')]
        return cls(error.status, error.body(), headers=extra if error.status == 401 else [])


# -- magic numbers of the test credentials (TWILIO.md §4) ---------------------------

MAGIC_SMS_TO = {
    "+15005550001": 21211,
    "+15005550002": 21612,
    "+15005550003": 21408,
    "+15005550004": 21610,
    "+15005550009": 21614,
}
MAGIC_SMS_FROM = {"+15005550006": 0, "+15005550001": 21212, "+15005550007": 21606}
MAGIC_SMS_FROM |= {"+15005550008": 21611}
MAGIC_CALL_TO = {
    "+15005550001": 21217,
    "+15005550002": 21214,
    "+15005550003": 21215,
    "+15005550004": 21216,
}
MAGIC_CALL_FROM = {"+15005550006": 0, "+15005550001": 21212}
MAGIC_BUY_NUMBER = {"+15005550000": 21422, "+15005550001": 21421}

TERMINAL = {"delivered", "undelivered", "failed", "canceled", "read"}
CANCELABLE = {"scheduled", "queued", "accepted"}
PRIVATE_KEYS = ("test", "status_callback", "validity_period")
ACCOUNT_STATUSES = ("active", "suspended", "closed")  # the Account resource's enum (OAI)
ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
LATE_LIMIT = 60.0  # seconds a "late" request waits at most for the client to give up
STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
START_WORDS = {"START", "YES", "UNSTOP"}


# -- small helpers ------------------------------------------------------------------


def stable_hex(label: str) -> str:
    """32 hex digits derived from a label: the same credentials in every process."""
    return hashlib.sha256(f"x3twilio-simulator:{label}".encode()).hexdigest()[:32]


def new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def rfc2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0))


def first(form: Form, name: str) -> str | None:
    return next((value for key, value in form if key == name), None)


def every(form: Form, name: str) -> list[str]:
    return [value for key, value in form if key == name]


def public(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as the API shows it, without the simulator's bookkeeping."""
    return {key: value for key, value in resource.items() if key not in PRIVATE_KEYS}


def formatted(number: str) -> str:
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)


def country_of(number: str) -> str:
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return ""
    return region or ""


def geo(prefix: str, number: str) -> dict[str, str]:
    """Twilio's geo fields; city, state and zip are often empty, as here."""
    fields = {f"{prefix}City": "", f"{prefix}State": "", f"{prefix}Zip": ""}
    return fields | {f"{prefix}Country": country_of(number)}


# -- resources ----------------------------------------------------------------------


@dataclass(frozen=True)
class MessageRequest:
    """The form fields of a Messages create that the simulator looks at."""

    to: str
    from_: str
    msid: str
    body: str
    media: list[str]
    status_callback: str | None
    validity_period: str | None = None  # seconds Twilio may queue it (kept, not enforced)

    @classmethod
    def parse(cls, form: Form) -> MessageRequest:
        return cls(
            to=first(form, "To") or "",
            from_=first(form, "From") or "",
            msid=first(form, "MessagingServiceSid") or "",
            body=first(form, "Body") or "",
            media=every(form, "MediaUrl"),
            status_callback=first(form, "StatusCallback") or None,
            validity_period=first(form, "ValidityPeriod") or None,
        )


def check_message_fields(request: MessageRequest) -> None:
    """Raise the first error Twilio reports for a malformed create, in Twilio's order."""
    if not request.to:
        raise ApiError(21604)
    if not (request.from_ or request.msid):
        raise ApiError(21603)
    if not (request.body or request.media):
        raise ApiError(21602)
    if len(request.body) > MAX_BODY_CHARS:
        raise ApiError(21617)
    if not E164.fullmatch(request.to):
        raise ApiError(21211, to=request.to)
    if request.to in MAGIC_SMS_TO:
        raise ApiError(MAGIC_SMS_TO[request.to], to=request.to, from_=request.from_)


def message_resource(
    account: str, request: MessageRequest, now: datetime, test: bool
) -> dict[str, Any]:
    sid = new_sid("SM")
    uri = f"/{API_VERSION}/Accounts/{account}/Messages/{sid}"
    segments = str(segment_info(request.body).segments)
    return {
        "account_sid": account,
        "api_version": API_VERSION,
        "body": request.body,
        "date_created": rfc2822(now),
        "date_sent": None,
        "date_updated": rfc2822(now),
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": request.from_ or None,
        "messaging_service_sid": request.msid or None,
        "num_media": str(len(request.media)),
        "num_segments": "0" if request.msid else segments,
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "accepted" if request.msid else "queued",
        "subresource_uris": {
            "media": f"{uri}/Media.json",
            "feedback": f"{uri}/Feedback.json",
        },
        "to": request.to,
        "uri": f"{uri}.json",
        "test": test,
        "status_callback": request.status_callback,
        "validity_period": request.validity_period,
    }


def inbound_message_resource(
    account: str, sid: str, from_: str, to: str, body: str, now: datetime
) -> dict[str, Any]:
    uri = f"/{API_VERSION}/Accounts/{account}/Messages/{sid}"
    return {
        "account_sid": account,
        "api_version": API_VERSION,
        "body": body,
        "date_created": rfc2822(now),
        "date_sent": rfc2822(now),
        "date_updated": rfc2822(now),
        "direction": "inbound",
        "error_code": None,
        "error_message": None,
        "from": from_,
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": str(segment_info(body).segments),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "received",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": to,
        "uri": f"{uri}.json",
    }


def call_resource(
    account: str, form: Form, now: datetime, test: bool, number_sid: str | None
) -> dict[str, Any]:
    sid = new_sid("CA")
    uri = f"/{API_VERSION}/Accounts/{account}/Calls/{sid}"
    to, from_ = first(form, "To") or "", first(form, "From") or ""
    names = ("recordings", "notifications", "events", "feedback", "payments")
    subresources = {name: f"{uri}/{name.capitalize()}.json" for name in names}
    return {
        "account_sid": account,
        "annotation": None,
        "answered_by": None,
        "api_version": API_VERSION,
        "caller_name": None,
        "date_created": rfc2822(now),
        "date_updated": rfc2822(now),
        "direction": "outbound-api",
        "duration": None,
        "end_time": None,
        "forwarded_from": None,
        "from": from_,
        "from_formatted": formatted(from_),
        "group_sid": None,
        "parent_call_sid": None,
        "phone_number_sid": number_sid,
        "price": None,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": sid,
        "start_time": None,
        "status": "queued",
        "subresource_uris": subresources,
        "to": to,
        "to_formatted": formatted(to),
        "trunk_sid": None,
        "uri": f"{uri}.json",
        "test": test,
        "status_callback": first(form, "StatusCallback"),
    }


def number_resource(account: str, sid: str, number: str, now: datetime) -> dict[str, Any]:
    uri = f"/{API_VERSION}/Accounts/{account}/IncomingPhoneNumbers/{sid}"
    return {
        "account_sid": account,
        "address_requirements": "none",
        "address_sid": None,
        "api_version": API_VERSION,
        "beta": False,
        "bundle_sid": None,
        "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
        "date_created": rfc2822(now),
        "date_updated": rfc2822(now),
        "emergency_address_sid": None,
        "emergency_status": "Inactive",
        "friendly_name": formatted(number),
        "identity_sid": None,
        "origin": "twilio",
        "phone_number": number,
        "sid": sid,
        "sms_application_sid": None,
        "sms_fallback_method": "POST",
        "sms_fallback_url": None,
        "sms_method": "POST",
        "sms_url": None,
        "status": "in-use",
        "status_callback": None,
        "status_callback_method": "POST",
        "subresource_uris": {
            "assigned_add_ons": f"{uri}/AssignedAddOns.json",
        },
        "trunk_sid": None,
        "uri": f"{uri}.json",
        "voice_application_sid": None,
        "voice_caller_id_lookup": False,
        "voice_fallback_method": "POST",
        "voice_fallback_url": None,
        "voice_method": "POST",
        "voice_url": None,
    }


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


NUMBER_SETTINGS = {
    "friendly_name",
    "sms_application_sid",
    "sms_fallback_method",
    "sms_fallback_url",
    "sms_method",
    "sms_url",
    "status_callback",
    "status_callback_method",
    "trunk_sid",
    "voice_application_sid",
    "voice_caller_id_lookup",
    "voice_fallback_method",
    "voice_fallback_url",
    "voice_method",
    "voice_url",
}


def update_number(number: dict[str, Any], form: Form, now: datetime) -> None:
    """Apply SmsUrl, VoiceUrl, StatusCallback, ... to a number; ignore the rest."""
    for name, value in form:
        key = snake_case(name)
        if key in NUMBER_SETTINGS:
            number[key] = value == "true" if isinstance(number[key], bool) else value
    number["date_updated"] = rfc2822(now)


# -- list filters and paging (TWILIO.md §2.4) -----------------------------------------

PAGING_KEYS = ("Page", "PageSize", "PageToken")
DATE_FILTERS = {"DateSent": "=", "DateSent<": "<", "DateSent>": ">"}


def parse_moment(value: str) -> date | datetime:
    """A YYYY-MM-DD date or a YYYY-MM-DDTHH:MM:SSZ instant, as the API accepts."""
    try:
        if "T" in value:
            return datetime.strptime(value + "+0000", "%Y-%m-%dT%H:%M:%SZ%z")
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(20001, detail=f"DateSent {value!r}") from None


def date_matches(sent: datetime, operator: str, value: str) -> bool:
    if value.startswith(("<=", ">=")):  # the documented DateSent=<=YYYY-MM-DD form
        operator, value = value[0], value[2:]
    moment = parse_moment(value)
    if isinstance(moment, datetime):
        return compare(sent, operator, moment)
    return compare(sent.date(), operator, moment)  # a date covers its whole day


def compare(point: date, operator: str, moment: date) -> bool:
    if operator == "<":
        return point <= moment  # "DateSent<" means on or before
    if operator == ">":
        return point >= moment  # "DateSent>" means on or after
    return point == moment


def date_sent_matches(date_sent: str | None, query: Mapping[str, str]) -> bool:
    bounds = [(op, query[name]) for name, op in DATE_FILTERS.items() if name in query]
    if not bounds:
        return True
    if date_sent is None:  # not yet sent: no date to compare
        return False
    sent = parsedate_to_datetime(date_sent)
    return all(date_matches(sent, op, value) for op, value in bounds)


def matches(resource: Mapping[str, Any], query: Mapping[str, str]) -> bool:
    for name, key in (("To", "to"), ("From", "from")):
        if name in query and resource.get(key) != query[name]:
            return False
    return date_sent_matches(resource.get("date_sent"), query)


def page_size(query: Mapping[str, str]) -> int:
    try:
        size = int(query.get("PageSize", "50"))
    except ValueError:
        raise ApiError(20001, detail="PageSize") from None
    return max(1, min(size, 1000))


def page_start(items: list[dict[str, Any]], query: Mapping[str, str], size: int) -> int:
    """Where a page starts: after the sid its PageToken names, else at Page * PageSize."""
    token = query.get("PageToken", "")
    sids = [item["sid"] for item in items]
    if token.startswith("PA") and token[2:] in sids:
        return sids.index(token[2:]) + 1
    try:
        return max(0, int(query.get("Page", "0"))) * size
    except ValueError:
        raise ApiError(20001, detail="Page") from None


def page_envelope(key: str, items: list[dict[str, Any]], path: str, query: Form) -> dict[str, Any]:
    """One page of a list, in the envelope of TWILIO.md §2.4, with relative URIs."""
    options = dict(query)
    size = page_size(options)
    start = page_start(items, options, size)
    page = start // size
    chunk = items[start : start + size]
    filters = [(name, value) for name, value in query if name not in PAGING_KEYS]

    def uri(number: int, token: str | None = None) -> str:
        paging = [("PageSize", str(size)), ("Page", str(number))]
        paging += [("PageToken", token)] if token else []
        return f"{path}?{urlencode(filters + paging)}"

    more = start + size < len(items)
    return {
        key: [public(item) for item in chunk],
        "end": start + max(len(chunk), 1) - 1,
        "first_page_uri": uri(0),
        "next_page_uri": uri(page + 1, "PA" + chunk[-1]["sid"]) if more else None,
        "page": page,
        "page_size": size,
        "previous_page_uri": uri(page - 1) if page > 0 else None,
        "start": start,
        "uri": uri(page, options.get("PageToken")),
    }


# -- webhook delivery ---------------------------------------------------------------


@dataclass(frozen=True)
class Overrides:
    """Connection overrides from a webhook URL's #fragment (TWILIO.md §7.8)."""

    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    retries: int = 1
    policy: frozenset[str] = frozenset({"ct"})

    @classmethod
    def parse(cls, fragment: str) -> Overrides:
        options = dict(parse_qsl(fragment))
        try:
            return cls(
                connect_timeout=int(options.get("ct", 5000)) / 1000,
                read_timeout=int(options.get("rt", 15000)) / 1000,
                retries=min(int(options.get("rc", 1)), 5),
                policy=frozenset(options.get("rp", "ct").split(",")),
            )
        except ValueError:
            return cls()

    def retry_after_error(self, error: requests.RequestException) -> bool:
        if "all" in self.policy:
            return True
        if isinstance(error, requests.ConnectTimeout | requests.ConnectionError):
            return "ct" in self.policy
        return "rt" in self.policy and isinstance(error, requests.Timeout)

    def retry_after_status(self, status: int) -> bool:
        family = f"{status // 100}xx"
        return status >= 400 and ("all" in self.policy or family in self.policy)


@dataclass
class PendingCallback:
    """A status change still to be reported to a message's StatusCallback."""

    message_sid: str
    status: str
    url: str | None


def find_record(response: requests.Response) -> ET.Element | None:
    """The <Record> verb of a TwiML answer, if the answer is TwiML and has one."""
    if not response.ok:
        return None
    try:
        root = ET.fromstring(response.content)
    except ET.ParseError:
        return None
    return next(root.iter("Record"), None)


def wants_transcription(record: ET.Element) -> bool:
    # A transcribeCallback implies transcription, as Twilio's <Record> docs say.
    return record.get("transcribe", "").lower() == "true" or "transcribeCallback" in record.attrib


@dataclass
class IncomingCall:
    """The identifiers one simulated incoming call shares across its webhooks."""

    account: str
    from_: str
    to: str
    call_sid: str = field(default_factory=lambda: new_sid("CA"))
    recording_sid: str = field(default_factory=lambda: new_sid("RE"))
    transcription_sid: str = field(default_factory=lambda: new_sid("TR"))

    @property
    def recording_url(self) -> str:
        return f"{API_BASE}/{API_VERSION}/Accounts/{self.account}/Recordings/{self.recording_sid}"

    def voice_params(self) -> dict[str, str]:
        return {
            "AccountSid": self.account,
            "ApiVersion": API_VERSION,
            "CallSid": self.call_sid,
            "CallStatus": "ringing",
            "Called": self.to,
            **geo("Called", self.to),
            "Caller": self.from_,
            **geo("Caller", self.from_),
            "Direction": "inbound",
            "From": self.from_,
            **geo("From", self.from_),
            "To": self.to,
            **geo("To", self.to),
        }

    def action_params(self) -> dict[str, str]:
        return self.voice_params() | {
            "CallStatus": "completed",
            "Digits": "hangup",
            "RecordingDuration": "7",
            "RecordingSid": self.recording_sid,
            "RecordingUrl": self.recording_url,
        }

    def recording_params(self, started: datetime) -> dict[str, str]:
        return {
            "AccountSid": self.account,
            "CallSid": self.call_sid,
            "ErrorCode": "0",
            "RecordingChannels": "1",
            "RecordingDuration": "7",
            "RecordingSid": self.recording_sid,
            "RecordingSource": "RecordVerb",
            "RecordingStartTime": rfc2822(started),
            "RecordingStatus": "completed",
            "RecordingUrl": self.recording_url,
        }

    def transcription_params(self, text: str) -> dict[str, str]:
        return {
            "AccountSid": self.account,
            "ApiVersion": API_VERSION,
            "CallSid": self.call_sid,
            "CallStatus": "completed",
            "Called": self.to,
            "Caller": self.from_,
            "Direction": "inbound",
            "ForwardedFrom": "",
            "From": self.from_,
            "RecordingSid": self.recording_sid,
            "RecordingUrl": self.recording_url,
            "To": self.to,
            "TranscriptionSid": self.transcription_sid,
            "TranscriptionStatus": "completed",
            "TranscriptionText": text,
            "TranscriptionType": "fast",
            "TranscriptionUrl": f"{self.recording_url}/Transcriptions/{self.transcription_sid}",
        }


def incoming_sms_params(account: str, sid: str, from_: str, to: str, body: str) -> dict[str, str]:
    """The parameters of an incoming-message webhook, as captured from Twilio."""
    return {
        **geo("To", to),
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        **geo("From", from_),
        "To": to,
        "NumSegments": str(segment_info(body).segments),
        "MessageSid": sid,
        "AccountSid": account,
        "From": from_,
        "ApiVersion": API_VERSION,
    }


def status_params(message: Mapping[str, Any], status: str, now: datetime) -> dict[str, str]:
    """A message status callback body (TWILIO.md §7.5)."""
    params = {
        "MessageStatus": status,
        "ApiVersion": API_VERSION,
        "SmsSid": message["sid"],
        "SmsStatus": status,
        "To": message["to"],
        "From": message["from"] or "",
        "MessageSid": message["sid"],
        "AccountSid": message["account_sid"],
    }
    if message["messaging_service_sid"]:
        params["MessagingServiceSid"] = message["messaging_service_sid"]
    if status == "delivered":
        params["RawDlrDoneDate"] = now.strftime("%y%m%d%H%M")
    if status in ("undelivered", "failed") and message["error_code"]:
        params["ErrorCode"] = str(message["error_code"])
    return params


# -- the simulator ------------------------------------------------------------------

ACCOUNT_PATH = re.compile(r"/2010-04-01/Accounts/(?P<account>[^/]+?)(?P<rest>\.json|/.+)")
SID = r"(?P<sid>[A-Za-z0-9]+)"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"\.json"), "fetch_account"),
    ("POST", re.compile(r"/Messages\.json"), "create_message"),
    ("GET", re.compile(r"/Messages\.json"), "list_messages"),
    ("GET", re.compile(rf"/Messages/{SID}\.json"), "fetch_message"),
    ("POST", re.compile(rf"/Messages/{SID}\.json"), "update_message"),
    ("DELETE", re.compile(rf"/Messages/{SID}\.json"), "delete_message"),
    ("POST", re.compile(r"/Calls\.json"), "create_call"),
    ("GET", re.compile(r"/Calls\.json"), "list_calls"),
    ("GET", re.compile(rf"/Calls/{SID}\.json"), "fetch_call"),
    ("GET", re.compile(r"/IncomingPhoneNumbers\.json"), "list_numbers"),
    ("POST", re.compile(r"/IncomingPhoneNumbers\.json"), "buy_number"),
    ("GET", re.compile(rf"/IncomingPhoneNumbers/{SID}\.json"), "fetch_number"),
    ("POST", re.compile(rf"/IncomingPhoneNumbers/{SID}\.json"), "update_number"),
]
CREDENTIAL_NAMES = (
    "account_sid",
    "auth_token",
    "api_key_sid",
    "api_key_secret",
    "test_account_sid",
    "test_auth_token",
    "messaging_service_sid",
    "phone_number",
    "phone_number_sid",
)
# Test credentials reach only these (TWILIO.md §4); anything else is a 403.
TEST_CREDENTIAL_ROUTES = {"create_message", "create_call", "buy_number"}


@dataclass
class ApiRequest:
    method: str
    path: str
    account: str
    test: bool
    sid: str
    query: Form
    form: Form


def utc_now() -> datetime:
    return datetime.now(UTC)


class TwilioSimulator:
    """The Twilio REST API and webhook sender; a thread-safe WSGI callable."""

    phone_number = "+15017122661"

    def __init__(
        self,
        clock: Clock | None = None,
        callback_url_rewrite: Callable[[str], str] | None = None,
    ) -> None:
        self.clock: Clock = clock or utc_now
        self.callback_url_rewrite = callback_url_rewrite
        self._init_credentials()
        self.faults = Faults()
        self.latency_ms: float = 0
        self.max_concurrency: int | None = None
        self.auto_callbacks = False
        self.callback_delay = 0.2  # seconds before auto_callbacks delivers
        self.hold_sending = False  # keep messages queued until deliver_callbacks
        self.account_status = "active"  # "suspended" or "closed": its credentials get 20003
        self.messages: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.inbound: list[dict[str, Any]] = []
        self.opted_out: set[str] = set()
        self.unreachable: set[str] = set()
        self.webhook_log: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self._gate = threading.Lock()
        self._in_flight = 0
        self._delayed = 0  # "timeout" and "late" requests not processed yet
        self._settled = threading.Condition()
        self._visible: dict[str, dict[str, Any]] = {}  # sid -> resource the API can see
        self._sent: dict[str, dict[str, Any]] = {}  # sid -> every accepted message
        self._pending: list[PendingCallback] = []
        self.phone_number_sid = "PN" + stable_hex("phone-number")
        self.numbers = {
            self.phone_number_sid: number_resource(
                self.account_sid, self.phone_number_sid, self.phone_number, self.clock()
            )
        }

    def _init_credentials(self) -> None:
        self.account_sid = "AC" + stable_hex("account")
        self.auth_token = stable_hex("auth-token")
        self.api_key_sid = "SK" + stable_hex("api-key")
        self.api_key_secret = stable_hex("api-key-secret")
        self.test_account_sid = "AC" + stable_hex("test-account")
        self.test_auth_token = stable_hex("test-auth-token")
        self.messaging_service_sid = "MG" + stable_hex("messaging-service")
        self._credentials = {
            (self.account_sid, self.auth_token): self.account_sid,
            (self.api_key_sid, self.api_key_secret): self.account_sid,
            (self.test_account_sid, self.test_auth_token): self.test_account_sid,
        }

    @property
    def credentials(self) -> dict[str, str]:
        """Everything a configuration needs to talk to this simulator."""
        return {name: getattr(self, name) for name in CREDENTIAL_NAMES}

    # -- WSGI entry ---------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/_sim/"):
            reply = self._control(environ)
        else:
            reply = self._api(environ)
        return respond(start_response, reply.status, reply.body, reply.content_type, reply.headers)

    def _api(self, environ: dict[str, Any]) -> Reply:
        fault = self.faults.pick(environ["REQUEST_METHOD"], request_target(environ))
        if fault and fault.kind == "reset_before":
            raise abort_connection(environ)
        if fault and fault.kind == "late":
            raise self._late(environ, fault.delay)
        canned = fault_reply(fault)
        if canned:
            return canned
        if not self._admit():
            return Reply.error(ApiError(20429))
        delay = fault.delay if fault and fault.kind == "timeout" else None
        try:
            if delay is not None:
                self._delaying(+1)
            sleep_ms(self.latency_ms)
            if delay is not None:
                time.sleep(delay)  # the client gives up; the work still happens
            reply = self._serve(environ)
        finally:
            self._release()
            if delay is not None:
                self._delaying(-1)
        if fault and fault.kind == "reset":
            raise abort_connection(environ)  # accepted, but the answer never arrives
        return reply._replace(headers=reply.headers + self._response_headers())

    def _late(self, environ: dict[str, Any], delay: float) -> ConnectionAbortedError:
        """Answer nothing; process the request `delay` seconds after the client gave up.

        The client's request is read whole, then the connection is watched until the
        client closes it (its timeout); only then, and `delay` seconds later, is the
        message or call created, as a Twilio that finishes a slow create would.
        """
        self._delaying(+1)
        try:
            raw = environ["wsgi.input"]
            environ["wsgi.input"] = io.BytesIO(read_body(environ))
            _wait_until_closed(environ[SOCKET_KEY], LATE_LIMIT)
            time.sleep(delay)
            self._serve(environ)
            environ["wsgi.input"] = raw
        finally:
            self._delaying(-1)
        return abort_connection(environ)

    def _delaying(self, change: int) -> None:
        with self._settled:
            self._delayed += change
            self._settled.notify_all()

    def wait_settled(self, timeout: float = 30.0) -> bool:
        """Wait until every "timeout" and "late" request has been processed (or `timeout`)."""
        with self._settled:
            return self._settled.wait_for(lambda: self._delayed == 0, timeout)

    def _admit(self) -> bool:
        with self._gate:
            limit = self.max_concurrency
            if limit is not None and self._in_flight >= limit:
                return False
            self._in_flight += 1
            return True

    def _release(self) -> None:
        with self._gate:
            self._in_flight -= 1

    def _response_headers(self) -> list[tuple[str, str]]:
        return [
            ("Twilio-Request-Id", new_sid("RQ")),
            ("Twilio-Concurrent-Requests", str(self._in_flight + 1)),
            ("X-Home-Region", "us1"),
            ("X-Api-Domain", "api.twilio.com"),
        ]

    def _serve(self, environ: dict[str, Any]) -> Reply:
        try:
            request, handler = self._parse(environ)
            with self._lock:
                return handler(request)
        except ApiError as error:
            return Reply.error(error)

    def _parse(self, environ: dict[str, Any]) -> tuple[ApiRequest, Callable[[ApiRequest], Reply]]:
        """Authenticate and route a request, raising the error Twilio would answer."""
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        body = read_body(environ).decode()
        found = ACCOUNT_PATH.fullmatch(path)
        if not found:
            raise ApiError(20404, path=path)
        test = self._authenticate(environ, found["account"])
        name, sid = self._route(method, path, found["rest"])
        if test and name not in TEST_CREDENTIAL_ROUTES:
            raise ApiError(20008)
        form = parse_qsl(body, keep_blank_values=True)
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        request = ApiRequest(method, path, found["account"], test, sid, query, form)
        return request, getattr(self, f"_{name}")

    def _authenticate(self, environ: dict[str, Any], account: str) -> bool:
        """Check Basic auth against the path's account; True for test credentials."""
        scheme, _, encoded = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            raise ApiError(20003) from None
        user, _, secret = decoded.partition(":")
        owner = self._credentials.get((user, secret))
        if scheme.lower() != "basic" or owner is None or owner != account:
            raise ApiError(20003)
        if owner == self.account_sid and self.account_status != "active":
            raise ApiError(20003)  # Twilio's 20003 page: "Account is suspended or closed"
        return owner == self.test_account_sid

    @staticmethod
    def _route(method: str, path: str, rest: str) -> tuple[str, str]:
        allowed = False
        for route_method, pattern, name in ROUTES:
            found = pattern.fullmatch(rest)
            if found and route_method == method:
                return name, found.groupdict().get("sid") or ""
            allowed = allowed or bool(found)
        raise ApiError(20004) if allowed else ApiError(20404, path=path)

    # -- Account --------------------------------------------------------------------

    def _fetch_account(self, request: ApiRequest) -> Reply:
        now = rfc2822(self.clock())
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}"
        return Reply(
            200,
            {
                "auth_token": self.auth_token,
                "date_created": now,
                "date_updated": now,
                "friendly_name": "x3twilio simulator",
                "owner_account_sid": self.account_sid,
                "sid": self.account_sid,
                "status": "active",
                "subresource_uris": {"messages": f"{uri}/Messages.json"},
                "type": "Full",
                "uri": f"{uri}.json",
            },
        )

    # -- Messages -------------------------------------------------------------------

    def _create_message(self, request: ApiRequest) -> Reply:
        fields = MessageRequest.parse(request.form)
        check_message_fields(fields)
        if fields.to in self.opted_out:
            raise ApiError(21610)
        self._check_sender(fields, request.test)
        message = message_resource(request.account, fields, self.clock(), request.test)
        answer = public(message)  # the initial status, before sending moves it on
        self.messages.append(message)
        self._sent[message["sid"]] = message
        if not request.test:  # test credentials send nothing and call back nothing
            self._visible[message["sid"]] = message
            self._start_sending(message)
        return Reply(201, answer)

    def _check_sender(self, fields: MessageRequest, test: bool) -> None:
        if test:
            if fields.msid:  # test accounts have no Messaging Services
                raise ApiError(21701, msid=fields.msid)
            code = MAGIC_SMS_FROM.get(fields.from_, 21606)
            if code:
                raise ApiError(code, from_=fields.from_, to=fields.to)
            return
        if fields.msid and fields.msid != self.messaging_service_sid:
            raise ApiError(21701, msid=fields.msid)
        if fields.from_ and not (
            E164.fullmatch(fields.from_) or ALPHANUMERIC_SENDER.fullmatch(fields.from_)
        ):
            raise ApiError(21212, from_=fields.from_)
        if fields.from_ and fields.from_ not in self._owned_numbers():
            raise ApiError(21606, from_=fields.from_)

    def _owned_numbers(self) -> set[str]:
        return {number["phone_number"] for number in self.numbers.values()}

    def _start_sending(self, message: dict[str, Any]) -> None:
        """Queue the status changes after creation: sent, then delivered or undelivered."""
        final = "undelivered" if message["to"] in self.unreachable else "delivered"
        url = message["status_callback"]
        sid = message["sid"]
        self._pending += [PendingCallback(sid, "sent", url), PendingCallback(sid, final, url)]
        if not self.hold_sending:
            self._advance(message, "sent")
        if self.auto_callbacks:
            timer = threading.Timer(self.callback_delay, self.deliver_callbacks)
            timer.daemon = True
            timer.start()

    def _advance(self, message: dict[str, Any], status: str) -> None:
        """Move a message to a later status; a terminal status never regresses."""
        if message["status"] in TERMINAL or message["status"] == status:
            return
        now = self.clock()
        if status == "sent" or message["date_sent"] is None:
            message["date_sent"] = rfc2822(now)
            message["from"] = message["from"] or self.phone_number
            message["num_segments"] = str(segment_info(message["body"]).segments)
        if status == "undelivered":
            message["error_code"] = 30003
            message["error_message"] = "Unreachable destination handset"
        message["status"] = status
        message["date_updated"] = rfc2822(now)

    def _list_messages(self, request: ApiRequest) -> Reply:
        options = dict(request.query)
        found = [
            message
            for message in reversed(self._visible.values())
            if message["sid"].startswith(("SM", "MM"))
            and message["account_sid"] == request.account
            and matches(message, options)
        ]
        return Reply(200, page_envelope("messages", found, request.path, request.query))

    def _find(self, request: ApiRequest, kind: str = "/Messages/") -> dict[str, Any]:
        """The message or call the path names, if this account can see it."""
        resource = self._visible.get(request.sid)
        if (
            resource is None
            or resource["account_sid"] != request.account
            or kind not in resource["uri"]
        ):
            raise ApiError(20404, path=request.path)
        return resource

    def _fetch_message(self, request: ApiRequest) -> Reply:
        return Reply(200, public(self._find(request)))

    def _update_message(self, request: ApiRequest) -> Reply:
        message = self._find(request)
        status, body = first(request.form, "Status"), first(request.form, "Body")
        if (status is None) == (body is None) or body not in (None, ""):
            raise ApiError(30400)  # exactly one of Status=canceled or Body="" (redact)
        if status is not None:
            self._cancel(message, status)
        else:
            message["body"] = ""
        message["date_updated"] = rfc2822(self.clock())
        return Reply(200, public(message))

    def _cancel(self, message: dict[str, Any], status: str) -> None:
        if status != "canceled":
            raise ApiError(30400)
        if message["status"] not in CANCELABLE:
            raise ApiError(30409)
        message["status"] = "canceled"
        sid = message["sid"]
        self._pending = [item for item in self._pending if item.message_sid != sid]
        self._pending.append(PendingCallback(sid, "canceled", message["status_callback"]))

    def _delete_message(self, request: ApiRequest) -> Reply:
        del self._visible[self._find(request)["sid"]]
        return Reply(204)

    # -- Calls ----------------------------------------------------------------------

    def _create_call(self, request: ApiRequest) -> Reply:
        self._check_call(request.form, request.test)
        call = call_resource(
            request.account,
            request.form,
            self.clock(),
            request.test,
            None if request.test else self.phone_number_sid,
        )
        self.calls.append(call)
        if not request.test:
            self._visible[call["sid"]] = call
        return Reply(201, public(call))

    def _check_call(self, form: Form, test: bool) -> None:
        to, from_ = first(form, "To") or "", first(form, "From") or ""
        if not to:
            raise ApiError(21201)
        if not from_:
            raise ApiError(21213)
        if not any(first(form, name) for name in ("Url", "Twiml", "ApplicationSid")):
            raise ApiError(21205)
        if not E164.fullmatch(to) and not to.startswith("client:"):
            raise ApiError(21211, to=to)
        if to in MAGIC_CALL_TO:
            raise ApiError(MAGIC_CALL_TO[to], to=to)
        allowed = MAGIC_CALL_FROM.get(from_, 21210) if test else 0
        if not test and from_ not in self._owned_numbers():
            allowed = 21210 if E164.fullmatch(from_) else 21212
        if allowed:
            raise ApiError(allowed, from_=from_)

    def _list_calls(self, request: ApiRequest) -> Reply:
        options = dict(request.query)
        found = [
            call
            for call in reversed(self._visible.values())
            if call["sid"].startswith("CA")
            and call["account_sid"] == request.account
            and matches(call, options)
        ]
        return Reply(200, page_envelope("calls", found, request.path, request.query))

    def _fetch_call(self, request: ApiRequest) -> Reply:
        return Reply(200, public(self._find(request, "/Calls/")))

    # -- IncomingPhoneNumbers ---------------------------------------------------------

    def _list_numbers(self, request: ApiRequest) -> Reply:
        wanted = dict(request.query).get("PhoneNumber", "")
        found = [number for number in self.numbers.values() if wanted in number["phone_number"]]
        envelope = page_envelope("incoming_phone_numbers", found, request.path, request.query)
        return Reply(200, envelope)

    def _find_number(self, request: ApiRequest) -> dict[str, Any]:
        number = self.numbers.get(request.sid)
        if number is None:
            raise ApiError(20404, path=request.path)
        return number

    def _fetch_number(self, request: ApiRequest) -> Reply:
        return Reply(200, self._find_number(request))

    def _update_number(self, request: ApiRequest) -> Reply:
        number = self._find_number(request)
        update_number(number, request.form, self.clock())
        return Reply(200, number)

    def _buy_number(self, request: ApiRequest) -> Reply:
        """Buy a number; test credentials get the magic answers and nothing is kept."""
        wanted = first(request.form, "PhoneNumber") or ""
        area = first(request.form, "AreaCode") or ""
        number = self._pick_number(wanted, area, request.test)
        sid = new_sid("PN")
        resource = number_resource(request.account, sid, number, self.clock())
        update_number(resource, request.form, self.clock())
        if not request.test:
            self.numbers[sid] = resource
        return Reply(201, resource)

    def _pick_number(self, wanted: str, area: str, test: bool) -> str:
        if not (wanted or area):
            raise ApiError(20001, detail="PhoneNumber or AreaCode is required")
        if test and MAGIC_BUY_NUMBER.get(wanted):
            raise ApiError(MAGIC_BUY_NUMBER[wanted])
        if area and (area == "533" or not area.isdigit()):
            raise ApiError(21452, area=area)
        if area:
            return "+15005550006" if test else f"+1{area}555{random.randint(1000, 9999)}"
        if not E164.fullmatch(wanted):
            raise ApiError(21421)
        if wanted in self._owned_numbers():
            raise ApiError(21422)
        return wanted

    # -- status callbacks -------------------------------------------------------------

    def deliver_callbacks(
        self, shuffle: bool = False, duplicate: bool = False, seed: int = 0
    ) -> int:
        """POST every pending status callback now; return how many requests were made.

        `shuffle` delivers them out of order, `duplicate` sends each twice with the
        same I-Twilio-Idempotency-Token, as real Twilio sometimes does.
        """
        with self._lock:
            pending, self._pending = self._pending, []
        if shuffle:
            random.Random(seed).shuffle(pending)
        return sum(self._fire(item, copies=2 if duplicate else 1) for item in pending)

    def _fire(self, item: PendingCallback, copies: int) -> int:
        with self._lock:
            message = self._sent[item.message_sid]
            if item.status != "canceled":
                self._advance(message, item.status)
            params = status_params(message, item.status, self.clock())
        if not item.url:
            return 0
        token = str(uuid.uuid4())
        for _ in range(copies):
            self._deliver_quietly(item.url, params, token)
        return copies

    def _deliver_quietly(self, url: str, params: dict[str, str], token: str) -> None:
        # Twilio logs a failed callback (11200) and moves on; so does the simulator.
        with contextlib.suppress(requests.RequestException):
            self.post_webhook(url, params, token)

    def post_webhook(
        self, url: str, params: Mapping[str, str], token: str | None = None
    ) -> requests.Response:
        """POST a signed webhook as Twilio does, honouring #ct/#rt/#rc/#rp overrides.

        The signature covers the URL as given (without its fragment); the request
        goes to `callback_url_rewrite(url)` when a rewrite is set.
        """
        target, _, fragment = url.partition("#")
        overrides = Overrides.parse(fragment)
        headers = {
            "X-Twilio-Signature": compute_signature(target, dict(params), self.auth_token),
            "I-Twilio-Idempotency-Token": token or str(uuid.uuid4()),
            "User-Agent": USER_AGENT,
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "*/*",
        }
        destination = self.callback_url_rewrite(target) if self.callback_url_rewrite else target
        return self._post_with_retries(destination, dict(params), headers, overrides)

    def _post_with_retries(
        self,
        url: str,
        params: dict[str, str],
        headers: dict[str, str],
        overrides: Overrides,
    ) -> requests.Response:
        timeout = (overrides.connect_timeout, overrides.read_timeout)
        for attempt in range(overrides.retries + 1):
            last = attempt == overrides.retries
            try:
                response = requests.post(
                    url, data=params, headers=headers, timeout=timeout, allow_redirects=False
                )
            except requests.RequestException as error:
                self._log(url, headers, repr(error))
                if last or not overrides.retry_after_error(error):
                    raise
                continue
            self._log(url, headers, response.status_code)
            if last or not overrides.retry_after_status(response.status_code):
                return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _log(self, url: str, headers: Mapping[str, str], outcome: int | str) -> None:
        token = headers["I-Twilio-Idempotency-Token"]
        with self._lock:
            self.webhook_log.append({"url": url, "token": token, "outcome": outcome})

    # -- incoming messages and calls ----------------------------------------------------

    def send_incoming_sms(
        self, url: str, from_: str, body: str, to: str | None = None
    ) -> requests.Response:
        """Play an SMS from `from_` arriving on one of our numbers: POST its webhook."""
        to = to or self.phone_number
        sid = new_sid("SM")
        with self._lock:
            message = inbound_message_resource(self.account_sid, sid, from_, to, body, self.clock())
            self.inbound.append(message)
            self._visible[sid] = message
            self._apply_opt_keywords(from_, body)
        params = incoming_sms_params(self.account_sid, sid, from_, to, body)
        return self.post_webhook(url, params)

    def _apply_opt_keywords(self, from_: str, body: str) -> None:
        # Only a single-word message is a keyword; Twilio still forwards it.
        word = body.strip().upper()
        if word in STOP_WORDS:
            self.opted_out.add(from_)
        elif word in START_WORDS:
            self.opted_out.discard(from_)

    def place_incoming_call(
        self,
        voice_url: str,
        from_: str,
        transcription: str = "Hello, this is a voicemail left on the simulator.",
        to: str | None = None,
    ) -> list[requests.Response]:
        """Play a call that reaches voicemail: the voice webhook, then <Record>'s callbacks.

        The action URL is requested only when <Record action="..."> names one (real
        Twilio would otherwise re-request the voice URL). Relative callback URLs are
        resolved against the voice URL.
        """
        call = IncomingCall(self.account_sid, from_, to or self.phone_number)
        answer = self.post_webhook(voice_url, call.voice_params())
        record = find_record(answer)
        if record is None:
            return [answer]
        return [answer, *self._after_recording(voice_url, record, call, transcription)]

    def _after_recording(
        self, voice_url: str, record: ET.Element, call: IncomingCall, transcription: str
    ) -> list[requests.Response]:
        responses = []
        if record.get("action"):
            action = urljoin(voice_url, record.get("action", ""))
            responses.append(self.post_webhook(action, call.action_params()))
        if record.get("recordingStatusCallback"):
            status_url = urljoin(voice_url, record.get("recordingStatusCallback", ""))
            params = call.recording_params(self.clock())
            responses.append(self.post_webhook(status_url, params))
        if wants_transcription(record) and transcription and record.get("transcribeCallback"):
            text_url = urljoin(voice_url, record.get("transcribeCallback", ""))
            responses.append(self.post_webhook(text_url, call.transcription_params(transcription)))
        return responses

    # -- control routes (no auth), for tests driving another process ---------------------

    def _control(self, environ: dict[str, Any]) -> Reply:
        route = (environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
        handler = CONTROL_ROUTES.get(route)
        if handler is None:
            return Reply(404, {"error": f"no control route {route[0]} {route[1]}"})
        try:
            options = json.loads(read_body(environ) or b"{}")
            if not isinstance(options, dict):
                raise TypeError("expected a JSON object")
            return handler(self, options)
        except (ValueError, TypeError, KeyError) as error:
            return Reply(400, {"error": str(error)})

    def _ctl_messages(self, options: dict[str, Any]) -> Reply:
        with self._lock:
            return Reply(200, json.loads(json.dumps(self.messages)))

    def _ctl_credentials(self, options: dict[str, Any]) -> Reply:
        return Reply(200, self.credentials)

    def _ctl_add_fault(self, options: dict[str, Any]) -> Reply:
        known = {key: options[key] for key in ("skip", "times", "delay") if key in options}
        fault = self.faults.add(str(options["kind"]), str(options.get("match", "")), **known)
        return Reply(201, asdict(fault))

    def _ctl_clear_faults(self, options: dict[str, Any]) -> Reply:
        self.faults.clear()
        return Reply(204)

    def _ctl_account(self, options: dict[str, Any]) -> Reply:
        status = str(options["status"])
        if status not in ACCOUNT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(ACCOUNT_STATUSES)}")
        self.account_status = status
        return Reply(200, {"status": status})

    def _ctl_settle(self, options: dict[str, Any]) -> Reply:
        settled = self.wait_settled(float(options.get("timeout", 30)))
        return Reply(200, {"settled": settled, "messages": len(self.messages)})

    def _ctl_latency(self, options: dict[str, Any]) -> Reply:
        self.latency_ms = float(options["ms"])
        return Reply(200, {"ms": self.latency_ms})

    def _ctl_opt_out(self, options: dict[str, Any]) -> Reply:
        with self._lock:
            self.opted_out.add(str(options["number"]))
            return Reply(200, {"opted_out": sorted(self.opted_out)})

    def _ctl_unreachable(self, options: dict[str, Any]) -> Reply:
        with self._lock:
            self.unreachable.add(str(options["number"]))
            return Reply(200, {"unreachable": sorted(self.unreachable)})

    def _ctl_deliver(self, options: dict[str, Any]) -> Reply:
        flags = {key: options[key] for key in ("shuffle", "duplicate", "seed") if key in options}
        return Reply(200, {"delivered": self.deliver_callbacks(**flags)})

    def _ctl_incoming_sms(self, options: dict[str, Any]) -> Reply:
        response = self.send_incoming_sms(
            options["url"], options["from"], options["body"], options.get("to")
        )
        return Reply(200, {"status": response.status_code})

    def _ctl_incoming_call(self, options: dict[str, Any]) -> Reply:
        extra = {"transcription": options["transcription"]} if "transcription" in options else {}
        responses = self.place_incoming_call(
            options["url"], options["from"], to=options.get("to"), **extra
        )
        return Reply(200, {"statuses": [response.status_code for response in responses]})


CONTROL_ROUTES: dict[tuple[str, str], Callable[[TwilioSimulator, dict[str, Any]], Reply]] = {
    ("GET", "/_sim/messages"): TwilioSimulator._ctl_messages,
    ("GET", "/_sim/credentials"): TwilioSimulator._ctl_credentials,
    ("POST", "/_sim/faults"): TwilioSimulator._ctl_add_fault,
    ("DELETE", "/_sim/faults"): TwilioSimulator._ctl_clear_faults,
    ("POST", "/_sim/latency"): TwilioSimulator._ctl_latency,
    ("POST", "/_sim/account"): TwilioSimulator._ctl_account,
    ("POST", "/_sim/settle"): TwilioSimulator._ctl_settle,
    ("POST", "/_sim/opt-out"): TwilioSimulator._ctl_opt_out,
    ("POST", "/_sim/unreachable"): TwilioSimulator._ctl_unreachable,
    ("POST", "/_sim/callbacks/deliver"): TwilioSimulator._ctl_deliver,
    ("POST", "/_sim/incoming-sms"): TwilioSimulator._ctl_incoming_sms,
    ("POST", "/_sim/incoming-call"): TwilioSimulator._ctl_incoming_call,
}


def fault_reply(fault: Fault | None) -> Reply | None:
    """The canned answer of a fault that replaces processing; None to process."""
    if fault is None or fault.kind in ("timeout", "late", "reset", "reset_before"):
        return None
    if fault.kind.startswith("error:"):  # Twilio's own answer for one error code
        return Reply.error(ApiError(int(fault.kind.partition(":")[2])))
    if fault.kind == "html":  # a proxy's error page instead of JSON
        page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        return Reply(502, page, "text/html")
    if fault.kind == "garbage":
        return Reply(200, b'{"sid": "SM', "application/json")
    if fault.kind.isdigit():
        status = int(fault.kind)
        error = ApiError(STATUS_CODES.get(status, status))
        return Reply(status, error.body() | {"status": status})
    return None


def _wait_until_closed(sock: socket.socket, limit: float) -> None:
    """Block until the peer closes `sock` (or `limit` seconds pass)."""
    deadline = time.monotonic() + limit
    while (left := deadline - time.monotonic()) > 0:
        try:
            readable, _, _ = select.select([sock], [], [], left)
            if readable and not sock.recv(1, socket.MSG_PEEK):
                return  # end of stream: the client gave up
        except OSError:
            return
        if readable:
            time.sleep(0.01)  # data we do not read (not expected): keep watching
