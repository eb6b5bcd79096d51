"""SMS and voice calls through Twilio, never sending twice what Twilio may already hold.

A create whose outcome is unknown (no answer in time, a reset, a 5xx, an answer without a
sid) is never posted again by the sender: it raises an error whose outcome is MAYBE_SENT,
and the dispatcher looks the message up in Twilio's list once Twilio has had time to
create it. What every Twilio error means is decided here, in `CODES` and `_error`.
"""

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
from x3twilio.model import Notification
from x3twilio.senders.base import DIGEST_SEPARATOR
from x3twilio.transport import Outcome, Retrier, never_connected, retry_after
from x3twilio.whatsapp import REASONS as WHATSAPP_REASONS

API_VERSION = "2010-04-01"
OPTED_OUT = 21610
_CLOCK_SLACK = timedelta(minutes=2)  # our clock against Twilio's, when reconciling
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
MAX_TWIML = 4000  # characters Twilio accepts in a Calls create's Twiml (TWILIO.md §5)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # XML 1.0 forbids them

_ACCOUNT, _LATER, _REFUSED = Outcome.ACCOUNT, Outcome.LATER, Outcome.REFUSED
# What Twilio's error codes mean (TWILIO.md §3.1 and §4, and Twilio's error pages
# twilio.com/docs/api/errors/<code>). A code not listed is judged by its HTTP status.
CODES: dict[int, Outcome] = {
    # -- the account or the sender: the run stops, every notification stays pending --
    10001: _ACCOUNT,  # account is not active (suspended: funds, terms of service)
    20003: _ACCOUNT,  # authenticate (401): wrong credentials, or a suspended or closed account
    20005: _ACCOUNT,  # account not active (out of funds, trial not activated)
    20008: _ACCOUNT,  # test credentials on a resource they cannot reach (403, §4)
    20404: _ACCOUNT,  # the account's Messages or Calls not found: twilio.api_url or account_sid
    21210: _ACCOUNT,  # calls: From is not a purchased or verified number of the account (§4)
    21212: _ACCOUNT,  # From is not a valid number, short code or sender ID (§3.1, §4)
    21213: _ACCOUNT,  # calls: no From
    21603: _ACCOUNT,  # neither From nor MessagingServiceSid (§13)
    21606: _ACCOUNT,  # From is not an SMS-capable number of this account (§3.1, §4)
    21611: _ACCOUNT,  # the From's queue holds 10 hours of messages (§3.1): no use going on
    21701: _ACCOUNT,  # the Messaging Service does not exist, or is another account's
    21705: _ACCOUNT,  # the Messaging Service SID is invalid
    30002: _ACCOUNT,  # account suspended (§3.1; reported after queueing)
    63007: _ACCOUNT,  # WhatsApp: From is not a WhatsApp sender of the account
    21910: _ACCOUNT,  # From and To of different channels (an SMS From to a WhatsApp To)
    # -- refused for now, never processed: this notification again after a backoff --
    20429: _LATER,  # too many concurrent requests (§3.1: "always safe to retry")
    30001: _LATER,  # queue overflow (§3.1; reported after queueing)
    30003: _LATER,  # unreachable handset (§3.1; reported after queueing)
    30008: _LATER,  # unknown error (§3.1; reported after queueing)
    # -- this notification: failed for good, a person fixes the data --
    21211: _REFUSED,  # invalid To
    21214: _REFUSED,  # calls: To cannot be reached
    21215: _REFUSED,  # calls: no geo permission for To's country
    21216: _REFUSED,  # calls: To is blocked
    21217: _REFUSED,  # calls: To does not look valid
    21408: _REFUSED,  # SMS: no geo permission for To's region
    21602: _REFUSED,  # empty body
    21604: _REFUSED,  # no To
    21608: _REFUSED,  # trial account: To is not a verified number
    21610: _REFUSED,  # To replied STOP (remembered as an opt-out)
    21612: _REFUSED,  # SMS: Twilio cannot route to To
    21614: _REFUSED,  # SMS: To is not a mobile number
    21617: _REFUSED,  # body over 1600 characters
    21635: _REFUSED,  # To is a landline
    # WhatsApp and Content templates: the rule's template, or the window, is to fix
    63016: _REFUSED,  # free text outside WhatsApp's 24-hour window: a template was needed
    63003: _REFUSED,  # WhatsApp: To is not a WhatsApp user
    21654: _REFUSED,  # ContentVariables without a ContentSid
    21655: _REFUSED,  # ContentSid is not a Content template of the account
    21656: _REFUSED,  # ContentVariables are not what the template takes
}
# What the operator should check: the account-level refusals, and WhatsApp's.
_HINTS = {
    **WHATSAPP_REASONS,
    10001: "the Twilio account is not active (suspended): see its Console",
    20005: "the Twilio account is not active (suspended, closed or out of funds): see its Console",
    20008: "test credentials cannot send for real nor look messages up: use the live account",
    20404: "check twilio.api_url and twilio.account_sid",
    21210: "twilio.from must be a Twilio number of this account that can place calls",
    21212: "twilio.from must be a Twilio number (E.164) of this account",
    21213: "set twilio.from",
    21603: "set twilio.from or twilio.messaging_service_sid",
    21606: "twilio.from must be an SMS-capable Twilio number of this account",
    21611: "the sender's queue at Twilio is full; the next runs try again",
    21701: "twilio.messaging_service_sid is not a Messaging Service of this account",
    21705: "twilio.messaging_service_sid is not a Messaging Service SID (MG…)",
}


