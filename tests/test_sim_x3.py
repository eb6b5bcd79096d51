"""The Sage X3 api1 simulator, over real HTTP on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import phonenumbers
import pytest
import requests

from x3twilio.simulators import RunningServer, serve
from x3twilio.simulators.x3 import NotFound, SimError, X3Simulator
from x3twilio.simulators.x3data import build_dataset, stamp

START = datetime(2026, 11, 26, 9, 14, 7, 250_000, tzinfo=UTC)
AUTH = ("admin", "admin-secret")
TODAY = START.date().isoformat()


class Clock:
    """A settable clock for the simulator."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def sim(clock: Clock) -> X3Simulator:
    return X3Simulator(clock=clock)


class Current:
    """The app of the module's one server: whichever simulator the running test made."""

    def __init__(self) -> None:
        self.app: X3Simulator | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[RunningServer, Current]]:
    # One server for the module, each test plugging its own simulator in: a server's
    # shutdown waits for serve_forever's poll, which would double the file's run time.
    current = Current()
    running = serve(current)
    yield running, current
    running.stop()


@pytest.fixture
def server(served: tuple[RunningServer, Current], sim: X3Simulator) -> RunningServer:
    running, current = served
    current.app = sim
    return running


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = AUTH
        yield session


@pytest.fixture
def api(server: RunningServer) -> str:
    return f"{server.url}/api1/x3/erp/SEED/"


def query(http: requests.Session, api: str, cls: str, **params: Any) -> requests.Response:
    return http.get(api + cls, params={"representation": f"{cls}.$query", **params})


def details(http: requests.Session, api: str, cls: str, key: str, facet: str = "$details") -> Any:
    return http.get(f"{api}{cls}('{quote(key)}')", params={"representation": f"{cls}.{facet}"})


def all_keys(http: requests.Session, api: str, cls: str, **params: Any) -> list[str]:
    """Follow `$links.$next.$url` verbatim and return every `$key` seen, in order."""
    page = query(http, api, cls, **params).json()
    keys = [r["$key"] for r in page["$resources"]]
    while "$next" in page["$links"]:
        page = http.get(page["$links"]["$next"]["$url"]).json()
        keys += [r["$key"] for r in page["$resources"]]
    return keys


def at(moment: datetime) -> str:
    return f"@{stamp(moment)}@"


# ---------------------------------------------------------------- auth, envelope, paging


@pytest.mark.parametrize("auth", [None, ("admin", "wrong"), ("someone", "admin-secret")])
def test_api_should_refuse_bad_credentials_with_the_syracuse_realm(
    api: str, auth: tuple[str, str] | None
) -> None:
    response = requests.get(api + "PORDER?representation=PORDER.$query", auth=auth)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="Syracuse"'
    assert response.json()["$diagnoses"][0]["$severity"] == "error"


def test_query_should_return_the_envelope_with_a_default_page_of_20(
    http: requests.Session, api: str, server: RunningServer
) -> None:
    response = query(http, api, "PORDER")
    body = response.json()
    assert response.status_code == 200
    assert body["$url"].startswith(f"{server.url}/api1/x3/erp/SEED/PORDER?representation=")
    assert (body["$descriptor"], body["$startIndex"], body["$itemsPerPage"]) == (
        "Purchase orders",
        1,
        20,
    )
    resources = body["$resources"]
    keys = [r["$key"] for r in resources]
    assert len(resources) == 20 and keys == sorted(keys)
    assert all(r["$uuid"] and r["POHNUM"] == r["$key"] for r in resources)
    assert "PORDERQ" not in resources[0] and "UPDDATTIM" in resources[0]
    assert body["$links"]["$next"]["$url"] == (
        f"{server.url}/api1/x3/erp/SEED/PORDER?representation=PORDER.%24query&key=gt.{keys[-1]}"
    )


