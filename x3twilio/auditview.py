"""What `audit` shows: the per-rule summary, and the table, CSV, JSON and story renderers.

Everything from X3 or a reply is untrusted: table cells are plain text with terminal
controls made visible, CSV cells never start a spreadsheet formula.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from x3twilio.audit import SCHEMA_VERSION, encode_record

if TYPE_CHECKING:  # rich loads when used: `audit --format json` does not need it
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

WRITE_BATCH = 1 << 16
TABLE_BLOCK = 500  # rows per rich table; later blocks repeat no header


# -- summary ----------------------------------------------------------------------------------

OUTCOMES = ("queued", "skipped", "sent", "failed")
DELIVERY = ("delivered", "undelivered", "failed")
RECEIPTLESS = frozenset({"email"})  # no delivery receipt can arrive: shown as "—"


@dataclass
class _Latest:
    """One notification or reply as the trail last saw it."""

    ts: str = ""
    status: str = ""
    delivery_ts: str = ""
    delivery: str = ""
    channel: str = ""


@dataclass
class Summary:
    """Per rule, each notification counted once by its latest state; replies likewise."""

    outcomes: dict[str, Counter[str]] = field(default_factory=dict)  # latest notification.*
    delivery: dict[str, Counter[str]] = field(default_factory=dict)  # latest delivery status
    inbound: Counter[str] = field(default_factory=Counter)
    receiptless: set[str] = field(default_factory=set)  # rules whose channel has no receipts

    def rate(self, rule: str) -> float | None:
        """Delivered / sent for one rule; None when nothing was sent or no receipt can come."""
        sent = self.outcomes.get(rule, Counter())["sent"]
        if not sent or rule in self.receiptless:
            return None
        return self.delivery.get(rule, Counter())["delivered"] / sent

    @property
    def rules(self) -> list[str]:
        return sorted(self.outcomes.keys() | self.delivery.keys())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form, versioned like the trail."""
        return {
            "v": SCHEMA_VERSION,
            "rules": {
                rule: {
                    "counts": dict(self.outcomes.get(rule, {})),
                    "delivery": None
                    if rule in self.receiptless
                    else dict(self.delivery.get(rule, {})),
                    "delivery_rate": self.rate(rule),
                }
                for rule in self.rules
            },
            "inbound": dict(self.inbound),
        }


def summary(records: Iterable[dict[str, Any]]) -> Summary:
    """Count each notification and each reply once, by the latest state the trail shows."""
    notes: dict[tuple[str, str], _Latest] = {}
    replies: dict[str, _Latest] = {}
    for rec in records:
        event, status = str(rec.get("event", "")), str(rec.get("status", ""))
        ts, ident = str(rec.get("ts", "")), str(rec.get("id") or rec.get("record") or "")
        if event.startswith("inbound."):
            latest = replies.setdefault(ident or f"#{len(replies)}", _Latest())
            if ts >= latest.ts:
                latest.ts, latest.status = ts, status
        elif event.startswith("notification."):
            latest = notes.setdefault((str(rec.get("rule", "")), ident), _Latest())
            latest.channel = latest.channel or str(rec.get("channel", ""))
            if event == "notification.status":
                if ts >= latest.delivery_ts:
                    latest.delivery_ts, latest.delivery = ts, status
            elif ts >= latest.ts:
                latest.ts, latest.status = ts, status
    result = Summary()
    for (rule, _), latest in notes.items():
        if latest.status:
            result.outcomes.setdefault(rule, Counter())[latest.status] += 1
        if latest.delivery:
            result.delivery.setdefault(rule, Counter())[latest.delivery] += 1
        if latest.channel in RECEIPTLESS:
            result.receiptless.add(rule)
    result.inbound.update(latest.status for latest in replies.values())
    return result


# -- rendering --------------------------------------------------------------------------------

CSV_COLUMNS = (
    "ts", "event", "run_id", "id", "rule", "source", "record", "partner", "channel", "to", "from",
    "status", "attempt", "provider_id", "reason", "deferred_until", "error_code", "error_message",
    "error_permanent", "reference", "matched", "body",
)  # fmt: skip


