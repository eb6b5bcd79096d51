"""Simulators of Sage X3 and Twilio: small WSGI apps served on loopback.

Shared here, what every simulator server does: a threaded server that can be started in a
background thread, the fault-injection table every simulator consults (and the preamble that
applies it), a way to drop a connection without answering (a "reset" after the request was
processed), and the `Reply` handlers return.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

SOCKET_KEY = "x3twilio.sim.socket"


def abort_connection(environ: dict[str, Any]) -> ConnectionAbortedError:
    """Reset the client's connection (RST, no response); raise what this returns.

    wsgi.input holds a reference to the socket, which would defer the close (and the
    RST) until after wsgiref wrote an error page, so it is closed first. The builtin
    ConnectionAbortedError is the one wsgiref drops without a traceback.
    """
    environ["wsgi.input"].close()
    sock: socket.socket = environ[SOCKET_KEY]
    # SO_LINGER 0 makes close() send RST: the client sees "connection reset".
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    return ConnectionAbortedError("connection reset on purpose")


@dataclass
class Fault:
    """One injected misbehaviour: fires on requests whose "METHOD target" contains `match`."""

    kind: str  # "500", "503", "429", "401", "html", "garbage", "timeout", "reset", ...
    match: str = ""
    skip: int = 0  # let this many matching requests through first
    times: int = 1  # then fire this many times (0 = forever)
    delay: float = 0.0  # seconds, for "timeout"
    fired: int = 0


@dataclass
class Faults:
    """Thread-safe table of injected faults, consulted once per request."""

    items: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, match: str = "", **options: Any) -> Fault:
        fault = Fault(kind=kind, match=match, **options)
        with self._lock:
            self.items.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.items.clear()

    def pick(self, method: str, target: str) -> Fault | None:
        """Return the fault that fires for this request, if any (counting it)."""
        request = f"{method} {target}"
        with self._lock:
            for fault in self.items:
                if fault.match not in request:
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                if fault.times and fault.fired >= fault.times:
                    continue
                fault.fired += 1
                return fault
        return None


def request_target(environ: dict[str, Any]) -> str:
    """The raw path and query of the request, as the client sent it."""
    path = str(environ.get("RAW_URI") or environ.get("PATH_INFO", ""))
    query = str(environ.get("QUERY_STRING", ""))
    if query and "?" not in path:
        path = f"{path}?{query}"
    return path


def read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""


def respond(
    start_response: StartResponse,
    status: int,
    body: bytes | str | dict[str, Any] | list[Any] = b"",
    content_type: str = "application/json",
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    """Send one complete response; dicts and lists are sent as JSON."""
    if isinstance(body, dict | list):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else body
    reason = _REASONS.get(status, "Status")
    all_headers = [("Content-Type", content_type), ("Content-Length", str(len(data)))]
    start_response(f"{status} {reason}", all_headers + (headers or []))
    return [data]


_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def sleep_ms(ms: float) -> None:
    if ms > 0:
        time.sleep(ms / 1000)


@dataclass(frozen=True)
class Reply:
    """One answer of a simulator's handler; dicts and lists are sent as JSON."""

    status: int
    body: bytes | str | dict[str, Any] | list[Any] = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


def send(start_response: StartResponse, reply: Reply) -> list[bytes]:
    return respond(start_response, reply.status, reply.body, reply.content_type, reply.headers)


def half(reply: Reply) -> Reply:
    """A "garbage" fault: the first half of the real answer, as a 200."""
    body = reply.body if isinstance(reply.body, bytes | str) else json.dumps(reply.body)
    data = body.encode() if isinstance(body, str) else body
    return Reply(200, data[: max(len(data) // 2, 1)])


def faulted(
    environ: dict[str, Any],
    fault: Fault | None,
    latency_ms: float,
    refusal: Callable[[str], Reply | None],
    answer: Callable[[], Reply],
    garble: Callable[[Reply], Reply] = half,
) -> Reply:
    """The fault preamble of X3's APIs: latency, a refusal instead of the answer, an answer
    late ("timeout"), never ("reset", after processing: a write may have happened) or cut
    ("garbage")."""
    kind = fault.kind if fault else ""
    sleep_ms(latency_ms)
    refused = refusal(kind)
    if refused is not None:
        return refused
    if fault is not None and kind == "timeout":
        time.sleep(fault.delay)
    reply = answer()
    if kind == "reset":
        raise abort_connection(environ)
    return garble(reply) if kind == "garbage" else reply


class _Handler(WSGIRequestHandler):
    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ[SOCKET_KEY] = self.connection
        environ["RAW_URI"] = self.path
        return environ

    def log_message(self, format: str, *args: Any) -> None:  # quiet by default
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except OSError:
            self.close_connection = True


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # dropped connections are part of the simulation


class RunningServer:
    """A simulator served in a background thread; `url` is its base URL."""

    def __init__(self, app: WSGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.httpd = _Server((host, port), _Handler)
        self.httpd.set_app(app)
        self.app = app
        self.host = host
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> RunningServer:
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> RunningServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(app: WSGIApp, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Start `app` on host:port (0 = any free port) in a daemon thread."""
    return RunningServer(app, host, port).start()