def test_query_should_honour_count_and_clamp_it_at_200(
    http: requests.Session, api: str, sim: X3Simulator
) -> None:
    sim.add_records("YSMSLOG", [{"TEXT": f"bulk {i}"} for i in range(250)])
    assert len(query(http, api, "PORDER", count=5).json()["$resources"]) == 5
    page = query(http, api, "YSMSLOG", count=1000).json()
    assert (page["$itemsPerPage"], len(page["$resources"])) == (200, 200)
    assert query(http, api, "PORDER", count=0).status_code == 400


def test_following_next_links_should_visit_every_row_exactly_once(
    http: requests.Session, api: str, sim: X3Simulator
) -> None:
    expected = [r["POHNUM"] for r in sim.records("PORDER")]
    assert all_keys(http, api, "PORDER", count=7, orderBy="POHNUM") == expected
    assert len(expected) == 40


def test_next_link_should_keep_the_query_verbatim_and_replace_the_key(
    http: requests.Session, api: str
) -> None:
    raw = f"{api}PORDER?representation=PORDER.$query&count=3&key=gt.POFR0110113&orderBy=POHNUM"
    next_url = http.get(raw).json()["$links"]["$next"]["$url"]
    assert next_url.startswith(raw.replace("key=gt.POFR0110113", "key=gt.POFR0110116"))


def test_paging_should_not_skip_rows_sharing_one_second_across_a_page_boundary(
    http: requests.Session, api: str, sim: X3Simulator, clock: Clock
) -> None:
    bulk = [{"POHNUM": f"POBULK{i:04d}", "BPSNUM": "FR001", "APPFLG": 3} for i in range(50)]
    sim.add_records("PORDER", bulk, stamp=START)
    where = f"(UPDDATTIM ge {at(START)})"
    keys = all_keys(http, api, "PORDER", count=20, where=where)
    assert keys == [r["POHNUM"] for r in bulk]


def test_key_paging_should_apply_to_the_primary_key_even_when_sorted_otherwise(
    http: requests.Session, api: str
) -> None:
    page = query(http, api, "PORDER", count=5, orderBy="UPDDATTIM desc").json()
    stamps = [r["UPDDATTIM"] for r in page["$resources"]]
    assert stamps == sorted(stamps, reverse=True)
    last = page["$resources"][-1]["$key"]
    assert page["$links"]["$next"]["$url"].endswith(f"key=gt.{last}")


def test_query_should_serve_concurrent_clients(http: requests.Session, api: str) -> None:
    def fetch(_: int) -> int:
        return requests.get(api + "PORDER?representation=PORDER.$query", auth=AUTH).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(fetch, range(24))) == {200}


# ---------------------------------------------------------------- where and orderBy

WINDOW = (START - timedelta(days=10), START - timedelta(days=2))

WHERES: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
    (
        f"(UPDDATTIM ge {at(WINDOW[0])}) and (UPDDATTIM lt {at(WINDOW[1])}) and (CPY eq 'FR10')",
        lambda r: stamp(WINDOW[0]) <= r["UPDDATTIM"] < stamp(WINDOW[1]) and r["CPY"] == "FR10",
    ),
    (
        f"(UPDDATTIM ge {at(WINDOW[0])}) and (UPDUSR ne 'BATCH')",
        lambda r: r["UPDDATTIM"] >= stamp(WINDOW[0]) and r["UPDUSR"] != "BATCH",
    ),
    ("BPSNUM in ('FR001','GB001')", lambda r: r["BPSNUM"] in ("FR001", "GB001")),
    ("APPFLG in (1, 2)", lambda r: r["APPFLG"] in (1, 2)),
    ("TOTORD between 100 and 1000.5", lambda r: 100 <= r["TOTORD"] <= 1000.5),
    ("BPSNUM like 'US%'", lambda r: r["BPSNUM"].startswith("US")),
    ("not (APPFLG eq 3)", lambda r: r["APPFLG"] != 3),
    ("BPSNUM eq 'FR001' or APPFLG ne 3", lambda r: r["BPSNUM"] == "FR001" or r["APPFLG"] != 3),
    (f"EXTRCPDAT eq @{TODAY}@", lambda r: r["EXTRCPDAT"] == TODAY),
    (f"ORDDAT gt @{TODAY}@", lambda r: False),
]


