"""WhatsApp in the Twilio simulator over real HTTP: channels, templates, the 24-hour window."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
from twilio.rest import Client

from tests.test_sim_twilio import Clock, Swap
from x3twilio.signature import validate_signature
from x3twilio.simulators import RunningServer, read_body, respond, serve
from x3twilio.simulators.twilio import TwilioSimulator
from x3twilio.simulators.twilio_whatsapp import (
    APPROVED_TEMPLATE_SID,
    PENDING_TEMPLATE_SID,
    REJECTED_TEMPLATE_SID,
)

USER = "+33612345678"
WHATSAPP_USER = f"whatsapp:{USER}"
UNKNOWN_TEMPLATE_SID = "HX" + "0" * 32
WINDOW_TEXT = (
    "Failed to send freeform message because you are outside the allowed window. "
    "If you are using WhatsApp, please use a Message Template."
)


# -- fixtures ---------------------------------------------------------------------------


@dataclass
class Receiver:
    """A webhook endpoint that records each request's path, form and signature."""

    received: list[tuple[str, dict[str, str], str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        form = dict(parse_qsl(read_body(environ).decode(), keep_blank_values=True))
        signature = environ.get("HTTP_X_TWILIO_SIGNATURE", "")
        with self.lock:
            self.received.append((environ["PATH_INFO"], form, signature))
        return respond(start_response, 200, "<Response/>", "text/xml")

    def statuses(self) -> list[tuple[str, str]]:
        return [(form["MessageStatus"], form.get("ErrorCode", "")) for _, form, _ in self.received]


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
def receiver(receiver_server: tuple[Swap, RunningServer]) -> tuple[Receiver, str]:
    receiver_server[0].app = Receiver()
    return receiver_server[0].app, receiver_server[1].url


def send(
    server: RunningServer, sim: TwilioSimulator, form: dict[str, str | None]
) -> requests.Response:
    """Create a message: free text from our WhatsApp sender to the user, unless changed."""
    fields = {"To": WHATSAPP_USER, "From": sim.whatsapp_sender, "Body": "Your order shipped"}
    fields = {name: value for name, value in (fields | form).items() if value is not None}
    url = f"{server.url}/2010-04-01/Accounts/{sim.account_sid}/Messages.json"
    return requests.post(url, data=fields, auth=(sim.account_sid, sim.auth_token), timeout=5)


def fetch(server: RunningServer, sim: TwilioSimulator, path: str) -> requests.Response:
    return requests.get(f"{server.url}{path}", auth=(sim.account_sid, sim.auth_token), timeout=5)


def message(server: RunningServer, sim: TwilioSimulator, sid: str) -> dict[str, Any]:
    path = f"/2010-04-01/Accounts/{sim.account_sid}/Messages/{sid}.json"
    return fetch(server, sim, path).json()  # type: ignore[no-any-return]


def error_of(response: requests.Response) -> tuple[int, int]:
    body = response.json()
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{body['code']}"
    return response.status_code, int(body["code"])


def template(sid: str, variables: dict[str, str] | None = None) -> dict[str, str | None]:
    chosen = {"ContentSid": sid, "Body": None}
    return chosen | ({"ContentVariables": json.dumps(variables)} if variables else {})


# -- templates --------------------------------------------------------------------------


def test_an_approved_template_should_reach_a_user_who_never_wrote_with_its_text_filled(
    server: RunningServer, sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    form = template(APPROVED_TEMPLATE_SID, {"1": "PO42", "2": "Friday"})

    response = send(server, sim, form | {"StatusCallback": f"{url}/status"})

    assert response.status_code == 201
    created = response.json()
    assert created["status"] == "queued" and created["error_code"] is None
    assert created["body"] == "Purchase order PO42 is ready for collection on Friday."
    assert (created["to"], created["from"]) == (WHATSAPP_USER, sim.whatsapp_sender)
    assert sim.deliver_callbacks() == 2
    assert app.statuses() == [("sent", ""), ("delivered", "")]
    _, form_sent, signature = app.received[0]
    assert (form_sent["To"], form_sent["From"]) == (WHATSAPP_USER, sim.whatsapp_sender)
    assert validate_signature(f"{url}/status", form_sent, signature, sim.auth_token)
    assert message(server, sim, created["sid"])["status"] == "delivered"
    assert sim.messages[0]["content_sid"] == APPROVED_TEMPLATE_SID


def test_a_template_should_use_its_default_values_for_variables_not_given(
    server: RunningServer, sim: TwilioSimulator
) -> None:
    response = send(server, sim, template(APPROVED_TEMPLATE_SID, {"1": "PO7"}))

    assert response.json()["body"] == "Purchase order PO7 is ready for collection on Monday."


def test_a_template_should_fill_an_sms_too(server: RunningServer, sim: TwilioSimulator) -> None:
    form = template(PENDING_TEMPLATE_SID, {"1": "PO9"})

    response = send(server, sim, form | {"To": USER, "From": sim.phone_number})

    assert response.status_code == 201
    assert response.json()["body"] == "Purchase order PO9 is delayed."


def test_the_official_client_should_send_a_template(
    server: RunningServer, sim: TwilioSimulator
) -> None:
    client = Client(sim.account_sid, sim.auth_token)
    client.api.base_url = server.url

    sent = client.messages.create(
        to=WHATSAPP_USER,
        from_=sim.whatsapp_sender,
        content_sid=APPROVED_TEMPLATE_SID,
        content_variables=json.dumps({"1": "PO1", "2": "today"}),
    )

    assert sent.status == "queued"
    assert sent.body == "Purchase order PO1 is ready for collection on today."


def test_an_unknown_content_sid_should_be_refused_with_21655(
    server: RunningServer, sim: TwilioSimulator
) -> None:
    response = send(server, sim, template(UNKNOWN_TEMPLATE_SID))

    assert error_of(response) == (400, 21655)
    assert response.json()["message"] == "The ContentSid is Invalid"
    assert sim.messages == []


def test_a_content_sid_of_the_wrong_shape_should_be_refused_by_the_description(
    server: RunningServer, sim: TwilioSimulator
) -> None:
    response = send(server, sim, template("HX123"))

    assert error_of(response) == (400, 21655)
    assert [refusal["parameter"] for refusal in sim.refusals] == ["ContentSid"]
    assert sim.messages == []


@pytest.mark.parametrize(
    "variables", ["not json", '["PO1"]', '{"1": 5}', '"PO1"', '{"1": {"a": "b"}}']
)
def test_content_variables_that_are_not_an_object_of_strings_should_get_21656(
    server: RunningServer, sim: TwilioSimulator, variables: str
) -> None:
    form = template(APPROVED_TEMPLATE_SID) | {"ContentVariables": variables}

    response = send(server, sim, form)

    assert error_of(response) == (400, 21656)
    assert response.json()["message"] == "The ContentVariables Parameter is invalid"


def test_content_variables_without_a_content_sid_should_get_21654(
    server: RunningServer, sim: TwilioSimulator
) -> None:
    response = send(server, sim, {"ContentVariables": '{"1": "PO1"}'})

    assert error_of(response) == (400, 21654)
    assert response.json()["message"] == "ContentSid Required"


# -- the 24-hour window -----------------------------------------------------------------


def test_free_text_within_the_window_should_be_delivered(
    server: RunningServer, sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    sim.send_incoming_whatsapp(f"{url}/whatsapp", USER, "Where is my order?")
    app.received.clear()

    response = send(server, sim, {"StatusCallback": f"{url}/status"})
    sim.deliver_callbacks()

    assert response.status_code == 201
    assert app.statuses() == [("sent", ""), ("delivered", "")]
    assert message(server, sim, response.json()["sid"])["status"] == "delivered"


def test_free_text_outside_the_window_should_be_accepted_then_fail_with_63016(
    server: RunningServer, sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver

    response = send(server, sim, {"StatusCallback": f"{url}/status"})

    assert response.status_code == 201
    assert (response.json()["status"], response.json()["error_code"]) == ("queued", None)
    assert sim.deliver_callbacks() == 1
    assert app.statuses() == [("failed", "63016")]
    failed = message(server, sim, response.json()["sid"])
    assert (failed["status"], failed["error_code"]) == ("failed", 63016)
    assert failed["error_message"] == WINDOW_TEXT


def test_a_held_message_outside_the_window_should_fail_only_when_callbacks_run(
    server: RunningServer, sim: TwilioSimulator
) -> None:
    sim.hold_sending = True
    sid = send(server, sim, {}).json()["sid"]
    held = message(server, sim, sid)

    sim.deliver_callbacks()

    assert (held["status"], held["error_code"]) == ("queued", None)
    assert message(server, sim, sid)["error_code"] == 63016


def test_the_window_should_close_24_hours_after_the_users_last_message(
    server: RunningServer, sim: TwilioSimulator, clock: Clock, receiver: tuple[Receiver, str]
) -> None:
    _, url = receiver
    sim.send_incoming_whatsapp(f"{url}/whatsapp", USER, "hi")
    clock.now += timedelta(hours=23, minutes=59)
    inside = send(server, sim, {}).json()["sid"]
    clock.now += timedelta(minutes=1)
    outside = send(server, sim, {}).json()["sid"]

    assert message(server, sim, inside)["status"] == "sent"
    assert message(server, sim, outside)["status"] == "failed"


def test_the_window_should_belong_to_the_user_who_wrote(
    server: RunningServer, sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    _, url = receiver
    sim.send_incoming_whatsapp(f"{url}/whatsapp", "+33699999999", "hi")

    sid = send(server, sim, {}).json()["sid"]

    assert message(server, sim, sid)["error_code"] == 63016


def test_in_create_mode_free_text_outside_the_window_should_be_refused_with_63016(
    server: RunningServer, sim: TwilioSimulator
) -> None:
    control = f"{server.url}/_sim/whatsapp"
    state = requests.post(control, json={"window_refusal": "create"}, timeout=5).json()

    response = send(server, sim, {})

    assert state["window_refusal"] == sim.whatsapp_window_refusal == "create"
    assert error_of(response) == (400, 63016)
    assert response.json()["message"] == WINDOW_TEXT
    assert sim.messages == []
    assert send(server, sim, template(APPROVED_TEMPLATE_SID)).status_code == 201


def test_in_create_mode_free_text_within_the_window_should_still_be_accepted(
    server: RunningServer, sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    _, url = receiver
    sim.whatsapp_window_refusal = "create"
    sim.send_incoming_whatsapp(f"{url}/whatsapp", USER, "hi")

    assert send(server, sim, {}).status_code == 201


@pytest.mark.parametrize("sid", [PENDING_TEMPLATE_SID, REJECTED_TEMPLATE_SID])
def test_an_unapproved_template_should_need_the_window_like_free_text(
    server: RunningServer, sim: TwilioSimulator, receiver: tuple[Receiver, str], sid: str
) -> None:
    _, url = receiver
    outside = send(server, sim, template(sid)).json()["sid"]
    sim.send_incoming_whatsapp(f"{url}/whatsapp", USER, "hi")
    inside = send(server, sim, template(sid)).json()["sid"]

    assert message(server, sim, outside)["error_code"] == 63016
    assert message(server, sim, inside)["status"] == "sent"


# -- channels ---------------------------------------------------------------------------


def test_a_from_that_is_not_our_whatsapp_sender_should_get_63007(
    server: RunningServer, sim: TwilioSimulator
) -> None:
    response = send(server, sim, {"From": "whatsapp:+15005550006"})

    assert error_of(response) == (400, 63007)
    assert "could not find a Channel" in response.json()["message"]


@pytest.mark.parametrize(
    ("to", "from_"),
    [(WHATSAPP_USER, "+15017122661"), (USER, "whatsapp:+15017122661")],
    ids=["whatsapp-to-sms-from", "sms-to-whatsapp-from"],
)
def test_from_and_to_of_different_channels_should_get_21910(
    server: RunningServer, sim: TwilioSimulator, to: str, from_: str
) -> None:
    response = send(server, sim, {"To": to, "From": from_})

    assert error_of(response) == (400, 21910)


def test_a_whatsapp_to_that_is_not_a_number_should_get_21211(
    server: RunningServer, sim: TwilioSimulator
) -> None:
    assert error_of(send(server, sim, {"To": "whatsapp:someone"})) == (400, 21211)


def test_a_messaging_service_should_send_whatsapp_from_our_whatsapp_sender(
    server: RunningServer, sim: TwilioSimulator
) -> None:
    form = template(APPROVED_TEMPLATE_SID) | {
        "From": None,
        "MessagingServiceSid": sim.messaging_service_sid,
    }

    sid = send(server, sim, form).json()["sid"]

    assert message(server, sim, sid)["from"] == sim.whatsapp_sender


# -- incoming WhatsApp ------------------------------------------------------------------


def test_an_incoming_whatsapp_should_carry_whatsapps_parameters_signed(
    sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver

    response = sim.send_incoming_whatsapp(f"{url}/whatsapp", USER, "STOP", profile_name="Ana")

    assert response.status_code == 200
    ((path, form, signature),) = app.received
    assert path == "/whatsapp"
    assert (form["From"], form["To"], form["Body"]) == (WHATSAPP_USER, sim.whatsapp_sender, "STOP")
    assert (form["ProfileName"], form["WaId"]) == ("Ana", "33612345678")
    assert form["MessageSid"] == form["SmsSid"] == form["SmsMessageSid"]
    assert (form["SmsStatus"], form["NumMedia"], form["AccountSid"]) == (
        "received",
        "0",
        sim.account_sid,
    )
    assert "FromCountry" not in form
    assert validate_signature(f"{url}/whatsapp", form, signature, sim.auth_token)
    assert sim.inbound[0]["from"] == WHATSAPP_USER
    assert sim.opted_out == set()  # opt-out words are SMS-only
    assert sim.in_window(USER)


def test_control_routes_should_play_incoming_whatsapp_and_show_the_window(
    server: RunningServer, sim: TwilioSimulator, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    control = f"{server.url}/_sim"
    incoming = {"url": f"{url}/whatsapp", "from": USER, "body": "hello"}

    answer = requests.post(f"{control}/incoming-whatsapp", json=incoming, timeout=5).json()
    state = requests.get(f"{control}/whatsapp", timeout=5).json()

    assert answer == {"status": 200} and len(app.received) == 1
    assert state["windows"] == {WHATSAPP_USER: "2024-05-02T09:30:00Z"}
    assert state["sender"] == sim.whatsapp_sender == "whatsapp:" + sim.phone_number
    assert state["templates"][APPROVED_TEMPLATE_SID]["whatsapp_status"] == "approved"
    closed = requests.post(f"{control}/whatsapp", json={"close_windows": True}, timeout=5)
    assert closed.json()["windows"] == {} and not sim.in_window(USER)


def test_control_routes_should_add_and_approve_templates(
    server: RunningServer, sim: TwilioSimulator
) -> None:
    control = f"{server.url}/_sim/whatsapp"
    new_sid = "HX" + "ab" * 16
    new = {"friendly_name": "po_sent", "body": "PO {{1}} sent", "whatsapp_status": "pending"}
    approve = {PENDING_TEMPLATE_SID: {"whatsapp_status": "approved"}}

    assert requests.post(control, json={"templates": {new_sid: new}}, timeout=5).ok
    assert requests.post(control, json={"templates": approve}, timeout=5).ok

    sid = send(server, sim, template(PENDING_TEMPLATE_SID, {"1": "PO3"})).json()["sid"]
    assert message(server, sim, sid)["status"] == "sent"  # approved: no window needed
    assert send(server, sim, template(new_sid, {"1": "PO4"})).json()["body"] == "PO PO4 sent"
    assert sim.content_templates[PENDING_TEMPLATE_SID]["friendly_name"] == "po_delayed"


@pytest.mark.parametrize(
    "options",
    [
        {"window_refusal": "never"},
        {"templates": {"HX12": {"friendly_name": "a", "body": "b", "whatsapp_status": "approved"}}},
        {"templates": {UNKNOWN_TEMPLATE_SID: {"body": "no name"}}},
        {"templates": {APPROVED_TEMPLATE_SID: {"whatsapp_status": "maybe"}}},
        {"templates": {APPROVED_TEMPLATE_SID: {"variables": {"1": 2}}}},
        {"templates": ["not", "an", "object"]},
    ],
)
def test_whatsapp_control_should_refuse_bad_options_and_change_nothing(
    server: RunningServer, sim: TwilioSimulator, options: dict[str, Any]
) -> None:
    before = json.dumps(sim.content_templates, sort_keys=True)

    response = requests.post(f"{server.url}/_sim/whatsapp", json=options, timeout=5)

    assert response.status_code == 400 and response.json()["error"]
    assert json.dumps(sim.content_templates, sort_keys=True) == before
    assert sim.whatsapp_window_refusal == "async"


# -- the Content API --------------------------------------------------------------------


def test_approval_requests_should_show_each_templates_whatsapp_status(
    server: RunningServer, sim: TwilioSimulator
) -> None:
    approved = fetch(server, sim, f"/v1/Content/{APPROVED_TEMPLATE_SID}/ApprovalRequests")
    rejected = fetch(server, sim, f"/v1/Content/{REJECTED_TEMPLATE_SID}/ApprovalRequests")

    assert approved.status_code == 200
    assert approved.json() == {
        "account_sid": sim.account_sid,
        "sid": APPROVED_TEMPLATE_SID,
        "url": f"https://content.twilio.com/v1/Content/{APPROVED_TEMPLATE_SID}/ApprovalRequests",
        "whatsapp": {
            "allow_category_change": False,
            "category": "UTILITY",
            "content_type": "twilio/text",
            "flows": None,
            "name": "po_ready",
            "rejection_reason": "",
            "status": "approved",
            "type": "whatsapp",
        },
    }
    assert rejected.json()["whatsapp"]["status"] == "rejected"
    assert rejected.json()["whatsapp"]["rejection_reason"]
    assert sim.served["FetchApprovalFetch"] == 2


def test_the_content_api_should_answer_404_401_and_405_as_twilio(
    server: RunningServer, sim: TwilioSimulator
) -> None:
    unknown = fetch(server, sim, f"/v1/Content/{UNKNOWN_TEMPLATE_SID}/ApprovalRequests")
    wrong_auth = requests.get(
        f"{server.url}/v1/Content/{APPROVED_TEMPLATE_SID}",
        auth=(sim.account_sid, "wrong"),
        timeout=5,
    )
    posted = requests.post(
        f"{server.url}/v1/Content/{APPROVED_TEMPLATE_SID}/ApprovalRequests",
        auth=(sim.account_sid, sim.auth_token),
        timeout=5,
    )

    assert error_of(unknown) == (404, 20404)
    assert error_of(wrong_auth) == (401, 20003)
    assert error_of(posted) == (405, 20004)


def test_the_official_client_should_fetch_a_template_and_its_approval(
    server: RunningServer, sim: TwilioSimulator
) -> None:
    client = Client(sim.api_key_sid, sim.api_key_secret, sim.account_sid)
    client.content.base_url = server.url
    content = client.content.v1.contents(PENDING_TEMPLATE_SID)

    fetched = content.fetch()
    approval = content.approval_fetch().fetch()

    assert fetched.friendly_name == "po_delayed" and fetched.language == "en"
    assert fetched.types == {"twilio/text": {"body": "Purchase order {{1}} is delayed."}}
    assert fetched.variables == {"1": "PO0001"}
    assert fetched.date_created == datetime(2024, 5, 2, 9, 30, tzinfo=UTC)
    assert approval.whatsapp is not None and approval.whatsapp["status"] == "pending"


def test_credentials_should_name_the_whatsapp_sender(server: RunningServer) -> None:
    credentials = requests.get(f"{server.url}/_sim/credentials", timeout=5).json()

    assert credentials["whatsapp_sender"] == "whatsapp:" + credentials["phone_number"]
