"""X3 Cloud: sign-in through the POSTed callback, the regional endpoint, bearer tokens on
api1 and GraphQL, rotation; against the simulated gateway (simulators/cloud.py) on loopback."""

from __future__ import annotations

import html
import json
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin

import pytest
import requests

from tests.conftest import Env
from x3twilio.config import load_config
from x3twilio.demo import graphql_x3
from x3twilio.errors import ConfigError, X3Error
from x3twilio.simulators import RunningServer, serve
from x3twilio.simulators.cloud import CloudGateway
from x3twilio.transport import Retrier
from x3twilio.x3.auth import OAuth2, check_endpoint
from x3twilio.x3.callback import CallbackReceiver, NoCallback, sign_in
from x3twilio.x3.rest import RestClient

SERVICE = "X3CLOUDV2_SEED"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def gateway(env: Env) -> Iterator[RunningServer]:
    """X3 Cloud's gateway in front of the env's X3 simulator, with a registered callback."""
    with serve(CloudGateway(env.x3, endpoint_name=SERVICE)) as server:
        gw(server).oauth.redirect_uris.add(f"http://127.0.0.1:{free_port()}/callback")
        yield server


def gw(server: RunningServer) -> CloudGateway:
    return server.app  # type: ignore[return-value]


def cloud_x3(server: RunningServer, api: str = "rest", **oauth2: str) -> dict[str, Any]:
    """The x3 section of an X3 Cloud customer: the home region's root API as x3.url."""
    oauth = gw(server).oauth
    return {
        "api": api,
        "url": f"{server.url}/v1",
        "user": "",
        "password": "",
        "auth": "oauth2",
        "client_id": oauth.client_id,
        "client_secret": oauth.client_secret,
        "graphql_path": f"/service/{SERVICE}/api",
        "oauth2": {
            "authorize_url": f"{server.url}/v1/token/authorise",
            "token_url": f"{server.url}/v1/token",
            "redirect_uri": next(iter(oauth.redirect_uris)),
            "customer": oauth.customer,
            **oauth2,
        },
    }


def browser(url: str) -> requests.Response:
    """A person who opens the address and accepts: the consent form is POSTed, and the
    gateway's 307 has the browser re-POST it to the callback (requests does as browsers do)."""
    page = requests.get(url, timeout=5)
    assert page.status_code == 200, page.text
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert action is not None, page.text
    found = re.findall(r'name="(\w+)" value="([^"]*)"', page.text)
    fields = {name: html.unescape(value) for name, value in found}
    return requests.post(urljoin(url, html.unescape(action[1])), data=fields, timeout=10)


def start_login(env: Env, *args: str) -> tuple[subprocess.Popen[str], str]:
    """`x3twilio x3 login --no-browser` running; the authorise address it printed."""
    process = env.popen("x3", "login", "--no-browser", *args)
    assert process.stdout is not None
    for _ in range(5):
        line = process.stdout.readline()
        if line.startswith("http"):
            return process, line.strip()
    process.kill()
    raise AssertionError(f"no address printed: {process.communicate()}")


def finish(process: subprocess.Popen[str], expect: int = 0) -> tuple[str, str]:
    out, err = process.communicate(timeout=60)
    assert process.returncode == expect, f"exit {process.returncode}\n{out}\n{err}"
    return out, err


def login(env: Env) -> Path:
    process, url = start_login(env, "--timeout", "30s")
    answer = browser(url)
    assert answer.status_code == 200 and "Signed in" in answer.text
    out, err = finish(process)
    assert "Traceback" not in err
    path = env.state_dir / "x3-oauth2.json"
    tokens = json.loads(path.read_text())
    assert tokens["refresh_token"] not in out + err and tokens["access_token"] not in out + err
    return path


def data_calls(gateway: CloudGateway) -> list[str]:
    return [p for _, p in gateway.calls if "/token" not in p]


# -- the sign-in, end to end through the real CLI ----------------------------------------------


