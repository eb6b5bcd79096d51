"""WhatsApp as Twilio does it, for the Twilio simulator: the account's WhatsApp sender,
its Content API templates and the 24-hour customer-service window.

Addresses are `whatsapp:+E164` in To and From, both of one channel (else 21910); a From
that is not the account's WhatsApp sender gets 63007. `ContentSid` names a template of the
account (else 21655), whose text, with `ContentVariables` ({"1": "..."}; else 21656, and
21654 without a ContentSid) filled in, becomes the message body. Free text to a WhatsApp
user is allowed only within 24 hours of that user's last message; outside it only an
approved template is. Otherwise Twilio accepts the create and the message fails with 63016
(`whatsapp_window_refusal = "async"`), or, as some accounts see it, the create itself is
answered 400 with 63016 (`"create"`). The Content API's fetch of a template and of its
WhatsApp approval is served at `/v1/Content/{Sid}[/ApprovalRequests]`, as on
content.twilio.com. Opt-out keywords stay SMS-only.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from x3twilio.simulators import Reply
from x3twilio.simulators.twilio_errors import ERROR_TEXT, ApiError
from x3twilio.simulators.twilio_faults import error_reply
from x3twilio.simulators.twilio_oai import E164
from x3twilio.simulators.twilio_resources import API_VERSION, MessageRequest, stable_hex

WHATSAPP = "whatsapp:"
WINDOW = timedelta(hours=24)  # WhatsApp's customer-service window
WINDOW_REFUSALS = ("async", "create")
TEMPLATE_STATUSES = ("approved", "pending", "rejected")
CONTENT_BASE = "https://content.twilio.com"
CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")
CONTENT_PATH = re.compile(r"/v1/Content/(?P<sid>[^/]+)(?P<approval>/ApprovalRequests)?")
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
WINDOW_CLOSED = 63016

APPROVED_TEMPLATE_SID = "HX" + stable_hex("po-approved")
PENDING_TEMPLATE_SID = "HX" + stable_hex("po-pending")
REJECTED_TEMPLATE_SID = "HX" + stable_hex("po-rejected")

Template = dict[str, Any]  # friendly_name, body ({{1}}...), whatsapp_status, variables


def whatsapp_address(number: str) -> str:
    """`whatsapp:+E164` for a number given with or without its prefix."""
    return number if number.startswith(WHATSAPP) else WHATSAPP + number


def is_whatsapp(address: str | None) -> bool:
    return bool(address) and str(address).startswith(WHATSAPP)


def is_content_path(path: str) -> bool:
    """Whether a path is the Content API's (content.twilio.com), not the 2010 API's."""
    return path.startswith("/v1/Content")


def seed_templates(now: datetime) -> dict[str, Template]:
    """An approved template, a pending one and a rejected one, with stable SIDs."""
    stamp = iso8601(now)
    return {
        APPROVED_TEMPLATE_SID: {
            "friendly_name": "po_ready",
            "body": "Purchase order {{1}} is ready for collection on {{2}}.",
            "whatsapp_status": "approved",
            "variables": {"1": "PO0001", "2": "Monday"},
            "date_created": stamp,
        },
        PENDING_TEMPLATE_SID: {
            "friendly_name": "po_delayed",
            "body": "Purchase order {{1}} is delayed.",
            "whatsapp_status": "pending",
            "variables": {"1": "PO0001"},
            "date_created": stamp,
        },
        REJECTED_TEMPLATE_SID: {
            "friendly_name": "po_promo",
            "body": "Order again today: {{1}}!",
            "whatsapp_status": "rejected",
            "variables": {"1": "10% off"},
            "rejection_reason": "Marketing content in a utility template",
            "date_created": stamp,
        },
    }


def iso8601(moment: datetime) -> str:
    """The Content API's dates: ISO 8601 in UTC, to the second."""
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_variables(text: str) -> dict[str, str]:
    """ContentVariables: a JSON object of strings, else 21656."""
    try:
        values = json.loads(text)
    except ValueError:
        raise ApiError(21656) from None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise ApiError(21656)
    return values


def render(template: Mapping[str, Any], given: Mapping[str, str]) -> str:
    """The template's text with {{1}}... filled in: the values given, else its defaults."""
    values = {**template.get("variables", {}), **given}
    return PLACEHOLDER.sub(lambda found: values.get(found[1], found[0]), template["body"])


