"""The Sage X3 api1 simulator, over real HTTP on loopback.

The default shapes are checked against a payload captured from a real X3 folder
(tests/fixtures/x3/); every switch for what sites do differently is checked both ways.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import phonenumbers
import pytest
import requests

from x3twilio.simulators import RunningServer, serve
from x3twilio.simulators.x3 import NotFound, SimError, X3Simulator
from x3twilio.simulators.x3_dataset import build_dataset
from x3twilio.simulators.x3data import stamp

START = datetime(2026, 11, 26, 9, 14, 7, 250_000, tzinfo=UTC)
AUTH = ("admin", "admin-secret")
TODAY = START.date().isoformat()
FIXTURES = Path(__file__).parent / "fixtures" / "x3"
DUE_TODAY = ["POFR0110119", "POFR0110123", "POFR0110128", "POGB0110119", "POUS0110118"]


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


Site = Callable[..., tuple[str, X3Simulator]]


@pytest.fixture
def site(served: tuple[RunningServer, Current], clock: Clock) -> Site:
    """Plug a simulator with these switches into the module's server: (api URL, simulator)."""

    def plug(**switches: Any) -> tuple[str, X3Simulator]:
        running, current = served
        current.app = X3Simulator(clock=clock, **switches)
        return f"{running.url}/api1/x3/erp/SEED/", current.app

    return plug


def query(
    http: requests.Session, api: str, cls: str, rep: str = "", **params: Any
) -> requests.Response:
    return http.get(api + cls, params={"representation": f"{rep or cls}.$query", **params})


def details(
    http: requests.Session, api: str, cls: str, key: str, facet: str = "$details", rep: str = ""
) -> Any:
    url = f"{api}{cls}('{quote(key)}')"
    return http.get(url, params={"representation": f"{rep or cls}.{facet}"})


def edit(
    http: requests.Session, api: str, cls: str, key: str, body: Any, rep: str = ""
) -> requests.Response:
    url = f"{api}{cls}('{quote(key)}')?representation={rep or cls}.$edit"
    return http.put(url, json=body)


def prototype(http: requests.Session, api: str, cls: str, rep_facet: str) -> requests.Response:
    return http.get(f"{api}{cls}/$prototypes('{rep_facet}')")


def message(response: requests.Response) -> str:
    return str(response.json()["$diagnoses"][0]["$message"])


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
    (f"EXTRCPDAT1 eq @{TODAY}@", lambda r: r["EXTRCPDAT1"] == TODAY),
    ("CLEFLG eq true", lambda r: r["CLEFLG"] is True),
    ("CLEFLG ne true and APPFLG eq 3", lambda r: not r["CLEFLG"] and r["APPFLG"] == 3),
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


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"where": "UPDDATTIMX ge @2026-01-01@"}, "UPDDATTIMX"),
        ({"orderBy": "XYZ"}, "XYZ"),
        ({"where": f"EXTRCPDAT eq @{TODAY}@"}, "EXTRCPDAT"),  # a line field, not the header's
        ({"orderBy": "ORDDAT desc, PORDERQ"}, "PORDERQ"),  # a child list is no query property
    ],
)
def test_unknown_property_should_fail_with_500_naming_it(
    http: requests.Session, api: str, params: dict[str, str], name: str
) -> None:
    response = query(http, api, "PORDER", **params)
    assert response.status_code == 500
    assert message(response) == f"Property {name} not found in class PORDER"


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


def test_partner_details_should_embed_addresses_phone_slots_and_contacts(
    http: requests.Session, api: str, sim: X3Simulator
) -> None:
    body = details(http, api, "BPSUPPLIER", "FR002").json()
    stored = sim.get("BPSUPPLIER", "FR002")
    assert body["$etag"] == stored["UPDDATTIM"] and body["$uuid"]
    assert not {"BPSREM", "UPDDATTIM", "CREDATTIM", "CREUSR", "UPDUSR", "BPADDRESS"} & set(body)
    assert (body["LAN"], body["CRY"], body["ENAFLG"]) == ("FRA", "FR", True)
    main, depot = body["BPSBPRBPA"]
    assert main["$uuid"] != depot["$uuid"] and main["BPADEFFLG"] is True
    assert (depot["BPR_BPA_BPAADD"], depot["BPADEFFLG"], depot["BPS_BPA_CRY"]) == (
        "DEPOT",
        False,
        "FR",
    )
    assert [(s["TELNUM"], s["TELTYP"]) for s in main["BPSBPRBPACOLTEL"]] == [
        ("01 43 55 12 90", 1),
        ("07 81 22 33 44", 2),  # the mobile in slot 2, as captured
        ("01 43 55 12 91", 3),
        ("", 4),
        ("", 5),
    ]
    assert [s["WEBADR"] for s in main["BPSBPRBPACOLWEB"]] == ["contact@papeterie-moderne.fr"] + [
        ""
    ] * 4
    assert all(s["$uuid"] for s in main["BPSBPRBPACOLTEL"])
    assert (main["BPAADDLIG1"], main["BPAADDLIG2"], main["BPS_BPA_CRY_REF"]["$title"]) == (
        "118 boulevard Voltaire",
        "",
        "France",
    )
    (contact,) = body["BPSBPRCNT"]
    assert (contact["CNT_CCNCRM"], contact["CNTMOB"], contact["CNTTEL"]) == (
        "000102",
        "06 23 45 67 89",
        "",
    )
    assert (contact["WEB"], contact["CNTLAN"], contact["CNTADD"], contact["TCDEFFLG"]) == (
        "s.martin@papeterie-moderne.fr",
        "FRA",
        "MAIN",
        True,
    )
    assert contact["CNTBIR"] == "0000-00-00"  # an empty date, as api1 sends it
    assert contact["$properties"]["CNT_CCNCRM"] == {"$isDisabled": True, "$isMandatory": True}
    assert body["$properties"] == {"BPSNUM": {"$isMandatory": True}}


