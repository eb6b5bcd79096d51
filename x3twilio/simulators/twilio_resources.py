"""The resources the Twilio simulator serves, as Twilio shows them, and its list pages.

Messages, Calls, IncomingPhoneNumbers and the Account with every property of the response
schemas in Twilio's description; the list filters each list documents; paging with
PageToken as Twilio's next_page_uri carries it.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import phonenumbers

from x3twilio.segments import segment_info

Form = Sequence[tuple[str, str]]

API_VERSION = "2010-04-01"
API_BASE = "https://api.twilio.com"
# The simulator's bookkeeping, not shown by the API.
PRIVATE_KEYS = ("test", "status_callback", "validity_period", "content_sid")


def new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def stable_hex(label: str) -> str:
    """32 hex digits derived from a label: the same credentials in every process."""
    return hashlib.sha256(f"x3twilio-simulator:{label}".encode()).hexdigest()[:32]


def rfc2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0))


def first(form: Form, name: str) -> str | None:
    return next((value for key, value in form if key == name), None)


def every(form: Form, name: str) -> list[str]:
    return [value for key, value in form if key == name]


def public(resource: Mapping[str, Any]) -> dict[str, Any]:
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
    content_sid: str = ""  # a Content API template (HX...), whose text becomes the body
    content_variables: str = ""  # its {{1}}... values, a JSON object

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
            content_sid=first(form, "ContentSid") or "",
            content_variables=first(form, "ContentVariables") or "",
        )


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
        "content_sid": request.content_sid or None,
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
        "emergency_address_status": "unregistered",
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
        "type": "local",
        "uri": f"{uri}.json",
        "voice_application_sid": None,
        "voice_caller_id_lookup": False,
        "voice_fallback_method": "POST",
        "voice_fallback_url": None,
        "voice_method": "POST",
        "voice_receive_mode": "voice",
        "voice_url": None,
    }


def account_resource(sid: str, auth_token: str, status: str, now: datetime) -> dict[str, Any]:
    uri = f"/{API_VERSION}/Accounts/{sid}"
    names = ("messages", "calls", "incoming_phone_numbers")
    parts = ("Messages", "Calls", "IncomingPhoneNumbers")
    return {
        "auth_token": auth_token,
        "date_created": rfc2822(now),
        "date_updated": rfc2822(now),
        "friendly_name": "x3twilio simulator",
        "owner_account_sid": sid,
        "sid": sid,
        "status": status,
        "subresource_uris": {n: f"{uri}/{part}.json" for n, part in zip(names, parts, strict=True)},
        "type": "Full",
        "uri": f"{uri}.json",
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
    "voice_receive_mode",
    "voice_url",
    "emergency_status",
    "emergency_address_sid",
    "address_sid",
    "identity_sid",
    "bundle_sid",
}


def update_number(number: dict[str, Any], form: Form, now: datetime) -> None:
    """Apply SmsUrl, VoiceUrl, StatusCallback, ... to a number; ignore the rest."""
    for name, value in form:
        key = snake_case(name)
        if key in NUMBER_SETTINGS:
            number[key] = value.lower() == "true" if isinstance(number[key], bool) else value
    number["date_updated"] = rfc2822(now)


# -- list filters and paging (TWILIO.md §2.4) -----------------------------------------

PAGING_KEYS = ("Page", "PageSize", "PageToken")
# A list's date filters: parameter -> (the resource's date, comparison).
MESSAGE_DATES = {"DateSent": ("date_sent", "="), "DateSent<": ("date_sent", "<")}
MESSAGE_DATES |= {"DateSent>": ("date_sent", ">")}
CALL_DATES = {
    f"{name}{op}": (key, op or "=")
    for name, key in (("StartTime", "start_time"), ("EndTime", "end_time"))
    for op in ("", "<", ">")
}
Filter = Callable[[Mapping[str, Any], Mapping[str, str]], bool]


def options(query: Form) -> dict[str, str]:
    """A list request's filters and paging; an empty value filters nothing."""
    return {name: value for name, value in query if value}


