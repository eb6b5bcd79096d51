"""State is sacred: a lost watermark or outbox stops the poll with the fix, state errors have
their sysexits codes, and garbage from X3 never moves a watermark or leaks credentials."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Env
from tests.test_poll import ONLY_PO_APPROVED, approve_one_fr001_order
from x3twilio.config import load_config
from x3twilio.decoding import stamp_literal
from x3twilio.pipeline import Poller
from x3twilio.simulators import serve
from x3twilio.x3.base import Page


def sent_once(env: Env) -> None:
    bodies = [m["body"] for m in env.twilio.messages]
    assert bodies and len(bodies) == len(set(bodies)), bodies


def test_a_lost_watermark_stops_the_poll_with_the_since_to_use(env: Env):
    order = approve_one_fr001_order(env)
    (env.state_dir / "watermarks.json").unlink()
    result = env.run("poll", expect=74)
    assert "no watermark for purchase_orders" in result.stderr
    since = result.stderr.split("poll --since ")[1].split("`")[0]
    env.run("poll", "--since", since)  # the order approved meanwhile is not skipped
    assert [m["body"].split()[1] for m in env.twilio.messages] == [order]
    env.run("poll")  # and the watermark is back
    assert len(env.twilio.messages) == 1


def test_a_lost_outbox_stops_the_poll_until_it_is_rebuilt_and_nothing_goes_twice(env: Env):
    env.configure(rules=ONLY_PO_APPROVED)
    env.run("poll", "--since", "2020-01-01T00:00:00Z", expect=1)  # US005 fails: 21211
    sent = len(env.twilio.messages)
    (env.state_dir / "outbox.sqlite3").unlink()
    for suffix in ("-wal", "-shm"):
        (env.state_dir / f"outbox.sqlite3{suffix}").unlink(missing_ok=True)
    assert "x3twilio state rebuild" in env.run("poll", expect=74).stderr
    rebuilt = env.run("state", "rebuild").stdout
    assert f"{sent} sent" in rebuilt and "1 failed" in rebuilt
    env.run("poll", "--since", "2020-01-01T00:00:00Z")
    assert len(env.twilio.messages) == sent  # nothing was sent again
    sent_once(env)
    env.run("replay")  # the permanent failure stays failed: replay does not resend it
    assert len(env.twilio.messages) == sent


def test_an_emptied_outbox_is_lost_state_too(env: Env):
    approve_one_fr001_order(env)
    env.run("poll")
    db = sqlite3.connect(env.state_dir / "outbox.sqlite3")
    with db:
        db.execute("DELETE FROM notifications")
        db.execute("DELETE FROM seen")
    db.close()
    assert "missing or empty" in env.run("poll", expect=74).stderr


def test_a_first_run_starts_from_now_and_a_new_rule_on_a_new_source_too(env: Env):
    env.configure(rules=ONLY_PO_APPROVED)
    env.run("poll")
    env.run("poll")
    rules = [*ONLY_PO_APPROVED, {**ONLY_PO_APPROVED[0], "name": "pay", "source": "payments",
             "when": {"direction": "outgoing"}, "message": "Paid {payment_number}"}]  # fmt: skip
    env.configure(rules=rules)
    env.run("poll")  # payments was never polled here: it starts from now, no stop


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'{"version": 1, "sources": []}', b'{"version": 1, "sources": {"a": 3}}'],
)
def test_a_corrupt_watermark_file_is_74_with_its_path(env: Env, content: bytes):
    env.configure(rules=ONLY_PO_APPROVED)
    env.run("poll")
    (env.state_dir / "watermarks.json").write_bytes(content)
    result = env.run("poll", expect=74)
    assert "watermarks.json" in result.stderr and "Traceback" not in result.stderr


def test_a_corrupt_outbox_is_74_and_names_the_rebuild(env: Env):
    env.state_dir.mkdir(mode=0o700)
    (env.state_dir / "outbox.sqlite3").write_bytes(b"not a database" * 100)
    result = env.run("poll", expect=74)
    assert "outbox.sqlite3" in result.stderr and "state rebuild" in result.stderr


def test_a_state_dir_that_cannot_be_created_is_73(env: Env, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = env.run("--state-dir", str(blocker / "state"), "poll", expect=73)
    assert "cannot create" in result.stderr


@pytest.mark.parametrize("content", [b"{", b"[1]", b'{"version": 2, "numbers": []}',
                                     b'{"version": 2, "built": "x", "numbers": {}}'])  # fmt: skip
def test_a_corrupt_phonebook_is_rebuilt_from_x3(env: Env, shim, content: bytes):
    env.state_dir.mkdir(mode=0o700)
    (env.state_dir / "phonebook.json").write_bytes(content)
    env.twilio.send_incoming_sms(f"{shim.url}/twilio/sms", "+33612345678", "PO1 ok")
    env.run("ingest")
    assert "PO1 ok" in env.notes("FR001")


# -- what X3 sends cannot hurt ----------------------------------------------------------------


@pytest.fixture
def elsewhere() -> Iterator[Any]:
    """Another server, recording whatever reaches it (credentials included)."""
    seen: list[dict[str, str]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append({"auth": environ.get("HTTP_AUTHORIZATION", "")})
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"$resources": [{"POHNUM": "FAKE"}]}']

    with serve(app) as server:
        server.seen = seen  # type: ignore[attr-defined]
        yield server


def test_a_next_page_on_another_host_is_refused_and_never_given_credentials(env: Env, elsewhere):
    env.configure(rules=ONLY_PO_APPROVED, x3={"page_size": 1})
    env.x3.links_base = elsewhere.url
    result = env.run("poll", "--since", "2020-01-01T00:00:00Z", expect=69)
    assert "not at x3.url" in result.stderr and "it was not followed" in result.stderr
    assert elsewhere.seen == []
    assert env.twilio.messages == [] and not (env.state_dir / "watermarks.json").exists()


class FutureX3:
    """An X3 client whose change query also returns a record stamped in 2099."""

    def __init__(self, now: datetime, rows: list[dict[str, Any]]) -> None:
        self.now, self.rows = now, rows

    def server_time(self, source: Any) -> datetime:
        return self.now

    def changes(self, source: Any, lo: datetime, hi: datetime) -> Iterator[Page]:
        yield Page(self.rows, self.now)


def test_a_change_stamp_from_the_future_never_moves_the_watermark(env: Env):
    env.configure(rules=[{**ONLY_PO_APPROVED[0], "to": ["+33612000001"]}])
    config = load_config(env.config_path, env={})
    now = datetime.now(UTC).replace(microsecond=0)
    good = stamp_literal(now - timedelta(seconds=5))
    row = {"POHNUM": "PO1", "BPSNUM": "FR001", "APPFLG": 3, "CLEFLG": False, "CUR": "EUR",
           "TOTORD": 10.0, "EXTRCPDAT1": now.date().isoformat(), "RCPFLG": 1}  # fmt: skip
    rows = [
        {**row, "UPDDATTIM": good},
        {**row, "POHNUM": "PO2", "UPDDATTIM": "2099-01-01T00:00:00Z"},
    ]
    Poller(config, x3=FutureX3(now, rows), since=now - timedelta(hours=1)).run()  # type: ignore[arg-type]
    marks = json.loads((env.state_dir / "watermarks.json").read_text())
    assert marks["sources"]["purchase_orders"]["wm"] == good
    (rejected,) = [r for r in env.audit() if r["event"] == "record.rejected"]
    assert rejected["record"] == "PO2" and "after X3's clock" in rejected["error"]
    assert [m["body"].split()[1] for m in env.twilio.messages] == ["PO1"]
    assert os.stat(env.state_dir / "watermarks.json").st_mode & 0o777 == 0o600


def test_a_source_read_only_for_due_dates_has_no_watermark_to_lose(env: Env):
    env.configure()  # the example: open items are read only by due-date rules
    env.run("poll")
    env.run("poll")
    assert "open_items" not in env.watermarks().get("sources", {})
