"""Hostile inbound: poison spool items, a failing X3, odd requests, a full or read-only disk.

Real files, real HTTP on loopback, the real CLI in subprocesses. What is checked every time:
no exit 70, no traceback, no 5xx but a deliberate 503, no good item lost or logged twice, and
every item set aside is in quarantine/ with an `inbound.failed` record saying why.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import secrets
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Env
from tests.test_poll import HISTORY, ONLY_PO_APPROVED
from tests.test_servers import PUBLIC, chunked, configured, exchange, running
from x3twilio.signature import compute_signature

FR001_MOBILE = "+33612345678"  # FR001's head office number: its replies land on FR001
RECEIVED = "2026-11-27T09:14:00.000Z"


# -- helpers -------------------------------------------------------------------------------


def folder(env: Env, name: str) -> list[Path]:
    path = env.state_dir / "inbox" / name
    return sorted(path.iterdir()) if path.exists() else []


def spool_name(tag: str) -> str:
    """A name like the shim's (time first: it sorts where it was written)."""
    return f"{time.time_ns()}.0.{tag}.json"


def put(env: Env, tag: str, content: bytes | dict | list | None) -> str:
    """Drop a file into inbox/new as if spooled; None makes a directory."""
    new = env.state_dir / "inbox" / "new"
    new.mkdir(parents=True, exist_ok=True)
    name = spool_name(tag)
    if content is None:
        (new / name).mkdir()
    else:
        data = content if isinstance(content, bytes) else json.dumps(content).encode()
        (new / name).write_bytes(data)
    return name


def v2(route: str, fields: Any, **extra: Any) -> dict[str, Any]:
    return {
        "v": 2,
        "route": route,
        "received": RECEIVED,
        "url": f"{PUBLIC}/twilio/{route}",
        "format": "form",
        "fields": fields,
        **extra,
    }


def sid(n: int, prefix: str = "SM") -> str:
    return f"{prefix}{n:032x}"


def sms_fields(env: Env, n: int, body: str | None = None) -> dict[str, str]:
    return {
        "MessageSid": sid(n),
        "AccountSid": env.twilio.account_sid,
        "From": FR001_MOBILE,
        "To": env.twilio.phone_number,
        "Body": body if body is not None else f"PO{n} ok #{n}",
    }


def post_sms(env: Env, url: str, fields: dict[str, str]) -> requests.Response:
    signature = compute_signature(f"{url}/twilio/sms", fields, env.twilio.auth_token)
    return requests.post(
        f"{url}/twilio/sms", data=fields, headers={"X-Twilio-Signature": signature}, timeout=5
    )


def logged(env: Env) -> Counter[str]:
    """How many times each sid was logged in X3 (the YSMSLOG records of the example)."""
    return Counter(r["MSGSID"] for r in env.x3.records("YSMSLOG"))


def quarantine_records(env: Env) -> dict[str, dict]:
    return {
        r["spool"].removeprefix("quarantine/"): r
        for r in env.audit()
        if r["event"] == "inbound.failed" and r.get("reason") == "quarantined"
    }


def ingest(env: Env, expect: int | None = None) -> subprocess.CompletedProcess[str]:
    process = env.popen("ingest")
    out, err = process.communicate(timeout=120)
    result = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    assert result.returncode in (0, 1), f"exit {result.returncode}\n{out}\n{err}"
    assert "Traceback" not in out + err, err
    if expect is not None:
        assert result.returncode == expect, f"exit {result.returncode}\n{out}\n{err}"
    return result


def assert_no_secret(env: Env, *outputs: str) -> None:
    secrets_ = [env.twilio.auth_token, env.x3.password]
    for path in env.state_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in secrets_), path.name
    for text in outputs:
        assert not any(s in text for s in secrets_)


def assert_spool_settled(env: Env) -> None:
    """Nothing waits, nothing is half-claimed, and every quarantined file is audited."""
    assert folder(env, "new") == [] and folder(env, "cur") == [] and folder(env, "tmp") == []
    audited = quarantine_records(env)
    assert {p.name for p in folder(env, "quarantine")} <= set(audited)


# -- one bad item beside 100 good ones -----------------------------------------------------


