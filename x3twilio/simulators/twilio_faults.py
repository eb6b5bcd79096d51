"""The Twilio simulator's faults and admission: the canned answers of injected faults, the
concurrency limit (Twilio's 20429), and requests processed late ("timeout", "late")."""

from __future__ import annotations

import io
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from x3twilio.simulators import SOCKET_KEY, Fault, Reply, abort_connection, read_body
from x3twilio.simulators.twilio_errors import STATUS_CODES, ApiError

LATE_LIMIT = 60.0  # seconds a "late" request waits at most for the client to give up


def error_reply(error: ApiError) -> Reply:
    """Twilio's answer for an error; a 401 carries Basic's challenge."""
    extra = [("WWW-Authenticate", 'Basic realm="Twilio API"')]
    return Reply(error.status, error.body(), headers=extra if error.status == 401 else [])


def fault_reply(fault: Fault | None) -> Reply | None:
    """The canned answer of a fault that replaces processing; None to process."""
    if fault is None or fault.kind in ("timeout", "late", "reset", "reset_before"):
        return None
    if fault.kind.startswith("error:"):  # Twilio's own answer for one error code
        return error_reply(ApiError(int(fault.kind.partition(":")[2])))
    if fault.kind == "html":  # a proxy's error page instead of JSON
        page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        return Reply(502, page, "text/html")
    if fault.kind == "garbage":
        return Reply(200, b'{"sid": "SM', "application/json")
    if fault.kind.isdigit():
        status = int(fault.kind)
        error = ApiError(STATUS_CODES.get(status, status))
        return Reply(status, error.body() | {"status": status})
    return None


class Admission:
    """Requests in flight (against a concurrency limit) and delayed requests not yet
    processed, which `wait_settled` waits for."""

    def __init__(self) -> None:
        self._gate = threading.Lock()
        self.in_flight = 0
        self._delayed = 0  # "timeout" and "late" requests not processed yet
        self._settled = threading.Condition()

    def admit(self, limit: int | None) -> bool:
        with self._gate:
            if limit is not None and self.in_flight >= limit:
                return False
            self.in_flight += 1
            return True

    def release(self) -> None:
        with self._gate:
            self.in_flight -= 1

    def delaying(self, change: int) -> None:
        with self._settled:
            self._delayed += change
            self._settled.notify_all()

    def wait_settled(self, timeout: float) -> bool:
        with self._settled:
            return self._settled.wait_for(lambda: self._delayed == 0, timeout)


def serve_late(
    environ: dict[str, Any],
    delay: float,
    serve: Callable[[dict[str, Any]], Reply],
    admission: Admission,
) -> ConnectionAbortedError:
    """Answer nothing; process the request `delay` seconds after the client gave up.

    The client's request is read whole, then the connection is watched until the
    client closes it (its timeout); only then, and `delay` seconds later, is the
    message or call created, as a Twilio that finishes a slow create would.
    """
    admission.delaying(+1)
    try:
        raw = environ["wsgi.input"]
        environ["wsgi.input"] = io.BytesIO(read_body(environ))
        wait_until_closed(environ[SOCKET_KEY], LATE_LIMIT)
        time.sleep(delay)
        serve(environ)
        environ["wsgi.input"] = raw
    finally:
        admission.delaying(-1)
    return abort_connection(environ)


def wait_until_closed(sock: socket.socket, limit: float) -> None:
    """Block until the peer closes `sock` (or `limit` seconds pass)."""
    deadline = time.monotonic() + limit
    while (left := deadline - time.monotonic()) > 0:
        try:
            readable, _, _ = select.select([sock], [], [], left)
            if readable and not sock.recv(1, socket.MSG_PEEK):
                return  # end of stream: the client gave up
        except OSError:
            return
        if readable:
            time.sleep(0.01)  # data we do not read (not expected): keep watching
