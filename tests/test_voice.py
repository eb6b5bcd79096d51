"""Voice calls (and the SMS validity period) over real HTTP to the Twilio simulator."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest

from x3twilio.config import RetryConfig, TwilioConfig
from x3twilio.errors import ConfigError, TwilioError
from x3twilio.model import Notification
from x3twilio.senders.twilio import TwilioApiError, TwilioSender, TwilioVoiceSender
from x3twilio.simulators import RunningServer, read_body, serve
from x3twilio.simulators.twilio import TwilioSimulator
from x3twilio.transport import Outcome, Retrier, make_session

PUBLIC_URL = "https://shim.example.com"
TO = "+33612345678"
CALL = Notification(
    id="n-00000000000000000000call",
    rule="stock_alert",
    source="stock",
    record="ITM-42",
    channel="voice",
    to=TO,
    body='Stock of "bolts & nuts" is <low>: 3 left.',
)
SAID = 'Stock of "bolts &amp; nuts" is &lt;low&gt;: 3 left.'


# -- fixtures ---------------------------------------------------------------------


class Recording:
    """The simulator behind a log of every API request: (method, path, form)."""

    def __init__(self, app: TwilioSimulator) -> None:
        self.app = app
        self.log: list[tuple[str, str, list[tuple[str, str]]]] = []
        self.queries: list[dict[str, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_sim/"):
            form = parse_qsl(body.decode(), keep_blank_values=True)
            self.log.append((environ["REQUEST_METHOD"], path.rsplit("/", 1)[-1], form))
            self.queries.append(dict(parse_qsl(environ.get("QUERY_STRING", ""))))
        return self.app(environ, start_response)

    def requests(self) -> list[str]:
        return [f"{method} {name}" for method, name, _ in self.log]

    def form(self, index: int = -1) -> list[tuple[str, str]]:
        return self.log[index][2]


@dataclass
class Phone:
    """Senders against one running Twilio simulator; `sleeps` records the retrier's waits."""

    server: RunningServer
    recording: Recording
    sleeps: list[float] = field(default_factory=list)
    sleep: Any = None  # a real pause between attempts, where a test needs one

    @property
    def sim(self) -> TwilioSimulator:
        return self.recording.app

    def config(self, test: bool = False, **changes: Any) -> TwilioConfig:
        sim = self.sim
        account, token = (
            (sim.test_account_sid, sim.test_auth_token)
            if test
            else (sim.account_sid, sim.auth_token)
        )
        config = TwilioConfig(
            account_sid=account,
            auth_token=token,
            from_number="+15005550006" if test else sim.phone_number,
            api_url=self.server.url,
            timeout=2.0,
        )
        return replace(config, **changes)

    def retrier(self) -> Retrier:
        def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            if self.sleep:
                time.sleep(self.sleep)

        return Retrier(RetryConfig(attempts=3, initial=0.01), sleep=sleep)

    def voice(self, config: TwilioConfig | None = None, **options: Any) -> TwilioVoiceSender:
        config = config or self.config()
        return TwilioVoiceSender(config, PUBLIC_URL, make_session(), self.retrier(), **options)

    def sms(self) -> TwilioSender:
        return TwilioSender(self.config(), PUBLIC_URL, make_session(), self.retrier())


@pytest.fixture
def phone() -> Iterator[Phone]:
    recording = Recording(TwilioSimulator())
    with serve(recording) as server:
        yield Phone(server, recording)


def values(form: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in form if key == name]


# -- placing a call ---------------------------------------------------------------


def test_a_call_says_the_escaped_body_and_reports_every_status(phone: Phone) -> None:
    sid = phone.voice().send(CALL, None)

    (call,) = phone.sim.calls
    assert sid == call["sid"] and sid.startswith("CA")
    assert (call["to"], call["from"]) == (TO, phone.sim.phone_number)
    form = phone.recording.form()
    assert values(form, "Twiml") == [
        f'<Response><Say language="en-GB" voice="alice">{SAID}</Say></Response>'
    ]
    assert values(form, "StatusCallback") == [f"{PUBLIC_URL}/twilio/status?n={CALL.id}"]
    assert values(form, "StatusCallbackEvent") == ["initiated", "ringing", "answered", "completed"]
    assert phone.recording.requests() == ["POST Calls.json"]


