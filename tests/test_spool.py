"""The spool in-process: whole writes or none, one payload shape, de-duplication, retention."""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from pathlib import Path

import pytest

from x3twilio import spool as spool_module
from x3twilio.errors import StateError
from x3twilio.spool import DONE_RETENTION, KEY_RETENTION, Spool
from x3twilio.spool_payload import Unusable, dedupe_key, make_payload, normalise

SID = "SM" + "a" * 32
URL = "https://x3twilio.example.com/twilio/sms"
RECEIVED = "2026-11-27T09:14:00.000Z"


def payload(body: str = "hello", sid: str = SID) -> dict:
    form = f"MessageSid={sid}&From=%2B33612345678&Body={body}".encode()
    return make_payload("sms", RECEIVED, URL, False, form)[0]


def files(root: Path, folder: str) -> list[Path]:
    path = root / "inbox" / folder
    return sorted(path.iterdir()) if path.exists() else []


def leftovers(root: Path) -> dict[str, int]:
    return {f: len(files(root, f)) for f in ("tmp", "new", "keys")}


# -- whole or nothing ----------------------------------------------------------------------


def test_short_writes_are_continued_until_the_payload_is_whole(tmp_path, monkeypatch):
    real_write = os.write
    calls = []

    def dribble(fd: int, data: bytes) -> int:  # the kernel may take less than it is given
        calls.append(len(data))
        return real_write(fd, bytes(data[:7]))

    monkeypatch.setattr(os, "write", dribble)
    stored = payload("x" * 500)
    assert Spool(tmp_path).write(stored, "k1")
    monkeypatch.undo()
    (path,) = files(tmp_path, "new")
    assert json.loads(path.read_bytes()) == stored
    assert len(calls) > 10


@pytest.mark.parametrize(
    "failure",
    [
        "enospc-write",
        "no-progress",
        "efbig-after-short",
        "fsync-eio",
        "no-inode-for-key",
        "erofs",
        "rename-eio",
    ],
)
def test_a_storage_error_raises_and_leaves_nothing_half_stored(tmp_path, monkeypatch, failure):
    spool = Spool(tmp_path)
    real_write, real_open = os.write, os.open
    state = {"writes": 0}

    def write(fd: int, data: bytes) -> int:
        state["writes"] += 1
        if failure == "enospc-write":
            raise OSError(errno.ENOSPC, "No space left on device")
        if failure == "no-progress":
            return 0
        if state["writes"] == 1:  # RLIMIT_FSIZE: a short write, then EFBIG
            return real_write(fd, bytes(data[:10]))
        raise OSError(errno.EFBIG, "File too large")

    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    def rename(src, dst) -> None:  # after the key was taken: the key must go again
        raise OSError(errno.EIO, "Input/output error")

    def open_(path, flags, mode=0o777, **kw):
        if failure == "no-inode-for-key" and "keys" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        if failure == "erofs":
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, mode, **kw)

    for folder in ("new", "tmp", "keys"):  # the folders exist before the failure
        spool._dir(folder)
    if failure in ("enospc-write", "no-progress", "efbig-after-short"):
        monkeypatch.setattr(os, "write", write)
    elif failure == "fsync-eio":
        monkeypatch.setattr(os, "fsync", fsync)
    elif failure == "rename-eio":
        monkeypatch.setattr(os, "rename", rename)
    else:
        monkeypatch.setattr(os, "open", open_)
    with pytest.raises(StateError, match="cannot spool a webhook"):
        spool.write(payload(), "k1")
    monkeypatch.undo()
    assert leftovers(tmp_path) == {"tmp": 0, "new": 0, "keys": 0}
    # the condition passes: Twilio's retry of the same delivery is stored, once
    assert spool.write(payload(), "k1") is True
    assert spool.write(payload(), "k1") is False
    assert leftovers(tmp_path) == {"tmp": 0, "new": 1, "keys": 1}