@pytest.mark.x3(graphql={"operations": ("smsLog", "payment")})  # the site's own API operations
@pytest.mark.parametrize("api", ["rest", "graphql"])
def test_sign_in_through_the_posted_callback_then_poll_reads_through_the_regional_endpoint(
    env, gateway, api
):
    cloud = gw(gateway)
    nodes = {"nodes": graphql_x3(env.x3)["nodes"]} if api == "graphql" else {}
    env.configure(x3={**cloud_x3(gateway, api), "page_size": 3, **nodes})
    path = login(env)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    stored = json.loads(path.read_text())
    assert stored["endpoint"] == f"{gateway.url}/eu/v1"
    assert cloud.oauth.exchanges == ["/eu/v1/token"]  # the code is traded at the endpoint

    cloud.calls.clear()
    before = env.x3.requests
    result = env.run("poll", "--dry-run", "--since", "2000-01-01T00:00:00Z")
    assert "Traceback" not in result.stderr
    calls = data_calls(cloud)
    prefix = "/eu/v1/api1/x3/erp/SEED/" if api == "rest" else f"/eu/v1/service/{SERVICE}/api"
    assert len(calls) > 2 and all(p.startswith(prefix) for p in calls), calls
    # Every call reached X3 through the gateway: none went to x3.url's region or to X3 itself.
    assert env.x3.requests - before == cloud.forwarded == len(calls)


def test_the_login_says_where_it_signed_in_and_refuses_other_answers_while_it_waits(env, gateway):
    env.configure(x3=cloud_x3(gateway))
    process, url = start_login(env, "--timeout", "30s")
    callback = next(iter(gw(gateway).oauth.redirect_uris))
    forged = {"authorizationCode": "stolen", "state": "guessed", "endpoint": "https://evil"}
    assert requests.post(callback, data=forged, timeout=5).status_code == 400
    assert requests.post(callback, json=forged, timeout=5).status_code == 400
    assert requests.get(callback, timeout=5).status_code == 405
    assert requests.post(callback.replace("/callback", "/other"), timeout=5).status_code == 404
    assert requests.post(callback, data="x" * 100_000, timeout=5).status_code == 413
    assert browser(url).status_code == 200  # still waiting: the real answer is taken
    out, _ = finish(process)
    assert f"calls go to {gateway.url}/eu/v1" in out and "x3-oauth2.json" in out


def test_the_callback_may_come_as_json_and_without_an_endpoint(env, gateway, tmp_path):
    """Sage sends `endpoint` only when the region asked is not the customer's own."""
    env.configure(x3=cloud_x3(gateway))
    config = load_config(env.config_path, env={}).x3
    cloud = gw(gateway)

    def answer(url: str) -> None:
        state = re.search(r"state=([^&]+)", url)
        assert state is not None
        page = requests.get(url, timeout=5).text
        code = re.search(r'name="authorizationCode" value="([^"]+)"', page)
        pairing = re.search(r'name="pairing" value="([^"]+)"', page)
        assert code and pairing
        consent = f"{gateway.url}/v1/token/authorise/consent"
        requests.post(consent, data={"pairing": pairing[1]}, allow_redirects=False, timeout=5)
        callback = config.oauth2.redirect_uri if config.oauth2 else ""
        body = {"authorizationCode": code[1], "state": unquote(state[1])}
        threading.Thread(target=requests.post, args=(callback,), kwargs={"json": body}).start()

    done = sign_in(config, answer, 10.0)
    assert done.root == f"{gateway.url}/v1" and "endpoint" not in json.loads(done.path.read_text())
    assert cloud.oauth.exchanges == ["/v1/token"]  # no endpoint: the configured token_url


def test_a_login_nobody_finishes_times_out_cleanly(env, gateway):
    env.configure(x3=cloud_x3(gateway))
    process, _ = start_login(env, "--timeout", "1s")
    _, err = finish(process, expect=1)
    assert err.strip().splitlines()[-1].startswith("x3twilio: no sign-in reached 127.0.0.1:")
    assert "Traceback" not in err and not (env.state_dir / "x3-oauth2.json").exists()


