"""Twilio's OpenAPI description (API v2010, the part the simulator serves) and its checks.

The description is Twilio's own (`data/twilio-oai/`, see its README), loaded once, on
first use. `Operation.check` refuses one request the way Twilio does: a parameter the
operation does not have (a typo, a wrong case), a required one missing, a wrong type,
format, enum value, pattern, range or length, the limits the description states only in
prose, and its one-of groups (`From`/`MessagingServiceSid`, ...). `response_problems`
tells where an answer strays from the schema the operation answers with.

Each refusal carries the code Twilio uses for that case (`CODES`); where Twilio's code
is not known it is 20001 "Invalid parameter", HTTP 400.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from x3twilio.simulators.twilio_errors import Refusal

Form = Sequence[tuple[str, str]]
Schema = Mapping[str, Any]

DATA = "simulators/data/twilio-oai/api_v2010_extract.json"
FORM_TYPE = "application/x-www-form-urlencoded"

# Limits Twilio's documentation pages state but the extract does not record.
DOCUMENTED: dict[tuple[str, str], dict[str, Any]] = {
    # https://www.twilio.com/docs/voice/answering-machine-detection ("Allowed Values")
    ("CreateCall", "MachineDetection"): {"enum": ["Enable", "DetectMessageEnd"]},
    ("CreateCall", "AsyncAmd"): {"enum": ["true", "false"]},
    # https://www.twilio.com/docs/voice/api/call-resource (RecordingStatusCallbackEvent)
    ("CreateCall", "RecordingStatusCallbackEvent"): {
        "items-enum": ["in-progress", "completed", "absent"]
    },
    # https://www.twilio.com/docs/errors/21609: "The URL exceeds the 4000-character limit"
    ("CreateMessage", "StatusCallback"): {"maxLength": 4000},
}

# The code Twilio answers for a parameter it refuses, by operation and parameter:
# https://www.twilio.com/docs/errors/<code>. Anything else gets 20001.
CODES: dict[tuple[str, str], int] = {
    ("CreateMessage", "To"): 21211,
    ("CreateMessage", "From"): 21212,
    ("CreateMessage", "Body"): 21617,
    ("CreateMessage", "StatusCallback"): 21609,
    ("CreateMessage", "ValidityPeriod"): 21624,
    ("CreateMessage", "MessagingServiceSid"): 21705,
    ("CreateMessage", "ContentSid"): 21655,
    ("CreateCall", "To"): 21211,
    ("CreateCall", "From"): 21212,
    ("CreateCall", "Url"): 21205,
    ("CreateCall", "Method"): 21209,
    ("CreateCall", "StatusCallbackEvent"): 21626,
    ("CreateCall", "MachineDetection"): 21234,
    ("CreateIncomingPhoneNumber", "PhoneNumber"): 21421,
    ("CreateIncomingPhoneNumber", "VoiceMethod"): 21403,
    ("UpdateIncomingPhoneNumber", "VoiceMethod"): 21403,
    ("UpdateMessage", "Status"): 30400,
}
# A missing required parameter, or a one-of group with none given (named by its first).
MISSING: dict[tuple[str, str], int] = {
    ("CreateMessage", "To"): 21604,
    ("CreateMessage", "From"): 21603,
    ("CreateMessage", "Body"): 21602,
    ("CreateCall", "To"): 21201,
    ("CreateCall", "From"): 21213,
    ("CreateCall", "Url"): 21205,
}

E164 = re.compile(r"\+[1-9]\d{1,14}")
CHANNEL_ADDRESS = re.compile(r"[a-z]+:\S+")  # whatsapp:+1..., messenger:..., rcs:...
ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
SHORT_CODE = re.compile(r"\d{3,8}")
CALL_ENDPOINT = re.compile(r"client:[A-Za-z0-9_.-]+|sip:\S+")
PARTIAL_NUMBER = re.compile(r"\+?[0-9*]+")
HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
INTEGER = re.compile(r"-?\d+")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
SENDERS = {"From", "FallbackFrom"}  # phone-number parameters that may name any sender
SECRET_WORDS = ("Password", "Token")  # values never repeated in a refusal


@dataclass(frozen=True)
class Operation:
    """One operation of the description and the checks of its requests."""

    id: str
    method: str
    path: str
    path_params: Mapping[str, Schema]
    query_params: Mapping[str, Schema]
    form_params: Mapping[str, Schema]
    form_required: tuple[str, ...]
    one_of_required: tuple[tuple[str, ...], ...]
    content_types: tuple[str, ...]
    responses: Mapping[str, Any]

    @classmethod
    def parse(cls, op_id: str, raw: Mapping[str, Any]) -> Operation:
        return cls(
            id=op_id,
            method=raw["method"],
            path=raw["path"],
            path_params=raw.get("path_params", {}),
            query_params=raw.get("query_params", {}),
            form_params=raw.get("form_params", {}),
            form_required=tuple(raw.get("form_required", ())),
            one_of_required=tuple(tuple(group) for group in raw.get("one_of_required", ())),
            content_types=tuple(raw.get("request_content_types", ())),
            responses=raw.get("responses", {}),
        )

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        """The path template as a pattern: each {Name} one path segment."""
        parts = re.split(r"\{(\w+)\}", self.path)
        pieces = [
            re.escape(part) if n % 2 == 0 else rf"(?P<{part}>[^/]+?)"
            for n, part in enumerate(parts)
        ]
        return re.compile("".join(pieces))

    @property
    def takes_form(self) -> bool:
        return bool(self.content_types)

    def path_ok(self, values: Mapping[str, str]) -> bool:
        """Whether the path's SIDs have the shape the description gives them."""
        return all(
            _value_problem(schema, values.get(name, "")) is None
            for name, schema in self.path_params.items()
        )

    def check(self, query: Form, form: Form, content_type: str = FORM_TYPE) -> None:
        """Raise the Refusal Twilio answers for this request, in Twilio's order."""
        form = form if self.takes_form else []
        if form and content_type.split(";")[0].strip().lower() != FORM_TYPE:
            raise self._refuse(20001, "Content-Type", f"Content-Type must be {FORM_TYPE}")
        given = self._known(query, self.query_params) + self._known(form, self.form_params)
        present = {name: values for name, values in given if any(values)}
        for name in self.form_required:
            if name not in present:
                code = MISSING.get((self.id, name), 20001)
                raise self._refuse(code, name, f"{name} is required")
        for group in self.one_of_required:
            if not any(name in present for name in group):
                code = MISSING.get((self.id, group[0]), 20001)
                raise self._refuse(code, group[0], f"one of {', '.join(group)} is required")
        schemas = {**self.query_params, **self.form_params}
        checked = [(name, self._schema(name, schemas[name]), values) for name, values in given]
        for name, schema, values in checked:  # lengths first, as Twilio does (21617)
            problem = _size_problem(schema, values)
            if problem:
                raise self._refuse(CODES.get((self.id, name), 20001), name, f"{name} {problem}")
        for name, schema, values in checked:
            for value in values:
                problem = _value_problem(schema, value, name) if value else None  # "" unsets
                if problem:
                    raise self._refuse(CODES.get((self.id, name), 20001), name, problem)

    def _known(self, pairs: Form, params: Mapping[str, Schema]) -> list[tuple[str, list[str]]]:
        """The parameters given, in the description's order; a name it lacks is refused."""
        by_name: dict[str, list[str]] = {}
        for name, value in pairs:
            if name not in params:
                raise self._refuse(20001, name, self._unknown(name, params))
            by_name.setdefault(name, []).append(value)
        for name, values in by_name.items():
            if len(values) > 1 and params[name].get("type") != "array":
                raise self._refuse(20001, name, f"{name} is given {len(values)} times")
        return [(name, by_name[name]) for name in params if name in by_name]

    def _unknown(self, name: str, params: Mapping[str, Schema]) -> str:
        cased = [known for known in params if known.lower() == name.lower()]
        hint = f" (parameter names are case-sensitive: {cased[0]})" if cased else ""
        return f"{name!r} is not a parameter of {self.id}{hint}"

    def _schema(self, name: str, schema: Schema) -> dict[str, Any]:
        """The parameter's schema with the prose limits merged in."""
        merged = {key: value for key, value in schema.items() if key != "x-from-description"}
        prose = dict(schema.get("x-from-description", {}))
        prose.pop("quote", None)
        return merged | prose | DOCUMENTED.get((self.id, name), {})

    def _refuse(self, code: int, name: str, reason: str) -> Refusal:
        return Refusal(code, self.id, name, reason)


