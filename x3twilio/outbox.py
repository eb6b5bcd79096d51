"""The outbox: every decided notification, stored durably before anything is sent.

SQLite (stdlib) gives atomic batches that survive SIGKILL and O(1) look-ups of an
idempotency key, whatever the length of the history.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from x3twilio.errors import StateError
from x3twilio.state import ensure_dir

FILENAME = "outbox.sqlite3"

# pending: to send · sending: a request may be in flight (reconcile before resending)
# sent: Twilio accepted it · failed: permanent, for a person · skipped: never to send
_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY,
    rule TEXT NOT NULL, source TEXT NOT NULL, record TEXT NOT NULL,
    channel TEXT NOT NULL, recipient TEXT NOT NULL, body TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt TEXT NOT NULL DEFAULT '',
    provider_id TEXT, error_code INTEGER, error_message TEXT,
    in_flight_since TEXT,
    created TEXT NOT NULL, updated TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_todo ON notifications (status, next_attempt);
CREATE INDEX IF NOT EXISTS notifications_provider ON notifications (provider_id);
CREATE TABLE IF NOT EXISTS seen (
    source TEXT NOT NULL, record TEXT NOT NULL, stamp TEXT NOT NULL,
    PRIMARY KEY (source, record, stamp)
) WITHOUT ROWID;
"""


def notification_id(*parts: str) -> str:
    """A deterministic idempotency key: the same decision always gets the same id."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"n-{digest[:24]}"


@dataclass(frozen=True)
class Notification:
    id: str
    rule: str
    source: str
    record: str
    channel: str
    to: str
    body: str
    status: str = "pending"
    reason: str | None = None  # why it was skipped
    attempts: int = 0
    provider_id: str | None = None
    in_flight_since: str | None = None  # an attempt may have reached the provider


class Outbox:
    def __init__(self, state_dir: Path, readonly: bool = False) -> None:
        """Open (creating 0600) the outbox; `readonly` never writes, for dry runs."""
        path = state_dir / FILENAME
        try:
            if readonly:
                uri = f"file:{path}?mode=ro" if path.exists() else "file::memory:"
                self.db = sqlite3.connect(uri, uri=True)
            else:
                ensure_dir(state_dir)
                os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
                self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")
            if not (readonly and path.exists()):
                self.db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open the outbox {path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StateError(f"outbox write failed: {exc}") from None

    def is_seen(self, source: str, record: str, stamp: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM seen WHERE source=? AND record=? AND stamp=?", (source, record, stamp)
        ).fetchone()
        return row is not None

    def exists(self, notification_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM notifications WHERE id=?", (notification_id,))
        return row.fetchone() is not None

    def add(
        self, seen: Iterable[tuple[str, str, str]], notes: Iterable[Notification], now: str
    ) -> list[Notification]:
        """Store a page's decisions and mark its records seen, atomically.

        Returns the notifications that are new; a known id is never stored twice.
        """
        added = []
        with self._transaction() as db:
            db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)", list(seen))
            for n in notes:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO notifications (id, rule, source, record, channel,"
                    " recipient, body, status, reason, created, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        n.id,
                        n.rule,
                        n.source,
                        n.record,
                        n.channel,
                        n.to,
                        n.body,
                        n.status,
                        n.reason,
                        now,
                        now,
                    ),
                )
                if cursor.rowcount:
                    added.append(n)
        return added

    def due(self, now: str) -> list[Notification]:
        """Notifications to send now: pending ones whose time has come, and in-flight ones."""
        rows = self.db.execute(
            "SELECT id, rule, source, record, channel, recipient, body, status, reason,"
            " attempts, provider_id, in_flight_since FROM notifications"
            " WHERE status IN ('pending', 'sending') AND next_attempt <= ? ORDER BY created, id",
            (now,),
        ).fetchall()
        return [Notification(*row) for row in rows]

    def mark_sending(self, n: Notification, now: str) -> Notification:
        """Record, before the request goes out, that it may reach the provider."""
        since = n.in_flight_since or now
        self._update(n.id, now, status="sending", attempts=n.attempts + 1, in_flight_since=since)
        return replace(n, status="sending", attempts=n.attempts + 1, in_flight_since=since)

    def mark_sent(self, n: Notification, provider_id: str, now: str) -> None:
        self._update(
            n.id,
            now,
            status="sent",
            provider_id=provider_id,
            in_flight_since=None,
            error_code=None,
            error_message=None,
        )

    def mark_failed(
        self,
        n: Notification,
        now: str,
        code: int | None,
        message: str,
        retry_at: str | None,
        ambiguous: bool = False,
    ) -> None:
        """A failed attempt: retried from retry_at, or failed for good when it is None.

        An ambiguous failure (timeout, 5xx, reset) stays in flight, so that the next
        attempt first asks the provider whether the message exists.
        """
        status = ("sending" if ambiguous else "pending") if retry_at else "failed"
        self._update(
            n.id,
            now,
            status=status,
            next_attempt=retry_at or "",
            in_flight_since=n.in_flight_since if ambiguous else None,
            error_code=code,
            error_message=message,
        )

    def _update(self, notification_id: str, now: str, **columns: object) -> None:
        names = ", ".join(f"{name}=?" for name in columns)
        with self._transaction() as db:
            db.execute(
                f"UPDATE notifications SET {names}, updated=? WHERE id=?",
                (*columns.values(), now, notification_id),
            )

    def prune_seen(self, source: str, before: str) -> None:
        """Forget change stamps older than the look-back horizon: they cannot come back."""
        with self._transaction() as db:
            db.execute("DELETE FROM seen WHERE source=? AND stamp<?", (source, before))

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, COUNT(*) FROM notifications GROUP BY status")
        return dict(rows.fetchall())