def test_x3_cloud_refusing_the_pairing_stops_the_login_with_its_reason(env, gateway):
    env.configure(x3=cloud_x3(gateway, customer="https://another.customer.example"))
    process, url = start_login(env, "--timeout", "30s")
    assert "Not signed in" in browser(url).text
    _, err = finish(process, expect=69)
    assert "X3 Cloud refused the sign-in: Could not associate" in err
    assert "Traceback" not in err


def test_a_receiver_that_cannot_start_is_a_configuration_error(env, gateway, tmp_path):
    env.configure(x3=cloud_x3(gateway))
    redirect = next(iter(gw(gateway).oauth.redirect_uris))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(redirect.split(":")[2].split("/")[0])))
        taken.listen()
        result = env.run("x3", "login", "--no-browser", "--timeout", "1s", expect=78)
        assert "cannot listen on 127.0.0.1:" in result.stderr
    env.configure(x3=cloud_x3(gateway, redirect_uri="https://127.0.0.1:8443/callback"))
    result = env.run("x3", "login", "--no-browser", expect=78)
    assert "--cert FILE --key FILE" in result.stderr
    missing = str(tmp_path / "none.pem")
    result = env.run("x3", "login", "--cert", missing, "--key", missing, expect=78)
    assert "cannot load them" in result.stderr and "Traceback" not in result.stderr


def test_an_https_callback_is_received_with_the_operators_certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    name = ["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"]
    files = ["-keyout", str(key), "-out", str(cert)]
    self_signed = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run([*self_signed, *name, *files], check=True, capture_output=True)
    uri = f"https://localhost:{free_port()}/cb"
    with CallbackReceiver(uri, "s3cret", cert, key) as receiver:
        body = {"authorizationCode": "c0de", "state": "s3cret", "endpoint": "https://api.x/v1"}
        answers: list[int] = []

        def post() -> None:
            answers.append(requests.post(uri, data=body, verify=str(cert), timeout=5).status_code)

        sender = threading.Thread(target=post)
        sender.start()
        callback = receiver.wait(10.0)
        sender.join()
    assert (callback.code, callback.endpoint, answers) == ("c0de", "https://api.x/v1", [200])
    with CallbackReceiver(uri, "s", cert, key) as receiver, pytest.raises(NoCallback):
        receiver.wait(0.2)


# -- tokens: rotation, restarts, runs at once -------------------------------------------------


def test_rotated_refresh_tokens_survive_restarts_and_a_dead_one_says_sign_in_again(env, gateway):
    oauth = gw(gateway).oauth
    env.configure(x3=cloud_x3(gateway))
    path = login(env)

    def refresh_token() -> str:
        return str(json.loads(path.read_text())["refresh_token"])

    first = refresh_token()
    env.run("poll")  # the stored access token is still good: no refresh
    assert oauth.refreshes == 0
    oauth.access.clear()  # X3 Cloud forgets it: 401, then a refresh, then the same request
    env.run("poll")
    second = refresh_token()
    assert oauth.refreshes == 1 and second != first and first not in oauth.refresh
    assert oauth.exchanges[-1] == "/eu/v1/token"  # refreshed at the endpoint too
    env.x3_clock.advance(6 * 60)  # the access token expired: refreshed before the first call
    env.run("poll")
    assert oauth.refreshes == 2 and refresh_token() not in (first, second)
    assert json.loads(path.read_text())["endpoint"] == f"{gateway.url}/eu/v1"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert not any(p.name.endswith(".tmp") for p in path.parent.iterdir())

    oauth.access.clear()
    oauth.refresh.clear()  # expired, or revoked, at X3 Cloud
    refused = env.run("poll", expect=69)
    assert "run `x3twilio x3 login` again" in refused.stderr
    stored = json.loads(path.read_text())
    path.write_text(json.dumps({**stored, "access_expires": 0, "refresh_expires": 0}))
    assert "refresh token expired on 1970-01-01" in env.run("poll", expect=69).stderr
    os.remove(path)
    assert "run `x3twilio x3 login` once" in env.run("poll", expect=69).stderr