# -- one value against one parameter's schema -------------------------------------------


def _size_problem(schema: Schema, values: Sequence[str]) -> str | None:
    """A length or count limit broken (checked before formats, as Twilio does)."""
    limit = schema.get("maxItems")
    if limit is not None and len(values) > limit:
        return f"has {len(values)} values, above the limit of {limit}"
    limit = schema.get("maxLength")
    if limit is not None and "pattern" not in schema:
        longest = max(len(value) for value in values)
        if longest > limit:
            return f"is {longest} characters long, above the limit of {limit}"
    return None


def _value_problem(schema: Schema, value: str, name: str = "") -> str | None:
    """What is wrong with one value, or None."""
    problem = _typed_problem(schema, value, name)
    if problem:
        shown = "" if any(word in name for word in SECRET_WORDS) else f" (got {value[:80]!r})"
        return f"{name} {problem}{shown}".strip()
    return None


def _typed_problem(schema: Schema, value: str, name: str) -> str | None:
    kind = schema.get("type", "string")
    if kind == "array":
        return _typed_problem(_item_schema(schema), value, name)
    if kind == "integer":
        if not INTEGER.fullmatch(value):
            return "must be an integer"
        return _range_problem(schema, int(value))
    if kind == "number":
        try:
            number = float(value)
        except ValueError:
            return "must be a number"
        return "must be a finite number" if not math.isfinite(number) else None
    if kind == "boolean":
        return None if value.lower() in ("true", "false") else "must be true or false"
    return _string_problem(schema, value, name)


