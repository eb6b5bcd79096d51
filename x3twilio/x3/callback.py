"""`x3twilio x3 login`: receive X3 Cloud's sign-in callback, then trade its code for tokens.

Sage's make-api-calls page (https://developer.sage.com/x3/authorization-token-endpoints/
make-api-calls/): once the user accepts, "the App is notified by callback", a POST to the
redirect URI with `authorizationCode`, `state` and `endpoint`, the regional API root that
later calls must use. The browser carries that POST (Sage's authorization page shows it as
an "HTTP 307 POST"), so nothing is ever shown that a person could copy: this module
listens, once, on the redirect URI's own address and takes it there.
"""

from __future__ import annotations

import hmac
import html
import json
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from x3twilio.config import X3Config
from x3twilio.errors import ExitCode, X3Error, X3TwilioError
from x3twilio.x3.auth import authorize_url, exchange_code

MAX_BODY = 64 * 1024  # the callback holds three short fields
CLIENT_TIMEOUT = 10.0  # seconds one connection may take: a stalled one must not block


class SignInSetupError(X3TwilioError):
    """The receiver cannot start: the redirect URI, the port or the certificate (78)."""

    exit_code = ExitCode.CONFIG


class NoCallback(X3TwilioError):
    """Nobody finished the sign-in in time: nothing changed (1, as a run that did not
    do everything it was asked)."""

    exit_code = ExitCode.PARTIAL


@dataclass(frozen=True)
class Callback:
    code: str
    endpoint: str | None  # absent when the region first asked is the customer's own


@dataclass(frozen=True)
class SignedIn:
    path: Path  # the token file
    root: str  # where later calls go: the regional endpoint, or x3.url


class CallbackReceiver:
    """One-shot listener on the redirect URI's host and port: takes exactly one POST on
    its path whose `state` matches, refuses anything else (and keeps waiting)."""

    def __init__(
        self,
        redirect_uri: str,
        state: str,
        cert: Path | None = None,
        key: Path | None = None,
    ) -> None:
        parts = urlsplit(redirect_uri)
        if parts.scheme == "https" and (cert is None or key is None):
            raise SignInSetupError(
                f"x3.oauth2.redirect_uri is https ({redirect_uri}): give the certificate of "
                "that name and its key with --cert FILE --key FILE"
            )
        if parts.scheme == "http" and (cert is not None or key is not None):
            raise SignInSetupError("--cert and --key are for an https x3.oauth2.redirect_uri")
        context = _tls(cert, key) if cert is not None and key is not None else None
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self.where = f"{host}:{port}"
        server_class = _Server6 if ":" in host else _Server
        try:
            self._server = server_class((host, port), _Handler)
        except OSError as exc:
            raise SignInSetupError(
                f"cannot listen on {self.where}, the address of x3.oauth2.redirect_uri "
                f"({exc.strerror or exc}): is another `x3 login` running, or is the port "
                "taken? Change the port there and in Sage's app registry alike"
            ) from None
        self._server.path = parts.path or "/"
        self._server.state = state
        if context is not None:  # the handshake happens in the handler, under its timeout
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )

    def wait(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> Callback:
        """The callback's code and endpoint; NoCallback after `timeout` seconds."""
        deadline = clock() + timeout
        server = self._server
        while server.result is None:
            left = deadline - clock()
            if left <= 0:
                raise NoCallback(
                    f"no sign-in reached {self.where} within {timeout:g}s; nothing was "
                    "changed: run `x3twilio x3 login` again and accept in the browser"
                )
            server.timeout = left
            server.handle_request()
        if isinstance(server.result, X3Error):
            raise server.result
        return server.result

    def close(self) -> None:
        self._server.server_close()

    def __enter__(self) -> CallbackReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sign_in(
    config: X3Config,
    announce: Callable[[str], None],
    timeout: float,
    cert: Path | None = None,
    key: Path | None = None,
    session: requests.Session | None = None,
) -> SignedIn:
    """Listen, show the authorise URL (`announce`), take the callback, store the tokens."""
    if config.auth != "oauth2" or config.oauth2 is None:
        raise X3Error(f"x3.auth is {config.auth}: signing in is for X3 Cloud (auth: oauth2)")
    state = secrets.token_urlsafe(24)
    with CallbackReceiver(config.oauth2.redirect_uri, state, cert, key) as receiver:
        announce(authorize_url(config, state))  # listening first: the browser may be quick
        callback = receiver.wait(timeout)
    path = exchange_code(config, callback.code, callback.endpoint, session)
    return SignedIn(path, callback.endpoint or config.url)


# ---------------------------------------------------------------- the HTTP side


class _Server(HTTPServer):
    path: str
    state: str
    result: Callback | X3Error | None = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that drops its connection or fails TLS changes nothing

    def handle_timeout(self) -> None:
        pass


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = CLIENT_TIMEOUT
    server_version = "x3twilio"
    sys_version = ""

    def setup(self) -> None:
        self.request.settimeout(self.timeout)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def do_POST(self) -> None:
        self._page(*self._receive())

    def _receive(self) -> tuple[int, str, str]:
        """Take the callback, or say why not: (status, title, text) for the browser."""
        server = self.server
        if urlsplit(self.path).path != server.path:
            return 404, "Not found", "This address takes X3 Cloud's sign-in only."
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            return 413, "Refused", "The sign-in answer is too large or malformed."
        fields = _fields(self.headers.get("Content-Type", ""), self.rfile.read(length))
        state = fields.get("state", "")
        if not hmac.compare_digest(state.encode(), server.state.encode()):
            return 400, "Refused", "This answer belongs to another sign-in."
        if fields.get("error"):
            server.result = X3Error(
                f"X3 Cloud refused the sign-in: {fields['error'][:200]} (check "
                "x3.oauth2.customer, the scope, and that the user may approve applications)"
            )
            return 200, "Not signed in", "X3 Cloud refused: see the terminal."
        if not fields.get("authorizationCode"):
            return 400, "Refused", "The answer holds no authorizationCode."
        server.result = Callback(fields["authorizationCode"], fields.get("endpoint") or None)
        return 200, "Signed in", "x3twilio has X3 Cloud's answer: you may close this tab."

    def do_GET(self) -> None:
        self._page(405, "Refused", "X3 Cloud sends its answer with POST.", [("Allow", "POST")])

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _page(
        self, status: int, title: str, text: str, headers: list[tuple[str, str]] | None = None
    ) -> None:
        body = (
            f"<!doctype html><html><head><title>x3twilio: {html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
        ).encode()
        self.send_response(status)
        for name, value in [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
            *(headers or []),
        ]:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request line holds nothing useful, and must not reach cron's mail


def _fields(content_type: str, body: bytes) -> dict[str, str]:
    """The callback's fields, form-encoded or JSON (whichever X3 Cloud sends)."""
    try:
        if content_type.split(";")[0].strip().lower() == "application/json":
            data = json.loads(body)
            if not isinstance(data, dict):
                return {}
            return {str(k): v for k, v in data.items() if isinstance(v, str)}
        text = body.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return {}
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _tls(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise SignInSetupError(
            f"--cert {cert} --key {key}: cannot load them ({reason}); give a PEM certificate "
            "for the redirect URI's host name and its private key"
        ) from None
    return context
