"""The classes the X3 simulator serves, and its seeded dataset of a mid-market distributor.

Field codes follow the X3 table dictionary (SAGE_X3.md §2, §4). Types use X3's
letters: A alphanumeric, N number, M local menu, D date, DT datetime; `A*5` is a
dimensioned field (TEL(0..4)), kept as a list here and serialised by the simulator.
`build_dataset(now)` is deterministic: the same `now` always gives the same records.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

Record = dict[str, Any]
Dataset = dict[str, dict[str, Record]]

SEED = 20240502
USERS = ("JDUP", "MLEG", "ACHA", "BATCH")


def _spec(text: str) -> dict[str, str]:
    """'BPSNUM ENAFLG:M TEL:A*5' -> {'BPSNUM': 'A', 'ENAFLG': 'M', 'TEL': 'A*5'}."""
    fields = (word.partition(":") for word in text.split())
    return {name: kind or "A" for name, _, kind in fields}


AUDIT = "CREDATTIM:DT UPDDATTIM:DT CREUSR UPDUSR"
ADDRESS = _spec(
    "BPAADD BPADES BPAADDFLG:M BPAADDLIG:A*3 POSCOD CTY SAT CRY CRYNAM TEL:A*5 FAX MOB "
    "WEB:A*5 FCYWEB"
)
CONTACT = _spec("CCNCRM CNTTTL:M CNTFNA CNTLNA CNTFNC:M TEL FAX MOB WEB")


@dataclass(frozen=True)
class ClassDef:
    """One api1 class: its key, scalar fields, child collections and auto-number."""

    name: str
    descriptor: str
    keys: tuple[str, ...]
    fields: dict[str, str]
    children: dict[str, dict[str, str]] = field(default_factory=dict)
    counter: str = ""  # prefix of the auto-number for a missing key ("" = none)

    def defaults(self) -> Record:
        record = {name: default(kind) for name, kind in self.fields.items()}
        record.update({name: [] for name in self.children})
        return record


def default(kind: str) -> Any:
    if "*" in kind:
        return [""] * dimension(kind)
    return 0 if kind in ("N", "M") else ""


def dimension(kind: str) -> int:
    """How many values a dimensioned field holds (0 for a scalar)."""
    return int(kind.partition("*")[2] or 0)


CLASSES: dict[str, ClassDef] = {
    c.name: c
    for c in (
        ClassDef(
            "BPSUPPLIER",
            "Suppliers",
            ("BPSNUM",),
            _spec(
                "BPSNUM BPSNAM BPSSHO BPSTYP:M BSGCOD CUR PTE BPAADD BPAINV BPAPAY CNTNAM "
                f"BPSREM ENAFLG:M {AUDIT}"
            ),
            {"BPADDRESS": ADDRESS, "CONTACT": CONTACT},
        ),
        ClassDef(
            "BPCUSTOMER",
            "Customers",
            ("BPCNUM",),
            _spec(
                "BPCNUM BPCNAM BPCSHO BPCSTA:M BPCTYP:M BCGCOD CUR PTE BPAADD BPAINV CNTNAM "
                f"BPCREM OSTAUZ:N {AUDIT}"
            ),
            {"BPADDRESS": ADDRESS, "CONTACT": CONTACT},
        ),
        ClassDef(
            "PORDER",
            "Purchase orders",
            ("POHNUM",),
            # EXTRCPDAT: X3 has an indexed array on the header (EXTRCPDAT1...); the
            # simulator keeps one date there, the earliest line's (a simulator choice).
            _spec(
                "POHNUM BPSNUM ORDDAT:D CPY POHFCY RCPFCY INVFCY CUR PTE ORDREF BPRPAY "
                "BPSINV APPFLG:M CLEFLG:M RCPFLG:M INVFLG:M TOTLINAMT:N TOTORD:N "
                f"TOTTAXAMT:N TTVORD:N EXTRCPDAT:D LINNBR:N {AUDIT}"
            ),
            {
                "PORDERQ": _spec(
                    "POHNUM POPLIN:N POQSEQ:N ITMREF ITMDES QTYUOM:N UOM GROPRI:N "
                    "LINAMT:N LINATIAMT:N EXTRCPDAT:D LINSTA:M"
                )
            },
        ),
        ClassDef(
            "PINVOICE",
            "Purchase invoices",
            ("NUM",),
            _spec(
                "NUM PIHTYP:M BPR BPRPAY BPRSAC BPRVCR BPRDAT:D ACCDAT:D CPY FCY CUR PTE "
                f"STRDUDDAT:D AMTNOT:N AMTATI:N BPAPAY BPYCRY STA:M {AUDIT}"
            ),
            {
                "PINVOICED": _spec(
                    "PIDLIN:N POHNUM POPLIN:N POQSEQ:N ITMREF QTYUOM:N NETPRI:N AMTNOTLIN:N"
                )
            },
        ),
        ClassDef(
            "SINVOICE",
            "Sales invoices",
            ("NUM",),
            _spec(
                "NUM INVTYP:M BPR BPRPAY BPRSAC BPRVCR BPRDAT:D ACCDAT:D CPY FCY CUR PTE "
                f"STRDUDDAT:D AMTNOT:N AMTATI:N BPAINV BPAPAY BPYCRY STA:M {AUDIT}"
            ),
        ),
        ClassDef(
            "PAYMENTH",
            "Payments",
            ("NUM",),
            _spec(
                "NUM PAYTYP PAM BPR BPRTYP:M BPANAM CRY BAN SNS:M AMTCUR:N CUR AMTBAN:N "
                f"ACCDAT:D DUDDAT:D VALDAT:D BANDAT:D REF DES CHQNUM STA:M PST:M CPY FCY {AUDIT}"
            ),
        ),
        ClassDef(
            "GACCDUDATE",
            "Open items",
            ("TYP", "NUM", "DUDLIG"),
            _spec(
                "TYP NUM DUDLIG:N BPR BPRTYP:M BPRPAY CPY FCY CUR PAM DUDDAT:D AMTCUR:N "
                "PAYCUR:N FLGCLE:M CREDATTIM:DT UPDDATTIM:DT"
            ),
        ),
        ClassDef(
            "YSMSLOG",
            "SMS log",
            ("LOGNUM",),
            # BPTYP 1 customer, 2 supplier (as BPRTYP); DIRECTION "OUT" or "IN".
            _spec(f"LOGNUM BPTYP:M BPNUM DOCNUM PHONE DIRECTION MSGSID TEXT LOGDATTIM:DT {AUDIT}"),
            counter="SMS",
        ),
    )
}

COUNTRIES = {
    "FR": ("France", "EUR", "FR10", "FR011", 0.20, 1.0),
    "GB": ("United Kingdom", "GBP", "GB10", "GB011", 0.20, 0.86),
    "US": ("United States", "USD", "US10", "US011", 0.0825, 1.08),
}


def stamp(moment: datetime) -> str:
    """X3's api1 datetime: UTC, whole seconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_of(cls: ClassDef, record: Record) -> str:
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
# address country except FR009's "voir standard"; US005's MOB is Twilio's magic invalid To.
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
             "DALLAS", "TX", ("(214) 741-5520",), "+1 500-555-0001",
             "dispatch@lonestarlogistics.com",
             (_Contact("000305", "James", "WALKER", 2, "", "(214) 555-0166",
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


def _pad(values: tuple[str, ...] | list[str], size: int) -> list[str]:
    return [*values, *[""] * size][:size]


def _addresses(bp: _Partner) -> list[Record]:
    main = {
        "BPAADD": "MAIN",
        "BPADES": "Siège social" if bp.country == "FR" else "Head office",
        "BPAADDFLG": 2,  # the default address
        "BPAADDLIG": _pad([bp.street], 3),
        "POSCOD": bp.postcode,
        "CTY": bp.city,
        "SAT": bp.state,
        "CRY": bp.country,
        "CRYNAM": COUNTRIES[bp.country][0],
        "TEL": _pad(bp.tel, 5),
        "FAX": "",
        "MOB": bp.mob,
        "WEB": _pad([bp.email] if bp.email else [], 5),
        "FCYWEB": "www." + bp.email.partition("@")[2] if bp.email else "",
    }
    if bp.depot is None:
        return [main]
    street, postcode, city, tel, fax = bp.depot
    depot = {**main, "BPAADD": "DEPOT", "BPADES": "Entrepôt", "BPAADDFLG": 1}
    depot.update(BPAADDLIG=_pad([street], 3), POSCOD=postcode, CTY=city, TEL=_pad([tel], 5))
    depot.update(FAX=fax, MOB="", WEB=_pad([], 5))
    return [main, depot]


def _contact(contact: _Contact) -> Record:
    return {
        "CCNCRM": contact.code,
        "CNTTTL": contact.title,
        "CNTFNA": contact.first,
        "CNTLNA": contact.last,
        "CNTFNC": contact.function,
        "TEL": contact.tel,
        "FAX": "",
        "MOB": contact.mob,
        "WEB": contact.email,
    }


def _partner(seed: _Seed, bp: _Partner, prefix: str) -> Record:
    created = seed.days_ago(30, 20)
    return {
        f"{prefix}NUM": bp.code,
        f"{prefix}NAM": bp.name,
        f"{prefix}SHO": bp.short,
        "CUR": COUNTRIES[bp.country][1],
        "PTE": "30NET" if bp.country == "FR" else "NET30",
        "BPAADD": "MAIN",
        "BPAINV": "MAIN",
        "CNTNAM": bp.contacts[0].code if bp.contacts else "",  # the default contact's CCNCRM
        **seed.audit(created, seed.moment(created, timedelta(days=15))),
        "BPADDRESS": _addresses(bp),
        "CONTACT": [_contact(c) for c in bp.contacts],
    }


def _suppliers(seed: _Seed) -> dict[str, Record]:
    result = {}
    for bp in SUPPLIERS:
        record = {**CLASSES["BPSUPPLIER"].defaults(), **_partner(seed, bp, "BPS")}
        group = "NAT" if bp.country == "FR" else "INT"
        record.update(BPSTYP=1, BSGCOD=group, BPAPAY="MAIN", ENAFLG=2)
        result[bp.code] = record
    return result


def _customers(seed: _Seed) -> dict[str, Record]:
    result = {}
    for bp in CUSTOMERS:
        record = {**CLASSES["BPCUSTOMER"].defaults(), **_partner(seed, bp, "BPC")}
        record.update(BPCSTA=2, BPCTYP=1, BCGCOD="STD")
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
PURCHASE_DUE = (
    (-9, "paid"), (-4, "paid"), (-2, "open"), (0, "open"), (1, "open"), (2, "paid"),
    (3, "open"), (5, "open"), (8, "open"), (12, "open"), (16, "split"), (20, "open"),
    (25, "open"), (31, "open"), (40, "open"),
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
    return {
        "POHNUM": number, "BPSNUM": bp.code, "ORDDAT": created.date().isoformat(),
        "CPY": company, "POHFCY": site, "RCPFCY": site, "INVFCY": site, "CUR": currency,
        "PTE": "30NET" if bp.country == "FR" else "NET30", "ORDREF": "",
        "BPRPAY": bp.code, "BPSINV": bp.code, "APPFLG": appflg,
        "CLEFLG": 2 if progress == "I" else 1,
        "RCPFLG": {"P": 2, "R": 3, "I": 3}.get(progress, 1),
        "INVFLG": 3 if progress == "I" else 1,
        "TOTLINAMT": net, "TOTORD": net, "TOTTAXAMT": round(gross - net, 2), "TTVORD": gross,
        "EXTRCPDAT": expected.isoformat(), "LINNBR": count,
        **seed.audit(created, updated), "PORDERQ": lines,
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


def _open_item(invoice: Record, typ: str, line: int, due: str, amount: float) -> Record:
    return {
        "TYP": typ, "NUM": invoice["NUM"], "DUDLIG": line, "BPR": invoice["BPR"],
        "BPRTYP": 2 if typ == "PISU" else 1, "BPRPAY": invoice["BPRPAY"],
        "CPY": invoice["CPY"], "FCY": invoice["FCY"], "CUR": invoice["CUR"], "PAM": "TRF",
        "DUDDAT": due, "AMTCUR": amount, "PAYCUR": 0.0, "FLGCLE": 1,
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
        "CHQNUM": "", "STA": 9, "PST": 2, "CPY": item["CPY"], "FCY": item["FCY"],
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
        if state == "split":  # two instalments, the second a month later
            half = round(total / 2, 2)
            self._keep(_open_item(invoice, typ, 1, due, half))
            self._keep(_open_item(invoice, typ, 2, self.seed.day(offset + 30), total - half))
            return
        item = self._keep(_open_item(invoice, typ, 1, due, total))
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
        item.update(PAYCUR=item["AMTCUR"], FLGCLE=2, UPDDATTIM=stamp(settled))


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