def test_every_folder_is_0700_and_every_file_0600_even_under_a_lax_umask(tmp_path):
    old = os.umask(0o002)
    try:
        spool = Spool(tmp_path / "state")
        spool.write(payload(), "k1")
        (tmp_path / "state" / "inbox" / "quarantine").mkdir(mode=0o755)  # made by hand
        os.chmod(tmp_path / "state" / "inbox" / "quarantine", 0o755)
        Spool(tmp_path / "state").quarantined()
    finally:
        os.umask(old)
    inbox = tmp_path / "state" / "inbox"
    for path in [inbox, *inbox.iterdir()]:
        if path.is_dir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o700, path.name
    for path in inbox.rglob("*"):
        if path.is_file() and path.name != ".pruned":
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


# -- one shape, de-duplication on what is signed --------------------------------------------


def test_form_and_json_webhooks_are_stored_in_one_shape_with_the_raw_body():
    form = f"MessageSid={SID}&From=%2B33612345678&Body=PO1+ok".encode()
    body = json.dumps({"MessageSid": SID, "From": "+33612345678", "Body": "PO1 ok", "N": 2})
    as_form, _ = make_payload("sms", RECEIVED, URL, False, form)
    as_json, _ = make_payload("sms", RECEIVED, URL, True, body.encode())
    assert as_form["fields"][:3] == [
        ["MessageSid", SID],
        ["From", "+33612345678"],
        ["Body", "PO1 ok"],
    ]
    assert as_json["fields"][:3] == as_form["fields"][:3] and as_json["fields"][3] == ["N", "2"]
    assert as_form["body"] == form.decode() and as_json["body"] == body
    assert normalise(as_form).fields["Body"] == normalise(as_json).fields["Body"] == "PO1 ok"
    binary, _ = make_payload("sms", RECEIVED, URL, False, b"Body=%FF\xff")
    assert "body_base64" in binary and "body" not in binary


def test_dedupe_keys_come_from_signed_content_only():
    def key(fields, body=b"", is_json=False, url=URL):
        return dedupe_key("status", url, fields, body, is_json)

    a = [("MessageSid", SID), ("MessageStatus", "sent")]
    assert key(a) == key([*a, ("ApiVersion", "2010-04-01")])  # same event
    assert key(a) != key([("MessageSid", SID), ("MessageStatus", "delivered")])
    # a JSON webhook without a sid: a hash of the body the signature covers
    j1, j2 = b'{"event": 1}', b'{"event": 2}'
    assert key(None, j1, True) != key(None, j2, True)
    assert key(None, j1, True) == key(None, j1, True)
    # a form without a sid: a hash of URL + fields, as signed
    assert key([("Foo", "1")]) != key([("Foo", "2")])
    assert key([("Foo", "1")]) != key([("Foo", "1")], url=URL + "?x=1")


def test_version_1_payloads_are_still_read_including_a_json_body_stored_as_text():
    v1 = {"route": "sms", "received": RECEIVED, "url": URL, "params": [["MessageSid", SID]]}
    assert normalise(v1).fields == {"MessageSid": SID}
    v1_json = {**v1, "params": json.dumps({"MessageSid": SID, "NumMedia": 0, "X": None})}
    assert normalise(v1_json).fields == {"MessageSid": SID, "NumMedia": "0", "X": ""}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ([1, 2], "bad_shape"),
        ({"route": "fax", "received": RECEIVED}, "unknown_route"),
        ({"route": ["sms"], "received": RECEIVED}, "bad_value"),
        ({"route": "sms", "received": 5, "params": []}, "bad_value"),
        ({"route": "sms", "received": "yesterday", "params": []}, "bad_value"),
        ({"route": "sms", "received": RECEIVED, "params": "Body=hi"}, "not_an_object"),
        ({"route": "sms", "received": RECEIVED, "params": [["MessageSid", 5]]}, "bad_value"),
        ({"route": "sms", "received": RECEIVED, "params": [["a", "b", "c"]]}, "bad_value"),
        ({"route": "sms", "received": RECEIVED, "params": {"Body": ["x"]}}, "bad_value"),
        ({"v": 2, "route": "sms", "received": RECEIVED, "fields": None}, "bad_value"),
        (
            {"v": 2, "route": "sms", "received": RECEIVED, "format": "json", "fields": None},
            "not_an_object",
        ),
        ({"v": 9, "route": "sms", "received": RECEIVED, "fields": []}, "bad_shape"),
        ({"route": "sms", "received": RECEIVED, "url": 3, "params": []}, "bad_value"),
    ],
)
def test_payloads_that_cannot_be_processed_say_why(raw, code):
    with pytest.raises(Unusable) as caught:
        normalise(raw)
    assert caught.value.code == code