def test_language_and_voice_are_configurable(phone: Phone) -> None:
    phone.voice(language="fr-FR", voice="Polly.Celine").send(CALL, None)
    (twiml,) = values(phone.recording.form(), "Twiml")
    assert twiml.startswith('<Response><Say language="fr-FR" voice="Polly.Celine">')


def test_characters_xml_forbids_are_dropped_from_the_twiml(phone: Phone) -> None:
    twiml = phone.voice().twiml("bell\x07 and\x00 tab\tkept")
    assert twiml.endswith(">bell  and  tab\tkept</Say></Response>")


def test_voice_needs_a_calling_number(phone: Phone) -> None:
    config = phone.config(from_number=None, messaging_service_sid=phone.sim.messaging_service_sid)
    with pytest.raises(ConfigError, match=r"twilio\.from"):
        phone.voice(config)


def test_a_body_too_long_for_twiml_fails_without_a_request(phone: Phone) -> None:
    with pytest.raises(TwilioError) as caught:
        phone.voice().send(replace(CALL, body="word " * 900), None)
    assert (caught.value.status, caught.value.transient) == (400, False)
    assert "stock_alert" in caught.value.message
    assert phone.recording.log == []


# -- refusals: not retried --------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("+15005550001", 21217),
        ("+15005550002", 21214),
        ("+15005550003", 21215),
        ("+15005550004", 21216),
    ],
)
def test_a_call_refused_for_its_number_is_a_permanent_error(
    phone: Phone, to: str, code: int
) -> None:
    sender = phone.voice(phone.config(test=True))
    with pytest.raises(TwilioApiError) as caught:
        sender.send(replace(CALL, to=to), None)
    error = caught.value
    assert (error.status, error.code, error.transient) == (400, code, False)
    assert error.outcome is Outcome.REFUSED
    assert phone.recording.requests() == ["POST Calls.json"]


@pytest.mark.parametrize(("from_", "code"), [("+15005550001", 21212), ("+15005550009", 21210)])
def test_a_calling_number_refused_by_test_credentials_is_about_the_account(
    phone: Phone, from_: str, code: int
) -> None:
    sender = phone.voice(phone.config(test=True, from_number=from_))
    with pytest.raises(TwilioApiError) as caught:
        sender.send(CALL, None)
    error = caught.value
    assert (error.status, error.code, error.transient) == (400, code, False)
    assert error.outcome is Outcome.ACCOUNT  # every call would fail alike: the run stops
    assert phone.recording.requests() == ["POST Calls.json"]


def test_test_credentials_place_a_call_that_is_not_kept(phone: Phone) -> None:
    sid = phone.voice(phone.config(test=True)).send(CALL, None)
    assert sid.startswith("CA")


def test_wrong_credentials_are_a_401_about_the_account_and_not_retried(phone: Phone) -> None:
    with pytest.raises(TwilioApiError) as caught:
        phone.voice(phone.config(auth_token="0" * 32)).send(CALL, None)
    assert (caught.value.status, caught.value.transient) == (401, False)
    assert caught.value.outcome is Outcome.ACCOUNT
    assert phone.recording.requests() == ["POST Calls.json"]


@pytest.mark.parametrize(("from_", "code"), [("+15017122662", 21210), ("ACME", 21212)])
def test_a_from_number_not_of_the_account_is_about_the_account(
    phone: Phone, from_: str, code: int
) -> None:
    with pytest.raises(TwilioApiError) as caught:
        phone.voice(phone.config(from_number=from_)).send(CALL, None)
    assert caught.value.code == code and not caught.value.transient
    assert caught.value.outcome is Outcome.ACCOUNT
    assert phone.sim.calls == []


# -- unknown outcomes: never posted twice -------------------------------------------


def test_a_429_is_retried_without_looking_up_calls(phone: Phone) -> None:
    phone.sim.faults.add("429", match="Calls.json")
    sid = phone.voice().send(CALL, None)
    assert [call["sid"] for call in phone.sim.calls] == [sid]
    assert phone.recording.requests() == ["POST Calls.json", "POST Calls.json"]


def test_a_refused_connection_is_retried_it_never_reached_twilio(phone: Phone) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # a port nobody listens on
    port = closed.getsockname()[1]
    closed.close()
    sender = phone.voice(phone.config(api_url=f"http://127.0.0.1:{port}"))
    with pytest.raises(TwilioApiError) as caught:
        sender.send(CALL, None)
    assert caught.value.outcome is Outcome.UNREACHABLE and caught.value.transient
    assert len(phone.sleeps) == 2  # three attempts: safe, nothing was ever sent


