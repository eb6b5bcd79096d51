"""The simulated X3's store: one table per class, and the Python API over it.

Records are kept as stored (columns, not served names); an order and its lines (also a class)
are kept consistent on every write, and writes are stamped (UPDDATTIM, CREUSR...) as X3 does.
"""

from __future__ import annotations

import operator
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from .sdata import Predicate, comparable
from .x3_codec import STORE, Codec, absorb
from .x3_errors import NotFound, SimError
from .x3data import STAMPS, ClassDef, Dataset, Record, Rows, key_of, letter, stamp


@dataclass(frozen=True)
class KeyBound:
    """`key=gt.X`: a comparison on the primary key (a prefix of it for composite keys)."""

    op: str
    probe: tuple[Any, ...]

    def admits(self, typed: tuple[Any, ...]) -> bool:
        return bool(_KEY_OPS[self.op](typed[: len(self.probe)], self.probe))

    def span(self, typed: list[tuple[Any, ...]]) -> range:
        """Positions in the sorted key index that satisfy the bound."""
        size = len(self.probe)
        find = bisect_right if self.op in ("gt", "le") else bisect_left
        edge = find(typed, self.probe, key=lambda t: t[:size])
        return range(edge, len(typed)) if self.op in ("gt", "ge") else range(edge)


_KEY_OPS = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}


class Table:
    """One class's records by key, plus a sorted key index for key paging."""

    def __init__(self, cls: ClassDef) -> None:
        self.cls = cls
        self.rows: dict[str, Record] = {}
        self.letters = {name: letter(kind) for name, kind in cls.shape.scalars().items()}
        self.kinds = [self.letters[name] for name in cls.keys]
        self.booleans = [name for name, code in self.letters.items() if code == "B"]
        # Shared by bulk-loaded rows: stored values are never mutated in place.
        self.template = cls.defaults()
        self.sequence = 0  # last auto-number handed out
        self._typed: list[tuple[Any, ...]] | None = None
        self._keys: list[str] = []

    def _by_key(self, pair: tuple[str, Record]) -> tuple[Any, ...]:
        return self.typed(pair[1])

    def typed(self, record: Mapping[str, Any]) -> tuple[Any, ...]:
        pairs = zip(self.cls.keys, self.kinds, strict=True)
        return tuple(comparable(record.get(name), kind) for name, kind in pairs)

    def parse_key(self, text: str) -> tuple[Any, ...]:
        parts = text.split("~", len(self.kinds) - 1)
        try:
            return tuple(comparable(p, k) for p, k in zip(parts, self.kinds, strict=False))
        except ValueError:
            raise SimError(400, f"Invalid key value {text!r}") from None

    def put(self, key: str, record: Record) -> None:
        """Store a record; copy-on-write, so readers may keep the old one."""
        new = key not in self.rows
        self.rows[key] = record
        if new and self._typed is not None:
            typed = self.typed(record)
            position = bisect_right(self._typed, typed)
            self._typed.insert(position, typed)
            self._keys.insert(position, key)

    def delete(self, key: str) -> None:
        record = self.rows.pop(key)
        if self._typed is not None:
            position = bisect_left(self._typed, self.typed(record))
            while self._keys[position] != key:
                position += 1
            del self._typed[position], self._keys[position]

    def invalidate(self) -> None:
        self._typed = None

    def index(self) -> tuple[list[tuple[Any, ...]], list[str]]:
        if self._typed is None:
            pairs = sorted((self.typed(r), k) for k, r in self.rows.items())
            self._typed = [typed for typed, _ in pairs]
            self._keys = [key for _, key in pairs]
        return self._typed, self._keys

    def select(
        self, where: Predicate, order: list[tuple[str, bool]], bound: KeyBound | None, limit: int
    ) -> list[tuple[str, Record]]:
        """Filter, sort, apply the key bound, and take `limit` rows (as X3 pages)."""
        if _is_key_order(order, self.cls.keys):
            typed, keys = self.index()
            span = bound.span(typed) if bound else range(len(keys))
            hits = ((keys[i], self.rows[keys[i]]) for i in span)
            return list(islice(((k, r) for k, r in hits if where(r)), limit))
        rows = sorted(((k, r) for k, r in self.rows.items() if where(r)), key=self._by_key)
        for name, descending in reversed(order):
            kind = self.letters[name]
            rows.sort(key=lambda kr: comparable(kr[1].get(name), kind), reverse=descending)
        kept = (kr for kr in rows if bound is None or bound.admits(self.typed(kr[1])))
        return list(islice(kept, limit))


