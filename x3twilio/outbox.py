"""The outbox: every decided notification, stored durably before anything is sent.

SQLite (stdlib) gives atomic batches that survive SIGKILL and O(1) look-ups of an
idempotency key, whatever the length of the history.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from x3twilio import outbox_sql as sql
from x3twilio.errors import StateError
from x3twilio.model import Notification, Voicemail
from x3twilio.state import ensure_dir

FILENAME = "outbox.sqlite3"


def _why(exc: sqlite3.Error) -> str:
    """What an SQLite failure means for the operator; nothing of the batch was kept."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        hint = "another process holds it; is a second copy running against this state_dir?"
    elif "full" in text or "disk" in text or "readonly" in text:
        hint = "is the disk full or read-only?"
    else:
        hint = "if it is corrupt, move it aside and run `x3twilio state rebuild`"
    return f"{text} ({hint}); nothing of this batch was kept"


def _note(row: sqlite3.Row) -> Notification:
    return Notification(**{name: row[column] for name, column in sql.COLUMN_OF.items()})


class Outbox:
    def __init__(self, state_dir: Path, readonly: bool = False) -> None:
        """Open (creating 0600) the outbox; `readonly` never writes, for dry runs."""
        path = self.path = state_dir / FILENAME
        self._batching = False
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
            self.db.row_factory = sqlite3.Row
            if not (readonly and path.exists()):
                self.db.executescript(sql.SCHEMA)
            self._migrate(readonly)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(
                f"cannot open the outbox {path}: {exc}; if it is corrupt, move it aside and "
                "run `x3twilio state rebuild` (it restores the sent keys from the audit trail)"
            ) from None

    def _migrate(self, readonly: bool) -> None:
        """An older outbox gains the columns added since; read-only, a copy of it does."""
        have = {row["name"] for row in self.db.execute("PRAGMA table_info(notifications)")}
        missing = [statement for column, statement in sql.ADDED.items() if column not in have]
        if missing and readonly:
            self.db.execute(sql.READ_ONLY_COPY)  # a dry run's own copy: the file stays as it is
        for statement in missing:
            self.db.execute(statement)

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group the updates inside into one transaction: one fsync instead of one each."""
        if self._batching:
            yield
            return
        with self._transaction():
            self._batching = True
            try:
                yield
            finally:
                self._batching = False

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self._batching:  # inside batch(): one commit at its end
            yield self.db
            return
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StateError(f"cannot write the outbox {self.path}: {_why(exc)}") from None

    def is_seen(self, source: str, record: str, stamp: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM seen WHERE source=? AND record=? AND stamp=?", (source, record, stamp)
        ).fetchone()
        return row is not None

    def known(self, ids: list[str]) -> set[str]:
        """Which of `ids` the outbox holds (one query for a page of decisions)."""
        found: set[str] = set()
        for start in range(0, len(ids), 500):  # SQLite's limit on bound parameters
            chunk = ids[start : start + 500]
            rows = self.db.execute(
                "SELECT id FROM notifications WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(chunk),),
            )
            found.update(row[0] for row in rows)
        return found

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
                    " recipient, body, subject, status, reason, next_attempt, partner, content,"
                    " fallback_of, created, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        n.id,
                        n.rule,
                        n.source,
                        n.record,
                        n.channel,
                        n.to,
                        n.body,
                        n.subject,
                        n.status,
                        n.reason,
                        n.not_before,
                        n.partner,
                        n.content,
                        n.fallback_of,
                        now,
                        now,
                    ),
                )  # fmt: skip
                if cursor.rowcount:
                    added.append(replace(n, created=now))
        return added

    def due(self, now: str) -> list[Notification]:
        """Notifications to send now: pending ones whose time has come, and in-flight ones."""
        rows = self.db.execute(
            "SELECT * FROM notifications WHERE status IN ('pending', 'sending')"
            " AND next_attempt <= ? AND NOT EXISTS (SELECT 1 FROM notifications p"
            " WHERE p.id = notifications.fallback_of AND p.status IN ('pending', 'sending'))"
            " ORDER BY created, id",
            (now,),
        ).fetchall()
        return [_note(row) for row in rows]

    def mark_sending(self, n: Notification, now: str) -> Notification:
        """Record, before the request goes out, that it may reach the provider."""
        since = n.in_flight_since or now
        self._set(sql.SENDING, n.attempts + 1, since, now, n.id)
        return replace(n, status="sending", attempts=n.attempts + 1, in_flight_since=since)

    def replayable(self, include_permanent: bool) -> list[Notification]:
        """Notifications without a provider id that a person may retry now; those quiet hours
        hold back are waiting, not failed: poll sends them when the window ends."""
        rows = self.db.execute(
            "SELECT * FROM notifications WHERE (status IN ('pending', 'sending')"
            " OR (? AND status = 'failed')) AND provider_id IS NULL"
            " AND NOT (status = 'pending' AND reason IS 'quiet_hours') ORDER BY created, id",
            (include_permanent,),
        ).fetchall()
        return [_note(row) for row in rows]

    def requeue(self, n: Notification, now: str) -> None:
        """Due now; an in-flight one stays in flight (it is looked up before any resend)."""
        status = "sending" if n.in_flight_since else "pending"
        self._set(sql.REQUEUE, status, now, n.id)

    def defer(self, n: Notification, not_before: str, now: str, reason: str | None = None) -> None:
        """Not before `not_before` (quiet hours, a settle); an in-flight one stays in flight."""
        if reason is None:
            self._set(sql.DEFER, not_before, now, n.id)
        else:
            self._set(sql.DEFER_FOR, not_before, reason, now, n.id)

    def mark_skipped(self, n: Notification, reason: str, now: str) -> None:
        self._set(sql.SKIPPED, reason, now, n.id)

    def mark_sent(self, n: Notification, provider_id: str, now: str) -> None:
        self._set(sql.SENT, provider_id, now, n.id)

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
        since = n.in_flight_since if ambiguous else None
        self._set(sql.FAILED, status, retry_at or "", since, code, message, now, n.id)

    def _set(self, statement: str, *values: object) -> None:
        """Apply one of the transition statements of outbox_sql (`sql.SENT`, …);
        its values end with `updated` and the id."""
        with self._transaction() as db:
            db.execute(statement, values)

    def prune_seen(self, source: str, before: str) -> None:
        """Forget change stamps older than the look-back horizon: they cannot come back."""
        with self._transaction() as db:
            db.execute("DELETE FROM seen WHERE source=? AND stamp<?", (source, before))

    # -- delivery statuses --------------------------------------------------------------

    def by_provider_id(self, provider_id: str) -> tuple[Notification, str | None] | None:
        """The notification Twilio knows as `provider_id`, with its delivery status."""
        row = self.db.execute(
            "SELECT * FROM notifications WHERE provider_id=?",
            (provider_id,),
        ).fetchone()
        return (_note(row), row["delivery"]) if row else None

    def set_delivery(
        self,
        notification_id: str,
        status: str,
        now: str,
        code: int | None = None,
        message: str | None = None,
    ) -> None:
        """The delivery status Twilio reported; with the error it gave, when it gave one."""
        self._set(sql.DELIVERY, status, code, message, now, notification_id)

    def for_record(self, source: str, record: str) -> list[tuple[Notification, str | None]]:
        """Everything decided about one X3 record, with delivery statuses."""
        rows = self.db.execute(
            "SELECT * FROM notifications WHERE source=? AND record=? ORDER BY created, id",
            (source, record),
        ).fetchall()
        return [(_note(row), row["delivery"]) for row in rows]

    def last_sent_to(self, number: str) -> Notification | None:
        """The newest notification sent to `number`: what a reply most likely answers."""
        row = self.db.execute(
            "SELECT * FROM notifications WHERE recipient=? AND status='sent'"
            " ORDER BY updated DESC LIMIT 1",
            (number,),
        ).fetchone()
        return _note(row) if row else None

    # -- fallbacks -------------------------------------------------------------------------

    def fallbacks_not_needed(self) -> list[Notification]:
        """Waiting fallbacks whose first notification arrived: to drop."""
        return [_note(row) for row in self.db.execute(sql.ARRIVED).fetchall()]

    def release_fallbacks(self, now: str) -> None:
        """Waiting fallbacks whose first notification did not arrive: due now."""
        with self._transaction() as db:
            db.execute(sql.NOT_ARRIVED, (now, now, now))

    # -- WhatsApp's 24-hour window ----------------------------------------------------------

    def wrote_on_whatsapp(self, number: str, at: str) -> None:
        """`number` (E.164) wrote to us on WhatsApp at `at` (UTC, ISO): free text may follow."""
        with self._transaction() as db:
            db.execute(sql.WROTE, (number, at))

    def last_whatsapp(self, number: str) -> str | None:
        """When `number` last wrote to us on WhatsApp (UTC, ISO), or None."""
        try:
            row = self.db.execute(
                "SELECT last_inbound FROM whatsapp_windows WHERE number=?", (number,)
            ).fetchone()
        except sqlite3.OperationalError:  # read-only, an outbox older than the table
            return None
        return str(row[0]) if row else None

    # -- opt-outs and inbound items -------------------------------------------------------

    def opted_out(self, number: str) -> bool:
        row = self.db.execute("SELECT 1 FROM optouts WHERE number=?", (number,)).fetchone()
        return row is not None

    def opt_out(self, number: str, reason: str, now: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO optouts VALUES (?, ?, ?)", (number, now, reason))

    def opt_in(self, number: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM optouts WHERE number=?", (number,))

    def inbound_outcome(self, item_id: str) -> str | None:
        row = self.db.execute("SELECT outcome FROM inbound WHERE id=?", (item_id,)).fetchone()
        return row[0] if row else None

    def record_inbound(self, item_id: str, outcome: str, now: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO inbound VALUES (?, ?, ?)", (item_id, outcome, now))

    def voicemail(self, told: Voicemail) -> Voicemail:
        """Merge what one callback tells about a voicemail, and return all that is known."""
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO voicemails (call_sid) VALUES (?)", (told.call_sid,))
            db.execute(
                sql.VOICEMAIL,
                (
                    told.from_number, told.to_number, told.recording_sid, told.recording_url,
                    told.recorded_at, told.transcription, told.transcribed, told.logged,
                    told.call_sid,
                ),
            )  # fmt: skip
        row = self.db.execute("SELECT * FROM voicemails WHERE call_sid=?", (told.call_sid,))
        return Voicemail(**dict(row.fetchone()))

    def voicemails_waiting(self) -> list[Voicemail]:
        rows = self.db.execute(
            "SELECT * FROM voicemails WHERE logged=0 AND recording_url IS NOT NULL"
        )
        return [Voicemail(**dict(row)) for row in rows]

    # -- state loss ------------------------------------------------------------------------

    def is_empty(self) -> bool:
        """Nothing decided and nothing seen: a first run, or an outbox that was lost."""
        row = self.db.execute(
            "SELECT EXISTS (SELECT 1 FROM notifications) OR EXISTS (SELECT 1 FROM seen)"
        ).fetchone()
        return not row[0]

    def remembers(self, source: str) -> str | None:
        """The newest change stamp seen of `source`, else when its last decision was made."""
        row = self.db.execute("SELECT MAX(stamp) FROM seen WHERE source=?", (source,)).fetchone()
        if row[0] is None:
            row = self.db.execute(
                "SELECT MAX(created) FROM notifications WHERE source=?", (source,)
            ).fetchone()
        return str(row[0]) if row[0] is not None else None

    def restore(self, rows: Iterable[Notification], delivery: dict[str, str], now: str) -> int:
        """Put back notifications rebuilt from the audit trail; known ids are left alone."""
        count = 0
        with self._transaction() as db:
            for n in rows:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO notifications (id, rule, source, record, channel,"
                    " recipient, body, subject, status, reason, attempts, provider_id,"
                    " in_flight_since, error_code, error_message, delivery, partner, content,"
                    " fallback_of, created, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        n.id, n.rule, n.source, n.record, n.channel, n.to, n.body, n.subject,
                        n.status, n.reason, n.attempts, n.provider_id, n.in_flight_since,
                        n.error_code, n.error_message, delivery.get(n.id), n.partner,
                        n.content, n.fallback_of, n.created or now, now,
                    ),
                )  # fmt: skip
                count += cursor.rowcount
        return count

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, COUNT(*) FROM notifications GROUP BY status")
        return dict(rows.fetchall())