def bad_items(env: Env) -> dict[str, tuple[bytes | dict | list | None, str]]:
    """Items that can never be processed, each with the error code it must be audited with."""
    good = v2("sms", [[k, v] for k, v in sms_fields(env, 9999).items()])
    return {
        "truncated": (json.dumps(good).encode()[:70], "truncated"),
        "empty": (b"", "empty"),
        "non-json": (b"MessageSid=SM1&Body=\xff\xfe hello", "not_json"),
        "params-string": (
            {"route": "sms", "received": RECEIVED, "url": "", "params": "MessageSid=SM1&Body=x"},
            "not_an_object",
        ),
        "json-array": ([["MessageSid", sid(1)]], "bad_shape"),
        "unknown-route": (v2("fax", [["MessageSid", sid(2)]]), "unknown_route"),
        "wrong-typed-value": (v2("sms", [["MessageSid", 12345], ["From", ["+33"]]]), "bad_value"),
        "wrong-typed-received": (
            {"route": "sms", "received": 1764000000, "params": [["MessageSid", sid(3)]]},
            "bad_value",
        ),
        "route-not-text": ({**good, "route": ["sms"]}, "bad_value"),
        "no-sid": (v2("sms", [["From", FR001_MOBILE], ["Body", "hi"]]), "missing_field"),
        "sid-not-a-sid": (v2("sms", [["MessageSid", "SM 1; DROP"], ["From", "x"]]), "bad_value"),
        "error-code-not-a-number": (
            v2(
                "status", [["MessageSid", sid(4)], ["MessageStatus", "failed"], ["ErrorCode", "3x"]]
            ),
            "bad_value",
        ),
        "json-body-not-an-object": (
            v2("status", None, format="json", body="[1, 2]"),
            "not_an_object",
        ),
        "a-directory": (None, "unreadable"),
    }


def test_bad_items_of_every_kind_beside_100_good_ones_cost_only_themselves(env, shim):
    bad = bad_items(env)
    kinds = list(bad)
    names: dict[str, str] = {}
    for n in range(100):
        assert post_sms(env, shim.url, sms_fields(env, n)).status_code == 200
        if n % 7 == 3 and kinds:  # bad items between the good ones, the first one early
            kind = kinds.pop(0)
            names[put(env, kind, bad[kind][0])] = kind
    # as the shim of the previous version stored them: pairs, and a JSON body as text
    legacy = sms_fields(env, 500)
    names_good = [
        put(
            env, "v1-pairs", {"route": "sms", "received": RECEIVED, "params": list(legacy.items())}
        ),
        put(
            env,
            "v1-json-text",
            {"route": "sms", "received": RECEIVED, "params": json.dumps(sms_fields(env, 501))},
        ),
    ]
    assert not kinds and len(names) == len(bad) and names_good

    first = ingest(env, expect=1)  # some inbound items failed: in the trail, for replay
    counts = logged(env)
    assert set(counts) == {sid(n) for n in [*range(100), 500, 501]}
    assert set(counts.values()) == {1}
    assert "PO0 ok #0" in env.notes("FR001") and "PO501 ok #501" in env.notes("FR001")
    records = quarantine_records(env)
    assert {p.name for p in folder(env, "quarantine")} == set(names)
    for name, kind in names.items():
        record = records[name]
        assert record["error"]["code"] == bad[kind][1], (kind, record)
        assert record["error"]["permanent"] is True and record["error"]["message"]
        assert record["status"] == "failed" and "body" not in record  # never the payload
    assert records[next(n for n, k in names.items() if k == "error-code-not-a-number")][
        "id"
    ] == sid(4)
    assert_spool_settled(env)
    found = env.run("audit", "--status", "failed", "--format", "json").stdout.splitlines()
    assert len(found) == len(bad)  # what a person looks for finds every one of them

    audit_before = len(env.audit())
    second = ingest(env, expect=0)  # nothing is processed again
    assert logged(env) == counts
    events = [r["event"] for r in env.audit()[audit_before:]]
    assert events == ["run.started", "run.finished"]
    assert {p.name for p in folder(env, "quarantine")} == set(names)
    assert_no_secret(env, first.stdout, first.stderr, second.stdout, second.stderr)


