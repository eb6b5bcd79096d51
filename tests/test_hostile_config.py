"""Hostile configuration files: each one through the real CLI (`check --offline` in a
subprocess) must exit 78 with one line naming the file and the path, never a traceback,
never a secret, and never hang or eat memory.

The subprocesses of every case run at once (a module fixture), so the suite stays fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from x3twilio.config import load_config
from x3twilio.errors import ConfigError

EXAMPLE = Path(__file__).parent.parent / "rules.example.yaml"
SECRET = "hunter2-Zq9-SECRET"  # the X3 password the environment gives: never in any output
ENV = {
    "X3_URL": "https://x3.example.com:8124",
    "X3_USER": "admin",
    "X3_PASSWORD": SECRET,
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "tw-" + SECRET,
    "TWILIO_FROM": "+15017122661",
    "SENDGRID_API_KEY": "SG." + SECRET,
}
RAW = "__RAW_SCALAR__"  # replaced by YAML text as written (.nan, 1.0e+400, ...)


def example(path: str | None = None, raw: str | None = None) -> str:
    """rules.example.yaml as YAML text, with the value at the dotted `path` written as `raw`."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["inbound"]["notes"].append(
        {"about": "purchase_orders", "mode": "append", "representation": "ZPORDER"}
        | {"field": "ZREPLIES", "max_length": 250}
    )
    data["monitoring"] = {"heartbeat_url": "https://hc-ping.example.com/abc"}
    if path is not None:
        *parents, last = path.replace("[", ".[").split(".")
        node: Any = data
        for part in parents:
            node = node[int(part[1:-1])] if part.startswith("[") else node.setdefault(part, {})
        node[last] = RAW
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return text.replace(f"'{RAW}'", raw or "").replace(RAW, raw or "")


def replaced(old: str, new: str) -> str:
    text = example()
    assert old in text
    return text.replace(old, new, 1)


def billion_laughs() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n" + example()


@dataclass(frozen=True)
class Case:
    content: str | bytes | Callable[[Path], Path]  # file text, or makes the file and returns it
    where: str  # what the one line must name after the file: the path, or what is wrong


# -- every number is range-checked: (dotted key, YAML as written, what the message says) -----
NUMBERS = [
    ("x3.page_size", "0"),
    ("x3.page_size", "201"),
    ("x3.page_size", "-1"),
    ("x3.timeout", "0"),
    ("x3.timeout", "-1"),
    ("x3.timeout", "11m"),
    ("x3.timeout", ".nan"),
    ("x3.timeout", "1.0e+400"),
    ("x3.lookback", "-600"),
    ("x3.lookback", ".nan"),
    ("x3.lookback", ".inf"),
    ("x3.lookback", "-.inf"),
    ("x3.lookback", "1.0e+400"),
    ("x3.lookback", "1e400"),
    ("x3.lookback", "99999999999999999999999999999"),
    ("x3.lookback", "9" * 5000),
    ("x3.lookback", "8d"),
    ("x3.lookback", "99999999999999999999d"),
    ("x3.settle", "-1"),
    ("x3.settle", "2h"),
    ("x3.token_validity", "1"),
    ("x3.token_validity", "2d"),
    ("twilio.timeout", "0s"),
    ("twilio.timeout", ".nan"),
    ("sendgrid.timeout", "-5"),
    ("sendgrid.timeout", "1h"),
    ("retry.attempts", "0"),
    ("retry.attempts", "-1"),
    ("retry.attempts", "51"),
    ("retry.attempts", "1000000000000000000000000000000"),
    ("retry.initial", "-1"),
    ("retry.initial", "2m"),
    ("retry.max", "-0.5"),
    ("retry.max", "2h"),
    ("retry.budget", "-1"),
    ("retry.budget", ".inf"),
    ("retry.max_age", "0"),
    ("retry.max_age", "31d"),
    ("sending.concurrency", "0"),
    ("sending.concurrency", "65"),
    ("sending.rate_limit", "0"),
    ("sending.rate_limit", "-1"),
    ("sending.rate_limit", ".nan"),
    ("sending.rate_limit", ".inf"),
    ("sending.rate_limit", "1001"),
    ("sending.rate_limit", "1" + "0" * 400),
    ("sending.max_per_recipient", "-3"),
    ("sending.max_per_recipient", "0"),
    ("sending.max_per_recipient", "10001"),
    ("sending.max_segments", "0"),
    ("sending.max_segments", "25"),
    ("inbound.max_body", "-1"),
    ("inbound.max_body", "0"),
    ("inbound.max_body", "1023"),
    ("inbound.max_body", "1000000000"),
    ("inbound.transcription_wait", "-1"),
    ("inbound.transcription_wait", "2d"),
    ("inbound.phone_index_ttl", "-60"),
    ("inbound.phone_index_ttl", "31d"),
    ("inbound.notes[1].max_length", "0"),
    ("inbound.notes[1].max_length", "-1"),
    ("inbound.notes[1].max_length", "1000001"),
    ("rules[0].max_delay", "-5"),
    ("rules[0].max_delay", ".nan"),
    ("rules[0].max_delay", "11h"),
    ("monitoring.metrics_mode", "'0999'"),
    ("monitoring.metrics_mode", "'0777'"),
]

