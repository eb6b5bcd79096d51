"""Reading the audit trail fast: skip raw lines that cannot match, parse only the rest.

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

import json
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from x3twilio.audit import SCHEMA_VERSION, audit_files, iso_ms
from x3twilio.auditfilters import Filters, event_pattern
from x3twilio.errors import StateError

if TYPE_CHECKING:  # multiprocessing loads when used: a short trail is read in this process
    from concurrent.futures import Future

CHUNK = 4 << 20  # bytes read at a time: memory stays constant however long the trail
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


def segments(state_dir: Path, filters: Filters) -> list[Path]:
    """The trail's files, oldest first, whose month the filters do not rule out."""
    plan = _Plan.of(filters)
    return [p for p in audit_files(state_dir) if plan.covers(p.name[:7])]


def scan(paths: list[Path], filters: Filters) -> Iterator[tuple[bytes, dict[str, Any] | None]]:
    """(line, record or None when not parsed here) of each match in `paths`, in file order."""
    if _parallel(paths):
        return _in_parallel(paths, filters)
    return _serial(paths, _Plan.of(filters), filters)


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
