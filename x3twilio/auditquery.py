"""Query the audit trail: skip raw lines that cannot match, parse only the rest, render them.

The trail is written only by `AuditLog`, so its encoding is known (compact separators, UTF-8,
`v` then `ts` first). A filter `status=failed` can only match a line holding the bytes
`"status":"failed"`: such lines are found with `bytes.find` over chunks of a few MiB, and only
they are parsed and checked exactly. Every line that is parsed and is not a JSON object is
reported with its file and line number; a chunk that does not start and end as the writer's
lines do is parsed line by line. A line a filter skips unread is not checked: a query without
filters (or `read_records`) checks them all. Past PARALLEL_BYTES, worker processes scan byte
ranges of the files and the results come back in order.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

from x3twilio.audit import SCHEMA_VERSION, audit_files, encode_record, iso_ms
from x3twilio.errors import StateError

if TYPE_CHECKING:  # rich and multiprocessing load when used: `audit --format json` needs neither
    from concurrent.futures import Future

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

CHUNK = 4 << 20  # bytes read at a time: memory stays constant however long the trail
WRITE_BATCH = 1 << 16
TABLE_BLOCK = 500  # rows per rich table; later blocks repeat no header
_SHAPE = re.compile(rb'\{"v":\d+,"ts":"')  # how the writer starts every line
_TS_AT = b'{"v":%d,"ts":"' % SCHEMA_VERSION  # the writer puts `ts` right after `v`
_TS_END = len(_TS_AT) + len("2026-01-31T12:00:00.000Z")


def _forms(value: str, key: str = "", start: int = 0, end: int | None = None) -> tuple[bytes, ...]:
    """Bytes `"key":"value"` shows as in a line: as the writer writes it, or \\u-escaped.

    `start` and `end` cut the quoted value, to match a prefix or a suffix of it.
    """
    forms = (json.dumps(value, ensure_ascii=ascii_only)[start:end] for ascii_only in (False, True))
    prefix = f'"{key}":' if key else ""
    return tuple(dict.fromkeys((prefix + form).encode() for form in forms))


@dataclass(frozen=True)
class Filters:
    """What `audit` selects; every given field must match. `until` is exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    rule: str | None = None
    source: str | None = None
    record: str | None = None  # the X3 key: `record`, an inbound `reference`, or `matched`
    phone: str | None = None  # `to` or `from`
    status: str | None = None
    event: str | None = None  # "notification.failed" or "failed"; a family: "inbound", "run.*"
    ids: tuple[str, ...] = ()  # the idempotency key (`id`) or the provider's id
    partner: str | None = None  # a supplier's or customer's code, or CLASS:CODE
    _span: tuple[str, str] = field(init=False, repr=False, compare=False)
    _event: tuple[str, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and moment.utcoffset() is None:
                raise ValueError(f"Filters.{name} must be timezone-aware")
        span = (iso_ms(self.since) if self.since else "", iso_ms(self.until) if self.until else "")
        object.__setattr__(self, "_span", span)  # `ts` strings sort as the times do
        object.__setattr__(self, "_event", event_pattern(self.event or ""))

    def matches(self, rec: dict[str, Any]) -> bool:
        """The exact test, on a parsed record."""
        if self.since or self.until:
            ts, (since, until) = rec.get("ts"), self._span
            if not isinstance(ts, str) or ts < since or (until and ts >= until):
                return False
        return (
            (self.rule is None or rec.get("rule") == self.rule)
            and (self.source is None or rec.get("source") == self.source)
            and (self.status is None or rec.get("status") == self.status)
            and self._event_matches(rec.get("event"))
            and (self.record is None or about(rec, self.record))
            and (self.phone is None or self.phone in (rec.get("to"), rec.get("from")))
            and (not self.ids or rec.get("id") in self.ids or rec.get("provider_id") in self.ids)
            and (self.partner is None or of_partner(rec, self.partner))
        )

    def _event_matches(self, event: Any) -> bool:
        if self.event is None:
            return True
        name, family = self._event
        return event == name or (family and isinstance(event, str) and event.startswith(name))


FAMILIES = ("notification", "inbound", "run")


def event_pattern(event: str) -> tuple[str, bool]:
    """(name, is a family): "inbound" and "run.*" are families, "failed" is notification.failed."""
    name = event.removesuffix("*").removesuffix(".")
    if name in FAMILIES or event.endswith((".", ".*")):
        return name + ".", True
    return (name if "." in name else f"notification.{name}"), False


def about(rec: dict[str, Any], key: str) -> bool:
    """Whether a record concerns the X3 record `key` (sent about it, or a reply about it)."""
    matched = rec.get("matched")
    return (
        key in (rec.get("record"), rec.get("reference"), matched)
        or (isinstance(matched, str) and matched.endswith(":" + key))  # CLASS:KEY
    )


def of_partner(rec: dict[str, Any], code: str) -> bool:
    """Sent to that supplier or customer (`partner`), or a reply logged on it (`matched`)."""
    return any(
        isinstance(value, str) and (value == code or value.endswith(":" + code))
        for value in (rec.get("partner"), rec.get("matched"))
    )


@dataclass(frozen=True)
class _Plan:
    """Filters compiled to byte tests that never reject a line the exact test would keep."""

    filters: Filters
    scan: bytes | None  # every candidate holds these bytes: found with bytes.find
    needles: tuple[tuple[bytes, ...], ...]  # the other tests: one of each group must occur
    since: bytes | None
    until: bytes | None

    @classmethod
    def of(cls, f: Filters) -> _Plan:
        groups: list[tuple[bytes, ...]] = []  # most selective first
        if f.ids:
            groups.append(tuple(form for i in f.ids for form in _forms(i)))
        if f.record is not None:
            groups.append(_forms(f.record, start=1))  # also matches "CLASS:KEY"
        if f.phone is not None:
            groups.append(_forms(f.phone))
        if f.partner is not None:
            groups.append(_forms(f.partner, start=1))  # also matches "CLASS:CODE"
        if f.rule is not None:
            groups.append(_forms(f.rule, "rule"))
        if f.status is not None:
            groups.append(_forms(f.status, "status"))
        if f.event is not None:
            name, family = event_pattern(f.event)
            groups.append(_forms(name, "event", end=-1 if family else None))
        if f.source is not None:
            groups.append(_forms(f.source, "source"))
        scan = next((g[0] for g in groups if len(g) == 1), None)
        return cls(
            filters=f,
            scan=scan,
            needles=tuple(g for g in groups if g != (scan,)),
            since=iso_ms(f.since).encode() if f.since else None,
            until=iso_ms(f.until).encode() if f.until else None,
        )

    def covers(self, month: str) -> bool:
        """Whether a segment of `month` (YYYY-MM; its records' `ts` month) can match."""
        return not (
            (self.since is not None and month.encode() < self.since[:7])
            or (self.until is not None and month.encode() > self.until[:7])
        )

    def may_match(self, line: bytes) -> bool:
        """The cheap test, on the raw line of a well-formed chunk."""
        for group in self.needles:
            if not any(needle in line for needle in group):
                return False
        if (self.since or self.until) and line.startswith(_TS_AT):
            ts = line[len(_TS_AT) : _TS_END]
            if (self.since and ts < self.since) or (self.until and ts >= self.until):
                return False
        return True


def query(state_dir: Path, filters: Filters, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The records that match, oldest segment first, in constant memory."""
    return _select(state_dir, filters, limit, raw=False)


def query_lines(state_dir: Path, filters: Filters, limit: int | None = None) -> Iterator[bytes]:
    """The same records as `query`, as the lines the trail stores (for JSON output)."""
    return _select(state_dir, filters, limit, raw=True)


_T = TypeVar("_T")


def newest(records: Iterable[_T], count: int) -> list[_T]:
    """The last `count` of `records`, newest first, holding only those in memory."""
    return list(reversed(deque(records, maxlen=count)))


def _select(state_dir: Path, filters: Filters, limit: int | None, raw: bool) -> Iterator[Any]:
    plan = _Plan.of(filters)
    left = -1 if limit is None else max(limit, 0)  # -1: no limit
    try:
        paths = [p for p in audit_files(state_dir) if plan.covers(p.name[:7])] if left else []
        found = _in_parallel(paths, filters) if _parallel(paths) else _serial(paths, plan, filters)
        for line, rec in found:
            yield line if raw else rec if rec is not None else json.loads(line)
            left -= 1
            if left == 0:
                return
    except OSError as exc:
        raise StateError(f"cannot read the audit trail in {state_dir}: {exc}") from None


def _serial(
    paths: list[Path], plan: _Plan, filters: Filters
) -> Iterator[tuple[bytes, dict[str, Any]]]:
    exact = _exact(filters)
    for path in paths:
        for offset, data, lo, hi in _chunks(path):
            for start, line in _candidates(data, lo, hi, plan):
                rec = _parse(line)
                if rec is None:
                    _corrupt(path, offset + start)
                if exact(rec):
                    yield line, rec


def _corrupt(path: Path, offset: int) -> NoReturn:
    raise StateError(f"{path}:{_line_number(path, offset)}: corrupt audit record")


def _exact(f: Filters) -> Callable[[dict[str, Any]], bool]:
    """`f.matches`, cut down to the filters given: it runs once per candidate line."""
    checks: list[Callable[[dict[str, Any]], bool]] = [
        partial(_equals, key, getattr(f, key))
        for key in ("status", "rule", "source")
        if getattr(f, key) is not None
    ]
    if f.since or f.until or f.event or f.record or f.phone or f.ids or f.partner:
        checks.append(f.matches)
    if len(checks) == 1:
        return checks[0]
    return lambda rec: all(check(rec) for check in checks)


def _equals(key: str, value: str, rec: dict[str, Any]) -> bool:
    return bool(rec.get(key) == value)


def _candidates(data: bytes, lo: int, hi: int, plan: _Plan) -> list[tuple[int, bytes]]:
    """(offset, line) of the lines in data[lo:hi] that may match."""
    if not (_SHAPE.match(data, lo) and data.endswith(b"}\n", lo, hi)):
        return _lines(data, lo, hi, None)  # not the writer's shape: parse every line
    if plan.scan is None:
        return _lines(data, lo, hi, plan)
    return _needle_lines(data, lo, hi, plan)


def _chunks(path: Path) -> Iterator[tuple[int, bytes, int, int]]:
    """(offset of data, data, lo, hi): whole lines in data[lo:hi], a few MiB at a time.

    Blocks are searched where they lie (copying them would cost more than the search); a
    line cut by a block's end comes as a small chunk of its own. A torn last line is left out.
    """
    offset, carry = 0, b""
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            lo = 0
            if carry:  # the line the previous block ended in
                lo = block.find(b"\n") + 1
                if not lo:
                    carry += block
                    offset += len(block)
                    continue
                line = carry + block[:lo]
                yield offset - len(carry), line, 0, len(line)
            hi = block.rfind(b"\n") + 1
            if hi > lo:
                yield offset, block, lo, hi
            carry = block[max(hi, lo) :]
            offset += len(block)
    # what is left in `carry` never got its newline: a write that never finished


def _lines(data: bytes, lo: int, hi: int, plan: _Plan | None) -> list[tuple[int, bytes]]:
    """(offset, line) of every line in data[lo:hi], or of those `plan` may match."""
    found, start = [], lo
    for line in data[lo:hi].split(b"\n")[:-1]:
        if plan is None or plan.may_match(line):
            found.append((start, line + b"\n"))
        start += len(line) + 1
    return found


def _needle_lines(data: bytes, lo: int, hi: int, plan: _Plan) -> list[tuple[int, bytes]]:
    """(offset, line) of the lines in data[lo:hi] holding `plan.scan` that `plan` may match."""
    find, rfind, may_match, needle = data.find, data.rfind, plan.may_match, plan.scan or b""
    found = []
    at = find(needle, lo, hi)
    while at >= 0:
        start = rfind(b"\n", lo, at) + 1 or lo
        end = find(b"\n", at, hi) + 1
        line = data[start:end]
        if may_match(line):
            found.append((start, line))
        at = find(needle, end, hi)
    return found


_scan_once = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # C, no sniffing


def _parse(line: bytes) -> dict[str, Any] | None:
    """The record on one line (newline included), or None when it is not a JSON object."""
    try:
        text = line.decode()
        value, end = _scan_once(text, 0)
        if end != len(text) - 1:
            raise ValueError("trailing data")
    except (ValueError, StopIteration):
        try:  # not quite the writer's shape (spaces, CRLF): what read_records accepts
            value = json.loads(line)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _line_number(path: Path, offset: int) -> int:
    """The number of the line starting at byte `offset` (only for error messages)."""
    number, done = 1, 0
    with path.open("rb") as handle:
        while done < offset and (block := handle.read(min(CHUNK, offset - done))):
            number += block.count(b"\n")
            done += len(block)
    return number


# -- a long trail is read by several processes -----------------------------------------------

PARALLEL_BYTES = 32 << 20  # below this, starting processes costs more than it saves
RANGE = 8 << 20  # bytes of a file one worker reads at a time


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _parallel(paths: list[Path]) -> bool:
    """Worth it, and safe: forking a process that runs threads could copy a held lock."""
    if _cpus() < 2 or threading.active_count() > 1:
        return False
    return sum(path.stat().st_size for path in paths) >= PARALLEL_BYTES


def _in_parallel(paths: list[Path], filters: Filters) -> Iterator[tuple[bytes, None]]:
    """The matching lines, in order, from byte ranges scanned by worker processes."""
    jobs = [
        (path, start, min(start + RANGE, size))
        for path in paths
        for size in [path.stat().st_size]
        for start in range(0, size, RANGE)
    ]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    workers = min(_cpus(), 4)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    try:
        pending: deque[Future[list[bytes]]] = deque()
        for job in jobs:
            pending.append(pool.submit(_scan_range, *job, filters))
            if len(pending) > 2 * workers:  # bounded: memory stays constant
                yield from ((line, None) for line in pending.popleft().result())
        while pending:
            yield from ((line, None) for line in pending.popleft().result())
    finally:  # waits for at most the ranges in flight; leaves no thread behind
        pool.shutdown(wait=True, cancel_futures=True)


def _scan_range(path: Path, start: int, end: int, filters: Filters) -> list[bytes]:
    """In a worker: the matching lines that start within path[start:end]."""
    plan, exact = _Plan.of(filters), _exact(filters)
    found = []
    for offset, data, lo, hi in _range(path, start, end):
        for at, line in _candidates(data, lo, hi, plan):
            rec = _parse(line)
            if rec is None:
                _corrupt(path, offset + at)
            if exact(rec):
                found.append(line)
    return found


def _range(path: Path, start: int, end: int) -> Iterator[tuple[int, bytes, int, int]]:
    """Like `_chunks`, for the lines that start within path[start:end]."""
    base = max(start - 1, 0)  # from the byte before: is `start` a line's start?
    with path.open("rb") as handle:
        handle.seek(base)
        data = handle.read(end - base)
        lo = data.find(b"\n") + 1 if start else 0
        if start and not lo:
            return  # one line covers the range: it started in an earlier one
        hi = data.rfind(b"\n") + 1
        if hi > lo:
            yield base, data, lo, hi
        tail = max(hi, lo)
        if tail < len(data):  # a line starts here and runs past `end`: finish it
            rest = b""
            while (more := handle.read(1 << 16)) and b"\n" not in more:
                rest += more
            if cut := more.find(b"\n") + 1:  # else a torn last line
                line = data[tail:] + rest + more[:cut]
                yield base + tail, line, 0, len(line)


def story(state_dir: Path, record_key: str) -> list[dict[str, Any]]:
    """Everything about one X3 record, in time order: decided, attempts, sent, delivery, replies."""
    found = list(query(state_dir, Filters(record=record_key)))
    return sorted(found, key=lambda rec: str(rec.get("ts", "")))  # stable: file order on ties


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
