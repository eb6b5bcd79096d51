"""Twilio's OpenAPI description as the simulator reads it: operations, checks, answers."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from x3twilio.simulators.twilio_errors import Refusal
from x3twilio.simulators.twilio_oai import description, host_problem, response_problems
from x3twilio.simulators.twilio_requests import HANDLERS

MESSAGE = [("To", "+33612345678"), ("From", "+15017122661"), ("Body", "Hello")]


def refusal(
    operation: str, form: list[tuple[str, str]], query: Sequence[tuple[str, str]] = ()
) -> Refusal:
    with pytest.raises(Refusal) as caught:
        description().operations[operation].check(query, form)
    return caught.value


def test_the_vendored_description_is_twilios_and_every_operation_has_a_handler() -> None:
    described = description()

    assert described.source["repo"] == "twilio/twilio-oai"
    assert described.source["commit"] == "d50069b44ea8cd23141385bdb6db48f16ff75bb5"
    assert set(described.operations) == set(HANDLERS) and len(HANDLERS) == 13
    assert description() is described  # read once


def test_routes_come_from_the_description_paths() -> None:
    account = "AC" + "0" * 32
    found = description().match("GET", f"/2010-04-01/Accounts/{account}/Messages/SMx.json")

    assert found is not None
    operation, values = found
    assert operation.id == "FetchMessage" and values == {"AccountSid": account, "Sid": "SMx"}
    assert not operation.path_ok(values)  # not a message SID
    assert description().match("GET", f"/2010-04-01/Accounts/{account}/Nope.json") is None
    with pytest.raises(LookupError):
        description().match("PUT", f"/2010-04-01/Accounts/{account}/Messages.json")


def test_a_valid_create_passes_and_an_empty_optional_value_unsets() -> None:
    operation = description().operations["CreateMessage"]

    operation.check([], MESSAGE)
    operation.check([], [*MESSAGE, ("StatusCallback", ""), ("ValidityPeriod", "36000")])
    description().operations["UpdateIncomingPhoneNumber"].check([], [("SmsUrl", "")])


def test_lengths_are_checked_before_formats_as_twilio_orders_them() -> None:
    refused = refusal("CreateMessage", [("To", "0612"), ("From", "+1501"), ("Body", "x" * 1601)])

    assert (refused.code, refused.parameter) == (21617, "Body")
    assert "1601 characters" in refused.message


@pytest.mark.parametrize(
    ("form", "code", "parameter"),
    [
        ([("To", "+33612345678"), ("Body", "x")], 21603, "From"),
        ([("To", "+33612345678"), ("From", "+15017122661")], 21602, "Body"),
        ([*MESSAGE, ("ValidityPeriod", "0")], 21624, "ValidityPeriod"),
        ([*MESSAGE, ("body", "x")], 20001, "body"),
        (
            [*MESSAGE, ("MediaUrl", "https://h.example/a.png")] + [("MediaUrl", "x")] * 10,
            20001,
            "MediaUrl",
        ),
    ],
)
def test_refusals_name_the_parameter_and_carry_twilios_code(
    form: list[tuple[str, str]], code: int, parameter: str
) -> None:
    refused = refusal("CreateMessage", form)

    assert (refused.code, refused.status, refused.parameter) == (code, 400, parameter)
    assert parameter.lower() in refused.message.lower()
    assert refused.record() == {
        "operation": "CreateMessage",
        "parameter": parameter,
        "code": code,
        "message": refused.message,
    }


def test_a_miscased_name_is_refused_with_the_right_name_as_hint() -> None:
    refused = refusal("CreateMessage", [("to", "+33612345678"), *MESSAGE[1:]])

    assert "'to' is not a parameter of CreateMessage" in refused.message
    assert "case-sensitive: To" in refused.message


def test_a_secret_value_is_never_repeated_in_a_refusal() -> None:
    form = [("To", "+33612345678"), ("From", "+15017122661"), ("Url", "https://h.example/v")]
    form += [("SipAuthPassword", "hunter2"), ("Timeout", "x")]

    assert "hunter2" not in refusal("CreateCall", form).message


def test_list_date_filters_take_dates_date_times_and_twilios_prefix_forms() -> None:
    operation = description().operations["ListMessage"]
    for value in ("2024-05-02", "2024-05-02T12:00:00Z", "<=2024-05-02", ">=2024-05-02"):
        operation.check([("DateSent", value)], [])

    assert refusal("ListMessage", [], [("DateSent", "2024-02-30")]).parameter == "DateSent"
    assert refusal("ListCall", [], [("StartTime<", "<=2024-05-02")]).parameter == "StartTime<"


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("shim.example.com", None),
        ("127.0.0.1", None),
        ("::1", None),
        ("my_shim.example.com", "underscores are not allowed"),
        ("-x.example.com", "not a valid host name"),
        ("a..b", "not a valid host name"),
    ],
)
def test_host_names_follow_twilios_rule(host: str, problem: str | None) -> None:
    found = host_problem(host)

    assert found == problem if problem is None else problem in (found or "")


def test_response_problems_find_a_missing_property_a_bad_enum_and_a_wrong_type() -> None:
    described = description()
    ref = "api.v2010.account.message"
    complete = dict.fromkeys(described.schemas[ref]["properties"])
    complete |= {"status": "queued", "direction": "outbound-api"}

    assert response_problems(described, ref, complete) == []
    broken = {k: v for k, v in complete.items() if k != "body"} | {"status": "lost"}
    broken["error_code"] = "30003"
    problems = response_problems(described, ref, broken)
    assert problems == [
        "body is missing",
        "status 'lost' is not one of "
        + str(described.schemas[ref]["properties"]["status"]["enum"]),
        "error_code is not of type integer: '30003'",
    ]
