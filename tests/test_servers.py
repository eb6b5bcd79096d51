"""The shim under the servers it runs under (gunicorn and waitress as README deploys it,
`x3twilio serve`), with hostile framing and a full disk; and `register-webhooks`."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from x3twilio.signature import compute_signature

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            requests.get(url, timeout=0.5)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


SERVERS = {
    "gunicorn": lambda port: [
        str(BIN / "gunicorn"),
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "x3twilio.wsgi:application",
    ],
    # exactly as README deploys it
    "gunicorn-threads": lambda port: [
        str(BIN / "gunicorn"),
        "--preload",  # the app is built before the workers: a bad config stops the server
        "-w",
        "2",
        "--threads",
        "8",
        "-b",
        f"127.0.0.1:{port}",
        "x3twilio.wsgi:create_app()",
    ],
    "waitress": lambda port: [
        str(BIN / "waitress-serve"),
        f"--listen=127.0.0.1:{port}",
        "--call",
        "x3twilio.wsgi:create_app",
    ],
    "serve": lambda port: [
        sys.executable,
        "-m",
        "x3twilio",
        "serve",
        "--port",
        str(port),
    ],
}
PUBLIC = "https://x3twilio.example.com"  # TLS ends at the proxy
MAX_BODY = 2000  # inbound.max_body of these tests: oversize bodies stay small


@contextlib.contextmanager
def running(
    env, server: str, preexec_fn: Callable[[], None] | None = None
) -> Iterator[tuple[int, subprocess.Popen]]:
    """One of SERVERS serving the shim with env's configuration; yields (port, process)."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("X3TWILIO")}
    process = subprocess.Popen(
        SERVERS[server](port),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**environment, "X3TWILIO_CONFIG": str(env.config_path)},
        preexec_fn=preexec_fn,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        yield port, process
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr = process.stderr.read() if process.stderr else ""
        assert "Traceback" not in stderr, stderr


def configured(env) -> None:
    env.public_url = PUBLIC
    env.configure(inbound={"max_body": MAX_BODY})


def sms_fields(n: int, body: str = "PO1 ok") -> dict[str, str]:
    return {"MessageSid": f"SM{n:032x}", "From": "+33612345678", "Body": body}


def signed_request(env, fields: dict[str, str], path: str = "/twilio/sms") -> tuple[bytes, str]:
    """A form body and its X-Twilio-Signature, as Twilio signs them for public_url."""
    return urlencode(fields).encode(), compute_signature(
        PUBLIC + path, fields, env.twilio.auth_token
    )


