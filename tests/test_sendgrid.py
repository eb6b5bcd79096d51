"""Email through the SendGrid sender, over real HTTP to the SendGrid simulator."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from x3twilio.config import RetryConfig
from x3twilio.model import Notification
from x3twilio.senders.sendgrid import SendGridConfig, SendGridError, SendGridSender, as_html
from x3twilio.simulators import RunningServer, serve
from x3twilio.simulators.sendgrid import DEFAULT_SENDER, SendGridSimulator
from x3twilio.transport import Retrier, make_session

NOW = 1_714_642_200.0  # 2024-05-02 09:30:00 UTC, on both sides
MAIL = Notification(
    id="n-0123456789abcdef01234567",
    rule="po_approved",
    source="purchase_orders",
    record="POFR0001",
    channel="email",
    to="buyer@example.org",
    body="Order POFR0001 is approved.\nTotal: 1 200 EUR\n\nSee X3 for <details> & notes.",
    subject="PO POFR0001 approved",
)


# -- fixtures ---------------------------------------------------------------------


class Counting:
    """The simulator behind a counter of the API requests it receives."""

    def __init__(self, app: SendGridSimulator) -> None:
        self.app, self.requests = app, 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("PATH_INFO", "").startswith("/_sim/"):
            self.requests += 1
        return self.app(environ, start_response)


@dataclass
class Mailer:
    """A sender against one running simulator; `sleeps` records the retrier's waits."""

    server: RunningServer
    counter: Counting
    sleeps: list[float] = field(default_factory=list)

    @property
    def sim(self) -> SendGridSimulator:
        return self.counter.app

    @property
    def url(self) -> str:
        return self.server.url

    def sender(self, **changes: Any) -> SendGridSender:
        config = SendGridConfig(
            api_key=self.sim.api_key,
            from_email=DEFAULT_SENDER,
            from_name="X3 Purchasing",
            api_url=self.server.url,
            timeout=2.0,
        )
        config = replace(config, **changes)
        retrier = Retrier(RetryConfig(attempts=3, initial=0.01), sleep=self.sleeps.append)
        return SendGridSender(config, make_session(), retrier, clock=lambda: NOW)


@pytest.fixture
def mailer() -> Iterator[Mailer]:
    counter = Counting(SendGridSimulator(clock=lambda: NOW))
    with serve(counter) as server:
        yield Mailer(server, counter)


def post(mailer: Mailer, body: dict[str, Any], key: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key or mailer.sim.api_key}"}
    return requests.post(f"{mailer.url}/v3/mail/send", json=body, headers=headers, timeout=5)