@pytest.mark.parametrize(
    "kind",
    ["truncated", "empty", "non-json", "params-string", "unknown-route", "wrong-typed-value"],
)
def test_one_bad_item_at_the_head_of_the_spool_never_holds_up_the_rest(env, shim, kind):
    content, code = bad_items(env)[kind]
    name = put(env, kind, content)
    for n in range(5):
        post_sms(env, shim.url, sms_fields(env, n))
    ingest(env, expect=1)
    assert set(logged(env)) == {sid(n) for n in range(5)}
    assert quarantine_records(env)[name]["error"]["code"] == code
    ingest(env, expect=0)
    assert sum(logged(env).values()) == 5


# -- transient failures: retried, never blocking, bounded ------------------------------------


FAST_RETRY = {"attempts": 2, "initial": "0.05s", "max": "0.1s", "budget": "5s"}


def test_an_item_x3_keeps_failing_is_retried_behind_the_others_then_quarantined(env, shim):
    env.configure(retry=FAST_RETRY)
    poison = sid(77)
    post_sms(env, shim.url, sms_fields(env, 77, "PO77 stuck"))  # the oldest item
    for n in range(3):
        post_sms(env, shim.url, sms_fields(env, n))
    env.x3.faults.add("503", match=poison, times=0)  # X3 fails on this item only
    ingest(env, expect=1)
    assert set(logged(env)) == {sid(n) for n in range(3)}
    (waiting,) = folder(env, "new")
    assert waiting.name.endswith(".t1.json")  # one attempt, counted: X3 answered the others
    failed = [r for r in env.audit() if r["event"] == "inbound.failed"]
    assert [r["id"] for r in failed] == [poison] and failed[0]["error"]["permanent"] is False

    # nine runs later (the count is in the name): the tenth attempt quarantines it
    waiting.rename(waiting.with_name(waiting.name.replace(".t1.", ".t9.")))
    for n in range(3, 5):
        post_sms(env, shim.url, sms_fields(env, n))
    ingest(env, expect=1)
    assert set(logged(env)) == {sid(n) for n in range(5)}
    (quarantined,) = folder(env, "quarantine")
    record = quarantine_records(env)[quarantined.name]
    assert record["id"] == poison and record["error"]["code"] == "retries_exhausted"
    assert record["from"] == FR001_MOBILE and record["channel"] == "sms"
    assert_spool_settled(env)

    # X3 fixed: replay brings it back, and it lands once
    env.x3.faults.clear()
    env.run("replay")
    assert logged(env)[poison] == 1 and folder(env, "quarantine") == []
    (landed,) = [r for r in env.audit() if r["event"] == "inbound.logged" and r["id"] == poison]
    assert landed["replay_of"] == poison
    assert_spool_settled(env)


def test_while_x3_is_down_nothing_is_counted_against_items_but_age_bounds_them(env, shim):
    env.configure(retry=FAST_RETRY)
    for n in range(4):
        post_sms(env, shim.url, sms_fields(env, n))
    env.x3.faults.add("503", match="", times=0)  # X3 answers nothing
    ingest(env, expect=1)
    waiting = folder(env, "new")
    assert len(waiting) == 4 and not any(".t" in p.name for p in waiting)  # nothing counted
    assert folder(env, "quarantine") == []

    old = waiting[0]  # spooled four days ago, X3 still down: quarantined, the others wait
    os.utime(old, (time.time() - 4 * 86400, time.time() - 4 * 86400))
    ingest(env, expect=1)
    (quarantined,) = folder(env, "quarantine")
    assert quarantined.name == old.name
    assert quarantine_records(env)[old.name]["error"]["code"] == "retries_exhausted"
    assert len(folder(env, "new")) == 3

    env.x3.faults.clear()
    ingest(env, expect=0)
    assert set(logged(env)) == {sid(n) for n in range(1, 4)}
    env.run("replay", "--id", sid(0))
    assert set(logged(env)) == {sid(n) for n in range(4)}
    assert_spool_settled(env)


def test_x3_refusing_the_credentials_stops_ingest_with_69_and_costs_no_item(env, shim):
    for n in range(3):
        post_sms(env, shim.url, sms_fields(env, n))
    env.configure(x3=env.wrong_credentials())
    result = env.run("ingest", expect=69)
    assert "credentials refused" in result.stderr and "Traceback" not in result.stderr
    assert len(folder(env, "new")) + len(folder(env, "cur")) == 3
    assert folder(env, "failed") == [] and folder(env, "quarantine") == []
    env.configure()
    ingest(env, expect=0)
    assert set(logged(env)) == {sid(n) for n in range(3)}
    assert_spool_settled(env)
    assert_no_secret(env, result.stdout, result.stderr)


