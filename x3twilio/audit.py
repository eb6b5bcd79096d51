"""The JSONL audit trail: one record per event, appended whole, readable after any crash."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from x3twilio.errors import StateError
from x3twilio.state import ensure_dir

SCHEMA_VERSION = 1
AUDIT_DIR = "audit"
_KEEP_NULL = {"matched"}  # `matched: null` says "unknown sender" (the contract)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_ms(moment: datetime) -> str:
    """UTC ISO 8601 with milliseconds and Z, the audit trail's one time format."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def new_run_id(now: datetime) -> str:
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class AuditLog:
    """Appends records to audit/YYYY-MM.jsonl; each record is one write under a lock."""

    def __init__(self, state_dir: Path, run_id: str, clock: Callable[[], datetime] = utc_now):
        self.dir = state_dir / AUDIT_DIR
        self.run_id = run_id
        self.clock = clock
        self._fds: dict[str, int] = {}

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        now = self.clock()
        record = {"v": SCHEMA_VERSION, "ts": iso_ms(now), "event": event, "run_id": self.run_id}
        record.update((k, v) for k, v in fields.items() if v is not None or k in _KEEP_NULL)
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
        self._append(f"{now:%Y-%m}.jsonl", (line + "\n").encode())
        return record

    def _append(self, name: str, data: bytes) -> None:
        try:
            fd = self._fds.get(name)
            if fd is None:
                ensure_dir(self.dir)
                fd = os.open(self.dir / name, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
                self._fds[name] = fd
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                _repair_torn_tail(fd)
                os.write(fd, data)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as exc:
            raise StateError(
                f"cannot append to the audit trail in {self.dir}: {exc.strerror}"
            ) from None

    def flush(self) -> None:
        for fd in self._fds.values():
            os.fsync(fd)

    def close(self) -> None:
        self.flush()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _repair_torn_tail(fd: int) -> None:
    """A crash mid-write can leave a last line without its newline: cut it off."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    window = min(size, 1 << 20)
    tail = os.pread(fd, window, size - window)
    cut = tail.rfind(b"\n")
    os.truncate(fd, size - window + cut + 1 if cut >= 0 else 0)


def audit_files(state_dir: Path) -> list[Path]:
    return sorted((state_dir / AUDIT_DIR).glob("*.jsonl"))


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
