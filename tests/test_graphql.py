"""The GraphQL client and its credentials: the same records as api1, tokens that renew."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import Env
from x3twilio.config import GraphQLNode, OAuth2Config, RetryConfig, X3Config, load_config
from x3twilio.demo import graphql_x3
from x3twilio.errors import ConfigError, X3Error
from x3twilio.simulators import RunningServer, serve
from x3twilio.simulators.x3 import X3Simulator
from x3twilio.sources import BUILTIN, Source, stamp_literal
from x3twilio.transport import Retrier
from x3twilio.x3.auth import (
    ConnectedApp,
    OAuth2,
    authorize_url,
    code_from,
    exchange_code,
    mint_jwt,
    oauth2_login,
)
from x3twilio.x3.graphql import BUILTIN as NODES
from x3twilio.x3.graphql import GraphQLClient, _errors, discover_packages, node_maps, user_filter
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


@pytest.fixture
def server(clock: Clock) -> Iterator[RunningServer]:
    with serve(X3Simulator(clock=clock)) as running:
        yield running


def sim(server: RunningServer) -> X3Simulator:
    return server.app  # type: ignore[return-value]


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
    )
    return replace(base, **changes)


def retrier() -> Retrier:
    return Retrier(RetryConfig(attempts=2, initial=0.01, maximum=0.05), sleep=lambda s: None)


def graphql(server: RunningServer, **changes: Any) -> GraphQLClient:
    return GraphQLClient(x3_config(server, **changes), requests.Session(), retrier())


def rest(server: RunningServer) -> RestClient:
    return RestClient(x3_config(server, api="rest", auth="basic"), requests.Session(), retrier())


def every(pages: Iterator[Any]) -> dict[str, dict[str, Any]]:
    return {r["$key"]: r for page in pages for r in page.resources}


def same(api1: dict[str, Any], other: dict[str, Any], codes: list[str]) -> None:
    for code in codes:
        a, b = api1.get(code), other.get(code)
        if isinstance(a, float | int) and not isinstance(a, bool):
            assert Decimal(str(a)) == Decimal(str(b)), code
        else:
            assert a == b, (code, a, b)


# -- the same records as api1 --------------------------------------------------------------


# Order lines have no GraphQL node of their own (none is documented): api1 only.
@pytest.mark.parametrize("name", sorted(n for n in BUILTIN if BUILTIN[n].x3_class in NODES))
def test_every_source_reads_the_same_records_in_api1s_shape(server, name):
    source = BUILTIN[name]
    later = sim(server).now() + timedelta(days=1)
    client = graphql(server)
    codes = list(client.node(source.x3_class).props)
    via_rest = every(rest(server).changes(source, EVER, later))
    via_graphql = every(client.changes(source, EVER, later))
    assert set(via_graphql) == set(via_rest) and via_rest
    for key, record in via_graphql.items():
        same(via_rest[key], record, codes)
        assert isinstance(record["UPDDATTIM"], str) and record["UPDDATTIM"].endswith("Z")


def test_due_dates_and_user_filters_select_the_same_records(server):
    today = sim(server).now().date()
    for name, code in (("open_items", "DUDDAT"), ("purchase_orders", "EXTRCPDAT1")):
        source = BUILTIN[name]
        first, last = today - timedelta(days=3), today + timedelta(days=10)
        via_rest = every(rest(server).due(source, code, first, last))
        assert set(every(graphql(server).due(source, code, first, last))) == set(via_rest)
    filtered = replace(BUILTIN["purchase_orders"], where="CPY in ('FR10', 'GB10') and APPFLG eq 3")
    later = sim(server).now() + timedelta(days=1)
    via_rest = every(rest(server).changes(filtered, EVER, later))
    assert set(every(graphql(server).changes(filtered, EVER, later))) == set(via_rest)
    assert via_rest and all(r["APPFLG"] == 3 for r in via_rest.values())


def test_partner_details_keys_and_find_match_api1(server):
    client, api1 = graphql(server), rest(server)
    for x3_class, key in (("BPSUPPLIER", "BPSNUM"), ("BPCUSTOMER", "BPCNUM")):
        codes = sorted(client.keys(x3_class, key))
        assert codes == sorted(api1.keys(x3_class, key))
        shape = PartnerShape.default("supplier" if x3_class == "BPSUPPLIER" else "customer")
        for code in codes:
            a, b = api1.partner(shape, code), client.partner(shape, code)
            assert a is not None and b is not None
            assert a.email() == b.email()
            # api1's phone slots do not say which is a fax (TELTYP's values are not known):
            # every slot counts there, while GraphQL names its fax and leaves it out.
            assert {p.text for p in b.phones()} <= {p.text for p in a.phones()}
    assert client.details("BPSUPPLIER", "NOPE") is None
    found = client.find("BPSUPPLIER", "BPSNAM", "Papeterie Moderne SA")
    assert found is not None and found["$key"] == "FR002"
    assert client.find("BPSUPPLIER", "BPSNAM", "nobody") is None


def test_a_note_written_through_the_mutation_is_stamped_and_lands_in_x3(server, clock):
    own = graphql_x3(sim(server))["nodes"]["YSMSLOG"]
    nodes = {"YSMSLOG": GraphQLNode(own["node"], tuple(own["key"]), own["fields"])}
    client = graphql(server, nodes=nodes)
    clock.now += timedelta(seconds=5)
    written = client.edit("BPSUPPLIER", "FR001", {"BPSREM": "hello [SM1]"})
    assert written["BPSREM"] == "hello [SM1]" and written["$key"] == "FR001"
    assert sim(server).get("BPSUPPLIER", "FR001")["BPSREM"] == "hello [SM1]"
    changed = Source("s", "BPSUPPLIER", "BPSUPPLIER", ("BPSNUM",), {})
    window = every(client.changes(changed, clock.now, clock.now + timedelta(seconds=1)))
    assert list(window) == ["FR001"]
    created = client.create("YSMSLOG", {"BPNUM": "FR001", "MSGSID": "SM2", "TEXT": "hi"})
    assert created["$key"] == "SMS0000001" and created["MSGSID"] == "SM2"


def test_every_page_carries_the_same_filter_and_order_with_the_next_cursor(server):
    sent: list[dict[str, Any]] = []

    class Recording(requests.Session):
        def post(self, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
            sent.append(kwargs["json"]["variables"])
            return super().post(url, *args, **kwargs)

    client = GraphQLClient(x3_config(server, page_size=7), Recording(), retrier())
    later = sim(server).now() + timedelta(days=1)
    records = every(client.changes(BUILTIN["purchase_orders"], EVER, later))
    assert len(sent) == -(-len(records) // 7) > 3
    assert len({(v["filter"], v["orderBy"], v["first"]) for v in sent}) == 1
    assert sent[0]["after"] is None and len({v["after"] for v in sent}) == len(sent)
    assert sent[0]["orderBy"] == "{_updateStamp: 1, id: 1}"
    assert sent[0]["filter"] == (
        f"{{_updateStamp: {{_gte: '2000-01-01T00:00:00Z', _lt: '{stamp_literal(later)}'}}}}"
    )


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


# -- errors, versions, filters ----------------------------------------------------------------


def test_graphql_errors_and_error_diagnoses_on_http_200_are_x3_errors(server):
    sim(server).faults.add("diagnoses", match="PORDER")
    with pytest.raises(X3Error, match="Session lost"):
        graphql(server).server_time(BUILTIN["purchase_orders"])
    odd = replace(BUILTIN["purchase_orders"], where="{colour: 'red'}")
    with pytest.raises(X3Error, match="Invalid filter: colour"):
        list(graphql(server).changes(odd, EVER, sim(server).now()))
    warning = {"extensions": {"diagnoses": [{"severity": "warning", "message": "late"}]}}
    assert _errors(warning) == ""
    assert _errors({"extensions": {"diagnoses": [{"severity": 3, "message": "no"}]}}) == "no"


def test_legacy_package_names_are_discovered_and_then_configured(server):
    endpoint = sim(server).graphql
    endpoint.use_legacy_names()
    endpoint.decimals = "number"
    source = BUILTIN["purchase_orders"]
    with pytest.raises(X3Error, match=re.escape("set x3.packages")):
        graphql(server).server_time(source)
    found = discover_packages(x3_config(server))
    assert found["x3Purchasing"] == "xtremX3Purchasing"
    assert found["x3MasterData"] == "xtremX3MasterData"
    later = sim(server).now() + timedelta(days=1)
    via_graphql = every(graphql(server, packages=found).changes(source, EVER, later))
    via_rest = every(rest(server).changes(source, EVER, later))
    for key, record in via_rest.items():
        same(record, via_graphql[key], ["TOTORD", "TTVORD", "APPFLG", "UPDDATTIM"])


def test_sdata_filters_become_graphql_filters():
    node = node_maps(X3Config(url="", folder="", user="", password=""))["PORDER"]
    assert user_filter(node, "CPY in ('FR10', 'GB10') and (CLEFLG eq 1) or not (APPFLG ne 3)") == (
        "{_or: [{_and: [{company: {code: {_in: ['FR10', 'GB10']}}}, {isClosed: {_eq: false}}]}, "
        "{_not: {signatureStatus: {_ne: 'inFull'}}}]}"
    )
    assert user_filter(node, "ORDDAT between @2024-05-01@ and @2024-05-31@") == (
        "{orderDate: {_gte: '2024-05-01', _lte: '2024-05-31'}}"
    )
    assert user_filter(node, "UPDDATTIM >= @2024-05-01T10:00:00Z@") == (
        "{_updateStamp: {_gte: '2024-05-01T10:00:00Z'}}"
    )
    assert user_filter(node, "BPSNUM like 'FR_0%'") == (
        "{orderFromSupplier: {code: {code: {_regex: '^FR.0.*$'}}}}"
    )
    assert user_filter(node, "ORDREF eq 'O''Brien'") == "{internalReference: {_eq: 'O\\'Brien'}}"
    assert user_filter(node, " {company: {code: 'FR10'}} ") == "{company: {code: 'FR10'}}"
    with pytest.raises(X3Error, match="NOPE has no GraphQL property"):
        user_filter(node, "NOPE eq 1")
    with pytest.raises(X3Error, match="APPFLG has no GraphQL value for 7"):
        user_filter(node, "APPFLG eq 7")


def test_x3_nodes_remap_a_builtin_field_and_reject_bad_specs(server):
    nodes = {"BPSUPPLIER": GraphQLNode(fields={"BPSREM": "companyName1"})}
    assert graphql(server, nodes=nodes).details("BPSUPPLIER", "FR001")["BPSREM"].startswith("Acme")
    bad = {"BPSUPPLIER": GraphQLNode(fields={"BPSREM": "notes colour"})}
    with pytest.raises(X3Error, match=re.escape("x3.nodes.BPSUPPLIER.fields.BPSREM: unknown kind")):
        graphql(server, nodes=bad)
    with pytest.raises(X3Error, match="class YOTHER has no GraphQL node"):
        graphql(server).details("YOTHER", "1")


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


def cloud(env: Env) -> dict[str, Any]:
    oauth, url = env.x3.graphql.oauth, env.x3_server.url
    return {
        "auth": "oauth2",
        "client_id": oauth.client_id,
        "client_secret": oauth.client_secret,
        "oauth2": {
            "authorize_url": f"{url}/v1/token/authorise",
            "token_url": f"{url}/v1/token",
            "redirect_uri": "http://localhost:8765/callback",
        },
    }


def browser(url: str) -> str:
    """A person who signs in and pastes back the URL X3 Cloud sent the browser to."""
    return str(requests.get(url, allow_redirects=False, timeout=5).headers["Location"])


def test_x3_cloud_sign_in_once_then_rotated_refresh_tokens_survive_restarts(gql_env):
    oauth = gql_env.x3.graphql.oauth
    gql_env.configure(x3=cloud(gql_env))
    config = load_config(gql_env.config_path, env={})
    path = oauth2_login(config.x3, browser)
    assert path == gql_env.state_dir / "x3-oauth2.json"
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    def refresh_token() -> str:
        return str(json.loads(path.read_text())["refresh_token"])

    first = refresh_token()
    gql_env.run("poll")  # the stored access token is still good: no refresh
    assert oauth.refreshes == 0
    oauth.access.clear()  # X3 Cloud forgets it: 401, then a refresh, then the same request
    gql_env.run("poll")
    second = refresh_token()
    assert oauth.refreshes == 1 and second != first and first not in oauth.refresh
    oauth.access.clear()
    gql_env.run("poll")  # a new process refreshes with the rotated token it stored
    assert oauth.refreshes == 2 and refresh_token() not in (first, second)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert not any(p.name.endswith(".tmp") for p in path.parent.iterdir())

    oauth.access.clear()
    oauth.refresh.clear()  # expired, or revoked, at X3 Cloud
    refused = gql_env.run("poll", expect=69)
    assert "run `x3twilio x3 login` again" in refused.stderr
    stored = json.loads(path.read_text())
    path.write_text(json.dumps({**stored, "access_expires": 0, "refresh_expires": 0}))
    expired = gql_env.run("poll", expect=69)
    assert "refresh token expired on 1970-01-01" in expired.stderr
    os.remove(path)
    assert "run `x3twilio x3 login` once" in gql_env.run("poll", expect=69).stderr


def test_runs_at_once_refresh_once_and_share_the_rotated_token(server, tmp_path):
    oauth = sim(server).graphql.oauth
    config = x3_config(
        server,
        auth="oauth2",
        client_id=oauth.client_id,
        client_secret=oauth.client_secret,
        oauth2=OAuth2Config(
            f"{server.url}/v1/token/authorise", f"{server.url}/v1/token", "http://localhost/cb"
        ),
        state_dir=tmp_path,
    )
    path = exchange_code(config, code_from(browser(authorize_url(config, "s")), "s"))
    path.write_text(json.dumps({**json.loads(path.read_text()), "access_expires": 0}))
    runs = [OAuth2(config, requests.Session()) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        headers = list(pool.map(lambda run: run.headers()["Authorization"], runs))
    assert oauth.refreshes == 1 and len(set(headers)) == 1
    assert GraphQLClient(config, requests.Session(), retrier(), auth=runs[0]).details(
        "BPSUPPLIER", "FR001"
    )


def test_the_pasted_answer_may_be_the_code_or_the_redirect_url():
    assert code_from("  abc123 \n", "s") == "abc123"
    assert code_from("http://localhost/cb?authorizationCode=xyz&state=s", "s") == "xyz"
    assert code_from("https://app/cb?code=q1&state=s", "s") == "q1"
    with pytest.raises(X3Error, match="another sign-in"):
        code_from("http://localhost/cb?authorizationCode=xyz&state=other", "s")
    with pytest.raises(X3Error, match="no authorisation code"):
        code_from("", "s")


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
        ({"user": "u", "password": "p", "auth": "oauth2"}, "x3.auth: api rest uses basic"),
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
