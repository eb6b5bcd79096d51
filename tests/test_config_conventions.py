"""Configuration conventions: where the file is found, "did you mean", template fallbacks for
what X3 leaves empty, and exact due-date offsets (`in 3 days`, `2 days ago`)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from tests.conftest import Env
from x3twilio.builtin_sources import BUILTIN
from x3twilio.config import SYSTEM_PATH, config_path, config_places
from x3twilio.errors import ConfigError
from x3twilio.rules import DueTrigger, load_rules
from x3twilio.sources import decode
from x3twilio.templates import TemplateError, compile_template
from x3twilio.yamlnode import Node

# -- where the configuration is found ------------------------------------------------------


def cli(cwd: Path, *args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, without --config, from `cwd`, with HOME and XDG_CONFIG_HOME as given."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("X3TWILIO", "XDG_"))}
    base["HOME"] = str(cwd / "home")
    return subprocess.run(
        [sys.executable, "-m", "x3twilio", *args],
        cwd=cwd,
        env={**base, **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )


def placed(env: Env, path: Path) -> Path:
    """The simulator configuration, written at `path` instead of the test's directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(env.config_path.read_text())
    env.config_path.unlink()
    return path


def test_without_config_the_xdg_file_is_found_and_its_relative_state_dir_is_beside_it(env):
    cwd = env.dir / "elsewhere"
    cwd.mkdir()
    xdg = env.dir / "xdg"
    found = placed(env, xdg / "x3twilio" / "x3twilio.yaml")
    result = cli(cwd, "poll", XDG_CONFIG_HOME=str(xdg))
    assert result.returncode == 0, result.stderr
    assert (found.parent / "state").is_dir()
    assert not (cwd / "state").exists()  # relative to the file, not to the working directory
    check = cli(cwd, "check", "--offline", XDG_CONFIG_HOME=str(xdg))
    assert check.returncode == 0 and check.stdout.startswith(f"{found}: valid")


def test_the_working_directory_comes_before_xdg_and_home_config_is_the_xdg_default(env):
    cwd = env.dir / "cwd"
    text = env.config_path.read_text()
    (cwd / "home" / ".config" / "x3twilio").mkdir(parents=True)
    (cwd / "home" / ".config" / "x3twilio" / "x3twilio.yaml").write_text(text)
    home = cli(cwd, "check", "--offline")  # no XDG_CONFIG_HOME: ~/.config
    assert home.returncode == 0, home.stderr
    assert home.stdout.startswith(f"{cwd}/home/.config/x3twilio/x3twilio.yaml: valid")
    (cwd / "x3twilio.yaml").write_text(text)
    here = cli(cwd, "check", "--offline")
    assert here.returncode == 0 and here.stdout.startswith("x3twilio.yaml: valid")


@pytest.mark.skipif(SYSTEM_PATH.exists(), reason="this machine has a system-wide configuration")
def test_no_configuration_anywhere_exits_78_listing_every_place_in_order(tmp_path):
    xdg = tmp_path / "xdg"
    result = cli(tmp_path, "check", "--offline", XDG_CONFIG_HOME=str(xdg))
    assert result.returncode == 78 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    places = [
        "--config (not given)",
        "$X3TWILIO_CONFIG (not set)",
        f"./x3twilio.yaml ({tmp_path}/x3twilio.yaml)",
        f"$XDG_CONFIG_HOME/x3twilio/x3twilio.yaml ({xdg}/x3twilio/x3twilio.yaml)",
        "/etc/x3twilio/x3twilio.yaml",
    ]
    at = [result.stderr.find(place) for place in places]
    assert -1 not in at and at == sorted(at), result.stderr


def test_an_explicit_path_that_does_not_exist_is_an_error_not_a_fallthrough(env):
    cwd = env.dir
    gone = str(cwd / "gone.yaml")
    by_env = cli(cwd, "check", "--offline", X3TWILIO_CONFIG=gone)  # ./x3twilio.yaml exists
    assert by_env.returncode == 78 and f"{gone}: cannot read the configuration" in by_env.stderr
    by_option = cli(cwd, "--config", gone, "check", "--offline")
    assert by_option.returncode == 78 and gone in by_option.stderr


def test_places_ignore_a_relative_xdg_config_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = config_places({"XDG_CONFIG_HOME": "conf", "HOME": str(tmp_path)})
    assert [label for label, _ in relative] == [
        "./x3twilio.yaml",
        "~/.config/x3twilio/x3twilio.yaml",
        "/etc/x3twilio/x3twilio.yaml",
    ]
    with pytest.raises(ConfigError) as caught:
        config_path(None, {"HOME": str(tmp_path)})
    assert caught.value.exit_code == 78


# -- "did you mean" ------------------------------------------------------------------------


