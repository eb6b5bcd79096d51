"""`x3twilio poll` end to end: the real CLI in a subprocess, real HTTP to the simulators."""

from __future__ import annotations

import time
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import pytest
import requests

from tests.conftest import Env

pytestmark = pytest.mark.parametrize("env", ["rest", "graphql", "rest-1/2"], indirect=True)
HISTORY = "2020-01-01T00:00:00Z"
# FR001 is texted at its default contact's mobile (BPSBPRCNT.CNTMOB "06 98 76 54 32", FR),
# not at its head office's mobile slot ("06 12 34 56 78"), which a reply may come from.
FR001_TEXTED = "+33698765432"
ONLY_PO_APPROVED = [
    {
        "name": "po-approved",
        "source": "purchase_orders",
        "when": {"approval": "approved", "closed": "no"},
        "to": ["supplier"],
        "message": "Order {order_number} is approved: please deliver by "
        "{expected_date:%d %b %Y}. Total {total:,.2f} {currency}.",
    },
]


def po_text(po: dict) -> str:
    expected = date.fromisoformat(po["EXTRCPDAT1"]).strftime("%d %b %Y")
    total = f"{Decimal(str(po['TOTORD'])):,.2f}"
    return (
        f"Order {po['POHNUM']} is approved: please deliver by {expected}. "
        f"Total {total} {po['CUR']}."
    )


def approved(env: Env) -> list[dict]:
    return [p for p in env.x3.records("PORDER") if p["APPFLG"] == 3 and p["CLEFLG"] is False]


def bodies_by_order(env: Env) -> Counter:
    return Counter(m["body"].split()[1] for m in env.twilio.messages)


def edit(env: Env, cls: str, key: str, changes: dict) -> None:
    """Change a record through api1's $edit, as X3's UI would (Yes/No as the build sends it)."""
    x3 = env.x3
    if x3.codec.menu:  # an older build: Yes/No as 1/2
        changes = {k: (2 if v else 1) if isinstance(v, bool) else v for k, v in changes.items()}
    url = f"{env.x3_server.url}/api1/x3/erp/{x3.folder}/{cls}('{key}')?representation={cls}.$edit"
    requests.put(url, json=changes, auth=(x3.user, x3.password), timeout=5).raise_for_status()


def set_mobile(env: Env, supplier: str, mobile: str) -> None:
    """Change the default contact's mobile of a supplier in X3, through $edit."""
    contacts = env.x3.get("BPSUPPLIER", supplier)["BPSBPRCNT"]
    main = next(c for c in contacts if c["TCDEFFLG"])
    main["CNTMOB"] = mobile
    rows = [{k: v for k, v in c.items() if not k.startswith("$")} for c in contacts]
    edit(env, "BPSUPPLIER", supplier, {"BPSBPRCNT": rows})


def approve_one_fr001_order(env: Env) -> str:
    """A first poll (from now), then a buyer approves one FR001 order in X3 through $edit."""
    env.configure(rules=ONLY_PO_APPROVED)
    env.run("poll")
    po = next(p for p in env.x3.records("PORDER") if p["BPSNUM"] == "FR001" and p["APPFLG"] == 1)
    edit(env, "PORDER", po["POHNUM"], {"APPFLG": 3})
    env.next_second()
    return str(po["POHNUM"])


def test_each_approved_order_texts_its_supplier_once_and_the_next_poll_sends_nothing(env):
    env.configure(rules=ONLY_PO_APPROVED)
    env.run("poll", "--since", HISTORY, expect=1)  # US005's magic number fails permanently
    orders = approved(env)
    per_order = bodies_by_order(env)
    audit = env.audit()
    skipped = {r["record"] for r in audit if r["event"] == "notification.skipped"}
    failed = {r["record"] for r in audit if r["event"] == "notification.failed"}
    for po in orders:
        outcomes = per_order[po["POHNUM"]] + (po["POHNUM"] in skipped) + (po["POHNUM"] in failed)
        assert outcomes == 1, po["POHNUM"]
    assert set(per_order) | skipped | failed == {p["POHNUM"] for p in orders}
    fr001 = [p for p in orders if p["BPSNUM"] == "FR001"]
    assert fr001, "the dataset has approved orders of FR001"
    for po in fr001:
        (message,) = [m for m in env.twilio.messages if po["POHNUM"] in m["body"]]
        assert message["to"] == FR001_TEXTED
        assert message["body"] == po_text(po)
    assert failed <= {p["POHNUM"] for p in orders if p["BPSNUM"] == "US005"}

    sent_before = len(env.twilio.messages)
    env.run("poll", "--since", HISTORY)
    env.run("poll")
    assert len(env.twilio.messages) == sent_before


