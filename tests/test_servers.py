"""The shim under the production servers it is meant for, and `register-webhooks`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

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
    "waitress": lambda port: [
        str(BIN / "waitress-serve"),
        f"--listen=127.0.0.1:{port}",
        "x3twilio.wsgi:application",
    ],
}


@pytest.mark.parametrize("server", sorted(SERVERS))
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