def _item_schema(schema: Schema) -> dict[str, Any]:
    items = dict(schema.get("items", {}))
    if "items-enum" in schema:
        items["enum"] = schema["items-enum"]
    if items.pop("x-ignore-format", False):
        items.pop("format", None)
    return items


def _range_problem(schema: Schema, number: int) -> str | None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if (low is not None and number < low) or (high is not None and number > high):
        if high is None:
            return f"must be at least {low}"
        return f"must be from {low if low is not None else '-inf'} to {high}"
    return None


def _string_problem(schema: Schema, value: str, name: str) -> str | None:
    if "enum" in schema and value not in schema["enum"]:
        return f"must be one of {', '.join(schema['enum'])}"
    pattern = schema.get("pattern")
    if pattern and not re.search(pattern, value):
        return f"must match {pattern}"
    low, high = schema.get("minLength"), schema.get("maxLength")
    if (low is not None and len(value) < low) or (high is not None and len(value) > high):
        return f"must be {low}..{high} characters long"
    checker = FORMATS.get(schema.get("format", ""))
    return checker(schema, value, name) if checker else None


def _phone_number(schema: Schema, value: str, name: str) -> str | None:
    if schema.get("x-partial-ok"):  # list filter: part of a number, '*' for any digit
        return None if PARTIAL_NUMBER.fullmatch(value) else "must be digits, '+' and '*'"
    if E164.fullmatch(value) or CHANNEL_ADDRESS.fullmatch(value):
        return None
    if name in SENDERS and (ALPHANUMERIC_SENDER.fullmatch(value) or SHORT_CODE.fullmatch(value)):
        return None
    return "must be a phone number in E.164 format (+ and country code)"


