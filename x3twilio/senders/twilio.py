"""SMS and voice calls through Twilio, never sending twice what Twilio may already hold."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin
from xml.sax.saxutils import escape, quoteattr

import requests

from x3twilio.config import Config, TwilioConfig
from x3twilio.errors import ConfigError, TwilioError
from x3twilio.outbox import Notification
from x3twilio.transport import Retrier, retry_after

API_VERSION = "2010-04-01"
# Twilio codes that a later attempt may get past (TWILIO.md §3.1); 5xx are transient too.
TRANSIENT_CODES = {20429, 21611, 30001, 30003, 30008}
OPTED_OUT = 21610
_CLOCK_SLACK = timedelta(minutes=2)  # our clock against Twilio's, when reconciling
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
MAX_TWIML = 4000  # characters Twilio accepts in a Calls create's Twiml (TWILIO.md §5)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # XML 1.0 forbids them


class _TwilioApi:
    """What both channels share: the account URL, credentials, one call, reconciliation."""

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

    def status_callback(self, notification_id: str) -> str:
        # The id rides along so a status callback maps straight back to its notification.
        return f"{self.public_url}/twilio/status?n={notification_id}"

    def _reconciled(
        self,
        create: Callable[[], str],
        find: Callable[[datetime], str | None],
        in_flight_since: datetime | None,
    ) -> str:
        """Create through the retrier, first looking up whatever may already exist.

        `in_flight_since` is set when an earlier attempt may have reached Twilio (a crash
        or an ambiguous failure): Twilio's list is checked before any new POST.
        """
        since = [in_flight_since]

        def attempt() -> str:
            if since[0] is not None:
                found = find(since[0])
                if found:
                    return found
            try:
                return create()
            except TwilioError as exc:
                if exc.transient and exc.code != 20429 and since[0] is None:
                    since[0] = datetime.now().astimezone()  # it may have been accepted
                raise

        return self.retrier.call(attempt)

    def _listed(
        self, resource: str, params: dict[str, str], since: datetime
    ) -> Iterator[dict[str, Any]]:
        """Items of a list (newest first) down to `since`, page after page."""
        url: str | None = f"{self.account_url}/{resource}.json"
        key = resource.lower()
        while url:
            page = self._call("GET", url, params=params)
            params = {}  # next_page_uri carries them
            for item in page.get(key) or []:
                created = _rfc2822(item.get("date_created"))
                if created and created < since - _CLOCK_SLACK:
                    return  # the list is newest first: nothing older can match
                yield item
            next_uri = page.get("next_page_uri")
            url = urljoin(self.config.api_url, next_uri) if next_uri else None

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


class TwilioSender(_TwilioApi):
    channel = "sms"
    reconciles = True  # an ambiguous failure is looked up in Twilio's message list

    def send(
        self,
        n: Notification,
        in_flight_since: datetime | None,
        validity_period: int | None = None,
    ) -> str:
        """Send `n` and return its Message SID.

        `in_flight_since` is set when an earlier attempt may have reached Twilio (a crash
        or an ambiguous failure): Twilio's message list is checked before any new POST.
        `validity_period` (seconds) lets Twilio drop the message rather than deliver it late.
        """
        return self._reconciled(
            lambda: self._create(n, validity_period),
            lambda since: self.find_sent(n, since),
            in_flight_since,
        )

    def _create(self, n: Notification, validity_period: int | None = None) -> str:
        form = {"To": n.to, "Body": n.body, "StatusCallback": self.status_callback(n.id)}
        if self.config.messaging_service_sid:
            form["MessagingServiceSid"] = self.config.messaging_service_sid
        if self.config.from_number:
            form["From"] = self.config.from_number
        if validity_period is not None:
            form["ValidityPeriod"] = str(validity_period)
        body = self._call("POST", f"{self.account_url}/Messages.json", data=form)
        sid = body.get("sid")
        if not isinstance(sid, str):
            raise TwilioError("created a message but sent back no sid", transient=True)
        return sid

    def find_sent(self, n: Notification, since: datetime) -> str | None:
        """The SID of a message to n.to with n.body created since `since`, if Twilio has one."""
        params = {"To": n.to, "PageSize": "50"}
        if self.config.from_number:
            params["From"] = self.config.from_number
        for message in self._listed("Messages", params, since):
            if message.get("body") == n.body and message.get("status") != "canceled":
                return str(message["sid"])
        return None


class TwilioVoiceSender(_TwilioApi):
    """Calls the recipient and reads the notification out (<Say>), once."""

    channel = "voice"
    reconciles = True

    def __init__(
        self,
        config: TwilioConfig,
        public_url: str,
        session: requests.Session,
        retrier: Retrier,
        language: str = "en-GB",
        voice: str = "alice",
        is_known: Callable[[str], bool] = lambda sid: False,
    ) -> None:
        """`is_known(sid)` tells a call already recorded for another notification."""
        if not config.from_number:
            raise ConfigError(
                "configuration",
                "twilio.from",
                "voice needs a calling number; a Messaging Service cannot place calls",
            )
        super().__init__(config, public_url, session, retrier)
        self.from_number: str = config.from_number
        self.language, self.voice, self.is_known = language, voice, is_known

    def twiml(self, text: str) -> str:
        """The call's instructions: say `text` (XML-escaped) in the configured voice."""
        attributes = f"language={quoteattr(self.language)} voice={quoteattr(self.voice)}"
        said = escape(_NOT_XML.sub(" ", text))  # else Twilio fails the call (12100)
        return f"<Response><Say {attributes}>{said}</Say></Response>"

    def send(self, n: Notification, in_flight_since: datetime | None) -> str:
        """Place a call reading `n.body` to `n.to` and return its Call SID."""
        return self._reconciled(
            lambda: self._create(n), lambda since: self.find_sent(n, since), in_flight_since
        )

    def _create(self, n: Notification) -> str:
        twiml = self.twiml(n.body)
        if len(twiml) > MAX_TWIML:
            raise TwilioError(  # HTTP 400 is what Twilio would answer: permanent
                f"the call's TwiML is {len(twiml)} characters, above Twilio's {MAX_TWIML}: "
                f"shorten the template of rule {n.rule}",
                status=400,
            )
        form = [
            ("To", n.to),
            ("From", self.from_number),
            ("Twiml", twiml),
            ("StatusCallback", self.status_callback(n.id)),
        ]
        form += [("StatusCallbackEvent", event) for event in CALL_EVENTS]
        body = self._call("POST", f"{self.account_url}/Calls.json", data=form)
        sid = body.get("sid")
        if not isinstance(sid, str):
            raise TwilioError("created a call but sent back no sid", transient=True)
        return sid

    def find_sent(self, n: Notification, since: datetime) -> str | None:
        """The SID of a call from our number to n.to created since `since`, if Twilio has one.

        A call keeps no trace of its TwiML, so calls already recorded for another
        notification (`is_known`) are passed over. Calls are not filtered on StartTime:
        a queued call has none yet.
        """
        params = {"To": n.to, "From": self.from_number, "PageSize": "50"}
        for call in self._listed("Calls", params, since):
            if not self.is_known(str(call["sid"])):
                return str(call["sid"])
        return None


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