def render_json(records: Iterable[dict[str, Any] | bytes], out: IO[bytes] | IO[str]) -> None:
    """One compact JSON object per line, exactly as the trail stores it.

    Takes records, or the stored lines themselves (`query_lines`), which is faster.
    """
    batch: list[bytes] = []
    size = 0
    for rec in records:
        raw = rec if isinstance(rec, bytes) else encode_record(rec)
        batch.append(raw)
        size += len(raw)
        if size >= WRITE_BATCH:  # few large writes, even to an unbuffered stdout
            _write(out, b"".join(batch))
            batch, size = [], 0
    _write(out, b"".join(batch))


def _write(out: IO[bytes] | IO[str], data: bytes) -> None:
    if isinstance(out, io.TextIOBase):
        out.write(data.decode())
    else:
        out.write(data)  # type: ignore[arg-type]


# Spreadsheet-safe CSV (OWASP's "CSV injection" advice). A reply, a reference or an X3
# value is untrusted, and a spreadsheet runs a cell that starts with one of FORMULA_START as
# a formula (=HYPERLINK(...), +cmd|..., @SUM(...)): such a cell gets a leading ' , which
# spreadsheets take as "this is text". A cell that is only a number is left as it is: it
# cannot run anything, and so an E.164 number such as +33612345678 (or an error code -1)
# stays byte for byte what the trail holds, for scripts and for --to. Every cell is quoted,
# so importers told to keep quoted fields as text (LibreOffice's "Format quoted field as
# text", Excel's import with " as text qualifier) show +33612345678, not 33612345678.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def render_csv(records: Iterable[dict[str, Any]], out: IO[str]) -> None:
    """A header, then one row per record in CSV_COLUMNS (absent fields are empty)."""
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(CSV_COLUMNS)
    for rec in records:
        error = rec.get("error")
        parts = error.items() if isinstance(error, dict) else ()
        flat = {**rec, **{f"error_{k}": v for k, v in parts}}
        writer.writerow(csv_cell(flat.get(column)) for column in CSV_COLUMNS)


def csv_cell(value: Any) -> str:
    """One CSV cell that no spreadsheet runs as a formula (see FORMULA_START)."""
    text = _cell(value)
    return "'" + text if text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text) else text


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def detail(rec: dict[str, Any]) -> str:
    """The few words a table row needs beyond its columns."""
    parts = [str(rec[key]) for key in ("reason", "provider_id", "command") if rec.get(key)]
    if rec.get("deferred_until"):
        parts.append(f"deferred until {rec['deferred_until']}")
    error = rec.get("error")
    if isinstance(error, dict):
        parts.append(_error_text(error, expired=rec.get("reason") == "expired"))
    if rec.get("logged_on"):
        parts.append("logged on " + ", ".join(map(str, rec["logged_on"])))
    elif "matched" in rec:
        parts.append(f"logged on {rec['matched']}" if rec["matched"] else "unknown sender")
    if rec.get("reference"):
        parts.append(f"re {rec['reference']}")
    said = rec.get("body") or rec.get("transcription")
    if said and str(rec.get("event", "")).startswith("inbound."):
        parts.append(json.dumps(said, ensure_ascii=False))
    if isinstance(rec.get("counts"), dict):
        parts.append(" ".join(f"{k}={v}" for k, v in rec["counts"].items()))
    return "; ".join(parts)


def _error_text(error: dict[str, Any], expired: bool) -> str:
    """`error 21211: Invalid 'To' (permanent)`; an expiry is its message alone."""
    if expired:
        return str(error.get("message"))
    code = error.get("code")
    kind = "permanent" if error.get("permanent") else "transient"
    return f"error{'' if code is None else f' {code}'}: {error.get('message')} ({kind})"


def _party(rec: dict[str, Any]) -> str:
    inbound = str(rec.get("event", "")).startswith("inbound.")
    return str(rec.get("from" if inbound else "to") or "")


def _blocks(records: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    block: list[dict[str, Any]] = []
    for rec in records:
        block.append(rec)
        if len(block) == TABLE_BLOCK:
            yield block
            block = []
    if block:
        yield block


def _table(**options: Any) -> Table:
    from rich import box
    from rich.table import Table

    return Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, **options)