class TwilioApiError(TwilioError):
    """A Twilio failure with what it means (`outcome`); `transient` follows from it."""

    def __init__(self, message: str, *, outcome: Outcome, **kwargs: Any) -> None:
        self.outcome = outcome
        super().__init__(message, transient=outcome.repeatable, **kwargs)

    @property
    def maybe_sent(self) -> bool:
        return self.outcome is Outcome.MAYBE_SENT


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
        """Look up whatever an earlier attempt may have created, then create at most once.

        `in_flight_since` is set when an earlier attempt may have reached Twilio: its list
        is checked first (the caller makes sure Twilio has had time to create it). Only
        what Twilio certainly did not accept (429, no connection) is posted again here;
        anything else that may have been accepted raises a MAYBE_SENT error.
        """
        if in_flight_since is not None:
            found = find(in_flight_since)
            if found:
                return found
        return self.retrier.call(create)

    def _listed(
        self, resource: str, params: dict[str, str], since: datetime
    ) -> Iterator[dict[str, Any]]:
        """Items of a list (newest first) down to `since`, page after page."""
        url: str | None = f"{self.account_url}/{resource}.json"
        key = resource.lower()
        while url:
            page = self.retrier.call(self._call, "GET", url, params)
            params = {}  # next_page_uri carries them
            items = page.get(key)
            if not isinstance(items, list):  # never "not there" on an answer we cannot read
                raise TwilioApiError(
                    f"answered the {resource} list without its items",
                    outcome=Outcome.UNREACHABLE,
                )
            for item in items:
                created = _rfc2822(item.get("date_created"))
                if created and created < since - _CLOCK_SLACK:
                    return  # the list is newest first: nothing older can match
                yield item
            next_uri = page.get("next_page_uri")
            url = urljoin(self.config.api_url, next_uri) if next_uri else None

    def _call(self, method: str, url: str, params: Any = None, data: Any = None) -> dict[str, Any]:
        creating = method == "POST"
        try:
            response = self.session.request(
                method, url, params=params, data=data, auth=self.auth, timeout=self.config.timeout
            )
        except requests.RequestException as exc:
            raise _unanswered(exc, creating, self.config.timeout) from None
        body = _json(response)
        if response.status_code >= 400:
            raise _error(response, body, creating)
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
        or an ambiguous failure, its settle delay passed): Twilio's message list is checked
        before any new POST. `validity_period` (seconds) lets Twilio drop the message
        rather than deliver it late.
        """
        return self._reconciled(
            lambda: self._create(n, validity_period),
            lambda since: self.find_sent(n, since),
            in_flight_since,
        )

    def _create(self, n: Notification, validity_period: int | None = None) -> str:
        form = self._form(n)
        if validity_period is not None:
            form["ValidityPeriod"] = str(validity_period)
        body = self._call("POST", f"{self.account_url}/Messages.json", data=form)
        sid = body.get("sid")
        if not isinstance(sid, str):
            raise TwilioApiError(
                "created a message but sent back no sid", outcome=Outcome.MAYBE_SENT
            )
        return sid

    def _form(self, n: Notification) -> dict[str, str]:
        """The message's parameters: to whom, what, from which sender."""
        form = {"To": n.to, "Body": n.body, "StatusCallback": self.status_callback(n.id)}
        return form | self._sender(self.config.from_number)

    def _sender(self, from_: str | None) -> dict[str, str]:
        """Who sends, as configured: the number `from_`, the Messaging Service, or both."""
        sender = {"From": from_} if from_ else {}
        if self.config.messaging_service_sid:
            sender["MessagingServiceSid"] = self.config.messaging_service_sid
        return sender

    def find_sent(self, n: Notification, since: datetime) -> str | None:
        """The SID of a message to n.to carrying n.body created since `since`, if any.

        The body is matched whole, or as one part of a digest that folded it in.
        """
        params = {"To": n.to, "PageSize": "50"}
        if self.config.from_number:
            params["From"] = self.config.from_number
        for message in self._listed("Messages", params, since):
            listed = message.get("body")
            if (
                isinstance(listed, str)
                and _carries(listed, n.body)
                and message.get("status") != "canceled"
            ):
                return str(message["sid"])
        return None