@pytest.mark.parametrize(("where", "predicate"), WHERES, ids=[w for w, _ in WHERES])
def test_where_should_filter_like_x3(
    http: requests.Session,
    api: str,
    sim: X3Simulator,
    where: str,
    predicate: Callable[[dict[str, Any]], bool],
) -> None:
    expected = [r["POHNUM"] for r in sim.records("PORDER") if predicate(r)]
    assert all_keys(http, api, "PORDER", count=200, where=where) == expected


def test_where_should_escape_quotes_by_doubling_them(
    http: requests.Session, api: str, sim: X3Simulator
) -> None:
    sim.update("BPSUPPLIER", "FR009", BPSNAM="Quincaillerie l'Atelier")
    keys = all_keys(http, api, "BPSUPPLIER", where="BPSNAM eq 'Quincaillerie l''Atelier'")
    assert keys == ["FR009"]


@pytest.mark.parametrize("params", [{"where": "UPDDATTIMX ge @2026-01-01@"}, {"orderBy": "XYZ"}])
def test_unknown_property_should_fail_with_500_and_diagnoses(
    http: requests.Session, api: str, params: dict[str, str]
) -> None:
    response = query(http, api, "PORDER", **params)
    assert response.status_code == 500
    message = response.json()["$diagnoses"][0]["$message"]
    assert message.startswith("Property ") and message.endswith(" not found in class PORDER")


@pytest.mark.parametrize(
    "where", ["(APPFLG eq 1", "APPFLG eq", "BPSNUM eq 'FR001", "APPFLG eq 1 and", "ORDDAT eq @x@"]
)
def test_bad_where_syntax_should_fail_with_400(
    http: requests.Session, api: str, where: str
) -> None:
    response = query(http, api, "PORDER", where=where)
    assert response.status_code == 400
    assert response.json()["$diagnoses"][0]["$severity"] == "error"


@pytest.mark.parametrize("order_by", ["BPSNUM desc, POHNUM asc", "BPSNUM Desc;POHNUM"])
def test_order_by_should_accept_both_separators(
    http: requests.Session, api: str, sim: X3Simulator, order_by: str
) -> None:
    rows = sorted(sim.records("PORDER"), key=lambda r: r["POHNUM"])
    rows.sort(key=lambda r: r["BPSNUM"], reverse=True)
    keys = all_keys(http, api, "PORDER", count=200, orderBy=order_by)
    assert keys == [r["POHNUM"] for r in rows]


# ---------------------------------------------------------------- details, edit, create


def test_details_should_embed_children_each_with_a_uuid(
    http: requests.Session, api: str, sim: X3Simulator
) -> None:
    body = details(http, api, "BPSUPPLIER", "FR001").json()
    assert body["$etag"] == body["UPDDATTIM"] == sim.get("BPSUPPLIER", "FR001")["UPDDATTIM"]
    address = body["BPADDRESS"][0]
    assert address["$uuid"] and body["CONTACT"][0]["$uuid"]
    assert address["TEL"] == ["04 72 10 20 30", "", "", "", ""]
    assert address["MOB"] == "06 12 34 56 78" and len(address["BPAADDLIG"]) == 3


def test_details_should_read_a_composite_key(http: requests.Session, api: str) -> None:
    body = details(http, api, "GACCDUDATE", "PISU~PIUS0110043~2").json()
    assert (body["TYP"], body["NUM"], body["DUDLIG"]) == ("PISU", "PIUS0110043", 2)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("SEED/PORDER('NOPE')?representation=PORDER.$details", "721 : Record does not exist"),
        ("SEED/NOCLASS?representation=NOCLASS.$query", "Class NOCLASS not found"),
        ("SEED/PORDER?representation=PORDERX.$query", "Representation PORDERX not found"),
        ("OTHER/PORDER?representation=PORDER.$query", "Endpoint OTHER not found"),
    ],
)
def test_missing_things_should_give_404_with_diagnoses(
    http: requests.Session, server: RunningServer, path: str, message: str
) -> None:
    response = http.get(f"{server.url}/api1/x3/erp/{path}")
    assert response.status_code == 404
    assert response.json()["$diagnoses"] == [{"$severity": "error", "$message": message}]


