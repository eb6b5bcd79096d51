"""What people and scripts see: a status line and colour on a terminal only, `--json`
summaries, shell completion; piped output stays plain (cron mails any output)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import on_a_pty
from tests.test_cli import MARKUP
from tests.test_poll import HISTORY, ONLY_PO_APPROVED

ESCAPE = "\x1b"


def terminal(env, *args: str, stdout_too: bool = True, **environ: str) -> tuple[int, str, str]:
    """The CLI with its stderr (and stdout, unless told) on a pseudo-terminal: the exit code,
    what the terminal showed, and the piped stdout (if piped)."""
    return on_a_pty(env, *args, stdout=stdout_too, stderr=True, **environ)


def failing_poll(env) -> None:
    """One notification that fails at Twilio (US005's number is refused: 21211)."""
    env.configure(rules=ONLY_PO_APPROVED)
    env.run("-q", "poll", "--since", HISTORY, expect=1)


def last_json(out: str) -> dict:
    (line,) = out.splitlines()  # one object, one line
    found = json.loads(line)
    assert found["v"] == 1
    return found


# -- progress --------------------------------------------------------------------------------


def test_a_dry_run_shows_its_progress_on_a_terminal_and_wipes_it(env):
    code, shown, piped = terminal(env, "poll", "--dry-run", "--since", HISTORY, stdout_too=False)
    assert code == 0, shown
    status = re.search(r"\rreading purchase_orders: (\d+) page\(s\), (\d+) records, ", shown)
    assert status and int(status[1]) >= 1 and int(status[2]) >= 1, shown
    assert re.search(r"\r +\r$", shown)  # the last thing written: the line wiped
    assert ESCAPE not in shown
    assert piped.startswith("rule\trecord\tto\toutcome\tmessage\n")  # stdout piped: plain


def test_a_poll_shows_progress_that_counts_sends(env):
    env.configure(rules=ONLY_PO_APPROVED)
    code, shown, piped = terminal(env, "poll", "--since", HISTORY, stdout_too=False)
    assert code == 1, shown
    assert "\rreading purchase_orders: 1 page(s), " in shown
    sending = re.search(r"\rsending: 1 page\(s\), \d+ records, (\d+) decided, \d+ sent, ", shown)
    assert sending and int(sending[1]) >= 2, shown
    assert re.search(r"\r +\rx3twilio: poll: 1 notification\(s\) failed", shown)  # wiped first
    assert piped.startswith("poll: ") and "\r" not in piped


def test_no_progress_under_q_or_when_piped(env):
    code, shown, _ = terminal(env, "-q", "poll", "--dry-run", "--since", HISTORY, stdout_too=False)
    assert code == 0 and shown == ""
    piped = env.run("poll", "--dry-run", "--since", HISTORY)
    assert piped.stderr == "" and ESCAPE not in piped.stdout and "\r" not in piped.stdout


# -- colour ----------------------------------------------------------------------------------


def test_check_colours_its_marks_on_a_terminal_and_not_with_no_color_or_a_dumb_one(env):
    env.configure(twilio={"from": "+15005550006"})  # not on the account: a ✗
    code, shown, _ = terminal(env, "check")
    assert code == 69, shown
    assert "\x1b[31m✗" in shown and "\x1b[32m✓" in shown
    for environ in ({"NO_COLOR": "1"}, {"TERM": "dumb"}):
        code, shown, _ = terminal(env, "check", **environ)
        assert code == 69 and "✗" in shown and "┃" in shown  # the table, without escapes
        assert ESCAPE not in shown, environ
    piped = env.run("check", expect=69).stdout
    assert "✗\tTwilio sender\t+15005550006 is not on the account" in piped
    assert ESCAPE not in piped


def test_statuses_are_coloured_and_x3_data_never_is(env):
    failing_poll(env)
    code, shown, _ = terminal(env, "replay", "--dry-run", "--include-permanent")
    assert code == 0, shown
    assert "\x1b[31mfailed" in shown  # the status column
    rule = {**ONLY_PO_APPROVED[0], "message": "Order {order_number} ({reference}) approved."}
    env.configure(rules=[rule])
    order = next(p for p in env.x3.records("PORDER") if p["APPFLG"] == 3 and not p["CLEFLG"])
    env.x3.update("PORDER", order["POHNUM"], ORDREF=MARKUP)
    code, shown, _ = terminal(env, "explain", "purchase_orders", order["POHNUM"])
    assert code == 0, shown
    assert "\x1b[32m✓\x1b[0m approval eq 'approved' (is approved)" in shown
    assert "[/][bold]x\\x1b[2J" in shown and "\x1b[2J" not in shown  # X3's escape: shown
    code, shown, _ = terminal(env, "explain", "purchase_orders", order["POHNUM"], NO_COLOR="1")
    assert "  ✓ approval eq 'approved' (is approved)" in shown and "\x1b[3" not in shown


# -- --json ----------------------------------------------------------------------------------


def test_a_failing_poll_says_so_in_json_and_on_its_stderr_line(env):
    env.configure(rules=ONLY_PO_APPROVED)
    result = env.run("poll", "--since", HISTORY, "--json", expect=1)
    found = last_json(result.stdout)
    assert found["command"] == "poll" and found["exit_code"] == 1 and not found["dry_run"]
    assert found["counts"]["failed"] == 1 and found["counts"]["sent"] >= 1
    assert found["counts"]["rejected"] == 0  # every count a script looks for, 0 or not
    assert found["error"] == "1 notification(s) failed" and found["run_id"]
    assert result.stderr.startswith("x3twilio: poll: 1 notification(s) failed; see `")


def test_a_dry_run_in_json_lists_its_decisions(env):
    env.configure(rules=ONLY_PO_APPROVED)
    found = last_json(env.run("poll", "--dry-run", "--since", HISTORY, "--json").stdout)
    assert found["dry_run"] and found["exit_code"] == 0 and found["error"] is None
    decisions = found["decisions"]
    assert len(decisions) == found["counts"]["decided"] >= 2
    sample = next(d for d in decisions if d["to"] == "+33698765432")
    assert sample["rule"] == "po-approved" and sample["outcome"] == "would send"
    assert sample["status"] == "pending" and sample["body"].startswith("Order ")
    assert not (env.state_dir / "audit").exists() or env.audit() == []  # still writes nothing


def test_check_in_json_has_a_row_per_check_with_its_fix(env):
    env.configure(twilio={"from": "+15005550006"})
    result = env.run("check", "--json", expect=69)
    found = last_json(result.stdout)
    assert found["command"] == "check" and found["exit_code"] == 69
    assert found["config"] == str(env.config_path) and found["rules"] == 5
    sender = next(c for c in found["checks"] if c["name"] == "Twilio sender")
    assert sender["ok"] is False and sender["fix"].startswith("set twilio.from")
    assert all(c["fix"] == "" for c in found["checks"] if c["ok"])
    assert {"ok", "name", "detail", "fix", "setup"} == set(sender)
    failed = [c["name"] for c in found["checks"] if not c["ok"]]  # no shim here: 2
    assert found["error"] == f"{len(failed)} of {len(found['checks'])} failed: {', '.join(failed)}"
    assert result.stderr.startswith("x3twilio: check: ")
    offline = last_json(env.run("check", "--offline", "--json").stdout)
    assert offline["exit_code"] == 0 and offline["offline"] and offline["checks"] == []


def test_explain_in_json_gives_values_as_json_types_and_each_condition(env):
    failing_poll(env)
    sent = next(
        p
        for p in env.x3.records("PORDER")
        if p["BPSNUM"] == "FR001" and p["APPFLG"] == 3 and p["CLEFLG"] is False
    )
    found = last_json(env.run("explain", "purchase_orders", sent["POHNUM"], "--json").stdout)
    assert found["key"] == sent["POHNUM"] and found["stamp"].endswith("Z")
    values = found["values"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", values["expected_date"])  # a date: ISO 8601
    assert isinstance(values["total"], str) and re.fullmatch(r"\d+\.\d\d", values["total"])
    (rule,) = found["rules"]
    assert rule["name"] == "po-approved" and rule["matches"] is True
    approval = next(c for c in rule["conditions"] if c["field"] == "approval")
    assert approval == {
        "condition": "approval eq 'approved'",
        "ok": True,
        "field": "approval",
        "value": "approved",
    }
    (item,) = found["outbox"]
    assert item["status"] == "sent" and item["detail"].startswith("SM")


def test_replay_in_json_dry_run_and_for_real(env):
    failing_poll(env)
    found = last_json(env.run("replay", "--dry-run", "--include-permanent", "--json").stdout)
    (item,) = found["items"]
    assert found["dry_run"] and item["status"] == "failed" and item["rule"] == "po-approved"
    assert "not a valid phone number" in item["last_error"]
    result = env.run("replay", "--include-permanent", "--json", expect=1)  # still not a number
    found = last_json(result.stdout)
    assert found["exit_code"] == 1 and found["counts"]["failed"] == 1
    assert found["inbound"] == {"logged": 0, "failed": 0}
    assert result.stderr.startswith("x3twilio: replay: 1 notification(s) failed")


def test_ingest_in_json_dry_run_and_for_real(env, shim):
    env.twilio.send_incoming_sms(f"{shim.url}/twilio/sms", "+33612345678", "PO789 ok")
    found = last_json(env.run("ingest", "--dry-run", "--json").stdout)
    assert found["dry_run"] and found["total"] == 1 and found["waiting"] == {"sms": 1}
    found = last_json(env.run("ingest", "--json").stdout)
    assert found["exit_code"] == 0 and found["error"] is None
    assert found["counts"]["logged"] + found["counts"]["unmatched"] == 1


def test_an_error_that_stops_a_json_command_is_a_json_object_too(env, tmp_path):
    result = env.run("explain", "nope", "X", "--json", expect=2)
    found = last_json(result.stdout)
    assert found == {"v": 1, "command": "explain", "exit_code": 2, "error": found["error"]}
    assert "unknown source 'nope'" in found["error"] and "Error" in result.stderr
    env.configure(x3={"timeout": "0.5s"}, retry={"attempts": 1})
    env.x3.faults.add("503", match="PORDER", times=0)
    result = env.run("-q", "poll", "--json", expect=69)
    found = last_json(result.stdout)
    assert found["command"] == "poll" and found["exit_code"] == 69
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


# -- completion and start-up -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("shell", "says"),
    [("bash", "_x3twilio_completion()"), ("zsh", "#compdef x3twilio"), ("fish", "complete")],
)
def test_shell_completion_scripts_are_produced(shell, says):
    program = Path(sys.executable).parent / "x3twilio"  # the console script: its name counts
    result = subprocess.run(
        [str(program)],
        env=os.environ | {"_X3TWILIO_COMPLETE": f"{shell}_source"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and says in result.stdout and result.stderr == ""


def test_the_help_says_how_to_turn_completion_on():
    from click.testing import CliRunner

    from x3twilio.cli import cli

    shown = CliRunner().invoke(cli, ["--help"]).output
    assert "_X3TWILIO_COMPLETE=bash_source x3twilio" in shown and "fish_source" in shown


def test_starting_the_cli_imports_no_rich():
    probe = "import sys, x3twilio.cli; print(sorted(m for m in sys.modules if 'rich' in m))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]", loaded.stderr


# -- the renderers, behind their seams ---------------------------------------------------------


def test_the_status_line_redraws_in_place_at_each_step_and_at_most_so_often(monkeypatch):
    import io

    from x3twilio.output import StatusLine

    monkeypatch.setenv("COLUMNS", "40")
    now = [0.0]
    stream = io.StringIO()
    line = StatusLine(stream, interval=1.0, clock=lambda: now[0])
    line("reading purchase_orders", 1, {"records": 100})
    line("reading purchase_orders", 2, {"records": 200})  # within the second: not drawn
    now[0] = 0.5
    line("sending", 2, {"records": 200, "queued": 3})  # a new step: drawn at once
    line.close()
    drawn = stream.getvalue().split("\r")
    first = "reading purchase_orders: 1 page(s), 100 records, 0 decided, 0 sent, 0 failed"
    assert drawn[1] == first[:39]  # clipped to the terminal: a wrapped line cannot be redrawn
    assert drawn[2] == "sending: 2 page(s), 200 records, 3 decided, 0 sent, 0 failed"[:39]
    assert drawn[3:] == [" " * 39, ""]  # wiped, the cursor back at the line's start
    assert len(drawn) == 5  # the second page, within the interval, was not drawn


def test_a_shorter_status_overwrites_all_of_the_longer_one():
    import io

    from x3twilio.output import StatusLine

    stream = io.StringIO()
    line = StatusLine(stream)
    line.show("a long status line")
    line.show("short")
    assert stream.getvalue() == "\ra long status line\rshort" + " " * 13


def test_json_values_are_json_types():
    from datetime import UTC, date, datetime
    from decimal import Decimal

    from x3twilio.output import json_value

    assert json_value({"d": date(2026, 11, 27), "n": Decimal("109.50")}) == {
        "d": "2026-11-27",
        "n": "109.50",
    }
    assert json_value(datetime(2026, 11, 27, 8, 30, tzinfo=UTC)) == "2026-11-27T08:30:00Z"
    assert json_value([float("nan"), True, None, 3]) == ["nan", True, None, 3]
    json.dumps(json_value({"x": object()}))  # anything else: its text, never a TypeError