def parse_moment(value: str) -> date | datetime:
    """A YYYY-MM-DD date or an ISO 8601 instant (UTC unless it says otherwise)."""
    if "T" not in value:
        return date.fromisoformat(value)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def date_matches(stamp: datetime, operator: str, value: str) -> bool:
    if value.startswith(("<=", ">=")):  # the documented DateSent=<=YYYY-MM-DD form
        operator, value = value[0], value[2:]
    moment = parse_moment(value)
    if isinstance(moment, datetime):
        return compare(stamp, operator, moment)
    return compare(stamp.date(), operator, moment)  # a date covers its whole day


def compare(point: date, operator: str, moment: date) -> bool:
    if operator == "<":
        return point <= moment  # "DateSent<" means on or before
    if operator == ">":
        return point >= moment  # "DateSent>" means on or after
    return point == moment


def dates_match(
    resource: Mapping[str, Any], query: Mapping[str, str], filters: Mapping[str, tuple[str, str]]
) -> bool:
    for name, (key, operator) in filters.items():
        if name not in query:
            continue
        stamp = resource.get(key)
        if stamp is None:  # not sent (or started) yet: no date to compare
            return False
        if not date_matches(parsedate_to_datetime(stamp), operator, query[name]):
            return False
    return True


def equal(resource: Mapping[str, Any], query: Mapping[str, str], pairs: dict[str, str]) -> bool:
    return all(resource.get(key) == query[name] for name, key in pairs.items() if name in query)


def message_matches(message: Mapping[str, Any], query: Mapping[str, str]) -> bool:
    """ListMessage's filters: To, From, DateSent, DateSent<, DateSent>."""
    return equal(message, query, {"To": "to", "From": "from"}) and dates_match(
        message, query, MESSAGE_DATES
    )


def call_matches(call: Mapping[str, Any], query: Mapping[str, str]) -> bool:
    """ListCall's filters: To, From, ParentCallSid, Status, StartTime and EndTime (<, >)."""
    pairs = {"To": "to", "From": "from", "Status": "status", "ParentCallSid": "parent_call_sid"}
    return equal(call, query, pairs) and dates_match(call, query, CALL_DATES)


def number_matches(number: Mapping[str, Any], query: Mapping[str, str]) -> bool:
    """ListIncomingPhoneNumber's filters: PhoneNumber (part of one, '*' for any digit),
    FriendlyName, Beta, Origin."""
    wanted = query.get("PhoneNumber")
    if wanted and not number_pattern(wanted).search(number["phone_number"]):
        return False
    if "Beta" in query and number["beta"] != (query["Beta"].lower() == "true"):
        return False
    return equal(number, query, {"FriendlyName": "friendly_name", "Origin": "origin"})


def number_pattern(wanted: str) -> re.Pattern[str]:
    return re.compile("".join(r"\d" if char == "*" else re.escape(char) for char in wanted))


def page_start(items: list[dict[str, Any]], query: Mapping[str, str], size: int) -> int:
    """Where a page starts: after the sid its PageToken names, else at Page * PageSize."""
    token = query.get("PageToken", "")
    sids = [item["sid"] for item in items]
    if token.startswith("PA") and token[2:] in sids:
        return sids.index(token[2:]) + 1
    return int(query.get("Page", "0")) * size  # the description has checked it


def page_envelope(
    key: str,
    items: list[dict[str, Any]],
    path: str,
    query: Form,
    show: Callable[[Mapping[str, Any]], dict[str, Any]] = public,
) -> dict[str, Any]:
    """One page of a list, in the envelope of TWILIO.md §2.4, with relative URIs."""
    given = options(query)
    size = int(given.get("PageSize", "50"))  # 1..1000, checked by the description
    start = page_start(items, given, size)
    page = start // size
    chunk = items[start : start + size]
    filters = [(name, value) for name, value in query if name not in PAGING_KEYS]

    def uri(number: int, token: str | None = None) -> str:
        paging = [("PageSize", str(size)), ("Page", str(number))]
        paging += [("PageToken", token)] if token else []
        return f"{path}?{urlencode(filters + paging)}"

    more = start + size < len(items)
    return {
        key: [show(item) for item in chunk],
        "end": start + max(len(chunk), 1) - 1,
        "first_page_uri": uri(0),
        "next_page_uri": uri(page + 1, "PA" + chunk[-1]["sid"]) if more else None,
        "page": page,
        "page_size": size,
        "previous_page_uri": uri(page - 1) if page > 0 else None,
        "start": start,
        "uri": uri(page, given.get("PageToken")),
    }
