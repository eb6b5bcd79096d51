"""The JSONL audit trail: one record per event, appended whole, readable after any crash."""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from x3twilio.errors import StateError
from x3twilio.model import Event
from x3twilio.state import ensure_dir, fsync_dir

SCHEMA_VERSION = 1
AUDIT_DIR = "audit"
MAX_BYTES = 64 << 20  # a month's file continues in YYYY-MM.1.jsonl, .2, … past this size
_KEEP_NULL = {"matched"}  # `matched: null` says "unknown sender" (the contract)
_SEGMENT = re.compile(r"(\d{4}-\d{2})(?:\.(\d+))?\.jsonl")
_TAIL_WINDOW = 1 << 20


def log_line(record: dict[str, Any]) -> None:
    """One JSON line on stderr per audit record, phone numbers masked (for journald, Loki)."""
    from x3twilio.phones import mask

    shown = {
        k: mask(v) if k in ("to", "from") and isinstance(v, str) else v
        for k, v in record.items()
        if k != "body"
    }
    sys.stderr.write(json.dumps(shown, ensure_ascii=False, default=str) + "\n")


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_ms(moment: datetime) -> str:
    """UTC ISO 8601 with milliseconds and Z, the audit trail's one time format."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def new_run_id(now: datetime) -> str:
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def encode_record(record: dict[str, Any]) -> bytes:
    """One audit line, exactly as the trail stores it (readers rely on this encoding)."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
    return text.encode() + b"\n"


def segment_name(month: str, index: int) -> str:
    return f"{month}.jsonl" if index == 0 else f"{month}.{index}.jsonl"


class AuditLog:
    """Appends records to audit/YYYY-MM[.N].jsonl; each record is one write under a lock.

    A month's file that would pass `max_bytes` is closed for good and the month continues in
    the next segment. The next segment is created while the full one is locked, and a writer
    moves on whenever a later segment exists, so segments never interleave across processes.
    """

    def __init__(
        self,
        state_dir: Path,
        run_id: str,
        clock: Callable[[], datetime] = utc_now,
        max_bytes: int = MAX_BYTES,
        mirror: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.dir = state_dir / AUDIT_DIR
        self.mirror = mirror  # also told every record (JSON log lines on stderr)
        self.run_id = run_id
        self.clock = clock
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._segment: tuple[str, int] = ("", 0)
        self._following = ""  # the next segment's path: once it exists, ours is closed

    def write(self, event: Event, **fields: Any) -> dict[str, Any]:
        now = self.clock()
        record = {"v": SCHEMA_VERSION, "ts": iso_ms(now), "event": event, "run_id": self.run_id}
        record.update((k, v) for k, v in fields.items() if v is not None or k in _KEEP_NULL)
        self._append(f"{now.astimezone(UTC):%Y-%m}", encode_record(record))
        if self.mirror is not None:
            self.mirror(record)
        return record

    def _append(self, month: str, data: bytes) -> None:
        try:
            fd = self._open(month)
            while True:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    moved = self._rotate(fd, month, len(data))
                    if not moved:
                        os.write(fd, data)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                if not moved:
                    return
                fd = self._switch(month, self._segment[1] + 1)
        except OSError as exc:
            raise StateError(
                f"cannot append to the audit trail in {self.dir}: {exc.strerror}"
            ) from None

    def _rotate(self, fd: int, month: str, size: int) -> bool:
        """Under the lock: True when this record belongs in the next segment (now created)."""
        following = self._following
        if os.path.exists(following):  # another writer rotated: this segment is closed
            return True
        _repair_torn_tail(fd)
        used = os.fstat(fd).st_size
        if used == 0 or used + size <= self.max_bytes:
            return False
        os.close(os.open(following, os.O_WRONLY | os.O_CREAT, 0o600))
        fsync_dir(self.dir)
        return True

    def _open(self, month: str) -> int:
        if self._fd is not None and self._segment[0] == month:
            return self._fd
        ensure_dir(self.dir)
        indexes = [
            int(m.group(2) or 0)
            for p in self.dir.glob(f"{month}*.jsonl")
            if (m := _SEGMENT.fullmatch(p.name)) and m.group(1) == month
        ]
        return self._switch(month, max(indexes, default=0))

    def _switch(self, month: str, index: int) -> int:
        self._release()
        fd = os.open(
            self.dir / segment_name(month, index), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600
        )
        self._fd, self._segment = fd, (month, index)
        self._following = str(self.dir / segment_name(month, index + 1))
        return fd

    def _release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def flush(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        self._release()


def _repair_torn_tail(fd: int) -> None:
    """A crash mid-write can leave a last line without its newline: cut it off."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    end = size
    while end > 0:  # look back window by window: a torn line may be longer than one
        start = max(0, end - _TAIL_WINDOW)
        cut = os.pread(fd, end - start, start).rfind(b"\n")
        if cut >= 0:
            os.truncate(fd, start + cut + 1)
            return
        end = start
    os.truncate(fd, 0)


def audit_files(state_dir: Path) -> list[Path]:
    """Every segment of the trail, oldest first: 2026-01.jsonl, 2026-01.1.jsonl, 2026-02.jsonl."""
    keyed = [
        ((m.group(1), int(m.group(2) or 0)), path)
        for path in (state_dir / AUDIT_DIR).glob("*.jsonl")
        if (m := _SEGMENT.fullmatch(path.name))
    ]
    return [path for _, path in sorted(keyed)]


def read_records(state_dir: Path) -> Iterator[dict[str, Any]]:
    """Every audit record in order; a torn last line is skipped, corruption elsewhere raises."""
    for path in audit_files(state_dir):
        with path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.endswith(b"\n"):
                    break  # an unterminated last line: a write that never finished
                try:
                    yield json.loads(line)
                except ValueError:
                    raise StateError(f"{path}:{number}: corrupt audit record") from None
