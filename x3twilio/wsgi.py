"""The webhook shim: check Twilio's signature, spool the payload, answer fast. Nothing else.

Serve `x3twilio.wsgi:application` with gunicorn or waitress behind an HTTPS proxy; it reads
its configuration from $X3TWILIO_CONFIG. No X3 call ever happens inside a request.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import quote
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer
from xml.sax.saxutils import quoteattr

from x3twilio.audit import iso_ms, utc_now
from x3twilio.config import Config
from x3twilio.errors import ExitCode, X3TwilioError
from x3twilio.signature import validate_signature
from x3twilio.spool import Spool
from x3twilio.spool_payload import ROUTES, dedupe_key, make_payload

StartResponse = Callable[..., Any]
XML = "text/xml; charset=utf-8"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
_READ = 64 * 1024  # bytes per read of a body that comes without a Content-Length


class BadBody(Exception):
    """The request body cannot be read as sent: its status (400, 411, 413) and why."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class Shim:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.spool = Spool(config.state_dir)
        self.tokens = [
            t for t in (config.twilio.auth_token, config.twilio.previous_auth_token) if t
        ]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz":
            return _answer(start_response, 200, "ok\n", "text/plain")
        route = path.removeprefix("/twilio/")
        if not path.startswith("/twilio/") or route not in ROUTES:
            return _answer(start_response, 404, "not found\n", "text/plain")
        if method != "POST":
            return _answer(start_response, 405, "POST only\n", "text/plain", [("Allow", "POST")])
        return self._webhook(route, environ, start_response)

    def _webhook(
        self, route: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        try:
            body = read_body(environ, self.config.inbound.max_body)
        except BadBody as exc:
            return _answer(start_response, exc.status, f"{exc}\n", "text/plain")
        url = self.public_url(environ)
        is_json = _is_json(environ.get("CONTENT_TYPE", ""))
        payload, fields = make_payload(route, iso_ms(utc_now()), url, is_json, body)
        # What the signature covers: the raw body of a JSON webhook (through bodySHA256),
        # else the form fields.
        signed: Any = body if is_json else fields
        signature = environ.get("HTTP_X_TWILIO_SIGNATURE")
        if not any(validate_signature(url, signed, signature, t) for t in self.tokens):
            # Say which URL was checked (never the token): a wrong public_url is the usual cause.
            environ["wsgi.errors"].write(
                f"x3twilio: 403 for /twilio/{route}: X-Twilio-Signature does not match "
                f"{url} (check public_url and twilio.auth_token)\n"
            )
            return _answer(start_response, 403, "invalid signature\n", "text/plain")
        named = dict(fields or [])
        if route == "voice" and named.get("RecordingUrl"):
            return _answer(start_response, 200, self.goodbye_twiml(), XML)  # <Record> action
        try:
            self.spool.write(payload, dedupe_key(route, url, fields, body, is_json))
        except X3TwilioError as exc:  # not stored whole: 503, so that Twilio retries
            environ["wsgi.errors"].write(f"x3twilio: 503 for /twilio/{route}: {exc}\n")
            return _answer(start_response, 503, "cannot spool\n", "text/plain")
        if route == "sms":
            return _answer(start_response, 200, EMPTY_TWIML, XML)
        if route == "voice":
            return _answer(start_response, 200, self.record_twiml(), XML)
        return _answer(start_response, 204, "", "text/plain")

    def public_url(self, environ: dict[str, Any]) -> str:
        """The URL Twilio called: the configured public base + the raw path and query."""
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if raw:
            target = raw.removeprefix(environ.get("SCRIPT_NAME", ""))
        else:
            target = quote(environ.get("PATH_INFO", ""))
            if environ.get("QUERY_STRING"):
                target += "?" + environ["QUERY_STRING"]
        return f"{self.config.public_url}{target}"

    def record_twiml(self) -> str:
        inbound, base = self.config.inbound, self.config.public_url
        return (
            '<?xml version="1.0" encoding="UTF-8"?><Response>'
            f"<Say language={quoteattr(inbound.voice_language)}>{_xml(inbound.voice_prompt)}</Say>"
            f'<Record maxLength="120" transcribe="true"'
            f" action={quoteattr(base + '/twilio/voice')}"
            f" recordingStatusCallback={quoteattr(base + '/twilio/recording')}"
            f" transcribeCallback={quoteattr(base + '/twilio/transcription')}/>"
            "</Response>"
        )

    def goodbye_twiml(self) -> str:
        return (
            '<?xml version="1.0" encoding="UTF-8"?><Response>'
            f"<Say language={quoteattr(self.config.inbound.voice_language)}>"
            f"{_xml(self.config.inbound.voice_goodbye)}</Say><Hangup/></Response>"
        )


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body, never more than `limit` bytes read (BadBody otherwise).

    A Content-Length must be digits (`abc`, `-1`, `1e3` are 400) and at most `limit` (413);
    a body shorter than it said is 400. Without one, a server that de-chunks the body for
    us (`wsgi.input_terminated`: gunicorn, `x3twilio serve`) is read to its end, bounded;
    a chunked body no server de-chunked is 411.
    """
    stream = environ.get("wsgi.input")
    declared = str(environ.get("CONTENT_LENGTH") or "").strip()
    chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
    try:
        if declared:
            if not (declared.isascii() and declared.isdigit()):
                raise BadBody(400, "bad Content-Length")
            length = int(declared)
            if length > limit:
                raise BadBody(413, "payload too large")
            body = _read_upto(stream, length)
            if len(body) < length:
                raise BadBody(400, "the body is shorter than its Content-Length")
            return body
        if environ.get("wsgi.input_terminated"):
            body = _read_upto(stream, limit + 1)
            if len(body) > limit:
                raise BadBody(413, "payload too large")
            return body
    except (OSError, ValueError) as exc:  # a torn chunk, a client gone: not a request
        raise BadBody(400, "the body cannot be read") from exc
    if chunked:
        raise BadBody(411, "length required")
    return b""


def _read_upto(stream: Any, size: int) -> bytes:
    """Read until `size` bytes or the end of the body, whichever comes first."""
    if stream is None:
        return b""
    parts: list[bytes] = []
    got = 0
    while got < size:
        part = stream.read(min(_READ, size - got))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _answer(
    start_response: StartResponse,
    status: int,
    body: str,
    content_type: str,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    data = body.encode()
    reasons = {
        200: "OK",
        204: "No Content",
        400: "Bad Request",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        411: "Length Required",
        413: "Payload Too Large",
        503: "Service Unavailable",
    }
    start_response(
        f"{status} {reasons[status]}",
        [("Content-Type", content_type), ("Content-Length", str(len(data))), *(headers or [])],
    )
    return [data] if data else []


_shim: Shim | None = None
_loading = threading.Lock()


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI entry point; the configuration is read once, found as the CLI finds it
    ($X3TWILIO_CONFIG, else ./x3twilio.yaml, the XDG config directory, /etc/x3twilio).

    A configuration that cannot be loaded answers 503 (Twilio retries) and says why on the
    server's error log; it is read again on the next request, so a fix needs no restart.
    """
    global _shim
    if _shim is None:
        from x3twilio.config import config_path, load_config

        with _loading:
            if _shim is None:
                try:
                    _shim = Shim(load_config(config_path(None, os.environ)))
                except X3TwilioError as exc:
                    environ["wsgi.errors"].write(f"x3twilio: the shim cannot start: {exc}\n")
                    return _answer(start_response, 503, "not configured\n", "text/plain")
    return _shim(environ, start_response)


def create_app() -> Shim:
    """The shim, its configuration read now: the WSGI server's factory
    (`gunicorn 'x3twilio.wsgi:create_app()'`, `waitress-serve --call x3twilio.wsgi:create_app`).

    A configuration that cannot be loaded stops the server at start, saying why, rather than
    answering every request with an error.
    """
    from x3twilio.config import config_path, load_config

    try:
        return Shim(load_config(config_path(None, os.environ)))
    except X3TwilioError as exc:
        sys.stderr.write(f"x3twilio: the shim cannot start: {exc}\n")
        raise SystemExit(int(exc.exit_code)) from None


# -- `x3twilio serve`: the standard library's server, made safe enough to face Twilio --------


class ListenError(X3TwilioError):
    exit_code = ExitCode.UNAVAILABLE


class ChunkedReader:
    """A chunked request body, de-chunked: `read(n)` returns at most n bytes, b"" at its end.

    Malformed framing raises ValueError; nothing is read beyond what is asked for (plus one
    chunk-size line), so a caller reading a bounded amount reads a bounded amount.
    """

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.left = 0  # bytes left in the current chunk
        self.done = False

    def read(self, size: int | None = -1) -> bytes:
        want = None if size is None or size < 0 else size
        parts: list[bytes] = []
        while not self.done and (want is None or want > 0):
            if self.left == 0:
                self._next_chunk()
                continue
            n = min(self.left, _READ if want is None else want)
            data = self.raw.read(n)
            if not data:
                raise ValueError("the chunked body ends before its last chunk")
            parts.append(data)
            self.left -= len(data)
            if want is not None:
                want -= len(data)
            if self.left == 0 and self.raw.readline(3) not in (b"\r\n", b"\n"):
                raise ValueError("a chunk does not end with CRLF")
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        line = b""
        while not line.endswith(b"\n") and (size is None or size < 0 or len(line) < size):
            byte = self.read(1)
            if not byte:
                break
            line += byte
        return line

    def _next_chunk(self) -> None:
        line = self.raw.readline(1026)
        if not line.endswith(b"\n"):
            raise ValueError("a chunk size line is missing or too long")
        size = line.split(b";", 1)[0].strip()
        if not size or len(size) > 16 or size.strip(b"0123456789abcdefABCDEF"):
            raise ValueError("a chunk size is not hexadecimal")
        self.left = int(size, 16)
        if self.left:
            return
        for _ in range(64):  # trailer fields, then the empty line
            trailer = self.raw.readline(8194)
            if trailer in (b"\r\n", b"\n", b""):
                self.done = True
                return
            if not trailer.endswith(b"\n"):
                break
        raise ValueError("the chunked body's trailer is malformed")


class _Handler(WSGIRequestHandler):
    """wsgiref's handler, plus: chunked bodies de-chunked, the raw request target kept for
    signatures, a socket timeout, and ambiguous framing refused."""

    timeout = 30  # a client that stalls mid-request is dropped, not waited for

    def handle(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        environ = self.get_environ()
        environ["RAW_URI"] = self.path
        stream: Any = self.rfile
        lengths = self.headers.get_all("Content-Length") or []
        encodings = self.headers.get_all("Transfer-Encoding") or []
        if encodings:
            if lengths or [e.strip().lower() for e in encodings] != ["chunked"]:
                self.send_error(400, "Transfer-Encoding must be chunked, without Content-Length")
                return
            stream = ChunkedReader(self.rfile)
            environ.pop("CONTENT_LENGTH", None)
            environ["wsgi.input_terminated"] = True
        elif len(lengths) > 1:
            self.send_error(400, "more than one Content-Length")
            return
        handler = ServerHandler(
            stream,
            self.wfile,  # type: ignore[arg-type]
            self.get_stderr(),
            environ,
            multithread=True,
        )
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.run(self.server.get_app())  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} - {format % args}\n")


class ThreadingServer(ThreadingMixIn, WSGIServer):
    """One thread per request: a slow client never holds up Twilio's other webhooks."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def make_server(host: str, port: int, app: Any) -> ThreadingServer:
    """The development server `x3twilio serve` runs (gunicorn or waitress in production)."""
    try:
        server = ThreadingServer((host, port), _Handler)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    server.set_app(app)
    return server