def test_runs_at_once_refresh_once_and_share_the_rotated_token(env, gateway):
    oauth = gw(gateway).oauth
    env.configure(x3=cloud_x3(gateway))
    path = login(env)
    path.write_text(json.dumps({**json.loads(path.read_text()), "access_expires": 0}))
    config = load_config(env.config_path, env={})
    runs = [OAuth2(config.x3, requests.Session()) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        headers = list(pool.map(lambda run: run.headers()["Authorization"], runs))
    assert oauth.refreshes == 1 and len(set(headers)) == 1
    client = RestClient(config.x3, requests.Session(), Retrier(config.retry), auth=runs[0])
    assert client.base == f"{gateway.url}/eu/v1/api1/x3/erp/SEED"
    assert client.details("BPSUPPLIER", "FR001")


def test_a_stored_endpoint_that_is_not_https_is_refused_before_any_token_is_sent(env, gateway):
    env.configure(x3=cloud_x3(gateway))
    path = login(env)
    stored = json.loads(path.read_text())
    path.write_text(json.dumps({**stored, "endpoint": "http://api.elsewhere.example/v1"}))
    gw(gateway).calls.clear()
    result = env.run("poll", expect=69)
    assert "x3-oauth2.json: endpoint" in result.stderr and "must be an https URL" in result.stderr
    assert gw(gateway).calls == []
    assert check_endpoint("https://api.eu-prod-sagex3.com/v1/", "x") == (
        "https://api.eu-prod-sagex3.com/v1"
    )
    for bad in ("ftp://a/v1", "https://u:p@a/v1", "https://a/v1?x=1", "http://10.0.0.1/v1", 7):
        with pytest.raises(X3Error, match="must be an https URL"):
            check_endpoint(bad, "x")


# -- the simulated gateway refuses what X3 Cloud refuses --------------------------------------


def test_the_gateway_issues_rotates_and_expires_tokens(env, gateway):
    cloud, url = gw(gateway), gateway.url
    oauth, redirect = cloud.oauth, next(iter(cloud.oauth.redirect_uris))
    query = {
        "client_id": oauth.client_id,
        "scope": "businessDomain.ALL api.graphQL",
        "customer": oauth.customer,
        "redirect_uri": redirect,
        "state": "s1",
    }
    page = requests.get(f"{url}/v1/token/authorise", params=query, timeout=5).text
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page))
    assert fields["state"] == "s1" and fields["endpoint"] == f"{url}/eu/v1"
    consent = requests.post(
        f"{url}/v1/token/authorise/consent", data=fields, allow_redirects=False, timeout=5
    )
    assert consent.status_code == 307 and consent.headers["Location"] == redirect
    client = {"client_id": oauth.client_id, "client_secret": oauth.client_secret}

    def token_call(**body: str) -> requests.Response:
        return requests.post(f"{url}/eu/v1/token", json={**client, **body}, timeout=5)

    code = {"grant_type": "authorization_code", "code": fields["authorizationCode"]}
    first = token_call(**code, redirect_uri=redirect)
    tokens = first.json()
    assert first.status_code == 200 and tokens["expires_in"] == 300
    assert token_call(**code, redirect_uri=redirect).json()["error"] == "invalid_grant"  # once
    suppliers = f"{url}/eu/v1/api1/x3/erp/SEED/BPSUPPLIER?representation=BPSUPPLIER.$query"
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(suppliers, headers=bearer, timeout=5).status_code == 200
    rotated = token_call(grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
    reused = token_call(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    env.x3_clock.advance(6 * 60)
    late = requests.get(suppliers, headers={"Authorization": f"Bearer {rotated['access_token']}"})
    assert late.status_code == 401 and late.json()["error"] == "invalid_token"
    env.x3_clock.advance(31 * 86400)
    expired = token_call(grant_type="refresh_token", refresh_token=rotated["refresh_token"])
    assert expired.json()["error"] == "invalid_grant"
    wrong = requests.post(f"{url}/v1/token", json={**client, "client_secret": "x"}, timeout=5)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    form = requests.post(f"{url}/v1/token", data=client, timeout=5)  # the body must be JSON
    assert form.status_code == 400 and form.json()["error"] == "invalid_request"


def test_bearer_tokens_work_only_through_the_endpoint_and_the_endpoint_only_takes_them(
    env, gateway
):
    env.configure(x3=cloud_x3(gateway))
    path = login(env)
    access = json.loads(path.read_text())["access_token"]
    target = "/api1/x3/erp/SEED/BPSUPPLIER?representation=BPSUPPLIER.$query&count=1"
    bearer = {"Authorization": f"Bearer {access}"}
    regional = requests.get(f"{gateway.url}/eu/v1{target}", headers=bearer, timeout=5)
    assert regional.status_code == 200
    next_link = regional.json()["$links"]["$next"]["$url"]
    assert next_link.startswith(f"{gateway.url}/eu/v1/api1/")  # X3's links name the gateway
    direct = requests.get(f"{env.x3_server.url}{target}", headers=bearer, timeout=5)
    assert direct.status_code == 401  # X3 itself knows nothing of the gateway's tokens
    basic = (env.x3.user, env.x3.password)
    assert requests.get(f"{gateway.url}/eu/v1{target}", auth=basic, timeout=5).status_code == 401
    home = requests.get(f"{gateway.url}/v1{target}", headers=bearer, timeout=5)
    assert home.status_code == 404  # the customer's data is in its own region only
    folders = requests.get(f"{gateway.url}/eu/v1/folders", headers=bearer, timeout=5).json()
    assert folders["folders"][0]["$urls"]["dataService"].endswith(f"/service/{SERVICE}/api")


def test_the_authorise_page_refuses_unknown_clients_redirects_and_scopes(gateway):
    cloud = gw(gateway)
    good = {
        "client_id": cloud.oauth.client_id,
        "scope": "businessDomain.ALL api.graphQL",
        "customer": cloud.oauth.customer,
        "redirect_uri": next(iter(cloud.oauth.redirect_uris)),
        "state": "s",
    }
    authorise = f"{gateway.url}/v1/token/authorise"
    for change, error in [
        ({"client_id": "other"}, "invalid_client"),
        ({"redirect_uri": "http://127.0.0.1:1/elsewhere"}, "invalid_request"),
        ({"scope": "api.graphQL"}, "invalid_scope"),
        ({"scope": "everything"}, "invalid_scope"),
    ]:
        refused = requests.get(authorise, params={**good, **change}, timeout=5)
        assert refused.status_code == 400 and refused.json()["error"] == error, change
    assert requests.get(authorise, params=good, timeout=5).status_code == 200


# -- configuration ----------------------------------------------------------------------------


def test_api_rest_takes_oauth2_and_basic_but_not_a_connected_app(env, gateway):
    env.configure(x3=cloud_x3(gateway, api1_path="/x3/api1/{folder}"))
    x3 = load_config(env.config_path, env={}).x3
    assert (x3.api, x3.auth, x3.user) == ("rest", "oauth2", "")
    assert x3.oauth2 is not None and x3.oauth2.api1_path == "/x3/api1/{folder}"
    env.configure(x3={"auth": "connected_app", "client_id": "a", "client_secret": "b"})
    with pytest.raises(ConfigError, match=r"x3\.auth: api rest takes basic or oauth2"):
        load_config(env.config_path, env={})


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"redirect_uri": "http://connector.example.com/cb"}, "must be on this machine"),
        ({"redirect_uri": "callback"}, "expected an http(s) URL"),
        ({"api1_path": "api1/x3/erp"}, "expected a path such as"),
        ({"api1_path": "/api1/{dossier}"}, "expected a path such as"),
    ],
)
def test_bad_x3_cloud_settings_name_the_key(env, gateway, change, problem):
    env.configure(x3=cloud_x3(gateway, **change))
    key = next(iter(change))
    with pytest.raises(ConfigError, match=rf"x3\.oauth2\.{key}: .*{re.escape(problem)}"):
        load_config(env.config_path, env={})