def test_a_typo_in_when_suggests_the_field_through_the_cli(env):
    config = yaml.safe_load(env.config_path.read_text())
    config["rules"][0]["when"] = {"expected_dat": {"exists": True}}
    config["rules"][0]["source"] = "purchase_orders"
    env.config_path.write_text(yaml.safe_dump(config))
    result = env.run("check", "--offline", expect=78)
    assert result.stderr == (
        f"x3twilio: {env.config_path}: rules[0].when.expected_dat: unknown field of "
        "purchase_orders; did you mean 'expected_date'?\n"
    )


def rules(*specs: dict) -> tuple:
    node = Node("rules.yaml", "", {"rules": list(specs)})
    return load_rules(node, BUILTIN, {"finance": ("+33612000001",)})


def rule(**spec: object) -> object:
    base = {"name": "r", "source": "purchase_orders", "to": ["supplier"], "message": "x"}
    base.update(spec)
    return rules(base)[0]


@pytest.mark.parametrize(
    ("spec", "where", "suggested"),
    [
        ({"message": "Order {order_numbr}"}, "rules[0].message", "'order_number'"),
        ({"mesage": "x"}, "rules[0].mesage", "'message'"),
        ({"deu": "expected_date today"}, "rules[0].deu", "'due'"),
        ({"due": "expected_dat today"}, "rules[0].due", "'expected_date'"),
        ({"when": {"approval": "approved"}, "once_per": ["aproval"]}, "once_per", "'approval'"),
    ],
)
def test_unknown_names_suggest_the_close_known_one_and_still_name_the_path(spec, where, suggested):
    with pytest.raises(ConfigError) as caught:
        rule(**{"when": {"approval": "approved"}, **spec})
    message = str(caught.value)
    assert message.startswith("rules.yaml: rules[0]") and where in message
    assert f"did you mean {suggested}?" in message


def test_nothing_close_suggests_nothing():
    with pytest.raises(ConfigError) as caught:
        rule(when={"zzz": 1})
    assert "did you mean" not in str(caught.value)


def test_an_unknown_top_level_key_suggests_the_section(tmp_path):
    node = Node("x3twilio.yaml", "", {"twillio": {}})
    node.get("twilio", dict, {})
    with pytest.raises(ConfigError, match=r"^x3twilio.yaml: twillio: unknown field; did you mean"):
        node.done()


# -- templates: fallbacks for what X3 leaves empty -----------------------------------------

KINDS = {"reference": "text", "accounting_date": "date", "amount": "decimal"}


def test_a_fallback_writes_for_an_empty_value_and_the_spec_formats_a_present_one():
    template = compile_template(
        "on {accounting_date|a date to follow:%d %B %Y}, ref {reference|none}, {amount:,.2f}",
        KINDS,
    )
    values = {"accounting_date": date(2026, 11, 9), "reference": "PI1", "amount": 0}
    assert template.render(values.get) == "on 09 November 2026, ref PI1, 0.00"
    empty = {"accounting_date": None, "reference": "  ", "amount": 0}
    assert template.render(empty.get) == "on a date to follow, ref none, 0.00"
    assert template.names == {"accounting_date", "reference", "amount"}
    assert "a date to follow" in template.literals


def test_without_a_fallback_an_empty_value_writes_nothing():
    assert compile_template("[{reference}]", KINDS).render(lambda name: None) == "[]"
    assert compile_template("[{reference|}]", KINDS).render(lambda name: "") == "[]"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{accounting_date:%d %b|soon}", "{accounting_date|soon:%d %b}"),  # the fix, spelled
        ("{reference|to be: confirmed}", "cannot hold ':'"),
        ("{accounting_date|to be: confirmed}", "needs % directives"),
        ("{reference|n/a!}", "cannot hold ':', '!'"),
        ("{refrence|none}", "did you mean 'reference'?"),
        ("{|none}", "empty placeholder"),
    ],
)
def test_a_misplaced_or_malformed_fallback_is_refused_at_load_saying_how(text, problem):
    with pytest.raises(TemplateError) as caught:
        compile_template(text, KINDS)
    assert problem in str(caught.value)


# -- due-date forms ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "trigger", "fires", "shown"),
    [
        ("due_date within 3 days", (0, 3), [0, 1, 2, 3], "due_date within 3 days of 2026-11-20"),
        ("due_date today", (0, 0), [0], "due_date today: 2026-11-20"),
        ("due_date in 3 days", (3, 3), [3], "due_date in 3 days: 2026-11-23"),
        ("due_date in 1 day", (1, 1), [1], "due_date in 1 day: 2026-11-21"),
        ("due_date 2 days ago", (-2, -2), [-2], "due_date 2 days ago: 2026-11-18"),
    ],
)
def test_due_forms_fire_on_their_days_only(due, trigger, fires, shown):
    loaded = rules(
        {"name": "r", "source": "open_items", "due": due, "to": ["finance"], "message": "x"}
    )[0]
    assert (loaded.due.first, loaded.due.last) == trigger
    today = date(2026, 11, 20)
    source = BUILTIN["open_items"]
    due_field = source.fields["due_date"].code
    held = []
    for offset in range(-4, 6):
        day = (today + timedelta(offset)).isoformat()
        record = _open_item(source, due_field, day)
        if loaded.due.holds(record, today):
            held.append(offset)
    assert held == fires
    assert loaded.due.describe(today) == shown


