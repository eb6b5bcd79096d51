"""The GraphQL client: api1's records from a schema learnt by introspection; its tokens."""

from __future__ import annotations

import json
import json as jsonlib
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import Env
from x3twilio.builtin_sources import BUILTIN
from x3twilio.config import GraphQLNode, RetryConfig, X3Config, load_config
from x3twilio.demo import SIM_OPERATIONS, graphql_x3
from x3twilio.errors import ConfigError, X3Error, X3FieldError
from x3twilio.simulators import RunningServer, serve
from x3twilio.simulators.x3 import X3Simulator
from x3twilio.transport import Retrier
from x3twilio.x3.auth import ConnectedApp, mint_jwt
from x3twilio.x3.gql_transport import graphql_errors
from x3twilio.x3.gql_where import user_filter
from x3twilio.x3.graphql import GraphQLClient
from x3twilio.x3.graphql_nodes import DEFAULTS
from x3twilio.x3.partners import PartnerShape
from x3twilio.x3.rest import RestClient

EVER = datetime(2000, 1, 1, tzinfo=UTC)


class Clock:
    """X3's clock and ours, set by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def epoch(self) -> float:
        return self.now.timestamp()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def retrier() -> Retrier:
    return Retrier(RetryConfig(attempts=2, initial=0.01, maximum=0.05), sleep=lambda s: None)


def every(pages: Iterator[Any]) -> dict[str, dict[str, Any]]:
    return {r["$key"]: r for page in pages for r in page.resources}


# -- an in-process server behind the session seam ---------------------------------------------
# graphql-core executes each request against a schema written by hand from Sage's reference
# pages (tests/fixtures/graphql_current.graphql): real validation (one unknown field fails
# the whole document) and real standard introspection, over rows each test gives.

FIXTURE = Path(__file__).parent / "fixtures" / "graphql_current.graphql"
FAKE_NODES = {
    "x3Purchasing": ("purchaseOrder",),
    "x3FinanceData": ("openItem",),
    "x3MasterData": ("supplier", "customer"),
    "x3Custom": ("smsLog",),
}


class FakeX3(requests.Session):
    def __init__(self, sdl: str | None = None, rows: dict[str, list[dict[str, Any]]] | None = None):
        super().__init__()
        from graphql import build_schema

        self.schema = build_schema(sdl if sdl is not None else FIXTURE.read_text("utf-8"))
        self.rows = rows if rows is not None else sample_rows()
        self.documents: list[str] = []
        self.urls: list[str] = []
        self.calls: list[dict[str, Any]] = []  # each query(...)'s arguments
        self.created: list[dict[str, Any]] = []

    @property
    def introspections(self) -> int:
        return sum("__type" in d or "__schema" in d for d in self.documents)

    @property
    def data_queries(self) -> list[str]:
        return [d for d in self.documents if "__type" not in d and "__schema" not in d]

    def post(self, url: Any, data: Any = None, json: Any = None, **kwargs: Any) -> Any:
        from graphql import graphql_sync

        self.urls.append(str(url))
        self.documents.append(json["query"])
        result = graphql_sync(
            self.schema, json["query"], self._root(), variable_values=json.get("variables")
        )
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [{"message": e.message} for e in result.errors]
        response = requests.Response()
        response.status_code, response._content = 200, jsonlib.dumps(body).encode()
        response.headers.update(
            {"Content-Type": "application/json", "Date": "Thu, 02 May 2024 10:00:00 GMT"}
        )
        return response

    def _root(self) -> dict[str, Any]:
        root: dict[str, Any] = {}
        for package, nodes in FAKE_NODES.items():
            for node in nodes:
                root.setdefault(package, {})[node] = {
                    "query": self._query(node),
                    "read": lambda info, _id, n=node: next(
                        (r for r in self.rows.get(n, []) if r.get("_id") == _id), None
                    ),
                    "create": self._create(node),
                }
        return root

    def _query(self, node: str) -> Any:
        def query(info: Any, first: int = 20, after: str | None = None, **args: Any) -> Any:
            self.calls.append({"node": node, "first": first, "after": after, **args})
            start, rows = int(after or 0), self.rows.get(node, [])
            more = start + first < len(rows)
            return {
                "edges": [{"node": row} for row in rows[start : start + first]],
                "pageInfo": {"hasNextPage": more, "endCursor": str(start + first)},
            }

        return query

    def _create(self, node: str) -> Any:
        def create(info: Any, data: dict[str, Any]) -> Any:
            record = {"_id": f"LOG{len(self.created) + 1}", "id": f"LOG{len(self.created) + 1}"}
            self.created.append({**record, **data})
            return self.created[-1]

        return create


def sample_rows() -> dict[str, list[dict[str, Any]]]:
    order = {
        "_id": "PO1",
        "id": "PO1",
        "company": {"code": "FR10"},
        "purchaseSite": {"code": "FR011"},
        "receiptSite": {"code": "FR012"},
        "orderFromSupplier": {"code": {"code": "FR001"}},
        "orderDate": "2024-05-01",
        "expectedReceiptDate": "2024-05-20",
        "currency": {"code": "EUR"},
        "isClosed": "no",
        "signatureStatus": "inFull",
        "taxExcludedTotalAmount": "1250.50",  # Decimal as a string, as Xtrem may send it
        "taxIncludedTotalAmount": 1500.6,
        "internalOrderReference": "REF1",
        "_createUser": {"code": "ADMIN"},
        "_createStamp": "2024-05-01T08:00:00.000Z",
        "_updateStamp": "2024-05-02T09:14:07.000Z",
    }
    closed = {**order, "_id": "PO2", "id": "PO2", "isClosed": "yes", "signatureStatus": "no"}
    phones = [
        {"addressPhoneNumber": "01 23 45 67 89", "phoneType": "landline", "denormalizedIndex": 1},
        {"addressPhoneNumber": "06 12 34 56 78", "phoneType": "mobile", "denormalizedIndex": 2},
    ]
    supplier = {
        "_id": "FR001",
        "code": {"code": "FR001", "companyName1": "Acme", "country": {"code": "FR"}},
        "companyName1": "Acme",
        "defaultContact": "CNT01",
        "addressByDefault": {
            "code": "MAIN",
            "country": {"code": "FR"},
            "addressPhoneNumbers": {"query": {"edges": [{"node": p} for p in phones]}},
            "addressEmails": {"query": {"edges": [{"node": {"addressEmail": "ap@acme.fr"}}]}},
        },
        "_updateStamp": "2024-05-02T09:14:07.000Z",
    }
    customer = {
        "_id": "C001",
        "code": {"code": "C001", "country": {"code": "GB"}},
        "defaultContact": {"code": "JD", "cellPhone": "07911 123456", "email": "jd@example.com"},
        "_updateStamp": "2024-05-02T09:14:07.000Z",
    }
    item = {
        "documentType": {"code": "PISU"},
        "documentNumber": "PI1",
        "lineNumber": 1,
        "openItemLineNumber": 2,
        "businessPartner": {"code": "FR001"},
        "businessPartnerType": "supplier",
        "dueDate": "2024-05-10",
        "amountInCurrency": "100.00",
        "paidAmountInCurrency": 0,
        "closedStatus": 1,
        "_updateStamp": "2024-05-02T09:14:07.000Z",
    }
    return {
        "purchaseOrder": [order, closed],
        "supplier": [supplier],
        "customer": [customer],
        "openItem": [item],
    }


def fake_client(
    fake: FakeX3 | None = None, state_dir: Path | None = None, **changes: Any
) -> tuple[GraphQLClient, FakeX3]:
    fake = fake or FakeX3()
    config = X3Config(
        url="http://x3.test:8124",
        folder="SEED",
        user="u",
        password="p",
        api="graphql",
        auth="basic",
        state_dir=state_dir,
    )
    return GraphQLClient(replace(config, **changes), fake, retrier()), fake


ORDERS = BUILTIN["purchase_orders"]
WIDE = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))


def test_default_paths_walk_the_schema_to_typed_values():
    node = fake_client()[0].node("PORDER")
    kinds = {code: (".".join(p.path), p.kind) for code, p in node.props.items()}
    assert kinds["BPSNUM"] == ("orderFromSupplier.code.code", "text")  # walked to the scalar
    assert kinds["RCPFCY"] == ("receiptSite.code", "text")
    assert kinds["CLEFLG"] == ("isClosed", "yesno") and kinds["APPFLG"] == (
        "signatureStatus",
        "enum",
    )
    assert kinds["TOTORD"] == ("taxExcludedTotalAmount", "decimal")
    assert kinds["UPDDATTIM"] == ("_updateStamp", "stamp") and kinds["ORDDAT"][1] == "date"
    assert node.props["APPFLG"].values == {
        1: "no",
        2: "partly",
        3: "inFull",
        4: "notManaged",
        5: "automatic",
    }
    assert node.absent["INVFCY"] == "PurchaseOrder has no field invoiceSite"


def test_a_poll_asks_only_for_what_rules_need_and_gets_api1_shapes():
    client, fake = fake_client()
    client.need(
        {"purchase_orders": ["POHNUM", "UPDDATTIM", "BPSNUM", "APPFLG", "TOTORD", "CLEFLG"]}
    )
    rows = every(client.changes(ORDERS, *WIDE))
    assert rows["PO1"] == {
        "POHNUM": "PO1",
        "UPDDATTIM": "2024-05-02T09:14:07Z",
        "BPSNUM": "FR001",
        "APPFLG": 3,
        "TOTORD": 1250.5,
        "CLEFLG": False,
        "$key": "PO1",
    }
    assert rows["PO2"]["CLEFLG"] is True and rows["PO2"]["APPFLG"] == 1
    (query,) = fake.data_queries
    assert "orderDate" not in query and "company" not in query
    assert fake.calls[0]["filter"] == (
        "{_updateStamp: {_gte: '2000-01-01T00:00:00Z', _lt: '2030-01-01T00:00:00Z'}}"
    )
    assert fake.calls[0]["orderBy"] == "{_updateStamp: 1, id: 1}"  # stamp, then key


def test_without_rules_told_a_source_reads_its_declared_fields_that_exist():
    client, fake = fake_client()
    record = every(client.changes(ORDERS, *WIDE))["PO1"]
    assert record["EXTRCPDAT1"] == "2024-05-20" and record["TTVORD"] == 1500.6
    assert "INVFLG" not in record  # invoiceStatus: not in this schema, and nothing needs it
    assert all("invoiceStatus" not in q for q in fake.data_queries)


def test_a_needed_field_the_server_lacks_stops_before_any_query():
    client, fake = fake_client()
    client.need({"purchase_orders": ["INVFLG"]})
    with pytest.raises(X3FieldError) as caught:
        list(client.changes(ORDERS, *WIDE))
    message = str(caught.value)
    assert "source purchase_orders" in message and "x3Purchasing.purchaseOrder" in message
    assert "PurchaseOrder has no field invoiceStatus" in message
    assert "x3.nodes.PORDER.fields.INVFLG" in message and caught.value.exit_code == 78
    assert fake.data_queries == []


def test_due_queries_leave_closed_records_out_in_the_schemas_own_type():
    client, fake = fake_client()
    list(client.due(ORDERS, "EXTRCPDAT1", date(2024, 5, 1), date(2024, 5, 31)))
    assert fake.calls[-1]["filter"] == (
        "{_and: [{expectedReceiptDate: {_gte: '2024-05-01', _lte: '2024-05-31'}}, "
        "{isClosed: {_ne: 'yes'}}]}"  # a NoYes enum, as Sage's purchasing example filters
    )
    items = every(client.due(BUILTIN["open_items"], "DUDDAT", date(2024, 5, 1), date(2024, 5, 31)))
    assert "{closedStatus: {_ne: 2}}" in fake.calls[-1]["filter"]  # an Int there
    assert fake.calls[-1]["orderBy"] == (
        "{documentType: {code: 1}, documentNumber: 1, lineNumber: 1, openItemLineNumber: 1}"
    )
    (item,) = items.values()
    assert (item["$key"], item["BPRTYP"], item["FLGCLE"], item["AMTCUR"]) == (
        "PISU~PI1~1~2",
        2,
        1,
        100.0,
    )


def test_sdata_filters_are_written_in_each_fields_type():
    node = fake_client()[0].node("PORDER")
    assert user_filter(
        node.lookup, "CPY in ('FR10', 'GB10') and (CLEFLG eq 1) or not (APPFLG ne 3)", "n"
    ) == (
        "{_or: [{_and: [{company: {code: {_in: ['FR10', 'GB10']}}}, {isClosed: {_eq: 'no'}}]}, "
        "{_not: {signatureStatus: {_ne: 'inFull'}}}]}"
    )
    assert user_filter(node.lookup, "ORDDAT between @2024-05-01@ and @2024-05-31@", "n") == (
        "{orderDate: {_gte: '2024-05-01', _lte: '2024-05-31'}}"
    )
    assert user_filter(node.lookup, "BPSNUM like 'FR_0%'", "n") == (
        "{orderFromSupplier: {code: {code: {_regex: '^FR.0.*$'}}}}"
    )
    assert user_filter(node.lookup, "ORDREF eq 'O''Brien'", "n") == (
        "{internalOrderReference: {_eq: 'O\\'Brien'}}"
    )
    with pytest.raises(X3Error, match="NOPE has no GraphQL property"):
        user_filter(node.lookup, "NOPE eq 1", "n")
    with pytest.raises(X3Error, match="APPFLG has no GraphQL value for 7"):
        user_filter(node.lookup, "APPFLG eq 7", "n")


def test_the_schema_is_cached_and_read_again_only_when_old_or_from_elsewhere(tmp_path):
    client, fake = fake_client(state_dir=tmp_path)
    list(client.changes(ORDERS, *WIDE))
    first = fake.introspections
    assert first > 0 and (tmp_path / "x3-graphql-schema.json").exists()
    cached = jsonlib.loads((tmp_path / "x3-graphql-schema.json").read_text())
    assert cached["source"] == "http://x3.test:8124/xtrem/api folder SEED" and cached["read_at"]
    again, fake2 = fake_client(state_dir=tmp_path)
    list(again.changes(ORDERS, *WIDE))
    assert fake2.introspections == 0 and len(fake2.data_queries) == 1  # the cache is used
    old, fake3 = fake_client(state_dir=tmp_path, schema_max_age=0.0)
    list(old.changes(ORDERS, *WIDE))
    assert fake3.introspections == first  # too old: read again
    other, fake4 = fake_client(state_dir=tmp_path, folder="OTHER")
    list(other.changes(ORDERS, *WIDE))
    assert fake4.introspections == first  # another folder's schema is not this one's


def test_legacy_roots_are_found_and_what_they_lack_is_named():
    legacy = (
        FIXTURE.read_text()
        .replace("x3Purchasing:", "xtremX3Purchasing:")
        .replace("_createUser: SysUser_node", "")
    )
    fake = FakeX3(sdl=legacy)
    fake.rows["purchaseOrder"][0].pop("_createUser")
    FAKE_NODES["xtremX3Purchasing"] = FAKE_NODES["x3Purchasing"]
    try:
        client, _ = fake_client(fake)
        node = client.node("PORDER")
        assert node.name == "xtremX3Purchasing.purchaseOrder" and "CREUSR" not in node.props
        assert every(client.changes(ORDERS, *WIDE))["PO1"]["APPFLG"] == 3
        client.need({"purchase_orders": ["CREUSR"]})
        with pytest.raises(X3FieldError, match="PurchaseOrder has no field _createUser"):
            list(client.changes(ORDERS, *WIDE))
    finally:
        del FAKE_NODES["xtremX3Purchasing"]
    gone = FakeX3(sdl=FIXTURE.read_text().replace("x3Purchasing:", "purchasing:"))
    with pytest.raises(X3FieldError, match=r"no package x3Purchasing.*x3\.packages\.x3Purchasing"):
        fake_client(gone)[0].node("PORDER")


def test_partners_come_from_the_default_address_and_contact():
    client, _ = fake_client()
    supplier = client.partner(PartnerShape.default("supplier"), "FR001")
    assert supplier is not None and supplier.country == "FR"
    assert supplier.mobile("FR") is not None and supplier.mobile("FR").text == "06 12 34 56 78"
    assert supplier.email() == "ap@acme.fr" and {p.text for p in supplier.phones()} == {
        "06 12 34 56 78",
        "01 23 45 67 89",
    }
    customer = client.partner(PartnerShape.default("customer"), "C001")
    assert customer is not None and customer.mobile("FR").text == "07911 123456"
    assert customer.email() == "jd@example.com"
    assert client.partner(PartnerShape.default("supplier"), "NOPE") is None
    plan = client.partner_plan("BPSUPPLIER")
    assert plan.ways_to_mobiles() == ["addressByDefault.addressPhoneNumbers"]
    assert "the default contact's phones (it is only a code here)" in plan.missing


SMS_LOG = {
    "YSMSLOG": GraphQLNode(
        "x3Custom.smsLog",
        ("LOGNUM",),
        {"LOGNUM": "id", "BPNUM": "businessPartner", "MSGSID": "messageSid", "TEXT": "text"},
    )
}


def test_replies_are_written_only_through_a_mutation_the_schema_has():
    client, fake = fake_client(nodes=SMS_LOG)
    created = client.create("YSMSLOG", {"BPNUM": "FR001", "MSGSID": "SM1", "TEXT": "hi"})
    assert created["$key"] == "LOG1" and fake.created[0]["messageSid"] == "SM1"
    assert "mutation Write($data: SmsLog_Input!)" in fake.documents[-1]
    before = len(fake.documents)
    with pytest.raises(X3FieldError, match="replies cannot be written through GraphQL"):
        client.edit("YSMSLOG", "LOG1", {"TEXT": "x"})  # no update operation set up
    with pytest.raises(X3FieldError, match=r"cannot give NOPE"):
        client.create("YSMSLOG", {"NOPE": "x"})
    no_mutations = FakeX3(sdl=FIXTURE.read_text().replace("type Mutation", "type Unused"))
    with pytest.raises(X3FieldError, match="the schema has no mutations at all"):
        fake_client(no_mutations, nodes=SMS_LOG)[0].create("YSMSLOG", {"TEXT": "x"})
    assert all(not d.startswith("mutation") for d in fake.documents[before:])


def test_a_reply_no_mutation_can_take_stops_as_setup_trouble_before_anything_is_sent():
    from x3twilio.config import NoteTarget
    from x3twilio.notes import Note, NoteWriter
    from x3twilio.templates import compile_template

    client, fake = fake_client()  # YSMSLOG is not mapped
    fields = {"MSGSID": compile_template("{sid}", {"sid": "text"})}
    target = NoteTarget("supplier", "create", "YSMSLOG", fields=fields, marker="MSGSID")
    writer = NoteWriter((target,), client, {"supplier": PartnerShape.default("supplier")}, {})
    note = Note("supplier", "FR001", "", "+33612345678", "SM9", "ok", "2024-05-02T10:00:00Z", "sms")
    with pytest.raises(X3FieldError) as refused:  # ingest stops (78); the reply stays spooled
        writer.write(note)
    assert "class YSMSLOG has no GraphQL node" in str(refused.value)
    assert not any(d.startswith("mutation") for d in fake.documents)


def test_payments_have_no_default_node_and_say_how_to_map_one():
    with pytest.raises(X3FieldError) as caught:
        list(fake_client()[0].changes(BUILTIN["payments"], *WIDE))
    assert "Sage's GraphQL schema has no payments node" in str(caught.value)
    assert "x3.nodes.PAYMENTH" in str(caught.value) and caught.value.exit_code == 78


def test_each_request_goes_to_the_api_root_the_sign_in_names_now():
    class Regional:
        root = "http://x3.test:8124"

        def headers(self) -> dict[str, str]:
            return {}

        def renew(self) -> bool:
            return False

        def explain(self, body: str) -> str:
            return ""

        def api_root(self, configured: str) -> str:
            return self.root

    auth, fake = Regional(), FakeX3()
    client = GraphQLClient(fake_client()[0].config, fake, retrier(), auth=auth)
    list(client.changes(ORDERS, *WIDE))
    auth.root = "https://api.eu-sagex3.com/v1/service/X3CLOUD"
    list(client.changes(ORDERS, *WIDE))
    assert fake.urls[0] == "http://x3.test:8124/xtrem/api"
    assert fake.urls[-1] == "https://api.eu-sagex3.com/v1/service/X3CLOUD/xtrem/api"


def test_x3_nodes_specs_give_paths_and_menu_numbers_not_kinds():
    nodes = {
        "PORDER": GraphQLNode(
            fields={
                "APPFLG": "signatureStatus 1=inFull 2=no",
                "ZREF": "internalOrderReference text",
            }
        )
    }
    node = fake_client(nodes=nodes)[0].node("PORDER")
    assert node.props["APPFLG"].values == {1: "inFull", 2: "no"}
    assert node.props["ZREF"].path == ("internalOrderReference",)  # an old kind word: ignored
    bad = {"PORDER": GraphQLNode(fields={"APPFLG": "signatureStatus colour"})}
    with pytest.raises(
        X3FieldError, match=re.escape("x3.nodes.PORDER.fields.APPFLG: expected menu numbers")
    ):
        fake_client(nodes=bad)


# -- against the simulated X3 ---------------------------------------------------------------------


@pytest.fixture
def server(request: pytest.FixtureRequest, clock: Clock) -> Iterator[RunningServer]:
    """The simulator with the site's own API operations, or a test's `x3` marker switches."""
    marker = request.node.get_closest_marker("x3")
    switches = {"graphql": {"operations": SIM_OPERATIONS}, **(marker.kwargs if marker else {})}
    with serve(X3Simulator(clock=clock, **switches)) as running:
        yield running


def sim(server: RunningServer) -> X3Simulator:
    return server.app  # type: ignore[return-value]


def site_nodes(server: RunningServer) -> dict[str, GraphQLNode]:
    """x3.nodes as the demo maps the simulated site's own nodes (YSMSLOG, PAYMENTH)."""
    nodes = graphql_x3(sim(server))["nodes"]
    return {c: GraphQLNode(n["node"], tuple(n["key"]), n["fields"]) for c, n in nodes.items()}


