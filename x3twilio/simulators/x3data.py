"""The classes the X3 simulator serves, and its seeded dataset of a mid-market distributor.

Shapes follow what real X3 folders send (X3_REALITY.md, and the captured payloads in
tests/fixtures/x3/): a partner's addresses are the child list `BPCBPRBPA` (`BPSBPRBPA` for a
supplier), its phones and e-mails the five-slot lists `…COLTEL`/`…COLWEB` of each address, its
contacts `BPCBPRCNT`; Yes/No fields (local menu 1) are booleans; the PO header's expected date
is `EXTRCPDAT1` (`EXTRCPDAT` is on the lines, also served as the class `PORDERQ`); an open item
is keyed TYP~NUM~LIG~DUDLIG. Field codes otherwise follow the X3 table dictionary.

Kinds, as `CODE:KIND` in the specs: `A:n` text of at most n characters (a bare number is
short for it), `I` integer, `N` decimal, `M` local menu (`M:n`: menu n), `B` Yes/No (stored as
a Python bool), `D` date, `DT` datetime. A `Rows` value is a child list.
`build_dataset(now)` is deterministic: the same `now` always gives the same records.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple, TypeAlias

Record = dict[str, Any]
Dataset = dict[str, dict[str, Record]]
Ref = Callable[[Mapping[str, Any], str], dict[str, Any]]  # (row, column) -> the *_REF object
Spec: TypeAlias = "dict[str, str | Rows]"

SEED = 20240502
USERS = ("JDUP", "MLEG", "ACHA", "BATCH")
LETTERS = ("A", "I", "N", "M", "B", "D", "DT")
TEXT = 250  # the length of a text field given without one (X3's longest alphanumeric)
EMPTY_DATE = "0000-00-00"  # how api1 sends an empty date (stored as "")
STAMPS = ("CREDATTIM", "UPDDATTIM")
AUDIT_CODES = frozenset({*STAMPS, "CREUSR", "UPDUSR"})


def normal_kind(text: str) -> str:
    """'15' -> 'A:15', 'A' -> 'A:250'; checks the letter and its parameter."""
    if text.isdigit():
        return f"A:{text}"
    code, _, parameter = text.partition(":")
    if code not in LETTERS or not (parameter.isdigit() if parameter else True):
        raise ValueError(f"Unknown field kind {text!r}")
    if parameter and code not in ("A", "M"):
        raise ValueError(f"Field kind {text!r} takes no parameter")
    return f"A:{TEXT}" if text == "A" else text


def letter(kind: str) -> str:
    """'A:15' -> 'A', 'M:280' -> 'M'."""
    return kind.partition(":")[0]


def parameter(kind: str) -> int:
    """The length of a text field or the number of a local menu (0 if none)."""
    return int(kind.partition(":")[2] or 0)


def _spec(text: str) -> dict[str, str | Rows]:
    """'BPSNUM:15 ENAFLG:B' -> {'BPSNUM': 'A:15', 'ENAFLG': 'B'}."""
    fields = (word.partition(":") for word in text.split())
    return {name: normal_kind(kind or "A") for name, _, kind in fields}


def default(kind: str) -> Any:
    return {"I": 0, "M": 0, "N": 0.0, "B": False}.get(letter(kind), "")


@dataclass(frozen=True)
class Rows:
    """The shape of a record or of a child list's rows: field code -> kind, or Rows (a list).

    `columns` maps a served name to the stored column (a representation's renames); the
    other maps are by stored column. `slots` > 0: a fixed list of that many rows, the
    `slot` field numbering them 1..slots (X3's TEL(0..4) as `…COLTEL`).
    """

    fields: Spec
    keys: tuple[str, ...] = ()
    refs: Mapping[str, Ref] = field(default_factory=dict)
    slots: int = 0
    slot: str = ""
    inherit: Mapping[str, str] = field(default_factory=dict)  # row column <- header column
    preset: Mapping[str, Any] = field(default_factory=dict)  # a new row's starting values
    columns: Mapping[str, str] = field(default_factory=dict)

    def column(self, name: str) -> str:
        return self.columns.get(name, name)

    def defaults(self) -> Record:
        """An empty record, by stored column."""
        record = {
            self.column(name): empty_rows(kind) if isinstance(kind, Rows) else default(kind)
            for name, kind in self.fields.items()
        }
        return {**record, **self.preset}

    def scalars(self) -> dict[str, str]:
        return {name: kind for name, kind in self.fields.items() if isinstance(kind, str)}

    def lists(self) -> dict[str, Rows]:
        return {name: kind for name, kind in self.fields.items() if isinstance(kind, Rows)}


def empty_rows(rows: Rows) -> list[Record]:
    """A child list's starting value: no rows, or its slots, empty."""
    return [{**rows.defaults(), rows.slot: i} for i in range(1, rows.slots + 1)]


def columns_of(rows: Rows) -> set[str]:
    """Every stored column of a shape, child lists' included."""
    found = set(rows.fields)
    for child in rows.lists().values():
        found |= columns_of(child)
    return found


@dataclass(frozen=True)
class ClassDef:
    """One api1 class: its shape (key first), auto-number, and what its standard
    representation leaves out. `lines` names a child list also served as a class of that
    name; such a class names its `header` class."""

    name: str
    descriptor: str
    shape: Rows
    counter: str = ""  # prefix of the auto-number for a missing key ("" = none)
    unpublished: frozenset[str] = frozenset()  # stored, but in no facet of the standard rep
    query_only: frozenset[str] = frozenset()  # in $query rows, not in $details
    lines: str = ""
    header: str = ""

    @property
    def keys(self) -> tuple[str, ...]:
        return self.shape.keys

    @property
    def fields(self) -> Spec:
        return self.shape.fields

    def defaults(self) -> Record:
        return self.shape.defaults()


# ---------------------------------------------------------------- references (*_REF)

COUNTRIES = {
    "FR": ("France", "EUR", "FR10", "FR011", 0.20, 1.0),
    "GB": ("United Kingdom", "GBP", "GB10", "GB011", 0.20, 0.86),
    "US": ("United States", "USD", "US10", "US011", 0.0825, 1.08),
}
LANGUAGES = {"FRA": ("French", "French - France"), "ENG": ("English", "English - British")}
CURRENCIES = {"EUR": ("Euro", "Euro", "€"), "GBP": ("Pound", "Pound sterling", "£"),
              "USD": ("Dollar", "US dollar", "$")}  # fmt: skip
TERMS = {"30NET": "30 jours net", "NET30": "Net 30 days"}


def _titled(title: str, description: str) -> dict[str, Any]:
    return {"$title": title, "$description": description}


def _country(row: Mapping[str, Any], column: str) -> dict[str, Any]:
    name = COUNTRIES.get(row.get(column, ""), ("",))[0]
    return _titled(name, name)


def _language(row: Mapping[str, Any], column: str) -> dict[str, Any]:
    return _titled(*LANGUAGES.get(row.get(column, ""), ("", "")))


def _currency(row: Mapping[str, Any], column: str) -> dict[str, Any]:
    title, description, symbol = CURRENCIES.get(row.get(column, ""), ("", "", ""))
    return {**_titled(title, description), "$symbol": symbol, "$scale": 2, "$precision": 13}


def _term(row: Mapping[str, Any], column: str) -> dict[str, Any]:
    text = TERMS.get(row.get(column, ""), "")
    return _titled(text, text)


def _untitled(row: Mapping[str, Any], column: str) -> dict[str, Any]:
    return {"$title": ""}


def _described_by(other: str) -> Ref:
    """A code whose reference shows another field of the row (an address's BPADES...)."""
    return lambda row, column: {"$description": row.get(other, ""), "$title": ""}


# ---------------------------------------------------------------- the classes

AUDIT = "CREDATTIM:DT UPDDATTIM:DT CREUSR:20 UPDUSR:20"
HEADER_REFS: dict[str, Ref] = {"CUR": _currency, "PTE": _term, "LAN": _language, "CRY": _country}


def _partner_class(name: str, descriptor: str, prefix: str, header: str) -> ClassDef:
    """BPCUSTOMER as captured (tests/fixtures/x3/); BPSUPPLIER with the same pattern and
    the supplier's prefix (BPSBPRBPA, BPS_BPA_CRY, BPSBPRCNT): no capture exists, this is
    the documented best inference (X3_REALITY.md §2)."""
    number = f"{prefix}NUM"
    address = Rows(
        {
            **_spec(
                "BPR_BPA_BPANUM:15 BPR_BPA_BPATYP:M BPR_BPA_BPAADD:5 BPADES:30 BPADEFFLG:B "
                "ADRVAL:B BPAADDLIG1:50 BPAADDLIG2:50 BPAADDLIG3:50 POSCOD:10 CTY:40 SAT:35 "
                f"{prefix}_BPA_CRY:3 CRYNAM:40 EXTNUM:20 FCYWEB:250"
            ),
            f"{prefix}BPRBPACOLTEL": Rows(_spec("TELNUM:20 TELTYP:M"), slots=5, slot="TELTYP"),
            f"{prefix}BPRBPACOLWEB": Rows(_spec("WEBADR:80 WEBTYP:M"), slots=5, slot="WEBTYP"),
        },
        keys=("BPR_BPA_BPATYP", "BPR_BPA_BPANUM", "BPR_BPA_BPAADD"),
        refs={"BPR_BPA_BPAADD": _described_by("BPADES"), f"{prefix}_BPA_CRY": _country,
              "POSCOD": _untitled, "SAT": _untitled},
        inherit={"BPR_BPA_BPANUM": number},
        preset={"BPR_BPA_BPATYP": 1},
    )  # fmt: skip
    contact = Rows(
        _spec(
            "CNT_BPANUM:15 CNT_BPATYP:M CNT_CCNCRM:15 CNTTTL:M CNTFNA:35 CNTLNA:35 CNTFNC:M "
            "CNTTEL:20 CNTFAX:20 CNTMOB:20 WEB:80 CNTLAN:3 CNTADD:5 CNTCRY:3 CNTBIR:D TCDEFFLG:B"
        ),
        keys=("CNT_CCNCRM", "CNT_BPATYP", "CNT_BPANUM"),
        refs={"CNT_CCNCRM": _described_by("CNTLNA"), "CNTLAN": _language, "CNTADD": _untitled},
        inherit={"CNT_BPANUM": number},
        preset={"CNT_BPATYP": 1},
    )
    fields = {**_spec(f"{header} {AUDIT}"), f"{prefix}BPRBPA": address, f"{prefix}BPRCNT": contact}
    return ClassDef(
        name,
        descriptor,
        Rows(fields, keys=(number,), refs=HEADER_REFS),
        # The remarks column exists on some sites, but the standard representation does not
        # publish it (X3_REALITY.md D12); the captured $details has no audit fields but $etag.
        unpublished=frozenset({f"{prefix}REM"}),
        query_only=AUDIT_CODES,
    )


# A PO line, embedded in PORDER and served as PORDERQ: the header's fields it repeats are
# copied from the header, and it is stamped on its own.
ORDER_LINE = Rows(
    _spec(
        "POHNUM:20 POPLIN:I POQSEQ:I BPSNUM:15 POHFCY:5 ITMREF:20 ITMDES:30 QTYUOM:N UOM:3 "
        "GROPRI:N LINAMT:N LINATIAMT:N EXTRCPDAT:D LINSTA:M CREDATTIM:DT UPDDATTIM:DT"
    ),
    keys=("POHNUM", "POPLIN", "POQSEQ"),
    inherit={"POHNUM": "POHNUM", "BPSNUM": "BPSNUM", "POHFCY": "POHFCY"},
)


def _class(name: str, descriptor: str, text: str, keys: tuple[str, ...], **lists: Rows) -> ClassDef:
    return ClassDef(name, descriptor, Rows({**_spec(text), **lists}, keys=keys))


CLASSES: dict[str, ClassDef] = {
    c.name: c
    for c in (
        _partner_class(
            "BPSUPPLIER",
            "Suppliers",
            "BPS",
            "BPSNUM:15 BPSNAM:35 BPSSHO:10 BPSTYP:M BSGCOD:5 CUR:3 PTE:15 LAN:3 CRY:3 "
            "BPAINV:5 BPAPAY:5 ENAFLG:B BPSREM:250",
        ),
        _partner_class(
            "BPCUSTOMER",
            "Customers",
            "BPC",
            "BPCNUM:15 BPCNAM:35 BPCSHO:10 BPCTYP:M BPCSTA:B BCGCOD:5 CUR:3 PTE:15 LAN:3 CRY:3 "
            "BPCINV:15 BPCPYR:15 BPAINV:5 OSTAUZ:N BPCREM:250",
        ),
        ClassDef(
            "PORDER",
            "Purchase orders",
            Rows(
                {
                    **_spec(
                        "POHNUM:20 BPSNUM:15 ORDDAT:D CPY:5 POHFCY:5 RCPFCY:5 INVFCY:5 CUR:3 "
                        "PTE:15 ORDREF:20 BPRPAY:15 BPSINV:15 APPFLG:M:280 CLEFLG:B RCPFLG:M "
                        "INVFLG:M TOTLINAMT:N TOTORD:N TOTTAXAMT:N TTVORD:N EXTRCPDAT1:D "
                        f"LINNBR:I {AUDIT}"
                    ),
                    "PORDERQ": ORDER_LINE,
                },
                keys=("POHNUM",),
            ),
            lines="PORDERQ",
        ),
        ClassDef("PORDERQ", "Purchase order lines", ORDER_LINE, header="PORDER"),
        _class(
            "PINVOICE",
            "Purchase invoices",
            "NUM:20 PIHTYP:M BPR:15 BPRPAY:15 BPRSAC:10 BPRVCR:30 BPRDAT:D ACCDAT:D CPY:5 FCY:5 "
            f"CUR:3 PTE:15 STRDUDDAT:D AMTNOT:N AMTATI:N BPAPAY:5 BPYCRY:3 STA:M {AUDIT}",
            ("NUM",),
            PINVOICED=Rows(
                _spec(
                    "PIDLIN:I POHNUM:20 POPLIN:I POQSEQ:I ITMREF:20 QTYUOM:N NETPRI:N AMTNOTLIN:N"
                ),
                keys=("PIDLIN",),
            ),
        ),
        _class(
            "SINVOICE",
            "Sales invoices",
            "NUM:20 INVTYP:M BPR:15 BPRPAY:15 BPRSAC:10 BPRVCR:30 BPRDAT:D ACCDAT:D CPY:5 FCY:5 "
            f"CUR:3 PTE:15 STRDUDDAT:D AMTNOT:N AMTATI:N BPAINV:5 BPAPAY:5 BPYCRY:3 STA:M {AUDIT}",
            ("NUM",),
        ),
        _class(
            "PAYMENTH",
            "Payments",
            "NUM:20 PAYTYP:5 PAM:5 BPR:15 BPRTYP:M BPANAM:35 CRY:3 BAN:5 SNS:M AMTCUR:N CUR:3 "
            "AMTBAN:N ACCDAT:D DUDDAT:D VALDAT:D BANDAT:D REF:30 DES:30 CHQNUM:30 STA:M PST:B "
            f"CPY:5 FCY:5 {AUDIT}",
            ("NUM",),
        ),
        _class(
            "GACCDUDATE",
            "Open items",
            # The document line LIG is part of the key (X3_REALITY.md D6); FLGCLE false = open.
            "TYP:5 NUM:20 LIG:I DUDLIG:I BPR:15 BPRTYP:M BPRPAY:15 CPY:5 FCY:5 CUR:3 PAM:5 "
            "DUDDAT:D AMTCUR:N PAYCUR:N FLGCLE:B CREDATTIM:DT UPDDATTIM:DT",
            ("TYP", "NUM", "LIG", "DUDLIG"),
        ),
        ClassDef(
            "YSMSLOG",
            "SMS log",
            # The demo's own table (lengths are its choice). BPTYP 1 customer, 2 supplier (as
            # BPRTYP); DIRECTION "OUT" or "IN".
            Rows(
                _spec(
                    "LOGNUM:20 BPTYP:M BPNUM:15 DOCNUM:20 PHONE:30 DIRECTION:10 MSGSID:64 "
                    f"TEXT:4000 LOGDATTIM:DT {AUDIT}"
                ),
                keys=("LOGNUM",),
            ),
            counter="SMS",
        ),
    )
}


def stamp(moment: datetime) -> str:
    """X3's api1 datetime: UTC, whole seconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_of(cls: ClassDef, record: Mapping[str, Any]) -> str:
    """The api1 key: the key fields' values joined with `~`."""
    return "~".join(_key_text(record.get(name)) for name in cls.keys)


def _key_text(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


# ---------------------------------------------------------------- partners


class _Contact(NamedTuple):
    code: str
    first: str
    last: str
    function: int  # CNTFNC local menu: 1 management, 2 purchasing/logistics, 3 sales
    tel: str
    mob: str
    email: str
    title: int = 1  # CNTTTL local menu: 1 Mr, 2 Mrs


class _Partner(NamedTuple):
    code: str
    name: str
    short: str
    country: str
    street: str
    postcode: str
    city: str
    state: str
    tel: tuple[str, ...]
    mob: str
    email: str
    contacts: tuple[_Contact, ...] = ()
    depot: tuple[str, str, str, str, str] | None = None  # street, postcode, city, TEL, FAX


# Phones are free text in national formats, as users type them. Every one is valid for its
# address country except FR009's "voir standard"; the mobile of US005's (default) contact is
# Twilio's magic invalid To, so that texting that supplier fails with 21211.
SUPPLIERS = (
    _Partner("FR001", "Acme Fournitures SARL", "ACME", "FR", "27 rue Garibaldi", "69003", "LYON",
             "", ("04 72 10 20 30",), "06 12 34 56 78", "compta@acme-fournitures.fr",
             (_Contact("000101", "Jean", "DUPONT", 3, "04 72 10 20 31", "06 98 76 54 32",
                       "j.dupont@acme-fournitures.fr"),)),
    _Partner("FR002", "Papeterie Moderne SA", "PAPMOD", "FR", "118 boulevard Voltaire", "75011",
             "PARIS", "", ("01 43 55 12 90", "01 43 55 12 91"), "07 81 22 33 44",
             "contact@papeterie-moderne.fr",
             (_Contact("000102", "Sophie", "MARTIN", 3, "", "06 23 45 67 89",
                       "s.martin@papeterie-moderne.fr", title=2),),
             ("14 avenue du Port", "92230", "GENNEVILLIERS", "01 47 98 20 10", "01 47 98 20 19")),
    _Partner("FR003", "Transports Rhône-Alpes SAS", "TRA", "FR", "5 rue des Glairons", "38000",
             "GRENOBLE", "", ("04 76 85 40 12",), "", "exploitation@tra-transports.fr",
             (_Contact("000103", "Karim", "BENALI", 2, "", "06 45 67 89 01",
                       "k.benali@tra-transports.fr"),)),
    _Partner("FR004", "Emballages du Nord SARL", "EMBNORD", "FR", "42 rue Nationale", "59000",
             "LILLE", "", ("03 20 55 66 77",), "06 71 82 93 04", "adv@emballages-nord.fr",
             (_Contact("000104", "Claire", "LEROY", 3, "03 20 55 66 78", "",
                       "c.leroy@emballages-nord.fr", title=2),)),
    _Partner("FR005", "Fournitures Océane SAS", "OCEANE", "FR", "9 quai de la Fosse", "44000",
             "NANTES", "", ("02 40 12 34 56",), "+33 6 52 41 30 77", "ventes@oceane-fournitures.fr",
             (_Contact("000105", "Yann", "LE GOFF", 3, "", "06.52.41.30.78",
                       "y.legoff@oceane-fournitures.fr"),)),
    _Partner("FR009", "Quincaillerie Martin", "QMARTIN", "FR", "3 cours Victor Hugo", "33000",
             "BORDEAUX", "", ("voir standard",), "", "",
             (_Contact("000109", "Pierre", "MARTIN", 1, "", "", ""),)),
    _Partner("GB001", "Britannia Office Supplies Ltd", "BRITOFF", "GB", "Unit 4, Trafford Park",
             "M17 1AB", "MANCHESTER", "", ("0161 496 0123",), "07911 123456",
             "accounts@britannia-office.co.uk",
             (_Contact("000201", "Oliver", "HUGHES", 3, "0161 496 0456", "07400 123456",
                       "o.hughes@britannia-office.co.uk"),)),
    _Partner("GB002", "Thames Valley Packaging Ltd", "TVPACK", "GB", "22 Kings Road", "RG1 3EH",
             "READING", "", ("0118 496 0555", "0118 496 0556"), "+44 7824 556677",
             "sales@tvpackaging.co.uk",
             (_Contact("000202", "Emma", "CLARKE", 2, "020 7946 0321", "07522 334455",
                       "e.clarke@tvpackaging.co.uk", title=2),)),
    _Partner("US001", "Pacific Industrial Supply Inc", "PACIND", "US", "850 Brannan St", "94107",
             "SAN FRANCISCO", "CA", ("(415) 392-7781",), "(415) 555-0199",
             "ar@pacific-industrial.com",
             (_Contact("000301", "Michael", "CHEN", 3, "", "415-555-0123",
                       "m.chen@pacific-industrial.com"),)),
    _Partner("US002", "Great Lakes Fasteners LLC", "GLFAST", "US", "1200 W Fulton Market",
             "60607", "CHICAGO", "IL", ("(312) 846-2210",), "(312) 555-0147",
             "orders@glfasteners.com",
             (_Contact("000302", "Linda", "KOWALSKI", 3, "(312) 555-0181", "",
                       "l.kowalski@glfasteners.com", title=2),)),
    _Partner("US003", "Hudson Valley Paper Co", "HVPAPER", "US", "75 State St", "12207",
             "ALBANY", "NY", ("(518) 462-3390",), "(518) 555-0162", "billing@hvpaper.com",
             (_Contact("000303", "Robert", "DIAZ", 3, "", "518 555 0175", "r.diaz@hvpaper.com"),)),
    _Partner("US005", "Lone Star Logistics LLC", "LSLOG", "US", "2100 Ross Ave", "75201",
             "DALLAS", "TX", ("(214) 741-5520",), "(214) 555-0166",
             "dispatch@lonestarlogistics.com",
             (_Contact("000305", "James", "WALKER", 2, "", "+1 500-555-0001",
                       "j.walker@lonestarlogistics.com"),)),
)  # fmt: skip

CUSTOMERS = (
    _Partner("CFR001", "Hôtel Bellecour", "BELLEC", "FR", "12 place Bellecour", "69002", "LYON",
             "", ("04 78 62 11 90",), "06 33 21 45 87", "direction@hotel-bellecour.fr",
             (_Contact("000401", "Nathalie", "ROUX", 1, "", "06 87 12 45 63",
                       "n.roux@hotel-bellecour.fr", title=2),)),
    _Partner("CFR002", "Clinique Saint-Jean", "CLISTJ", "FR", "30 boulevard Baille", "13006",
             "MARSEILLE", "", ("04 91 55 20 40",), "", "achats@clinique-stjean.fr",
             (_Contact("000402", "Marc", "FABRE", 2, "", "06 14 25 36 47",
                       "m.fabre@clinique-stjean.fr"),)),
    _Partner("CFR003", "Cabinet Lefèvre Avocats", "LEFEVRE", "FR", "8 rue de Rivoli", "75004",
             "PARIS", "", ("01 45 67 23 10",), "07 66 54 32 10", "secretariat@lefevre-avocats.fr"),
    _Partner("CFR004", "Strasbourg Services Municipaux", "STRSER", "FR", "1 parc de l'Étoile",
             "67000", "STRASBOURG", "", ("03 88 32 10 45",), "", "marches@strasbourg-services.fr"),
    _Partner("CGB001", "Northbridge Accountants LLP", "NORTHB", "GB", "3 Fleet Place", "EC4M 7RD",
             "LONDON", "", ("020 7946 0588",), "07845 667788", "office@northbridge-llp.co.uk"),
    _Partner("CGB002", "Kensington Dental Care", "KENDEN", "GB", "41 Kensington High St", "W8 5ED",
             "LONDON", "", ("020 7946 0102",), "07700 123456", "reception@kensingtondental.co.uk"),
    _Partner("CUS001", "Bay Area Coworking Inc", "BAYCOW", "US", "500 Howard St", "94105",
             "SAN FRANCISCO", "CA", ("(415) 555-0173",), "", "admin@bayareacowork.com",
             (_Contact("000501", "Ashley", "NGUYEN", 1, "", "(415) 555-0188",
                       "a.nguyen@bayareacowork.com", title=2),)),
    _Partner("CUS002", "Midtown Legal Services PC", "MIDLEG", "US", "250 W 55th St", "10019",
             "NEW YORK", "NY", ("(212) 555-0196",), "(646) 555-0142", "ap@midtownlegal.com"),
)  # fmt: skip


class _Seed:
    """A fixed-seed random source plus `now`: every date is relative to it."""

    def __init__(self, now: datetime) -> None:
        self.now = now.astimezone(UTC).replace(microsecond=0)
        self.today = self.now.date()
        self.rng = random.Random(SEED)

    def moment(self, after: datetime | None = None, within: timedelta | None = None) -> datetime:
        """A whole second after `after` (default: 30 days ago) and strictly before now."""
        start = after or self.now - timedelta(days=30)
        span = max(int((self.now - start).total_seconds()) - 1, 0)
        if within is not None:
            span = min(span, int(within.total_seconds()))
        return start + timedelta(seconds=self.rng.randint(min(span, 1), span))

    def days_ago(self, oldest: int, newest: int) -> datetime:
        start = self.now - timedelta(days=oldest)
        return self.moment(start, timedelta(days=oldest - newest))

    def day(self, offset: int) -> str:
        return (self.today + timedelta(days=offset)).isoformat()

    def audit(self, created: datetime, updated: datetime) -> Record:
        users = self.rng.choice(USERS), self.rng.choice(USERS)
        return {
            "CREDATTIM": stamp(created),
            "UPDDATTIM": stamp(updated),
            "CREUSR": users[0],
            "UPDUSR": users[1],
        }


def _slots(number: str, slot: str, values: Mapping[int, str]) -> list[Record]:
    """A five-slot …COLTEL/…COLWEB list, the slots not given empty."""
    return [{number: values.get(i, ""), slot: i} for i in range(1, 6)]


def _address(
    bp: _Partner, prefix: str, code: str, where: tuple[str, str, str], **more: Any
) -> Record:
    street, postcode, city = where
    return {
        "BPR_BPA_BPANUM": bp.code,
        "BPR_BPA_BPATYP": 1,
        "BPR_BPA_BPAADD": code,
        "BPADES": more["description"],
        "BPADEFFLG": code == "MAIN",  # the default address
        "ADRVAL": False,
        "BPAADDLIG1": street,
        "BPAADDLIG2": "",
        "BPAADDLIG3": "",
        "POSCOD": postcode,
        "CTY": city,
        "SAT": bp.state,
        f"{prefix}_BPA_CRY": bp.country,
        "CRYNAM": COUNTRIES[bp.country][0],
        "EXTNUM": "",
        "FCYWEB": "www." + bp.email.partition("@")[2] if bp.email else "",
        f"{prefix}BPRBPACOLTEL": _slots("TELNUM", "TELTYP", more["phones"]),
        f"{prefix}BPRBPACOLWEB": _slots("WEBADR", "WEBTYP", {1: more.get("email", "")}),
    }


def _addresses(bp: _Partner, prefix: str) -> list[Record]:
    """Slot 1 (and 3) the address's telephones, slot 2 its mobile, as in the captured
    payload; slot 4 the fax (where X3 shows a fax is not captured: a simulator choice)."""
    phones = {1: bp.tel[0], 2: bp.mob, 3: bp.tel[1] if len(bp.tel) > 1 else ""}
    head = "Siège social" if bp.country == "FR" else "Head office"
    main = _address(bp, prefix, "MAIN", (bp.street, bp.postcode, bp.city), description=head,
                    phones=phones, email=bp.email)  # fmt: skip
    if bp.depot is None:
        return [main]
    street, postcode, city, tel, fax = bp.depot
    depot = _address(bp, prefix, "DEPOT", (street, postcode, city), description="Entrepôt",
                     phones={1: tel, 4: fax})  # fmt: skip
    return [main, depot]


def _lan(country: str) -> str:
    return "FRA" if country == "FR" else "ENG"


def _contact(bp: _Partner, contact: _Contact, first: bool) -> Record:
    return {
        "CNT_BPANUM": bp.code,
        "CNT_BPATYP": 1,
        "CNT_CCNCRM": contact.code,
        "CNTTTL": contact.title,
        "CNTFNA": contact.first,
        "CNTLNA": contact.last,
        "CNTFNC": contact.function,
        "CNTTEL": contact.tel,
        "CNTFAX": "",
        "CNTMOB": contact.mob,
        "WEB": contact.email,
        "CNTLAN": _lan(bp.country),
        "CNTADD": "MAIN",
        "CNTCRY": "",  # as captured: the contact's country is its address's
        "CNTBIR": "",
        "TCDEFFLG": first,  # the default contact
    }


def _partner(seed: _Seed, bp: _Partner, prefix: str) -> Record:
    created = seed.days_ago(30, 20)
    return {
        f"{prefix}NUM": bp.code,
        f"{prefix}NAM": bp.name,
        f"{prefix}SHO": bp.short,
        "CUR": COUNTRIES[bp.country][1],
        "PTE": "30NET" if bp.country == "FR" else "NET30",
        "LAN": _lan(bp.country),
        "CRY": bp.country,
        "BPAINV": "MAIN",
        **seed.audit(created, seed.moment(created, timedelta(days=15))),
        f"{prefix}BPRBPA": _addresses(bp, prefix),
        f"{prefix}BPRCNT": [_contact(bp, c, i == 0) for i, c in enumerate(bp.contacts)],
    }


def _suppliers(seed: _Seed) -> dict[str, Record]:
    result = {}
    for bp in SUPPLIERS:
        record = {**CLASSES["BPSUPPLIER"].defaults(), **_partner(seed, bp, "BPS")}
        group = "NAT" if bp.country == "FR" else "INT"
        record.update(BPSTYP=1, BSGCOD=group, BPAPAY="MAIN", ENAFLG=True)
        result[bp.code] = record
    return result


def _customers(seed: _Seed) -> dict[str, Record]:
    result = {}
    for bp in CUSTOMERS:
        record = {**CLASSES["BPCUSTOMER"].defaults(), **_partner(seed, bp, "BPC")}
        record.update(BPCSTA=True, BPCTYP=1, BCGCOD="STD", BPCINV=bp.code, BPCPYR=bp.code)
        record["OSTAUZ"] = float(seed.rng.choice((5000, 10000, 25000)))
        result[bp.code] = record
    return result


# ---------------------------------------------------------------- documents

# (code, description, unit, price in EUR)
ITEMS = (
    ("BMSMN0001", "Copy paper A4 80g (ream)", "UN", 4.20),
    ("BMSMN0002", "Lever arch file A4", "UN", 2.85),
    ("BMSMN0003", "Ballpoint pen blue (box of 50)", "BOX", 11.90),
    ("BMSMN0004", "Shipping carton 40x30x20", "UN", 1.35),
    ("BMSMN0005", "Packing tape 50mm", "UN", 2.10),
    ("BMSMN0006", "Laser toner black", "UN", 68.00),
    ("BMSMN0007", "Wooden pallet 120x80", "UN", 14.50),
    ("BMSMN0008", "Stretch film 500mm", "UN", 18.75),
    ("BMSMN0009", "Envelopes C4 (box of 250)", "BOX", 23.40),
    ("BMSMN0010", "Desk stapler", "UN", 9.60),
)

# One purchase order per entry, SUPPLIER:APPFLG:PROGRESS. APPFLG is menu 280 (1 No, 2 Partly,
# 3 Fully, 4 Not managed, 5 Automatic); PROGRESS: 0 ordered, T ordered and due today,
# P partly received, R received, I received, invoiced and closed.
ORDER_PLAN = """
    FR001:1:0 FR001:1:0 FR001:1:0 FR001:3:T FR001:3:I FR001:5:I
    FR002:2:0 FR002:3:R FR002:3:I FR002:5:T FR003:3:0 FR003:3:I FR003:4:P
    FR004:1:0 FR004:3:I FR004:3:T FR005:3:I FR005:5:R FR005:2:0 FR009:3:I FR009:3:0
    GB001:3:T GB001:3:I GB001:5:I GB001:1:0 GB002:4:I GB002:3:P GB002:3:0
    US001:3:I US001:3:T US001:2:0 US001:5:P US002:3:I US002:3:0 US002:4:R
    US003:5:I US003:3:I US003:1:0 US005:3:I US005:3:0
"""

# Days before now each kind of order was created (oldest, newest).
ORDER_AGE = {"I": (30, 14), "R": (25, 6), "P": (25, 6), "0": (20, 0), "T": (20, 3)}

# Open item of each purchase invoice, in invoice creation order: (due in N days, state).
# "split": two instalments of one line (DUDLIG 1, 2); "lines": open items on two document
# lines (LIG 1, 2), so that a key without LIG would merge them.
PURCHASE_DUE = (
    (-9, "paid"), (-4, "paid"), (-2, "open"), (0, "open"), (1, "open"), (2, "paid"),
    (3, "open"), (5, "open"), (8, "open"), (12, "open"), (16, "split"), (20, "open"),
    (25, "open"), (31, "open"), (40, "lines"),
)  # fmt: skip

# One sales invoice per entry: (customer, due in N days, state).
SALES_PLAN = (
    ("CFR001", -5, "paid"), ("CFR002", 0, "open"), ("CFR003", 1, "open"),
    ("CGB001", 2, "open"), ("CUS001", 3, "paid"), ("CFR004", 6, "open"),
    ("CGB002", 10, "open"), ("CUS002", 14, "open"), ("CFR001", 19, "open"),
    ("CFR002", -3, "open"), ("CUS001", 24, "open"), ("CGB001", 30, "open"),
)  # fmt: skip

PARTNERS = {bp.code: bp for bp in (*SUPPLIERS, *CUSTOMERS)}
BANKS = {"FR": "BNP", "GB": "HSBC", "US": "CHASE"}


class _Numbers:
    """Document numbers per prefix and site, e.g. PO + FR011 + 0113."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.last: dict[str, int] = {}

    def next(self, prefix: str, site: str) -> str:
        self.last[prefix + site] = self.last.get(prefix + site, self.first - 1) + 1
        return f"{prefix}{site}{self.last[prefix + site]:04d}"


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _order_line(seed: _Seed, number: str, index: int, bp: _Partner, expected: date) -> Record:
    code, description, unit, price = seed.rng.choice(ITEMS)
    rate, tax = COUNTRIES[bp.country][5], COUNTRIES[bp.country][4]
    price = round(price * rate, 2)
    quantity = seed.rng.choice((5, 10, 20, 50, 100))
    amount = round(price * quantity, 2)
    return {
        "POHNUM": number,
        "POPLIN": 1000 * (index + 1),
        "POQSEQ": 1,
        "ITMREF": code,
        "ITMDES": description,
        "QTYUOM": quantity,
        "UOM": unit,
        "GROPRI": price,
        "LINAMT": amount,
        "LINATIAMT": round(amount * (1 + tax), 2),
        "EXTRCPDAT": expected.isoformat(),
        "LINSTA": 2 if expected < seed.today else 1,  # 1 pending, 2 late, 3 closed
    }


def _order(seed: _Seed, number: str, bp: _Partner, plan: tuple[int, str, datetime]) -> Record:
    appflg, progress, created = plan
    _, currency, company, site = COUNTRIES[bp.country][:4]
    lead = timedelta(days=seed.rng.randint(5, 21))
    expected = seed.today if progress == "T" else created.date() + lead
    if progress != "T" and expected == seed.today:  # only the planned orders are due today
        expected += timedelta(days=1)
    count = seed.rng.randint(2 if progress == "P" else 1, 4)
    lines = [_order_line(seed, number, i, bp, expected) for i in range(count)]
    received = lines if progress in "RI" else lines[:1] if progress == "P" else []
    for line in received:
        line["LINSTA"] = 3
    net = round(sum(line["LINAMT"] for line in lines), 2)
    gross = round(sum(line["LINATIAMT"] for line in lines), 2)
    # An invoiced order was last touched when its invoice was posted, days after creation.
    busy = progress in "IRP"
    updated = seed.moment(created + timedelta(days=3 if busy else 0), timedelta(days=10))
    audit = seed.audit(created, updated)
    for line in lines:  # lines are stamped like their header
        line.update(BPSNUM=bp.code, POHFCY=site, CREDATTIM=audit["CREDATTIM"])
        line["UPDDATTIM"] = audit["UPDDATTIM"]
    return {
        "POHNUM": number, "BPSNUM": bp.code, "ORDDAT": created.date().isoformat(),
        "CPY": company, "POHFCY": site, "RCPFCY": site, "INVFCY": site, "CUR": currency,
        "PTE": "30NET" if bp.country == "FR" else "NET30", "ORDREF": "",
        "BPRPAY": bp.code, "BPSINV": bp.code, "APPFLG": appflg,
        "CLEFLG": progress == "I",
        "RCPFLG": {"P": 2, "R": 3, "I": 3}.get(progress, 1),
        "INVFLG": 3 if progress == "I" else 1,
        "TOTLINAMT": net, "TOTORD": net, "TOTTAXAMT": round(gross - net, 2), "TTVORD": gross,
        "EXTRCPDAT1": expected.isoformat(), "LINNBR": count, **audit, "PORDERQ": lines,
    }  # fmt: skip


def _purchase_orders(seed: _Seed) -> dict[str, Record]:
    plans = [entry.split(":") for entry in ORDER_PLAN.split()]
    dated = [(seed.days_ago(*ORDER_AGE[p]), code, int(flag), p) for code, flag, p in plans]
    numbers = _Numbers(113)
    orders = {}
    for created, code, appflg, progress in sorted(dated):
        bp = PARTNERS[code]
        number = numbers.next("PO", COUNTRIES[bp.country][3])
        orders[number] = _order(seed, number, bp, (appflg, progress, created))
    return orders


def _supplier_reference(seed: _Seed, country: str, when: date) -> str:
    serial = seed.rng.randint(100, 99999)
    return {"FR": f"FA{when.year}-{serial:05d}", "GB": f"INV{serial:06d}"}.get(country, str(serial))


def _purchase_invoice(seed: _Seed, number: str, order: Record) -> Record:
    bp = PARTNERS[order["BPSNUM"]]
    posted = _parse(order["UPDDATTIM"]) - timedelta(seconds=seed.rng.randint(5, 120))
    received = posted.date() - timedelta(days=seed.rng.randint(1, 3))
    lines = [
        {"PIDLIN": i + 1, "POHNUM": order["POHNUM"], "POPLIN": q["POPLIN"], "POQSEQ": 1,
         "ITMREF": q["ITMREF"], "QTYUOM": q["QTYUOM"], "NETPRI": q["GROPRI"],
         "AMTNOTLIN": q["LINAMT"]}
        for i, q in enumerate(order["PORDERQ"])
    ]  # fmt: skip
    return {
        "NUM": number, "PIHTYP": 1, "BPR": bp.code, "BPRPAY": bp.code, "BPRSAC": "SUP",
        "BPRVCR": _supplier_reference(seed, bp.country, received),
        "BPRDAT": received.isoformat(), "ACCDAT": posted.date().isoformat(),
        "CPY": order["CPY"], "FCY": order["POHFCY"], "CUR": order["CUR"], "PTE": order["PTE"],
        "STRDUDDAT": received.isoformat(), "AMTNOT": order["TOTORD"], "AMTATI": order["TTVORD"],
        "BPAPAY": "MAIN", "BPYCRY": bp.country, "STA": 3,
        **seed.audit(posted - timedelta(minutes=20), posted), "PINVOICED": lines,
    }  # fmt: skip


def _purchase_invoices(seed: _Seed, orders: dict[str, Record]) -> dict[str, Record]:
    invoiced = sorted(
        (o for o in orders.values() if o["INVFLG"] == 3), key=lambda o: o["UPDDATTIM"]
    )
    numbers = _Numbers(41)
    invoices = {}
    for order in invoiced:
        number = numbers.next("PI", order["POHFCY"])
        invoices[number] = _purchase_invoice(seed, number, order)
    return invoices


def _sales_invoice(seed: _Seed, number: str, bp: _Partner, posted: datetime) -> Record:
    _, currency, company, site, tax, _ = COUNTRIES[bp.country]
    net = round(seed.rng.uniform(300, 8000), 2)
    day = posted.date().isoformat()
    return {
        "NUM": number, "INVTYP": 1, "BPR": bp.code, "BPRPAY": bp.code, "BPRSAC": "CUS",
        "BPRVCR": "SO" + number[2:], "BPRDAT": day, "ACCDAT": day, "CPY": company, "FCY": site,
        "CUR": currency, "PTE": "30NET" if bp.country == "FR" else "NET30",
        "STRDUDDAT": day, "AMTNOT": net, "AMTATI": round(net * (1 + tax), 2),
        "BPAINV": "MAIN", "BPAPAY": "MAIN", "BPYCRY": bp.country, "STA": 3,
        **seed.audit(posted, posted),
    }  # fmt: skip


def _sales_invoices(seed: _Seed) -> list[tuple[Record, int, str]]:
    """Each sales invoice with its open item's plan: (invoice, due in N days, state)."""
    dated = sorted((seed.days_ago(28, 2), plan) for plan in SALES_PLAN)
    numbers = _Numbers(21)
    result = []
    for posted, (code, offset, state) in dated:
        bp = PARTNERS[code]
        number = numbers.next("SI", COUNTRIES[bp.country][3])
        result.append((_sales_invoice(seed, number, bp, posted), offset, state))
    return result


# ---------------------------------------------------------------- open items and payments


def _open_item(invoice: Record, typ: str, line: tuple[int, int], due: str, amount: float) -> Record:
    return {
        "TYP": typ, "NUM": invoice["NUM"], "LIG": line[0], "DUDLIG": line[1], "BPR": invoice["BPR"],
        "BPRTYP": 2 if typ == "PISU" else 1, "BPRPAY": invoice["BPRPAY"],
        "CPY": invoice["CPY"], "FCY": invoice["FCY"], "CUR": invoice["CUR"], "PAM": "TRF",
        "DUDDAT": due, "AMTCUR": amount, "PAYCUR": 0.0, "FLGCLE": False,
        "CREDATTIM": invoice["UPDDATTIM"], "UPDDATTIM": invoice["UPDDATTIM"],
    }  # fmt: skip


def _payment(seed: _Seed, number: str, item: Record, paid: datetime) -> Record:
    bp = PARTNERS[item["BPR"]]
    supplier = item["BPRTYP"] == 2
    day = paid.date().isoformat()
    return {
        "NUM": number, "PAYTYP": "PAYSU" if supplier else "RECCU", "PAM": "TRF",
        "BPR": bp.code, "BPRTYP": item["BPRTYP"], "BPANAM": bp.name, "CRY": bp.country,
        "BAN": BANKS[bp.country], "SNS": 1 if supplier else 2, "AMTCUR": item["AMTCUR"],
        "CUR": item["CUR"], "AMTBAN": item["AMTCUR"], "ACCDAT": day, "DUDDAT": item["DUDDAT"],
        "VALDAT": day, "BANDAT": day, "REF": item["NUM"], "DES": f"Invoice {item['NUM']}",
        "CHQNUM": "", "STA": 9, "PST": True, "CPY": item["CPY"], "FCY": item["FCY"],
        **seed.audit(paid, paid),
    }  # fmt: skip


class _Ledger:
    """Open items for invoices, and the payments that settled some of them."""

    def __init__(self, seed: _Seed) -> None:
        self.seed = seed
        self.items: dict[str, Record] = {}
        self.payments: dict[str, Record] = {}
        self.numbers = _Numbers(11)

    def add(self, invoice: Record, typ: str, offset: int, state: str) -> None:
        due, total = self.seed.day(offset), invoice["AMTATI"]
        half = round(total / 2, 2)
        if state == "split":  # two instalments, the second a month later
            self._keep(_open_item(invoice, typ, (1, 1), due, half))
            self._keep(_open_item(invoice, typ, (1, 2), self.seed.day(offset + 30), total - half))
            return
        if state == "lines":
            self._keep(_open_item(invoice, typ, (1, 1), due, half))
            self._keep(_open_item(invoice, typ, (2, 1), due, total - half))
            return
        item = self._keep(_open_item(invoice, typ, (1, 1), due, total))
        if state == "paid":
            self._settle(item)

    def _keep(self, item: Record) -> Record:
        item["AMTCUR"] = round(item["AMTCUR"], 2)
        self.items[key_of(CLASSES["GACCDUDATE"], item)] = item
        return item

    def _settle(self, item: Record) -> None:
        paid = self.seed.moment(_parse(item["UPDDATTIM"]), timedelta(days=6))
        prefix = "PAY" if item["BPRTYP"] == 2 else "REC"
        number = self.numbers.next(prefix, item["FCY"])
        self.payments[number] = _payment(self.seed, number, item, paid)
        settled = self.seed.moment(paid, timedelta(seconds=30))
        item.update(PAYCUR=item["AMTCUR"], FLGCLE=True, UPDDATTIM=stamp(settled))


# ---------------------------------------------------------------- the dataset


def build_dataset(now: datetime) -> Dataset:
    """Seed every class relative to `now` (aware, UTC): class -> key -> raw record."""
    seed = _Seed(now)
    orders = _purchase_orders(seed)
    purchases = _purchase_invoices(seed, orders)
    sales = _sales_invoices(seed)
    ledger = _Ledger(seed)
    for invoice, (offset, state) in zip(purchases.values(), PURCHASE_DUE, strict=True):
        ledger.add(invoice, "PISU", offset, state)
    for invoice, offset, state in sales:
        ledger.add(invoice, "SICU", offset, state)
    data: Dataset = {
        "BPSUPPLIER": _suppliers(seed),
        "BPCUSTOMER": _customers(seed),
        "PORDER": orders,
        "PINVOICE": purchases,
        "SINVOICE": {invoice["NUM"]: invoice for invoice, _, _ in sales},
        "PAYMENTH": ledger.payments,
        "GACCDUDATE": ledger.items,
        "YSMSLOG": {},
    }
    return data
