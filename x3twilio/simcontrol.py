"""Drive a running `x3twilio sim` by hand, over HTTP, through its test-harness routes.

The simulators answer `/_sim/...` control routes beside their vendor APIs; this is their
client. It finds them from the configuration `sim --write-config` wrote (`x3.url`,
`twilio.api_url`, `public_url`) and never imports them: they run in another process.
No credential is sent: the control routes take none, and a config's secrets stay in it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from x3twilio.errors import ExitCode, X3TwilioError

# What an approved, still open order carries in X3 (APPFLG menu 280: 3 fully approved).
APPROVED_AND_OPEN = {"APPFLG": 3, "CLEFLG": False}
APPROVAL = {1: "not approved", 2: "partly approved", 3: "approved", 4: "not managed", 5: "auto"}


class SimUnavailable(X3TwilioError):
    """A simulator (or the shim it calls) did not answer as it should."""

    exit_code = ExitCode.UNAVAILABLE


class ShimUnavailable(SimUnavailable):
    """The shim got a webhook from the Twilio simulator and did not take it."""

    def __init__(self, url: str, problem: str) -> None:
        self.url, self.problem = url, problem
        super().__init__(f"the shim at {url} {problem}")


class ShimDown(ShimUnavailable):
    """Nothing answered at the shim's address: it is not running there."""


class NotInSimulator(LookupError):
    """What the operator named is not in the simulator (a usage error, with the name)."""


