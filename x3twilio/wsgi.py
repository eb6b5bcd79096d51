"""The webhook shim: check Twilio's signature, spool the payload, answer fast. Nothing else.

Serve `x3twilio.wsgi:application` with gunicorn or waitress behind an HTTPS proxy; it reads
its configuration from $X3TWILIO_CONFIG. No X3 call ever happens inside a request.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import quoteattr

from x3twilio.audit import iso_ms, utc_now
from x3twilio.config import Config
from x3twilio.errors import X3TwilioError
from x3twilio.signature import validate_signature
from x3twilio.spool import Spool

StartResponse = Callable[..., Any]
XML = "text/xml; charset=utf-8"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
ROUTES = ("sms", "voice", "recording", "transcription", "status")
# What makes two deliveries of one event the same, when Twilio sends no idempotency token.
_IDENTITY = ("MessageSid", "CallSid", "RecordingSid", "TranscriptionSid")
_STATE = ("MessageStatus", "CallStatus", "RecordingStatus", "TranscriptionStatus", "SequenceNumber")


class Shim:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.spool = Spool(config.state_dir)
        self.tokens = [
            t for t in (config.twilio.auth_token, config.twilio.previous_auth_token) if t
        ]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz":
            return _answer(start_response, 200, "ok\n", "text/plain")
        route = path.removeprefix("/twilio/")
        if not path.startswith("/twilio/") or route not in ROUTES:
            return _answer(start_response, 404, "not found\n", "text/plain")
        if method != "POST":
            return _answer(start_response, 405, "POST only\n", "text/plain", [("Allow", "POST")])
        return self._webhook(route, environ, start_response)

    def _webhook(
        self, route: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > self.config.inbound.max_body:
            return _answer(start_response, 413, "payload too large\n", "text/plain")
        body = environ["wsgi.input"].read(length) if length else b""
        url = self.public_url(environ)
        is_json = "json" in environ.get("CONTENT_TYPE", "")
        params: Any = (
            body if is_json else parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        )
        signature = environ.get("HTTP_X_TWILIO_SIGNATURE")
        if not any(validate_signature(url, params, signature, t) for t in self.tokens):
            # Say which URL was checked (never the token): a wrong public_url is the usual cause.
            environ["wsgi.errors"].write(
                f"x3twilio: 403 for /twilio/{route}: X-Twilio-Signature does not match "
                f"{url} (check public_url and twilio.auth_token)\n"
            )
            return _answer(start_response, 403, "invalid signature\n", "text/plain")
        fields = dict(params) if not is_json else {}
        if route == "voice" and fields.get("RecordingUrl"):
            return _answer(start_response, 200, self.goodbye_twiml(), XML)  # <Record> action
        payload = {
            "route": route,
            "received": iso_ms(utc_now()),
            "url": url,
            "params": params if not is_json else body.decode("utf-8", "replace"),
        }
        token = environ.get("HTTP_I_TWILIO_IDEMPOTENCY_TOKEN")
        try:
            self.spool.write(payload, token or _identity(route, fields))
        except X3TwilioError as exc:
            environ["wsgi.errors"].write(f"x3twilio: {exc}\n")
            return _answer(start_response, 503, "cannot spool\n", "text/plain")
        if route == "sms":
            return _answer(start_response, 200, EMPTY_TWIML, XML)
        if route == "voice":
            return _answer(start_response, 200, self.record_twiml(), XML)
        return _answer(start_response, 204, "", "text/plain")

    def public_url(self, environ: dict[str, Any]) -> str:
        """The URL Twilio called: the configured public base + the raw path and query."""
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if raw:
            target = raw.removeprefix(environ.get("SCRIPT_NAME", ""))
        else:
            target = quote(environ.get("PATH_INFO", ""))
            if environ.get("QUERY_STRING"):
                target += "?" + environ["QUERY_STRING"]
        return self.config.public_url + target

    def record_twiml(self) -> str:
        inbound, base = self.config.inbound, self.config.public_url
        return (
            '<?xml version="1.0" encoding="UTF-8"?><Response>'
            f"<Say language={quoteattr(inbound.voice_language)}>{_xml(inbound.voice_prompt)}</Say>"
            f'<Record maxLength="120" transcribe="true"'
            f" action={quoteattr(base + '/twilio/voice')}"
            f" recordingStatusCallback={quoteattr(base + '/twilio/recording')}"
            f" transcribeCallback={quoteattr(base + '/twilio/transcription')}/>"
            "</Response>"
        )

    def goodbye_twiml(self) -> str:
        return (
            '<?xml version="1.0" encoding="UTF-8"?><Response>'
            f"<Say language={quoteattr(self.config.inbound.voice_language)}>"
            f"{_xml(self.config.inbound.voice_goodbye)}</Say><Hangup/></Response>"
        )


def _identity(route: str, fields: dict[str, str]) -> str:
    sid = next((fields[k] for k in _IDENTITY if fields.get(k)), "")
    state = ":".join(fields.get(k, "") for k in _STATE)
    return f"{route}:{sid}:{state}" if sid else f"{route}:{sorted(fields.items())}"


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _answer(
    start_response: StartResponse,
    status: int,
    body: str,
    content_type: str,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    data = body.encode()
    reasons = {
        200: "OK",
        204: "No Content",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        413: "Payload Too Large",
        503: "Service Unavailable",
    }
    start_response(
        f"{status} {reasons[status]}",
        [("Content-Type", content_type), ("Content-Length", str(len(data))), *(headers or [])],
    )
    return [data] if data else []


_shim: Shim | None = None


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI entry point; the configuration is read once, from $X3TWILIO_CONFIG."""
    global _shim
    if _shim is None:
        from x3twilio.config import config_path, load_config

        _shim = Shim(load_config(config_path(None, os.environ)))
    return _shim(environ, start_response)
