"""`check` and `x3 describe` against a site's X3 (api1): what it exposes, what is missing, the fix.

Every test drives the real CLI against the X3 simulator on loopback, switched to the site
variant at hand (renamed fields, no prototypes, custom representations, licence refusals).
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import Env
from tests.test_poll import ONLY_PO_APPROVED, approve_one_fr001_order
from x3twilio.simulators import RunningServer

RENAMED = {"PORDER": {"EXTRCPDAT1": "ZEXTRCPDAT"}}
MISSING = "does not expose EXTRCPDAT1 (expected_date)"
FIX = "set sources.purchase_orders.fields.expected_date.code to this site's name for it"
EXPECTED_TODAY = [
    {
        "name": "po-expected-today",
        "source": "purchase_orders",
        "due": "expected_date today",
        "to": ["supplier"],
        "message": "Order {order_number} is expected today.",
    }
]


def rows(output: str) -> dict[str, list[str]]:
    """check's table as piped: mark, name, result, fix (tab separated)."""
    table = {}
    for line in output.splitlines():
        cells = line.split("\t")
        if len(cells) >= 3 and cells[0] in ("✓", "✗"):
            table[cells[1]] = cells
    return table


@pytest.mark.parametrize("prototypes", [True, False], ids=["prototypes", "sampled"])
def test_check_finds_every_field_of_the_example_on_a_standard_site(
    env: Env, shim: RunningServer, prototypes: bool
):
    env.x3.prototypes = prototypes
    table = rows(env.run("check").stdout)
    how = "prototype" if prototypes else "sampled record"
    for name in ("X3 purchase_orders fields", "X3 open_items fields", "X3 payments fields"):
        assert table[name][0] == "✓", table[name]
        assert f"by {how}" in table[name][2] and "UPDDATTIM datetime" in table[name][2]
    assert "EXTRCPDAT1 date" in table["X3 purchase_orders fields"][2]
    assert "CLEFLG yesno" in table["X3 purchase_orders fields"][2]
    suppliers = table["X3 suppliers"]
    assert suppliers[0] == "✓" and "contact_mobile (BPSBPRCNT.CNTMOB)" in suppliers[2]
    assert table["X3 notes on partner"][0] == "✓"  # YSMSLOG, the example's target


@pytest.mark.x3(renamed=RENAMED)
def test_a_renamed_field_is_named_with_its_fix_by_check_and_stops_poll_with_78(env: Env):
    check = env.run("check", expect=78).stdout
    row = rows(check)["X3 purchase_orders fields"]
    assert row[0] == "✗" and MISSING in row[2] and FIX in row[3]
    approve_one_fr001_order(env)  # a changed order, read by a rule whose template needs it
    poll = env.run("poll", expect=78).stderr
    assert "source purchase_orders" in poll and MISSING in poll and FIX in poll


@pytest.mark.x3(renamed=RENAMED)
def test_x3_refusing_a_property_of_the_query_is_a_setup_error_not_an_outage(env: Env):
    env.configure(rules=EXPECTED_TODAY)  # the field is in the query's where: X3 answers 500
    before = env.x3.requests
    poll = env.run("poll", expect=78).stderr
    assert MISSING in poll and "X3 says:" in poll and FIX in poll
    assert env.x3.requests - before == 2  # X3's clock, then the query: never retried


def test_a_raw_code_that_x3_does_not_expose_is_a_cross_not_a_silent_no_match(env: Env):
    rule = {**ONLY_PO_APPROVED[0], "when": {"ZURGENT": 2}}
    env.configure(rules=[rule])
    row = rows(env.run("check", expect=78).stdout)["X3 purchase_orders fields"]
    assert "does not expose ZURGENT (needed by rule po-approved)" in row[2]


def test_partner_fields_that_this_site_lacks_are_named(env: Env):
    env.configure(x3={"partners": {"supplier": {"fields": {"contacts": "ZCNT", "phones": "ZTEL"}}}})
    row = rows(env.run("check", expect=78).stdout)["X3 suppliers"]
    assert row[0] == "✗" and "no mobile can be found" in row[2]
    assert "contact_mobile (ZCNT.CNTMOB)" in row[2] and "x3.partners.supplier.fields" in row[3]