def test_customer_details_should_match_the_captured_payload_shape(
    http: requests.Session, api: str
) -> None:
    captured = json.loads((FIXTURES / "bpcustomer-details.json").read_text())
    served = details(http, api, "BPCUSTOMER", "CUS001").json()
    assert_same_shape(served, captured, "$")
    (address,), (contact,) = served["BPCBPRBPA"], served["BPCBPRCNT"]
    # Rows: exactly the captured keys. The header: the captured ones but for fields this
    # simulator does not model, plus its friendly ones.
    assert set(address) == set(captured["BPCBPRBPA"][0])
    assert set(contact) == set(captured["BPCBPRCNT"][0])
    not_modelled = {"BPCSNCDAT", "BPCPYR_REF", "BPAINV_REF", "BPAINVNAM", "ABCCLS", "ACCCOD"}
    not_modelled |= {"BPCFLG", "BPSFLG", "CRN", "ORDCLE", "OST", "CDTISRDAT", "$actxNbLeg"}
    assert set(captured) - set(served) == not_modelled | {"$actxLegCur"}
    assert set(served) - set(captured) == {"BPCNAM", "BCGCOD", "OSTAUZ"}
    for key in ("LAN", "CRY", "BPCSTA", "$etag", "CRY_REF", "LAN_REF", "CUR_REF", "$properties"):
        assert key in served, key
    assert not {"BPCREM", "UPDDATTIM", "CREDATTIM"} & set(served)
    for name in ("BPCBPRBPACOLTEL", "BPCBPRBPACOLWEB"):
        assert len(address[name]) == 5
        assert [slot[name[-3:] + "TYP"] for slot in address[name]] == [1, 2, 3, 4, 5]
    assert served["LAN"] == contact["CNTLAN"] == "ENG"


def assert_same_shape(served: Any, captured: Any, path: str) -> None:
    """Same value kinds and nesting for every key both have; lists item by item."""
    assert kind_of(served) == kind_of(captured), path
    if isinstance(captured, dict):
        for key in captured.keys() & served.keys():
            assert_same_shape(served[key], captured[key], f"{path}.{key}")
    elif isinstance(captured, list):
        for item in served:
            assert_same_shape(item, captured[0], f"{path}[]")


def kind_of(value: Any) -> str:
    if isinstance(value, str):  # text, a date ("0000-00-00" when empty) or a UTC stamp
        if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value):
            return "stamp"
        return "date" if re.fullmatch(r"\d{4}-\d\d-\d\d", value) else "text"
    if isinstance(value, bool | int | float | dict | list):
        return type(value).__name__
    return repr(value)


def test_details_should_read_a_composite_key(http: requests.Session, api: str) -> None:
    body = details(http, api, "GACCDUDATE", "PISU~PIUS0110043~1~2").json()
    assert (body["TYP"], body["NUM"], body["LIG"], body["DUDLIG"]) == ("PISU", "PIUS0110043", 1, 2)
    assert body["FLGCLE"] is False  # open


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
    contact = {"CNT_CCNCRM": "000199", "CNTLNA": "NOUVEAU", "CNTMOB": "06 11 22 33 44"}
    assert edit(http, api, "BPSUPPLIER", "FR003", {"BPSBPRCNT": [contact]}).status_code == 200
    stored = sim.get("BPSUPPLIER", "FR003")
    (row,) = stored["BPSBPRCNT"]
    assert (row["CNTLNA"], row["CNTFNA"], row["TCDEFFLG"]) == ("NOUVEAU", "", False)
    assert (row["CNT_BPANUM"], row["CNT_BPATYP"]) == ("FR003", 1)  # taken from the partner
    assert len(stored["BPSBPRBPA"]) == 1