def test_replay_quarantines_again_what_still_cannot_be_processed(env, shim):
    name = put(env, "unknown-route", v2("fax", [["MessageSid", sid(5)]]))
    ingest(env, expect=1)
    assert len(quarantine_records(env)) == 1
    result = env.run("replay", "--dry-run")
    assert name in result.stdout
    env.run("replay", expect=1)
    records = [r for r in env.audit() if r.get("reason") == "quarantined"]
    assert len(records) == 2 and [p.name for p in folder(env, "quarantine")] == [name]
    assert records[0]["id"] == sid(5)  # the sid it holds, though its route is unknown
    assert "replay_of" not in records[0] and records[1]["replay_of"] == sid(5)


# -- storage failures at the shim (in-process shim, real files) ------------------------------


def send(env: Env, url: str, n: int) -> int:
    return post_sms(env, url, sms_fields(env, n)).status_code


def test_a_spool_folder_that_cannot_be_made_answers_503_and_stores_nothing(env, shim):
    inbox = env.state_dir / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "tmp").write_text("not a folder")  # an operator's slip
    assert send(env, shim.url, 1) == 503
    assert folder(env, "new") == [] and folder(env, "keys") == []
    (inbox / "tmp").unlink()  # fixed: the next delivery makes it, no restart needed
    assert send(env, shim.url, 1) == 200 and send(env, shim.url, 1) == 200
    assert len(folder(env, "new")) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_spool_answers_503(env, shim):
    assert send(env, shim.url, 1) == 200
    new = env.state_dir / "inbox" / "new"
    os.chmod(new, 0o500)
    try:
        assert send(env, shim.url, 2) == 503
        assert len(folder(env, "new")) == 1 and folder(env, "tmp") == []
    finally:
        os.chmod(new, 0o700)
    assert send(env, shim.url, 2) == 200 and len(folder(env, "new")) == 2


@pytest.fixture
def small_inbox(env: Env) -> Iterator[Path]:
    """inbox/ on a tmpfs of its own: 256 KiB and 64 inodes (needs the right to mount)."""
    inbox = env.state_dir / "inbox"
    inbox.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,nr_inodes=64,mode=0700", "tmpfs", str(inbox)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        yield inbox
    finally:
        subprocess.run(["umount", "-l", str(inbox)], capture_output=True, check=False)


def fill(path: Path, make_files: bool) -> list[Path]:
    """Use up the space (one file growing) or the inodes (empty files) of a filesystem."""
    made = []
    with contextlib.suppress(OSError):
        if make_files:
            for n in range(1000):
                (path / f"f{n}").touch()
                made.append(path / f"f{n}")
        else:
            made.append(path / "filler")
            with (path / "filler").open("wb") as handle:
                while True:
                    handle.write(b"\0" * 4096)
                    handle.flush()
    return made


@pytest.mark.parametrize("trouble", ["no-space", "no-inodes", "read-only"])
def test_a_full_or_read_only_disk_answers_503_and_the_retry_is_stored_whole(
    env, shim, small_inbox, trouble
):
    assert send(env, shim.url, 1) == 200  # the folders exist
    if trouble == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", str(small_inbox)], check=True)
        made: list[Path] = []
    else:
        made = fill(small_inbox, make_files=trouble == "no-inodes")
    try:
        for _ in range(3):
            assert send(env, shim.url, 2) == 503
        assert len(folder(env, "new")) == 1 and folder(env, "tmp") == []
        assert len(folder(env, "keys")) == 1  # no key: Twilio's retry is not a "duplicate"
    finally:
        if trouble == "read-only":
            subprocess.run(["mount", "-o", "remount,rw", str(small_inbox)], check=True)
        for path in made:
            path.unlink()
    assert send(env, shim.url, 2) == 200 and send(env, shim.url, 2) == 200
    stored = [json.loads(p.read_text()) for p in folder(env, "new")]
    assert sorted(dict(s["fields"])["MessageSid"] for s in stored) == [sid(1), sid(2)]