def test_edit_should_stamp_the_change_and_show_it_to_a_later_query(
    http: requests.Session, api: str, clock: Clock
) -> None:
    before = details(http, api, "PORDER", "POFR0110122", "$edit").json()
    assert before["APPFLG"] == 1
    later = clock.advance(hours=2, minutes=3)
    url = f"{api}PORDER('POFR0110122')?representation=PORDER.$edit"
    response = http.put(url, json={"APPFLG": 3, "$etag": before["$etag"]})
    body = response.json()
    assert response.status_code == 200
    assert (body["APPFLG"], body["UPDDATTIM"], body["UPDUSR"]) == (3, stamp(later), "admin")
    assert body["$etag"] == "2026-11-26T11:17:07Z"
    assert body["TOTORD"] == before["TOTORD"] and body["PORDERQ"] == before["PORDERQ"]
    where = f"(UPDDATTIM ge @{stamp(later)}@)"
    assert all_keys(http, api, "PORDER", where=where) == ["POFR0110122"]


def test_edit_should_replace_a_collection_given_in_the_body(
    http: requests.Session, api: str, sim: X3Simulator
) -> None:
    url = f"{api}BPSUPPLIER('FR003')?representation=BPSUPPLIER.$edit"
    contact = {"CCNCRM": "000199", "CNTLNA": "NOUVEAU", "MOB": "06 11 22 33 44"}
    assert http.put(url, json={"CONTACT": [contact]}).status_code == 200
    stored = sim.get("BPSUPPLIER", "FR003")
    assert [c["CNTLNA"] for c in stored["CONTACT"]] == ["NOUVEAU"]
    assert stored["CONTACT"][0]["CNTFNA"] == "" and len(stored["BPADDRESS"]) == 1


@pytest.mark.parametrize(
    "body", [{"NOPE": 1}, {"APPFLG": "three"}, {"POHNUM": "POOTHER"}, {"ORDDAT": "26/11/2026"}]
)
def test_edit_should_refuse_bad_properties_with_400(
    http: requests.Session, api: str, body: dict[str, Any]
) -> None:
    response = http.put(f"{api}PORDER('POFR0110122')?representation=PORDER.$edit", json=body)
    assert response.status_code == 400
    assert response.json()["$diagnoses"][0]["$severity"] == "error"


def test_create_should_answer_201_with_location_and_auto_number_the_log(
    http: requests.Session, api: str, clock: Clock
) -> None:
    url = f"{api}YSMSLOG?representation=YSMSLOG.$create"
    entry = {"BPTYP": 2, "BPNUM": "FR001", "PHONE": "+33612345678", "DIRECTION": "OUT"}
    first = http.post(url, json={**entry, "TEXT": "Votre commande est approuvée"})
    second = http.post(url, json={**entry, "TEXT": "again"})
    body = first.json()
    assert (first.status_code, body["$key"], second.json()["$key"]) == (
        201,
        "SMS0000001",
        "SMS0000002",
    )
    assert first.headers["Location"] == body["$url"]
    assert body["$creDate"] == body["$updDate"] == body["$etag"] == stamp(clock.now)
    assert (body["$creUser"], body["CREUSR"]) == ("admin", "admin")
    again = http.get(first.headers["Location"]).json()
    assert again["TEXT"] == "Votre commande est approuvée" and again["LOGNUM"] == "SMS0000001"


def test_create_should_refuse_a_duplicate_key_and_a_missing_one(
    http: requests.Session, api: str
) -> None:
    url = f"{api}PORDER?representation=PORDER.$create"
    assert http.post(url, json={"POHNUM": "POFR0110122"}).status_code == 409
    assert http.post(url, json={"BPSNUM": "FR001"}).status_code == 400
    assert http.post(url, json={"POHNUM": "PONEW0001", "BPSNUM": "FR001"}).status_code == 201


