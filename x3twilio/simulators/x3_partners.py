"""The seeded dataset's partners: the suppliers and customers, their addresses (phones and
e-mails in the five-slot lists), contacts, and the seeded random choices they share."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from .x3data import CLASSES, COUNTRIES, SEED, USERS, Record, stamp


class _Contact(NamedTuple):
    code: str
    first: str
    last: str
    function: int  # CNTFNC local menu: 1 management, 2 purchasing/logistics, 3 sales
    tel: str
    mob: str
    email: str
    title: int = 1  # CNTTTL local menu: 1 Mr, 2 Mrs


class Partner(NamedTuple):
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
    Partner("FR001", "Acme Fournitures SARL", "ACME", "FR", "27 rue Garibaldi", "69003", "LYON",
             "", ("04 72 10 20 30",), "06 12 34 56 78", "compta@acme-fournitures.fr",
             (_Contact("000101", "Jean", "DUPONT", 3, "04 72 10 20 31", "06 98 76 54 32",
                       "j.dupont@acme-fournitures.fr"),)),
    Partner("FR002", "Papeterie Moderne SA", "PAPMOD", "FR", "118 boulevard Voltaire", "75011",
             "PARIS", "", ("01 43 55 12 90", "01 43 55 12 91"), "07 81 22 33 44",
             "contact@papeterie-moderne.fr",
             (_Contact("000102", "Sophie", "MARTIN", 3, "", "06 23 45 67 89",
                       "s.martin@papeterie-moderne.fr", title=2),),
             ("14 avenue du Port", "92230", "GENNEVILLIERS", "01 47 98 20 10", "01 47 98 20 19")),
    Partner("FR003", "Transports Rhône-Alpes SAS", "TRA", "FR", "5 rue des Glairons", "38000",
             "GRENOBLE", "", ("04 76 85 40 12",), "", "exploitation@tra-transports.fr",
             (_Contact("000103", "Karim", "BENALI", 2, "", "06 45 67 89 01",
                       "k.benali@tra-transports.fr"),)),
    Partner("FR004", "Emballages du Nord SARL", "EMBNORD", "FR", "42 rue Nationale", "59000",
             "LILLE", "", ("03 20 55 66 77",), "06 71 82 93 04", "adv@emballages-nord.fr",
             (_Contact("000104", "Claire", "LEROY", 3, "03 20 55 66 78", "",
                       "c.leroy@emballages-nord.fr", title=2),)),
    Partner("FR005", "Fournitures Océane SAS", "OCEANE", "FR", "9 quai de la Fosse", "44000",
             "NANTES", "", ("02 40 12 34 56",), "+33 6 52 41 30 77", "ventes@oceane-fournitures.fr",
             (_Contact("000105", "Yann", "LE GOFF", 3, "", "06.52.41.30.78",
                       "y.legoff@oceane-fournitures.fr"),)),
    Partner("FR009", "Quincaillerie Martin", "QMARTIN", "FR", "3 cours Victor Hugo", "33000",
             "BORDEAUX", "", ("voir standard",), "", "",
             (_Contact("000109", "Pierre", "MARTIN", 1, "", "", ""),)),
    Partner("GB001", "Britannia Office Supplies Ltd", "BRITOFF", "GB", "Unit 4, Trafford Park",
             "M17 1AB", "MANCHESTER", "", ("0161 496 0123",), "07911 123456",
             "accounts@britannia-office.co.uk",
             (_Contact("000201", "Oliver", "HUGHES", 3, "0161 496 0456", "07400 123456",
                       "o.hughes@britannia-office.co.uk"),)),
    Partner("GB002", "Thames Valley Packaging Ltd", "TVPACK", "GB", "22 Kings Road", "RG1 3EH",
             "READING", "", ("0118 496 0555", "0118 496 0556"), "+44 7824 556677",
             "sales@tvpackaging.co.uk",
             (_Contact("000202", "Emma", "CLARKE", 2, "020 7946 0321", "07522 334455",
                       "e.clarke@tvpackaging.co.uk", title=2),)),
    Partner("US001", "Pacific Industrial Supply Inc", "PACIND", "US", "850 Brannan St", "94107",
             "SAN FRANCISCO", "CA", ("(415) 392-7781",), "(415) 555-0199",
             "ar@pacific-industrial.com",
             (_Contact("000301", "Michael", "CHEN", 3, "", "415-555-0123",
                       "m.chen@pacific-industrial.com"),)),
    Partner("US002", "Great Lakes Fasteners LLC", "GLFAST", "US", "1200 W Fulton Market",
             "60607", "CHICAGO", "IL", ("(312) 846-2210",), "(312) 555-0147",
             "orders@glfasteners.com",
             (_Contact("000302", "Linda", "KOWALSKI", 3, "(312) 555-0181", "",
                       "l.kowalski@glfasteners.com", title=2),)),
    Partner("US003", "Hudson Valley Paper Co", "HVPAPER", "US", "75 State St", "12207",
             "ALBANY", "NY", ("(518) 462-3390",), "(518) 555-0162", "billing@hvpaper.com",
             (_Contact("000303", "Robert", "DIAZ", 3, "", "518 555 0175", "r.diaz@hvpaper.com"),)),
    Partner("US005", "Lone Star Logistics LLC", "LSLOG", "US", "2100 Ross Ave", "75201",
             "DALLAS", "TX", ("(214) 741-5520",), "(214) 555-0166",
             "dispatch@lonestarlogistics.com",
             (_Contact("000305", "James", "WALKER", 2, "", "+1 500-555-0001",
                       "j.walker@lonestarlogistics.com"),)),
)  # fmt: skip

CUSTOMERS = (
    Partner("CFR001", "Hôtel Bellecour", "BELLEC", "FR", "12 place Bellecour", "69002", "LYON",
             "", ("04 78 62 11 90",), "06 33 21 45 87", "direction@hotel-bellecour.fr",
             (_Contact("000401", "Nathalie", "ROUX", 1, "", "06 87 12 45 63",
                       "n.roux@hotel-bellecour.fr", title=2),)),
    Partner("CFR002", "Clinique Saint-Jean", "CLISTJ", "FR", "30 boulevard Baille", "13006",
             "MARSEILLE", "", ("04 91 55 20 40",), "", "achats@clinique-stjean.fr",
             (_Contact("000402", "Marc", "FABRE", 2, "", "06 14 25 36 47",
                       "m.fabre@clinique-stjean.fr"),)),
    Partner("CFR003", "Cabinet Lefèvre Avocats", "LEFEVRE", "FR", "8 rue de Rivoli", "75004",
             "PARIS", "", ("01 45 67 23 10",), "07 66 54 32 10", "secretariat@lefevre-avocats.fr"),
    Partner("CFR004", "Strasbourg Services Municipaux", "STRSER", "FR", "1 parc de l'Étoile",
             "67000", "STRASBOURG", "", ("03 88 32 10 45",), "", "marches@strasbourg-services.fr"),
    Partner("CGB001", "Northbridge Accountants LLP", "NORTHB", "GB", "3 Fleet Place", "EC4M 7RD",
             "LONDON", "", ("020 7946 0588",), "07845 667788", "office@northbridge-llp.co.uk"),
    Partner("CGB002", "Kensington Dental Care", "KENDEN", "GB", "41 Kensington High St", "W8 5ED",
             "LONDON", "", ("020 7946 0102",), "07700 123456", "reception@kensingtondental.co.uk"),
    Partner("CUS001", "Bay Area Coworking Inc", "BAYCOW", "US", "500 Howard St", "94105",
             "SAN FRANCISCO", "CA", ("(415) 555-0173",), "", "admin@bayareacowork.com",
             (_Contact("000501", "Ashley", "NGUYEN", 1, "", "(415) 555-0188",
                       "a.nguyen@bayareacowork.com", title=2),)),
    Partner("CUS002", "Midtown Legal Services PC", "MIDLEG", "US", "250 W 55th St", "10019",
             "NEW YORK", "NY", ("(212) 555-0196",), "(646) 555-0142", "ap@midtownlegal.com"),
)  # fmt: skip


class Seed:
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
    bp: Partner, prefix: str, code: str, where: tuple[str, str, str], **more: Any
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


def _addresses(bp: Partner, prefix: str) -> list[Record]:
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


def _contact(bp: Partner, contact: _Contact, first: bool) -> Record:
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


def _partner(seed: Seed, bp: Partner, prefix: str) -> Record:
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


def seed_suppliers(seed: Seed) -> dict[str, Record]:
    result = {}
    for bp in SUPPLIERS:
        record = {**CLASSES["BPSUPPLIER"].defaults(), **_partner(seed, bp, "BPS")}
        group = "NAT" if bp.country == "FR" else "INT"
        record.update(BPSTYP=1, BSGCOD=group, BPAPAY="MAIN", ENAFLG=True)
        result[bp.code] = record
    return result


def seed_customers(seed: Seed) -> dict[str, Record]:
    result = {}
    for bp in CUSTOMERS:
        record = {**CLASSES["BPCUSTOMER"].defaults(), **_partner(seed, bp, "BPC")}
        record.update(BPCSTA=True, BPCTYP=1, BCGCOD="STD", BPCINV=bp.code, BPCPYR=bp.code)
        record["OSTAUZ"] = float(seed.rng.choice((5000, 10000, 25000)))
        result[bp.code] = record
    return result