def test_first_poll_starts_from_now_and_an_approval_between_polls_sends_exactly_one(env):
    env.configure(rules=ONLY_PO_APPROVED)
    env.run("poll")
    assert env.twilio.messages == []
    (po,) = [p for p in env.x3.records("PORDER") if p["BPSNUM"] == "FR001" and p["APPFLG"] == 1][:1]
    edit(env, "PORDER", po["POHNUM"], {"APPFLG": 3})
    env.next_second()
    env.run("poll")
    env.run("poll")
    assert [(m["to"], m["body"]) for m in env.twilio.messages] == [
        (FR001_TEXTED, po_text(env.x3.get("PORDER", po["POHNUM"])))
    ]
    events = [r["event"] for r in env.audit() if r.get("record") == po["POHNUM"]]
    assert events == ["notification.queued", "notification.sent"]


def _same_second_orders(env: Env, count: int) -> list[dict]:
    template = env.x3.get("PORDER", approved(env)[0]["POHNUM"])
    stamp = env.x3.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = []
    for i in range(count):
        row = {k: v for k, v in template.items() if not k.startswith("$")}
        row.update(POHNUM=f"POBULK{i:04d}", BPSNUM="FR001", APPFLG=3, CLEFLG=False, UPDDATTIM=stamp)
        rows.append(row)
    env.x3.add_records("PORDER", rows)
    return rows


def test_fifty_orders_stamped_in_one_second_across_pages_are_all_notified_once(env):
    env.configure(rules=ONLY_PO_APPROVED, x3={"page_size": 20})
    env.run("poll")
    rows = _same_second_orders(env, 50)
    env.next_second()
    env.run("poll")
    env.run("poll")
    per_order = bodies_by_order(env)
    assert {r["POHNUM"]: per_order[r["POHNUM"]] for r in rows} == {r["POHNUM"]: 1 for r in rows}
    assert len(env.twilio.messages) == 50


def test_an_x3_500_on_page_3_keeps_the_watermark_and_the_next_poll_catches_up(env):
    env.configure(rules=ONLY_PO_APPROVED, x3={"page_size": 20})
    env.run("poll")
    before = env.watermarks()
    rows = _same_second_orders(env, 50)
    env.next_second()
    # page 1 and 2 pass, then page 3 fails on every retry
    env.x3.faults.add("500", match=env.query_match("PORDER", count=20), skip=2, times=0)
    result = env.run("poll", expect=69)
    assert "HTTP 500" in result.stderr and "Traceback" not in result.stderr
    assert env.watermarks() == before
    env.x3.faults.clear()
    env.run("poll")
    env.run("poll")
    per_order = bodies_by_order(env)
    assert all(per_order[r["POHNUM"]] == 1 for r in rows)
    assert len(env.twilio.messages) == 50


def test_a_due_date_rule_fires_once_per_open_item_and_not_again(env):
    config = env.configure(
        rules=[
            {
                "name": "invoice-due-soon",
                "source": "open_items",
                "due": "due_date within 3 days",
                "when": {"open_amount": {"gt": 0}},
                "to": ["finance"],
                "message": "{document} due {due_date:%d %b}: {open_amount:,.2f} {currency}",
            }
        ]
    )
    today = env.x3.now().date()
    due = [
        i
        for i in env.x3.records("GACCDUDATE")
        if i["FLGCLE"] is False
        and today <= date.fromisoformat(i["DUDDAT"]) <= today + timedelta(days=3)
        and i["AMTCUR"] > i["PAYCUR"]
    ]
    assert due, "the dataset has open items due within 3 days"
    env.run("poll")
    finance = len([m for m in config["groups"]["finance"] if m.startswith("+")])  # SMS: phones
    assert len(env.twilio.messages) == len(due) * finance
    env.run("poll")
    assert len(env.twilio.messages) == len(due) * finance


