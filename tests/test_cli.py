"""The command line's contract: help, usage errors, exit codes, documentation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

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
    assert env.run("poll", "--since", "yesterday", expect=2).stderr.count("--since") >= 1
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


def test_check_offline_and_online_against_the_simulators(env):
    assert "valid (5 rules over 3 sources)" in env.run("check", "--offline").stdout
    online = env.run("check").stdout
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
def test_check_online_over_graphql_discovers_the_packages(env):
    online = env.run("check").stdout
    assert "✓\tX3 GraphQL packages\t" in online and "x3Purchasing" in online
    assert "✓\tX3 purchase_orders\t" in online


@pytest.mark.parametrize("env", ["graphql"], indirect=True)
def test_x3_login_needs_oauth2(env):
    assert "oauth2" in env.run("x3", "login", expect=69).stderr