# ---------------------------------------------------------------- faults, clock, control


@pytest.mark.parametrize(
    ("kind", "status", "content_type"),
    [
        ("500", 500, "application/json"),
        ("503", 503, "application/json"),
        ("429", 429, "application/json"),
        ("401", 401, "application/json"),
        ("html", 502, "text/html"),
        ("html200", 200, "text/html; charset=utf-8"),
        ("garbage", 200, "application/json"),
        ("diagnoses", 200, "application/json"),
    ],
)
def test_faults_should_answer_once_then_let_requests_through(
    http: requests.Session, api: str, sim: X3Simulator, kind: str, status: int, content_type: str
) -> None:
    sim.faults.add(kind, match="PORDER")
    response = query(http, api, "PORDER")
    assert (response.status_code, response.headers["Content-Type"]) == (status, content_type)
    assert query(http, api, "PORDER").status_code == 200


def test_fault_bodies_should_look_like_the_real_failures(
    http: requests.Session, api: str, sim: X3Simulator
) -> None:
    for kind in ("503", "garbage", "diagnoses", "500"):
        sim.faults.add(kind)
    unavailable = query(http, api, "PORDER")
    assert unavailable.headers["Retry-After"] == "1"
    with pytest.raises(ValueError):
        query(http, api, "PORDER").json()
    body = query(http, api, "PORDER").json()
    assert body["$resources"] == [] and body["$diagnoses"][0]["$severity"] == "error"
    assert query(http, api, "PORDER").json()["$diagnoses"][0]["$severity"] == "fatal"


def test_timeout_fault_should_outlast_a_shorter_client_timeout(
    http: requests.Session, api: str, sim: X3Simulator
) -> None:
    sim.faults.add("timeout", delay=0.4)
    with pytest.raises(requests.exceptions.Timeout):
        http.get(api + "PORDER?representation=PORDER.$query", timeout=0.1)
    assert query(http, api, "PORDER").status_code == 200


def test_reset_fault_should_drop_the_connection_after_doing_the_write(
    http: requests.Session, api: str, sim: X3Simulator
) -> None:
    sim.faults.add("reset", match="PUT")
    url = f"{api}PORDER('POFR0110122')?representation=PORDER.$edit"
    with pytest.raises(requests.exceptions.ConnectionError):
        http.put(url, json={"APPFLG": 2})
    assert sim.get("PORDER", "POFR0110122")["APPFLG"] == 2


def test_every_response_should_carry_the_simulator_clock_in_date(
    http: requests.Session, api: str, clock: Clock
) -> None:
    assert query(http, api, "PORDER").headers["Date"] == "Thu, 26 Nov 2026 09:14:07 GMT"
    clock.advance(days=1, seconds=1)
    assert requests.get(api + "PORDER").headers["Date"] == "Fri, 27 Nov 2026 09:14:08 GMT"


def test_control_routes_should_work_without_auth(
    server: RunningServer, api: str, sim: X3Simulator
) -> None:
    fault = {"kind": "503", "match": "BPSUPPLIER", "times": 0}
    assert requests.post(f"{server.url}/_sim/faults", json=fault).status_code == 201
    supplier = api + "BPSUPPLIER?representation=BPSUPPLIER.$query"
    assert requests.get(supplier, auth=AUTH).status_code == 503
    assert requests.get(supplier, auth=AUTH).status_code == 503  # times 0: forever
    assert requests.delete(f"{server.url}/_sim/faults").status_code == 204
    assert requests.get(supplier, auth=AUTH).status_code == 200
    assert requests.post(f"{server.url}/_sim/faults", json={"kind": "nope"}).status_code == 400

    assert requests.post(f"{server.url}/_sim/latency", json={"ms": 150}).status_code == 200
    started = time.perf_counter()
    requests.get(supplier, auth=AUTH)
    assert time.perf_counter() - started >= 0.15 and sim.latency_ms == 150

    sim.create("YSMSLOG", {"TEXT": "hello"})
    rows = requests.get(f"{server.url}/_sim/records/YSMSLOG").json()
    assert [r["TEXT"] for r in rows] == ["hello"]
    assert requests.get(f"{server.url}/_sim/records/NOPE").status_code == 404
    assert sim.requests == 10