def minimal() -> dict[str, Any]:
    return {
        "personalizations": [{"to": [{"email": "ops@example.com"}]}],
        "from": {"email": DEFAULT_SENDER, "name": "Alerts"},
        "subject": "Disk full on db1",
        "content": [{"type": "text/plain", "value": "Disk full on db1"}],
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- sending ----------------------------------------------------------------------


def test_a_mail_is_accepted_and_its_x_message_id_returned(mailer: Mailer) -> None:
    message_id = mailer.sender(reply_to="purchasing@example.com").send(MAIL, None)

    (mail,) = mailer.sim.mails
    assert message_id == mail["message_id"] and len(message_id) == 22
    assert mail["personalizations"] == [{"to": [{"email": "buyer@example.org"}]}]
    assert mail["from"] == {"email": DEFAULT_SENDER, "name": "X3 Purchasing"}
    assert mail["reply_to"] == {"email": "purchasing@example.com"}
    assert mail["subject"] == "PO POFR0001 approved"
    assert mail["content"] == [{"type": "text/plain", "value": MAIL.body}]
    assert mail["custom_args"] == {"notification_id": MAIL.id}


def test_a_sender_without_a_name_or_reply_to_sends_neither(mailer: Mailer) -> None:
    mailer.sender(from_name="").send(MAIL, None)
    (mail,) = mailer.sim.mails
    assert mail["from"] == {"email": DEFAULT_SENDER}
    assert "reply_to" not in mail


def test_html_adds_an_escaped_version_after_the_plain_text(mailer: Mailer) -> None:
    mailer.sender(html=True).send(MAIL, None)
    (mail,) = mailer.sim.mails
    assert [block["type"] for block in mail["content"]] == ["text/plain", "text/html"]
    assert mail["content"][1]["value"] == (
        "<p>Order POFR0001 is approved.<br>Total: 1 200 EUR</p>"
        "<p>See X3 for &lt;details&gt; &amp; notes.</p>"
    )


def test_as_html_ignores_blank_paragraphs() -> None:
    assert as_html("\n\none\n\n\n \n\ntwo\n") == "<p>one</p><p>two</p>"


def test_a_notification_without_subject_fails_without_a_request(mailer: Mailer) -> None:
    with pytest.raises(SendGridError) as caught:
        mailer.sender().send(replace(MAIL, subject=None), None)
    assert caught.value.status == 400 and not caught.value.transient
    assert "po_approved" in str(caught.value)
    assert mailer.counter.requests == 0


# -- refusals: not retried --------------------------------------------------------


def test_a_bad_key_is_a_401_with_the_fix_and_is_not_retried(mailer: Mailer) -> None:
    with pytest.raises(SendGridError) as caught:
        mailer.sender(api_key="SG.wrong").send(MAIL, None)
    error = caught.value
    assert (error.status, error.transient, error.service) == (401, False, "SendGrid")
    assert "authorization grant is invalid, expired, or revoked" in error.message
    assert "sendgrid.api_key" in error.message
    assert mailer.counter.requests == 1 and mailer.sim.mails == []


def test_an_unverified_sender_is_a_403_naming_it(mailer: Mailer) -> None:
    with pytest.raises(SendGridError) as caught:
        mailer.sender(from_email="nobody@example.net").send(MAIL, None)
    error = caught.value
    assert (error.status, error.transient) == (403, False)
    assert "verified Sender Identity" in error.message and "(field from)" in error.message
    assert "nobody@example.net" in error.message
    assert mailer.counter.requests == 1


def test_a_bad_recipient_is_a_400_naming_the_field(mailer: Mailer) -> None:
    with pytest.raises(SendGridError) as caught:
        mailer.sender().send(replace(MAIL, to="not-an-address"), None)
    error = caught.value
    assert (error.status, error.transient) == (400, False)
    assert error.message == (
        "HTTP 400: Does not contain a valid address. (field personalizations.0.to.0.email)"
    )
    assert mailer.counter.requests == 1


# -- transient failures: retried --------------------------------------------------


def test_a_429_waits_until_the_rate_limit_resets_then_sends_once(mailer: Mailer) -> None:
    mailer.sim.faults.add("429", delay=4)
    message_id = mailer.sender().send(MAIL, None)
    assert mailer.sleeps == [4.0]  # X-RateLimit-Reset - now
    assert [mail["message_id"] for mail in mailer.sim.mails] == [message_id]
    assert mailer.counter.requests == 2


def test_a_429_carries_the_rate_limit_headers(mailer: Mailer) -> None:
    mailer.sim.faults.add("429", delay=7)
    response = post(mailer, minimal())
    assert response.status_code == 429
    assert response.headers["X-RateLimit-Limit"] == "600"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert response.headers["X-RateLimit-Reset"] == str(int(NOW) + 7)
    assert response.json()["errors"][0]["message"] == "too many requests"


def test_a_rate_limit_reset_in_the_past_retries_at_once(mailer: Mailer) -> None:
    response = requests.Response()
    response.headers["X-RateLimit-Reset"] = str(int(NOW) - 30)
    assert mailer.sender()._retry_after(response) == 0.0


def test_retry_after_is_used_when_there_is_no_rate_limit_reset(mailer: Mailer) -> None:
    response = requests.Response()
    response.headers["Retry-After"] = "3"
    assert mailer.sender()._retry_after(response) == 3.0


def test_a_500_is_retried_and_the_mail_sent_once(mailer: Mailer) -> None:
    mailer.sim.faults.add("500", times=2)
    message_id = mailer.sender().send(MAIL, None)
    assert [mail["message_id"] for mail in mailer.sim.mails] == [message_id]
    assert mailer.counter.requests == 3


def test_5xx_that_outlast_the_retries_are_a_transient_error(mailer: Mailer) -> None:
    mailer.sim.faults.add("503", times=0)
    with pytest.raises(SendGridError) as caught:
        mailer.sender().send(MAIL, None)
    error = caught.value
    assert (error.status, error.transient, error.maybe_sent) == (503, True, False)
    assert mailer.counter.requests == 3 and mailer.sim.mails == []


def test_no_connection_is_transient_and_retried(mailer: Mailer) -> None:
    sender = mailer.sender(api_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SendGridError) as caught:
        sender.send(MAIL, None)
    error = caught.value
    assert (error.status, error.transient, error.maybe_sent) == (None, True, False)
    assert "cannot connect" in error.message
    assert len(mailer.sleeps) == 2  # three attempts


# -- ambiguous failures: never retried, a person decides ----------------------------


@pytest.mark.parametrize("fault", ["timeout", "reset"])
def test_an_unanswered_send_is_not_repeated(mailer: Mailer, fault: str) -> None:
    mailer.sim.faults.add(fault, delay=1.0)
    with pytest.raises(SendGridError) as caught:
        mailer.sender(timeout=0.3).send(MAIL, None)
    error = caught.value
    assert (error.transient, error.maybe_sent, error.status) == (False, True, None)
    assert f"notification_id={MAIL.id}" in error.message and "replay" in error.message
    assert mailer.counter.requests == 1
    assert mailer.sleeps == []


def test_a_reset_after_acceptance_leaves_exactly_one_mail(mailer: Mailer) -> None:
    mailer.sim.faults.add("reset")
    with pytest.raises(SendGridError):
        mailer.sender().send(MAIL, None)
    assert len(mailer.sim.mails) == 1  # why it must not be sent again


def test_an_earlier_attempt_in_flight_is_not_repeated(mailer: Mailer) -> None:
    since = datetime(2024, 5, 2, 9, 29, tzinfo=UTC)
    with pytest.raises(SendGridError) as caught:
        mailer.sender().send(MAIL, since)
    assert caught.value.maybe_sent and not caught.value.transient
    assert "2024-05-02 09:29" in caught.value.message
    assert mailer.counter.requests == 0


def test_find_sent_never_finds_a_mail(mailer: Mailer) -> None:
    assert mailer.sender().find_sent(MAIL, datetime(2024, 5, 2, tzinfo=UTC)) is None


# -- verify: sandbox mode ---------------------------------------------------------


def test_verify_sends_nothing_and_checks_the_key(mailer: Mailer) -> None:
    mailer.sender().verify()
    assert mailer.sim.mails == [] and mailer.counter.requests == 1
    with pytest.raises(SendGridError) as caught:
        mailer.sender(api_key="SG.revoked").verify()
    assert caught.value.status == 401


# -- the simulator ----------------------------------------------------------------


def test_the_minimal_body_is_accepted_with_an_empty_202(mailer: Mailer) -> None:
    response = post(mailer, minimal())
    assert response.status_code == 202 and response.content == b""
    assert response.headers["X-Message-Id"] == mailer.sim.mails[0]["message_id"]


def test_sandbox_mode_answers_200_and_records_nothing(mailer: Mailer) -> None:
    response = post(mailer, minimal() | {"mail_settings": {"sandbox_mode": {"enable": True}}})
    assert response.status_code == 200 and mailer.sim.mails == []


@pytest.mark.parametrize("key", ["", "SG.wrong", None])
def test_a_missing_or_wrong_key_is_401(mailer: Mailer, key: str | None) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    url = f"{mailer.url}/v3/mail/send"
    response = requests.post(url, json=minimal(), headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json() == {
        "errors": [
            {
                "message": "The provided authorization grant is invalid, expired, or revoked",
                "field": None,
                "help": None,
            }
        ]
    }


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in body.items() if name != key}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (without(minimal(), "personalizations"), ["personalizations"]),
        (minimal() | {"personalizations": []}, ["personalizations"]),
        (minimal() | {"personalizations": [{"to": []}]}, ["personalizations.0.to"]),
        (
            minimal() | {"personalizations": [{"to": [{"email": "x"}, {"name": "n"}]}]},
            ["personalizations.0.to.0.email", "personalizations.0.to.1.email"],
        ),
        (without(minimal(), "from"), ["from.email"]),
        (minimal() | {"from": {"email": "not an address"}}, ["from.email"]),
        (without(minimal(), "subject"), ["subject"]),
        (without(minimal(), "content"), ["content"]),
        (minimal() | {"content": [{"type": "text/plain", "value": ""}]}, ["content.0.value"]),
        (
            minimal()
            | {
                "content": [
                    {"type": "text/html", "value": "<p>x</p>"},
                    {"type": "text/plain", "value": "x"},
                ]
            },
            ["content.0.type"],
        ),
        (without(without(minimal(), "subject"), "content"), ["subject", "content"]),
    ],
)
def test_an_invalid_body_is_400_listing_every_problem(
    mailer: Mailer, body: dict[str, Any], fields: list[str]
) -> None:
    response = post(mailer, body)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [error["field"] for error in errors] == fields
    assert all(error["message"] and error["help"] for error in errors)
    assert mailer.sim.mails == []