def incoming_whatsapp_params(
    account: str, sid: str, from_: str, to: str, body: str, profile_name: str
) -> dict[str, str]:
    """An incoming WhatsApp message's webhook: no geo fields, plus ProfileName and WaId."""
    return {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ProfileName": profile_name,
        "MessageType": "text",
        "SmsSid": sid,
        "WaId": from_.removeprefix(WHATSAPP).lstrip("+"),
        "SmsStatus": "received",
        "Body": body,
        "To": to,
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": account,
        "From": from_,
        "ApiVersion": API_VERSION,
    }


def content_resource(account: str, sid: str, template: Mapping[str, Any]) -> dict[str, Any]:
    """The Content API's template (content.v1.content), a twilio/text one."""
    url = f"{CONTENT_BASE}/v1/Content/{sid}"
    return {
        "account_sid": account,
        "date_created": template["date_created"],
        "date_updated": template["date_created"],
        "friendly_name": template["friendly_name"],
        "language": "en",
        "links": {
            "approval_create": f"{url}/ApprovalRequests/whatsapp",
            "approval_fetch": f"{url}/ApprovalRequests",
        },
        "sid": sid,
        "types": {"twilio/text": {"body": template["body"]}},
        "url": url,
        "variables": dict(template.get("variables", {})),
    }


def approval_resource(account: str, sid: str, template: Mapping[str, Any]) -> dict[str, Any]:
    """The template's WhatsApp approval (content.v1.content.approval_fetch)."""
    return {
        "account_sid": account,
        "sid": sid,
        "url": f"{CONTENT_BASE}/v1/Content/{sid}/ApprovalRequests",
        "whatsapp": {
            "allow_category_change": False,
            "category": "UTILITY",
            "content_type": "twilio/text",
            "flows": None,
            "name": template["friendly_name"],
            "rejection_reason": template.get("rejection_reason", ""),
            "status": template["whatsapp_status"],
            "type": "whatsapp",
        },
    }


class WhatsAppAccount:
    """The account's WhatsApp side; mixed into the simulator's REST API (`TwilioApi`)."""

    # The REST API's, which this side reads.
    account_sid: str
    phone_number: str
    clock: Callable[[], datetime]
    served: Counter[str]
    _lock: threading.RLock

    def _init_whatsapp(self) -> None:
        self.whatsapp_sender = WHATSAPP + self.phone_number
        self.whatsapp_window_refusal = "async"  # or "create": see the module's docstring
        self.content_templates: dict[str, Template] = seed_templates(self.clock())
        self.whatsapp_windows: dict[str, datetime] = {}  # user -> their last message

    def _authenticate(self, environ: dict[str, Any], account: str) -> bool:
        raise NotImplementedError  # the REST API's

    # -- the 24-hour window ---------------------------------------------------------

    def open_window(self, user: str) -> None:
        """`user` just wrote to our WhatsApp sender: free text to them is allowed 24 h."""
        with self._lock:
            self.whatsapp_windows[whatsapp_address(user)] = self.clock()

    def in_window(self, user: str) -> bool:
        last = self.whatsapp_windows.get(whatsapp_address(user))
        return last is not None and self.clock() - last < WINDOW

    def _outside_window(self, to: str, content_sid: str) -> bool:
        """Whether WhatsApp refuses this send: not an approved template, and no window."""
        if not is_whatsapp(to):
            return False
        template = self.content_templates.get(content_sid)
        if template is not None and template["whatsapp_status"] == "approved":
            return False  # business-initiated: what approved templates are for
        return not self.in_window(to)

    # -- Messages create ------------------------------------------------------------

    def _check_whatsapp(self, fields: MessageRequest, test: bool) -> MessageRequest:
        """Raise what Twilio answers for a WhatsApp or template send; the fields to send,
        a template's text as the body."""
        self._check_channels(fields)
        if fields.content_variables and not fields.content_sid:
            raise ApiError(21654)
        if fields.content_sid:
            fields = replace(fields, body=self._template_text(fields))
        refuse_now = self.whatsapp_window_refusal == "create" and not test
        if refuse_now and self._outside_window(fields.to, fields.content_sid):
            raise ApiError(WINDOW_CLOSED)
        return fields

    def _check_channels(self, fields: MessageRequest) -> None:
        to_whatsapp, from_whatsapp = is_whatsapp(fields.to), is_whatsapp(fields.from_)
        if fields.from_ and to_whatsapp != from_whatsapp:
            raise ApiError(21910)
        if from_whatsapp and fields.from_ != self.whatsapp_sender:
            raise ApiError(63007)
        if to_whatsapp and not E164.fullmatch(fields.to.removeprefix(WHATSAPP)):
            raise ApiError(21211, to=fields.to)

    def _template_text(self, fields: MessageRequest) -> str:
        template = self.content_templates.get(fields.content_sid)
        if template is None:
            raise ApiError(21655)
        given = parse_variables(fields.content_variables) if fields.content_variables else {}
        return render(template, given)

    def _fails_outside_window(self, message: Mapping[str, Any]) -> bool:
        """Whether an accepted message will fail with 63016 ("async" refusal): in
        "create" mode such a message was refused before it existed."""
        return self._outside_window(message["to"], message.get("content_sid") or "")

    def _record_window_failure(self, message: dict[str, Any]) -> None:
        message["error_code"] = WINDOW_CLOSED
        message["error_message"] = ERROR_TEXT[WINDOW_CLOSED]

    def _default_sender(self, to: str) -> str:
        """The sender a Messaging Service picks: the WhatsApp one for a WhatsApp user."""
        return self.whatsapp_sender if is_whatsapp(to) else self.phone_number

    # -- the Content API ------------------------------------------------------------

    def _serve_content(self, environ: dict[str, Any]) -> Reply:
        """GET /v1/Content/{Sid} and /v1/Content/{Sid}/ApprovalRequests."""
        path = environ.get("PATH_INFO", "")
        try:
            self._authenticate(environ, self.account_sid)
            found = CONTENT_PATH.fullmatch(path)
            if found is None:
                raise ApiError(20404, path=path)
            if environ["REQUEST_METHOD"] != "GET":
                raise ApiError(20004)
            with self._lock:
                return self._content_reply(found["sid"], bool(found["approval"]), path)
        except ApiError as error:
            return error_reply(error)

    def _content_reply(self, sid: str, approval: bool, path: str) -> Reply:
        template = self.content_templates.get(sid)
        if template is None:
            raise ApiError(20404, path=path)
        self.served["FetchApprovalFetch" if approval else "FetchContent"] += 1
        show = approval_resource if approval else content_resource
        return Reply(200, show(self.account_sid, sid, template))