def _endpoint(schema: Schema, value: str, name: str) -> str | None:
    if E164.fullmatch(value) or CALL_ENDPOINT.fullmatch(value):
        return None
    return "must be an E.164 phone number, client:<name> or sip:<address>"


def _uri(schema: Schema, value: str, name: str) -> str | None:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return "must be a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", value):
        return "must be an absolute http(s) URL"
    problem = host_problem(parts.hostname, underscore_ok=not schema.get("x-no-underscore-host"))
    return f"must contain a valid hostname: {problem}" if problem else None


def host_problem(host: str, underscore_ok: bool = False) -> str | None:
    """What makes `host` a hostname Twilio refuses (None if it is a name or an IP)."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if "_" in host and not underscore_ok:
        return "underscores are not allowed"
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(HOST_LABEL.fullmatch(label) for label in labels):
        return f"{host!r} is not a valid host name"
    return None


def _date_time(schema: Schema, value: str, name: str) -> str | None:
    if schema.get("x-date-prefix-ok") and value.startswith(("<=", ">=")):
        value = value[2:]
    if name not in FORM_DATE_TIMES and DATE.fullmatch(value):  # list filters take a date
        try:
            date.fromisoformat(value)
        except ValueError:
            return "must be a valid date (YYYY-MM-DD)"
        return None
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "must be a date-time (YYYY-MM-DDTHH:MM:SSZ)"
    return None if "T" in value else "must be a date-time (YYYY-MM-DDTHH:MM:SSZ)"


FORM_DATE_TIMES = {"SendAt"}  # a form date-time is a full instant
FORMATS = {
    "phone-number": _phone_number,
    "endpoint": _endpoint,
    "uri": _uri,
    "date-time": _date_time,
}


# -- answers ------------------------------------------------------------------------------


def response_problems(description: Description, ref: str, resource: Mapping[str, Any]) -> list[str]:
    """Where `resource` strays from schema `ref`: a property missing, null, off type or enum."""
    problems = []
    for name, schema in description.schemas[ref].get("properties", {}).items():
        if name not in resource:
            problems.append(f"{name} is missing")
            continue
        value = resource[name]
        if value is None:
            if not schema.get("nullable"):
                problems.append(f"{name} is null")
            continue
        if not _json_type_ok(schema.get("type", "string"), value):
            problems.append(f"{name} is not of type {schema.get('type')}: {value!r}")
        elif "enum" in schema and value not in schema["enum"]:
            problems.append(f"{name} {value!r} is not one of {schema['enum']}")
        elif "pattern" in schema and not re.search(schema["pattern"], str(value)):
            problems.append(f"{name} {value!r} does not match {schema['pattern']}")
    return problems


def _json_type_ok(kind: str, value: Any) -> bool:
    types: dict[str, type | tuple[type, ...]] = {
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "object": dict,
        "array": list,
    }
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, types.get(kind, object))


# -- the description ------------------------------------------------------------------------


class Description:
    """The operations and schemas of Twilio's description."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.source: Mapping[str, Any] = raw["source"]
        self.schemas: Mapping[str, Any] = raw["schemas"]
        self.operations = {
            op_id: Operation.parse(op_id, op) for op_id, op in raw["operations"].items()
        }

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation serving `method path` and its path values; None if none serves it.

        Raises LookupError when the path exists but not for this method.
        """
        allowed = False
        for operation in self.operations.values():
            found = operation.pattern.fullmatch(path)
            if found and operation.method == method:
                return operation, found.groupdict()
            allowed = allowed or bool(found)
        if allowed:
            raise LookupError(f"{method} is not allowed on {path}")
        return None

    def answer_schema(self, operation: Operation) -> tuple[int, Any]:
        """The success status of an operation and the schema it answers with."""
        status, schema = next(iter(operation.responses.items()))
        return int(status), schema


@functools.cache
def description() -> Description:
    """Twilio's description, read from the package data on first use."""
    text = resources.files("x3twilio").joinpath(DATA).read_text("utf-8")
    return Description(json.loads(text))