def test_a_template_needs_neither_subject_nor_content(mailer: Mailer) -> None:
    body = without(without(minimal(), "subject"), "content") | {"template_id": "d-123"}
    assert post(mailer, body).status_code == 202


def test_a_subject_in_every_personalization_is_enough(mailer: Mailer) -> None:
    body = without(minimal(), "subject")
    body["personalizations"][0]["subject"] = "Per recipient"
    assert post(mailer, body).status_code == 202


def test_a_body_that_is_not_json_is_400(mailer: Mailer) -> None:
    response = requests.post(
        f"{mailer.url}/v3/mail/send",
        data=b"{not json",
        headers={"Authorization": f"Bearer {mailer.sim.api_key}"},
        timeout=5,
    )
    assert response.status_code == 400 and response.json()["errors"][0]["field"] is None


def test_an_unverified_sender_is_403_after_validation(mailer: Mailer) -> None:
    response = post(mailer, minimal() | {"from": {"email": "someone@example.net"}})
    assert response.status_code == 403
    assert response.json()["errors"][0]["field"] == "from"
    mailer.sim.verified_senders.add("someone@example.net")
    assert post(mailer, minimal() | {"from": {"email": "someone@example.net"}}).status_code == 202


def test_other_routes_are_404_and_other_methods_405(mailer: Mailer) -> None:
    headers = {"Authorization": f"Bearer {mailer.sim.api_key}"}
    assert requests.get(f"{mailer.url}/v3/mail/send", headers=headers, timeout=5).status_code == 405
    assert requests.post(f"{mailer.url}/v3/nothing", headers=headers, timeout=5).status_code == 404