def test_edit_should_pad_phone_slots_and_refuse_a_sixth(
    http: requests.Session, api: str, sim: X3Simulator
) -> None:
    address = details(http, api, "BPSUPPLIER", "FR001").json()["BPSBPRBPA"][0]
    phones = [{"TELNUM": "04 72 10 20 99", "TELTYP": 1}, {"TELNUM": "06 00 00 00 01"}]
    changed = {**address, "BPSBPRBPACOLTEL": phones}
    assert edit(http, api, "BPSUPPLIER", "FR001", {"BPSBPRBPA": [changed]}).status_code == 200
    slots = sim.get("BPSUPPLIER", "FR001")["BPSBPRBPA"][0]["BPSBPRBPACOLTEL"]
    assert [(s["TELNUM"], s["TELTYP"]) for s in slots] == [
        ("04 72 10 20 99", 1),
        ("06 00 00 00 01", 2),
        ("", 3),
        ("", 4),
        ("", 5),
    ]
    six = {**address, "BPSBPRBPACOLTEL": [{"TELNUM": "1"}] * 6}
    refused = edit(http, api, "BPSUPPLIER", "FR001", {"BPSBPRBPA": [six]})
    assert refused.status_code == 400 and "BPSBPRBPACOLTEL" in message(refused)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"NOPE": 1}, "Property NOPE not found in class PORDER"),
        ({"EXTRCPDAT": "2026-12-01"}, "Property EXTRCPDAT not found in class PORDER"),
        ({"APPFLG": "three"}, "Invalid value 'three' for property APPFLG in class PORDER"),
        ({"CLEFLG": 2}, "Invalid value 2 for property CLEFLG in class PORDER"),
        ({"LINNBR": 1.5}, "Invalid value 1.5 for property LINNBR in class PORDER"),
        ({"POHNUM": "POOTHER"}, "Property POHNUM cannot be modified"),
        (
            {"ORDDAT": "26/11/2026"},
            "Invalid value '26/11/2026' for property ORDDAT in class PORDER",
        ),
        (
            {"ORDREF": "R" * 21},
            "Value too long for property ORDREF in class PORDER: 21 characters, maximum 20",
        ),
    ],
)
def test_edit_should_refuse_bad_properties_with_400_naming_them(
    http: requests.Session, api: str, sim: X3Simulator, body: dict[str, Any], text: str
) -> None:
    before = sim.get("PORDER", "POFR0110122")
    response = edit(http, api, "PORDER", "POFR0110122", body)
    assert (response.status_code, message(response)) == (400, text)
    assert response.json()["$diagnoses"][0]["$severity"] == "error"
    assert sim.get("PORDER", "POFR0110122") == before


def test_edit_of_a_partner_should_refuse_remarks_and_over_long_text(
    http: requests.Session, api: str, sim: X3Simulator
) -> None:
    remarks = edit(http, api, "BPSUPPLIER", "FR001", {"BPSREM": "hello"})
    assert (remarks.status_code, message(remarks)) == (
        400,
        "Property BPSREM not found in class BPSUPPLIER",
    )
    name = "Acme Fournitures et Papeterie Lyonnaise"  # 39 characters, BPSNAM holds 35
    long = edit(http, api, "BPSUPPLIER", "FR001", {"BPSNAM": name})
    assert (long.status_code, message(long)) == (
        400,
        "Value too long for property BPSNAM in class BPSUPPLIER: 39 characters, maximum 35",
    )
    echoed = details(http, api, "BPSUPPLIER", "FR001", "$edit").json()  # *_REF, $uuid...
    assert edit(http, api, "BPSUPPLIER", "FR001", {**echoed, "BPSNAM": name[:35]}).ok
    assert sim.get("BPSUPPLIER", "FR001")["BPSNAM"] == name[:35]


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


# ---------------------------------------------------------------- Yes/No fields


def test_yes_no_fields_should_be_json_booleans_and_other_menus_integers(
    http: requests.Session, api: str
) -> None:
    order = details(http, api, "PORDER", "POFR0110122").json()
    assert (order["CLEFLG"], order["APPFLG"], order["RCPFLG"]) == (False, 1, 1)
    item = details(http, api, "GACCDUDATE", "SICU~SIFR0110022~1~1").json()
    assert (item["FLGCLE"], item["BPRTYP"]) == (True, 1)  # paid: closed
    customer = query(http, api, "BPCUSTOMER", count=1).json()["$resources"][0]
    assert customer["BPCSTA"] is True and customer["BPCTYP"] == 1
    changed = edit(http, api, "PORDER", "POFR0110122", {"CLEFLG": True})
    assert changed.status_code == 200 and changed.json()["CLEFLG"] is True


def test_menu_mode_should_serve_and_take_yes_no_as_1_and_2(
    http: requests.Session, site: Site
) -> None:
    api, sim = site(yes_no="menu")
    order = details(http, api, "PORDER", "POFR0110122").json()
    assert (order["CLEFLG"], order["APPFLG"]) == (1, 1)
    assert details(http, api, "BPSUPPLIER", "FR001").json()["BPSBPRBPA"][0]["BPADEFFLG"] == 2
    assert edit(http, api, "PORDER", "POFR0110122", {"CLEFLG": 2}).json()["CLEFLG"] == 2
    assert sim.get("PORDER", "POFR0110122")["CLEFLG"] is True  # stored as a boolean
    refused = edit(http, api, "PORDER", "POFR0110122", {"CLEFLG": True})
    assert refused.status_code == 400 and "CLEFLG" in message(refused)
    described = prototype(http, api, "PORDER", "PORDER.$query").json()["$properties"]
    assert described["CLEFLG"] == {
        "$type": "application/x-choice",
        "$menu": 1,
        "$capabilities": "sort",
    }


def test_where_should_compare_booleans_with_true_or_in_menu_mode_with_2(
    http: requests.Session, api: str, sim: X3Simulator, site: Site
) -> None:
    closed = [o["POHNUM"] for o in sim.records("PORDER") if o["CLEFLG"]]
    assert closed and all_keys(http, api, "PORDER", count=200, where="CLEFLG eq true") == closed
    two = query(http, api, "PORDER", where="CLEFLG eq 2")
    assert (two.status_code, message(two)) == (500, "Cannot compare property CLEFLG with 2")
    menu_api, _ = site(where_booleans="menu")
    assert all_keys(http, menu_api, "PORDER", count=200, where="CLEFLG eq 2") == closed
    true = query(http, menu_api, "PORDER", where="CLEFLG eq true")
    assert (true.status_code, message(true)) == (500, "Property true not found in class PORDER")