def test_a_note_target_without_its_field_is_a_cross(env: Env):
    target = {"about": "supplier", "mode": "append", "field": "ZNOTES"}
    env.configure(inbound={"notes": [target]})
    row = rows(env.run("check", expect=78).stdout)["X3 notes on supplier"]
    assert "BPSUPPLIER (BPSUPPLIER.$edit, by prototype) has no ZNOTES" in row[2]


@pytest.mark.x3(representations={"ZBPSUPPLIER": {"class": "BPSUPPLIER", "extra": {"ZNOTES": "A"}}})
def test_a_notes_representation_of_the_site_is_writable_and_its_length_is_checked(
    env: Env, shim: RunningServer
):
    target = {"about": "supplier", "mode": "append", "representation": "ZBPSUPPLIER"}
    env.configure(inbound={"notes": [{**target, "field": "ZNOTES"}]})
    assert rows(env.run("check").stdout)["X3 notes on supplier"][0] == "✓"
    env.configure(inbound={"notes": [{**target, "field": "ZNOTES", "max_length": 4000}]})
    row = rows(env.run("check", expect=78).stdout)["X3 notes on supplier"]
    assert "ZNOTES holds" in row[2] and "set max_length:" in row[3]


def test_x3_describe_lists_names_kinds_and_samples(env: Env):
    listing = env.run("x3", "describe", "PORDER").stdout
    assert "EXTRCPDAT1" in listing and "APPFLG" in listing
    lines = [
        json.loads(line)
        for line in env.run("x3", "describe", "PORDER", "--json").stdout.splitlines()
    ]
    kinds = {row["name"]: row["kind"] for row in lines}
    assert kinds["EXTRCPDAT1"] == "date" and kinds["CLEFLG"] == "yesno"
    assert kinds["APPFLG"] == "menu" and kinds["TOTORD"] == "decimal"
    details = env.run("x3", "describe", "BPSUPPLIER", "--facet", "$details", "--json").stdout
    names = {json.loads(line)["name"] for line in details.splitlines()}
    assert {"BPSBPRCNT[].CNTMOB", "BPSBPRBPA[].BPSBPRBPACOLTEL[].TELNUM"} <= names
    assert '"EXTRCPDAT1"' not in listing and 'EXTRCPDAT1\tdate\t"20' in listing  # a sample


def test_x3_describe_samples_a_record_where_there_is_no_prototype(env: Env):
    env.x3.prototypes = False
    result = env.run("x3", "describe", "BPSUPPLIER", "--facet", "$details", "--json")
    samples = {json.loads(line)["name"]: json.loads(line) for line in result.stdout.splitlines()}
    assert samples["BPSBPRCNT[].TCDEFFLG"]["kind"] == "yesno"
    assert samples["BPSNUM"]["sample"] == "FR001"


def test_the_licence_refusing_web_services_is_explained_and_not_retried(env: Env):
    env.configure(rules=ONLY_PO_APPROVED)
    env.x3.faults.add("licence", match="PORDER", times=0)
    before = env.x3.requests
    poll = env.run("poll", expect=69).stderr
    assert "licence" in poll and "WSSIZELIMIT" in poll
    assert env.x3.requests - before == 1


def test_a_record_with_a_value_of_the_wrong_kind_costs_that_record_only(env: Env):
    order = approve_one_fr001_order(env)
    template = {k: v for k, v in env.x3.get("PORDER", order).items() if not k.startswith("$")}
    stamp = env.x3.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    env.x3.add_records("PORDER", [{**template, "POHNUM": "POBAD1", "TOTORD": "n/a"}], stamp)
    env.next_second()
    result = env.run("poll", expect=1)
    assert "1 records rejected" in result.stdout
    (rejected,) = [r for r in env.audit() if r["event"] == "record.rejected"]
    assert (rejected["record"], rejected["field"], rejected["value"]) == ("POBAD1", "TOTORD", "n/a")
    assert [m["body"].split()[1] for m in env.twilio.messages] == [order]  # the good one went


@pytest.mark.x3(query_stamps=False)
def test_a_query_facet_without_the_change_stamp_is_named(env: Env):
    row = rows(env.run("check", expect=78).stdout)["X3 purchase_orders fields"]
    assert "does not expose UPDDATTIM (the change stamp)" in row[2]
    assert "set sources.purchase_orders.timestamp" in row[3]