def x3_config(server: RunningServer, **changes: Any) -> X3Config:
    x3 = sim(server)
    base = X3Config(
        url=server.url,
        folder=x3.folder,
        user=x3.user,
        password=x3.password,
        api="graphql",
        auth="connected_app",
        client_id=x3.graphql.client_id,
        client_secret=x3.graphql.client_secret,
        timeout=5.0,
        page_size=20,
        nodes=site_nodes(server),
    )
    return replace(base, **changes)


def graphql(server: RunningServer, **changes: Any) -> GraphQLClient:
    return GraphQLClient(x3_config(server, **changes), requests.Session(), retrier())


def rest(server: RunningServer) -> RestClient:
    return RestClient(x3_config(server, api="rest", auth="basic"), requests.Session(), retrier())


def same(api1: dict[str, Any], other: dict[str, Any], codes: list[str]) -> None:
    for code in codes:
        a, b = api1.get(code), other.get(code)
        if isinstance(a, float | int) and not isinstance(a, bool):
            assert Decimal(str(a)) == Decimal(str(b)), code
        else:
            assert a == b, (code, a, b)


# Order lines have no GraphQL node of their own (none is documented): api1 only.
@pytest.mark.parametrize(
    "name", sorted(n for n in BUILTIN if BUILTIN[n].x3_class in {*DEFAULTS, "PAYMENTH"})
)
def test_every_source_reads_the_same_records_in_api1s_shape(server, name):
    source = BUILTIN[name]
    later = sim(server).now() + timedelta(days=1)
    client = graphql(server)
    readable = client.node(source.x3_class).props
    via_rest = every(rest(server).changes(source, EVER, later))
    via_graphql = every(client.changes(source, EVER, later))
    assert set(via_graphql) == set(via_rest) and via_rest
    for key, record in via_graphql.items():  # as sources decode them: what rules see
        for f in (f for f in source.fields.values() if f.code in readable):
            assert f.decode(via_rest[key].get(f.code)) == f.decode(record.get(f.code)), f.code
        assert isinstance(record["UPDDATTIM"], str) and record["UPDDATTIM"].endswith("Z")


