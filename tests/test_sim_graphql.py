"""The X3 simulator's GraphQL endpoint (/xtrem/api): Sage's schema on graphql-core, over real
HTTP on loopback."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from x3twilio.simulators import RunningServer, serve
from x3twilio.simulators.graphql import FilterError, parse_relaxed, validate_document
from x3twilio.simulators.x3 import X3Simulator
from x3twilio.x3.auth import mint_jwt

START = datetime(2026, 11, 26, 9, 14, 7, tzinfo=UTC)
EXAMPLES = Path(__file__).parent / "fixtures" / "sage_graphql_examples"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def options() -> dict[str, Any]:
    return {}


@pytest.fixture
def server(clock: Clock, options: dict[str, Any]) -> Iterator[RunningServer]:
    with serve(X3Simulator(clock=clock, graphql=options)) as running:
        yield running


def sim(server: RunningServer) -> X3Simulator:
    return server.app  # type: ignore[return-value]


def token(server: RunningServer, **claims: object) -> str:
    x3 = sim(server)
    now = int(x3.now().timestamp())
    base = {
        "iss": x3.graphql.client_id,
        "sub": x3.user,
        "aud": f"{server.url}/xtrem/api",
        "iat": now - 30,
        "exp": now + 270,
    }
    secret = str(claims.pop("secret", x3.graphql.client_secret))
    return mint_jwt(secret, {**base, **claims})


def ask(
    server: RunningServer,
    query: str,
    variables: dict | None = None,
    bearer: str | None = None,
    endpoint: str | None = "SEED",
) -> requests.Response:
    headers = {"Authorization": f"Bearer {bearer or token(server)}"}
    if endpoint is not None:
        headers["x-xtrem-endpoint"] = endpoint
    body = {"query": query, "variables": variables or {}}
    return requests.post(f"{server.url}/xtrem/api", json=body, headers=headers, timeout=5)


def data(server: RunningServer, query: str, variables: dict | None = None) -> Any:
    answer = ask(server, query, variables).json()
    assert "errors" not in answer, answer
    return answer["data"]


def errors(server: RunningServer, query: str, variables: dict | None = None) -> list[str]:
    answer = ask(server, query, variables)
    assert answer.status_code == 200, answer.text
    return [e["message"] for e in answer.json()["errors"]]


PAGE = """query($first: Int, $after: String, $filter: String, $orderBy: String) {
  x3Purchasing { purchaseOrder { query(first: $first, after: $after, filter: $filter,
                                        orderBy: $orderBy) {
    totalCount
    edges { cursor node { id supplier: orderFromSupplier { code { code } }
                          signatureStatus isClosed taxIncludedTotalAmount _updateStamp } }
    pageInfo { hasNextPage endCursor }
  } } } }"""


def connection(answer: Any) -> Any:
    return answer["x3Purchasing"]["purchaseOrder"]["query"]


# ---------------------------------------------------------------- Sage's own examples


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.graphql")), ids=lambda p: p.stem)
def test_sages_example_queries_validate_and_run(server, example):
    text = example.read_text()
    assert validate_document(text) == []
    answer = ask(server, text).json()
    assert "errors" not in answer and answer["extensions"] == {"diagnoses": []}


def test_the_purchasing_example_reads_lines_and_compares_references_by_code(server):
    text = (EXAMPLES / "purchasing_order_status.graphql").read_text().replace("FR053", "FR001")
    x3 = sim(server)
    expected = {
        p["POHNUM"]
        for p in x3.records("PORDER")
        if p["POHFCY"] == "FR011" and p["BPSNUM"] == "FR001" and not p["CLEFLG"]
    }
    edges = data(server, text)["x3Purchasing"]["purchaseOrder"]["query"]["edges"]
    assert {e["node"]["id"] for e in edges} == expected and expected
    node = edges[0]["node"]
    po = x3.get("PORDER", node["id"])
    assert node["isClosed"] == "no" and node["orderFromSupplier"] == {"code": {"code": "FR001"}}
    lines = [e["node"] for e in node["purchaseOrderLines"]["query"]["edges"]]
    assert [(n["lineNumber"], n["product"]["code"]) for n in lines] == [
        (q["POPLIN"], q["ITMREF"]) for q in po["PORDERQ"]
    ]


# ---------------------------------------------------------------- validation


def test_an_unknown_field_rejects_the_whole_document_as_graphql_core_says(server):
    query = '{ x3Purchasing { purchaseOrder { read(_id: "x") { id receivingSite { code } } } } }'
    assert errors(server, query) == [
        "Cannot query field 'receivingSite' on type 'PurchaseOrder'. Did you mean 'receiptSite'?"
    ]
    assert validate_document(query)[0].startswith("Cannot query field 'receivingSite'")
    bad_variable = (
        "query($n: String) { x3Purchasing { purchaseOrder { query(first: $n) { totalCount } } } }"
    )
    assert "Variable '$n' of type 'String' used in position expecting type 'Int'." in errors(
        server, bad_variable
    )
    undefined = "{ x3Purchasing { purchaseOrder { query(first: $n) { totalCount } } } }"
    assert errors(server, undefined) == ["Variable '$n' is not defined."]


def test_the_client_guesses_of_old_are_refused(server):
    guessed = """{ x3MasterData { supplier { read(_id: "FR001") { notes addresses { query {
        edges { node { code } } } } } } } }"""
    assert {m.split("'")[1] for m in errors(server, guessed)} == {"notes", "addresses"}
    assert errors(server, '{ x3Finance { payment { read(_id: "x") { id } } } }')[0].startswith(
        "Cannot query field 'x3Finance' on type 'Query'."
    )


# ---------------------------------------------------------------- introspection


def test_introspection_shows_node_types_fields_and_enum_values(server):
    query = """{ po: __type(name: "PurchaseOrder") { fields { name type { name kind } } }
      noYes: __type(name: "NoYes") { enumValues { name } }
      __schema { queryType { fields { name } } mutationType { name } } }"""
    found = data(server, query)
    fields = {f["name"]: f["type"] for f in found["po"]["fields"]}
    assert fields["isClosed"] == {"name": "NoYes", "kind": "ENUM"}
    assert fields["receiptSite"] == {"name": "Site", "kind": "OBJECT"}
    assert fields["_createUser"]["name"] == "SysUser"
    assert [v["name"] for v in found["noYes"]["enumValues"]] == ["no", "yes"]
    roots = {f["name"] for f in found["__schema"]["queryType"]["fields"]}
    assert roots == {"x3Purchasing", "x3MasterData", "x3FinanceData", "x3InvoicingData", "x3Sales"}
    assert found["__schema"]["mutationType"] is None  # no API operation set up
    directives = data(server, "{ __schema { directives { name } } }")["__schema"]["directives"]
    assert "x3" not in {d["name"] for d in directives}  # the binding is the simulator's own


@pytest.mark.parametrize("options", [{"generation": "legacy"}])
def test_the_legacy_generation_serves_xtremx3_roots_and_their_shapes(server):
    query = """{ po: __type(name: "PurchaseOrder") { fields { name type { name } } }
      supplier: __type(name: "Supplier") { fields { name type { name } } }
      __schema { queryType { fields { name } } } }"""
    found = data(server, query)
    po = {f["name"]: f["type"]["name"] for f in found["po"]["fields"]}
    supplier = {f["name"]: f["type"]["name"] for f in found["supplier"]["fields"]}
    assert po["isClosed"] == "Boolean" and "_createUser" not in po
    assert "companyName" in supplier and "companyName1" not in supplier
    assert supplier["defaultContact"] == "String"
    assert "xtremX3Purchasing" in {f["name"] for f in found["__schema"]["queryType"]["fields"]}
    closed = """{ xtremX3Purchasing { purchaseOrder {
        query(filter: "{isClosed: true}", first: 500) { edges { node { id isClosed } } } } } }"""
    edges = data(server, closed)["xtremX3Purchasing"]["purchaseOrder"]["query"]["edges"]
    expected = {p["POHNUM"] for p in sim(server).records("PORDER") if p["CLEFLG"]}
    assert {e["node"]["id"] for e in edges} == expected and expected
    assert all(e["node"]["isClosed"] is True for e in edges)
    assert errors(server, '{ x3Purchasing { purchaseOrder { read(_id: "x") { id } } } }')[0] == (
        "Cannot query field 'x3Purchasing' on type 'Query'. Did you mean 'xtremX3Purchasing'?"
    )


@pytest.mark.parametrize("options", [{"removed": {"PurchaseOrder": ["receiptSite"]}}])
def test_a_removed_field_is_gone_from_validation_and_introspection(server):
    names = data(server, '{ __type(name: "PurchaseOrder") { fields { name } } }')
    assert "receiptSite" not in {f["name"] for f in names["__type"]["fields"]}
    query = '{ x3Purchasing { purchaseOrder { read(_id: "x") { receiptSite { code } } } } }'
    assert errors(server, query)[0].startswith("Cannot query field 'receiptSite'")
    assert (
        "receiptSite"
        in errors(server, PAGE.replace("isClosed", "isClosed receiptSite { code }"))[0]
    )


def test_unknown_switches_are_refused_at_construction():
    with pytest.raises(ValueError, match="generation"):
        X3Simulator(graphql={"generation": "2019"})
    with pytest.raises(ValueError, match="no property 'nope'"):
        X3Simulator(graphql={"removed": {"PurchaseOrder": ["nope"]}})
    with pytest.raises(ValueError, match="unknown API operation 'notes'"):
        X3Simulator(graphql={"operations": ("notes",)})


# ---------------------------------------------------------------- queries over the store


def test_a_query_pages_by_cursor_and_shows_api1_data_in_xtrem_shapes(server):
    x3 = sim(server)
    approved = sorted(
        p["POHNUM"] for p in x3.records("PORDER") if p["APPFLG"] == 3 and p["CLEFLG"] is False
    )
    variables = {
        "first": 4,
        "filter": "{signatureStatus: 'fully', isClosed: 'no'}",
        "orderBy": "{id: +1}",
    }
    seen, pages = [], 0
    while True:
        answer = ask(server, PAGE, variables).json()
        assert answer["extensions"] == {"diagnoses": []}
        page = connection(answer["data"])
        assert page["totalCount"] == len(approved)
        seen += [e["node"] for e in page["edges"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        variables["after"] = page["pageInfo"]["endCursor"]
    assert [n["id"] for n in seen] == approved and pages == -(-len(approved) // 4)
    node = seen[0]
    po = x3.get("PORDER", node["id"])
    assert node["supplier"] == {"code": {"code": po["BPSNUM"]}}
    assert (node["signatureStatus"], node["isClosed"]) == ("fully", "no")
    assert node["taxIncludedTotalAmount"] == str(po["TTVORD"])  # a Decimal is a string
    assert node["_updateStamp"] == po["UPDDATTIM"].replace("Z", ".000Z")


def test_the_default_page_is_20_and_first_is_bounded(server):
    page = connection(data(server, PAGE))
    assert len(page["edges"]) == 20 and page["pageInfo"]["hasNextPage"]
    assert "first must be 1 to 1000" in errors(server, PAGE, {"first": 1001})[0]


def test_a_cursor_under_another_filter_or_order_is_refused(server):
    first = connection(data(server, PAGE, {"first": 2, "orderBy": "{id: 1}"}))
    cursor = first["pageInfo"]["endCursor"]
    other = errors(server, PAGE, {"first": 2, "orderBy": "{id: -1}", "after": cursor})
    assert "Invalid cursor" in other[0]


def test_filters_cover_stamps_references_enums_operators_and_logic(server):
    x3 = sim(server)
    stamps = sorted({p["UPDDATTIM"] for p in x3.records("PORDER")})
    lo, hi = stamps[5], stamps[-5]
    expected = {
        p["POHNUM"]
        for p in x3.records("PORDER")
        if lo <= p["UPDDATTIM"] < hi and (p["CPY"] in ("FR10", "GB10") or p["BPSNUM"] == "US001")
    }
    condition = (
        f"{{_and: [{{_updateStamp: {{_gte: '{lo}', _lt: '{hi}'}}}}, "
        "{_or: [{company: {code: {_in: ['FR10', 'GB10']}}}, "
        "{orderFromSupplier: {code: {code: 'US001'}}}]}]}"
    )
    edges = connection(data(server, PAGE, {"first": 200, "filter": condition}))["edges"]
    assert {e["node"]["id"] for e in edges} == expected and expected
    open_ = connection(data(server, PAGE, {"first": 200, "filter": "{isClosed: {_ne: 'yes'}}"}))
    assert open_["totalCount"] == sum(1 for p in x3.records("PORDER") if not p["CLEFLG"])
    items = """{ x3FinanceData { openItem { query(first: 200, filter: "{closedStatus: 2}") {
        edges { node { _id closedStatus } } } } } }"""
    closed = data(server, items)["x3FinanceData"]["openItem"]["query"]["edges"]
    assert len(closed) == sum(1 for i in x3.records("GACCDUDATE") if i["FLGCLE"]) > 0
    assert {e["node"]["closedStatus"] for e in closed} == {2}


def test_a_filter_or_order_on_a_property_the_node_lacks_is_refused_by_name(server):
    assert errors(server, PAGE, {"filter": "{receivingSite: 'FR011'}"}) == [
        "Invalid filter: property 'receivingSite' not found on node PurchaseOrder"
    ]
    assert errors(server, PAGE, {"orderBy": "{linesTotalAmount: 1}"}) == [
        "Invalid orderBy: property 'linesTotalAmount' not found on node PurchaseOrder"
    ]
    assert "Invalid filter or orderBy" in errors(server, PAGE, {"filter": "{id: }"})[0]


def test_order_by_a_nested_reference_then_by_key(server):
    order = "{orderFromSupplier: {code: {code: -1}}, orderDate: 1}"
    edges = connection(data(server, PAGE, {"first": 500, "orderBy": order}))["edges"]
    x3 = sim(server)
    expected = sorted(x3.records("PORDER"), key=lambda p: (p["ORDDAT"], p["POHNUM"]))
    expected.sort(key=lambda p: p["BPSNUM"], reverse=True)
    assert [e["node"]["id"] for e in edges] == [p["POHNUM"] for p in expected]


def test_partners_show_default_address_phones_and_contact(server):
    query = """{ x3MasterData { supplier { read(_id: "FR002") {
      code { code companyName1 isSupplier country { code } }
      addressByDefault { code isDefault country { code }
        addressPhoneNumbers { query { edges { node { addressPhoneNumber phoneType } } } } }
      defaultContact { lastName cellPhone } } } } }"""
    found = data(server, query)["x3MasterData"]["supplier"]["read"]
    assert found["code"] == {
        "code": "FR002",
        "companyName1": "Papeterie Moderne SA",
        "isSupplier": True,
        "country": {"code": "FR"},
    }
    address = found["addressByDefault"]
    assert (address["code"], address["isDefault"], address["country"]) == (
        "MAIN",
        True,
        {"code": "FR"},
    )
    phones = [e["node"] for e in address["addressPhoneNumbers"]["query"]["edges"]]
    assert {"addressPhoneNumber": "07 81 22 33 44", "phoneType": "mobile"} in phones
    assert found["defaultContact"] == {"lastName": "MARTIN", "cellPhone": "06 23 45 67 89"}
    invoice = """{ x3Sales { salesInvoice { query(first: 1) { edges { node {
        id { id totalAmountIncludingTax } billToCustomer { code { code } } invoiceDate }
        } } } } }"""
    node = data(server, invoice)["x3Sales"]["salesInvoice"]["query"]["edges"][0]["node"]
    record = sim(server).get("SINVOICE", node["id"]["id"])
    assert node["id"]["totalAmountIncludingTax"] == str(record["AMTATI"])  # id is an object
    assert node["billToCustomer"] == {"code": {"code": record["BPR"]}}


def test_a_record_changed_through_api1_is_changed_in_graphql(server, clock):
    x3 = sim(server)
    clock.now += timedelta(minutes=5)
    x3.update("PORDER", "POFR0110113", CLEFLG=True)
    query = (
        '{ x3Purchasing { purchaseOrder { read(_id: "POFR0110113") { isClosed _updateStamp } } } }'
    )
    assert data(server, query)["x3Purchasing"]["purchaseOrder"]["read"] == {
        "isClosed": "yes",
        "_updateStamp": "2026-11-26T09:19:07.000Z",
    }
    missing = '{ x3Purchasing { purchaseOrder { read(_id: "NOPE") { id } } } }'
    assert data(server, missing)["x3Purchasing"]["purchaseOrder"]["read"] is None


@pytest.mark.parametrize("options", [{"decimals": "number"}])
def test_decimals_can_come_as_json_numbers(server):
    node = connection(data(server, PAGE, {"first": 1}))["edges"][0]["node"]
    assert isinstance(node["taxIncludedTotalAmount"], float)


# ---------------------------------------------------------------- API operations (mutations)

CREATE = """mutation($data: SmsLog_Input!) { x3Custom { smsLog {
    create(data: $data) { id businessPartnerType messageSid loggedAt } } } }"""


@pytest.mark.parametrize("options", [{"operations": ("smsLog",)}])
def test_an_api_operation_adds_its_mutation_and_writes_the_store(server):
    data_in = {
        "businessPartnerType": "supplier",
        "businessPartner": "FR001",
        "messageSid": "SM1",
        "loggedAt": "2026-11-26T09:00:00Z",
    }
    created = data(server, CREATE, {"data": data_in})["x3Custom"]["smsLog"]["create"]
    assert created == {
        "id": "SMS0000001",
        "businessPartnerType": "supplier",
        "messageSid": "SM1",
        "loggedAt": "2026-11-26T09:00:00.000Z",
    }
    stored = sim(server).get("YSMSLOG", "SMS0000001")  # api1 sees it
    assert (stored["BPTYP"], stored["BPNUM"], stored["LOGDATTIM"]) == (
        2,
        "FR001",
        "2026-11-26T09:00:00Z",
    )
    update = """mutation { x3Custom { smsLog { update(data: {_id: "SMS0000001", text: "hi"}) {
        text } } } }"""
    assert data(server, update)["x3Custom"]["smsLog"]["update"] == {"text": "hi"}
    wrong = errors(server, CREATE, {"data": {"businessPartnerType": "vendor"}})
    assert "Value 'vendor' does not exist in 'BusinessPartnerType' enum." in wrong[0]
    payment = 'mutation { x3Custom { payment { create(data: {id: "P1"}) { id } } } }'
    assert errors(server, payment)[0].startswith("Cannot query field 'payment' on type")


def test_without_api_operations_there_is_no_mutation_and_no_custom_node(server):
    assert errors(server, CREATE, {"data": {}}) == [
        "The mutation operation is not supported by the schema.",
        "Unknown type 'SmsLog_Input'.",
    ]
    assert errors(server, '{ x3Custom { smsLog { read(_id: "x") { id } } } }')[0].startswith(
        "Cannot query field 'x3Custom' on type 'Query'."
    )


@pytest.mark.parametrize("options", [{"operations": ("payment",)}])
def test_the_payment_operation_serves_paymenth(server):
    query = """{ x3Custom { payment { query(first: 100) { totalCount
        edges { node { id amountInCurrency direction businessPartner { code } } } } } } }"""
    page = data(server, query)["x3Custom"]["payment"]["query"]
    payments = sim(server).records("PAYMENTH")
    assert page["totalCount"] == len(payments) > 0
    first = page["edges"][0]["node"]
    stored = sim(server).get("PAYMENTH", first["id"])
    assert first["direction"] == ("expense" if stored["SNS"] == 1 else "revenue")


# ---------------------------------------------------------------- credentials and faults


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"secret": "wrong"}, 50),
        ({"iss": "nobody"}, 41),
        ({"sub": "JDUP"}, 42),
        ({"aud": "http://elsewhere/xtrem/api"}, 45),
        ({"iat": 2_000_000_000, "exp": 2_000_000_100}, 21),
        ({"iat": 1_700_000_000, "exp": 1_700_000_300}, 50),  # expired
        ({"exp": 2_000_000_000}, 50),  # longer than the application's tokens validity
    ],
)
def test_x3_refuses_bad_tokens_with_its_plain_text_codes(server, claims, code):
    answer = ask(server, "{ __schema { queryType { name } } }", bearer=token(server, **claims))
    assert (answer.status_code, answer.text) == (401, f"Error {code}: Invalid token")


def test_basic_auth_the_endpoint_header_and_syntax_errors(server):
    x3 = sim(server)
    query = {"query": '{ x3MasterData { supplier { read(_id: "FR001") { companyName1 } } } }'}
    basic = requests.post(
        f"{server.url}/xtrem/api",
        json=query,
        auth=(x3.user, x3.password),
        headers={"x-xtrem-endpoint": "SEED"},
        timeout=5,
    )
    assert basic.json()["data"]["x3MasterData"]["supplier"]["read"]["companyName1"].startswith(
        "Acme"
    )
    wrong = requests.post(
        f"{server.url}/xtrem/api", json=query, auth=(x3.user, "nope"), timeout=5,
        headers={"x-xtrem-endpoint": "SEED"},
    )  # fmt: skip
    assert wrong.status_code == 401
    missing = ask(server, query["query"], endpoint=None)
    assert missing.status_code == 400 and "x-xtrem-endpoint" in missing.text
    assert ask(server, query["query"], endpoint="OTHER").status_code == 404
    broken = ask(server, "{ x3MasterData { supplier { read(_id: ) } } }")
    assert broken.status_code == 400 and "Syntax Error" in broken.json()["errors"][0]["message"]


@pytest.mark.parametrize("options", [{"basic": False}])
def test_basic_can_be_switched_off(server):
    x3 = sim(server)
    answer = requests.post(
        f"{server.url}/xtrem/api", json={"query": "{ __typename }"}, auth=(x3.user, x3.password),
        headers={"x-xtrem-endpoint": "SEED"}, timeout=5,
    )  # fmt: skip
    assert answer.status_code == 401


def test_a_request_a_gateway_forwarded_is_trusted():
    x3 = X3Simulator()
    started: list[str] = []
    body = json.dumps({"query": '{ x3MasterData { supplier { read(_id: "FR001") { _id } } } }'})
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/xtrem/api",
        "QUERY_STRING": "",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body.encode()),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "1",
        "x3sim.gateway_user": "JDUP",
    }
    out = b"".join(x3(environ, lambda status, headers, *_: started.append(status)))
    assert started[0].startswith("200")
    assert json.loads(out)["data"]["x3MasterData"]["supplier"]["read"] == {"_id": "FR001"}
    environ["wsgi.input"] = io.BytesIO(body.encode())
    del environ["x3sim.gateway_user"]
    b"".join(x3(environ, lambda status, headers, *_: started.append(status)))
    assert started[1].startswith("401")


def test_faults_match_operation_node_page_size_and_api1_class(server):
    x3 = sim(server)
    x3.faults.add("503", match="query x3Purchasing.purchaseOrder.query(first:4) PORDER")
    refused = ask(server, PAGE, {"first": 4})
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert ask(server, PAGE, {"first": 4}).status_code == 200  # fired once
    x3.faults.add("diagnoses", match="BPSUPPLIER")
    lost = ask(server, '{ x3MasterData { supplier { read(_id: "FR001") { _id } } } }').json()
    assert lost["data"] is None and lost["extensions"]["diagnoses"][0]["severity"] == "error"
    x3.faults.add("garbage", match="PORDER")
    with pytest.raises(ValueError):
        ask(server, PAGE).json()


# ---------------------------------------------------------------- the helpers


def test_relaxed_json_takes_single_quotes_bare_keys_and_signs():
    assert parse_relaxed("{a: 'it\\'s', \"b\": [+1, -2.5, true, null]}") == {
        "a": "it's",
        "b": [1, -2.5, True, None],
    }
    for bad in ("{a: }", "{a 1}", "{a: 1", "[1, 2"):
        with pytest.raises(FilterError):
            parse_relaxed(bad)


def test_validate_checks_a_document_against_either_generation():
    legacy = '{ xtremX3MasterData { supplier { read(_id: "x") { companyName } } } }'
    assert validate_document(legacy, "legacy") == []
    assert validate_document(legacy)[0].startswith("Cannot query field 'xtremX3MasterData'")
    mutation = 'mutation { x3Custom { smsLog { create(data: {text: "x"}) { id } } } }'
    assert validate_document(mutation, operations=("smsLog",)) == []
    assert validate_document("{ x3MasterData {") == ["Syntax Error: Expected Name, found <EOF>."]
