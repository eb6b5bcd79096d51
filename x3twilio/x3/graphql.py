"""Sage X3 GraphQL client (Xtrem gateway): api1's records, read from GraphQL nodes.

Every record comes back in api1's shape - X3 codes, local-menu integers, dates
YYYY-MM-DD, stamps ...Z, decimals as numbers - so sources, rules, notes and the audit
trail cannot tell the two APIs apart. Each X3 class maps to a node through a table of
(X3 code, GraphQL path, kind); the query text is built from it once (SAGE_X3.md §3.3-3.5,
names marked [I] there are guesses), and `x3.nodes` overrides any of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import requests

from x3twilio.config import X3Config
from x3twilio.errors import X3Error
from x3twilio.sources import Source, parse_stamp, stamp_literal
from x3twilio.transport import Retrier, make_session, retry_after
from x3twilio.x3 import Page
from x3twilio.x3.auth import Auth, make_auth
from x3twilio.x3.partners import Address, Contact, PartnerRecord, PartnerShape
from x3twilio.x3.rest import _date_header, _json_body, _reason, _snippet, _try_json

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
# "flag": an enum over a Yes/No (1=... 2=...), which api1 sends as a JSON boolean.
KINDS = ("text", "int", "decimal", "date", "stamp", "bool", "enum", "flag")

# ---------------------------------------------------------------- the query text

PAGE = """query Page($first: Int!, $after: String, $filter: String, $orderBy: String) {
  %(root)s { %(node)s {
    query(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
      edges { node { %(selection)s } }
      pageInfo { hasNextPage endCursor }
    }
  } }
}"""
READ = """query Read { %(root)s { %(node)s { read(_id: %(id)s) { %(selection)s } } } }"""
WRITE = """mutation Write($data: %(input)s!) {
  %(root)s { %(node)s { %(operation)s(data: $data) { %(selection)s } } }
}"""
PACKAGES = "query Packages { __schema { queryType { fields { name } } } }"

# A supplier's or customer's addresses and contacts, for details() (the phones live there).
ADDRESS_COLLECTIONS = """
  addressLines { query(first: 5) { edges { node { addressLine denormalizedIndex } } } }
  addressPhoneNumbers { query(first: 20) { edges { node {
    addressPhoneNumber phoneType denormalizedIndex } } } }
  addressEmails { query(first: 10) { edges { node { email denormalizedIndex } } } }"""
PARTNER_COLLECTIONS = """
  addresses { query(first: 50) { edges { node { %(address)s %(collections)s } } } }
  contacts { query(first: 50) { edges { node { %(contact)s } } } }"""

# ---------------------------------------------------------------- X3 class -> node
# Each line: X3 code, GraphQL path, kind (text when absent), enum values as n=value.

_AUDIT = """
CREDATTIM  _createStamp                 stamp
UPDDATTIM  _updateStamp                 stamp
CREUSR     _createUser.code
UPDUSR     _updateUser.code
"""
_PARTNER = """
CUR        currency.code
PTE        paymentTerm.code
BPAADD     addressByDefault.code
CNTNAM     defaultContact.code
"""
BUILTIN: dict[str, tuple[str, str, str]] = {
    "PORDER": (
        "x3Purchasing.purchaseOrder",
        "POHNUM",
        """
        POHNUM     id
        BPSNUM     orderFromSupplier.code.code
        ORDDAT     orderDate                    date
        CPY        company.code
        POHFCY     purchaseSite.code
        RCPFCY     receivingSite.code
        INVFCY     invoicingSite.code
        CUR        currency.code
        PTE        paymentTerm.code
        ORDREF     internalReference
        BPRPAY     payToSupplier.code.code
        BPSINV     invoicingSupplier.code.code
        APPFLG     signatureStatus              enum 1=no 2=partly 3=inFull 4=notManaged 5=automatic
        CLEFLG     isClosed                     bool
        RCPFLG     receiptStatus                enum 1=no 2=partly 3=inFull
        INVFLG     invoiceStatus                enum 1=no 2=partly 3=inFull
        TOTLINAMT  linesTotalAmount             decimal
        TOTORD     taxExcludedTotalAmount       decimal
        TOTTAXAMT  totalTaxAmount               decimal
        TTVORD     taxIncludedTotalAmount       decimal
        EXTRCPDAT1 expectedReceiptDate          date
        LINNBR     numberOfLines                int
        """
        + _AUDIT,
    ),
    "PINVOICE": (
        "x3InvoicingData.supplierInvoiceHeader",
        "NUM",
        """
        NUM        id
        PIHTYP     category     enum 1=invoice 2=additionalInvoice 3=creditNote 4=creditNoteOnReturn
        BPR        billBySupplier.code.code
        BPRPAY     payToBusinessPartner.code
        BPRSAC     controlAccount.code
        BPRVCR     sourceDocument
        BPRDAT     sourceDocumentDate           date
        ACCDAT     accountingDate               date
        CPY        company.code
        FCY        site.code
        CUR        currency.code
        PTE        paymentTerm.code
        STRDUDDAT  dueDateCalculationStartDate  date
        AMTNOT     totalAmountExcludingTax      decimal
        AMTATI     totalAmountIncludingTax      decimal
        BPAPAY     payToAddress.code
        BPYCRY     payToCountry.code
        STA        status                       enum 1=notPosted 2=partlyPosted 3=posted
        """
        + _AUDIT,
    ),
    "SINVOICE": (
        "x3Sales.salesInvoice",
        "NUM",
        """
        NUM        id
        INVTYP     category                     enum 1=invoice 2=creditNote 3=debitNote 4=creditMemo
        BPR        billToCustomer.code.code
        BPRPAY     payByCustomer.code.code
        BPRSAC     controlAccount.code
        BPRVCR     sourceDocument
        BPRDAT     sourceDocumentDate           date
        ACCDAT     accountingDate               date
        CPY        company.code
        FCY        salesSite.code
        CUR        currency.code
        PTE        paymentTerm.code
        STRDUDDAT  dueDateCalculationStartDate  date
        AMTNOT     totalAmountExcludingTax      decimal
        AMTATI     totalAmountIncludingTax      decimal
        BPAINV     billToAddress.code
        BPAPAY     payByAddress.code
        BPYCRY     payByCountry.code
        STA        status                       enum 1=notValidated 2=validated 3=posted
        """
        + _AUDIT,
    ),
    "GACCDUDATE": (
        "x3FinanceData.openItem",
        "TYP NUM LIG DUDLIG",
        """
        TYP        documentType.code
        NUM        documentNumber
        LIG        lineNumber                   int
        DUDLIG     dueDateLine                  int
        BPR        businessPartner.code
        BPRTYP     businessPartnerType          enum 1=customer 2=supplier
        BPRPAY     payToBusinessPartner.code
        CPY        company.code
        FCY        site.code
        CUR        currency.code
        PAM        paymentMethod.code
        DUDDAT     dueDate                      date
        AMTCUR     amountInCurrency             decimal
        PAYCUR     paidAmountInCurrency         decimal
        FLGCLE     closedStatus                 flag 1=open 2=closed
        CREDATTIM  _createStamp                 stamp
        UPDDATTIM  _updateStamp                 stamp
        """,
    ),
    # [?] The public schema has no payment node (SAGE_X3.md §3.5): this is one exposed with
    # X3 builder. Remap it under x3.nodes.PAYMENTH, or notify from open_items' paid amounts.
    "PAYMENTH": (
        "x3Finance.payment",
        "NUM",
        """
        NUM        id
        PAYTYP     entryType.code
        PAM        paymentMethod.code
        BPR        businessPartner.code
        BPRTYP     businessPartnerType          enum 1=customer 2=supplier
        BPANAM     businessPartnerName
        CRY        country.code
        BAN        bank.code
        SNS        direction                    enum 1=expense 2=revenue
        AMTCUR     amountInCurrency             decimal
        CUR        currency.code
        AMTBAN     amountInBankCurrency         decimal
        ACCDAT     accountingDate               date
        DUDDAT     dueDate                      date
        VALDAT     valueDate                    date
        BANDAT     bankDate                     date
        REF        reference
        DES        description
        CHQNUM     checkNumber
        STA        status        enum 1=entered 2=accepted 3=inDraftManagement 9=inTheBank 11=unpaid
        PST        isPosted                     bool
        CPY        company.code
        FCY        site.code
        """
        + _AUDIT,
    ),
    "BPSUPPLIER": (
        "x3MasterData.supplier",
        "BPSNUM",
        """
        BPSNUM     code.code
        BPSNAM     companyName1
        BPSSHO     shortCompanyName
        BPSTYP     supplierType                 enum 1=normal 2=miscellaneous 3=prospect
        BSGCOD     category.code
        BPAINV     billByAddress.code
        BPAPAY     payToAddress.code
        BPSREM     notes
        ENAFLG     isActive                     bool
        """
        + _PARTNER
        + _AUDIT,
    ),
    "BPCUSTOMER": (
        "x3MasterData.customer",
        "BPCNUM",
        """
        BPCNUM     code.code
        BPCNAM     companyName1
        BPCSHO     shortCompanyName
        BPCSTA     isActive                     bool
        BPCTYP     customerType                 enum 1=normal 2=miscellaneous 3=prospect
        BCGCOD     category.code
        BPAINV     billToAddress.code
        BPCREM     notes
        OSTAUZ     creditLimit                  decimal
        """
        + _PARTNER
        + _AUDIT,
    ),
}
PARTNERS = ("BPSUPPLIER", "BPCUSTOMER")
ADDRESS = """
BPAADD     code
BPADES     description
BPAADDFLG  isDefault                    bool
POSCOD     zipCode
CTY        city
SAT        state
CRY        country.code
CRYNAM     countryName
FCYWEB     website
"""
CONTACT = """
CCNCRM     code
CNTTTL     title                        enum 1=mr 2=mrs 3=miss
CNTFNA     firstName
CNTLNA     lastName
CNTFNC     function                     enum 1=management 2=purchasing 3=sales
TEL        landline
FAX        fax
MOB        cellPhone
WEB        email
"""
# TelephoneType values are [?] (SAGE_X3.md §3.5): unknown ones count as TEL(0..4).
PHONE_CODES = {"mobile": "MOB", "cellPhone": "MOB", "fax": "FAX"}


@dataclass(frozen=True)
class Prop:
    """One X3 code over a GraphQL path, with how its values translate."""

    code: str
    path: tuple[str, ...]
    kind: str = "text"
    values: Mapping[int, str] = field(default_factory=dict)  # enum: menu number -> value

    def to_api1(self, raw: Any) -> Any:
        """GraphQL's JSON value -> api1's (ValueError on garbage)."""
        if self.kind in ("date", "stamp", "text"):
            if raw in (None, ""):
                return ""
            text = str(raw)
            if self.kind == "date":
                return date.fromisoformat(text[:10]).isoformat()
            return stamp_literal(parse_stamp(text)) if self.kind == "stamp" else text
        if raw is None:
            return 0
        if self.kind == "bool":  # api1 sends Yes/No as JSON booleans too
            return raw if isinstance(raw, bool) else _fail(raw)
        if self.kind in ("enum", "flag"):  # an unknown value passes through, for sources to name it
            number = next((n for n, v in self.values.items() if v == raw), raw)
            return {1: False, 2: True}.get(number, number) if self.kind == "flag" else number
        if isinstance(raw, bool):
            raise ValueError(f"not a number: {raw!r}")
        try:
            number = Decimal(str(raw))
        except InvalidOperation:
            raise ValueError(f"not a number: {raw!r}") from None
        return int(number) if self.kind == "int" else float(number)

    def to_graphql(self, value: Any) -> Any:
        """api1's value (or a filter literal) -> GraphQL's."""
        if value is None:
            return None
        if self.kind == "bool":
            return value if isinstance(value, bool) else int(value) == 2
        if self.kind == "flag":
            return self.values[2 if value is True or value == 2 else 1]
        if self.kind == "enum":
            if int(value) not in self.values:
                raise ValueError(f"{self.code} has no GraphQL value for {int(value)}")
            return self.values[int(value)]
        if self.kind in ("int", "decimal"):
            number = Decimal(str(value))
            return int(number) if number == number.to_integral_value() else float(number)
        if isinstance(value, datetime):
            return stamp_literal(value)
        return value.isoformat() if isinstance(value, date) else str(value)


def _fail(raw: Any) -> Any:
    raise ValueError(f"not true or false: {raw!r}")


def parse_prop(code: str, spec: str) -> Prop:
    """`signatureStatus enum 1=no 2=partly` -> Prop (ValueError on a bad spec)."""
    words = spec.split()
    if not words:
        raise ValueError("expected a GraphQL path such as id")
    kind = words[1] if len(words) > 1 else "text"
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    values = {}
    for word in words[2:]:
        number, _, value = word.partition("=")
        if not number.isdigit() or not value:
            raise ValueError(f"expected enum values as number=value, got {word!r}")
        values[int(number)] = value
    if (kind in ("enum", "flag")) != bool(values):
        raise ValueError("enum values go with kinds enum and flag, and they need them")
    return Prop(code, tuple(words[0].split(".")), kind, values)


def _props(table: str) -> dict[str, Prop]:
    lines = (line.split(None, 1) for line in table.strip().splitlines() if line.strip())
    return {code: parse_prop(code, spec) for code, spec in lines}


@dataclass(frozen=True)
class NodeMap:
    """An X3 class as a GraphQL node: root package, node name, key and properties."""

    x3_class: str
    package: str
    node: str
    key: tuple[str, ...]
    props: Mapping[str, Prop]
    partner: bool = False  # details() brings addresses and contacts

    def prop(self, code: str) -> Prop:
        found = self.props.get(code)
        if found is None:
            raise X3Error(
                f"{self.x3_class} has no GraphQL property for {code} in "
                f"{self.package}.{self.node}: map it under x3.nodes.{self.x3_class}.fields"
            )
        return found

    @property
    def name(self) -> str:
        return f"{self.package}.{self.node}"

    def decode(self, node: Mapping[str, Any]) -> dict[str, Any]:
        """A node as api1 would have sent it, with its `$key`."""
        out = _decode(self.props, node, self.name)
        out["$key"] = "~".join(str(out.get(code, "")) for code in self.key)
        if self.partner:
            out["BPADDRESS"] = [_address(row, self.name) for row in _rows(node.get("addresses"))]
            out["CONTACT"] = [
                _decode(CONTACT_PROPS, row, self.name) for row in _rows(node.get("contacts"))
            ]
        return out


ADDRESS_PROPS, CONTACT_PROPS = _props(ADDRESS), _props(CONTACT)


def node_maps(config: X3Config) -> dict[str, NodeMap]:
    """The built-in table with the configuration's x3.nodes over it."""
    maps = {}
    for x3_class, (name, key, table) in BUILTIN.items():
        package, node = name.split(".")
        maps[x3_class] = NodeMap(
            x3_class, package, node, tuple(key.split()), _props(table), x3_class in PARTNERS
        )
    for x3_class, override in config.nodes.items():
        base = maps.get(x3_class)
        name = override.node or (base.name if base else "")
        if not name:
            raise X3Error(f"x3.nodes.{x3_class}: a class of your own needs node, key and fields")
        props = dict(base.props) if base else {}
        for code, spec in override.fields.items():
            try:
                props[code] = parse_prop(code, spec)
            except ValueError as exc:
                raise X3Error(f"x3.nodes.{x3_class}.fields.{code}: {exc}") from None
        package, node = name.split(".")
        keys = override.key or (base.key if base else ())
        maps[x3_class] = NodeMap(x3_class, package, node, keys, props, x3_class in PARTNERS)
    return maps


