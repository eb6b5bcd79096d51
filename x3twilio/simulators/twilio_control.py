"""The Twilio simulator's control routes (`/_sim/...`, no auth), for tests driving it from
another process: what it sent and refused, faults, latency, the account's status, and the
webhooks it plays (status callbacks, incoming messages and calls), and its WhatsApp side
(the window refusal, templates, incoming WhatsApp messages)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

import requests

from x3twilio.simulators import Faults, Reply
from x3twilio.simulators.control import add_fault, clear_faults
from x3twilio.simulators.twilio_whatsapp import (
    WhatsAppControlled,
    configure_whatsapp,
    whatsapp_state,
)

ACCOUNT_STATUSES = ("active", "suspended", "closed")  # the Account resource's enum (OAI)


class ControlledTwilio(WhatsAppControlled, Protocol):
    """What the control routes drive (the Twilio simulator)."""

    _lock: threading.RLock
    messages: list[dict[str, Any]]
    refusals: list[dict[str, Any]]
    served: Counter[str]
    faults: Faults
    account_status: str
    latency_ms: float
    opted_out: set[str]
    unreachable: set[str]

    @property
    def credentials(self) -> dict[str, str]: ...

    def wait_settled(self, timeout: float = 30.0) -> bool: ...

    def deliver_callbacks(
        self, shuffle: bool = False, duplicate: bool = False, seed: int = 0
    ) -> int: ...

    def send_incoming_sms(
        self, url: str, from_: str, body: str, to: str | None = None
    ) -> requests.Response: ...

    def send_incoming_whatsapp(
        self, url: str, from_: str, body: str, profile_name: str = ...
    ) -> requests.Response: ...

    def place_incoming_call(
        self,
        voice_url: str,
        from_: str,
        transcription: str = ...,
        to: str | None = None,
    ) -> list[requests.Response]: ...


def messages(sim: ControlledTwilio, options: dict[str, Any]) -> Reply:
    with sim._lock:
        return Reply(200, json.loads(json.dumps(sim.messages)))


def refusals(sim: ControlledTwilio, options: dict[str, Any]) -> Reply:
    with sim._lock:
        return Reply(200, {"refusals": list(sim.refusals), "served": dict(sim.served)})


def credentials(sim: ControlledTwilio, options: dict[str, Any]) -> Reply:
    return Reply(200, sim.credentials)


def account(sim: ControlledTwilio, options: dict[str, Any]) -> Reply:
    status = str(options["status"])
    if status not in ACCOUNT_STATUSES:
        raise ValueError(f"status must be one of {', '.join(ACCOUNT_STATUSES)}")
    sim.account_status = status
    return Reply(200, {"status": status})


def settle(sim: ControlledTwilio, options: dict[str, Any]) -> Reply:
    settled = sim.wait_settled(float(options.get("timeout", 30)))
    return Reply(200, {"settled": settled, "messages": len(sim.messages)})


def latency(sim: ControlledTwilio, options: dict[str, Any]) -> Reply:
    sim.latency_ms = float(options["ms"])
    return Reply(200, {"ms": sim.latency_ms})


def opt_out(sim: ControlledTwilio, options: dict[str, Any]) -> Reply:
    with sim._lock:
        sim.opted_out.add(str(options["number"]))
        return Reply(200, {"opted_out": sorted(sim.opted_out)})


def unreachable(sim: ControlledTwilio, options: dict[str, Any]) -> Reply:
    with sim._lock:
        sim.unreachable.add(str(options["number"]))
        return Reply(200, {"unreachable": sorted(sim.unreachable)})


def deliver(sim: ControlledTwilio, options: dict[str, Any]) -> Reply:
    flags = {key: options[key] for key in ("shuffle", "duplicate", "seed") if key in options}
    return Reply(200, {"delivered": sim.deliver_callbacks(**flags)})


def incoming_sms(sim: ControlledTwilio, options: dict[str, Any]) -> Reply:
    try:
        response = sim.send_incoming_sms(
            options["url"], options["from"], options["body"], options.get("to")
        )
    except requests.RequestException as error:
        return unreachable_reply(error, options["url"])
    return Reply(200, {"status": response.status_code})


def incoming_whatsapp(sim: ControlledTwilio, options: dict[str, Any]) -> Reply:
    extra = {"profile_name": str(options["profile_name"])} if "profile_name" in options else {}
    try:
        response = sim.send_incoming_whatsapp(
            options["url"], options["from"], options["body"], **extra
        )
    except requests.RequestException as error:
        return unreachable_reply(error, options["url"])
    return Reply(200, {"status": response.status_code})


def incoming_call(sim: ControlledTwilio, options: dict[str, Any]) -> Reply:
    extra = {"transcription": options["transcription"]} if "transcription" in options else {}
    try:
        responses = sim.place_incoming_call(
            options["url"], options["from"], to=options.get("to"), **extra
        )
    except requests.RequestException as error:
        return unreachable_reply(error, options["url"])
    return Reply(200, {"statuses": [response.status_code for response in responses]})


CONTROL_ROUTES: dict[tuple[str, str], Callable[[ControlledTwilio, dict[str, Any]], Reply]] = {
    ("GET", "/_sim/messages"): messages,
    ("GET", "/_sim/credentials"): credentials,
    ("GET", "/_sim/refusals"): refusals,
    ("POST", "/_sim/faults"): lambda sim, options: add_fault(sim.faults, options),
    ("DELETE", "/_sim/faults"): lambda sim, options: clear_faults(sim.faults),
    ("POST", "/_sim/latency"): latency,
    ("POST", "/_sim/account"): account,
    ("POST", "/_sim/settle"): settle,
    ("POST", "/_sim/opt-out"): opt_out,
    ("POST", "/_sim/unreachable"): unreachable,
    ("POST", "/_sim/callbacks/deliver"): deliver,
    ("POST", "/_sim/incoming-sms"): incoming_sms,
    ("POST", "/_sim/incoming-call"): incoming_call,
    ("POST", "/_sim/incoming-whatsapp"): incoming_whatsapp,
    ("GET", "/_sim/whatsapp"): whatsapp_state,
    ("POST", "/_sim/whatsapp"): configure_whatsapp,
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


def unreachable_reply(error: requests.RequestException, url: str) -> Reply:
    """A control route's answer when the webhook it plays got no HTTP answer at all."""
    failed = error.request.url if error.request is not None and error.request.url else url
    return Reply(502, {"error": unreachable_reason(error), "url": failed})
