"""`explain`: why a record did or did not notify."""

from __future__ import annotations

import re

from tests.test_poll import HISTORY, ONLY_PO_APPROVED


def test_explain_shows_each_condition_and_the_outbox_story(env):
    env.configure(rules=ONLY_PO_APPROVED)
    env.run("poll", "--since", HISTORY, expect=1)
    sent = next(
        p
        for p in env.x3.records("PORDER")
        if p["BPSNUM"] == "FR001" and p["APPFLG"] == 3 and p["CLEFLG"] is False
    )
    lines = env.run("explain", "purchase_orders", sent["POHNUM"]).stdout.splitlines()
    assert lines[0].startswith(f"purchase_orders {sent['POHNUM']} (changed ")
    assert "rule po-approved: matches" in lines
    assert "  ✓ approval eq 'approved' (is approved)" in lines
    shown = "\n".join(lines)  # values as people write them, not Python's reprs
    assert "Decimal(" not in shown and "datetime" not in shown
    assert re.search(r"^  \w+ = \d{4}-\d\d-\d\d$", shown, re.M)
    assert re.search(r"^  \w+ = \d+\.\d\d$", shown, re.M)
    assert any(line.startswith("  po-approved → +33698765432: sent SM") for line in lines)

    unapproved = next(p for p in env.x3.records("PORDER") if p["APPFLG"] == 1)
    lines = env.run("explain", "purchase_orders", unapproved["POHNUM"]).stdout.splitlines()
    assert "rule po-approved: does not match" in lines
    assert "  ✗ approval eq 'approved' (is no)" in lines
    assert "outbox: nothing decided yet" in lines


def test_explain_an_unknown_record_or_source(env):
    said = env.run("explain", "purchase_orders", "NOPE", expect=2).stderr
    assert "PORDER NOPE does not exist in X3" in said and "Traceback" not in said
    assert "unknown source" in env.run("explain", "nope", "X", expect=2).stderr