CASES: dict[str, Case] = {
    **{f"{key}={raw[:24]}": Case(example(key, raw), key) for key, raw in NUMBERS},
    # -- the file itself
    "latin-1 with a secret": Case(
        b"x3:\n  url: https://x3.example.com\n  password: hunter2-Zq9-S\xe9CRET\n",
        "the byte at offset 59 (line 3)",
    ),
    "utf-16": Case(example().encode("utf-16"), "not UTF-8 text: the byte at offset 0"),
    "a NUL byte": Case("x3:\n  password: ab\x00cd\n", "control character #x0000"),
    "too large": Case(
        example() + "#" * (1 << 20) + "\n", "larger than 1 MiB: not a configuration file"
    ),
    "a directory": Case(lambda d: d, "cannot read the configuration"),
    "python tag": Case(
        "x3: !!python/object/apply:os.system ['echo pwned']\n", "could not determine a constructor"
    ),
    "a date that is not one": Case(replaced("state_dir: state", "state_dir: 2026-13-45"), "line"),
    # -- aliases and nesting
    "billion laughs": Case(billion_laughs(), "expands to more than 100,000 values"),
    "an alias inside itself": Case("a: &a [*a]\n" + example(), "a[0]: an alias refers to its"),
    "a merge inside itself": Case("a: &a {<<: *a}\n" + example(), "a.<<: an alias refers"),
    "deep flow nesting": Case("x: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested deeper"),
    "deep block nesting": Case(
        "".join(f"{' ' * i}k{i}:\n" for i in range(200)) + " " * 200 + "v: 1\n", "nested deeper"
    ),
    "a heartbeat for a command that has none": Case(
        replaced("heartbeat_url: https://hc-ping.example.com/abc", "heartbeat_url: {replay: x}"),
        "monitoring.heartbeat_url.replay: expected one of poll, ingest",
    ),
    "a heartbeat that is not a URL": Case(
        replaced("heartbeat_url: https://hc-ping.example.com/abc", "heartbeat_url: {poll: x}"),
        "monitoring.heartbeat_url.poll: expected an http(s) URL",
    ),
    # -- duplicate keys
    "duplicate top-level section": Case(example() + "x3: {url: https://evil.example}\n", "x3:"),
    "duplicate password": Case(
        replaced("  password: ${X3_PASSWORD}\n", "  password: ${X3_PASSWORD}\n  password: x\n"),
        "x3.password: duplicate key",
    ),
    "duplicate in a flow mapping": Case(
        replaced(
            "quiet_hours:", "quiet_hours: {start: '20:00', start: '21:00', end: '07:00'}\n  x_:"
        ),
        "sending.quiet_hours.start: duplicate key",
    ),
    # -- ${...} that is not a variable reference
    **{
        f"reference {ref}": Case(replaced("${X3_PASSWORD}", ref), f"x3.password: malformed {why}")
        for ref, why in [
            ("${X3 PASSWORD}", "variable reference at character 1: a name holds only"),
            ("${X3_PASSWORD", "variable reference at character 1: no closing }"),
            ("${}", "variable reference at character 1: ${} names no variable"),
            ("${X3_PASSWORD:pw}", "variable reference at character 1: a default is written"),
            ("${9X}", "variable reference at character 1: a name holds only"),
            ("pre-${X3-PASSWORD}", "variable reference at character 5: a name holds only"),
            ("${A:-${B}}", "variable reference at character 1: references do not nest"),
        ]
    },
    # -- URLs: credentials stay out of them, and a URL has a scheme and a host
    "credentials in x3.url": Case(
        replaced("${X3_URL}", f"https://admin:{SECRET}@x3.example.com:8124"),
        "x3.url: credentials in the URL are refused",
    ),
    "a user in x3.url": Case(
        replaced("${X3_URL}", f"https://{SECRET}@x3.example.com:8124"),
        "x3.url: credentials in the URL",
    ),
    "credentials in twilio.api_url": Case(
        replaced("${TWILIO_API_URL:-https://api.twilio.com}", f"https://AC1:{SECRET}@api.x.com"),
        "twilio.api_url: credentials in the URL",
    ),
    "no scheme in x3.url": Case(
        replaced("${X3_URL}", "x3.example.com:8124"),
        "x3.url: expected an http(s) URL such as https://host:8124, got 'x3.example.com:8124'",
    ),
    "no scheme and credentials": Case(
        replaced("${X3_URL}", f"admin:{SECRET}@x3.example.com:8124"),
        "x3.url: expected an http(s) URL such as https://host:8124",
    ),
    "ftp x3.url": Case(replaced("${X3_URL}", "ftp://x3.example.com"), "x3.url: expected an http"),
    "no host in x3.url": Case(replaced("${X3_URL}", "https://"), "x3.url: expected an http(s)"),
    "bad port in x3.url": Case(
        replaced("${X3_URL}", "https://x3.example.com:81a24"), "x3.url: expected a port number"
    ),
    "query in x3.url": Case(replaced("${X3_URL}", "https://x3.example.com/?a=1"), "x3.url: "),
    "public_url without scheme": Case(
        replaced("${X3TWILIO_PUBLIC_URL:-https://x3twilio.example.com}", "x3twilio.example.com"),
        "public_url: expected an http(s) URL",
    ),
    "heartbeat without scheme": Case(
        replaced("https://hc-ping.example.com/abc", "hc-ping.example.com/abc"),
        "monitoring.heartbeat_url: expected an http(s) URL",
    ),
}


