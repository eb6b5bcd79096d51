"""Twilio SendGrid's v3 mail send (TWILIO.md §9), as a WSGI app.

Bearer auth with one deterministic key, the validation SendGrid does on a mail send
with its `{"errors": [{"message", "field", "help"}]}` bodies, 403 for a sender that is
not verified, sandbox mode, and injected faults. Every accepted mail is kept in `mails`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from x3twilio.simulators import (
    Fault,
    Faults,
    Reply,
    StartResponse,
    abort_connection,
    read_body,
    request_target,
    send,
    sleep_ms,
)
from x3twilio.simulators.control import add_fault, clear_faults, dispatch_control

MAIL_SEND = "/v3/mail/send"
DEFAULT_SENDER = "alerts@example.com"
RATE_LIMIT = 600  # X-RateLimit-Limit on a 429
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"

UNAUTHORIZED = "The provided authorization grant is invalid, expired, or revoked"
UNVERIFIED = (
    "The from address does not match a verified Sender Identity. Mail cannot be sent "
    "until this error is resolved. Visit "
    "https://sendgrid.com/docs/for-developers/sending-email/sender-identity/ to see the "
    "Sender Identity requirements"
)
NO_PERSONALIZATIONS = (
    "The personalizations field is required and must have at least one personalization."
)
NO_TO = (
    "The to array is required for all personalization objects, and must have at least "
    "one email object with a valid email address."
)
BAD_ADDRESS = "Does not contain a valid address."
NO_FROM = (
    "The from object must be provided for every email send. It is an object that requires "
    "the email parameter, but may also contain a name parameter."
)
NO_SUBJECT = (
    "The subject is required. You can get around this requirement if you use a template "
    "with a subject defined or if every personalization has a subject defined."
)
NO_CONTENT = (
    "Unless a valid template_id is provided, the content parameter is required. There "
    "must be at least one defined content block."
)
EMPTY_CONTENT = "The content value must be a string at least one character in length."
PLAIN_FIRST = (
    "If present, text/plain content must be first, followed by text/html, followed by "
    "any other content."
)


def error_body(message: str, field: str | None = None) -> dict[str, Any]:
    return {"errors": [{"message": message, "field": field, "help": None}]}


def problems(mail: Any) -> list[dict[str, Any]]:
    """Every validation error of a mail send body, as SendGrid lists them (all at once)."""
    if not isinstance(mail, dict):
        return [{"message": "Bad Request", "field": None, "help": None}]
    found = _personalization_problems(mail.get("personalizations"))
    sender = mail.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        found.append(_problem(NO_FROM, "from.email", "#message.from"))
    elif not _is_email(sender["email"]):
        found.append(_problem(BAD_ADDRESS, "from.email", "#message.from"))
    templated = bool(mail.get("template_id"))
    if not templated and not _every_subject(mail):
        found.append(_problem(NO_SUBJECT, "subject", "#message.subject"))
    if not templated:
        found += _content_problems(mail.get("content"))
    return found


def _problem(message: str, field: str, anchor: str) -> dict[str, Any]:
    return {"message": message, "field": field, "help": f"{HELP}{anchor}"}


def _is_email(value: Any) -> bool:
    return isinstance(value, str) and EMAIL.fullmatch(value) is not None


def _personalization_problems(personalizations: Any) -> list[dict[str, Any]]:
    if not isinstance(personalizations, list) or not personalizations:
        anchor = "#message.personalizations"
        return [_problem(NO_PERSONALIZATIONS, "personalizations", anchor)]
    found = []
    for i, item in enumerate(personalizations):
        to = item.get("to") if isinstance(item, dict) else None
        if not isinstance(to, list) or not to:
            found.append(_problem(NO_TO, f"personalizations.{i}.to", "#message.recipient-errors"))
            continue
        for j, address in enumerate(to):
            email = address.get("email") if isinstance(address, dict) else None
            if not _is_email(email):
                field = f"personalizations.{i}.to.{j}.email"
                found.append(_problem(BAD_ADDRESS, field, "#message.recipient-errors"))
    return found


def _every_subject(mail: dict[str, Any]) -> bool:
    if isinstance(mail.get("subject"), str) and mail["subject"]:
        return True
    items = mail.get("personalizations")
    return isinstance(items, list) and all(
        isinstance(item, dict) and bool(item.get("subject")) for item in items
    )


def _content_problems(content: Any) -> list[dict[str, Any]]:
    if not isinstance(content, list) or not content:
        return [_problem(NO_CONTENT, "content", "#message.content")]
    found = []
    for i, block in enumerate(content):
        value = block.get("value") if isinstance(block, dict) else None
        if not isinstance(value, str) or not value:
            found.append(_problem(EMPTY_CONTENT, f"content.{i}.value", "#message.content"))
    types = [block.get("type") for block in content if isinstance(block, dict)]
    if "text/plain" in types and types[0] != "text/plain":
        found.append(_problem(PLAIN_FIRST, "content.0.type", "#message.content"))
    return found


def sandboxed(mail: dict[str, Any]) -> bool:
    settings = mail.get("mail_settings")
    sandbox = settings.get("sandbox_mode") if isinstance(settings, dict) else None
    return isinstance(sandbox, dict) and sandbox.get("enable") is True


def new_message_id() -> str:
    """A random id in the shape of SendGrid's (22 URL-safe characters)."""
    return uuid.uuid4().hex[:22]


