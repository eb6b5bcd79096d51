"""Twilio's REST errors as the simulator answers them: code, HTTP status, message.

The body follows Twilio's error shape (`code`, `message`, `more_info`, `status`, and
`detail` where Twilio sends one); the texts are Twilio's where they are known.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ERROR_TEXT: dict[int, str] = {
    20001: "Invalid parameter: {detail}",
    20003: "Authenticate",
    20004: "Method not allowed",
    20005: "Account not active",
    20008: "Resource not accessible with Test Account Credentials",
    20404: "The requested resource {path} was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21201: "No 'To' number is specified",
    21205: "Url parameter is required.",
    21210: "The source phone number provided, {from_}, is not yet verified for your "
    "account. You may only make calls from phone numbers that you've verified or "
    "purchased from Twilio.",
    21211: "The 'To' number {to} is not a valid phone number.",
    21212: "The 'From' number {from_} is not a valid phone number, shortcode, or "
    "alphanumeric sender ID.",
    21213: "No 'From' number is specified",
    21214: "'To' phone number cannot be reached",
    21215: "Account not authorized to call {to}. Perhaps you need to enable some "
    "international permissions.",
    21216: "Account not allowed to call {to}",
    21217: "Phone number does not appear to be valid",
    21408: "Permission to send an SMS has not been enabled for the region indicated "
    "by the 'To' number: {to}.",
    21421: "PhoneNumber is invalid",
    21422: "PhoneNumber is not available",
    21452: "No phone numbers found in area code {area}",
    21602: "Message body is required.",
    21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided ({from_}) is not a valid message-enabled "
    "phone number for this account.",
    21610: "Attempt to send to unsubscribed recipient",
    21611: "This 'From' number has exceeded the maximum number of queued messages",
    21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' "
    "phone number: {from_} via SMS.",
    21614: "'To' number {to} is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21654: "ContentSid Required",
    21655: "The ContentSid is Invalid",
    21656: "The ContentVariables Parameter is invalid",
    21701: "The Messaging Service Sid {msid} is invalid.",
    21705: "The Messaging Service Sid {msid} is invalid.",
    21910: "Invalid From and To pair. From and To should be of the same channel",
    30400: "Parameters are not valid",
    30409: "This message cannot be canceled",
    63007: "Twilio could not find a Channel with the specified From address",
    63016: "Failed to send freeform message because you are outside the allowed window. "
    "If you are using WhatsApp, please use a Message Template.",
}
# The titles of Twilio's error pages (https://www.twilio.com/docs/errors/<code>), which
# start the message of a parameter the description refuses.
ERROR_TITLE: dict[int, str] = {
    20001: "Invalid parameter",
    21205: "Invalid URL",
    21209: "Invalid Method",
    21211: "Invalid 'To' Phone Number",
    21212: "Invalid 'From' Phone Number",
    21234: "Invalid Machine Detection configuration value",
    21403: "Invalid Method",
    21421: "PhoneNumber is invalid",
    21609: "Invalid 'StatusCallback'",
    21617: "The concatenated message body exceeds the 1600 character limit",
    21624: "Invalid validity period value",
    21626: "Invalid 'StatusCallbackEvent'",
    21705: "Invalid Messaging Service Sid",
    30400: "Parameters are not valid",
}
# 20005's HTTP status is not documented: 401, like 20003.
ERROR_STATUS = {20003: 401, 20004: 405, 20005: 401, 20008: 403, 20404: 404, 20429: 429}
ERROR_STATUS |= {20500: 500, 20503: 503}
ERROR_DETAIL = {20003: "Your AccountSid or AuthToken was incorrect."}
STATUS_CODES = {401: 20003, 429: 20429, 500: 20500, 503: 20503}


class ApiError(Exception):
    """A Twilio REST error: HTTP status plus Twilio's JSON error body.

    `message` replaces the code's usual text (a refusal saying which parameter is wrong).
    """

    def __init__(self, code: int, message: str | None = None, **context: str) -> None:
        self.code = code
        self.status = ERROR_STATUS.get(code, 400)
        template = ERROR_TEXT.get(code, "Error {code}")
        self.message = message or template.format(code=code, **_defaults(context))
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.code in ERROR_DETAIL:
            body["detail"] = ERROR_DETAIL[self.code]
        body["more_info"] = f"https://www.twilio.com/docs/errors/{self.code}"
        body["status"] = self.status
        return body


class Refusal(ApiError):
    """A request Twilio's OpenAPI description refuses: which operation, which parameter."""

    def __init__(self, code: int, operation: str, parameter: str, reason: str) -> None:
        self.operation, self.parameter, self.reason = operation, parameter, reason
        title = ERROR_TITLE.get(code, ERROR_TITLE[20001])
        super().__init__(code, f"{title}: {reason}")

    def record(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "parameter": self.parameter,
            "code": self.code,
            "message": self.message,
        }


def _defaults(context: Mapping[str, str]) -> dict[str, str]:
    keys = ("to", "from_", "msid", "path", "area", "detail")
    return dict.fromkeys(keys, "") | dict(context)