def test_the_key_is_deterministic_and_looks_like_a_sendgrid_key() -> None:
    key = SendGridSimulator().api_key
    assert key == SendGridSimulator().api_key
    assert key.startswith("SG.") and [len(part) for part in key.split(".")] == [2, 22, 43]


def test_control_routes_list_mails_and_manage_faults(mailer: Mailer) -> None:
    post(mailer, minimal())
    mails = requests.get(f"{mailer.url}/_sim/mails", timeout=5).json()
    assert [mail["subject"] for mail in mails] == ["Disk full on db1"]

    added = requests.post(f"{mailer.url}/_sim/faults", json={"kind": "500", "times": 0}, timeout=5)
    assert added.status_code == 201 and added.json()["kind"] == "500"
    assert post(mailer, minimal()).status_code == 500
    assert requests.delete(f"{mailer.url}/_sim/faults", timeout=5).status_code == 204
    assert post(mailer, minimal()).status_code == 202

    assert requests.post(f"{mailer.url}/_sim/faults", json={}, timeout=5).status_code == 400
    assert requests.get(f"{mailer.url}/_sim/nothing", timeout=5).status_code == 404


def test_latency_slows_every_answer(mailer: Mailer) -> None:
    mailer.sim.latency_ms = 300
    with pytest.raises(requests.Timeout):
        requests.post(f"{mailer.url}/v3/mail/send", json=minimal(), timeout=0.1)


def test_verify_without_an_answer_says_so_plainly(mailer: Mailer) -> None:
    mailer.sim.faults.add("reset")
    with pytest.raises(SendGridError) as caught:
        mailer.sender().verify()
    assert caught.value.message == f"no answer from {mailer.url}/v3/mail/send"
    assert not caught.value.maybe_sent
