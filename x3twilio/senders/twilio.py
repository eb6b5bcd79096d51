"""SMS through Twilio's Messages API, never sending twice what Twilio may already hold."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

import requests

from x3twilio.config import Config, TwilioConfig
from x3twilio.errors import TwilioError
from x3twilio.outbox import Notification
from x3twilio.transport import Retrier, retry_after

API_VERSION = "2010-04-01"
# Twilio codes that a later attempt may get past (TWILIO.md §3.1); 5xx are transient too.
TRANSIENT_CODES = {20429, 21611, 30001, 30003, 30008}
OPTED_OUT = 21610
_CLOCK_SLACK = timedelta(minutes=2)  # our clock against Twilio's, when reconciling


class TwilioSender:
    channel = "sms"

    def __init__(
        self, config: TwilioConfig, public_url: str, session: requests.Session, retrier: Retrier
    ) -> None:
        self.config, self.public_url = config, public_url
        self.session, self.retrier = session, retrier
        self.account_url = f"{config.api_url}/{API_VERSION}/Accounts/{config.account_sid}"
        if config.api_key_sid and config.api_key_secret:
            self.auth = (config.api_key_sid, config.api_key_secret)
        else:
            self.auth = (config.account_sid, config.auth_token)

    def send(self, n: Notification, in_flight_since: datetime | None) -> str:
        """Send `n` and return its Message SID.

        `in_flight_since` is set when an earlier attempt may have reached Twilio (a crash
        or an ambiguous failure): Twilio's message list is checked before any new POST.
        """
        since = [in_flight_since]

        def attempt() -> str:
            if since[0] is not None:
                found = self.find_sent(n, since[0])
                if found:
                    return found
            try:
                return self._create(n)
            except TwilioError as exc:
                if exc.transient and exc.code != 20429 and since[0] is None:
                    since[0] = datetime.now().astimezone()  # it may have been accepted
                raise

        return self.retrier.call(attempt)

    def _create(self, n: Notification) -> str:
        form = {"To": n.to, "Body": n.body, "StatusCallback": self.status_callback(n.id)}
        if self.config.messaging_service_sid:
            form["MessagingServiceSid"] = self.config.messaging_service_sid
        if self.config.from_number:
            form["From"] = self.config.from_number
        body = self._call("POST", f"{self.account_url}/Messages.json", data=form)
        sid = body.get("sid")
        if not isinstance(sid, str):
            raise TwilioError("created a message but sent back no sid", transient=True)
        return sid

    def status_callback(self, notification_id: str) -> str:
        # The id rides along so a status callback maps straight back to its notification.
        return f"{self.public_url}/twilio/status?n={notification_id}"

    def find_sent(self, n: Notification, since: datetime) -> str | None:
        """The SID of a message to n.to with n.body created since `since`, if Twilio has one."""
        params = {"To": n.to, "PageSize": "50"}
        if self.config.from_number:
            params["From"] = self.config.from_number
        url: str | None = f"{self.account_url}/Messages.json"
        while url:
            page = self._call("GET", url, params=params)
            params = {}  # next_page_uri carries them
            for message in page.get("messages") or []:
                created = _rfc2822(message.get("date_created"))
                if created and created < since - _CLOCK_SLACK:
                    return None  # the list is newest first: nothing older can match
                if message.get("body") == n.body and message.get("status") != "canceled":
                    return str(message["sid"])
            next_uri = page.get("next_page_uri")
            url = urljoin(self.config.api_url, next_uri) if next_uri else None
        return None

    def _call(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.session.request(
                method, url, auth=self.auth, timeout=self.config.timeout, **kwargs
            )
        except requests.Timeout:
            raise TwilioError(
                f"no answer within {self.config.timeout:g}s", transient=True
            ) from None
        except requests.ConnectionError as exc:
            raise TwilioError(f"connection failed: {str(exc)[:160]}", transient=True) from None
        body = _json(response)
        if response.status_code >= 400:
            raise _error(response, body)
        return body


def _error(response: requests.Response, body: dict[str, Any]) -> TwilioError:
    status = response.status_code
    code = body.get("code") if isinstance(body.get("code"), int) else None
    message = str(body.get("message") or response.reason or "error")
    if status == 401:
        message = "credentials refused (HTTP 401): check twilio.account_sid and the token or key"
    transient = status >= 500 or status == 429 or code in TRANSIENT_CODES
    text = f"HTTP {status}" + (f" error {code}" if code else "") + f": {message}"
    return TwilioError(
        text, status=status, code=code, transient=transient, retry_after=retry_after(response)
    )


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _rfc2822(value: Any) -> datetime | None:
    try:
        return parsedate_to_datetime(value) if isinstance(value, str) else None
    except (TypeError, ValueError):
        return None


def register_webhooks(config: Config, number: str) -> list[str]:
    """Find the IncomingPhoneNumber and point its webhooks at the shim's routes."""
    from x3twilio.transport import make_session

    twilio = config.twilio
    session = make_session()
    auth = (twilio.api_key_sid or twilio.account_sid, twilio.api_key_secret or twilio.auth_token)
    base = f"{twilio.api_url}/{API_VERSION}/Accounts/{twilio.account_sid}/IncomingPhoneNumbers"
    response = session.get(
        f"{base}.json", params={"PhoneNumber": number}, auth=auth, timeout=twilio.timeout
    )
    if response.status_code != 200:
        raise _error(response, _json(response))
    numbers = _json(response).get("incoming_phone_numbers") or []
    if not numbers:
        raise TwilioError(f"{number} is not a number of account {twilio.account_sid}")
    sid, url = numbers[0]["sid"], config.public_url
    form = {
        "SmsUrl": f"{url}/twilio/sms",
        "SmsMethod": "POST",
        "VoiceUrl": f"{url}/twilio/voice",
        "VoiceMethod": "POST",
        "StatusCallback": f"{url}/twilio/status",
        "StatusCallbackMethod": "POST",
    }
    response = session.post(f"{base}/{sid}.json", data=form, auth=auth, timeout=twilio.timeout)
    if response.status_code != 200:
        raise _error(response, _json(response))
    return [
        f"{number} ({sid}): {name} → {value}"
        for name, value in form.items()
        if name.endswith("Url") or name == "StatusCallback"
    ]