def test_due_dates_and_user_filters_select_the_same_records(server):
    today = sim(server).now().date()
    for name, code in (("open_items", "DUDDAT"), ("purchase_orders", "EXTRCPDAT1")):
        source = BUILTIN[name]
        first, last = today - timedelta(days=3), today + timedelta(days=10)
        via_rest = every(rest(server).due(source, code, first, last))
        open_ones = {k for k, r in via_rest.items() if not source.is_closed(_record(source, r))}
        assert set(every(graphql(server).due(source, code, first, last))) == open_ones
    filtered = replace(BUILTIN["purchase_orders"], where="CPY in ('FR10', 'GB10') and APPFLG eq 3")
    later = sim(server).now() + timedelta(days=1)
    via_rest = every(rest(server).changes(filtered, EVER, later))
    assert set(every(graphql(server).changes(filtered, EVER, later))) == set(via_rest)
    assert via_rest and all(r["APPFLG"] == 3 for r in via_rest.values())


def _record(source: Any, raw: dict[str, Any]) -> Any:
    from x3twilio.sources import Record

    values = {f.name: f.decode(raw.get(f.code)) for f in source.fields.values()}
    return Record(source, raw["$key"], "", raw, values)


def test_partners_keys_and_find_over_graphql(server):
    client, api1 = graphql(server), rest(server)
    for x3_class, key in (("BPSUPPLIER", "BPSNUM"), ("BPCUSTOMER", "BPCNUM")):
        codes = sorted(client.keys(x3_class, key))
        assert codes == sorted(api1.keys(x3_class, key))
        shape = PartnerShape.default("supplier" if x3_class == "BPSUPPLIER" else "customer")
        for code in codes:
            a, b = api1.partner(shape, code), client.partner(shape, code)
            assert a is not None and b is not None
            # GraphQL gives the default address and contact only: a subset of api1's.
            assert {p.text for p in b.phones()} <= {p.text for p in a.phones()}
    assert client.details("BPSUPPLIER", "NOPE") is None
    assert client.find("BPSUPPLIER", "BPSNUM", "FR002")["$key"] == "FR002"
    assert client.find("BPSUPPLIER", "BPSNUM", "nobody") is None