def test_numbered_mode_should_serialise_dimensioned_fields_as_tel1_to_tel5(
    served: tuple[RunningServer, Current], clock: Clock
) -> None:
    sim = X3Simulator(clock=clock, dimensioned="numbered", user="u", password="p", folder="X")
    running, current = served
    current.app = sim
    with requests.Session() as http:
        http.auth = ("u", "p")
        api = f"{running.url}/api1/x3/erp/X/"
        address = details(http, api, "BPSUPPLIER", "FR001").json()["BPADDRESS"][0]
        url = f"{api}BPSUPPLIER('FR001')?representation=BPSUPPLIER.$edit"
        changed = {"BPADDRESS": [{**address, "TEL2": "04 72 10 20 32"}]}
        assert http.put(url, json=changed).status_code == 200
    assert "TEL" not in address and "WEB" not in address
    assert (address["TEL1"], address["TEL5"], address["BPAADDLIG1"]) == (
        "04 72 10 20 30",
        "",
        "27 rue Garibaldi",
    )
    stored = sim.get("BPSUPPLIER", "FR001")["BPADDRESS"][0]
    assert stored["TEL"][:2] == ["04 72 10 20 30", "04 72 10 20 32"]


# ---------------------------------------------------------------- Python API


def test_python_api_should_stamp_like_http_and_hand_out_copies(
    sim: X3Simulator, clock: Clock
) -> None:
    copy = sim.get("PORDER", "POFR0110122")
    copy["PORDERQ"][0]["LINAMT"] = -1
    assert sim.get("PORDER", "POFR0110122")["PORDERQ"][0]["LINAMT"] != -1
    later = clock.advance(seconds=30)
    assert sim.update("PORDER", "POFR0110122", APPFLG=3)["UPDDATTIM"] == stamp(later)
    explicit = sim.update("PORDER", "POFR0110122", UPDDATTIM="2026-11-01T00:00:00Z")
    assert explicit["UPDDATTIM"] == "2026-11-01T00:00:00Z"
    created = sim.create("YSMSLOG", {"TEXT": "x"})
    assert (created["LOGNUM"], created["CREDATTIM"]) == ("SMS0000001", stamp(later))
    assert sim.now() == later.replace(microsecond=0)
    with pytest.raises(NotFound):
        sim.get("PORDER", "NOPE")
    with pytest.raises(SimError):
        sim.update("PORDER", "POFR0110122", NOPE=1)


def test_add_records_should_load_100k_rows_quickly(sim: X3Simulator) -> None:
    started = time.perf_counter()
    rows = ({"NUM": f"PIBULK{i:06d}", "BPR": "FR001", "AMTATI": 10.0} for i in range(100_000))
    sim.add_records("PINVOICE", rows, stamp="2026-11-20T00:00:00Z")
    assert time.perf_counter() - started < 5
    assert sim.get("PINVOICE", "PIBULK099999")["UPDDATTIM"] == "2026-11-20T00:00:00Z"
    with pytest.raises(SimError):
        sim.add_records("PINVOICE", [{"NUM": "PIBULK000001"}])


# ---------------------------------------------------------------- the seeded dataset


def phones_of(record: dict[str, Any]) -> list[tuple[str, str]]:
    """(phone, country) for every phone on a partner's addresses and contacts."""
    country = next(a["CRY"] for a in record["BPADDRESS"] if a["BPAADDFLG"] == 2)
    found = [(p, a["CRY"]) for a in record["BPADDRESS"] for p in [*a["TEL"], a["MOB"]]]
    found += [(p, country) for c in record["CONTACT"] for p in (c["TEL"], c["MOB"])]
    return [(phone, cry) for phone, cry in found if phone]


def default_address(sim: X3Simulator, key: str) -> dict[str, Any]:
    record = sim.get("BPSUPPLIER", key)
    return next(a for a in record["BPADDRESS"] if a["BPAADDFLG"] == 2)


