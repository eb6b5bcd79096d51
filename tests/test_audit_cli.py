"""`x3twilio audit` end to end, on a trail the real CLI wrote."""

from __future__ import annotations

import csv
import io
import json
import re

from tests.test_cli import on_a_terminal
from tests.test_poll import HISTORY, ONLY_PO_APPROVED
from x3twilio.auditview import FORMULA_START


def test_audit_filters_formats_summary_and_story(env):
    env.configure(rules=ONLY_PO_APPROVED)
    env.run("poll", "--since", HISTORY, expect=1)  # US005 fails: 21211
    trail = env.audit()

    failed = env.run("audit", "--status", "failed", "--format", "json").stdout.splitlines()
    assert [json.loads(line) for line in failed] == [
        r for r in trail if r.get("status") == "failed"
    ]

    sent = env.run(
        "audit", "--event", "notification.sent", "--to", "+33 6 98 76 54 32", "--format", "csv"
    ).stdout
    rows = list(csv.DictReader(io.StringIO(sent)))
    assert rows and all(row["to"] == "+33698765432" for row in rows)

    assert len(env.run("audit", "--format", "json", "--limit", "3").stdout.splitlines()) == 3
    assert env.run("audit", "--since", "2999-01-01", "--format", "json").stdout == ""

    summary = json.loads(env.run("audit", "--summary", "--format", "json").stdout)
    assert summary["rules"]["po-approved"]["counts"]["failed"] == 1

    order = next(r["record"] for r in trail if r["event"] == "notification.sent")
    story = env.run("audit", "--record", order).stdout
    assert f"{order}: 2 events" in story and "decided: send" in story and "SM" in story


HOSTILE_REPLY = '=HYPERLINK("http://evil.example","[/]PO789 [bold]ok")'


def test_a_hostile_reply_is_text_in_the_terminal_table_and_defused_in_csv(env, shim):
    env.twilio.send_incoming_sms(f"{shim.url}/twilio/sms", "+33612345678", HOSTILE_REPLY)
    env.run("ingest")
    code, out, err = on_a_terminal(env, "audit", "--event", "inbound")
    assert code == 0, out + err
    assert "[/]PO789 [bold]ok" in out and "Traceback" not in out + err

    rows = list(csv.DictReader(io.StringIO(env.run("audit", "--format", "csv").stdout)))
    (reply,) = (row for row in rows if row["event"].startswith("inbound."))
    assert reply["body"] == "'" + HOSTILE_REPLY  # text, whole
    assert reply["from"] == "+33612345678"  # an E.164 number stays as it is
    assert not any(
        cell.startswith(FORMULA_START) and not re.fullmatch(r"\+[0-9]+", cell)
        for row in rows
        for cell in row.values()
    )


def test_audit_by_partner_newest_first_and_relative_times(env):
    env.configure(rules=ONLY_PO_APPROVED)
    env.run("poll", "--since", HISTORY, expect=1)
    trail = env.audit()

    def lines(*args: str) -> list[dict]:
        out = env.run("audit", "--format", "json", *args).stdout
        return [json.loads(line) for line in out.splitlines()]

    about = lines("--partner", "FR001")
    assert about and all(r["partner"] == "BPSUPPLIER:FR001" for r in about)
    assert {r["event"] for r in about} >= {"notification.queued", "notification.sent"}
    assert lines("--partner", "BPSUPPLIER:FR001") == about
    assert lines("--partner", "NOBODY") == []

    assert lines("--last", "3") == trail[::-1][:3]  # newest first
    assert lines("--last", "2", "--partner", "FR001") == about[::-1][:2]

    assert lines("--since", "1h") == trail == lines("--since", "yesterday")
    assert lines("--until", "1h") == []
    refused = env.run("audit", "--since", "last week", expect=2).stderr
    assert "today, yesterday or a time ago such as 2h" in refused