class SendGridSimulator:
    """POST /v3/mail/send with Bearer auth; a thread-safe WSGI callable.

    Faults (`self.faults`): "429" (with X-RateLimit-* headers; its `delay` is the seconds
    until X-RateLimit-Reset, default 1), any other status such as "500", "timeout" (sleep
    `delay`, then accept: the client has given up), "reset" (accept, then drop the
    connection) and "reset_before" (drop it without accepting).
    """

    def __init__(self, clock: Callable[[], float] = time.time, api_key: str | None = None) -> None:
        """`api_key`: the account's key (default: the same in every process)."""
        self.clock = clock
        digest = hashlib.sha512(b"x3twilio-simulator:sendgrid-key").hexdigest()
        self.api_key = api_key or f"SG.{digest[:22]}.{digest[22:65]}"
        self.verified_senders: set[str] = {DEFAULT_SENDER}
        self.faults = Faults()
        self.latency_ms: float = 0
        self.mails: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/_sim/"):
            reply = dispatch_control(environ, CONTROL_ROUTES, self)
        else:
            reply = self._api(environ)
        content_type = "application/json" if reply.body else "text/plain"
        return send(start_response, replace(reply, content_type=content_type))

    def _api(self, environ: dict[str, Any]) -> Reply:
        fault = self.faults.pick(environ["REQUEST_METHOD"], request_target(environ))
        if fault and fault.kind == "reset_before":
            raise abort_connection(environ)
        canned = self._fault_reply(fault)
        if canned:
            return canned
        sleep_ms(self.latency_ms)
        if fault and fault.kind == "timeout":
            time.sleep(fault.delay)  # the client gives up; the mail is still accepted
        reply = self._serve(environ)
        if fault and fault.kind == "reset":
            raise abort_connection(environ)  # accepted, but the answer never arrives
        return reply

    def _fault_reply(self, fault: Fault | None) -> Reply | None:
        if fault is None or not fault.kind.isdigit():
            return None
        status = int(fault.kind)
        if status == 429:
            reset = int(self.clock() + (fault.delay or 1))
            headers = [
                ("X-RateLimit-Limit", str(RATE_LIMIT)),
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", str(reset)),
            ]
            return Reply(429, error_body("too many requests"), headers=headers)
        return Reply(status, error_body("internal error" if status >= 500 else "error"))

    def _serve(self, environ: dict[str, Any]) -> Reply:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        body = read_body(environ)
        if path != MAIL_SEND:
            return Reply(404, error_body("not found"))
        if method != "POST":
            return Reply(405, error_body("method not allowed"))
        if environ.get("HTTP_AUTHORIZATION", "") != f"Bearer {self.api_key}":
            return Reply(401, error_body(UNAUTHORIZED))
        try:
            mail = json.loads(body)
        except ValueError:
            return Reply(400, error_body("Bad Request"))
        found = problems(mail)
        if found:
            return Reply(400, {"errors": found})
        if mail["from"]["email"] not in self.verified_senders:
            return Reply(403, error_body(UNVERIFIED, "from"))
        if sandboxed(mail):
            return Reply(200)
        message_id = new_message_id()
        with self._lock:
            self.mails.append({"message_id": message_id, **mail})
        return Reply(202, headers=[("X-Message-Id", message_id)])

    # -- control routes (no auth), for tests driving another process ---------------------

    def _ctl_mails(self, options: dict[str, Any]) -> Reply:
        with self._lock:
            return Reply(200, json.loads(json.dumps(self.mails)))


CONTROL_ROUTES: dict[tuple[str, str], Callable[[SendGridSimulator, dict[str, Any]], Reply]] = {
    ("GET", "/_sim/mails"): SendGridSimulator._ctl_mails,
    ("POST", "/_sim/faults"): lambda sim, options: add_fault(sim.faults, options),
    ("DELETE", "/_sim/faults"): lambda sim, options: clear_faults(sim.faults),
}