def test_an_unparseable_phone_is_skipped_and_a_magic_invalid_number_fails_permanently(env):
    env.configure(rules=ONLY_PO_APPROVED)
    env.run("poll")
    by_supplier = {}
    for po in env.x3.records("PORDER"):
        by_supplier.setdefault(po["BPSNUM"], po)
    edit(env, "PORDER", by_supplier["FR009"]["POHNUM"], {"APPFLG": 3, "CLEFLG": False})
    edit(env, "PORDER", by_supplier["US005"]["POHNUM"], {"APPFLG": 3, "CLEFLG": False})
    env.next_second()
    result = env.run("poll", expect=1)
    assert "1 failed, 1 skipped" in result.stdout
    audit = {
        r["record"]: r
        for r in env.audit()
        if r["event"].startswith("notification.") and r["event"] != "notification.queued"
    }
    skipped = audit[by_supplier["FR009"]["POHNUM"]]
    assert (skipped["event"], skipped["reason"]) == ("notification.skipped", "invalid_number")
    failed = audit[by_supplier["US005"]["POHNUM"]]
    assert failed["event"] == "notification.failed"
    assert failed["error"] == {
        "code": 21211,
        "message": failed["error"]["message"],
        "permanent": True,
    }
    assert env.twilio.messages == []
    env.run("poll")  # a permanent failure is left for a person, not retried
    assert env.twilio.messages == []


def test_two_polls_started_together_one_exits_75_and_nothing_is_sent_twice(env):
    env.configure(rules=ONLY_PO_APPROVED)
    env.x3.latency_ms = 150
    first, second = env.popen("poll", "--since", HISTORY), None
    time.sleep(0.3)  # the first holds the lock by now
    second = env.popen("poll", "--since", HISTORY)
    codes = sorted(p.wait(timeout=120) for p in (first, second))
    assert codes[0] in (0, 1) and codes[1] == 75
    assert "another run holds" in (first.stderr.read() + second.stderr.read())
    assert max(bodies_by_order(env).values()) == 1


@pytest.mark.parametrize(
    ("config", "where"),
    [
        ("x3:\n  url: [\n", "x3twilio.yaml: line"),
        ("x3: {}\n", "x3twilio.yaml: x3.url: required field is missing"),
    ],
)
def test_a_broken_config_exits_78_naming_file_and_path(env, config, where):
    env.config_path.write_text(config)
    result = env.run("poll", expect=78)
    assert where in result.stderr and "Traceback" not in result.stderr


def test_dry_run_prints_decisions_and_writes_no_state(env):
    env.configure(rules=ONLY_PO_APPROVED)
    result = env.run("poll", "--dry-run", "--since", HISTORY)
    assert result.stdout.splitlines()[0] == "rule\trecord\tto\toutcome\tmessage"
    assert f"{FR001_TEXTED}\twould send\tOrder " in result.stdout
    assert env.twilio.messages == [] and not env.state_dir.exists()


def test_wrong_x3_password_exits_69_with_one_clear_line(env):
    env.configure(x3=env.wrong_credentials())
    result = env.run("poll", expect=69)
    assert result.stderr.count("\n") == 1
    assert "credentials refused (HTTP 401)" in result.stderr
    assert "wrong" not in result.stderr


@pytest.mark.parametrize("fault", ["html", "html200", "garbage", "diagnoses"])
def test_garbage_from_x3_is_one_clear_error(env, fault):
    env.configure(rules=ONLY_PO_APPROVED)
    env.x3.faults.add(fault, match="PORDER", times=0)
    result = env.run("-q", "poll", expect=69)
    assert result.stderr.startswith("x3twilio: X3: ") and "Traceback" not in result.stderr


def test_the_quiet_flag_prints_nothing_on_success(env):
    env.configure(rules=ONLY_PO_APPROVED)
    result = env.run("-q", "poll")
    assert result.stdout == "" and result.stderr == ""


def test_twilio_down_exits_69_and_keeps_the_notification_queued(env):
    approve_one_fr001_order(env)
    env.configure(rules=ONLY_PO_APPROVED, twilio={"settle": "2s"})  # the simulator lists at once
    env.twilio.faults.add("500", match="Messages.json", times=0)
    env.run("poll", expect=69)
    env.twilio.faults.clear()
    # it stays in the outbox, in flight: the next run checks Twilio's list before sending
    env.run("poll")
    assert [m["to"] for m in env.twilio.messages] == [FR001_TEXTED]


def test_customers_are_texted_at_the_mobiles_their_x3_records_hold(env):
    rule = {
        "name": "invoice-due",
        "source": "open_items",
        "due": "due_date within 2 days",
        "when": {"partner_type": "customer", "open_amount": {"gt": 0}},
        "to": ["customer"],
        "message": "Invoice {document} is due {due_date:%d %b}.",
    }
    env.configure(rules=[rule])
    env.run("poll")
    assert sorted(m["to"] for m in env.twilio.messages) == [
        "+33614253647",  # CFR002: no mobile on its address, its contact's (BPCBPRCNT.CNTMOB)
        "+33766543210",  # CFR003: no contact, its address's mobile slot (BPCBPRBPACOLTEL)
        "+447845667788",  # CGB001: the same, parsed with its address country (GB)
    ]
