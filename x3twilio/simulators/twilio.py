"""A faithful Twilio REST API (2010-04-01) and webhook sender, as a WSGI app.

Serves Messages, Calls, IncomingPhoneNumbers and the Account with Basic auth (Account
SID + Auth Token, an API key, or the test credentials with their magic numbers). Every
request is checked against Twilio's own OpenAPI description (`twilio_oai`): what it
refuses is answered with Twilio's error body and code, and recorded in `refusals`, so a
test can tell that a client only sends what Twilio accepts. Answers carry every property
of the description's response schemas (`twilio_resources`); lists honour the filters and
paging the description documents. It also plays Twilio's side of the webhooks
(`twilio_webhooks`): signed status callbacks, incoming messages and calls with their
recording and transcription callbacks. Wire-level details follow TWILIO.md.

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
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urljoin

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
from x3twilio.simulators.twilio_errors import STATUS_CODES, ApiError, Refusal
from x3twilio.simulators.twilio_oai import Operation, description
from x3twilio.simulators.twilio_resources import (
    Form,
    MessageRequest,
    account_resource,
    call_matches,
    call_resource,
    first,
    inbound_message_resource,
    message_matches,
    message_resource,
    new_sid,
    number_matches,
    number_resource,
    options,
    page_envelope,
    public,
    rfc2822,
    update_number,
)
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

Clock = Callable[[], datetime]

E164 = re.compile(r"\+[1-9]\d{1,14}")


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
ACCOUNT_STATUSES = ("active", "suspended", "closed")  # the Account resource's enum (OAI)
LATE_LIMIT = 60.0  # seconds a "late" request waits at most for the client to give up
STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
START_WORDS = {"START", "YES", "UNSTOP"}


def stable_hex(label: str) -> str:
    """32 hex digits derived from a label: the same credentials in every process."""
    return hashlib.sha256(f"x3twilio-simulator:{label}".encode()).hexdigest()[:32]


# -- the simulator ------------------------------------------------------------------

ACCOUNT_PATH = re.compile(r"/2010-04-01/Accounts/(?P<account>[^/]+?)(?:\.json|/.+)")
# The handler of each operation of Twilio's description.
HANDLERS = {
    "FetchAccount": "fetch_account",
    "CreateMessage": "create_message",
    "ListMessage": "list_messages",
    "FetchMessage": "fetch_message",
    "UpdateMessage": "update_message",
    "DeleteMessage": "delete_message",
    "CreateCall": "create_call",
    "ListCall": "list_calls",
    "FetchCall": "fetch_call",
    "ListIncomingPhoneNumber": "list_numbers",
    "CreateIncomingPhoneNumber": "buy_number",
    "FetchIncomingPhoneNumber": "fetch_number",
    "UpdateIncomingPhoneNumber": "update_number",
}
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
    operation: str  # the operation of Twilio's description it is (CreateMessage, ...)
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
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
    ) -> None:
        """`account_sid`/`auth_token`: this account's own (default: the same in every
        process, derived from a label), so that two simulators on one host do not accept
        each other's requests, nor a shim each other's callbacks."""
        self.clock: Clock = clock or utc_now
        self.callback_url_rewrite = callback_url_rewrite
        self._init_credentials(account_sid, auth_token)
        self.faults = Faults()
        self.latency_ms: float = 0
        self.max_concurrency: int | None = None
        self.auto_callbacks = False
        # Where a failed status callback is told, as one line (Twilio's debugger logs 11200).
        self.on_callback_failure: Callable[[str], None] | None = None
        self.callback_failures = 0
        self.callback_delay = 0.2  # seconds before auto_callbacks delivers
        self.hold_sending = False  # keep messages queued until deliver_callbacks
        self.account_status = "active"  # "suspended" or "closed": its credentials get 20003
        self.messages: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.inbound: list[dict[str, Any]] = []
        self.opted_out: set[str] = set()
        self.unreachable: set[str] = set()
        self.webhook_log: list[dict[str, Any]] = []
        self.refusals: list[dict[str, Any]] = []  # requests Twilio's description refuses
        self.served: Counter[str] = Counter()  # requests it accepted, by operation
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

    def _init_credentials(self, account_sid: str | None, auth_token: str | None) -> None:
        self.account_sid = account_sid or "AC" + stable_hex("account")
        self.auth_token = auth_token or stable_hex("auth-token")
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
                self.served[request.operation] += 1
                return handler(request)
        except Refusal as refusal:
            with self._lock:
                self.refusals.append(refusal.record())
            return Reply.error(refusal)
        except ApiError as error:
            return Reply.error(error)

    def _parse(self, environ: dict[str, Any]) -> tuple[ApiRequest, Callable[[ApiRequest], Reply]]:
        """Authenticate, route and check a request, raising the error Twilio would answer."""
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        body = read_body(environ).decode()
        found = ACCOUNT_PATH.fullmatch(path)
        if not found:
            raise ApiError(20404, path=path)
        test = self._authenticate(environ, found["account"])
        operation, values = self._route(method, path)
        name = HANDLERS[operation.id]
        if test and name not in TEST_CREDENTIAL_ROUTES:
            raise ApiError(20008)
        if not operation.path_ok(values):  # not a SID of that kind: no such resource
            raise ApiError(20404, path=path)
        form = parse_qsl(body, keep_blank_values=True)
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        operation.check(query, form, environ.get("CONTENT_TYPE", ""))
        sid = values.get("Sid", "")
        request = ApiRequest(operation.id, path, found["account"], test, sid, query, form)
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
    def _route(method: str, path: str) -> tuple[Operation, dict[str, str]]:
        try:
            found = description().match(method, path)
        except LookupError:
            raise ApiError(20004) from None
        if found is None:
            raise ApiError(20404, path=path)
        return found

    # -- Account --------------------------------------------------------------------

    def _fetch_account(self, request: ApiRequest) -> Reply:
        now = self.clock()
        return Reply(200, account_resource(self.account_sid, self.auth_token, "active", now))

    # -- Messages -------------------------------------------------------------------

    def _create_message(self, request: ApiRequest) -> Reply:
        fields = MessageRequest.parse(request.form)
        if fields.to in MAGIC_SMS_TO:
            raise ApiError(MAGIC_SMS_TO[fields.to], to=fields.to, from_=fields.from_)
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
        given = options(request.query)
        found = [
            message
            for message in reversed(self._visible.values())
            if message["sid"].startswith(("SM", "MM"))
            and message["account_sid"] == request.account
            and message_matches(message, given)
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
        """The account's side of a call the description accepts: magic numbers, caller ID."""
        to, from_ = first(form, "To") or "", first(form, "From") or ""
        if to in MAGIC_CALL_TO:
            raise ApiError(MAGIC_CALL_TO[to], to=to)
        allowed = MAGIC_CALL_FROM.get(from_, 21210) if test else 0
        if not test and from_ not in self._owned_numbers():
            allowed = 21210 if E164.fullmatch(from_) else 21212
        if allowed:
            raise ApiError(allowed, from_=from_)

    def _list_calls(self, request: ApiRequest) -> Reply:
        given = options(request.query)
        found = [
            call
            for call in reversed(self._visible.values())
            if call["sid"].startswith("CA")
            and call["account_sid"] == request.account
            and call_matches(call, given)
        ]
        return Reply(200, page_envelope("calls", found, request.path, request.query))

    def _fetch_call(self, request: ApiRequest) -> Reply:
        return Reply(200, public(self._find(request, "/Calls/")))

    # -- IncomingPhoneNumbers ---------------------------------------------------------

    def _list_numbers(self, request: ApiRequest) -> Reply:
        given = options(request.query)
        found = [number for number in self.numbers.values() if number_matches(number, given)]
        key = "incoming_phone_numbers"
        envelope = page_envelope(key, found, request.path, request.query, show=dict)
        return Reply(200, envelope)

    def _find_number(self, request: ApiRequest) -> dict[str, Any]:
        number = self.numbers.get(request.sid)
        if number is None:
            raise ApiError(20404, path=request.path)
        return number

    def _fetch_number(self, request: ApiRequest) -> Reply:
        return Reply(200, dict(self._find_number(request)))

    def _update_number(self, request: ApiRequest) -> Reply:
        number = self._find_number(request)
        update_number(number, request.form, self.clock())
        return Reply(200, dict(number))

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

    def _ctl_refusals(self, options: dict[str, Any]) -> Reply:
        with self._lock:
            return Reply(200, {"refusals": list(self.refusals), "served": dict(self.served)})

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
        try:
            response = self.send_incoming_sms(
                options["url"], options["from"], options["body"], options.get("to")
            )
        except requests.RequestException as error:
            return _unreachable(error, options["url"])
        return Reply(200, {"status": response.status_code})

    def _ctl_incoming_call(self, options: dict[str, Any]) -> Reply:
        extra = {"transcription": options["transcription"]} if "transcription" in options else {}
        try:
            responses = self.place_incoming_call(
                options["url"], options["from"], to=options.get("to"), **extra
            )
        except requests.RequestException as error:
            return _unreachable(error, options["url"])
        return Reply(200, {"statuses": [response.status_code for response in responses]})


CONTROL_ROUTES: dict[tuple[str, str], Callable[[TwilioSimulator, dict[str, Any]], Reply]] = {
    ("GET", "/_sim/messages"): TwilioSimulator._ctl_messages,
    ("GET", "/_sim/credentials"): TwilioSimulator._ctl_credentials,
    ("GET", "/_sim/refusals"): TwilioSimulator._ctl_refusals,
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


def unreachable_reason(error: requests.RequestException) -> str:
    """Why a webhook got no answer, in a few words (not the library's nested repr)."""
    if isinstance(error, requests.Timeout):
        return "no answer in time (timed out)"
    text = str(error).lower()
    for words in ("connection refused", "connection reset", "name or service not known"):
        if words in text:
            return words
    return "no connection" if isinstance(error, requests.ConnectionError) else type(error).__name__


def _unreachable(error: requests.RequestException, url: str) -> Reply:
    """A control route's answer when the webhook it plays got no HTTP answer at all."""
    failed = error.request.url if error.request is not None and error.request.url else url
    return Reply(502, {"error": unreachable_reason(error), "url": failed})


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