def test_loading_never_raises_whatever_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_module, "MAX_ITEM_BYTES", 4096)
    spool = Spool(tmp_path)
    new = spool._dir("new")
    (new / "1.empty.json").write_bytes(b"")
    (new / "2.binary.json").write_bytes(b"\x00\xff\xfe garbage")
    (new / "3.torn.json").write_bytes(json.dumps(payload()).encode()[:40])
    (new / "4.deep.json").write_bytes(b"[" * 4000)
    (new / "5.big.json").write_bytes(b" " * (spool_module.MAX_ITEM_BYTES + 1))
    (new / "6.dir.json").mkdir()
    (new / "7.good.t3.json").write_text(json.dumps(payload()))
    loaded = {item.name: item for item in spool.claim()}
    codes = {name: item.problem.code if item.problem else None for name, item in loaded.items()}
    assert codes == {
        "1.empty.json": "empty",
        "2.binary.json": "not_json",
        "3.torn.json": "truncated",
        "4.deep.json": "truncated",
        "5.big.json": "too_large",
        "6.dir.json": "unreadable",
        "7.good.t3.json": None,
    }
    assert loaded["7.good.t3.json"].attempts == 3
    assert loaded["7.good.t3.json"].base == "7.good.json"


def test_a_torn_payload_left_in_tmp_is_published_for_ingest_to_quarantine(tmp_path):
    spool = Spool(tmp_path)
    torn = spool._dir("tmp") / "1.1.abcd.json"
    torn.write_bytes(b'{"route": "sms", "rec')
    fresh = spool._dir("tmp") / "2.1.abcd.json"
    fresh.write_bytes(b'{"route": "sms"')  # being written right now: left alone
    os.utime(torn, (time.time() - 120, time.time() - 120))
    (item,) = spool.claim()
    assert item.name == "1.1.abcd.json" and item.problem and item.problem.code == "truncated"
    assert fresh.exists()


# -- retention -----------------------------------------------------------------------------


def test_done_payloads_and_keys_are_pruned_after_their_retention_quarantine_never(tmp_path):
    spool = Spool(tmp_path)
    spool.write(payload(sid="SM" + "1" * 32), "old")
    spool.write(payload(sid="SM" + "2" * 32), "new")
    items = {json.loads(i.path.read_text())["fields"][0][1]: i for i in spool.claim()}
    old_done = spool.finish(items["SM" + "1" * 32], "done")
    new_done = spool.finish(items["SM" + "2" * 32], "done")
    quarantined = spool._dir("quarantine") / "q.json"
    quarantined.write_text("{}")
    now = time.time()
    ancient = now - max(DONE_RETENTION, KEY_RETENTION) - 60
    for path in (old_done, quarantined, *files(tmp_path, "keys")[:1]):
        os.utime(path, (ancient, ancient))
    assert spool.prune(now) == 2  # the old done/ payload and one key
    assert not old_done.exists() and new_done.exists() and quarantined.exists()
    assert len(files(tmp_path, "keys")) == 1
    os.utime(new_done, (ancient, ancient))
    assert spool.prune(now + 60) == 0  # at most once per PRUNE_EVERY
    assert spool.prune(now + 60, force=True) == 1