# What a terminal would obey rather than show: C0 and C1 controls but tab and newline, DEL,
# and the bidirectional overrides that make text read other than it is stored.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def texts(*cells: str) -> list[Text]:
    """Cells as plain text for rich: X3 data and replies may hold [brackets] that are not
    markup, and escape sequences a terminal must not run; those show as \\x1b, \\u202e."""
    from rich.text import Text

    return [Text(printable(cell)) for cell in cells]


def printable(text: str) -> str:
    """`text` with what a terminal would obey (see _CONTROLS) shown as \\x1b, \\u202e."""
    return _CONTROLS.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


TABLE_COLUMNS = ("ts", "event", "rule", "record", "to/from", "status", "detail")
NO_WRAP = {"ts", "event", "to/from", "status"}


def _when(rec: dict[str, Any]) -> str:
    ts = _cell(rec.get("ts"))  # to the second, for people; json and csv keep milliseconds
    return f"{ts[:10]} {ts[11:19]}" if len(ts) == 24 and ts[10] == "T" else ts


def _row(rec: dict[str, Any]) -> tuple[str, ...]:
    event = _cell(rec.get("event")).removeprefix("notification.")
    cells = (_cell(rec.get(key)) for key in ("rule", "record"))
    return (_when(rec), event, *cells, _party(rec), _cell(rec.get("status")), detail(rec))


def render_table(records: Iterable[dict[str, Any]], console: Console) -> None:
    """A rich table, printed in blocks so a long trail never sits in memory."""
    shown = False
    for block in _blocks(records):
        table = _table(show_header=not shown)
        for name in TABLE_COLUMNS:
            table.add_column(name, no_wrap=name in NO_WRAP, overflow="fold")
        for rec in block:
            table.add_row(*texts(*_row(rec)))
        console.print(table)
        shown = True
    if not shown:
        console.print("no matching audit records")


def render_summary(result: Summary, console: Console) -> None:
    """Per rule: notifications by latest state, delivery statuses and rate; then replies."""
    extra = sorted({s for c in result.outcomes.values() for s in c} - set(OUTCOMES))
    table = _table()
    table.add_column("rule", no_wrap=True)
    for name in (*OUTCOMES, *extra, "delivered", "undelivered", "not delivered", "delivery rate"):
        table.add_column(name, justify="right", overflow="fold")
    for rule in result.rules:
        done, delivery = result.outcomes.get(rule, Counter()), result.delivery.get(rule, Counter())
        rate = result.rate(rule)
        receipts = (
            ["—"] * (len(DELIVERY) + 1)
            if rule in result.receiptless
            else [*(str(delivery[s]) for s in DELIVERY), "-" if rate is None else f"{rate:.1%}"]
        )
        table.add_row(*texts(rule or "-"), *(str(done[s]) for s in (*OUTCOMES, *extra)), *receipts)
    if result.rules:
        console.print(table)
    else:
        console.print("no notifications in the audit trail")
    if result.inbound:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(result.inbound.items()))
        console.print(*texts(f"replies: {counts}"))


_STEPS = {
    "notification.queued": "decided: send",
    "notification.skipped": "decided: skip",
    "notification.sent": "sent",
    "notification.status": "delivery",
    "inbound.logged": "reply logged",
    "inbound.received": "reply (not logged)",
    "inbound.failed": "reply failed",
}


def _step(rec: dict[str, Any]) -> str:
    event = str(rec.get("event", ""))
    if event == "notification.failed":
        return f"attempt {rec.get('attempt', '?')} failed"
    return _STEPS.get(event, event)


def render_story(records: Sequence[dict[str, Any]], console: Console, key: str = "") -> None:
    """One X3 record's timeline: decided → attempts → sent → delivered → replies."""
    if not records:
        console.print(*texts(f"no audit records about {key}" if key else "no audit records"))
        return
    table = _table(title=texts(f"{key}: {len(records)} events")[0] if key else None)
    table.title_justify = "left"
    for name in ("ts", "step", "rule", "channel", "to/from", "status", "detail"):
        table.add_column(name, no_wrap=name in NO_WRAP, overflow="fold")
    for rec in records:
        cells = (_when(rec), _step(rec), _cell(rec.get("rule")), _cell(rec.get("channel")))
        table.add_row(*texts(*cells, _party(rec), _cell(rec.get("status")), detail(rec)))
    console.print(table)
