"""The Twilio simulator over real HTTP: auth, validation codes, lists, faults, webhooks."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urljoin

import pytest
import requests
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from x3twilio.signature import validate_signature
from x3twilio.simulators import RunningServer, read_body, respond, serve
from x3twilio.simulators.twilio import TwilioSimulator

TO = "+33612345678"
RFC2822_GMT = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000")
VOICEMAIL_TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Leave a message.</Say>'
    '<Record transcribe="true" recordingStatusCallback="/twilio/recording" '
    'transcribeCallback="/twilio/transcription"/></Response>'
)


# -- fixtures ---------------------------------------------------------------------


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 2, 9, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Api:
    """Requests against one running simulator, with the live credentials by default."""

    server: RunningServer
    sim: TwilioSimulator

    @property
    def live(self) -> tuple[str, str]:
        return (self.sim.account_sid, self.sim.auth_token)

    @property
    def test(self) -> tuple[str, str]:
        return (self.sim.test_account_sid, self.sim.test_auth_token)

    def url(self, path: str, account: str | None = None) -> str:
        account = account or self.sim.account_sid
        return f"{self.server.url}/2010-04-01/Accounts/{account}/{path}"

    def send(
        self, form: dict[str, Any], auth: tuple[str, str] | None = None, **options: Any
    ) -> requests.Response:
        auth = auth or self.live
        account = options.pop("account", auth[0] if auth[0].startswith("AC") else None)
        fields = {"To": TO, "From": self.sim.phone_number, "Body": "Hello"} | form
        fields = {name: value for name, value in fields.items() if value is not None}
        url = self.url("Messages.json", account)
        options.setdefault("timeout", 5)
        return requests.post(url, data=fields, auth=auth, **options)

    def request(
        self, method: str, path: str, auth: tuple[str, str] | None = None, **options: Any
    ) -> requests.Response:
        auth = auth or self.live
        return requests.request(method, self.url(path, auth[0]), auth=auth, timeout=5, **options)


@dataclass
class Received:
    path: str
    query: str
    headers: dict[str, str]
    form: dict[str, str]

    def validates(self, base_url: str, token: str) -> bool:
        url = base_url + self.path + (f"?{self.query}" if self.query else "")
        signature = self.headers.get("X-Twilio-Signature")
        ours = validate_signature(url, self.form, signature, token)
        official = RequestValidator(token).validate(url, self.form, signature)
        return ours and official


@dataclass
class Receiver:
    """A tiny webhook endpoint that records every request and answers TwiML."""

    status: int = 200
    voice_twiml: str = VOICEMAIL_TWIML
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        form = dict(parse_qsl(read_body(environ).decode(), keep_blank_values=True))
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        headers["Content-Type"] = environ.get("CONTENT_TYPE", "")
        path = environ["PATH_INFO"]
        with self.lock:
            self.received.append(Received(path, environ["QUERY_STRING"], headers, form))
        if path == "/voice":
            return respond(start_response, 200, self.voice_twiml, "text/xml")
        return respond(start_response, self.status, "<Response/>", "text/xml")


class Swap:
    """Serves whichever app a test installs: one server per module, a fresh app per test.

    (Stopping a server costs half a second of polling, too much to pay per test.)
    """

    app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def sim_server() -> Iterator[tuple[Swap, RunningServer]]:
    swap = Swap()
    running = serve(swap)
    yield swap, running
    running.stop()


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[tuple[Swap, RunningServer]]:
    swap = Swap()
    running = serve(swap)
    yield swap, running
    running.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock, sim_server: tuple[Swap, RunningServer]) -> TwilioSimulator:
    sim_server[0].app = TwilioSimulator(clock=clock)
    return sim_server[0].app  # type: ignore[no-any-return]


@pytest.fixture
def server(sim: TwilioSimulator, sim_server: tuple[Swap, RunningServer]) -> RunningServer:
    return sim_server[1]


@pytest.fixture
def api(server: RunningServer, sim: TwilioSimulator) -> Api:
    return Api(server, sim)


@pytest.fixture
def receiver(receiver_server: tuple[Swap, RunningServer]) -> tuple[Receiver, str]:
    receiver_server[0].app = Receiver()
    return receiver_server[0].app, receiver_server[1].url


def error_of(response: requests.Response) -> int:
    body = response.json()
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{body['code']}"
    assert body["status"] == response.status_code
    return int(body["code"])


def wait_for(condition: Callable[[], bool], seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# -- credentials and the created resource ----------------------------------------------


def test_credentials_should_be_deterministic_and_well_formed() -> None:
    one, two = TwilioSimulator(), TwilioSimulator()

    assert one.credentials == two.credentials
    assert re.fullmatch(r"AC[0-9a-f]{32}", one.account_sid)
    assert re.fullmatch(r"SK[0-9a-f]{32}", one.api_key_sid)
    assert re.fullmatch(r"MG[0-9a-f]{32}", one.messaging_service_sid)
    assert one.test_account_sid != one.account_sid
    assert one.phone_number == "+15017122661"


def test_create_should_answer_201_with_the_full_message_resource(
    api: Api, sim: TwilioSimulator
) -> None:
    response = api.send({"Body": "Disk full on db1", "StatusCallback": "https://h.example/s"})

    assert response.status_code == 201
    message = response.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"])
    assert message["status"] == "queued"
    assert message["num_segments"] == "1" and message["num_media"] == "0"
    assert message["price"] is None and message["date_sent"] is None
    assert RFC2822_GMT.fullmatch(message["date_created"])
    assert message["date_created"] == "Thu, 02 May 2024 09:30:00 +0000"
    assert message["direction"] == "outbound-api" and message["api_version"] == "2010-04-01"
    assert (
        message["uri"] == f"/2010-04-01/Accounts/{sim.account_sid}/Messages/{message['sid']}.json"
    )
    assert message["subresource_uris"]["media"].endswith(f"{message['sid']}/Media.json")
    assert "test" not in message and "status_callback" not in message
    assert [(m["sid"], m["test"], m["status_callback"]) for m in sim.messages] == [
        (message["sid"], False, "https://h.example/s")
    ]


def test_num_segments_should_follow_the_segment_counter(api: Api) -> None:
    assert api.send({"Body": "a" * 161}).json()["num_segments"] == "2"
    assert api.send({"Body": "ł" * 71}).json()["num_segments"] == "2"


def test_a_messaging_service_should_start_accepted_with_zero_segments(
    api: Api, sim: TwilioSimulator
) -> None:
    form = {"From": None, "MessagingServiceSid": sim.messaging_service_sid}

    message = api.send(form).json()

    assert (message["status"], message["num_segments"]) == ("accepted", "0")
    assert message["messaging_service_sid"] == sim.messaging_service_sid


def test_an_api_key_should_authenticate_for_the_main_account(
    api: Api, sim: TwilioSimulator
) -> None:
    key = (sim.api_key_sid, sim.api_key_secret)

    assert api.send({}, auth=key, account=sim.account_sid).status_code == 201
    assert api.send({}, auth=key, account=sim.test_account_sid).status_code == 401


@pytest.mark.parametrize(
    "auth",
    [("ACwrong", "token"), None, "wrong-token", "swapped-account"],
)
def test_bad_credentials_should_get_the_exact_401_body(
    api: Api, sim: TwilioSimulator, auth: Any
) -> None:
    if auth == "wrong-token":
        auth = (sim.account_sid, "0" * 32)
    elif auth == "swapped-account":  # valid credentials, someone else's account in the path
        auth = (sim.test_account_sid, sim.test_auth_token)
    url = api.url("Messages.json", sim.account_sid)

    response = requests.post(url, data={"To": TO}, auth=auth, timeout=5)

    assert response.status_code == 401
    assert response.json() == {
        "code": 20003,
        "message": "Authenticate",
        "detail": "Your AccountSid or AuthToken was incorrect.",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }


# -- validation, in Twilio's order ------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"To": None}, 21604),
        ({"To": None, "From": None, "Body": None}, 21604),
        ({"From": None}, 21603),
        ({"From": None, "Body": None}, 21603),
        ({"Body": None}, 21602),
        ({"Body": ""}, 21602),
        ({"Body": "x" * 1601}, 21617),
        ({"Body": "x" * 1601, "To": "0612345678"}, 21617),
        ({"To": "0612345678"}, 21211),
        ({"To": "+15005550001"}, 21211),
        ({"To": "+15005550002"}, 21612),
        ({"To": "+15005550003"}, 21408),
        ({"To": "+15005550004"}, 21610),
        ({"To": "+15005550009"}, 21614),
        ({"From": "+15005550006"}, 21606),
        ({"From": None, "MessagingServiceSid": "MG" + "0" * 32}, 21701),
    ],
)
def test_live_validation_should_answer_twilios_codes(
    api: Api, sim: TwilioSimulator, form: dict[str, Any], code: int
) -> None:
    response = api.send(form)

    assert response.status_code == 400
    assert error_of(response) == code
    assert sim.messages == []


def test_media_without_a_body_should_be_accepted(api: Api) -> None:
    response = api.send({"Body": None, "MediaUrl": ["https://h.example/a.png"]})

    assert response.status_code == 201
    assert response.json()["num_media"] == "1"


def test_an_opted_out_number_should_get_21610(api: Api, sim: TwilioSimulator) -> None:
    sim.opted_out.add(TO)

    response = api.send({})

    assert (response.status_code, error_of(response)) == (400, 21610)
    assert response.json()["message"] == "Attempt to send to unsubscribed recipient"


@pytest.mark.parametrize(
    ("sender", "code"),
    [
        ("+15005550006", None),
        ("+15005550001", 21212),
        ("+15005550007", 21606),
        ("+15005550008", 21611),
        ("+15017122661", 21606),  # a live number is "any other" to the test account
    ],
)
def test_test_credentials_should_follow_the_magic_from_table(
    api: Api, sender: str, code: int | None
) -> None:
    response = api.send({"From": sender}, auth=api.test)

    if code is None:
        assert response.status_code == 201
    else:
        assert (response.status_code, error_of(response)) == (400, code)


@pytest.mark.parametrize(
    ("to", "code"),
    [("+15005550001", 21211), ("+15005550002", 21612), ("+15005550004", 21610)],
)
def test_test_credentials_should_follow_the_magic_to_table(api: Api, to: str, code: int) -> None:
    response = api.send({"From": "+15005550006", "To": to}, auth=api.test)

    assert error_of(response) == code


def test_test_credentials_should_refuse_a_messaging_service(api: Api, sim: TwilioSimulator) -> None:
    form = {"From": None, "MessagingServiceSid": sim.messaging_service_sid}

    assert error_of(api.send(form, auth=api.test)) == 21701


def test_a_test_message_should_be_recorded_but_never_sent_or_called_back(
    api: Api, sim: TwilioSimulator
) -> None:
    form = {"From": "+15005550006", "StatusCallback": "http://127.0.0.1:9/never"}

    message = api.send(form, auth=api.test).json()

    assert message["account_sid"] == sim.test_account_sid
    assert message["status"] == "queued"
    assert sim.messages[0]["test"] is True
    assert sim.deliver_callbacks() == 0
    assert sim.messages[0]["status"] == "queued"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "Messages.json"),
        ("GET", "Calls.json"),
        ("GET", "IncomingPhoneNumbers.json"),
        ("POST", "IncomingPhoneNumbers/PN123.json"),
        ("GET", "Messages/SM123.json"),
    ],
)
def test_test_credentials_should_be_refused_elsewhere_with_20008(
    api: Api, method: str, path: str
) -> None:
    response = api.request(method, path, auth=api.test)

    assert response.status_code == 403
    assert response.json() == {
        "code": 20008,
        "message": "Resource not accessible with Test Account Credentials",
        "more_info": "https://www.twilio.com/docs/errors/20008",
        "status": 403,
    }


def test_unknown_routes_and_methods_should_answer_404_and_405(api: Api) -> None:
    assert error_of(api.request("GET", "Nope.json")) == 20404
    assert error_of(api.request("PUT", "Messages.json")) == 20004
    assert api.request("GET", "Messages.json").status_code == 200


def test_the_account_resource_should_answer_for_credential_checks(
    api: Api, server: RunningServer, sim: TwilioSimulator
) -> None:
    url = f"{server.url}/2010-04-01/Accounts/{sim.account_sid}.json"

    response = requests.get(url, auth=api.live, timeout=5)

    assert (response.status_code, response.json()["status"]) == (200, "active")


# -- list, filters, paging ------------------------------------------------------------


def test_list_should_filter_by_to_and_from_newest_first(api: Api) -> None:
    for to, body in [(TO, "one"), ("+33700000000", "other"), (TO, "two")]:
        api.send({"To": to, "Body": body})

    listed = api.request("GET", "Messages.json", params={"To": TO}).json()

    assert [m["body"] for m in listed["messages"]] == ["two", "one"]
    assert all(m["status"] == "sent" and m["date_sent"] for m in listed["messages"])
    from_other = api.request("GET", "Messages.json", params={"From": "+15550000000"})
    assert from_other.json()["messages"] == []


def test_list_should_filter_on_date_sent_with_dates_and_datetimes(
    api: Api, sim: TwilioSimulator, clock: Clock
) -> None:
    for day in (1, 2, 3):
        clock.now = datetime(2024, 5, day, 12, 0, tzinfo=UTC)
        api.send({"Body": f"day {day}"})
    sim.hold_sending = True
    api.send({"Body": "not sent yet"})

    def bodies(**params: str) -> list[str]:
        listed = api.request("GET", "Messages.json", params=params).json()
        return [m["body"] for m in listed["messages"]]

    assert bodies() == ["not sent yet", "day 3", "day 2", "day 1"]
    assert bodies(DateSent="2024-05-02") == ["day 2"]
    assert bodies(**{"DateSent<": "2024-05-02"}) == ["day 2", "day 1"]
    assert bodies(**{"DateSent>": "2024-05-02"}) == ["day 3", "day 2"]
    assert bodies(**{"DateSent>": "2024-05-02T12:00:01Z"}) == ["day 3"]
    assert bodies(**{"DateSent<": "2024-05-02T12:00:00Z"}) == ["day 2", "day 1"]
    assert bodies(DateSent="2024-05-03T12:00:00Z") == ["day 3"]
    assert bodies(DateSent=">=2024-05-03") == ["day 3"]
    bad = api.request("GET", "Messages.json", params={"DateSent": "May 2"})
    assert (bad.status_code, error_of(bad)) == (400, 20001)


def test_paging_should_follow_next_page_uri_with_page_tokens(
    api: Api, server: RunningServer
) -> None:
    for number in range(5):
        api.send({"Body": f"m{number}"})

    page = api.request("GET", "Messages.json", params={"To": TO, "PageSize": "2"}).json()
    seen = [m["body"] for m in page["messages"]]
    while page["next_page_uri"]:
        assert (
            "PageToken=PA" in page["next_page_uri"] and "To=%2B33612345678" in page["next_page_uri"]
        )
        next_url = urljoin(server.url, page["next_page_uri"])
        page = requests.get(next_url, auth=api.live, timeout=5).json()
        seen += [m["body"] for m in page["messages"]]

    assert seen == ["m4", "m3", "m2", "m1", "m0"]
    assert (page["page"], page["start"], page["end"], page["page_size"]) == (2, 4, 4, 2)
    assert page["previous_page_uri"] and page["first_page_uri"].endswith("PageSize=2&Page=0")


def test_page_size_should_default_to_50_and_allow_1_to_1000(api: Api) -> None:
    assert api.request("GET", "Messages.json").json()["page_size"] == 50
    for size in ("1", "1000"):
        listed = api.request("GET", "Messages.json", params={"PageSize": size})
        assert listed.json()["page_size"] == int(size)
    huge = api.request("GET", "Messages.json", params={"PageSize": "5000"})
    assert (huge.status_code, error_of(huge)) == (400, 20001)


def test_the_official_client_should_create_and_list_through_the_simulator(
    server: RunningServer, sim: TwilioSimulator, clock: Clock
) -> None:
    client = Client(sim.account_sid, sim.auth_token)
    client.api.base_url = server.url
    created = [
        client.messages.create(to=TO, from_=sim.phone_number, body=f"n{n}") for n in range(3)
    ]
    start = clock.now - timedelta(minutes=1)

    listed = client.messages.list(to=TO, date_sent_after=start, page_size=2, limit=10)

    assert [m.sid for m in listed] == [m.sid for m in reversed(created)]
    assert created[0].date_created == clock.now and created[0].status == "queued"


# -- fetch, cancel, redact, delete ------------------------------------------------------


def test_fetch_should_answer_the_message_or_20404(api: Api) -> None:
    sid = api.send({}).json()["sid"]

    assert api.request("GET", f"Messages/{sid}.json").json()["sid"] == sid
    missing = api.request("GET", "Messages/SM00000000000000000000000000000000.json")
    assert (missing.status_code, error_of(missing)) == (404, 20404)
    assert (
        "/Messages/SM00000000000000000000000000000000.json was not found"
        in (missing.json()["message"])
    )


def test_cancel_should_work_only_before_sending(api: Api, sim: TwilioSimulator) -> None:
    sent = api.send({}).json()["sid"]
    sim.hold_sending = True
    held = api.send({}).json()["sid"]

    canceled = api.request("POST", f"Messages/{held}.json", data={"Status": "canceled"})
    too_late = api.request("POST", f"Messages/{sent}.json", data={"Status": "canceled"})

    assert (canceled.status_code, canceled.json()["status"]) == (200, "canceled")
    assert (too_late.status_code, error_of(too_late)) == (400, 30409)
    sim.deliver_callbacks()
    assert api.request("GET", f"Messages/{held}.json").json()["status"] == "canceled"


def test_redact_and_delete_should_behave_as_twilio(api: Api) -> None:
    sid = api.send({"Body": "secret"}).json()["sid"]

    redacted = api.request("POST", f"Messages/{sid}.json", data={"Body": ""})
    both = api.request("POST", f"Messages/{sid}.json", data={"Body": "", "Status": "canceled"})
    deleted = api.request("DELETE", f"Messages/{sid}.json")

    assert redacted.json()["body"] == ""
    assert error_of(both) == 30400
    assert deleted.status_code == 204
    assert api.request("GET", f"Messages/{sid}.json").status_code == 404


# -- calls and numbers ------------------------------------------------------------------


def test_create_call_should_answer_201_and_be_fetchable(api: Api, sim: TwilioSimulator) -> None:
    form = {"To": TO, "From": sim.phone_number, "Twiml": "<Response><Say>Hi</Say></Response>"}

    call = api.request("POST", "Calls.json", data=form).json()

    assert re.fullmatch(r"CA[0-9a-f]{32}", call["sid"]) and call["status"] == "queued"
    assert call["direction"] == "outbound-api" and call["from_formatted"] == "(501) 712-2661"
    assert api.request("GET", f"Calls/{call['sid']}.json").json()["sid"] == call["sid"]
    assert [c["sid"] for c in api.request("GET", "Calls.json").json()["calls"]] == [call["sid"]]
    assert api.request("GET", f"Messages/{call['sid']}.json").status_code == 404
    assert len(sim.calls) == 1


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"To": None}, 21201),
        ({"From": None}, 21213),
        ({"Url": None}, 21205),
        ({"From": "+15550001111"}, 21210),
        ({"To": "12"}, 21211),
    ],
)
def test_live_calls_should_be_validated(
    api: Api, sim: TwilioSimulator, form: dict[str, Any], code: int
) -> None:
    fields = {"To": TO, "From": sim.phone_number, "Url": "https://h.example/v"} | form
    fields = {k: v for k, v in fields.items() if v is not None}

    assert error_of(api.request("POST", "Calls.json", data=fields)) == code


@pytest.mark.parametrize(
    ("sender", "to", "code"),
    [
        ("+15005550006", TO, None),
        ("+15005550001", TO, 21212),
        ("+15017122661", TO, 21210),
        ("+15005550006", "+15005550001", 21217),
        ("+15005550006", "+15005550002", 21214),
        ("+15005550006", "+15005550003", 21215),
        ("+15005550006", "+15005550004", 21216),
    ],
)
def test_test_calls_should_follow_the_magic_numbers(
    api: Api, sender: str, to: str, code: int | None
) -> None:
    form = {"To": to, "From": sender, "Url": "https://h.example/v"}

    response = api.request("POST", "Calls.json", auth=api.test, data=form)

    assert response.status_code == 201 if code is None else error_of(response) == code


def test_numbers_should_be_found_and_configured(api: Api, sim: TwilioSimulator) -> None:
    listed = api.request(
        "GET", "IncomingPhoneNumbers.json", params={"PhoneNumber": sim.phone_number}
    )
    number = listed.json()["incoming_phone_numbers"][0]
    settings = {"SmsUrl": "https://h.example/twilio/sms", "VoiceUrl": "https://h.example/v"}

    updated = api.request("POST", f"IncomingPhoneNumbers/{number['sid']}.json", data=settings)

    assert number["sid"] == sim.phone_number_sid and number["capabilities"]["sms"] is True
    assert updated.status_code == 200
    assert updated.json()["sms_url"] == "https://h.example/twilio/sms"
    fetched = api.request("GET", f"IncomingPhoneNumbers/{number['sid']}.json").json()
    assert fetched["voice_url"] == "https://h.example/v"
    assert api.request("GET", "IncomingPhoneNumbers/PN0.json").status_code == 404


@pytest.mark.parametrize(
    ("form", "outcome"),
    [
        ({"PhoneNumber": "+15005550006"}, "+15005550006"),
        ({"PhoneNumber": "+15005550000"}, 21422),
        ({"PhoneNumber": "+15005550001"}, 21421),
        ({"AreaCode": "533"}, 21452),
        ({"AreaCode": "500"}, "+15005550006"),
    ],
)
def test_buying_numbers_with_test_credentials_should_follow_the_magic_numbers(
    api: Api, form: dict[str, str], outcome: str | int
) -> None:
    response = api.request("POST", "IncomingPhoneNumbers.json", auth=api.test, data=form)

    if isinstance(outcome, int):
        assert error_of(response) == outcome
    else:
        assert (response.status_code, response.json()["phone_number"]) == (201, outcome)


# -- faults, latency, concurrency ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "code"), [("429", 429, 20429), ("500", 500, 20500), ("503", 503, 20503)]
)
def test_status_faults_should_answer_twilio_error_bodies_and_create_nothing(
    api: Api, sim: TwilioSimulator, kind: str, status: int, code: int
) -> None:
    sim.faults.add(kind, "POST /2010-04-01")

    response = api.send({})

    assert (response.status_code, error_of(response)) == (status, code)
    assert "Retry-After" not in response.headers
    assert sim.messages == []
    assert api.send({}).status_code == 201  # times=1: the next request goes through


def test_a_timeout_should_still_create_the_message(api: Api, sim: TwilioSimulator) -> None:
    sim.faults.add("timeout", "Messages.json", delay=0.4)

    with pytest.raises(requests.ReadTimeout):
        api.send({}, timeout=0.1)

    wait_for(lambda: len(sim.messages) == 1)  # the ambiguous send: Twilio has it


def test_a_reset_after_processing_should_leave_the_message_created(
    api: Api, sim: TwilioSimulator
) -> None:
    sim.faults.add("reset", "Messages.json")

    with pytest.raises(requests.ConnectionError):
        api.send({})

    assert len(sim.messages) == 1
    assert (
        api.request("GET", "Messages.json").json()["messages"][0]["sid"] == (sim.messages[0]["sid"])
    )


def test_a_reset_before_processing_should_create_nothing(api: Api, sim: TwilioSimulator) -> None:
    sim.faults.add("reset_before", "Messages.json")

    with pytest.raises(requests.ConnectionError):
        api.send({})

    assert sim.messages == []


@pytest.mark.parametrize("resource", ["Messages.json", "Calls.json"])
def test_a_late_create_should_appear_only_after_the_client_gave_up(
    api: Api, sim_server: tuple[Swap, RunningServer], resource: str
) -> None:
    sim = TwilioSimulator()  # the real clock: creation times are compared below
    sim_server[0].app = sim
    live = Api(sim_server[1], sim)
    sim.faults.add("late", f"POST /2010-04-01/Accounts/{sim.account_sid}/{resource}", delay=0.3)
    content = {"Body": "Hello"} if resource == "Messages.json" else {"Url": "https://h.example/v"}
    form = {"To": TO, "From": sim.phone_number} | content

    with pytest.raises(requests.ReadTimeout):
        requests.post(live.url(resource), data=form, auth=live.live, timeout=0.2)
    gave_up = datetime.now(UTC).replace(microsecond=0)

    key = resource.removesuffix(".json").lower()
    assert live.request("GET", resource).json()[key] == []  # not yet: Twilio is still at it
    assert sim.wait_settled(5)
    (created,) = live.request("GET", resource).json()[key]
    assert parsedate_to_datetime(created["date_created"]) >= gave_up
    assert live.send({}).status_code == 201  # times=1: the next create is answered


def test_wait_settled_should_cover_requests_still_sleeping_on_a_timeout(
    api: Api, sim: TwilioSimulator
) -> None:
    sim.faults.add("timeout", "Messages.json", delay=0.4)

    with pytest.raises(requests.ReadTimeout):
        api.send({}, timeout=0.1)

    assert sim.wait_settled(5) and len(sim.messages) == 1
    assert sim.wait_settled(0)  # nothing delayed: at once


@pytest.mark.parametrize(
    ("kind", "status", "code"), [("error:20005", 401, 20005), ("error:21611", 400, 21611)]
)
def test_error_code_faults_should_answer_as_twilio_does_for_that_code(
    api: Api, sim: TwilioSimulator, kind: str, status: int, code: int
) -> None:
    sim.faults.add(kind, "POST")

    response = api.send({})

    assert (response.status_code, error_of(response)) == (status, code)
    assert sim.messages == []


@pytest.mark.parametrize("status", ["suspended", "closed"])
def test_a_suspended_or_closed_account_should_be_refused_with_20003(
    api: Api, sim: TwilioSimulator, status: str
) -> None:
    sim.account_status = status

    answers = [api.send({}), api.request("GET", "Messages.json")]

    assert [(r.status_code, error_of(r)) for r in answers] == [(401, 20003), (401, 20003)]
    assert api.send({"From": "+15005550006"}, auth=api.test).status_code == 201  # another one
    sim.account_status = "active"
    assert api.send({}).status_code == 201


@pytest.mark.parametrize(
    ("sender", "code"), [("not a number!", 21212), ("ACME", 21606), ("+15017122662", 21606)]
)
def test_a_live_from_that_is_not_the_accounts_should_be_refused(
    api: Api, sim: TwilioSimulator, sender: str, code: int
) -> None:
    assert error_of(api.send({"From": sender})) == code
    call = {"To": TO, "From": sender, "Url": "https://h.example/v"}
    expected = 21210 if sender.startswith("+") else 21212
    assert error_of(api.request("POST", "Calls.json", data=call)) == expected
    assert sim.messages == sim.calls == []


def test_control_routes_should_switch_the_account_and_wait_for_delayed_creates(
    api: Api, server: RunningServer, sim: TwilioSimulator
) -> None:
    control = f"{server.url}/_sim"

    answer = requests.post(f"{control}/account", json={"status": "suspended"}, timeout=5)
    assert answer.json() == {"status": "suspended"} and api.send({}).status_code == 401
    assert (
        requests.post(f"{control}/account", json={"status": "gone"}, timeout=5).status_code == 400
    )
    requests.post(f"{control}/account", json={"status": "active"}, timeout=5)
    sim.faults.add("late", "POST", delay=0.2)
    with pytest.raises(requests.ReadTimeout):
        api.send({}, timeout=0.1)
    settled = requests.post(f"{control}/settle", json={"timeout": 5}, timeout=10).json()
    assert settled == {"settled": True, "messages": 1}


def test_faults_should_honour_skip_times_and_match(api: Api, sim: TwilioSimulator) -> None:
    sim.faults.add("500", "POST", skip=1, times=2)

    statuses = [api.send({}).status_code for _ in range(4)]

    assert statuses == [201, 500, 500, 201]
    assert api.request("GET", "Messages.json").status_code == 200


def test_latency_should_delay_every_answer(api: Api, sim: TwilioSimulator) -> None:
    sim.latency_ms = 150
    started = time.monotonic()

    api.request("GET", "Messages.json")

    assert time.monotonic() - started >= 0.15


def test_max_concurrency_should_answer_429_to_the_excess(api: Api, sim: TwilioSimulator) -> None:
    sim.max_concurrency, sim.latency_ms = 2, 300

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(lambda _: api.send({}), range(6)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(201) >= 1 and statuses.count(429) >= 1
    assert all(error_of(r) == 20429 for r in responses if r.status_code == 429)
    assert len(sim.messages) == statuses.count(201)


# -- status callbacks ------------------------------------------------------------------


def test_status_callbacks_should_be_signed_and_report_sent_then_delivered(
    api: Api, sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    sid = api.send({"StatusCallback": f"{url}/twilio/status?n=abc"}).json()["sid"]

    assert sim.deliver_callbacks() == 2

    first, second = app.received
    assert [first.form["MessageStatus"], second.form["MessageStatus"]] == ["sent", "delivered"]
    assert first.form == {
        "MessageStatus": "sent",
        "ApiVersion": "2010-04-01",
        "SmsSid": sid,
        "SmsStatus": "sent",
        "To": TO,
        "From": sim.phone_number,
        "MessageSid": sid,
        "AccountSid": sim.account_sid,
    }
    assert re.fullmatch(r"\d{10}", second.form["RawDlrDoneDate"])
    for request in app.received:
        assert request.path == "/twilio/status" and request.query == "n=abc"
        assert request.headers["User-Agent"] == "TwilioProxy/1.1"
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert request.headers["I-Twilio-Idempotency-Token"]
        assert request.validates(url, sim.auth_token)
    assert (
        first.headers["I-Twilio-Idempotency-Token"] != second.headers["I-Twilio-Idempotency-Token"]
    )
    assert api.request("GET", f"Messages/{sid}.json").json()["status"] == "delivered"


def test_unreachable_numbers_should_end_undelivered_with_30003(
    api: Api, sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    sim.unreachable.add(TO)
    sid = api.send({"StatusCallback": f"{url}/s"}).json()["sid"]

    sim.deliver_callbacks()

    assert app.received[-1].form["MessageStatus"] == "undelivered"
    assert app.received[-1].form["ErrorCode"] == "30003"
    assert "ErrorCode" not in app.received[0].form
    message = api.request("GET", f"Messages/{sid}.json").json()
    assert (message["status"], message["error_code"]) == ("undelivered", 30003)


def test_shuffled_and_duplicated_callbacks_should_never_regress_the_status(
    api: Api, sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    sids = [
        api.send({"StatusCallback": f"{url}/s", "Body": str(n)}).json()["sid"] for n in range(4)
    ]

    assert sim.deliver_callbacks(shuffle=True, duplicate=True, seed=3) == 16

    statuses = [(r.form["MessageSid"], r.form["MessageStatus"]) for r in app.received]
    in_order = [
        (sid, status) for sid in sids for status in ("sent", "sent", "delivered", "delivered")
    ]
    assert sorted(statuses) == sorted(in_order) and statuses != in_order
    tokens = [r.headers["I-Twilio-Idempotency-Token"] for r in app.received]
    assert all(tokens.count(token) == 2 for token in tokens)
    for sid in sids:
        assert api.request("GET", f"Messages/{sid}.json").json()["status"] == "delivered"


def test_a_message_without_status_callback_should_still_progress(
    api: Api, sim: TwilioSimulator
) -> None:
    sid = api.send({}).json()["sid"]

    assert sim.deliver_callbacks() == 0
    assert api.request("GET", f"Messages/{sid}.json").json()["status"] == "delivered"


def test_callbacks_should_sign_the_public_url_and_go_to_the_rewritten_one(
    api: Api, sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    sim.callback_url_rewrite = lambda u: u.replace("https://x.example", url)

    api.send({"StatusCallback": "https://x.example/twilio/status#rc=0"})
    sim.deliver_callbacks()

    assert len(app.received) == 2
    assert all(r.validates("https://x.example", sim.auth_token) for r in app.received)


def test_connection_overrides_should_drive_retries(
    api: Api, sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    app.status = 500
    api.send({"StatusCallback": f"{url}/default"})
    api.send({"StatusCallback": f"{url}/retry#rc=2&rp=5xx"})

    sim.deliver_callbacks()

    paths = [r.path for r in app.received]
    assert paths.count("/default") == 2  # one per status: rp=ct never retries a 500
    assert paths.count("/retry") == 6  # 1 + rc=2 retries, for each of two statuses
    retried = [r.headers["I-Twilio-Idempotency-Token"] for r in app.received if r.path == "/retry"]
    assert len(set(retried)) == 2


def test_a_dead_receiver_should_be_retried_once_and_then_given_up(
    api: Api, sim: TwilioSimulator
) -> None:
    with socket.socket() as probe:  # a port nobody listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api.send({"StatusCallback": f"http://127.0.0.1:{port}/s"})

    assert sim.deliver_callbacks() == 2
    assert len(sim.webhook_log) == 4  # two statuses, each tried twice (rc=1, rp=ct)


def test_auto_callbacks_should_arrive_without_being_asked(
    api: Api, sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    sim.auto_callbacks, sim.callback_delay = True, 0.01

    api.send({"StatusCallback": f"{url}/s"})

    wait_for(lambda: len(app.received) == 2)


# -- incoming messages and calls ---------------------------------------------------------


def test_an_incoming_sms_should_carry_twilios_parameters_signed(
    sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver

    response = sim.send_incoming_sms(f"{url}/twilio/sms", "+33698765432", "Livraison ok")

    assert response.status_code == 200 and response.text == "<Response/>"
    (request,) = app.received
    form = request.form
    assert form["MessageSid"] == form["SmsSid"] == form["SmsMessageSid"]
    assert re.fullmatch(r"SM[0-9a-f]{32}", form["MessageSid"])
    assert (form["From"], form["To"], form["Body"]) == (
        "+33698765432",
        sim.phone_number,
        "Livraison ok",
    )
    assert (form["SmsStatus"], form["NumMedia"], form["NumSegments"]) == ("received", "0", "1")
    assert (form["AccountSid"], form["ApiVersion"]) == (sim.account_sid, "2010-04-01")
    assert (form["FromCountry"], form["ToCountry"]) == ("FR", "US")
    assert form["FromCity"] == form["FromZip"] == form["ToState"] == ""
    assert request.validates(url, sim.auth_token)
    assert sim.inbound[0]["sid"] == form["MessageSid"]


def test_stop_should_opt_the_sender_out_and_start_should_opt_back_in(
    api: Api, sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    _, url = receiver

    sim.send_incoming_sms(f"{url}/sms", TO, " stop ")
    refused = api.send({})
    sim.send_incoming_sms(f"{url}/sms", TO, "START")

    assert error_of(refused) == 21610
    assert api.send({}).status_code == 201
    sim.send_incoming_sms(f"{url}/sms", TO, "please stop sending")
    assert TO not in sim.opted_out  # only a single-word message is a keyword


def test_an_incoming_call_should_leave_a_voicemail_with_transcription(
    sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver

    responses = sim.place_incoming_call(f"{url}/voice", "+33698765432", transcription="Call me")

    assert [r.status_code for r in responses] == [200, 200, 200]
    voice, recording, transcription = app.received
    assert [voice.path, recording.path, transcription.path] == [
        "/voice",
        "/twilio/recording",
        "/twilio/transcription",
    ]
    assert voice.form["CallStatus"] == "ringing" and voice.form["Direction"] == "inbound"
    assert voice.form["Caller"] == voice.form["From"] == "+33698765432"
    assert voice.form["Called"] == voice.form["To"] == sim.phone_number
    assert recording.form["RecordingStatus"] == "completed"
    assert recording.form["RecordingSource"] == "RecordVerb"
    assert recording.form["CallSid"] == voice.form["CallSid"] == transcription.form["CallSid"]
    assert recording.form["RecordingUrl"] == transcription.form["RecordingUrl"]
    assert RFC2822_GMT.fullmatch(recording.form["RecordingStartTime"])
    assert transcription.form["TranscriptionText"] == "Call me"
    assert transcription.form["TranscriptionStatus"] == "completed"
    assert all(r.validates(url, sim.auth_token) for r in app.received)


def test_a_call_without_transcription_should_stop_after_the_recording(
    sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    app.voice_twiml = '<Response><Record recordingStatusCallback="rec" action="/done"/></Response>'

    responses = sim.place_incoming_call(f"{url}/voice", "+33698765432")

    assert len(responses) == 3
    assert [r.path for r in app.received] == ["/voice", "/done", "/rec"]
    assert app.received[1].form["RecordingUrl"].startswith("https://api.twilio.com/")


def test_a_call_answered_without_record_should_make_one_request(
    sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    app.voice_twiml = "<Response><Hangup/></Response>"

    assert len(sim.place_incoming_call(f"{url}/voice", "+33698765432")) == 1


# -- control routes ---------------------------------------------------------------------


def test_control_routes_should_drive_the_simulator_over_http(
    api: Api, server: RunningServer, sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    control = f"{server.url}/_sim"

    assert requests.get(f"{control}/credentials", timeout=5).json()["auth_token"] == sim.auth_token
    fault = {"kind": "500", "match": "Messages.json", "skip": 0, "times": 1, "delay": 0}
    assert requests.post(f"{control}/faults", json=fault, timeout=5).status_code == 201
    assert api.send({}).status_code == 500
    sim.faults.add("503")
    assert requests.delete(f"{control}/faults", timeout=5).status_code == 204
    assert api.send({"StatusCallback": f"{url}/s"}).status_code == 201

    listed = requests.get(f"{control}/messages", timeout=5).json()
    assert [(m["to"], m["test"], m["status_callback"]) for m in listed] == [(TO, False, f"{url}/s")]
    delivered = requests.post(f"{control}/callbacks/deliver", json={"duplicate": True}, timeout=5)
    assert delivered.json() == {"delivered": 4} and len(app.received) == 4

    assert requests.post(f"{control}/opt-out", json={"number": TO}, timeout=5).ok
    assert error_of(api.send({})) == 21610
    assert requests.post(f"{control}/latency", json={"ms": 5}, timeout=5).json() == {"ms": 5.0}
    assert sim.latency_ms == 5


def test_control_routes_should_play_incoming_traffic(
    server: RunningServer, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    control = f"{server.url}/_sim"

    sms = {"url": f"{url}/sms", "from": TO, "body": "ok"}
    call = {"url": f"{url}/voice", "from": TO}

    assert requests.post(f"{control}/incoming-sms", json=sms, timeout=5).json() == {"status": 200}
    answer = requests.post(f"{control}/incoming-call", json=call, timeout=5).json()
    assert answer == {"statuses": [200, 200, 200]}
    assert len(app.received) == 4


def test_control_routes_should_reject_bad_input(server: RunningServer) -> None:
    control = f"{server.url}/_sim"

    assert requests.post(f"{control}/faults", data="{nope", timeout=5).status_code == 400
    assert requests.post(f"{control}/faults", json={}, timeout=5).status_code == 400
    assert requests.get(f"{control}/nothing", timeout=5).status_code == 404


def test_recorded_dates_should_be_rfc2822_gmt(api: Api, sim: TwilioSimulator) -> None:
    api.send({})

    sent = parsedate_to_datetime(sim.messages[0]["date_sent"])
    assert sent == datetime(2024, 5, 2, 9, 30, tzinfo=UTC)


# -- what Twilio's OpenAPI description refuses ----------------------------------------------

CALL = {"To": TO, "From": "+15017122661", "Url": "https://h.example/v"}
NUMBER = "IncomingPhoneNumbers/{number}.json"


@dataclass(frozen=True)
class Bad:
    """One request the description refuses, and what Twilio answers."""

    method: str
    path: str
    change: dict[str, Any] | list[tuple[str, str]]  # on top of the base form, or the query
    code: int
    parameter: str
    base: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def sms(change: dict[str, Any] | list[tuple[str, str]], code: int, parameter: str) -> Bad:
    base = {"To": TO, "From": "+15017122661", "Body": "Hello"}
    return Bad("POST", "Messages.json", change, code, parameter, base)


def call(change: dict[str, Any] | list[tuple[str, str]], code: int, parameter: str) -> Bad:
    return Bad("POST", "Calls.json", change, code, parameter, CALL)


def listing(path: str, query: list[tuple[str, str]], parameter: str) -> Bad:
    return Bad("GET", path, query, 20001, parameter)


BAD_REQUESTS = {
    "validity_period_0": sms({"ValidityPeriod": "0"}, 21624, "ValidityPeriod"),
    "validity_period_36001": sms({"ValidityPeriod": "36001"}, 21624, "ValidityPeriod"),
    "validity_period_not_integer": sms({"ValidityPeriod": "1.5"}, 21624, "ValidityPeriod"),
    "status_callback_not_url": sms({"StatusCallback": "not a url"}, 21609, "StatusCallback"),
    "status_callback_underscore_host": sms(
        {"StatusCallback": "https://my_shim.example.com/twilio/status"}, 21609, "StatusCallback"
    ),
    "status_callback_ftp": sms({"StatusCallback": "ftp://h.example/s"}, 21609, "StatusCallback"),
    "status_callback_4001": sms(
        {"StatusCallback": "https://h.example/" + "s" * 3983}, 21609, "StatusCallback"
    ),
    "miscased_to": sms({"To": None, "to": TO}, 20001, "to"),
    "miscased_body": sms({"Body": None, "body": "Hello"}, 20001, "body"),
    "unknown_param": sms({"Url": "https://h.example/v"}, 20001, "Url"),
    "missing_to": sms({"To": None}, 21604, "To"),
    "body_and_no_from": sms({"From": None}, 21603, "From"),
    "no_body_media_or_content": sms({"Body": None}, 21602, "Body"),
    "body_1601": sms({"Body": "x" * 1601}, 21617, "Body"),
    "repeated_body": sms([("Body", "one")], 20001, "Body"),
    "bad_smart_encoded": sms({"SmartEncoded": "yes"}, 20001, "SmartEncoded"),
    "bad_risk_check": sms({"RiskCheck": "maybe"}, 20001, "RiskCheck"),
    "bad_content_retention": sms({"ContentRetention": "keep"}, 20001, "ContentRetention"),
    "bad_schedule_type": sms({"ScheduleType": "later"}, 20001, "ScheduleType"),
    "bad_phone_to": sms({"To": "0612345678"}, 21211, "To"),
    "bad_from": sms({"From": "not a number!"}, 21212, "From"),
    "bad_messaging_service_sid": sms(
        {"MessagingServiceSid": "MG123"}, 21705, "MessagingServiceSid"
    ),
    "bad_content_sid": sms({"ContentSid": "HX12"}, 21655, "ContentSid"),
    "media_url_11": sms({"MediaUrl": ["https://h.example/a.png"] * 11}, 20001, "MediaUrl"),
    "bad_send_at": sms({"SendAt": "tomorrow"}, 20001, "SendAt"),
    "bad_max_price": sms({"MaxPrice": "cheap"}, 20001, "MaxPrice"),
    "bad_attempt": sms({"Attempt": "twice"}, 20001, "Attempt"),
    "json_body": Bad(
        "POST",
        "Messages.json",
        {},
        20001,
        "Content-Type",
        headers={"Content-Type": "application/json"},
    ),
    "call_without_url_or_twiml": call({"Url": None}, 21205, "Url"),
    "call_bad_url": call({"Url": "/relative/v"}, 21205, "Url"),
    "twiml_4001": call({"Url": None, "Twiml": "x" * 4001}, 20001, "Twiml"),
    "bad_enum_status_callback_event": call(
        [("StatusCallbackEvent", "completed"), ("StatusCallbackEvent", "finished")],
        21626,
        "StatusCallbackEvent",
    ),
    "bad_machine_detection": call({"MachineDetection": "Yes"}, 21234, "MachineDetection"),
    "bad_async_amd": call({"AsyncAmd": "yes"}, 20001, "AsyncAmd"),
    "bad_status_callback_method": call(
        {"StatusCallbackMethod": "PUT"}, 20001, "StatusCallbackMethod"
    ),
    "bad_call_method": call({"Method": "DELETE"}, 21209, "Method"),
    "bad_timeout": call({"Timeout": "soon"}, 20001, "Timeout"),
    "bad_record_boolean": call({"Record": "yes"}, 20001, "Record"),
    "bad_application_sid": call({"Url": None, "ApplicationSid": "AP1"}, 20001, "ApplicationSid"),
    "call_to_not_an_endpoint": call({"To": "12"}, 21211, "To"),
    "miscased_call_twiml": call({"twiml": "<Response/>"}, 20001, "twiml"),
    "page_size_0": listing("Messages.json", [("PageSize", "0")], "PageSize"),
    "page_size_5000": listing("Messages.json", [("PageSize", "5000")], "PageSize"),
    "page_negative": listing("Calls.json", [("Page", "-1")], "Page"),
    "bad_date_filter": listing("Messages.json", [("DateSent", "May 2")], "DateSent"),
    "bad_date_day": listing("Messages.json", [("DateSent>", "2024-13-01")], "DateSent>"),
    "unknown_list_filter": listing("Messages.json", [("Body", "Hello")], "Body"),
    "bad_call_status_filter": listing("Calls.json", [("Status", "done")], "Status"),
    "bad_start_time_filter": listing("Calls.json", [("StartTime>", "yesterday")], "StartTime>"),
    "bad_boolean_filter": listing("IncomingPhoneNumbers.json", [("Beta", "maybe")], "Beta"),
    "bad_number_filter": listing(
        "IncomingPhoneNumbers.json", [("PhoneNumber", "abc")], "PhoneNumber"
    ),
    "number_bad_sms_url": Bad("POST", NUMBER, {"SmsUrl": "not a url"}, 20001, "SmsUrl"),
    "number_bad_voice_method": Bad("POST", NUMBER, {"VoiceMethod": "PUT"}, 21403, "VoiceMethod"),
    "number_miscased_sms_url": Bad(
        "POST", NUMBER, {"smsUrl": "https://h.example/s"}, 20001, "smsUrl"
    ),
    "number_bad_receive_mode": Bad(
        "POST", NUMBER, {"VoiceReceiveMode": "sms"}, 20001, "VoiceReceiveMode"
    ),
    "buy_without_number_or_area": Bad(
        "POST", "IncomingPhoneNumbers.json", {"FriendlyName": "x"}, 20001, "PhoneNumber"
    ),
    "message_update_bad_status": Bad(
        "POST", "Messages/{message}.json", {"Status": "sent"}, 30400, "Status"
    ),
    "fetch_with_a_query": Bad(
        "GET", "Messages/{message}.json", [("PageSize", "1")], 20001, "PageSize"
    ),
}


def form_of(bad: Bad) -> list[tuple[str, str]] | None:
    if bad.method == "GET":
        return None
    if isinstance(bad.change, list):
        return [*bad.base.items(), *bad.change]
    fields = {name: value for name, value in (bad.base | bad.change).items() if value is not None}
    return [(n, item) for n, v in fields.items() for item in (v if isinstance(v, list) else [v])]


@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
def test_what_twilios_description_refuses_is_refused_with_twilios_code(
    api: Api, sim: TwilioSimulator, case: str
) -> None:
    bad = BAD_REQUESTS[case]
    message = api.send({}).json()["sid"] if "{message}" in bad.path else ""
    path = bad.path.format(number=sim.phone_number_sid, message=message)
    body: Any = form_of(bad)
    if bad.headers:
        body = '{"To": "+33612345678", "From": "+15017122661", "Body": "Hello"}'
    query = bad.change if bad.method == "GET" else None
    created = len(sim.messages)

    response = api.request(bad.method, path, data=body, params=query, headers=bad.headers)

    assert (response.status_code, error_of(response)) == (400, bad.code)
    assert bad.parameter.lower() in response.json()["message"].lower()
    assert sim.refusals[-1]["parameter"] == bad.parameter
    assert len(sim.refusals) == 1 and len(sim.messages) == created and sim.calls == []


def test_refusals_and_served_operations_are_counted(api: Api, sim: TwilioSimulator) -> None:
    api.send({})
    api.send({"ValidityPeriod": "0"})

    assert sim.served == {"CreateMessage": 1}
    assert [r["code"] for r in sim.refusals] == [21624]
    control = requests.get(f"{api.server.url}/_sim/refusals", timeout=5).json()
    assert control == {"refusals": sim.refusals, "served": {"CreateMessage": 1}}


def test_every_answer_carries_the_properties_of_its_response_schema(
    api: Api, sim: TwilioSimulator
) -> None:
    from x3twilio.simulators.twilio_oai import description, response_problems

    described = description()
    message = api.send({"StatusCallback": "https://h.example/s"}).json()
    call_sid = api.request("POST", "Calls.json", data=CALL).json()["sid"]
    number = sim.phone_number_sid
    bought = {"PhoneNumber": "+15017122662", "StatusCallback": "https://h.example/c"}
    answers = {
        "FetchAccount": requests.get(
            api.url("").removesuffix("/") + ".json", auth=api.live, timeout=5
        ),
        "CreateMessage": api.send({}),
        "FetchMessage": api.request("GET", f"Messages/{message['sid']}.json"),
        "UpdateMessage": api.request("POST", f"Messages/{message['sid']}.json", data={"Body": ""}),
        "ListMessage": api.request("GET", "Messages.json"),
        "CreateCall": api.request("POST", "Calls.json", data=CALL),
        "FetchCall": api.request("GET", f"Calls/{call_sid}.json"),
        "ListCall": api.request("GET", "Calls.json"),
        "CreateIncomingPhoneNumber": api.request("POST", "IncomingPhoneNumbers.json", data=bought),
        "FetchIncomingPhoneNumber": api.request("GET", NUMBER.format(number=number)),
        "UpdateIncomingPhoneNumber": api.request(
            "POST", NUMBER.format(number=number), data={"StatusCallback": "https://h.example/n"}
        ),
        "ListIncomingPhoneNumber": api.request("GET", "IncomingPhoneNumbers.json"),
        "DeleteMessage": api.request("DELETE", f"Messages/{message['sid']}.json"),
    }

    assert set(answers) == set(described.operations)
    for name, response in answers.items():
        status, schema = described.answer_schema(described.operations[name])
        assert response.status_code == status, name
        if schema is None:
            assert response.content == b""
            continue
        body = response.json()
        if "$ref" in schema:
            assert response_problems(described, schema["$ref"], body) == [], name
            continue
        (key,) = [k for k, v in schema["properties"].items() if v["type"] == "array"]
        assert set(schema["properties"]) <= set(body), name
        item_ref = schema["properties"][key]["items"]["$ref"]
        assert body[key], name
        for item in body[key]:
            assert response_problems(described, item_ref, item) == [], name
    listed = answers["ListIncomingPhoneNumber"].json()["incoming_phone_numbers"]
    assert {n["status_callback"] for n in listed} == {"https://h.example/n", "https://h.example/c"}
    assert sim.refusals == []


def test_calls_should_be_filtered_on_status_and_start_time(api: Api, sim: TwilioSimulator) -> None:
    sids = [
        api.request("POST", "Calls.json", data=CALL | {"To": to}).json()["sid"]
        for to in (TO, "+33700000000")
    ]
    done = next(c for c in sim.calls if c["sid"] == sids[0])
    done |= {"status": "completed", "start_time": "Thu, 02 May 2024 09:31:00 +0000"}

    def listed(**params: str) -> list[str]:
        return [c["sid"] for c in api.request("GET", "Calls.json", params=params).json()["calls"]]

    assert listed() == list(reversed(sids))
    assert listed(Status="completed") == [sids[0]] and listed(Status="queued") == [sids[1]]
    assert listed(To="+33700000000") == [sids[1]]
    assert listed(StartTime="2024-05-02") == [sids[0]]
    assert listed(**{"StartTime>": "2024-05-02T09:31:00Z"}) == [sids[0]]
    assert listed(**{"StartTime<": "2024-05-02T09:30:59Z"}) == []
    assert listed(StartTime="2024-05-03") == []


def test_numbers_should_be_filtered_as_twilio_documents(api: Api, sim: TwilioSimulator) -> None:
    bought = {"PhoneNumber": "+15017122662", "FriendlyName": "second"}
    assert api.request("POST", "IncomingPhoneNumbers.json", data=bought).status_code == 201

    def listed(**params: str) -> list[str]:
        answer = api.request("GET", "IncomingPhoneNumbers.json", params=params).json()
        return sorted(n["phone_number"] for n in answer["incoming_phone_numbers"])

    both = ["+15017122661", "+15017122662"]
    assert listed() == both
    assert listed(PhoneNumber="+1501712266*") == both  # '*' stands for any digit
    assert listed(PhoneNumber="2662") == ["+15017122662"]  # part of a number
    assert listed(PhoneNumber="71*2661") == ["+15017122661"]
    assert listed(PhoneNumber="9999") == []
    assert listed(FriendlyName="second") == ["+15017122662"]
    assert listed(Beta="false") == both and listed(Beta="true") == []
    assert listed(Origin="twilio") == both and listed(Origin="hosted") == []


def test_the_tools_own_traffic_is_all_twilios_description_accepts(env: Any) -> None:
    """The real CLI sends, looks up after an unanswered create, checks, registers webhooks:
    the simulator refuses none of it."""
    from tests.test_channels import CALL as CALL_RULE
    from tests.test_poll import HISTORY, ONLY_PO_APPROVED

    env.public_url = "https://x3twilio.example.com"
    sms_rule = {**ONLY_PO_APPROVED[0], "max_delay": "2h"}  # a ValidityPeriod on each message
    env.configure(rules=[sms_rule, CALL_RULE], twilio={"timeout": "0.5s", "settle": "0.5s"})
    account = f"POST /2010-04-01/Accounts/{env.twilio.account_sid}"
    for resource in ("Messages", "Calls"):  # unanswered creates, looked up in the lists
        env.twilio.faults.add("late", match=f"{account}/{resource}.json", delay=0.6)

    env.run("poll", "--since", HISTORY, expect=1)  # US005's number is refused (21211)
    env.run("check", expect=69)  # everything but the shim, which example.com does not serve
    env.run("twilio", "register-webhooks", "--number", env.twilio.phone_number)

    assert env.twilio.wait_settled(10)
    served = env.twilio.served
    for operation in ("CreateMessage", "ListMessage", "CreateCall", "ListCall", "FetchAccount"):
        assert served[operation] >= 1, (operation, served)
    assert served["ListIncomingPhoneNumber"] >= 2 and served["UpdateIncomingPhoneNumber"] == 1
    assert env.twilio.refusals == []
