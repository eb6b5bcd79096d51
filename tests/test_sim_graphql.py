"""The X3 simulator's GraphQL endpoint (/xtrem/api), over real HTTP on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from x3twilio.simulators import RunningServer, serve
from x3twilio.simulators.graphql import GraphQLError, parse_relaxed
from x3twilio.simulators.x3 import X3Simulator
from x3twilio.x3.auth import mint_jwt

START = datetime(2026, 11, 26, 9, 14, 7, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def server(clock: Clock) -> Iterator[RunningServer]:
    with serve(X3Simulator(clock=clock)) as running:
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


PAGE = """query($first: Int!, $after: String, $filter: String, $orderBy: String) {
  x3Purchasing { purchaseOrder { query(first: $first, after: $after, filter: $filter,
                                        orderBy: $orderBy) {
    totalCount
    edges { cursor node { id supplier: orderFromSupplier { code { code } }
                          signatureStatus isClosed taxIncludedTotalAmount _updateStamp } }
    pageInfo { hasNextPage endCursor }
  } } } }"""


def test_a_query_pages_by_cursor_and_shows_api1_data_in_graphql_shapes(server):
    x3 = sim(server)
    approved = sorted(
        p["POHNUM"] for p in x3.records("PORDER") if p["APPFLG"] == 3 and p["CLEFLG"] is False
    )
    variables = {
        "first": 4,
        "filter": "{signatureStatus: 'inFull', isClosed: false}",
        "orderBy": "{id: +1}",
    }
    seen, pages = [], 0
    while True:
        answer = ask(server, PAGE, variables).json()
        assert answer["extensions"] == {"diagnoses": []}
        connection = answer["data"]["x3Purchasing"]["purchaseOrder"]["query"]
        assert connection["totalCount"] == len(approved)
        seen += [e["node"] for e in connection["edges"]]
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            break
        variables["after"] = connection["pageInfo"]["endCursor"]
    assert [n["id"] for n in seen] == approved and pages == -(-len(approved) // 4)
    node = seen[0]
    po = x3.get("PORDER", node["id"])
    assert node["supplier"] == {"code": {"code": po["BPSNUM"]}}
    assert (node["signatureStatus"], node["isClosed"]) == ("inFull", False)
    assert node["taxIncludedTotalAmount"] == str(po["TTVORD"])  # a Decimal is a string
    assert node["_updateStamp"] == po["UPDDATTIM"].replace("Z", ".000Z")


def test_a_cursor_under_another_filter_or_order_is_refused(server):
    first = ask(server, PAGE, {"first": 2, "orderBy": "{id: 1}"}).json()
    cursor = first["data"]["x3Purchasing"]["purchaseOrder"]["query"]["pageInfo"]["endCursor"]
    other = ask(server, PAGE, {"first": 2, "orderBy": "{id: -1}", "after": cursor}).json()
    assert other["data"] is None and "Invalid cursor" in other["errors"][0]["message"]


def test_filters_cover_stamps_references_operators_and_logic(server):
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
    answer = ask(server, PAGE, {"first": 200, "filter": condition}).json()
    edges = answer["data"]["x3Purchasing"]["purchaseOrder"]["query"]["edges"]
    assert {e["node"]["id"] for e in edges} == expected and expected


def test_read_update_and_create_share_the_api1_store(server, clock):
    x3 = sim(server)
    read = '{ x3MasterData { supplier { read(_id: "FR001") { code { code } notes isActive } } } }'
    assert ask(server, read).json()["data"]["x3MasterData"]["supplier"]["read"] == {
        "code": {"code": "FR001"},
        "notes": "",
        "isActive": True,
    }
    clock.now += timedelta(minutes=5)
    update = """mutation($data: Supplier_Input!) { x3MasterData { supplier {
        update(data: $data) { notes _updateStamp } } } }"""
    answer = ask(server, update, {"data": {"_id": "FR001", "notes": "hello"}}).json()
    written = answer["data"]["x3MasterData"]["supplier"]["update"]
    assert written == {"notes": "hello", "_updateStamp": "2026-11-26T09:19:07.000Z"}
    assert x3.get("BPSUPPLIER", "FR001")["BPSREM"] == "hello"  # api1 sees it
    assert x3.get("BPSUPPLIER", "FR001")["UPDDATTIM"] == "2026-11-26T09:19:07Z"
    create = """mutation($data: SmsLog_Input!) { x3Custom { smsLog {
        create(data: $data) { id businessPartnerType messageSid } } } }"""
    data = {"businessPartnerType": "supplier", "businessPartner": "FR001", "messageSid": "SM1"}
    created = ask(server, create, {"data": data}).json()["data"]["x3Custom"]["smsLog"]["create"]
    assert created == {"id": "SMS0000001", "businessPartnerType": "supplier", "messageSid": "SM1"}
    assert x3.get("YSMSLOG", "SMS0000001")["BPTYP"] == 2
    bad = ask(server, update, {"data": {"_id": "FR001", "_updateStamp": "x"}}).json()
    assert "no writable property _updateStamp" in bad["errors"][0]["message"]


def test_partner_phones_come_as_collections(server):
    query = """{ x3MasterData { supplier { read(_id: "FR002") {
      addresses { query { edges { node { code isDefault country { code }
        addressPhoneNumbers { query { edges { node { addressPhoneNumber phoneType } } } } } } } }
      contacts { query { edges { node { lastName cellPhone } } } } } } } }"""
    found = ask(server, query).json()["data"]["x3MasterData"]["supplier"]["read"]
    main, depot = (e["node"] for e in found["addresses"]["query"]["edges"])
    phones = [e["node"] for e in main["addressPhoneNumbers"]["query"]["edges"]]
    assert (main["code"], main["isDefault"], main["country"]) == ("MAIN", True, {"code": "FR"})
    assert phones == [
        {"addressPhoneNumber": "01 43 55 12 90", "phoneType": "telephone"},
        {"addressPhoneNumber": "01 43 55 12 91", "phoneType": "telephone"},
        {"addressPhoneNumber": "07 81 22 33 44", "phoneType": "mobile"},
    ]
    assert depot["isDefault"] is False
    assert found["contacts"]["query"]["edges"] == [
        {"node": {"lastName": "MARTIN", "cellPhone": "06 23 45 67 89"}}
    ]


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
    supplier = basic.json()["data"]["x3MasterData"]["supplier"]
    assert supplier["read"]["companyName1"].startswith("Acme")
    missing = ask(server, query["query"], endpoint=None)
    assert missing.status_code == 400 and "x-xtrem-endpoint" in missing.text
    assert ask(server, query["query"], endpoint="OTHER").status_code == 404
    broken = ask(server, "{ x3MasterData { supplier { read(_id: ) } } }")
    assert broken.status_code == 400 and "Syntax Error" in broken.json()["errors"][0]["message"]
    unknown = ask(server, '{ x3MasterData { vendor { read(_id: "x") { id } } } }').json()
    assert unknown["errors"][0]["message"] == 'Cannot query field "vendor" on type "x3MasterData".'


def test_introspection_names_the_packages_current_or_legacy(server):
    query = "{ __schema { queryType { fields { name } } } }"
    names = {
        f["name"] for f in ask(server, query).json()["data"]["__schema"]["queryType"]["fields"]
    }
    assert {"x3Purchasing", "x3MasterData", "x3FinanceData"} <= names
    sim(server).graphql.use_legacy_names()
    names = {
        f["name"] for f in ask(server, query).json()["data"]["__schema"]["queryType"]["fields"]
    }
    assert "xtremX3Purchasing" in names and "x3Purchasing" not in names
    old = ask(server, '{ x3Purchasing { purchaseOrder { read(_id: "x") { id } } } }').json()
    assert old["errors"][0]["message"].startswith('Cannot query field "x3Purchasing"')


def test_faults_match_operation_node_page_size_and_api1_class(server):
    x3 = sim(server)
    x3.faults.add("503", match="purchaseOrder.query(first:4) PORDER")
    refused = ask(server, PAGE, {"first": 4})
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert ask(server, PAGE, {"first": 4}).status_code == 200  # fired once
    x3.faults.add("diagnoses", match="BPSUPPLIER")
    lost = ask(server, '{ x3MasterData { supplier { read(_id: "FR001") { notes } } } }').json()
    assert lost["data"] is None and lost["extensions"]["diagnoses"][0]["severity"] == "error"


def test_the_oauth2_routes_issue_rotate_and_expire_tokens(server, clock):
    x3 = sim(server)
    oauth = x3.graphql.oauth
    consent = requests.get(
        f"{server.url}/v1/token/authorise",
        params={"client_id": oauth.client_id, "redirect_uri": "http://localhost/cb", "state": "s1"},
        allow_redirects=False,
        timeout=5,
    )
    assert consent.status_code == 302
    location = consent.headers["Location"]
    assert location.startswith("http://localhost/cb?authorizationCode=") and "state=s1" in location
    code = location.split("authorizationCode=")[1].split("&")[0]
    client = {"client_id": oauth.client_id, "client_secret": oauth.client_secret}

    def token_call(**body: str) -> requests.Response:
        return requests.post(f"{server.url}/v1/token", json={**client, **body}, timeout=5)

    first = token_call(
        grant_type="authorization_code", code=code, redirect_uri="http://localhost/cb"
    )
    tokens = first.json()
    assert first.status_code == 200 and tokens["expires_in"] == 300
    again = token_call(
        grant_type="authorization_code", code=code, redirect_uri="http://localhost/cb"
    )
    assert again.json()["error"] == "invalid_grant"  # a code works once
    query = '{ x3MasterData { supplier { read(_id: "FR001") { notes } } } }'
    assert ask(server, query, bearer=tokens["access_token"]).status_code == 200
    rotated = token_call(grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
    reused = token_call(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    clock.now += timedelta(minutes=6)
    assert ask(server, query, bearer=rotated["access_token"]).status_code == 401
    clock.now += timedelta(days=31)
    expired = token_call(grant_type="refresh_token", refresh_token=rotated["refresh_token"])
    assert expired.json()["error"] == "invalid_grant"
    wrong = requests.post(
        f"{server.url}/v1/token", json={**client, "client_secret": "x"}, timeout=5
    )
    assert wrong.status_code == 401


def test_relaxed_json_takes_single_quotes_bare_keys_and_signs():
    assert parse_relaxed("{a: 'it\\'s', \"b\": [+1, -2.5, true, null]}") == {
        "a": "it's",
        "b": [1, -2.5, True, None],
    }
    with pytest.raises(GraphQLError):
        parse_relaxed("{a: }")


def test_variables_aliases_defaults_and_literal_objects_resolve(server):
    query = """query Q($id: String = "FR001") {
      md: x3MasterData { s: supplier { one: read(_id: $id) { name: companyName1 } } } }"""
    answer = ask(server, query).json()
    assert answer["data"]["md"]["s"]["one"]["name"] == "Acme Fournitures SARL"
    assert json.loads(json.dumps(answer))  # plain JSON all the way down