def _is_key_order(order: list[tuple[str, bool]], keys: tuple[str, ...]) -> bool:
    """True when `order` sorts like the primary key, so the key index can serve it."""
    for position, (name, descending) in enumerate(order):
        if position == len(keys):
            return True  # the key is unique: what follows it never matters
        if descending or name != keys[position]:
            return False
    return True


def copy_record(record: Mapping[str, Any]) -> Record:
    """Copy a record (child rows too) so callers cannot change the store."""
    return {name: _copy_value(value) for name, value in record.items()}


def _copy_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy_value(item) for item in value]
    return copy_record(value) if isinstance(value, dict) else value


def _link(shape: Rows, record: Record) -> Record:
    """Child rows take the header fields they repeat (the partner's code, the order's supplier)."""
    for name, rows in shape.lists().items():
        values = {column: record.get(source) for column, source in rows.inherit.items()}
        current = record.get(name) or []
        if any(row.get(c) != v for row in current for c, v in values.items()):
            record = {**record, name: [{**row, **values} for row in current]}
    return record


def _same_line(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return all(old.get(k) == new.get(k) for k in old.keys() | new.keys() if k not in STAMPS)


class X3Store:
    """Every class's table, thread-safe; the Python API reads and writes the stored shape."""

    def __init__(
        self, classes: Mapping[str, ClassDef], user: str, clock: Callable[[], datetime]
    ) -> None:
        self.user = user
        self._clock = clock
        self._lock = threading.RLock()
        self._tables = {name: Table(cls) for name, cls in classes.items()}

    def _load(self, dataset: Dataset) -> None:
        for name, rows in dataset.items():
            table = self._table(name)
            if table.cls.header:
                raise ValueError(f"{name} rows come with their {table.cls.header} records")
            for key, record in rows.items():
                self._place(table, key, {**table.template, **copy_record(record)})

    # ------------------------------------------------------------ Python API (stored shape)

    def now(self) -> datetime:
        """The simulator's clock, in UTC, truncated to the second (X3's granularity)."""
        return self._clock().astimezone(UTC).replace(microsecond=0)

    def get(self, cls: str, key: str) -> Record:
        with self._lock:
            return copy_record(self._record(cls, key))

    def records(self, cls: str) -> list[Record]:
        with self._lock:
            table = self._table(cls)
            return [copy_record(table.rows[key]) for key in table.index()[1]]

    def update(self, cls: str, key: str, **changes: Any) -> Record:
        """Change a record as a PUT would; an explicit UPDDATTIM/UPDUSR wins over the stamp."""
        return copy_record(self._update(cls, key, changes, keep_audit=True))

    def create(self, cls: str, record: Mapping[str, Any]) -> Record:
        """Create a record as a POST would (stamped, auto-numbered when the class has one)."""
        return copy_record(self._insert(cls, record)[1])

    def add_records(
        self, cls: str, records: Iterable[Mapping[str, Any]], stamp: datetime | str | None = None
    ) -> None:
        """Bulk insert raw records, unchecked but for field names (for volume tests).

        Yes/No values may be given as stored (bools) or as local menu 1 (1 no, 2 yes).
        """
        when = _stamp_text(stamp) if stamp is not None else ""
        with self._lock:
            table = self._table(cls)
            if table.cls.header:
                raise SimError(400, f"Class {cls} is written through {table.cls.header}")
            allowed = set(table.cls.fields)
            try:
                for record in records:
                    unknown = record.keys() - allowed
                    if unknown:
                        raise SimError(400, f"Property {min(unknown)} not found in class {cls}")
                    self._bulk_one(table, record, when)
            finally:  # indexes are rebuilt by the next query, once for the whole batch
                table.invalidate()
                if table.cls.lines:
                    self._table(table.cls.lines).invalidate()

    def _bulk_one(self, table: Table, record: Mapping[str, Any], when: str) -> None:
        row = {**table.template, **copy_record(record)}
        for name in table.booleans:
            if not isinstance(row[name], bool):
                row[name] = row[name] == 2
        for name in STAMPS:
            if name in row and (when or not row[name]):
                row[name] = when or stamp(self.now())
        self._place(table, self._assign_key(table, row), row)

    def _place(self, table: Table, key: str, row: Record) -> None:
        """Put a raw row in its table (unindexed), and its lines in theirs."""
        if key in table.rows:
            raise SimError(409, f"Record {key} already exists in class {table.cls.name}")
        row = _link(table.cls.shape, row)
        if table.cls.lines:
            row = self._place_lines(self._table(table.cls.lines), row)
        table.rows[key] = row

    def _place_lines(self, lines: Table, row: Record) -> Record:
        """An order's lines, stamped like it where they are not, into the lines class."""
        name = lines.cls.name
        placed = [{**line, **{s: line.get(s) or row[s] for s in STAMPS}} for line in row[name]]
        for line in placed:
            key = key_of(lines.cls, line)
            if key in lines.rows:
                raise SimError(409, f"Record {key} already exists in class {name}")
            lines.rows[key] = line
        return {**row, name: placed}

    # ------------------------------------------------------------ data operations

    def _table(self, cls: str) -> Table:
        table = self._tables.get(cls)
        if table is None:
            raise SimError(404, f"Class {cls} not found")
        return table

    def _record(self, cls: str, key: str) -> Record:
        record = self._table(cls).rows.get(key)
        if record is None:
            raise NotFound(cls, key)
        return record

    def _assign_key(self, table: Table, record: Record) -> str:
        missing = [name for name in table.cls.keys if record.get(name) in ("", None)]
        if missing and not table.cls.counter:
            raise SimError(400, f"Mandatory property {missing[0]} is empty")
        while missing:  # only single-key classes are auto-numbered
            table.sequence += 1
            record[missing[0]] = f"{table.cls.counter}{table.sequence:07d}"
            missing = [] if key_of(table.cls, record) not in table.rows else missing
        return key_of(table.cls, record)

    def _insert(
        self, cls: str, body: Mapping[str, Any], view: Rows | None = None, codec: Codec = STORE
    ) -> tuple[str, Record]:
        with self._lock:
            table = self._table(cls)
            if table.cls.header:
                raise SimError(400, f"Lines of class {cls} are created in their {table.cls.header}")
            record = absorb(view or table.cls.shape, body, table.cls.defaults(), cls, codec)
            key = self._assign_key(table, record)
            if key in table.rows:
                raise SimError(409, f"Record {key} already exists in class {cls}")
            now = stamp(self.now())
            audit = {"CREDATTIM": now, "UPDDATTIM": now, "CREUSR": self.user, "UPDUSR": self.user}
            record.update({k: v for k, v in audit.items() if k in table.cls.fields})
            return key, self._write(table, key, record, None, now)

    def _update(
        self,
        cls: str,
        key: str,
        changes: Mapping[str, Any],
        view: Rows | None = None,
        codec: Codec = STORE,
        keep_audit: bool = False,
    ) -> Record:
        with self._lock:
            table = self._table(cls)
            old = self._record(cls, key)
            record = absorb(view or table.cls.shape, changes, old, cls, codec)
            fixed = (*table.cls.keys, *table.cls.shape.inherit)  # a line's are its order's
            changed = [k for k in fixed if record.get(k) != old.get(k)]
            if changed:
                raise SimError(400, f"Property {changed[0]} cannot be modified")
            now = stamp(self.now())
            for name, value in {"UPDDATTIM": now, "UPDUSR": self.user}.items():
                if name in table.cls.fields and not (keep_audit and name in changes):
                    record[name] = value
            return self._write(table, key, record, old, now)

    def _write(
        self, table: Table, key: str, record: Record, old: Record | None, now: str
    ) -> Record:
        """Store a record; keep an order and its lines (also a class) consistent."""
        record = _link(table.cls.shape, record)
        if table.cls.lines:
            record = self._stamp_lines(table.cls.lines, record, old, now)
        table.put(key, record)
        if table.cls.header:
            self._into_header(table.cls, record)
        return record

    def _stamp_lines(self, name: str, record: Record, old: Record | None, now: str) -> Record:
        """Lines changed by a write of their order are stamped; the lines class follows."""
        lines_table = self._table(name)
        cls = lines_table.cls
        before = {key_of(cls, line): line for line in (old or {}).get(name, [])}
        lines: dict[str, Record] = {}
        for line in record.get(name) or []:
            key = key_of(cls, line)
            if key in lines:
                raise SimError(400, f"Line {key} appears twice in {name}")
            previous = before.get(key)
            if previous is not None and _same_line(previous, line):
                lines[key] = previous
            else:
                created = previous["CREDATTIM"] if previous else now
                lines[key] = {**line, "CREDATTIM": created, "UPDDATTIM": now}
        for key in before.keys() - lines.keys():
            lines_table.delete(key)
        for key, line in lines.items():
            lines_table.put(key, line)
        return {**record, name: list(lines.values())}

    def _into_header(self, cls: ClassDef, line: Record) -> None:
        """A line written through its own class replaces itself in its order."""
        header = self._table(cls.header)
        head_key = key_of(header.cls, {h: line[c] for c, h in cls.shape.inherit.items()})
        order = header.rows[head_key]
        key = key_of(cls, line)
        lines = [line if key_of(cls, other) == key else other for other in order[cls.name]]
        header.put(head_key, {**order, cls.name: lines})


def _stamp_text(value: datetime | str) -> str:
    return stamp(value) if isinstance(value, datetime) else value
