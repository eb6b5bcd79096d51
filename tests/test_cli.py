"""The command line's contract: help, usage errors, exit codes, documentation."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import on_a_pty
from tests.test_poll import HISTORY, ONLY_PO_APPROVED
from x3twilio.cli import cli

README = (Path(__file__).parent.parent / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help_and_is_in_the_readme(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert f"`{name}" in README


def test_python_dash_m_is_the_same_program():
    result = subprocess.run(
        [sys.executable, "-m", "x3twilio", "--version"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and result.stdout.startswith("x3twilio, version ")


def test_usage_errors_exit_2(env):
    assert env.run("poll", "--since", "someday", expect=2).stderr.count("--since") >= 1
    assert "no rule reads source 'nope'" in env.run("poll", "--source", "nope", expect=2).stderr
    env.run("frobnicate", expect=2)


def test_a_missing_config_file_exits_78(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "x3twilio",
            "--config",
            str(tmp_path / "none.yaml"),
            "check",
            "--offline",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 78
    assert "none.yaml: cannot read the configuration" in result.stderr


def test_check_offline_and_online_against_the_simulators(env, shim):
    assert "valid (5 rules over 3 sources)" in env.run("check", "--offline").stdout
    online = env.run("check").stdout
    assert f"✓\tWebhook shim\t{shim.url}/healthz answers" in online
    assert "✓\tX3 purchase_orders\t" in online
    assert "✓\tTwilio account\taccount is active" in online
    assert "✓\tTwilio sender\t+15017122661 can send SMS" in online


def test_check_online_names_what_is_wrong_and_how_to_fix_it(env):
    env.configure(twilio={"from": "+15005550006"})
    result = env.run("check", expect=69)
    assert "✗\tTwilio sender\t+15005550006 is not on the account\tset twilio.from" in (
        result.stdout
    )


def test_check_warns_about_ucs2_and_long_templates(env):
    rules = env.configure()["rules"]
    rules[0]["message"] = "Commande {order_number} confirm\u00e9e \u2019 merci"
    rules[1]["message"] = "{order_number} " * 100
    env.configure(rules=rules)
    warnings = env.run("check", "--offline").stderr
    assert "rule po-approved: '\u2019' makes every message UCS-2" in warnings
    assert "rule po-expected-today: about 4 segments per message" in warnings


def test_an_x3_that_never_answers_is_a_timeout_and_exit_69(env):
    env.configure(x3={"timeout": "0.5s"}, retry={"attempts": 2, "initial": "0.1s"})
    env.x3.faults.add("timeout", match="PORDER", times=0, delay=2)
    result = env.run("poll", expect=69)
    assert "no answer within 0.5s" in result.stderr


def test_state_dir_option_overrides_the_config(env, tmp_path):
    other = tmp_path / "elsewhere"
    env.run("--state-dir", str(other), "poll")
    assert (other / "watermarks.json").exists() and not env.state_dir.exists()


@pytest.mark.parametrize("api", ["rest", "graphql"])
def test_demo_runs_the_whole_loop(tmp_path, api):
    result = subprocess.run(
        [sys.executable, "-m", "x3twilio", "demo", "--workdir", str(tmp_path), "--api", api],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Twilio accepted" in out and "1 call(s)" in out and "SendGrid accepted 1 email" in out
    assert "default contact's mobile (+33698765432)" in out  # BPSBPRCNT's CNTMOB
    assert "FR001 re POFR" in out and "SMS from +33698765432 re POFR" in out
    assert "GB001 re " in out and "Voicemail from +447911123456" in out
    if api == "rest":
        assert "And on the order itself (PORDER POFR" in out
    assert "notification.status" in out and "inbound.logged 2" in out


@pytest.mark.parametrize("env", ["graphql"], indirect=True)
def test_check_online_over_graphql_discovers_the_packages(env, shim):
    online = env.run("check").stdout
    assert "✓\tX3 GraphQL packages\t" in online and "x3Purchasing" in online
    assert "✓\tX3 purchase_orders\t" in online


@pytest.mark.parametrize("env", ["graphql"], indirect=True)
def test_x3_login_needs_oauth2(env):
    assert "oauth2" in env.run("x3", "login", expect=69).stderr


# -- quiet when all is well, one line when not (cron mails any output) ----------------------


def audit_command(env, line: str) -> list[str]:
    """The arguments of the first `x3twilio ... audit ...` a failure line points to."""
    words = shlex.split(line.split("`")[1])
    assert words[:3] == ["x3twilio", "--config", str(env.config_path)]
    return words[3:]


def test_a_failing_poll_under_q_prints_one_line_that_says_what_failed_and_where_to_look(env):
    env.configure(rules=ONLY_PO_APPROVED)
    result = env.run("-q", "poll", "--since", HISTORY, expect=1)  # US005's number: 21211
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("x3twilio: poll: 1 notification(s) failed; see `x3twilio --config ")
    assert line.endswith(f"`x3twilio --config {env.config_path} replay` retries what failed")
    shown = env.run(*audit_command(env, line), "--format", "json").stdout.splitlines()
    assert [json.loads(record)["event"] for record in shown] == ["notification.failed"]


def test_a_failing_poll_without_q_prints_its_summary_and_the_same_line(env):
    env.configure(rules=ONLY_PO_APPROVED)
    result = env.run("poll", "--since", HISTORY, expect=1)
    assert "1 failed" in result.stdout
    assert result.stderr.startswith("x3twilio: poll: 1 notification(s) failed; see `")
    assert result.stderr.count("\n") == 1


def test_a_failing_ingest_under_q_prints_one_line(env, shim):
    env.twilio.send_incoming_sms(f"{shim.url}/twilio/sms", "+33612345678", "PO789 ok")
    env.x3.faults.add("503", match="BPSUPPLIER", times=0)
    result = env.run("-q", "ingest", expect=1)
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("x3twilio: ingest: 1 inbound item(s) failed; see `x3twilio ")
    shown = env.run(*audit_command(env, line), "--format", "json").stdout.splitlines()
    assert [json.loads(record)["event"] for record in shown] == ["inbound.failed"]


def test_a_failing_replay_under_q_prints_one_line(env):
    env.configure(rules=ONLY_PO_APPROVED)
    env.run("-q", "poll", "--since", HISTORY, expect=1)
    result = env.run("-q", "replay", "--include-permanent", expect=1)  # still not a number
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("x3twilio: replay: 1 notification(s) failed; see `x3twilio ")


@pytest.mark.parametrize("command", ["poll", "ingest", "replay"])
def test_an_overlap_exits_75_and_prints_nothing_under_q(env, command):
    from x3twilio.state import run_lock

    with run_lock(env.state_dir, "ingest.lock" if command == "ingest" else "lock"):
        quiet = env.run("-q", command, expect=75)
        loud = env.run(command, expect=75)
    assert quiet.stdout == "" and quiet.stderr == ""
    assert loud.stdout == "" and "another run holds" in loud.stderr


def test_check_under_q_prints_nothing_when_all_is_well_and_one_line_when_not(env, shim):
    rules = env.configure()["rules"]
    rules[0]["message"] = "Commande {order_number} confirm\u00e9e \u2019 merci"  # a warning
    env.configure(rules=rules)
    for args in (["check", "--offline"], ["check"]):
        result = env.run("-q", *args)
        assert result.stdout == "" and result.stderr == ""
    env.configure(twilio={"from": "+15005550006"})
    result = env.run("-q", "check", expect=69)
    assert result.stdout == ""
    assert result.stderr == (
        "x3twilio: check: 1 of "
        + result.stderr.split(" of ")[1].split(" ")[0]
        + f" failed: Twilio sender; `x3twilio --config {env.config_path} check` shows the fix of"
        " each\n"
    )


def test_usage_and_configuration_errors_under_q_are_one_line(env):
    for args, code in ((["poll", "--since", "someday"], 2), (["frobnicate"], 2)):
        result = env.run("-q", *args, expect=code)
        assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("x3twilio: ")
    env.config_path.write_text("x3: {}\n")
    result = env.run("-q", "poll", expect=78)
    assert result.stderr == f"x3twilio: {env.config_path}: x3.url: required field is missing\n"


def test_an_internal_error_never_prints_the_repr_of_what_it_read():
    from x3twilio.cli import _describe

    leak = UnicodeDecodeError("utf-8", b"password: hunter2-secret\xff", 24, 25, "invalid start")
    described = _describe(leak)
    assert "hunter2" not in described and described.startswith("UnicodeDecodeError: ")
    assert "\n" not in _describe(ValueError("a\nb" + "x" * 500)) and len(_describe(leak)) < 300
    assert _describe(ValueError("X3 says \x1b[2J\u202e")) == "ValueError: X3 says \\x1b[2J\\u202e"


# -- rich output on a terminal: data from X3 is text, never markup --------------------------


def on_a_terminal(env, *args: str) -> tuple[int, str, str]:
    """The CLI with its stdout on a pseudo-terminal: (exit code, what it showed, stderr)."""
    return on_a_pty(env, *args)


MARKUP = "[/][bold]x\x1b[2J"  # rich markup that does not balance, and a terminal escape


def test_poll_dry_run_on_a_terminal_prints_x3_data_literally(env):
    rule = {**ONLY_PO_APPROVED[0], "message": "Order {order_number} ({reference}) approved."}
    env.configure(rules=[rule])
    order = next(p for p in env.x3.records("PORDER") if p["APPFLG"] == 3 and not p["CLEFLG"])
    env.x3.update("PORDER", order["POHNUM"], ORDREF=MARKUP)
    env.next_second()  # a run leaves the current second's changes for the next one
    code, out, err = on_a_terminal(env, "poll", "--dry-run", "--since", HISTORY)
    assert code == 0, out + err
    assert "┃" in out  # rich's table, not the tab-separated lines for pipes
    assert f"Order {order['POHNUM']} ([/][bold]x\\x1b[2J) approved." in out
    assert "\x1b[2J" not in out and "Traceback" not in out + err


def test_check_names_a_state_dir_that_cannot_be_created_before_anything_runs(env):
    (env.dir / "afile").write_text("")
    env.configure(state_dir=str(env.dir / "afile" / "state"))
    said = env.run("check", "--offline", expect=73).stderr
    assert f"state_dir {env.dir / 'afile' / 'state'} cannot be created" in said
    assert "is not a directory" in said and "Traceback" not in said


def test_check_says_cannot_reach_for_a_dead_address_and_no_fix_on_a_pass(env):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    env.configure(twilio={"api_url": dead})
    out = env.run("check", expect=69).stdout
    rows = [line.split("\t") for line in out.splitlines() if "\t" in line]
    twilio = next(row for row in rows if row[1] == "Twilio account")
    assert twilio[2].startswith(f"cannot reach {dead}/") and "connection refused" in twilio[2]
    assert twilio[3].startswith("check the URL, DNS and the network")
    shim = next(row for row in rows if row[1] == "Webhook shim")  # nothing serves public_url
    assert shim[2].startswith(f"cannot reach {env.public_url}/healthz: connection refused")
    assert "Twilio could not deliver replies" in shim[2] and "start the shim" in shim[3]
    assert all(row[3:] in ([], [""]) for row in rows if row[0] == "✓")


def test_secrets_come_from_an_env_file_that_only_its_owner_can_read(env):
    import yaml

    config = env.configure()
    secret = config["x3"]["password"]
    config["x3"]["password"] = "${X3_PASSWORD}"
    env.config_path.write_text(yaml.safe_dump(config))
    secrets = env.dir / "x3twilio.env"
    secrets.write_text(f"# for cron\nexport X3_PASSWORD='{secret}'\n")
    secrets.chmod(0o640)
    said = env.run("--env-file", str(secrets), "poll", expect=78).stderr
    assert f"readable by others (mode 0640): run `chmod 600 {secrets}`" in said
    assert secret not in said
    secrets.chmod(0o600)
    env.run("--env-file", str(secrets), "poll")
    assert "X3_PASSWORD" in env.run("poll", expect=78).stderr  # without it: not set

    secrets.write_text(f"X3_PASSWORD={secret}\nthis line is {secret}\n")
    said = env.run("--env-file", str(secrets), "poll", expect=78).stderr
    assert "x3twilio.env: line 2: expected KEY=value" in said and secret not in said


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_the_systemd_units_it_writes_pass_systemd_analyze_verify(tmp_path):
    written = subprocess.run(
        [sys.executable, "-m", "x3twilio", "systemd-units", str(tmp_path / "units")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    names = sorted(Path(p).name for p in written)
    assert names == [
        "x3twilio-ingest.service", "x3twilio-ingest.timer", "x3twilio-poll.service",
        "x3twilio-poll.timer", "x3twilio-shim.service",
    ]  # fmt: skip
    verified = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *written], capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stderr
    poll = (tmp_path / "units" / "x3twilio-poll.service").read_text()
    assert f"ExecStart={Path(sys.executable).parent}/x3twilio -q --env-file " in poll
