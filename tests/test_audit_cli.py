"""`x3twilio audit` end to end, on a trail the real CLI wrote."""

from __future__ import annotations

import csv
import io
import json

from tests.test_poll import HISTORY, ONLY_PO_APPROVED


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