def test_a_note_created_through_the_sites_operation_lands_in_x3(server, clock):
    client = graphql(server)
    created = client.create("YSMSLOG", {"BPNUM": "FR001", "MSGSID": "SM2", "TEXT": "hi"})
    assert created["MSGSID"] == "SM2" and created["$key"]
    assert any(r["MSGSID"] == "SM2" for r in sim(server).records("YSMSLOG"))
    with pytest.raises(X3FieldError, match="replies cannot be written through GraphQL"):
        client.edit("BPSUPPLIER", "FR001", {"BPSNAM": "x"})


def test_graphql_errors_and_error_diagnoses_on_http_200_are_x3_errors(server):
    odd = replace(BUILTIN["purchase_orders"], where="{colour: 'red'}")
    with pytest.raises(X3Error):
        list(graphql(server).changes(odd, EVER, sim(server).now()))
    warning = {"extensions": {"diagnoses": [{"severity": "warning", "message": "late"}]}}
    assert graphql_errors(warning) == ""
    assert graphql_errors({"extensions": {"diagnoses": [{"severity": 3, "message": "no"}]}}) == "no"


@pytest.mark.x3(graphql={"generation": "legacy", "operations": SIM_OPERATIONS})
def test_the_legacy_generation_reads_the_same_records_once_discovered(server):
    source = BUILTIN["purchase_orders"]
    client = graphql(server)
    assert client.node("PORDER").root == "xtremX3Purchasing"
    assert "CREUSR" not in client.node("PORDER").props  # _createUser: current schema only
    later = sim(server).now() + timedelta(days=1)
    via_graphql = every(client.changes(source, EVER, later))
    via_rest = every(rest(server).changes(source, EVER, later))
    assert set(via_graphql) == set(via_rest)
    for key, record in via_rest.items():
        same(record, via_graphql[key], ["TOTORD", "TTVORD", "APPFLG", "UPDDATTIM"])