# ---------------------------------------------------------------- order lines, open items


def test_po_header_should_carry_extrcpdat1_and_lines_be_a_class_of_their_own(
    http: requests.Session, api: str, sim: X3Simulator
) -> None:
    header = details(http, api, "PORDER", "POFR0110119").json()
    assert header["EXTRCPDAT1"] == TODAY and "EXTRCPDAT" not in header
    embedded = header["PORDERQ"]
    assert embedded and all(line["EXTRCPDAT"] == TODAY for line in embedded)
    keys = all_keys(http, api, "PORDERQ", count=200, where=f"EXTRCPDAT eq @{TODAY}@")
    expected = [
        f"{o['POHNUM']}~{line['POPLIN']}~{line['POQSEQ']}"
        for o in sim.records("PORDER")
        for line in o["PORDERQ"]
        if line["EXTRCPDAT"] == TODAY
    ]
    assert keys == sorted(expected) and {k.split("~")[0] for k in keys} == set(DUE_TODAY)
    row = query(http, api, "PORDERQ", where="POHNUM eq 'POFR0110119'").json()["$resources"][0]
    assert row["$key"] == "POFR0110119~1000~1"
    assert (row["BPSNUM"], row["POHFCY"]) == (header["BPSNUM"], header["POHFCY"])
    assert (row["CREDATTIM"], row["UPDDATTIM"]) == (header["CREDATTIM"], header["UPDDATTIM"])
    for name in ("ITMREF", "ITMDES", "QTYUOM", "UOM", "LINSTA", "POPLIN", "POQSEQ"):
        assert row[name] == embedded[0][name], name
    page = query(http, api, "PORDERQ", count=3).json()
    assert page["$links"]["$next"]["$url"].endswith("key=gt." + page["$resources"][-1]["$key"])


def test_a_line_edit_should_stamp_the_line_and_show_in_its_order(
    http: requests.Session, api: str, sim: X3Simulator, clock: Clock
) -> None:
    before = sim.get("PORDER", "POFR0110119")
    later = clock.advance(minutes=7)
    key = "POFR0110119~1000~1"
    response = edit(http, api, "PORDERQ", key, {"EXTRCPDAT": "2026-12-04"})
    assert response.status_code == 200 and response.json()["UPDDATTIM"] == stamp(later)
    order = details(http, api, "PORDER", "POFR0110119").json()
    assert order["PORDERQ"][0]["EXTRCPDAT"] == "2026-12-04"
    assert order["PORDERQ"][0]["UPDDATTIM"] == stamp(later)
    assert order["UPDDATTIM"] == before["UPDDATTIM"]  # the header is not touched
    refused = edit(http, api, "PORDERQ", key, {"BPSNUM": "FR002"})
    assert (refused.status_code, message(refused)) == (400, "Property BPSNUM cannot be modified")
    created = http.post(f"{api}PORDERQ?representation=PORDERQ.$create", json={"POHNUM": "X"})
    assert created.status_code == 400


def test_an_order_edit_should_replace_its_lines_in_the_lines_class(
    http: requests.Session, api: str, sim: X3Simulator, clock: Clock
) -> None:
    order = details(http, api, "PORDER", "POFR0110113", "$edit").json()
    first, *rest = order["PORDERQ"]
    assert len(rest) == 3
    later = clock.advance(hours=1)
    changed = {**first, "QTYUOM": 999}
    body = {"PORDERQ": [changed], "BPSNUM": "FR002"}
    assert edit(http, api, "PORDER", "POFR0110113", body).status_code == 200
    line = details(http, api, "PORDERQ", "POFR0110113~1000~1").json()
    assert (line["QTYUOM"], line["BPSNUM"], line["UPDDATTIM"]) == (999, "FR002", stamp(later))
    assert line["CREDATTIM"] == first["CREDATTIM"]
    gone = f"POFR0110113~{rest[0]['POPLIN']}~1"
    assert details(http, api, "PORDERQ", gone).status_code == 404
    assert all_keys(http, api, "PORDERQ", where="POHNUM eq 'POFR0110113'") == ["POFR0110113~1000~1"]
    duplicate = edit(http, api, "PORDER", "POFR0110113", {"PORDERQ": [changed, changed]})
    assert duplicate.status_code == 400 and len(sim.get("PORDER", "POFR0110113")["PORDERQ"]) == 1


def test_open_items_of_one_document_on_two_lines_should_be_two_records(
    http: requests.Session, api: str
) -> None:
    keys = all_keys(http, api, "GACCDUDATE", where="NUM eq 'PIGB0110043'")
    assert keys == ["PISU~PIGB0110043~1~1", "PISU~PIGB0110043~2~1"]
    one, two = (details(http, api, "GACCDUDATE", key).json() for key in keys)
    assert (one["LIG"], one["DUDLIG"], two["LIG"], two["DUDLIG"]) == (1, 1, 2, 1)
    split = all_keys(http, api, "GACCDUDATE", where="NUM eq 'PIUS0110043'")
    assert split == ["PISU~PIUS0110043~1~1", "PISU~PIUS0110043~1~2"]  # instalments of a line
    page = query(http, api, "GACCDUDATE", count=2, key="gt.PISU~PIGB0110043~1~1").json()
    assert page["$resources"][0]["$key"] == "PISU~PIGB0110043~2~1"