@dataclass(frozen=True)
class Outcome:
    file: Path
    code: int
    stdout: str
    stderr: str


def _run(file: Path) -> Outcome:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("X3", "TWILIO", "SENDGRID"))}
    command = [sys.executable, "-m", "x3twilio", "--config", str(file), "check", "--offline"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env | ENV, timeout=30, errors="replace"
        )
    except subprocess.TimeoutExpired:
        return Outcome(file, -1, "", "timed out: the file made the loader hang")
    return Outcome(file, done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case's file, checked by the real CLI, all at once."""
    base = tmp_path_factory.mktemp("hostile")
    files = {}
    for i, (name, case) in enumerate(CASES.items()):
        folder = base / f"case{i}"
        folder.mkdir()
        file = folder / "x3twilio.yaml"
        if callable(case.content):
            file = case.content(folder)
        elif isinstance(case.content, bytes):
            file.write_bytes(case.content)
        else:
            file.write_text(case.content, encoding="utf-8")
        files[name] = file
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 2)) as pool:
        return dict(zip(files, pool.map(_run, files.values()), strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_config_exits_78_with_one_line_naming_file_and_path(name, outcomes):
    outcome, case = outcomes[name], CASES[name]
    said = outcome.stdout + outcome.stderr
    assert outcome.code == 78, said
    assert outcome.stdout == ""
    assert outcome.stderr.count("\n") == 1, said  # one line, which cron mails
    assert outcome.stderr.startswith(f"x3twilio: {outcome.file}: "), said
    assert case.where in outcome.stderr and RAW not in said, said
    assert "Traceback" not in said and "internal error" not in said
    assert SECRET not in said and "Zq9" not in said and "hunter2" not in said


def test_the_example_with_its_variables_set_is_valid(outcomes):
    """The cases above fail for what they change, not because the base file is wrong."""
    assert load_config(EXAMPLE, env=ENV).x3.password == SECRET
    path = Path(next(iter(outcomes.values())).file).parent.parent / "valid.yaml"
    path.write_text(example())
    assert _run(path).code == 0


# -- what stays accepted ------------------------------------------------------------------


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Any:
    path = tmp_path / "x3twilio.yaml"
    path.write_text(text)
    return load_config(path, env=ENV if env is None else env)


@pytest.mark.parametrize(
    ("key", "raw", "read"),
    [
        ("x3.lookback", "0", lambda c: c.x3.lookback == 0),
        ("x3.lookback", "7d", lambda c: c.x3.lookback == 7 * 86400),
        ("x3.timeout", "100ms", lambda c: c.x3.timeout == 0.1),
        ("x3.timeout", "10m", lambda c: c.x3.timeout == 600),
        ("x3.page_size", "200", lambda c: c.x3.page_size == 200),
        ("retry.attempts", "1", lambda c: c.retry.attempts == 1),
        ("retry.initial", "0s", lambda c: c.retry.initial == 0),
        ("sending.rate_limit", "0.5", lambda c: c.sending.rate_limit == 0.5),
        ("sending.max_per_recipient", "1", lambda c: c.sending.max_per_recipient == 1),
        ("inbound.max_body", "1024", lambda c: c.inbound.max_body == 1024),
        ("inbound.phone_index_ttl", "0", lambda c: c.inbound.phone_index_ttl == 0),
        ("rules[0].max_delay", "10h", lambda c: c.rules[0].max_delay == 36000),
    ],
)
def test_the_bounds_themselves_are_accepted(tmp_path, key, raw, read):
    assert read(load(tmp_path, example(key, raw)))


def test_a_dollar_before_a_brace_is_written_twice(tmp_path):
    text = replaced("from_name: Purchasing", "from_name: 'Pay $${amount} now, ${X3_USER}'")
    assert load(tmp_path, text).sendgrid.from_name == "Pay ${amount} now, admin"


def test_a_value_from_the_environment_is_never_read_for_references(tmp_path):
    config = load(tmp_path, example(), {**ENV, "X3_PASSWORD": "a${b}c $${d"})
    assert config.x3.password == "a${b}c $${d"


def test_aliases_and_merge_keys_within_bounds_still_work(tmp_path):
    text = example().replace("retry:\n", "retry: &retry\n", 1)
    text = text.replace("sending:\n", "spare: {<<: *retry, attempts: 2}\nsending:\n", 1)
    with pytest.raises(ConfigError, match=r"x3twilio.yaml: spare: unknown field"):
        load(tmp_path, text)  # read, merged, then refused only for being an unknown key