# -- the CLI end to end -------------------------------------------------------------------------


@pytest.fixture
def gql_env(tmp_path: Path, x3_server: RunningServer, twilio_server: RunningServer) -> Env:
    environment = Env(tmp_path, x3_server, twilio_server, api="graphql")
    environment.configure()
    return environment


def test_a_bad_client_secret_exits_69_with_x3s_error_explained(gql_env):
    gql_env.configure(x3={"client_secret": "wrong-secret"})
    result = gql_env.run("poll", expect=69)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert '"Error 50: Invalid token"' in result.stderr and "x3.client_secret" in result.stderr
    assert "wrong-secret" not in result.stderr


@pytest.mark.x3(
    graphql={"operations": SIM_OPERATIONS, "removed": {"PurchaseOrder": ["receiptSite"]}}
)
def test_a_needed_field_this_x3_lacks_is_named_by_check_and_stops_poll_with_78(gql_env):
    rules = gql_env.configure()["rules"]
    rules.append({**rules[0], "name": "by-site", "when": {"RCPFCY": "FR011"}})
    gql_env.configure(rules=rules)
    result = gql_env.run("check", expect=78)
    row = next(line for line in result.stdout.splitlines() if "X3 purchase_orders fields" in line)
    assert row.startswith("✗") and "receiptSite" in row and "x3.nodes.PORDER.fields.RCPFCY" in row
    polled = gql_env.run("poll", expect=78)
    assert "RCPFCY" in polled.stderr and "Traceback" not in polled.stderr


