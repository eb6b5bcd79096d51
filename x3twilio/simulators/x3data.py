"""The classes the X3 simulator serves: fields, kinds, keys and `*_REF` objects (the seeded
dataset of a mid-market distributor is built by `x3_dataset`).

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias

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
