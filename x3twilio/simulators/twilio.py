"""A faithful Twilio REST API (2010-04-01) and webhook sender, as a WSGI app.

Serves Messages, Calls, IncomingPhoneNumbers and the Account with Basic auth (Account
SID + Auth Token, an API key, or the test credentials with their magic numbers). Every
request is checked against Twilio's own OpenAPI description (`twilio_oai`, `twilio_requests`;
the handlers are in `twilio_api`): what it refuses is answered with Twilio's error body and
code, and recorded in `refusals`, so a test can tell that a client only sends what Twilio
accepts. Answers carry every property
of the description's response schemas (`twilio_resources`); lists honour the filters and
paging the description documents. It also plays Twilio's side of the webhooks
(`twilio_webhooks`): signed status callbacks, incoming messages and calls with their
recording and transcription callbacks. WhatsApp (its sender, Content API templates, the
24-hour window) is in `twilio_whatsapp`. Wire-level details follow TWILIO.md.

Faults (`faults.add(kind, match, skip=, times=, delay=)`): an HTTP status ("429", "500",
...), "error:<code>" (Twilio's answer for that error code), "html", "garbage", "timeout"
(the request is processed `delay` seconds after it arrived, whatever the client does),
"late" (the client gets no answer; the request is processed `delay` seconds after the
client gave up and closed the connection, so the message or call appears in the list
after the client stopped waiting), "reset" (processed, then the connection is reset) and
"reset_before" (reset, nothing processed), in `twilio_faults`. `wait_settled()` waits for the
delayed ones. `account_status = "suspended"` (or "closed") refuses the account's credentials
with 401 and 20003, as Twilio documents for such an account. Tests in another process drive
it through its control routes (`twilio_control`).
"""

from __future__ import annotations

import random
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urljoin

import requests

from x3twilio.signature import compute_signature
from x3twilio.simulators import (
    Faults,
    Reply,
    StartResponse,
    abort_connection,
    request_target,
    send,
    sleep_ms,
)
from x3twilio.simulators.control import dispatch_control
from x3twilio.simulators.twilio_api import Clock, TwilioApi
from x3twilio.simulators.twilio_control import CONTROL_ROUTES, unreachable_reason
from x3twilio.simulators.twilio_errors import ApiError
from x3twilio.simulators.twilio_faults import Admission, error_reply, fault_reply, serve_late
from x3twilio.simulators.twilio_resources import inbound_message_resource, new_sid
from x3twilio.simulators.twilio_webhooks import (
    USER_AGENT,
    IncomingCall,
    Overrides,
    PendingCallback,
    find_record,
    incoming_sms_params,
    status_params,
    wants_transcription,
)
from x3twilio.simulators.twilio_whatsapp import (
    incoming_whatsapp_params,
    whatsapp_address,
)

STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
START_WORDS = {"START", "YES", "UNSTOP"}


class TwilioSimulator(TwilioApi):
    """The Twilio REST API and webhook sender; a thread-safe WSGI callable."""

    def __init__(
        self,
        clock: Clock | None = None,
        callback_url_rewrite: Callable[[str], str] | None = None,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
    ) -> None:
        """`account_sid`/`auth_token`: this account's own (default: the same in every
        process, derived from a label), so that two simulators on one host do not accept
        each other's requests, nor a shim each other's callbacks."""
        super().__init__(clock, account_sid, auth_token)
        self.callback_url_rewrite = callback_url_rewrite
        self.faults = Faults()
        self.latency_ms: float = 0
        self.max_concurrency: int | None = None
        # Where a failed status callback is told, as one line (Twilio's debugger logs 11200).
        self.on_callback_failure: Callable[[str], None] | None = None
        self.callback_failures = 0
        self.inbound: list[dict[str, Any]] = []
        self.webhook_log: list[dict[str, Any]] = []
        self._admission = Admission()

    # -- WSGI entry ---------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/_sim/"):
            reply = dispatch_control(environ, CONTROL_ROUTES, self)
        else:
            reply = self._api(environ)
        return send(start_response, reply)

    def _api(self, environ: dict[str, Any]) -> Reply:
        fault = self.faults.pick(environ["REQUEST_METHOD"], request_target(environ))
        if fault and fault.kind == "reset_before":
            raise abort_connection(environ)
        if fault and fault.kind == "late":
            raise serve_late(environ, fault.delay, self._serve, self._admission)
        canned = fault_reply(fault)
        if canned:
            return canned
        if not self._admission.admit(self.max_concurrency):
            return error_reply(ApiError(20429))
        delay = fault.delay if fault and fault.kind == "timeout" else None
        try:
            if delay is not None:
                self._admission.delaying(+1)
            sleep_ms(self.latency_ms)
            if delay is not None:
                time.sleep(delay)  # the client gives up; the work still happens
            reply = self._serve(environ)
        finally:
            self._admission.release()
            if delay is not None:
                self._admission.delaying(-1)
        if fault and fault.kind == "reset":
            raise abort_connection(environ)  # accepted, but the answer never arrives
        return replace(reply, headers=reply.headers + self._response_headers())

    def wait_settled(self, timeout: float = 30.0) -> bool:
        """Wait until every "timeout" and "late" request has been processed (or `timeout`)."""
        return self._admission.wait_settled(timeout)

    def _response_headers(self) -> list[tuple[str, str]]:
        return [
            ("Twilio-Request-Id", new_sid("RQ")),
            ("Twilio-Concurrent-Requests", str(self._admission.in_flight + 1)),
            ("X-Home-Region", "us1"),
            ("X-Api-Domain", "api.twilio.com"),
        ]

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
        try:
            status = self.post_webhook(url, params, token).status_code
        except requests.RequestException as error:
            self._callback_failed(f"status callback to {url}: {unreachable_reason(error)}")
            return
        if status >= 400:
            self._callback_failed(f"status callback to {url}: answered {status}")

    def _callback_failed(self, line: str) -> None:
        with self._lock:
            self.callback_failures += 1
        if self.on_callback_failure is not None:
            self.on_callback_failure(line)

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

    def send_incoming_whatsapp(
        self, url: str, from_: str, body: str, profile_name: str = "Sim User"
    ) -> requests.Response:
        """Play a WhatsApp message from `from_` (+E164, prefixed or not) to our WhatsApp
        sender: POST its webhook. It opens that user's 24-hour window; no opt-out words."""
        user, sid = whatsapp_address(from_), new_sid("SM")
        to = self.whatsapp_sender
        with self._lock:
            message = inbound_message_resource(self.account_sid, sid, user, to, body, self.clock())
            self.inbound.append(message)
            self._visible[sid] = message
            self.open_window(user)
        params = incoming_whatsapp_params(self.account_sid, sid, user, to, body, profile_name)
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
