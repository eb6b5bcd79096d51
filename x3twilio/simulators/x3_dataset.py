"""The simulated X3's seeded dataset: partners (`x3_partners`), purchase and sales orders,
invoices, open items and payments, dated relative to "now" and the same for the same "now"."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from .x3_partners import CUSTOMERS, SUPPLIERS, Partner, Seed, seed_customers, seed_suppliers
from .x3data import CLASSES, COUNTRIES, Dataset, Record, key_of, stamp

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


def _order_line(seed: Seed, number: str, index: int, bp: Partner, expected: date) -> Record:
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


def _order(seed: Seed, number: str, bp: Partner, plan: tuple[int, str, datetime]) -> Record:
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


def _purchase_orders(seed: Seed) -> dict[str, Record]:
    plans = [entry.split(":") for entry in ORDER_PLAN.split()]
    dated = [(seed.days_ago(*ORDER_AGE[p]), code, int(flag), p) for code, flag, p in plans]
    numbers = _Numbers(113)
    orders = {}
    for created, code, appflg, progress in sorted(dated):
        bp = PARTNERS[code]
        number = numbers.next("PO", COUNTRIES[bp.country][3])
        orders[number] = _order(seed, number, bp, (appflg, progress, created))
    return orders


def _supplier_reference(seed: Seed, country: str, when: date) -> str:
    serial = seed.rng.randint(100, 99999)
    return {"FR": f"FA{when.year}-{serial:05d}", "GB": f"INV{serial:06d}"}.get(country, str(serial))


def _purchase_invoice(seed: Seed, number: str, order: Record) -> Record:
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


def _purchase_invoices(seed: Seed, orders: dict[str, Record]) -> dict[str, Record]:
    invoiced = sorted(
        (o for o in orders.values() if o["INVFLG"] == 3), key=lambda o: o["UPDDATTIM"]
    )
    numbers = _Numbers(41)
    invoices = {}
    for order in invoiced:
        number = numbers.next("PI", order["POHFCY"])
        invoices[number] = _purchase_invoice(seed, number, order)
    return invoices


def _sales_invoice(seed: Seed, number: str, bp: Partner, posted: datetime) -> Record:
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


def _sales_invoices(seed: Seed) -> list[tuple[Record, int, str]]:
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


def _payment(seed: Seed, number: str, item: Record, paid: datetime) -> Record:
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

    def __init__(self, seed: Seed) -> None:
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
    seed = Seed(now)
    orders = _purchase_orders(seed)
    purchases = _purchase_invoices(seed, orders)
    sales = _sales_invoices(seed)
    ledger = _Ledger(seed)
    for invoice, (offset, state) in zip(purchases.values(), PURCHASE_DUE, strict=True):
        ledger.add(invoice, "PISU", offset, state)
    for invoice, offset, state in sales:
        ledger.add(invoice, "SICU", offset, state)
    data: Dataset = {
        "BPSUPPLIER": seed_suppliers(seed),
        "BPCUSTOMER": seed_customers(seed),
        "PORDER": orders,
        "PINVOICE": purchases,
        "SINVOICE": {invoice["NUM"]: invoice for invoice, _, _ in sales},
        "PAYMENTH": ledger.payments,
        "GACCDUDATE": ledger.items,
        "YSMSLOG": {},
    }
    return data