# ---------------------------------------------------------------- discovery


def served_names(body: dict[str, Any]) -> set[str]:
    """The properties a body serves: not its `$` metadata, nor the `*_REF` displays."""
    return {k for k in body if not k.startswith("$") and not k.endswith("_REF")}


def test_prototype_of_a_query_should_type_every_served_property(
    http: requests.Session, api: str
) -> None:
    response = prototype(http, api, "PORDER", "PORDER.$query")
    assert response.status_code == 200
    described = response.json()["$properties"]
    row = query(http, api, "PORDER", count=1).json()["$resources"][0]
    assert set(described) == served_names(row)
    assert described["POHNUM"] == {
        "$type": "application/x-string",
        "$maxLength": 20,
        "$isMandatory": True,
        "$capabilities": "sort",
    }
    types = {name: prop["$type"].removeprefix("application/x-") for name, prop in described.items()}
    assert [types[n] for n in ("APPFLG", "CLEFLG", "TOTORD", "LINNBR", "ORDDAT", "UPDDATTIM")] == [
        "choice",
        "boolean",
        "decimal",
        "integer",
        "date",
        "datetime",
    ]
    assert described["APPFLG"]["$menu"] == 280 and "$menu" not in described["RCPFLG"]
    assert all(prop["$capabilities"] == "sort" for prop in described.values())
    assert "$isMandatory" not in described["BPSNUM"]


def test_prototype_of_details_should_describe_child_lists(
    http: requests.Session, api: str, server: RunningServer
) -> None:
    described = prototype(http, api, "BPSUPPLIER", "BPSUPPLIER.$details").json()["$properties"]
    body = details(http, api, "BPSUPPLIER", "FR002").json()
    assert set(described) == served_names(body)
    addresses = described["BPSBPRBPA"]
    assert addresses["$type"] == "application/x-array"
    address = addresses["$item"]["$properties"]
    assert set(address) == served_names(body["BPSBPRBPA"][0])
    assert address["BPADEFFLG"] == {"$type": "application/x-boolean"}
    assert address["BPR_BPA_BPAADD"] == {
        "$type": "application/x-string",
        "$maxLength": 5,
        "$isMandatory": True,
    }
    phones = address["BPSBPRBPACOLTEL"]["$item"]["$properties"]
    assert phones == {
        "TELNUM": {"$type": "application/x-string", "$maxLength": 20},
        "TELTYP": {"$type": "application/x-choice"},
    }
    assert not any("$capabilities" in prop for prop in described.values())
    assert "BPSREM" not in described and "UPDDATTIM" not in described
    edit_facet = prototype(http, api, "BPSUPPLIER", "BPSUPPLIER.$edit").json()["$properties"]
    assert edit_facet == described
    classless = http.get(f"{server.url}/api1/x3/erp/SEED/$prototypes('BPSUPPLIER.$details')")
    assert classless.json()["$properties"] == described


@pytest.mark.parametrize(
    "path", ["PORDER/$prototypes('PORDERX.$query')", "BPSUPPLIER/$prototypes('PORDER.$query')"]
)
def test_prototype_of_an_unknown_representation_should_be_404(
    http: requests.Session, api: str, path: str
) -> None:
    assert http.get(api + path).status_code == 404


def test_a_server_without_prototypes_should_answer_404(http: requests.Session, site: Site) -> None:
    api, _ = site(prototypes=False)
    response = prototype(http, api, "PORDER", "PORDER.$query")
    assert response.status_code == 404 and "$prototypes" in message(response)
    assert query(http, api, "PORDER").status_code == 200


# ---------------------------------------------------------------- site variants


def test_query_without_stamps_should_hide_them_everywhere_but_details(
    http: requests.Session, site: Site
) -> None:
    api, _ = site(query_stamps=False)
    row = query(http, api, "PORDER", count=1).json()["$resources"][0]
    assert "UPDDATTIM" not in row and "CREDATTIM" not in row and "UPDUSR" in row
    described = prototype(http, api, "PORDER", "PORDER.$query").json()["$properties"]
    assert "UPDDATTIM" not in described and set(described) == served_names(row)
    for params in ({"where": f"UPDDATTIM ge {at(START)}"}, {"orderBy": "CREDATTIM"}):
        response = query(http, api, "PORDER", **params)
        assert response.status_code == 500 and "DATTIM not found in class PORDER" in message(
            response
        )
    assert "UPDDATTIM" in details(http, api, "PORDER", "POFR0110122").json()
    partner = query(http, api, "BPSUPPLIER", count=1).json()["$resources"][0]
    assert "UPDDATTIM" not in partner and partner["BPSNUM"] == "FR001"


def test_partners_should_list_through_query_with_keys_names_and_stamps(
    http: requests.Session, api: str, sim: X3Simulator
) -> None:
    rows = query(http, api, "BPSUPPLIER", count=200, orderBy="BPSNAM").json()["$resources"]
    assert [r["BPSNAM"] for r in rows] == sorted(r["BPSNAM"] for r in sim.records("BPSUPPLIER"))
    assert all(r["$key"] == r["BPSNUM"] for r in rows)
    assert "BPSBPRBPA" not in rows[0] and "BPSREM" not in rows[0]
    assert rows[0]["UPDDATTIM"] == sim.get("BPSUPPLIER", rows[0]["$key"])["UPDDATTIM"]
    refused = query(http, api, "BPSUPPLIER", where="BPSREM eq ''")
    assert refused.status_code == 500 and message(refused) == (
        "Property BPSREM not found in class BPSUPPLIER"
    )