class TwilioVoiceSender(_TwilioApi):
    """Calls the recipient and reads the notification out (<Say>), once."""

    channel = "voice"
    reconciles = True
    one_at_a_time = True  # a call keeps no trace of its text: one unresolved per number

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
            raise TwilioApiError(  # HTTP 400 is what Twilio would answer: permanent
                f"the call's TwiML is {len(twiml)} characters, above Twilio's {MAX_TWIML}: "
                f"shorten the template of rule {n.rule}",
                outcome=Outcome.REFUSED,
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
            raise TwilioApiError("created a call but sent back no sid", outcome=Outcome.MAYBE_SENT)
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


def outcome_for(status: int, code: int | None, creating: bool) -> Outcome:
    """What a Twilio error answer means: by its code where `CODES` knows it, else its status.

    `creating`: the request was a create (POST), which a 5xx may have left accepted.
    """
    if code in CODES:
        return CODES[code]
    if status in (401, 403, 404, 405):  # no message could get past this
        return Outcome.ACCOUNT
    if status == 429:
        return Outcome.LATER
    if status >= 500:
        return Outcome.MAYBE_SENT if creating else Outcome.UNREACHABLE
    return Outcome.REFUSED


def _error(
    response: requests.Response, body: dict[str, Any], creating: bool = False
) -> TwilioApiError:
    status = response.status_code
    code = body.get("code") if isinstance(body.get("code"), int) else None
    message = str(body.get("message") or response.reason or "error")
    outcome = outcome_for(status, code, creating)
    if status == 401:
        message = (
            f"credentials refused ({message}): check twilio.account_sid and the token or key, "
            "and that the account is active (Twilio refuses a suspended or closed one so too)"
        )
    elif code in _HINTS:
        message = f"{message} ({_HINTS[code]})"
    text = f"HTTP {status}" + (f" error {code}" if code else "") + f": {message}"
    if outcome is Outcome.MAYBE_SENT:
        text += "; Twilio may have accepted it anyway"
    return TwilioApiError(
        text, outcome=outcome, status=status, code=code, retry_after=retry_after(response)
    )


def _unanswered(exc: requests.RequestException, creating: bool, timeout: float) -> TwilioApiError:
    """No answer: never connected (safe to repeat), or maybe accepted if it was a create."""
    if never_connected(exc):
        return TwilioApiError(f"cannot connect: {str(exc)[:160]}", outcome=Outcome.UNREACHABLE)
    if isinstance(exc, requests.Timeout):
        what = f"no answer within {timeout:g}s"
    else:
        what = f"the connection broke before the answer ({str(exc)[:120]})"
    if creating:
        return TwilioApiError(f"{what}; Twilio may have accepted it", outcome=Outcome.MAYBE_SENT)
    return TwilioApiError(what, outcome=Outcome.UNREACHABLE)  # a lookup: ask again


def _carries(listed: str, body: str) -> bool:
    """Whether a listed message is `body`, alone or as one notification of a digest."""
    if listed == body:
        return True
    sep = DIGEST_SEPARATOR
    return f"{sep}{body}{sep}" in f"{sep}{listed}{sep}"


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