@pytest.mark.x3(graphql={"operations": SIM_OPERATIONS})  # the site's own nodes
def test_the_schema_is_read_at_check_then_reused_by_poll_until_it_is_old(gql_env):
    checked = gql_env.run("check", expect=69).stdout  # no shim is served for this one
    assert [r.split("\t")[1] for r in checked.splitlines() if r.startswith("✗")] == ["Webhook shim"]
    cache = gql_env.state_dir / "x3-graphql-schema.json"
    first = json.loads(cache.read_text())
    assert first["types"] and gql_env.x3_server.url in first["source"]
    gql_env.run("poll")
    assert json.loads(cache.read_text())["read_at"] == first["read_at"]  # reused
    gql_env.configure(x3={"schema_max_age": "0s"})
    gql_env.next_second()
    time.sleep(1.1)  # read_at is to the second
    gql_env.run("poll")
    assert json.loads(cache.read_text())["read_at"] != first["read_at"]  # read again


@pytest.mark.x3(graphql={"operations": ("payment",)})
def test_without_the_notes_operation_check_says_replies_cannot_be_written(gql_env):
    result = gql_env.run("check", expect=78)
    row = next(line for line in result.stdout.splitlines() if "X3 notes on" in line)
    assert row.startswith("✗") and "replies cannot be written through GraphQL" in row