# -- control routes (`/_sim/whatsapp`) ---------------------------------------------------


class WhatsAppControlled(Protocol):
    """What the WhatsApp control routes drive."""

    _lock: threading.RLock
    whatsapp_sender: str
    whatsapp_window_refusal: str
    content_templates: dict[str, Template]
    whatsapp_windows: dict[str, datetime]
    clock: Callable[[], datetime]


def whatsapp_state(sim: WhatsAppControlled, options: dict[str, Any]) -> Reply:
    with sim._lock:
        windows = {user: iso8601(last) for user, last in sim.whatsapp_windows.items()}
        return Reply(
            200,
            {
                "sender": sim.whatsapp_sender,
                "window_refusal": sim.whatsapp_window_refusal,
                "templates": json.loads(json.dumps(sim.content_templates)),
                "windows": windows,
            },
        )


def configure_whatsapp(sim: WhatsAppControlled, options: dict[str, Any]) -> Reply:
    """Set the window refusal, add or change templates, close every window; all checked
    before any is applied."""
    refusal = str(options.get("window_refusal", sim.whatsapp_window_refusal))
    if refusal not in WINDOW_REFUSALS:
        raise ValueError(f"window_refusal must be one of {', '.join(WINDOW_REFUSALS)}")
    with sim._lock:
        stamp = iso8601(sim.clock())
        templates = {
            str(sid): checked_template(str(sid), sim.content_templates.get(sid, {}), given, stamp)
            for sid, given in dict(options.get("templates", {})).items()
        }
        sim.whatsapp_window_refusal = refusal
        sim.content_templates.update(templates)
        if options.get("close_windows"):
            sim.whatsapp_windows.clear()
    return whatsapp_state(sim, {})


def checked_template(
    sid: str, current: Mapping[str, Any], given: Mapping[str, Any], stamp: str
) -> Template:
    """A template as a control route sets it (changes over the current one), or ValueError."""
    if not CONTENT_SID.fullmatch(sid):
        raise ValueError(f"template sid {sid!r} must be HX and 32 hex digits")
    template = {"date_created": stamp, **current, **dict(given)}
    names = ("friendly_name", "body", "whatsapp_status")
    missing = [name for name in names if not isinstance(template.get(name), str)]
    if missing:
        raise ValueError(f"template {sid}: {', '.join(missing)} must be strings")
    if template["whatsapp_status"] not in TEMPLATE_STATUSES:
        raise ValueError(f"whatsapp_status must be one of {', '.join(TEMPLATE_STATUSES)}")
    variables = template.setdefault("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise ValueError(f"template {sid}: variables must be an object of strings")
    return template