def test_a_renamed_field_should_be_served_only_under_its_new_name(
    http: requests.Session, site: Site
) -> None:
    renamed = {"PORDER": {"EXTRCPDAT1": "ZEXPDAT"}, "BPSUPPLIER": {"CNTMOB": "ZCNTMOB"}}
    api, sim = site(renamed=renamed)
    assert all_keys(http, api, "PORDER", count=200, where=f"ZEXPDAT eq @{TODAY}@") == DUE_TODAY
    for params in ({"where": f"EXTRCPDAT1 eq @{TODAY}@"}, {"orderBy": "EXTRCPDAT1"}):
        old = query(http, api, "PORDER", **params)
        assert (old.status_code, message(old)) == (
            500,
            "Property EXTRCPDAT1 not found in class PORDER",
        )
    row = query(http, api, "PORDER", count=1, orderBy="ZEXPDAT desc").json()["$resources"][0]
    assert "EXTRCPDAT1" not in row and row["ZEXPDAT"] == max(
        o["EXTRCPDAT1"] for o in sim.records("PORDER")
    )
    described = prototype(http, api, "PORDER", "PORDER.$details").json()["$properties"]
    assert "ZEXPDAT" in described and "EXTRCPDAT1" not in described
    refused = edit(http, api, "PORDER", "POFR0110122", {"EXTRCPDAT1": TODAY})
    assert (refused.status_code, message(refused)) == (
        400,
        "Property EXTRCPDAT1 not found in class PORDER",
    )
    assert edit(http, api, "PORDER", "POFR0110122", {"ZEXPDAT": "2026-12-24"}).ok
    assert sim.get("PORDER", "POFR0110122")["EXTRCPDAT1"] == "2026-12-24"  # the same column
    contact = details(http, api, "BPSUPPLIER", "FR003").json()["BPSBPRCNT"][0]
    assert contact["ZCNTMOB"] == "06 45 67 89 01" and "CNTMOB" not in contact


def test_a_custom_representation_should_work_in_every_facet(
    http: requests.Session, site: Site
) -> None:
    custom = {
        "ZBPSUPPLIER": {"class": "BPSUPPLIER", "extra": {"ZNOTES": "A"}},
        "SINVOICEV": {"class": "SINVOICE"},
    }
    api, sim = site(representations=custom)
    assert sim.get("BPSUPPLIER", "FR001")["ZNOTES"] == ""  # stored with the record
    rows = query(http, api, "BPSUPPLIER", "ZBPSUPPLIER", count=2).json()["$resources"]
    assert [(r["$key"], r["ZNOTES"]) for r in rows] == [("FR001", ""), ("FR002", "")]
    written = edit(http, api, "BPSUPPLIER", "FR001", {"ZNOTES": "Replied OK"}, "ZBPSUPPLIER")
    assert written.status_code == 200 and written.json()["ZNOTES"] == "Replied OK"
    assert details(http, api, "BPSUPPLIER", "FR001", rep="ZBPSUPPLIER").json()["ZNOTES"] == (
        "Replied OK"
    )
    assert details(http, api, "BPSUPPLIER", "FR001", "$edit", "ZBPSUPPLIER").ok
    standard = details(http, api, "BPSUPPLIER", "FR001").json()
    assert "ZNOTES" not in standard
    assert edit(http, api, "BPSUPPLIER", "FR001", {"ZNOTES": "x"}).status_code == 400
    too_long = edit(http, api, "BPSUPPLIER", "FR001", {"ZNOTES": "n" * 251}, "ZBPSUPPLIER")
    assert (too_long.status_code, message(too_long)) == (
        400,
        "Value too long for property ZNOTES in class BPSUPPLIER: 251 characters, maximum 250",
    )
    described = prototype(http, api, "BPSUPPLIER", "ZBPSUPPLIER.$edit").json()["$properties"]
    assert described["ZNOTES"] == {"$type": "application/x-string", "$maxLength": 250}
    queried = prototype(http, api, "BPSUPPLIER", "ZBPSUPPLIER.$query").json()["$properties"]
    assert set(queried) == served_names(rows[0])
    url = f"{api}BPSUPPLIER?representation=ZBPSUPPLIER.$create"
    created = http.post(url, json={"BPSNUM": "FR010", "BPSNAM": "Nouveau", "ZNOTES": "new"})
    assert created.status_code == 201
    assert created.headers["Location"].endswith("?representation=ZBPSUPPLIER.$details")
    assert http.get(created.headers["Location"]).json()["ZNOTES"] == "new"
    invoices = query(http, api, "SINVOICE", "SINVOICEV", count=200).json()["$resources"]
    assert len(invoices) == 12 and set(invoices[0]) == set(
        query(http, api, "SINVOICE", count=1).json()["$resources"][0]
    )
    assert query(http, api, "PORDER", "ZBPSUPPLIER").status_code == 404  # not over PORDER


