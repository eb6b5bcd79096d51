"""Twilio's REST API as the simulator serves it: authentication, routing against Twilio's
OpenAPI description, and the handlers of Messages, Calls, IncomingPhoneNumbers and the
Account, over the account's state (what it sent, what the API can see, its numbers).

What the description refuses is answered with Twilio's error body and code and recorded in
`refusals`; what the account refuses (magic numbers of the test credentials, numbers it does
not own, opted-out recipients) is answered with the code Twilio documents for it.
"""

from __future__ import annotations

import base64
import random
import re
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from x3twilio.segments import segment_info
from x3twilio.simulators import Reply
from x3twilio.simulators.twilio_errors import ApiError, Refusal
from x3twilio.simulators.twilio_faults import error_reply
from x3twilio.simulators.twilio_magic import (
    MAGIC_BUY_NUMBER,
    MAGIC_CALL_FROM,
    MAGIC_CALL_TO,
    MAGIC_SMS_FROM,
    MAGIC_SMS_TO,
)
from x3twilio.simulators.twilio_requests import ApiRequest, parse_request
from x3twilio.simulators.twilio_resources import (
    Form,
    MessageRequest,
    account_resource,
    call_matches,
    call_resource,
    first,
    message_matches,
    message_resource,
    new_sid,
    number_matches,
    number_resource,
    options,
    page_envelope,
    public,
    rfc2822,
    stable_hex,
    update_number,
)
from x3twilio.simulators.twilio_webhooks import PendingCallback
from x3twilio.simulators.twilio_whatsapp import WhatsAppAccount, is_content_path

Clock = Callable[[], datetime]

E164 = re.compile(r"\+[1-9]\d{1,14}")
TERMINAL = {"delivered", "undelivered", "failed", "canceled", "read"}
CANCELABLE = {"scheduled", "queued", "accepted"}


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
    "whatsapp_sender",
)


def utc_now() -> datetime:
    return datetime.now(UTC)


class TwilioApi(WhatsAppAccount):
    """The account and its REST API; `_serve` answers one request as Twilio would."""

    phone_number = "+15017122661"

    def __init__(
        self, clock: Clock | None, account_sid: str | None, auth_token: str | None
    ) -> None:
        self.clock: Clock = clock or utc_now
        self._init_credentials(account_sid, auth_token)
        self.auto_callbacks = False
        self.callback_delay = 0.2  # seconds before auto_callbacks delivers
        self.hold_sending = False  # keep messages queued until deliver_callbacks
        self.account_status = "active"  # "suspended" or "closed": its credentials get 20003
        self.messages: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.opted_out: set[str] = set()
        self.unreachable: set[str] = set()
        self.refusals: list[dict[str, Any]] = []  # requests Twilio's description refuses
        self.served: Counter[str] = Counter()  # requests it accepted, by operation
        self._lock = threading.RLock()
        self._visible: dict[str, dict[str, Any]] = {}  # sid -> resource the API can see
        self._sent: dict[str, dict[str, Any]] = {}  # sid -> every accepted message
        self._pending: list[PendingCallback] = []
        self.phone_number_sid = "PN" + stable_hex("phone-number")
        self.numbers = {
            self.phone_number_sid: number_resource(
                self.account_sid, self.phone_number_sid, self.phone_number, self.clock()
            )
        }
        self._init_whatsapp()

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

    def _serve(self, environ: dict[str, Any]) -> Reply:
        if is_content_path(environ.get("PATH_INFO", "")):
            return self._serve_content(environ)  # content.twilio.com, not in the description
        try:
            request, name = parse_request(environ, self._authenticate)
            handler: Callable[[ApiRequest], Reply] = getattr(self, f"_{name}")
            with self._lock:
                self.served[request.operation] += 1
                return handler(request)
        except Refusal as refusal:
            with self._lock:
                self.refusals.append(refusal.record())
            return error_reply(refusal)
        except ApiError as error:
            return error_reply(error)

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

    # -- Account --------------------------------------------------------------------

    def _fetch_account(self, request: ApiRequest) -> Reply:
        now = self.clock()
        return Reply(200, account_resource(self.account_sid, self.auth_token, "active", now))

    # -- Messages -------------------------------------------------------------------

    def _create_message(self, request: ApiRequest) -> Reply:
        fields = self._check_whatsapp(MessageRequest.parse(request.form), request.test)
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
        if fields.from_ and fields.from_ not in {*self._owned_numbers(), self.whatsapp_sender}:
            raise ApiError(21606, from_=fields.from_)

    def _owned_numbers(self) -> set[str]:
        return {number["phone_number"] for number in self.numbers.values()}

    def _start_sending(self, message: dict[str, Any]) -> None:
        """Queue the status changes after creation: sent, then delivered or undelivered;
        failed, for WhatsApp free text outside the 24-hour window."""
        final = "undelivered" if message["to"] in self.unreachable else "delivered"
        url = message["status_callback"]
        sid = message["sid"]
        steps = ["failed"] if self._fails_outside_window(message) else ["sent", final]
        self._pending += [PendingCallback(sid, status, url) for status in steps]
        if not self.hold_sending:
            self._advance(message, steps[0])
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
            message["from"] = message["from"] or self._default_sender(message["to"])
            message["num_segments"] = str(segment_info(message["body"]).segments)
        if status == "undelivered":
            message["error_code"] = 30003
            message["error_message"] = "Unreachable destination handset"
        if status == "failed":
            self._record_window_failure(message)  # the only way a message fails here
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

    def deliver_callbacks(
        self, shuffle: bool = False, duplicate: bool = False, seed: int = 0
    ) -> int:
        """POST the pending status callbacks (the simulator's webhook side does)."""
        raise NotImplementedError