def exchange(
    port: int, data: bytes, timeout: float = 10, hang_up: bool = False
) -> tuple[int, bytes]:
    """Send raw bytes (then stop sending, with `hang_up`), read the answer to its end:
    (status, whole answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if hang_up:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    if not answer:
        return 0, answer  # the server hung up without answering
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1]), answer


def head(length: str | None, signature: str = "x", chunked: bool = False) -> bytes:
    lines = [
        "POST /twilio/sms HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/x-www-form-urlencoded",
        f"X-Twilio-Signature: {signature}",
        "Connection: close",
    ]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(body: bytes, sizes: tuple[int, ...] = (1, 7, 100)) -> bytes:
    out, at, i = b"", 0, 0
    while at < len(body):
        piece = body[at : at + sizes[i % len(sizes)]]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        at, i = at + len(piece), i + 1
    return out + b"0\r\n\r\n"


def spooled(env) -> list[Path]:
    new = env.state_dir / "inbox" / "new"
    return sorted(new.iterdir()) if new.exists() else []


@pytest.mark.parametrize("server", ["gunicorn", "waitress"])
def test_the_shim_runs_under_production_servers(env, server):
    port = free_port()
    env.public_url = "https://x3twilio.example.com"  # TLS ends at the proxy
    env.configure()
    process = subprocess.Popen(
        SERVERS[server](port),
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "X3TWILIO_CONFIG": str(env.config_path)},
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        params = {"MessageSid": "SM" + "2" * 32, "From": "+33612345678", "Body": "PO1 ok?"}
        query = "/twilio/sms?tag=a%20b"
        signature = compute_signature(env.public_url + query, params, env.twilio.auth_token)
        answer = requests.post(
            f"http://127.0.0.1:{port}{query}",
            data=params,
            timeout=5,
            headers={"X-Twilio-Signature": signature},
        )
        assert answer.status_code == 200, answer.text
        forged = requests.post(
            f"http://127.0.0.1:{port}{query}",
            data=params,
            timeout=5,
            headers={"X-Twilio-Signature": "AAAA"},
        )
        assert forged.status_code == 403
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert len(list((env.state_dir / "inbox" / "new").iterdir())) == 1


def test_register_webhooks_points_the_number_at_public_url(env):
    env.public_url = "https://x3twilio.example.com"
    env.configure()
    result = env.run("twilio", "register-webhooks", "--number", env.twilio.phone_number)
    assert "SmsUrl → https://x3twilio.example.com/twilio/sms" in result.stdout
    (number,) = env.twilio.numbers.values()
    assert number["sms_url"] == "https://x3twilio.example.com/twilio/sms"
    assert number["voice_url"] == "https://x3twilio.example.com/twilio/voice"
    assert number["status_callback"] == "https://x3twilio.example.com/twilio/status"
    unknown = env.run("twilio", "register-webhooks", "--number", "+15005550006", expect=69)
    assert "is not a number of account" in unknown.stderr


# -- hostile framing, under every server -----------------------------------------------------


@pytest.mark.parametrize("server", ["gunicorn-threads", "waitress", "serve"])
def test_content_length_chunked_bodies_and_size_limits(env, server):
    configured(env)
    body, signature = signed_request(env, sms_fields(1))
    big, big_signature = signed_request(env, sms_fields(2, "x" * MAX_BODY))
    with running(env, server) as (port, _):
        # a Content-Length that is not a length: 400, never a 500, never a read without end
        for bad in ("abc", "-1", "1e3", " 12 34", "0x10", "99999999999999999999999"):
            status, answer = exchange(port, head(bad, signature) + body)
            assert status in (400, 413), (bad, answer[:200])
            assert status == 400 or bad == "99999999999999999999999", (bad, answer[:200])
        # more than the limit: 413, without waiting for a body that is never sent (waitress
        # buffers a whole body before the shim sees the request: it gets one)
        over = b"x" * (MAX_BODY + 1) if server == "waitress" else b""
        assert exchange(port, head(str(MAX_BODY + 1), signature) + over)[0] == 413
        if server != "waitress":
            assert exchange(port, head("1000000", signature))[0] == 413
        # chunked, validly signed: read whole and spooled (no 403)
        status, answer = exchange(port, head(None, signature, chunked=True) + chunked(body))
        assert status == 200, answer
        # chunked past the limit: 413 after reading at most the limit (one chunk that
        # claims 1 MB, of which only the limit and a little more is ever sent)
        claim = head(None, big_signature, chunked=True) + b"100000\r\n" + big[: MAX_BODY + 10]
        if server == "waitress":  # (which de-chunks a whole body first)
            claim = head(None, big_signature, chunked=True) + chunked(big, (500,))
        assert exchange(port, claim)[0] == 413
        # chunked and torn, chunked with a Content-Length too: 400
        torn = head(None, signature, chunked=True) + b"zz\r\n" + body + b"\r\n0\r\n\r\n"
        assert exchange(port, torn)[0] == 400
        both = head(str(len(body)), signature, chunked=True) + chunked(body)
        # (waitress reads it as chunked, as RFC 9112 allows: the same, already spooled, SMS)
        assert exchange(port, both)[0] in ((200, 400) if server == "waitress" else (400, 501))
        # a body shorter than it said (the client gives up): 400, never spooled
        short = head(str(len(body) + 50), signature) + body
        # (waitress hangs up: it never hands an incomplete body to the application)
        assert exchange(port, short, hang_up=True)[0] == (0 if server == "waitress" else 400)
    files = spooled(env)
    assert len(files) == 1, [f.read_text()[:200] for f in files]
    assert '"Body", "PO1 ok"' in files[0].read_text()


@pytest.mark.parametrize("server", ["gunicorn-threads", "serve"])
def test_a_stalled_request_does_not_hold_up_the_next_one(env, server):
    configured(env)
    slow_body, slow_signature = signed_request(env, sms_fields(3, "slow"))
    body, signature = signed_request(env, sms_fields(4, "quick"))
    with running(env, server) as (port, _):
        slow = socket.create_connection(("127.0.0.1", port), timeout=10)
        slow.sendall(head(str(len(slow_body)), slow_signature) + slow_body[:10])
        time.sleep(0.2)  # the server is now reading the slow body
        started = time.monotonic()
        answers = []

        def quick() -> None:
            answers.append(exchange(port, head(str(len(body)), signature) + body)[0])

        threads = [threading.Thread(target=quick) for _ in range(2)]  # two in parallel
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        elapsed = time.monotonic() - started
        assert answers == [200, 200] and elapsed < 3, (answers, elapsed)
        slow.sendall(slow_body[10:])
        answer = b""
        while chunk := slow.recv(65536):
            answer += chunk
        slow.close()
        assert answer.startswith(b"HTTP/1.") and b" 200 " in answer.split(b"\r\n")[0]
    assert len(spooled(env)) == 2  # slow and quick (the second quick one is a duplicate)


# -- a full disk at the shim -------------------------------------------------------------------

FSIZE = 1500  # no file the shim writes may grow past this many bytes


def small_files() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a killed server
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE, FSIZE))


@pytest.mark.parametrize("server", ["gunicorn-threads", "serve"])
def test_a_payload_that_cannot_be_stored_whole_gets_503_and_nothing_half_stored(env, server):
    configured(env)
    small, small_signature = signed_request(env, sms_fields(5, "short"))
    large, large_signature = signed_request(env, sms_fields(6, "y" * 1400))
    assert len(large) < MAX_BODY  # within the size limit: only the disk refuses it
    with running(env, server, preexec_fn=small_files) as (port, _):
        assert exchange(port, head(str(len(large)), large_signature) + large)[0] == 503
        assert exchange(port, head(str(len(large)), large_signature) + large)[0] == 503
        assert exchange(port, head(str(len(small)), small_signature) + small)[0] == 200
    inbox = env.state_dir / "inbox"
    assert list((inbox / "tmp").iterdir()) == []
    (stored,) = spooled(env)
    assert "short" in stored.read_text()
    assert len(list((inbox / "keys").iterdir())) == 1  # the refused one left no key behind
    with running(env, "serve") as (port, _):  # room again: Twilio's retry is stored, once
        for _ in range(2):
            assert exchange(port, head(str(len(large)), large_signature) + large)[0] == 200
    assert len(spooled(env)) == 2


@pytest.mark.parametrize("name", ["gunicorn-threads", "waitress"])
def test_the_shim_will_not_start_on_a_configuration_it_cannot_load(env, name):
    env.config_path.write_text("x3: {}\n")
    process = subprocess.run(
        SERVERS[name](free_port()),
        env={**os.environ, "X3TWILIO_CONFIG": str(env.config_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode != 0
    assert "the shim cannot start" in process.stderr and "x3.url: required" in process.stderr
