"""A request to the Twilio simulator's REST API, as Twilio reads it: the account in its path,
the operation of Twilio's description it is, and its parameters checked against that
operation, raising the error Twilio would answer."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from x3twilio.simulators import read_body
from x3twilio.simulators.twilio_errors import ApiError
from x3twilio.simulators.twilio_oai import Operation, description
from x3twilio.simulators.twilio_resources import Form

ACCOUNT_PATH = re.compile(r"/2010-04-01/Accounts/(?P<account>[^/]+?)(?:\.json|/.+)")
# The handler of each operation of Twilio's description.
HANDLERS = {
    "FetchAccount": "fetch_account",
    "CreateMessage": "create_message",
    "ListMessage": "list_messages",
    "FetchMessage": "fetch_message",
    "UpdateMessage": "update_message",
    "DeleteMessage": "delete_message",
    "CreateCall": "create_call",
    "ListCall": "list_calls",
    "FetchCall": "fetch_call",
    "ListIncomingPhoneNumber": "list_numbers",
    "CreateIncomingPhoneNumber": "buy_number",
    "FetchIncomingPhoneNumber": "fetch_number",
    "UpdateIncomingPhoneNumber": "update_number",
}
# Test credentials reach only these (TWILIO.md §4); anything else is a 403.
TEST_CREDENTIAL_ROUTES = {"create_message", "create_call", "buy_number"}


@dataclass
class ApiRequest:
    operation: str  # the operation of Twilio's description it is (CreateMessage, ...)
    path: str
    account: str
    test: bool
    sid: str
    query: Form
    form: Form


def parse_request(
    environ: dict[str, Any], authenticate: Callable[[dict[str, Any], str], bool]
) -> tuple[ApiRequest, str]:
    """Authenticate, route and check a request, raising the error Twilio would answer; the
    request and the name of its handler."""
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
    body = read_body(environ).decode()
    found = ACCOUNT_PATH.fullmatch(path)
    if not found:
        raise ApiError(20404, path=path)
    test = authenticate(environ, found["account"])
    operation, values = route(method, path)
    name = HANDLERS[operation.id]
    if test and name not in TEST_CREDENTIAL_ROUTES:
        raise ApiError(20008)
    if not operation.path_ok(values):  # not a SID of that kind: no such resource
        raise ApiError(20404, path=path)
    form = parse_qsl(body, keep_blank_values=True)
    query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    operation.check(query, form, environ.get("CONTENT_TYPE", ""))
    sid = values.get("Sid", "")
    request = ApiRequest(operation.id, path, found["account"], test, sid, query, form)
    return request, name


def route(method: str, path: str) -> tuple[Operation, dict[str, str]]:
    try:
        found = description().match(method, path)
    except LookupError:
        raise ApiError(20004) from None
    if found is None:
        raise ApiError(20404, path=path)
    return found