# -- a seeded loop of hostile input ----------------------------------------------------------


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "int", "float", "bool", "null", "list", "dict"] if depth < 3 else ["str"]
    kind = rng.choice(kinds)
    if kind == "str":
        return rng.choice(["", "sms", "x" * rng.randint(1, 300), "é🙂\u202e", "SM" + "0" * 32])
    if kind == "int":
        return rng.choice([0, -1, 2**70, 7])
    if kind == "float":
        return rng.choice([0.5, 1e308, -0.0])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {
        rng.choice(["route", "received", "params", "fields", "v", "url", "format", "x"]): (
            random_json(rng, depth + 1)
        )
        for _ in range(rng.randint(0, 5))
    }


ODD_NAMES = (
    "MessageSid",
    "CallSid",
    "MessageStatus",
    "CallStatus",
    "ErrorCode",
    "From",
    "To",
    "Body",
    "RecordingUrl",
    "RecordingStatus",
    "RecordingSid",
    "TranscriptionText",
    "TranscriptionStatus",
    "SequenceNumber",
)
ODD_TEXT = ("", "3x", "-1", "1e3", "\x00", "ÿ", "x" * 300, "9" * 30, "completed", "delivered")


def odd_fields(rng: random.Random, known: list[str]) -> list[list[str]]:
    """Fields Twilio names, with text of every odd kind; sids of real messages among them."""
    fields = []
    for name in rng.sample(ODD_NAMES, rng.randint(1, len(ODD_NAMES))):
        if name.endswith("Sid") and known and rng.random() < 0.6:
            fields.append([name, rng.choice(known)])
        else:
            fields.append([name, rng.choice(ODD_TEXT)])
    return fields


def hostile_file(
    rng: random.Random, env: Env, good: dict[str, str], known: list[str]
) -> bytes | dict | list:
    """A spool file of an odd shape; a few are good (their sid then goes into `good`)."""
    roll = rng.random()
    if roll < 0.2:  # Twilio's field names, odd text, sids of messages that were sent
        return v2(
            rng.choice(["sms", "status", "voice", "recording", "transcription"]),
            odd_fields(rng, known),
        )
    roll = rng.random()
    base = v2("sms", [[k, v] for k, v in sms_fields(env, rng.randint(0, 10**9)).items()])
    if roll < 0.15:  # good: a reply with an odd but valid text
        n = 10**6 + len(good)
        text = rng.choice(["", "PO1 ✓", "a" * 1500, "é🙂\u202e RTL", "{text} %s {0}"])
        fields = sms_fields(env, n, text)
        good[fields["MessageSid"]] = text
        return v2("sms", [[k, v] for k, v in fields.items()])
    if roll < 0.3:
        return random_json(rng)
    if roll < 0.45:  # a good payload with one member replaced by something odd
        mutated = dict(base)
        mutated[rng.choice(list(base))] = random_json(rng)
        return mutated
    if roll < 0.55:
        data = json.dumps(base).encode()
        return data[: rng.randint(0, len(data) - 1)]
    if roll < 0.65:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
    if roll < 0.7:
        return b"[" * rng.randint(1000, 50000)
    if roll < 0.8:  # well-formed, of another route, sids nobody knows
        route = rng.choice(["status", "voice", "recording", "transcription"])
        fields = [
            ["MessageSid" if route == "status" else "CallSid", sid(rng.randint(0, 99), "CA")],
            ["MessageStatus", rng.choice(["sent", "delivered", "bogus"])],
            ["RecordingUrl", "https://api.twilio.com/x"],
            ["TranscriptionStatus", "completed"],
            ["TranscriptionText", "hello"],
        ]
        return v2(route, fields)
    if roll < 0.9:  # fields with odd kinds or sizes
        fields = [["MessageSid", sid(rng.randint(0, 99))], ["From", FR001_MOBILE]]
        fields.append(rng.choice([["Body", "x" * 70000], ["Body", 5], ["Body"], "Body"]))
        return v2("sms", fields)
    return {"route": "sms", "received": RECEIVED, "params": random_json(rng)}