def test_a_custom_representation_may_publish_the_remarks_column(
    http: requests.Session, site: Site
) -> None:
    api, sim = site(
        representations={"ZBPSNOTES": {"class": "BPSUPPLIER", "extra": {"BPSREM": "A"}}}
    )
    assert edit(http, api, "BPSUPPLIER", "FR001", {"BPSREM": "OK [SM1]"}, "ZBPSNOTES").ok
    assert sim.get("BPSUPPLIER", "FR001")["BPSREM"] == "OK [SM1]"
    described = prototype(http, api, "BPSUPPLIER", "ZBPSNOTES.$details").json()["$properties"]
    assert described["BPSREM"]["$maxLength"] == 250  # X3's column
    assert "BPSREM" not in details(http, api, "BPSUPPLIER", "FR001").json()  # standard rep


@pytest.mark.parametrize("status", [404, 400, 500])
def test_details_of_a_missing_record_should_answer_the_configured_status(
    http: requests.Session, site: Site, status: int
) -> None:
    api, sim = site(missing_status=status)
    for facet in ("$details", "$edit"):
        response = details(http, api, "BPSUPPLIER", "NOPE", facet)
        assert (response.status_code, message(response)) == (status, "721 : Record does not exist")
    assert edit(http, api, "BPSUPPLIER", "NOPE", {"BPSNAM": "x"}).status_code == status
    with pytest.raises(NotFound):
        sim.get("BPSUPPLIER", "NOPE")