@pytest.mark.parametrize("fault", ["reset", "reset_before", "500", "garbage"])
def test_an_unanswered_create_is_maybe_sent_and_never_posted_again(
    phone: Phone, fault: str
) -> None:
    phone.sim.faults.add(fault, match="POST")
    with pytest.raises(TwilioApiError) as caught:
        phone.voice().send(CALL, None)
    error = caught.value
    assert error.outcome is Outcome.MAYBE_SENT and error.maybe_sent and not error.transient
    assert phone.recording.requests() == ["POST Calls.json"]  # no lookup, no second call
    created = len(phone.sim.calls)
    assert created == (1 if fault == "reset" else 0)  # whatever Twilio did, we cannot tell


def test_a_timed_out_create_is_found_once_twilio_has_created_it(phone: Phone) -> None:
    phone.sim.faults.add("late", match="POST", delay=0.3)  # created 0.3 s after we gave up
    sender = phone.voice(phone.config(timeout=0.2))
    started = datetime.now(UTC)
    with pytest.raises(TwilioApiError) as caught:
        sender.send(CALL, None)
    assert caught.value.outcome is Outcome.MAYBE_SENT
    assert phone.sim.calls == []  # looked up now, it would be "absent": hence the settle
    assert sender.find_sent(CALL, started) is None
    assert phone.sim.wait_settled(5)
    (call,) = phone.sim.calls
    assert sender.find_sent(CALL, started) == call["sid"]
    # a queued call has no StartTime yet: the lookup filters on the numbers only
    assert phone.recording.queries[-1] == {
        "To": TO,
        "From": phone.sim.phone_number,
        "PageSize": "50",
    }


def test_a_lookup_that_fails_is_never_taken_for_absent(phone: Phone) -> None:
    phone.voice().send(CALL, None)
    phone.sim.faults.add("garbage", match="GET", times=0)
    with pytest.raises(TwilioApiError) as caught:
        phone.voice().find_sent(CALL, datetime.now(UTC) - timedelta(seconds=5))
    assert caught.value.outcome is Outcome.UNREACHABLE


def test_a_lookup_does_not_take_a_call_to_someone_else(phone: Phone) -> None:
    phone.voice().send(CALL, None)
    other = phone.voice().find_sent(replace(CALL, to="+33699999999"), datetime.now(UTC))
    assert other is None


def test_an_earlier_attempt_in_flight_is_found_before_any_new_call(phone: Phone) -> None:
    sid = phone.voice().send(CALL, None)
    phone.recording.log.clear()
    since = datetime.now(UTC) - timedelta(seconds=5)
    assert phone.voice().send(CALL, since) == sid
    assert phone.recording.requests() == ["GET Calls.json"]
    assert len(phone.sim.calls) == 1


def test_calls_older_than_the_attempt_are_not_taken_for_it(phone: Phone) -> None:
    phone.voice().send(CALL, None)
    phone.recording.log.clear()
    later = datetime.now(UTC) + timedelta(minutes=10)
    new_sid = phone.voice().send(CALL, later)
    assert len(phone.sim.calls) == 2 and new_sid == phone.sim.calls[1]["sid"]
    assert phone.recording.requests() == ["GET Calls.json", "POST Calls.json"]


def test_a_call_known_for_another_notification_is_passed_over(phone: Phone) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    first = phone.voice().send(CALL, None)  # another alert to the same person
    second = replace(CALL, id="n-000000000000000000second")
    assert phone.voice(is_known=lambda sid: sid == first).find_sent(second, since) is None
    # what is_known is for: a call keeps no trace of its TwiML
    assert phone.voice().find_sent(second, since) == first


# -- SMS: the validity period ------------------------------------------------------


def test_an_sms_carries_a_validity_period_when_given(phone: Phone) -> None:
    sms = replace(CALL, channel="sms", body="Stock low")
    phone.sms().send(sms, None, validity_period=900)
    assert values(phone.recording.form(), "ValidityPeriod") == ["900"]


def test_an_sms_without_validity_period_sends_none(phone: Phone) -> None:
    sms = replace(CALL, channel="sms", body="Stock low")
    sid = phone.sms().send(sms, None)
    assert sid.startswith("SM")
    assert values(phone.recording.form(), "ValidityPeriod") == []
    assert values(phone.recording.form(), "StatusCallback") == [
        f"{PUBLIC_URL}/twilio/status?n={CALL.id}"
    ]