def _open_item(source, code: str, day: str):
    raw = dict.fromkeys(source.key, "K") | {source.timestamp: "2026-11-20T00:00:00Z", code: day}
    return decode(source, raw, (source.fields["due_date"],))


@pytest.mark.parametrize("due", ["due_date in 367 days", "due_date in 3 weeks", "due_date ago"])
def test_other_due_texts_are_refused_listing_the_forms(due):
    with pytest.raises(ConfigError, match=r"rules\[0\]\.due: expected .*in N days|at most 366"):
        rules({"name": "r", "source": "open_items", "due": due, "to": ["finance"], "message": "x"})


def test_a_due_trigger_asks_x3_for_its_window_only():
    assert DueTrigger("d", 3, 3).window(date(2026, 11, 20)) == (date(2026, 11, 23),) * 2
    assert DueTrigger("d", -1, -1).window(date(2026, 11, 1)) == (date(2026, 10, 31),) * 2


# -- end to end through poll against the simulators ----------------------------------------


def test_a_payment_without_date_or_reference_texts_the_fallbacks(env):
    env.configure(
        rules=[
            {
                "name": "payment-sent",
                "source": "payments",
                "when": {"direction": "outgoing", "partner_type": "supplier"},
                "to": ["+33612000001"],
                "message": "{payment_number} paid on {accounting_date|a date to follow:%d %B %Y}"
                " (ref {reference|not given})",
            }
        ]
    )
    env.run("poll")  # the first run starts from now
    paid = [p for p in env.x3.records("PAYMENTH") if p["SNS"] == 1 and p["BPRTYP"] == 2]
    blank, dated = paid[0], paid[1]
    env.x3.update("PAYMENTH", blank["NUM"], ACCDAT="0000-00-00", REF="")  # X3's "nothing"
    env.x3.update("PAYMENTH", dated["NUM"], ACCDAT="2026-11-09")
    env.next_second()
    env.run("poll")
    bodies = sorted(m["body"] for m in env.twilio.messages)
    assert bodies == sorted(
        [
            f"{blank['NUM']} paid on a date to follow (ref not given)",
            f"{dated['NUM']} paid on 09 November 2026 (ref {dated['REF']})",
        ]
    )


def test_in_3_days_fires_for_an_item_due_exactly_then_and_not_for_one_in_2(env):
    env.configure(
        rules=[
            {
                "name": "due-in-3",
                "source": "open_items",
                "due": "due_date in 3 days",
                "when": {"open_amount": {"gt": 0}},
                "to": ["+33612000001"],
                "message": "{document_type}~{document}~{document_line}~{line} is due "
                "{due_date:%Y-%m-%d}",
            }
        ]
    )
    today = env.x3.now().date()
    items = [
        i
        for i in env.x3.records("GACCDUDATE")
        if i["FLGCLE"] is False and i["AMTCUR"] > i["PAYCUR"]
    ]
    assert len(items) >= 2, "the dataset has two open items"
    in_3, in_2 = today + timedelta(3), today + timedelta(2)
    exact, near = key(items[0]), key(items[1])
    env.x3.update("GACCDUDATE", exact, DUDDAT=in_3.isoformat())
    env.x3.update("GACCDUDATE", near, DUDDAT=in_2.isoformat())
    expected = sorted(
        f"{key(i)} is due {in_3}"
        for i in env.x3.records("GACCDUDATE")
        if i["FLGCLE"] is False and i["AMTCUR"] > i["PAYCUR"] and i["DUDDAT"] == in_3.isoformat()
    )
    env.run("poll")
    bodies = sorted(m["body"] for m in env.twilio.messages)
    assert bodies == expected and f"{exact} is due {in_3}" in bodies
    assert not any(b.startswith(f"{near} ") for b in bodies)
    told = env.run("explain", "open_items", near).stdout
    assert f"✗ due_date in 3 days: {in_3} (is {in_2})" in told


def key(item: dict) -> str:
    return "~".join(str(item[code]) for code in BUILTIN["open_items"].key)


def test_the_wsgi_shim_finds_its_configuration_in_the_same_places(env, monkeypatch):
    from x3twilio.wsgi import create_app

    monkeypatch.delenv("X3TWILIO_CONFIG", raising=False)
    xdg = env.dir / "xdg"
    placed(env, xdg / "x3twilio" / "x3twilio.yaml")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    monkeypatch.chdir(env.dir)  # no ./x3twilio.yaml any more
    assert create_app().config.file == xdg / "x3twilio" / "x3twilio.yaml"