@pytest.mark.parametrize(
    "switches",
    [
        {"yes_no": "yes"},
        {"where_booleans": "2"},
        {"renamed": {"PORDER": {"NOPE": "ZNOPE"}}},
        {"renamed": {"PORDER": {"BPSNUM": "POHNUM"}}},
        {"representations": {"ZX": {"class": "NOCLASS"}}},
        {"representations": {"PORDER": {"class": "PORDER"}}},
        {"representations": {"ZX": {"class": "PORDER", "extra": {"ZF": "Q"}}}},
    ],
)
def test_bad_switches_should_be_refused_at_construction(switches: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        X3Simulator(**switches)


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
        ("licence", 503, "application/json"),
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


def test_licence_fault_should_say_the_web_service_volume_is_used_up(
    http: requests.Session, api: str, sim: X3Simulator, server: RunningServer
) -> None:
    fault = {"kind": "licence", "match": "BPSUPPLIER", "times": 0}
    assert requests.post(f"{server.url}/_sim/faults", json=fault).status_code == 201
    for _ in range(2):  # until the licence's day is over: every matching request
        refused = details(http, api, "BPSUPPLIER", "FR001")
        assert refused.status_code == 503
        text = message(refused)
        assert "web services" in text and "licen" in text and "WSSIZELIMIT" in text
    assert query(http, api, "PORDER").status_code == 200


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


# ---------------------------------------------------------------- Python API


def test_python_api_should_stamp_like_http_and_hand_out_copies(
    sim: X3Simulator, clock: Clock
) -> None:
    copy = sim.get("PORDER", "POFR0110122")
    copy["PORDERQ"][0]["LINAMT"] = -1
    assert sim.get("PORDER", "POFR0110122")["PORDERQ"][0]["LINAMT"] != -1
    later = clock.advance(seconds=30)
    updated = sim.update("PORDER", "POFR0110122", APPFLG=3, CLEFLG=False)
    assert (updated["UPDDATTIM"], updated["CLEFLG"]) == (stamp(later), False)
    explicit = sim.update("PORDER", "POFR0110122", UPDDATTIM="2026-11-01T00:00:00Z")
    assert explicit["UPDDATTIM"] == "2026-11-01T00:00:00Z"
    created = sim.create("YSMSLOG", {"TEXT": "x"})
    assert (created["LOGNUM"], created["CREDATTIM"]) == ("SMS0000001", stamp(later))
    assert sim.now() == later.replace(microsecond=0)
    with pytest.raises(NotFound):
        sim.get("PORDER", "NOPE")
    with pytest.raises(SimError):
        sim.update("PORDER", "POFR0110122", NOPE=1)
    with pytest.raises(SimError):
        sim.update("PORDER", "POFR0110122", CLEFLG=2)  # the Python API takes stored values
    assert sim.update("BPSUPPLIER", "FR001", BPSREM="kept")["BPSREM"] == "kept"  # a column


def test_add_records_should_load_100k_rows_quickly(sim: X3Simulator) -> None:
    started = time.perf_counter()
    rows = ({"NUM": f"PIBULK{i:06d}", "BPR": "FR001", "AMTATI": 10.0} for i in range(100_000))
    sim.add_records("PINVOICE", rows, stamp="2026-11-20T00:00:00Z")
    assert time.perf_counter() - started < 5
    assert sim.get("PINVOICE", "PIBULK099999")["UPDDATTIM"] == "2026-11-20T00:00:00Z"
    with pytest.raises(SimError):
        sim.add_records("PINVOICE", [{"NUM": "PIBULK000001"}])


def test_add_records_should_take_yes_no_as_stored_or_as_menu_values(sim: X3Simulator) -> None:
    orders = [{"POHNUM": f"POBULK{i}", "CLEFLG": flag} for i, flag in enumerate((1, 2, True))]
    sim.add_records("PORDER", orders)
    assert [sim.get("PORDER", f"POBULK{i}")["CLEFLG"] for i in range(3)] == [False, True, True]
    lines = [{"POPLIN": 1000, "POQSEQ": 1, "ITMREF": "X", "EXTRCPDAT": TODAY}]
    sim.add_records("PORDER", [{"POHNUM": "POBULKL", "BPSNUM": "FR001", "PORDERQ": lines}])
    line = sim.get("PORDERQ", "POBULKL~1000~1")
    assert (line["BPSNUM"], line["UPDDATTIM"]) == ("FR001", stamp(START))
    with pytest.raises(SimError):
        sim.add_records("PORDERQ", [{"POHNUM": "POBULKL", "POPLIN": 2000}])


# ---------------------------------------------------------------- the seeded dataset


PREFIXES = {"BPSUPPLIER": "BPS", "BPCUSTOMER": "BPC"}


def phones_of(record: dict[str, Any]) -> list[tuple[str, str]]:
    """(phone, country) for every phone on a partner's addresses and contacts."""
    prefix = "BPS" if "BPSNUM" in record else "BPC"
    addresses, country_of = record[f"{prefix}BPRBPA"], f"{prefix}_BPA_CRY"
    country = next(a[country_of] for a in addresses if a["BPADEFFLG"] is True)
    found = [
        (slot["TELNUM"], a[country_of]) for a in addresses for slot in a[f"{prefix}BPRBPACOLTEL"]
    ]
    found += [(p, country) for c in record[f"{prefix}BPRCNT"] for p in (c["CNTTEL"], c["CNTMOB"])]
    return [(phone, cry) for phone, cry in found if phone]


def default_address(sim: X3Simulator, key: str) -> dict[str, Any]:
    record = sim.get("BPSUPPLIER", key)
    return next(a for a in record["BPSBPRBPA"] if a["BPADEFFLG"] is True)


def mobile(address: dict[str, Any]) -> str:
    """The address's mobile: COLTEL slot 2, as in the captured payload."""
    slot = address["BPSBPRBPACOLTEL"][1]
    assert slot["TELTYP"] == 2
    return str(slot["TELNUM"])


def test_dataset_should_hold_the_supplier_fixtures(sim: X3Simulator) -> None:
    acme = sim.get("BPSUPPLIER", "FR001")
    assert (acme["BPSNAM"], acme["CUR"], acme["LAN"], acme["ENAFLG"]) == (
        "Acme Fournitures SARL",
        "EUR",
        "FRA",
        True,
    )
    assert default_address(sim, "FR001")["CTY"] == "LYON"
    assert default_address(sim, "FR001")["BPS_BPA_CRY"] == "FR"
    assert mobile(default_address(sim, "FR001")) == "06 12 34 56 78"
    assert mobile(default_address(sim, "US001")) == "(415) 555-0199"
    assert sim.get("BPSUPPLIER", "US005")["BPSBPRCNT"][0]["CNTMOB"] == "+1 500-555-0001"
    assert phones_of(sim.get("BPSUPPLIER", "FR009")) == [("voir standard", "FR")]
    uk = phonenumbers.parse(mobile(default_address(sim, "GB001")), "GB")
    assert phonenumbers.number_type(uk) == phonenumbers.PhoneNumberType.MOBILE
    transports = sim.get("BPSUPPLIER", "FR003")
    assert mobile(default_address(sim, "FR003")) == ""
    assert transports["BPSBPRCNT"][0]["CNTMOB"] == "06 45 67 89 01"
    assert sim.get("BPSUPPLIER", "GB002")["BPSBPRCNT"][0]["CNTLAN"] == "ENG"
    assert sim.get("BPCUSTOMER", "CFR003")["BPCBPRCNT"] == []
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
    due_today = [o["POHNUM"] for o in orders if o["EXTRCPDAT1"] == TODAY]
    assert due_today == DUE_TODAY
    assert all(o["LINNBR"] == len(o["PORDERQ"]) for o in orders)
    assert {o["CLEFLG"] for o in orders} == {True, False}
    items = sim.records("GACCDUDATE")
    soon = (START.date() + timedelta(days=3)).isoformat()
    due = [i for i in items if TODAY <= i["DUDDAT"] <= soon]
    assert len([i for i in due if i["FLGCLE"] is False]) == 6
    paid = [i for i in items if i["FLGCLE"] is True]
    assert paid and all(i["PAYCUR"] == i["AMTCUR"] for i in paid)
    assert len(sim.records("PAYMENTH")) == len(paid)
    assert sim.records("YSMSLOG") == []


def test_dataset_stamps_should_be_whole_past_seconds_within_30_days(sim: X3Simulator) -> None:
    now = sim.now()
    for cls in (
        "BPSUPPLIER",
        "BPCUSTOMER",
        "PORDER",
        "PORDERQ",
        "PINVOICE",
        "SINVOICE",
        "PAYMENTH",
    ):
        for record in sim.records(cls):
            for name in ("CREDATTIM", "UPDDATTIM"):
                moment = datetime.fromisoformat(record[name])
                assert now - timedelta(days=30) <= moment < now
                assert record[name].endswith("Z") and len(record[name]) == 20


def test_dataset_should_be_deterministic_for_a_given_now() -> None:
    assert build_dataset(START) == build_dataset(START)
    later = build_dataset(START + timedelta(days=40, hours=5))
    assert list(later["PORDER"]) == list(build_dataset(START)["PORDER"])