# ---------------------------------------------------------------- filters


def relaxed(value: Any) -> str:
    """A filter or orderBy value as X3 writes them: {key: 'text', n: 1} (relaxed JSON)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {relaxed(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(relaxed(v) for v in value) + "]"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return json.dumps(value)


def nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """('company', 'code'), v -> {company: {code: v}}."""
    for part in reversed(path):
        value = {part: value}
    return value  # type: ignore[no-any-return]


def _merge(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        for k, v in part.items():
            both = isinstance(v, dict) and isinstance(out.get(k), dict)
            out[k] = _merge(out[k], v) if both else v
    return out


def all_of(*filters: str | None) -> str | None:
    """Filter texts and-ed together."""
    present = [f for f in filters if f]
    if len(present) < 2:
        return present[0] if present else None
    return "{_and: [" + ", ".join(present) + "]}"


_TOKEN = re.compile(
    r"""\s*(?:(?P<str>'(?:[^']|'')*')|(?P<at>@[^@]*@)|(?P<num>-?\d+(?:\.\d+)?)
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<sym><>|!=|<=|>=|=|<|>)|(?P<punct>[(),]))""",
    re.VERBOSE,
)
_OPS = {"eq": "_eq", "ne": "_ne", "lt": "_lt", "le": "_lte", "gt": "_gt", "ge": "_gte"}
_SYMBOLS = {"=": "eq", "<>": "ne", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


def user_filter(node: NodeMap, where: str | None) -> str | None:
    """A source's filter: GraphQL as written ({...}), or SData (X3 codes) translated."""
    if not where or not where.strip():
        return None
    if where.lstrip().startswith(("{", "[")):
        return where.strip()
    try:
        return relaxed(_WhereParser(node, where).parse())
    except ValueError as exc:
        raise X3Error(
            f"cannot turn the filter {where!r} into GraphQL for {node.name}: {exc} "
            "(or write it as a GraphQL filter, e.g. {company: {code: 'FR10'}})"
        ) from None


