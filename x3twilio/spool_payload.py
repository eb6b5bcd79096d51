"""The one shape of a spooled webhook, whether Twilio posted a form or a JSON body: made by
the shim (`make_payload`, `dedupe_key`), checked and normalised for ingest (`normalise`).

Version 2: `{"v": 2, "route", "received", "url", "format": "form"|"json", "fields": [[name,
value], …] (null for a JSON body that is not an object), "body" (the raw body, or
"body_base64" when it is not UTF-8), "body_sha256"}`. Version 1 files (`params`: pairs, or
the raw JSON body as a string) are still read.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

ROUTES = ("sms", "voice", "recording", "transcription", "status")
VERSION = 2
MAX_FIELD = 64 * 1024  # a name or value longer than this is not one Twilio sends

# What makes two deliveries of one event the same: the sid and the state the event reports,
# all inside what the signature covers (never the unsigned I-Twilio-Idempotency-Token).
IDENTITY = ("MessageSid", "CallSid", "RecordingSid", "TranscriptionSid")
STATE = ("MessageStatus", "CallStatus", "RecordingStatus", "TranscriptionStatus", "SequenceNumber")


class Unusable(Exception):
    """A spooled item that cannot be processed for a lasting reason: `code` and why."""

    def __init__(self, code: str, message: str) -> None:
        self.code, self.message = code, message
        super().__init__(message)


@dataclass(frozen=True)
class Inbound:
    """One webhook, normalised: the route, when it came, the URL it was signed for, its fields."""

    route: str
    received: str  # UTC, ISO 8601 with milliseconds
    url: str
    fields: dict[str, str]

    @property
    def sid(self) -> str:
        return next((self.fields[k] for k in IDENTITY if self.fields.get(k)), "")


def form_fields(body: bytes) -> list[tuple[str, str]]:
    """The fields of a form body, as the signature sees them."""
    from urllib.parse import parse_qsl

    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)


def json_fields(body: bytes) -> list[tuple[str, str]] | None:
    """The top-level members of a JSON object body as text fields; None if not an object.

    Text stays text, numbers and booleans keep their JSON spelling, null is empty, and a
    nested object or list is kept as its JSON text.
    """
    try:
        data = json.loads(body)
        if not isinstance(data, dict):
            return None
        return [(str(name), _text(value)) for name, value in data.items()]
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested without end
        return None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def make_payload(
    route: str, received: str, url: str, is_json: bool, body: bytes
) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
    """The stored payload of one webhook, and its fields (None: a JSON body, not an object)."""
    fields = json_fields(body) if is_json else form_fields(body)
    payload: dict[str, Any] = {
        "v": VERSION,
        "route": route,
        "received": received,
        "url": url,
        "format": "json" if is_json else "form",
        "fields": [list(pair) for pair in fields] if fields is not None else None,
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }
    try:
        payload["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        payload["body_base64"] = base64.b64encode(body).decode()
    return payload, fields


def dedupe_key(
    route: str, url: str, fields: list[tuple[str, str]] | None, body: bytes, is_json: bool
) -> str:
    """What identifies one delivery, from signed content only: the sid and the state it
    reports, or else a hash of what the signature covers (the URL and the fields or body)."""
    from x3twilio.signature import field_string

    named = dict(fields or [])
    sid = next((named[k] for k in IDENTITY if named.get(k)), "")
    if sid:
        return f"{route}:{sid}:" + ":".join(named.get(k, "") for k in STATE)
    signed = url.encode() + b"\n" + (body if is_json else field_string(fields or []).encode())
    return f"{route}:sha256:{hashlib.sha256(signed).hexdigest()}"


def normalise(raw: Any) -> Inbound:
    """Check a stored payload (version 2, or 1) and return it normalised; raise Unusable."""
    if not isinstance(raw, dict):
        raise Unusable("bad_shape", f"the payload is a JSON {_kind(raw)}, not an object")
    route = raw.get("route")
    if not isinstance(route, str):
        raise Unusable("bad_value", f"route is {_kind(route)}, not text")
    if route not in ROUTES:
        shown = repr(route) if re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", route) else "(not a name)"
        raise Unusable("unknown_route", f"unknown route {shown}: no handler for it")
    version = raw.get("v", 1)
    if version not in (1, VERSION) or isinstance(version, bool):
        raise Unusable("bad_shape", "not a payload version this ingest reads")
    received = _received(raw.get("received"))
    url = raw.get("url", "")
    if not isinstance(url, str):
        raise Unusable("bad_value", f"url is {_kind(url)}, not text")
    if version == VERSION or "fields" in raw:
        fields = raw.get("fields")
        if fields is None and raw.get("format") == "json":
            raise Unusable("not_an_object", "the JSON body is not a JSON object: nothing to read")
        pairs = _pairs(fields, "fields")
    else:
        pairs = _legacy_params(raw.get("params"))
    return Inbound(route, received, url, dict(pairs))


def _received(value: Any) -> str:
    from x3twilio.audit import iso_ms
    from x3twilio.decoding import parse_stamp

    if not isinstance(value, str):
        raise Unusable("bad_value", f"received is {_kind(value)}, not a time")
    try:
        return iso_ms(parse_stamp(value))
    except (ValueError, OverflowError):
        raise Unusable("bad_value", "received is not an ISO 8601 UTC time") from None


def _legacy_params(params: Any) -> list[tuple[str, str]]:
    """Version 1: form pairs, or the raw JSON body as a string (the shim stored both)."""
    if isinstance(params, str):
        fields = json_fields(params.encode("utf-8", "replace"))
        if fields is None:
            raise Unusable(
                "not_an_object", "params is text that is not a JSON object: nothing to read"
            )
        return fields
    if params is None:
        return []
    return _pairs(params, "params")


def _pairs(value: Any, name: str) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        value = list(value.items())
    if not isinstance(value, list):
        raise Unusable("bad_value", f"{name} is {_kind(value)}, not a list of fields")
    pairs = []
    for index, pair in enumerate(value):
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            raise Unusable("bad_value", f"{name}[{index}] is not a [name, value] pair")
        key, text = pair
        if not isinstance(key, str) or not isinstance(text, str):
            what = "name" if not isinstance(key, str) else "value"
            shown = f" of {_short(key)}" if isinstance(key, str) else ""
            bad = key if what == "name" else text
            raise Unusable(
                "bad_value", f"{name}[{index}]: the {what}{shown} is {_kind(bad)}, not text"
            )
        if len(key) > MAX_FIELD or len(text) > MAX_FIELD:
            raise Unusable("bad_value", f"{name}[{index}]: longer than {MAX_FIELD} characters")
        pairs.append((key, text))
    return pairs


def known_fields(raw: dict[str, Any]) -> dict[str, str]:
    """What a payload that cannot be processed still tells: its sids, From and To, when they
    are text."""
    fields = raw.get("fields") if "fields" in raw else raw.get("params")
    if isinstance(fields, str):
        fields = json_fields(fields.encode("utf-8", "replace"))
    if isinstance(fields, dict):
        fields = list(fields.items())
    if not isinstance(fields, list):
        return {}
    wanted = {*IDENTITY, "From", "To"}
    pairs = [p for p in fields if isinstance(p, list | tuple) and len(p) == 2]
    return {k: v for k, v in pairs if k in wanted and isinstance(k, str) and isinstance(v, str)}


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "a boolean", int: "a number"}
    if value is None:
        return "missing or null"
    return names.get(type(value), "a number" if isinstance(value, float) else type(value).__name__)


def _short(name: str) -> str:
    return repr(name) if re.fullmatch(r"[A-Za-z0-9_]{1,40}", name) else "a field"