@pytest.mark.x3(graphql={"operations": SIM_OPERATIONS})
def test_payments_unmapped_is_a_check_row_and_a_78(gql_env):
    config = gql_env.configure()
    config["x3"]["nodes"].pop("PAYMENTH")
    gql_env.configure(x3=config["x3"])
    result = gql_env.run("check", expect=78)
    row = next(line for line in result.stdout.splitlines() if "X3 payments fields" in line)
    assert row.startswith("✗") and "x3.nodes.PAYMENTH" in row and "no payments node" in row
    assert "x3.nodes.PAYMENTH" in gql_env.run("poll", expect=78).stderr


# -- tokens -----------------------------------------------------------------------------------


def test_a_minted_token_is_a_standard_hs256_jwt_with_x3s_claims(server, clock):
    jwt = pytest.importorskip("jwt")
    config = x3_config(server, token_validity=600.0)
    header = ConnectedApp(config, clock=clock.epoch).headers()["Authorization"]
    claims = jwt.decode(
        header.removeprefix("Bearer "),
        config.client_secret,
        algorithms=["HS256"],
        audience=f"{server.url}/xtrem/api",
        options={"verify_iat": False},
    )
    now = int(clock.epoch())
    assert claims == {
        "iss": config.client_id,
        "sub": config.user,
        "aud": f"{server.url}/xtrem/api",
        "iat": now - 30,
        "exp": now - 30 + 600,
    }
    assert mint_jwt("s", {"a": 1}).count(".") == 2


def test_a_token_that_expires_mid_run_is_reminted_and_no_page_is_lost(server, clock):
    config = x3_config(server, token_validity=120.0, page_size=5)
    auth = ConnectedApp(config, clock=clock.epoch)
    client = GraphQLClient(config, requests.Session(), retrier(), auth=auth)
    hi = clock.now
    expected = {p["POHNUM"] for p in sim(server).records("PORDER")}
    seen = []
    for page in client.changes(BUILTIN["purchase_orders"], EVER, hi):
        seen += [r["POHNUM"] for r in page.resources]
        clock.now += timedelta(seconds=40)  # a slow run: the token ages while paging
    assert sorted(seen) == sorted(expected)
    assert auth.minted >= 4
    assert len(set(sim(server).graphql.tokens)) == auth.minted  # every one was accepted