class _WhereParser:
    """The SData subset sources use: comparisons, in, between, like, and/or/not, ()."""

    def __init__(self, node: NodeMap, text: str) -> None:
        self.node, self.tokens, self.pos = node, self._tokenize(text), 0

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while text[pos:].strip():
            match = _TOKEN.match(text, pos)
            if not match or not match.lastgroup:
                raise ValueError(f"unexpected text at {text[pos:].strip()[:20]!r}")
            tokens.append((match.lastgroup, match[match.lastgroup]))
            pos = match.end()
        return [*tokens, ("end", "")]

    def take(self, word: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.pos]
        if word is not None and self.word(token) != word and token[1] != word:
            raise ValueError(f"expected {word!r}, found {token[1] or 'the end'!r}")
        self.pos += 1
        return token

    @staticmethod
    def word(token: tuple[str, str]) -> str:
        kind, text = token
        return _SYMBOLS[text] if kind == "sym" else text.lower() if kind == "name" else ""

    def peek(self) -> str:
        return self.word(self.tokens[self.pos]) or self.tokens[self.pos][1]

    def parse(self) -> dict[str, Any]:
        result = self.either()
        self.take("")
        return result

    def either(self) -> dict[str, Any]:
        parts = [self.both()]
        while self.peek() == "or":
            self.take()
            parts.append(self.both())
        return parts[0] if len(parts) == 1 else {"_or": parts}

    def both(self) -> dict[str, Any]:
        parts = [self.unary()]
        while self.peek() == "and":
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else {"_and": parts}

    def unary(self) -> dict[str, Any]:
        if self.peek() == "not":
            self.take()
            return {"_not": self.unary()}
        if self.peek() == "(":
            self.take()
            inner = self.either()
            self.take(")")
            return inner
        return self.comparison()

    def comparison(self) -> dict[str, Any]:
        kind, code = self.take()
        if kind != "name":
            raise ValueError(f"expected an X3 code, found {code!r}")
        prop = self.node.props.get(code)
        if prop is None:
            raise ValueError(f"{code} has no GraphQL property (map it under x3.nodes)")
        op = self.peek()
        self.take()
        if op in _OPS:
            return nest(prop.path, {_OPS[op]: self.value(prop)})
        if op == "between":
            low = self.value(prop)
            self.take("and")
            return nest(prop.path, {"_gte": low, "_lte": self.value(prop)})
        if op == "in":
            self.take("(")
            values = [self.value(prop)]
            while self.peek() == ",":
                self.take()
                values.append(self.value(prop))
            self.take(")")
            return nest(prop.path, {"_in": values})
        if op == "like":
            pattern = str(self.value(Prop(code, prop.path)))
            parts = (".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
            return nest(prop.path, {"_regex": "^" + "".join(parts) + "$"})
        raise ValueError(f"unsupported operator {op!r}")

    def value(self, prop: Prop) -> Any:
        kind, text = self.take()
        if kind == "str":
            literal: Any = text[1:-1].replace("''", "'")
        elif kind == "num":
            literal = text
        elif kind == "at":
            inner = text[1:-1]  # @2024-05-01@ or @2024-05-01T10:00:00Z@
            literal = parse_stamp(inner.rstrip("Zz") + "Z") if "T" in inner else inner
        else:
            raise ValueError(f"expected a value, found {text!r}")
        return prop.to_graphql(literal)


# ---------------------------------------------------------------- the client


class GraphQLClient:
    def __init__(
        self,
        config: X3Config,
        session: requests.Session,
        retrier: Retrier,
        auth: Auth | None = None,
    ) -> None:
        self.config, self.session, self.retrier = config, session, retrier
        self.url = config.graphql_url
        self.auth = auth or make_auth(config, session)
        self.nodes = node_maps(config)

    def node(self, x3_class: str) -> NodeMap:
        found = self.nodes.get(x3_class)
        if found is None:
            raise X3Error(
                f"class {x3_class} has no GraphQL node: map it under x3.nodes.{x3_class} "
                "(node, key, fields)"
            )
        return found

    def root(self, node: NodeMap) -> str:
        return self.config.packages.get(node.package, node.package)

    # -- reading -------------------------------------------------------------------------

    def pages(
        self,
        node: NodeMap,
        props: Iterable[Prop],
        filter_text: str | None,
        order: dict[str, Any],
        count: int | None = None,
    ) -> Iterator[Page]:
        """Every page of a query, with the same filter and orderBy on each (cursors need it)."""
        text = PAGE % {"root": self.root(node), "node": node.node, "selection": selection(props)}
        variables: dict[str, Any] = {
            "first": count or self.config.page_size,
            "filter": filter_text,
            "orderBy": relaxed(order),
            "after": None,
        }
        seen: set[str] = set()
        while True:
            data, server_time = self.retrier.call(self.run, text, dict(variables), node.name)
            connection = _dig(data, self.root(node), node.node, "query")
            if not isinstance(connection, dict):
                raise X3Error(f"the answer for {node.name} has no query connection")
            rows = [e.get("node") for e in connection.get("edges") or [] if isinstance(e, dict)]
            yield Page([node.decode(row) for row in rows if isinstance(row, dict)], server_time)
            info = connection.get("pageInfo") or {}
            if count is not None or not info.get("hasNextPage"):
                return
            cursor = info.get("endCursor")
            if not isinstance(cursor, str) or not cursor or cursor in seen:
                raise X3Error(f"paging loops on {node.name}: endCursor {cursor!r} repeats")
            seen.add(cursor)
            variables["after"] = cursor

    def changes(self, source: Source, lo: datetime, hi: datetime) -> Iterator[Page]:
        """Records stamped in [lo, hi), and-ed with the source's own filter."""
        node = self.node(source.x3_class)
        stamp = node.prop(source.timestamp)
        window = nest(stamp.path, {"_gte": stamp_literal(lo), "_lt": stamp_literal(hi)})
        order = _merge(nest(stamp.path, 1), self._key_order(node))
        where = all_of(relaxed(window), user_filter(node, source.where))
        return self.pages(node, node.props.values(), where, order)

    def due(self, source: Source, code: str, first: date, last: date) -> Iterator[Page]:
        """Open records whose date `code` falls in [first, last]."""
        node = self.node(source.x3_class)
        window = nest(node.prop(code).path, {"_gte": first.isoformat(), "_lte": last.isoformat()})
        where = all_of(
            relaxed(window), user_filter(node, source.open_where), user_filter(node, source.where)
        )
        return self.pages(node, node.props.values(), where, self._key_order(node))

    def keys(self, x3_class: str, key: str, representation: str | None = None) -> Iterator[str]:
        """Every key of a class (suppliers, customers), page by page."""
        node = self.node(x3_class)
        for page in self.pages(node, [node.prop(key)], None, self._key_order(node)):
            yield from (str(row[key]) for row in page.resources if row.get(key))

    def find(
        self, x3_class: str, field: str, value: str, representation: str | None = None
    ) -> dict[str, Any] | None:
        """The first record whose `field` equals `value`, if any."""
        node = self.node(x3_class)
        where = relaxed(nest(node.prop(field).path, {"_eq": value}))
        page = next(self.pages(node, node.props.values(), where, self._key_order(node), count=1))
        return page.resources[0] if page.resources else None

    def server_time(self, source: Source) -> datetime:
        """X3's clock (the Date of a one-row answer), which bounds this run's change window."""
        node = self.node(source.x3_class)
        keys = [node.prop(code) for code in node.key]
        page = next(self.pages(node, keys, None, self._key_order(node), count=1))
        if page.server_time is None:
            raise X3Error(f"{self.url} sends no Date header; cannot read X3's clock")
        return page.server_time

    def partner(self, shape: PartnerShape, code: str) -> PartnerRecord | None:
        body = self.details(shape.x3_class, code)
        return None if body is None else _partner_record(shape.kind, code, body)

    def details(
        self, x3_class: str, key: str, representation: str | None = None
    ) -> dict[str, Any] | None:
        """One record (with addresses and contacts for partners), or None if it does not exist."""
        node = self.node(x3_class)
        text = READ % {
            "root": self.root(node),
            "node": node.node,
            "id": json.dumps(key),
            "selection": self._full_selection(node),
        }
        data, _ = self.retrier.call(self.run, text, {}, node.name)
        found = _dig(data, self.root(node), node.node, "read")
        return node.decode(found) if isinstance(found, dict) else None

    # -- writing -------------------------------------------------------------------------

    def edit(
        self,
        x3_class: str,
        key: str,
        changes: dict[str, Any],
        representation: str | None = None,
    ) -> dict[str, Any]:
        """Update through the configured mutation (x3.mutations.update), as api1's $edit PUT."""
        node = self.node(x3_class)
        data = {"_id": key, **self._input(node, changes)}
        return self.retrier.call(self._write, node, self.config.mutations["update"], data)

    def create(
        self, x3_class: str, body: dict[str, Any], representation: str | None = None
    ) -> dict[str, Any]:
        """One create mutation, not retried: a lost answer may hide a created record,
        so callers retry only after checking whether it exists."""
        node = self.node(x3_class)
        return self._write(node, self.config.mutations["create"], self._input(node, body))

    def _write(self, node: NodeMap, operation: str, data: dict[str, Any]) -> dict[str, Any]:
        text = WRITE % {
            "input": f"{node.node[0].upper()}{node.node[1:]}_Input",
            "root": self.root(node),
            "node": node.node,
            "operation": operation,
            "selection": selection(node.props.values()),
        }
        answer, _ = self.run(text, {"data": data}, f"{node.name}.{operation}")
        written = _dig(answer, self.root(node), node.node, operation)
        if not isinstance(written, dict):
            raise X3Error(f"{node.name}.{operation} answered without the record")
        return node.decode(written)

    def _input(self, node: NodeMap, values: Mapping[str, Any]) -> dict[str, Any]:
        """api1 codes -> mutation input; a reference is given by its _id (the code)."""
        out = {}
        for code, value in values.items():
            prop = node.prop(code)
            try:
                out[prop.path[0]] = prop.to_graphql(value)
            except (TypeError, ValueError, InvalidOperation) as exc:
                raise X3Error(f"{node.name}: cannot write {code}={value!r}: {exc}") from None
        return out

    # -- plumbing ------------------------------------------------------------------------

    def _key_order(self, node: NodeMap) -> dict[str, Any]:
        return _merge(*(nest(node.prop(code).path, 1) for code in node.key))

    def _full_selection(self, node: NodeMap) -> str:
        text = selection(node.props.values())
        if node.partner:
            text += PARTNER_COLLECTIONS % {
                "address": selection(ADDRESS_PROPS.values()),
                "collections": ADDRESS_COLLECTIONS,
                "contact": selection(CONTACT_PROPS.values()),
            }
        return text

    def run(
        self, query: str, variables: dict[str, Any], label: str = "GraphQL"
    ) -> tuple[dict[str, Any], datetime | None]:
        """POST one operation; the `data`, and X3's clock from the Date header."""
        response = self._post(query, variables)
        if response.status_code == 401 and self.auth.renew():
            response = self._post(query, variables)
        self._raise_for_status(response)
        body = _json_body(response, self.url)
        problem = _errors(body)
        if problem:
            raise X3Error(f"X3 reported an error for {label} at {self.url}: {problem}", status=200)
        data = body.get("data")
        if not isinstance(data, dict):
            raise X3Error(f"the answer for {label} from {self.url} has no data")
        return data, _date_header(response)

    def _post(self, query: str, variables: dict[str, Any]) -> requests.Response:
        headers = {
            "Accept": "application/json",
            "x-xtrem-endpoint": self.config.folder,
            **self.auth.headers(),
        }
        try:
            return self.session.post(
                self.url,
                json={"query": query, "variables": variables},
                headers=headers,
                timeout=self.config.timeout,
            )
        except requests.Timeout:
            raise X3Error(
                f"no answer within {self.config.timeout:g}s from {self.url}", transient=True
            ) from None
        except requests.ConnectionError as exc:
            raise X3Error(f"cannot reach {self.url}: {_reason(exc)}", transient=True) from None

    def _raise_for_status(self, response: requests.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        if status == 401:
            explained = self.auth.explain(response.text)
            raise X3Error(f"credentials refused (HTTP 401) at {self.url}: {explained}", status=401)
        detail = _errors(_try_json(response)) or _snippet(response)
        raise X3Error(
            f"HTTP {status} from {self.url}: {detail}",
            status=status,
            transient=status in _TRANSIENT_STATUS,
            retry_after=retry_after(response),
        )


def selection(props: Iterable[Prop]) -> str:
    """The selection set that reads these paths: a.b, a.c -> a { b c }."""
    tree: dict[str, Any] = {}
    for prop in props:
        branch = tree
        for part in prop.path:
            branch = branch.setdefault(part, {})

    def render(branch: dict[str, Any]) -> str:
        return " ".join(f"{k} {{ {render(v)} }}" if v else k for k, v in branch.items())

    return render(tree)


def _decode(props: Mapping[str, Prop], row: Mapping[str, Any], where: str) -> dict[str, Any]:
    out = {}
    for code, prop in props.items():
        raw = _dig(row, *prop.path)
        try:
            out[code] = prop.to_api1(raw)
        except (TypeError, ValueError) as exc:
            path = ".".join(prop.path)
            raise X3Error(f"{where} sent {path}={raw!r}, not a {prop.kind} ({exc})") from None
    return out


def _address(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A GraphQL address as api1's BPADDRESS row: TEL(0..4), MOB, FAX, WEB(0..4)."""
    out = _decode(ADDRESS_PROPS, row, where)
    phones: dict[str, list[str]] = {"TEL": [], "MOB": [], "FAX": []}
    for phone in sorted(_rows(row.get("addressPhoneNumbers")), key=_index):
        text = phone.get("addressPhoneNumber")
        if isinstance(text, str) and text.strip():
            phones[PHONE_CODES.get(str(phone.get("phoneType")), "TEL")].append(text)
    lines = [r.get("addressLine") or "" for r in sorted(_rows(row.get("addressLines")), key=_index)]
    emails = [r.get("email") or "" for r in sorted(_rows(row.get("addressEmails")), key=_index)]
    out.update(
        BPAADDLIG=_pad(lines, 3),
        TEL=_pad(phones["TEL"], 5),
        MOB=(phones["MOB"] or [""])[0],
        FAX=(phones["FAX"] or [""])[0],
        WEB=_pad(emails, 5),
    )
    return out


def _partner_record(kind: str, code: str, body: Mapping[str, Any]) -> PartnerRecord:
    """A partner as this client decodes it (addresses and contacts as api1 rows)."""
    addresses = tuple(
        Address(
            code=str(a.get("BPAADD") or ""),
            default=a.get("BPAADDFLG") is True or a.get("BPAADD") == body.get("BPAADD"),
            country=str(a.get("CRY") or "") or None,
            phones=tuple(t for t in [a.get("MOB") or "", *a.get("TEL", [])] if t),
            emails=tuple(t for t in a.get("WEB", []) if t),
        )
        for a in body.get("BPADDRESS", [])
    )
    contacts = tuple(
        Contact(
            code=str(c.get("CCNCRM") or ""),
            default=c.get("CCNCRM") == body.get("CNTNAM"),
            mobile=str(c.get("MOB") or ""),
            phone=str(c.get("TEL") or ""),
            email=str(c.get("WEB") or ""),
        )
        for c in body.get("CONTACT", [])
    )
    return PartnerRecord(kind, code, addresses=addresses, contacts=contacts)


def _index(row: Mapping[str, Any]) -> int:
    index = row.get("denormalizedIndex")
    return index if isinstance(index, int) else 0


def _pad(values: list[str], size: int) -> list[str]:
    return [*values, *[""] * size][:size]


def _rows(collection: Any) -> list[dict[str, Any]]:
    """A collection's nodes: {query: {edges: [{node: ...}]}}, or a plain list."""
    if isinstance(collection, list):
        return [row for row in collection if isinstance(row, dict)]
    edges = _dig(collection, "query", "edges") or []
    return [e["node"] for e in edges if isinstance(e, dict) and isinstance(e.get("node"), dict)]


def _dig(value: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _errors(body: Any) -> str:
    """GraphQL's `errors` (sent with HTTP 200) and error-level `extensions.diagnoses`."""
    if not isinstance(body, dict):
        return ""
    messages = []
    for error in body.get("errors") or []:
        if isinstance(error, dict):
            where = ".".join(str(p) for p in error.get("path") or [])
            text = str(error.get("message", "")).strip()
            messages.append(f"{text} (at {where})" if where else text)
    diagnoses = _dig(body, "extensions", "diagnoses") or []
    for diagnosis in diagnoses if isinstance(diagnoses, list) else []:
        if isinstance(diagnosis, dict) and _severe(diagnosis):
            text = diagnosis.get("message") or diagnosis.get("$message") or ""
            messages.append(str(text).strip())
    text = "; ".join(m for m in dict.fromkeys(messages) if m)
    if "Cannot query field" in text:
        text += (
            " - if this X3 names its packages differently (e.g. xtremX3Purchasing), "
            "set x3.packages (`x3twilio check` lists them); a node, map it under x3.nodes"
        )
    return text


def _severe(diagnosis: Mapping[str, Any]) -> bool:
    severity = diagnosis.get("severity", diagnosis.get("$severity"))
    if isinstance(severity, int) and not isinstance(severity, bool):
        return severity >= 3  # Xtrem's ValidationSeverity: 3 error, 4 exception
    return str(severity).lower() in ("error", "fatal", "exception")


# ---------------------------------------------------------------- discovery, for `check`


def discover_packages(
    config: X3Config,
    session: requests.Session | None = None,
    retrier: Retrier | None = None,
) -> dict[str, str]:
    """Root names this X3 uses for the packages we read, by introspection.

    Maps each package name of the table (x3Purchasing...) to the root field found
    (x3Purchasing, or xtremX3Purchasing on 2021-2023 versions); missing ones are left out.
    What differs from the name goes under x3.packages.
    """
    from x3twilio.config import RetryConfig

    client = GraphQLClient(
        config, session or make_session(), retrier or Retrier(RetryConfig(attempts=1))
    )
    data, _ = client.retrier.call(client.run, PACKAGES, {}, "introspection")
    fields = _dig(data, "__schema", "queryType", "fields") or []
    names = {f.get("name") for f in fields if isinstance(f, dict)}
    found = {}
    for package in sorted({node.package for node in client.nodes.values()}):
        legacy = f"xtrem{package[0].upper()}{package[1:]}"
        for candidate in (config.packages.get(package, package), package, legacy):
            if candidate in names:
                found[package] = candidate
                break
    return found