def hostile_request(
    rng: random.Random, env: Env, good: dict[str, str], n: int
) -> tuple[bytes, set[int]]:
    """Raw bytes of one odd request and the answers it may get."""
    token = env.twilio.auth_token
    roll = rng.random()
    if roll < 0.2:  # good: validly signed, as a form or a JSON body, maybe chunked
        fields = sms_fields(env, 2 * 10**6 + n, rng.choice(["PO9 ok", "ça va ✓", ""]))
        good[fields["MessageSid"]] = fields["Body"]
        if rng.random() < 0.5:
            body = json.dumps(fields).encode()
            path = f"/twilio/sms?bodySHA256={hashlib.sha256(body).hexdigest()}"
            signature = compute_signature(PUBLIC + path, body, token)
            ctype = "application/json"
        else:
            from urllib.parse import urlencode

            body = urlencode(fields).encode()
            path, ctype = "/twilio/sms", "application/x-www-form-urlencoded"
            signature = compute_signature(PUBLIC + path, fields, token)
        framing = chunked(body) if rng.random() < 0.5 else body
        length = "" if framing is not body else f"Content-Length: {len(body)}\r\n"
        te = "Transfer-Encoding: chunked\r\n" if framing is not body else ""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {ctype}\r\n"
            f"X-Twilio-Signature: {signature}\r\n{length}{te}\r\n"
        )
        return head.encode() + framing, {200}
    method = rng.choice(["POST", "POST", "POST", "GET", "PUT", "DELETE"])
    path = rng.choice(
        ["/twilio/sms", "/twilio/status", "/twilio/voice", "/twilio/nope", "/", "/twilio/sms?a=%zz"]
    )
    body = rng.choice(
        [
            b"",
            b"MessageSid=SM1&Body=hi",
            bytes(rng.getrandbits(8) for _ in range(64)),
            b"%" * 100,
            b"a=" + b"b&" * 3000,
            json.dumps(random_json(rng)).encode(),
            b"[" * 1900,  # nested deeper than a parser's stack (within max_body)
        ]
    )
    headers = [f"{method} {path} HTTP/1.1", "Host: x", "Connection: close"]
    headers.append(rng.choice(["Content-Type: application/json", "Content-Type: text/plain", ""]))
    if rng.random() < 0.5:
        headers.append(f"X-Twilio-Signature: {rng.choice(['', 'AAAA', secrets.token_hex(8)])}")
    framing = rng.random()
    if framing < 0.6:
        headers.append(f"Content-Length: {len(body)}")
        data = body
    elif framing < 0.75:
        headers.append("Transfer-Encoding: chunked")
        data = chunked(body) if body else b"0\r\n\r\n"
    else:
        headers.append(f"Content-Length: {rng.choice(['abc', '-1', '', '1e3'])}")
        data = b""
    raw = ("\r\n".join(h for h in headers if h) + "\r\n\r\n").encode() + data
    return raw, {200, 204, 400, 403, 404, 405, 411, 413}


@pytest.mark.parametrize("server", ["gunicorn-threads", "serve"])
def test_a_seeded_loop_of_hostile_input_crashes_nothing_and_loses_nothing(env, server):
    configured(env)  # public_url as behind the proxy; inbound.max_body 2000
    rng = random.Random(f"x3twilio-hostile-{server}")
    env.configure(rules=ONLY_PO_APPROVED)
    env.run("poll", "--since", HISTORY, expect=1)  # (one supplier's number is refused)
    known = [m["sid"] for m in env.twilio.messages]  # status callbacks about them land
    assert len(known) > 5
    good_files: dict[str, str] = {}
    good_requests: dict[str, str] = {}
    for _ in range(300):
        put(env, "hostile", hostile_file(rng, env, good_files, known))
    answers: Counter[int] = Counter()
    with running(env, server) as (port, _):
        for n in range(150):
            raw, allowed = hostile_request(rng, env, good_requests, n)
            status, answer = exchange(port, raw)
            answers[status] += 1
            assert status in allowed, (raw[:300], answer[:300])
    assert answers[200] >= len(good_requests) > 10

    first = ingest(env)
    second = ingest(env, expect=0)
    counts = logged(env)
    good = {**good_files, **good_requests}
    assert len(good) > 40
    missing = [s for s in good if counts[s] != 1]
    assert missing == [], (len(missing), missing[:5])
    assert_spool_settled(env)
    assert len(folder(env, "quarantine")) > 100  # most hostile files were set aside
    assert_no_secret(env, first.stdout, first.stderr, second.stdout, second.stderr)