def test_dataset_should_hold_the_supplier_fixtures(sim: X3Simulator) -> None:
    acme = sim.get("BPSUPPLIER", "FR001")
    assert (acme["BPSNAM"], acme["CUR"]) == ("Acme Fournitures SARL", "EUR")
    assert default_address(sim, "FR001")["CTY"] == "LYON"
    assert default_address(sim, "FR001")["CRY"] == "FR"
    assert default_address(sim, "FR001")["MOB"] == "06 12 34 56 78"
    assert default_address(sim, "US001")["MOB"] == "(415) 555-0199"
    assert default_address(sim, "US005")["MOB"] == "+1 500-555-0001"
    assert phones_of(sim.get("BPSUPPLIER", "FR009")) == [("voir standard", "FR")]
    uk = phonenumbers.parse(default_address(sim, "GB001")["MOB"], "GB")
    assert phonenumbers.number_type(uk) == phonenumbers.PhoneNumberType.MOBILE
    transports = sim.get("BPSUPPLIER", "FR003")
    assert default_address(sim, "FR003")["MOB"] == ""
    assert transports["CONTACT"][0]["MOB"] == "06 45 67 89 01"
    assert len(sim.records("BPSUPPLIER")) == 12 and len(sim.records("BPCUSTOMER")) == 8


def test_dataset_phones_should_all_be_valid_and_distinct_but_the_unparseable_one(
    sim: X3Simulator,
) -> None:
    partners = sim.records("BPSUPPLIER") + sim.records("BPCUSTOMER")
    phones = [p for record in partners for p in phones_of(record) if p[0] != "voir standard"]
    numbers = [phonenumbers.parse(phone, country) for phone, country in phones]
    assert all(phonenumbers.is_valid_number(n) for n in numbers)
    e164 = [phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164) for n in numbers]
    assert len(set(e164)) == len(e164)


def test_dataset_should_cover_every_approval_state_and_due_dates(sim: X3Simulator) -> None:
    orders = sim.records("PORDER")
    assert {o["APPFLG"] for o in orders} == {1, 2, 3, 4, 5} and len(orders) == 40
    unapproved = [o["POHNUM"] for o in orders if o["BPSNUM"] == "FR001" and o["APPFLG"] == 1]
    assert unapproved == ["POFR0110122", "POFR0110131", "POFR0110133"]
    due_today = [o["POHNUM"] for o in orders if o["EXTRCPDAT"] == TODAY]
    assert due_today == ["POFR0110119", "POFR0110123", "POFR0110128", "POGB0110119", "POUS0110118"]
    assert all(o["LINNBR"] == len(o["PORDERQ"]) for o in orders)
    items = sim.records("GACCDUDATE")
    soon = (START.date() + timedelta(days=3)).isoformat()
    due = [i for i in items if TODAY <= i["DUDDAT"] <= soon]
    assert len([i for i in due if i["FLGCLE"] == 1]) == 6
    paid = [i for i in items if i["FLGCLE"] == 2]
    assert paid and all(i["PAYCUR"] == i["AMTCUR"] for i in paid)
    assert len(sim.records("PAYMENTH")) == len(paid)
    assert sim.records("YSMSLOG") == []


def test_dataset_stamps_should_be_whole_past_seconds_within_30_days(sim: X3Simulator) -> None:
    now = sim.now()
    for cls in ("BPSUPPLIER", "BPCUSTOMER", "PORDER", "PINVOICE", "SINVOICE", "PAYMENTH"):
        for record in sim.records(cls):
            for name in ("CREDATTIM", "UPDDATTIM"):
                moment = datetime.fromisoformat(record[name])
                assert now - timedelta(days=30) <= moment < now
                assert record[name].endswith("Z") and len(record[name]) == 20


def test_dataset_should_be_deterministic_for_a_given_now() -> None:
    assert build_dataset(START) == build_dataset(START)
    later = build_dataset(START + timedelta(days=40, hours=5))
    assert list(later["PORDER"]) == list(build_dataset(START)["PORDER"])
