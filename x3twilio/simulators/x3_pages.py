"""What the simulated X3 answers besides its data: `$diagnoses`, the 401 of a failed login,
the pages a proxy or the login form serve instead, and the answers of injected faults."""

from __future__ import annotations

import base64
import hmac
from typing import Any

from . import Reply

GATEWAY_USER = "x3sim.gateway_user"  # environ key: the user X3 Cloud's gateway vouches for


def diagnoses(message: str, severity: str = "error", trace: str = "") -> dict[str, Any]:
    entry = {"$severity": severity, "$message": message}
    if trace:
        entry["$stackTrace"] = trace
    return {"$diagnoses": [entry]}


def unauthorized() -> Reply:
    body = diagnoses("Authentication failed: invalid user name or password")
    return Reply(401, body, headers=[("WWW-Authenticate", 'Basic realm="Syracuse"')])


PROXY_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head><body>"
    "<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)
LOGIN_PAGE = (
    '<!DOCTYPE html><html><head><title>Sage X3</title></head><body class="syracuse-login">'
    '<form method="post" action="/auth/login/submit"><input name="login"/>'
    '<input type="password" name="password"/><button>Sign in</button></form></body></html>'
)
# The licence's daily web-service data volume (WSSIZELIMIT, then WSGRACELIMIT) is used up.
# X3 documents the limit, not the answer: the status 503 and this text are guesses.
LICENCE_MESSAGE = (
    "The data volume allowed by the license for web services has been reached (WSSIZELIMIT)"
)


def refusal(kind: str) -> Reply | None:
    """The answer of a fault that replaces the real one (None: answer normally)."""
    retry = [("Retry-After", "1")]
    return {
        "500": Reply(500, diagnoses("Unexpected error in the X3 session", "fatal")),
        "503": Reply(503, diagnoses("No session available in the pool", "error"), headers=retry),
        "429": Reply(429, diagnoses("Too many requests", "error"), headers=retry),
        "401": unauthorized(),
        "html": Reply(502, PROXY_PAGE, "text/html"),
        "html200": Reply(200, LOGIN_PAGE, "text/html; charset=utf-8"),
        "diagnoses": Reply(200, {"$resources": [], **diagnoses("Session lost: request failed")}),
        "licence": Reply(503, diagnoses(LICENCE_MESSAGE)),
    }.get(kind)


def authorized(environ: dict[str, Any], user: str, password: str) -> bool:
    """HTTP Basic with the user's password, or a request X3 Cloud's gateway vouched for."""
    # Behind the simulated X3 Cloud gateway (simulators/cloud.py), which checked the
    # bearer token: a WSGI key, which no HTTP header can set.
    if environ.get(GATEWAY_USER):
        return True
    scheme, _, encoded = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    try:
        given = base64.b64decode(encoded, validate=True)
    except ValueError:
        return False
    expected = f"{user}:{password}".encode()
    return scheme.lower() == "basic" and hmac.compare_digest(given, expected)
