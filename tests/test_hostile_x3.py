"""Whatever X3 answers, `poll` never crashes, never leaks a credential, never moves a
watermark past what it read, and one bad record never holds up the good ones."""

from __future__ import annotations

import random

import pytest

from tests.conftest import Env
from tests.test_poll import ONLY_PO_APPROVED, approve_one_fr001_order
from x3twilio.simulators.x3 import FAULT_KINDS


def clean(env: Env, text: str) -> None:
    assert "Traceback" not in text and "internal error" not in text
    assert env.x3.password not in text and env.twilio.auth_token not in text


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_every_refusal_of_x3_is_a_clear_exit_69_and_moves_nothing(env: Env, kind: str):
    order = approve_one_fr001_order(env)
    marks = env.watermarks()
    env.configure(
        rules=ONLY_PO_APPROVED,
        x3={"timeout": "0.5s"},
        retry={"attempts": 2, "initial": "0.05s", "max": "0.1s", "budget": "2s"},
    )
    env.x3.faults.add(kind, match="PORDER", times=0, delay=1)
    result = env.run("poll", expect=69)
    clean(env, result.stdout + result.stderr)
    assert result.stderr.startswith("x3twilio: X3") and result.stderr.count("\n") == 1
    assert env.watermarks() == marks and env.twilio.messages == []
    env.x3.faults.clear()
    env.run("poll")  # X3 back: the change is sent, once
    assert [m["body"].split()[1] for m in env.twilio.messages] == [order]


BAD_VALUES = {
    "TOTORD": ["n/a", True, [1], {"$value": 1}, "NaN"],
    "EXTRCPDAT1": ["tomorrow", 20261201, "2026-13-45"],
    "APPFLG": ["approved", 3.5, False],
}  # (a bad change stamp cannot be stored in X3's typed column: decode's unit tests cover it)


def test_garbage_records_cost_only_themselves(env: Env):
    order = approve_one_fr001_order(env)
    template = {k: v for k, v in env.x3.get("PORDER", order).items() if not k.startswith("$")}
    stamp = env.x3.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    rng, bad = random.Random(7), []
    for i, (code, values) in enumerate(sorted(BAD_VALUES.items())):
        for j, value in enumerate(values):
            bad.append({**template, "POHNUM": f"POBAD{i}{j}", code: value})
    rng.shuffle(bad)
    env.x3.add_records("PORDER", bad[::2], stamp)
    env.x3.add_records("PORDER", bad[1::2], stamp)
    env.next_second()
    result = env.run("poll", expect=1)
    clean(env, result.stdout + result.stderr)
    rejected = {r["record"] for r in env.audit() if r["event"] == "record.rejected"}
    assert rejected == {row["POHNUM"] for row in bad}
    assert [m["body"].split()[1] for m in env.twilio.messages] == [order]