@dataclass(frozen=True)
class SimControl:
    x3_url: str  # the X3 simulator's base URL
    twilio_url: str  # the Twilio simulator's
    public_url: str  # where the shim is, as the simulated Twilio reaches it
    timeout: float = 15.0

    # -- X3 ---------------------------------------------------------------------------

    def orders(self) -> list[dict[str, Any]]:
        """Every purchase order, the last changed first."""
        orders = self._x3("GET", "PORDER")
        return sorted(orders, key=lambda o: (o.get("UPDDATTIM", ""), o["POHNUM"]), reverse=True)

    def approve(self, number: str) -> dict[str, Any]:
        """Approve an order and leave it open, stamped now, as a buyer in X3 would."""
        try:
            order: dict[str, Any] = self._x3("PATCH", f"PORDER/{number}", APPROVED_AND_OPEN)
        except NotInSimulator:
            raise NotInSimulator(f"no purchase order {number} in the X3 simulator") from None
        return self._past_its_second(order)

    def pay(self, supplier: str, amount: float, reference: str | None = None) -> dict[str, Any]:
        """Post an outgoing payment to a supplier, as the accountant would in X3.

        Its company, site and currency are those of the supplier's newest order; its
        reference (the invoice paid) the supplier's newest purchase invoice unless given.
        """
        partners = {p["BPSNUM"]: p for p in self._x3("GET", "BPSUPPLIER")}
        if supplier not in partners:
            known = ", ".join(sorted(partners))
            raise NotInSimulator(f"no supplier {supplier} in the X3 simulator (it has {known})")
        partner = partners[supplier]
        order = next((o for o in self.orders() if o["BPSNUM"] == supplier), {})
        if reference is None:
            invoices = [i for i in self._x3("GET", "PINVOICE") if i.get("BPR") == supplier]
            reference = max((i["NUM"] for i in invoices), default="")
        numbers = {p["NUM"] for p in self._x3("GET", "PAYMENTH")}
        number = next(f"PAYSIM{n:04d}" for n in range(1, 10**4) if f"PAYSIM{n:04d}" not in numbers)
        today = datetime.now(UTC).date().isoformat()
        payment = {
            "NUM": number, "PAYTYP": "PAYSU", "PAM": "TRF", "BPR": supplier, "BPRTYP": 2,
            "BPANAM": partner.get("BPSNAM", ""), "CRY": partner.get("CRY", ""), "SNS": 1,
            "AMTCUR": amount, "CUR": order.get("CUR") or partner.get("CUR", ""),
            "AMTBAN": amount, "ACCDAT": today, "DUDDAT": today, "VALDAT": today,
            "BANDAT": today, "REF": reference, "DES": f"Invoice {reference}" if reference else "",
            "STA": 9, "PST": True, "CPY": order.get("CPY", ""), "FCY": order.get("POHFCY", ""),
        }  # fmt: skip
        created: dict[str, Any] = self._x3("POST", "PAYMENTH", payment)
        return self._past_its_second(created)

    def _x3(self, method: str, target: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.x3_url}/_sim/records/{target}"
        response = self._call("X3", method, url, body)
        message = _x3_message(response)  # a 404 of the simulator's own: no such record
        if response.status_code == 404 and message and not message.startswith("No control"):
            raise NotInSimulator(message)
        return self._answer("X3", response, url)

    @staticmethod
    def _past_its_second(record: dict[str, Any]) -> dict[str, Any]:
        """Return once the second X3 stamped a write in is over: a poll reads changes up
        to X3's clock, its current second excluded, so the next `poll` sees this one."""
        try:
            stamped = datetime.fromisoformat(str(record.get("UPDDATTIM")).replace("Z", "+00:00"))
        except ValueError:
            return record
        wait = (stamped + timedelta(seconds=1) - datetime.now(UTC)).total_seconds()
        time.sleep(min(max(wait, 0.0), 1.0))
        return record

    # -- Twilio -----------------------------------------------------------------------

    def messages(self) -> list[dict[str, Any]]:
        """The SMS the Twilio simulator accepted, oldest first."""
        url = f"{self.twilio_url}/_sim/messages"
        messages: list[dict[str, Any]] = self._answer(
            "Twilio", self._call("Twilio", "GET", url), url
        )
        return messages

    def last_texted(self) -> str | None:
        """The number the newest SMS went to: whom a reply would come from."""
        return next((m["to"] for m in reversed(self.messages())), None)

    def reply(self, phone: str, text: str) -> str:
        """An SMS from `phone` to our number: Twilio's signed webhook to the shim."""
        url = f"{self.public_url}/twilio/sms"
        answer = self._play("incoming-sms", {"url": url, "from": phone, "body": text})
        _check_shim(url, answer["status"])
        return url

    def voicemail(self, phone: str, text: str) -> str:
        """A call from `phone` left as a voicemail: the voice webhook, then the recording's
        and the transcription's callbacks to the shim, as the shim's TwiML asks."""
        url = f"{self.public_url}/twilio/voice"
        answer = self._play("incoming-call", {"url": url, "from": phone, "transcription": text})
        for status in answer["statuses"]:  # the call's, then its recording's callbacks
            _check_shim(url, status)
        if len(answer["statuses"]) < 2:
            raise ShimUnavailable(url, "answered without <Record>: no voicemail was left")
        return url

    def _play(self, route: str, options: dict[str, str]) -> dict[str, Any]:
        url = f"{self.twilio_url}/_sim/{route}"
        response = self._call("Twilio", "POST", url, options)
        if response.status_code == 502:  # the simulated Twilio got no answer from the shim
            failed = _json(response)
            where = str(failed.get("url") or options["url"])
            raise ShimDown(where, f"is not answering ({failed.get('error', 'no answer')})")
        answer: dict[str, Any] = self._answer("Twilio", response, url)
        return answer

    # -- HTTP -------------------------------------------------------------------------

    def _call(
        self, service: str, method: str, url: str, body: dict[str, Any] | None = None
    ) -> requests.Response:
        try:
            return requests.request(method, url, json=body, timeout=self.timeout)
        except requests.RequestException as error:
            raise SimUnavailable(
                f"the {service} simulator at {_base(url)} is not answering ({_reason(error)}): "
                "start it with `x3twilio sim --write-config FILE`, and use that FILE"
            ) from None

    @staticmethod
    def _answer(service: str, response: requests.Response, url: str) -> Any:
        if response.ok:
            return _json(response)
        if response.status_code == 404:
            raise SimUnavailable(
                f"{_base(url)} answered 404 to {url.removeprefix(_base(url))}: it is not an "
                f"`x3twilio sim` (is this the configuration `sim --write-config` wrote?)"
            )
        message = _x3_message(response) if service == "X3" else _json(response).get("error", "")
        raise SimUnavailable(f"the {service} simulator answered {response.status_code}: {message}")


def _check_shim(url: str, status: int) -> None:
    if status == 403:
        raise ShimUnavailable(
            url,
            "answered 403: it refused the simulator's signature (serve the configuration "
            "this `x3twilio sim` wrote: each run has its own auth token)",
        )
    if status >= 400:
        raise ShimUnavailable(url, f"answered {status}")


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}


def _x3_message(response: requests.Response) -> str:
    body = _json(response)
    diagnoses = body.get("$diagnoses") if isinstance(body, dict) else None
    if isinstance(diagnoses, list) and diagnoses and isinstance(diagnoses[0], dict):
        return str(diagnoses[0].get("$message", ""))
    return ""


def _base(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _reason(error: requests.RequestException) -> str:
    if isinstance(error, requests.Timeout):
        return "timed out"
    text = str(error).lower()
    return "connection refused" if "refused" in text else "no connection"
