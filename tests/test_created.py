"""The creation stamp: sources expose it, `on: created` rules read it, state says since when."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Env
from x3twilio.builtin_sources import BUILTIN
from x3twilio.config import RetryConfig, X3Config
from x3twilio.decoding import Undecodable
from x3twilio.errors import ConfigError, StateError
from x3twilio.rules import Rule, load_rules, needed, reads_created
from x3twilio.simulators import RunningServer, serve
from x3twilio.simulators.x3 import X3Simulator
from x3twilio.source_config import load_sources
from x3twilio.sources import Record, decode, fields_for, not_exposed, stamped
from x3twilio.state import Watermarks
from x3twilio.transport import Retrier
from x3twilio.x3.graphql import GraphQLClient
from x3twilio.x3.rest import RestClient
from x3twilio.yamlnode import Node, load_yaml

ORDERS = BUILTIN["purchase_orders"]
PO = {
    "POHNUM": "POFR0110113",
    "BPSNUM": "FR001",
    "APPFLG": 3,
    "CLEFLG": False,
    "UPDDATTIM": "2026-11-26T09:14:07Z",
    "CREDATTIM": "2026-11-20T08:00:00Z",
}
CREATED = {"name": "new-po", "source": "purchase_orders", "on": "created", "to": ["supplier"]}
APPROVED = {"name": "approved", "source": "purchase_orders", "when": {"approval": "approved"}}


def load(*specs: dict[str, Any], sources: Any = None) -> tuple[Rule, ...]:
    items = [{"to": ["supplier"], "message": "PO {order_number}", **spec} for spec in specs]
    return load_rules(Node("rules.yaml", "", {"rules": items}), sources or BUILTIN, {})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- decoding -------------------------------------------------------------------------------


def test_an_api1_row_decodes_its_creation_stamp_as_x3_wrote_it():
    record = decode(ORDERS, PO, fields_for(ORDERS, {"approval"}), created=True)
    assert (record.created, record.stamp) == ("2026-11-20T08:00:00Z", "2026-11-26T09:14:07Z")
    assert decode(ORDERS, PO).created == "2026-11-20T08:00:00Z"  # decoding everything


def test_a_graphql_shaped_record_with_milliseconds_decodes_the_same_way():
    # The GraphQL client hands back api1's shape: _createStamp arrives as CREDATTIM.
    row = {**PO, "$key": "POFR0110113", "CREDATTIM": "2026-11-20T08:00:00.000Z"}
    assert decode(ORDERS, row, (), created=True).created == "2026-11-20T08:00:00.000Z"


def test_the_creation_stamp_is_read_only_when_asked_on_the_hot_path():
    assert decode(ORDERS, PO, fields_for(ORDERS, {"approval"})).created is None
    garbage = {**PO, "CREDATTIM": "yesterday"}
    assert decode(ORDERS, garbage, (), created=False).created is None  # never rejected for it


@pytest.mark.parametrize("empty", [None, ""])
def test_an_empty_or_absent_creation_stamp_is_none(empty):
    row = {k: v for k, v in PO.items() if k != "CREDATTIM"}
    if empty is not None:
        row["CREDATTIM"] = empty
    assert decode(ORDERS, row, (), created=True).created is None


@pytest.mark.parametrize("garbage", ["yesterday", "2026-11-20T08:00:00", 20261120, True])
def test_a_garbage_creation_stamp_rejects_that_record_naming_field_and_value(garbage):
    with pytest.raises(Undecodable) as caught:
        decode(ORDERS, {**PO, "CREDATTIM": garbage}, (), created=True)
    assert (caught.value.key, caught.value.code, caught.value.value) == (
        "POFR0110113",
        "CREDATTIM",
        garbage,
    )
    assert str(caught.value).startswith("POFR0110113: field CREDATTIM: the creation stamp")


def test_a_source_names_its_own_creation_stamp_and_details_fall_back_to_credate():
    node = Node("x3twilio.yaml", "", {"sources": {"purchase_orders": {"created": "ZCREDAT"}}})
    mine = load_sources(node)["purchase_orders"]
    assert (mine.created, BUILTIN["open_items"].created) == ("ZCREDAT", "CREDATTIM")
    row = {**PO, "ZCREDAT": "2026-01-02T03:04:05Z"}
    assert decode(mine, row, (), created=True).created == "2026-01-02T03:04:05Z"
    details = {k: v for k, v in PO.items() if k not in ("UPDDATTIM", "CREDATTIM")}
    details |= {"$etag": "2026-11-26T09:14:07Z", "$creDate": "2026-11-20T08:00:00.060Z"}
    assert decode(ORDERS, stamped(ORDERS, details)).created == "2026-11-20T08:00:00.060Z"


# -- rules ----------------------------------------------------------------------------------


def test_on_created_loads_alone_or_with_conditions():
    big = {**CREATED, "name": "big", "when": APPROVED["when"]}
    alone, both, plain = load(CREATED, big, APPROVED)
    assert alone.on_created and not alone.conditions
    assert both.on_created and [c.describe() for c in both.conditions] == ["approval eq 'approved'"]
    assert not plain.on_created


def test_a_bare_on_key_in_yaml_is_the_trigger_not_the_boolean_true():
    text = "rules:\n- {name: n, source: purchase_orders, on: created, to: [supplier], message: x}\n"
    node = Node("rules.yaml", "", load_yaml(text, "rules.yaml"))
    (rule,) = load_rules(node, BUILTIN, {})
    assert rule.on_created


def test_an_unknown_event_is_a_config_error_listing_created():
    with pytest.raises(ConfigError, match=r"rules\[0\]\.on: unknown event 'updated'; .*created"):
        load({**CREATED, "on": "updated"})


def test_on_created_with_a_due_date_is_a_config_error():
    with pytest.raises(ConfigError, match=r"rules\[0\]\.on: .*not both"):
        load({**CREATED, "due": "expected_date in 3 days"})


def test_a_misspelt_on_is_suggested():
    with pytest.raises(ConfigError, match="did you mean 'on'"):
        load({**APPROVED, "onn": "created"})


def test_created_since_holds_only_for_records_created_at_or_after_since():
    (rule, plain) = load(CREATED, APPROVED)
    record = decode(ORDERS, PO, (), created=True)
    assert rule.created_since(record, at("2026-11-20T08:00:00"))  # the same second counts
    assert rule.created_since(record, at("2026-11-19T00:00:00"))
    assert not rule.created_since(record, at("2026-11-20T08:00:01"))
    assert not rule.created_since(record, None)  # when watching began is not known
    assert plain.created_since(record, None) and plain.created_since(record, at("2030-01-01"))


def test_created_since_is_false_without_a_readable_creation_stamp():
    (rule,) = load(CREATED)
    unstamped = decode(ORDERS, PO, (), created=False)
    assert not rule.created_since(unstamped, at("2000-01-01T00:00:00"))
    odd = Record(ORDERS, "PO1", PO["UPDDATTIM"], PO, {}, created="soon")
    assert not rule.created_since(odd, at("2000-01-01T00:00:00"))


def test_the_creation_stamp_is_needed_only_by_sources_with_on_created_rules():
    rules = load(
        CREATED,
        {
            **APPROVED,
            "source": "open_items",
            "when": {"partner": "FR001"},
            "to": ["+33612000001"],
            "message": "due {due_date}",
        },
    )
    assert reads_created(ORDERS, rules) and not reads_created(BUILTIN["open_items"], rules)
    orders = [(code, why) for code, kind, why in needed(ORDERS, rules) if kind == "datetime"]
    assert ("CREDATTIM", "rule new-po (on: created)") in orders
    assert "CREDATTIM" not in [code for code, _, _ in needed(BUILTIN["open_items"], rules)]
    assert "set sources.purchase_orders.created" in str(not_exposed(ORDERS, "CREDATTIM"))


# -- watermarks -----------------------------------------------------------------------------


def test_the_first_save_of_a_source_is_when_watching_began(tmp_path: Path):
    marks = Watermarks(tmp_path)
    assert marks.since("purchase_orders") is None
    marks.save("purchase_orders", "2026-01-01T10:00:00Z")
    marks.save("purchase_orders", "2026-01-02T10:00:00Z")
    marks.save("purchase_orders", "2026-01-03T10:00:00Z")
    assert marks.since("purchase_orders") == "2026-01-01T10:00:00Z"
    assert marks.get("purchase_orders") == "2026-01-03T10:00:00Z"
    again = Watermarks(tmp_path)
    assert again.since("purchase_orders") == "2026-01-01T10:00:00Z"
    again.save("purchase_orders", "2026-01-04T10:00:00Z")
    data = json.loads((tmp_path / "watermarks.json").read_text())
    assert data["version"] == 1
    assert data["sources"]["purchase_orders"] == {
        "wm": "2026-01-04T10:00:00Z",
        "since": "2026-01-01T10:00:00Z",
    }


def test_a_file_from_an_older_version_began_watching_at_its_watermark(tmp_path: Path):
    old = {"version": 1, "sources": {"purchase_orders": {"wm": "2025-06-01T00:00:00Z"}}}
    (tmp_path / "watermarks.json").write_text(json.dumps(old))
    marks = Watermarks(tmp_path)
    assert marks.since("purchase_orders") == "2025-06-01T00:00:00Z"
    marks.save("purchase_orders", "2026-01-01T00:00:00Z")
    assert Watermarks(tmp_path).since("purchase_orders") == "2025-06-01T00:00:00Z"
    assert Watermarks(tmp_path).since("open_items") is None


def test_an_older_reader_still_reads_the_watermarks(tmp_path: Path):
    marks = Watermarks(tmp_path)
    marks.save("purchase_orders", "2026-01-01T00:00:00Z")
    marks.save("purchase_orders", "2026-02-01T00:00:00Z")
    data = json.loads((tmp_path / "watermarks.json").read_text())
    # What version 1 readers did: the version, then each source's "wm".
    assert data["version"] == 1
    assert {k: v["wm"] for k, v in data["sources"].items()} == {
        "purchase_orders": "2026-02-01T00:00:00Z"
    }


def test_a_since_that_is_not_a_stamp_is_a_clear_error(tmp_path: Path):
    bad = {"version": 1, "sources": {"purchase_orders": {"wm": "2026-01-01T00:00:00Z", "since": 5}}}
    (tmp_path / "watermarks.json").write_text(json.dumps(bad))
    with pytest.raises(StateError, match="not a UTC stamp"):
        Watermarks(tmp_path)


# -- against the simulated X3, over HTTP ----------------------------------------------------


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with serve(X3Simulator(graphql={"operations": ("smsLog", "payment")})) as running:
        yield running


def x3_config(server: RunningServer, api: str) -> X3Config:
    sim: X3Simulator = server.app  # type: ignore[assignment]
    config = X3Config(url=server.url, folder=sim.folder, user=sim.user, password=sim.password)
    if api == "rest":
        return replace(config, api="rest", auth="basic", timeout=5.0)
    return replace(
        config,
        api="graphql",
        auth="connected_app",
        client_id=sim.graphql.client_id,
        client_secret=sim.graphql.client_secret,
        timeout=5.0,
    )


def retrier() -> Retrier:
    return Retrier(RetryConfig(attempts=2, initial=0.01, maximum=0.05), sleep=lambda s: None)


def needs(rules: tuple[Rule, ...]) -> dict[str, list[str]]:
    return {ORDERS.name: [code for code, _, _ in needed(ORDERS, rules)]}


def changed_rows(client: Any) -> list[dict[str, Any]]:
    later = datetime.now(UTC) + timedelta(days=1)
    pages = client.changes(ORDERS, datetime(2000, 1, 1, tzinfo=UTC), later)
    return [row for page in pages for row in page.resources]


@pytest.mark.parametrize("api", ["rest", "graphql"])
def test_both_clients_fetch_the_creation_stamp_for_an_on_created_rule(server, api):
    sim: X3Simulator = server.app
    rules = load(CREATED)
    config = x3_config(server, api)
    if api == "rest":
        client: Any = RestClient(config, requests.Session(), retrier())
    else:
        client = GraphQLClient(config, requests.Session(), retrier(), needs=needs(rules))
    stored = {r["POHNUM"]: r["CREDATTIM"] for r in sim.records("PORDER")}
    fields = fields_for(ORDERS, set().union(*(r.names() for r in rules)))
    rows = changed_rows(client)
    records = [decode(ORDERS, row, fields, created=reads_created(ORDERS, rules)) for row in rows]
    assert len(records) == len(stored) > 0
    for record in records:
        assert record.created is not None
        assert at(record.created.replace("Z", "")[:19]) == at(stored[record.key][:19])


def test_graphql_asks_for_the_creation_stamp_only_when_a_rule_is_on_created(server):
    plain = load({**APPROVED, "name": "a"})
    client = GraphQLClient(
        x3_config(server, "graphql"), requests.Session(), retrier(), needs=needs(plain)
    )
    assert all("CREDATTIM" not in row for row in changed_rows(client))
    client.need(needs(load(CREATED)))
    assert all(str(row["CREDATTIM"]).endswith("Z") for row in changed_rows(client))


@pytest.mark.x3(query_stamps=False)
def test_check_names_a_query_facet_without_the_creation_stamp(env: Env):
    rule = {**CREATED, "message": "New order {order_number}"}
    env.configure(rules=[rule])
    detail = env.run("check", expect=78).stdout
    assert "CREDATTIM (the creation stamp)" in detail
    assert "sources.purchase_orders.created" in detail


# -- end to end: poll through the simulators --------------------------------------------------

PO_CREATED = [
    {
        "name": "po-created",
        "source": "purchase_orders",
        "on": "created",
        "to": ["supplier"],
        "message": "New order {order_number}: please confirm by SMS.",
    }
]


def new_fr001_order(env: Env) -> str:
    """A buyer enters a purchase order for FR001 in X3 (stamped by X3 as it is created)."""
    template = next(p for p in env.x3.records("PORDER") if p["BPSNUM"] == "FR001")
    number = "POFR" + str(len(env.x3.records("PORDER")) + 9000)
    fields = {k: v for k, v in template.items() if not k.startswith("$")}
    fields = {k: v for k, v in fields.items() if k not in ("CREDATTIM", "UPDDATTIM")}
    return str(env.x3.create("PORDER", {**fields, "POHNUM": number})["POHNUM"])


def test_a_po_created_after_the_first_run_is_notified_once_and_an_old_po_edited_is_not(
    env: Env,
) -> None:
    env.configure(rules=PO_CREATED)
    env.run("poll")  # the first run: watching begins; history is never "created"
    old = next(p for p in env.x3.records("PORDER") if p["BPSNUM"] == "FR001")
    env.x3.update("PORDER", old["POHNUM"], ORDREF="edited")
    env.next_second()
    env.run("poll")
    assert env.twilio.messages == []

    created = new_fr001_order(env)
    env.next_second()
    env.run("poll")
    env.x3.update("PORDER", created, ORDREF="edited after")
    env.next_second()
    env.run("poll")
    assert [m["body"] for m in env.twilio.messages] == [
        f"New order {created}: please confirm by SMS."
    ]
    queued = [r for r in env.audit() if r["event"] == "notification.queued"]
    assert [r["record"] for r in queued] == [created]
    told = {no: env.run("explain", "purchase_orders", no).stdout for no in (created, old["POHNUM"])}
    assert "✓ created at or after" in told[created]
    assert "✗ created at or after" in told[old["POHNUM"]]