@pytest.mark.parametrize(
    ("changes", "code", "hint"),
    [
        ({"client_secret": "wrong"}, 50, "x3.client_secret"),
        ({"client_id": "someone"}, 41, "x3.client_id"),
        ({"user": "JDUP"}, 42, "not an allowed user"),
        ({"audience": "https://x3.example.com/xtrem/api"}, 45, "x3.audience"),
        ({"clock_ahead": 600}, 21, "this host's clock is ahead"),
    ],
)
def test_each_x3_token_error_is_explained_in_plain_words(server, clock, changes, code, hint):
    ahead = changes.pop("clock_ahead", 0)
    config = x3_config(server, **changes)
    auth = ConnectedApp(config, clock=lambda: clock.epoch() + ahead)
    client = GraphQLClient(config, requests.Session(), retrier(), auth=auth)
    with pytest.raises(X3Error) as caught:
        client.server_time(BUILTIN["purchase_orders"])
    message = str(caught.value)
    assert message.startswith("X3: credentials refused (HTTP 401) at ")
    assert f"Error {code}: Invalid token" in message and hint in message
    assert "sim-connected-app-secret" not in message


def test_http_basic_works_on_the_graphql_endpoint_too(server):
    client = graphql(server, auth="basic")
    assert client.details("BPSUPPLIER", "FR001")["BPSNAM"] == "Acme Fournitures SARL"
    with pytest.raises(X3Error, match=re.escape("x3.user and x3.password")):
        graphql(server, auth="basic", password="nope").details("BPSUPPLIER", "FR001")


# -- configuration ------------------------------------------------------------------------------


def load_x3(tmp_path: Path, x3: dict[str, Any]) -> X3Config:
    data = {
        "x3": {"url": "https://x3.example.com:8124/", "folder": "SEED", **x3},
        "twilio": {"account_sid": "AC1", "auth_token": "t", "from": "+15017122661"},
        "rules": [],
    }
    path = tmp_path / "x3twilio.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path, env={}).x3


def test_graphql_configuration_defaults_and_errors_name_the_path(tmp_path):
    x3 = load_x3(
        tmp_path, {"api": "graphql", "user": "WEBAPI", "client_id": "id", "client_secret": "s"}
    )
    assert (x3.auth, x3.token_validity, x3.graphql_url) == (
        "connected_app",
        300.0,
        "https://x3.example.com:8124/xtrem/api",
    )
    assert x3.state_dir == tmp_path.resolve() / "state" and x3.mutations["update"] == "update"
    cases = [
        ({"api": "graphql", "user": "U", "client_id": "id"}, "x3.client_secret: required"),
        ({"api": "soap"}, "x3.api: unsupported api 'soap'"),
        ({"user": "u", "auth": "connected_app"}, "x3.auth: api rest takes basic or oauth2"),
        (
            {"api": "graphql", "auth": "oauth2", "client_id": "i", "client_secret": "s"},
            "x3.oauth2: required for auth oauth2",
        ),
        (
            {"api": "graphql", "auth": "basic", "user": "u", "password": "p", "oauth2": {"x": 1}},
            "x3.oauth2.authorize_url: required field is missing",
        ),
        (
            {"api": "graphql", "auth": "basic", "user": "u", "password": "p",
             "packages": {"x3Purchasing": "not a name"}},
            "x3.packages.x3Purchasing: expected a root name",
        ),
        (
            {"api": "graphql", "auth": "basic", "user": "u", "password": "p",
             "nodes": {"YLOG": {"node": "smsLog"}}},
            "x3.nodes.YLOG.node: expected package.node",
        ),
        (
            {"api": "graphql", "auth": "basic", "user": "u", "password": "p",
             "nodes": {"YLOG": {"node": "x3Custom.smsLog"}}},
            "x3.nodes.YLOG.fields: a node of your own needs key and fields",
        ),
        (
            {"api": "graphql", "auth": "basic", "user": "u", "password": "p",
             "mutations": {"delete": "x"}},
            "x3.mutations.delete: unknown field",
        ),
    ]  # fmt: skip
    for x3_section, message in cases:
        with pytest.raises(ConfigError) as caught:
            load_x3(tmp_path, x3_section)
        assert message in str(caught.value)


@pytest.mark.parametrize("env", ["graphql"], indirect=True)
def test_every_document_the_tool_sends_is_valid_against_sages_schema(env, shim):
    """check, a poll over every source and an ingest: each document validates against the
    schema written from Sage's reference pages (the simulator's, not the client's)."""
    from tests.test_poll import HISTORY
    from x3twilio.simulators.xtrem_schema import validate

    env.run("check")
    env.run("poll", "--since", HISTORY, expect=1)  # US005's number fails: 21211
    env.twilio.send_incoming_sms(f"{shim.url}/twilio/sms", "+33612345678", "OK pour la commande")
    env.run("ingest")
    sent = env.x3.graphql.documents
    distinct = set(sent)
    assert len(distinct) >= 10 and any(d.lstrip().startswith("mutation") for d in distinct)
    invalid = {d: errors for d in distinct if (errors := validate(d, "current", SIM_OPERATIONS))}
    assert invalid == {}
