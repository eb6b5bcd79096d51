"""The outbox's schema and every statement that changes a row, as literal SQL: a reviewer
reads what each transition does here, and no column name is ever built into a statement."""

from __future__ import annotations

# The statuses a notification's row moves through: model.Status.
SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY,
    rule TEXT NOT NULL, source TEXT NOT NULL, record TEXT NOT NULL,
    channel TEXT NOT NULL, recipient TEXT NOT NULL, body TEXT NOT NULL, subject TEXT,
    status TEXT NOT NULL, reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt TEXT NOT NULL DEFAULT '',
    provider_id TEXT, error_code INTEGER, error_message TEXT,
    in_flight_since TEXT, delivery TEXT,
    created TEXT NOT NULL, updated TEXT NOT NULL, partner TEXT NOT NULL DEFAULT '',
    content TEXT, fallback_of TEXT
);
CREATE INDEX IF NOT EXISTS notifications_todo ON notifications (status, next_attempt);
CREATE INDEX IF NOT EXISTS notifications_provider ON notifications (provider_id);
CREATE INDEX IF NOT EXISTS notifications_fallback ON notifications (fallback_of)
    WHERE fallback_of IS NOT NULL;
CREATE TABLE IF NOT EXISTS optouts (
    number TEXT PRIMARY KEY, since TEXT NOT NULL, reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS inbound (id TEXT PRIMARY KEY, outcome TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS voicemails (
    call_sid TEXT PRIMARY KEY, from_number TEXT, to_number TEXT,
    recording_sid TEXT, recording_url TEXT, recorded_at TEXT,
    transcription TEXT, transcribed INTEGER NOT NULL DEFAULT 0,
    logged INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS seen (
    source TEXT NOT NULL, record TEXT NOT NULL, stamp TEXT NOT NULL,
    PRIMARY KEY (source, record, stamp)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS whatsapp_windows (number TEXT PRIMARY KEY, last_inbound TEXT NOT NULL);
"""

# Notification field -> its column (the two names differ where SQL or history chose).
COLUMN_OF = {
    "id": "id", "rule": "rule", "source": "source", "record": "record", "channel": "channel",
    "to": "recipient", "body": "body", "status": "status", "reason": "reason",
    "attempts": "attempts", "provider_id": "provider_id", "in_flight_since": "in_flight_since",
    "created": "created", "error_code": "error_code", "error_message": "error_message",
    "subject": "subject", "not_before": "next_attempt", "partner": "partner",
    "content": "content", "fallback_of": "fallback_of",
}  # fmt: skip
# Columns added since the first release, each with the statement that adds it; _migrate().
ADDED = {
    "partner": "ALTER TABLE notifications ADD COLUMN partner TEXT NOT NULL DEFAULT ''",
    "content": "ALTER TABLE notifications ADD COLUMN content TEXT",
    "fallback_of": "ALTER TABLE notifications ADD COLUMN fallback_of TEXT",
}
# A read-only outbox from before them: its table copied into memory, where they can be added.
READ_ONLY_COPY = "CREATE TEMP TABLE notifications AS SELECT * FROM main.notifications"
# Fallbacks whose first notification arrived (a receipt says so, or, on a channel without
# receipts, it was sent), and those whose first did not (failed, skipped, undelivered).
ARRIVED = (
    "SELECT f.* FROM notifications f JOIN notifications p ON p.id = f.fallback_of"
    " WHERE f.status = 'pending' AND (p.delivery IN ('delivered', 'read', 'completed')"
    " OR (p.status = 'sent' AND p.channel NOT IN ('sms', 'whatsapp', 'voice')))"
)
NOT_ARRIVED = (
    "UPDATE notifications SET next_attempt=?, updated=? WHERE status = 'pending'"
    " AND next_attempt > ? AND fallback_of IN (SELECT id FROM notifications WHERE"
    " status = 'failed' OR (status = 'skipped' AND reason IS NOT 'replaced')"
    " OR delivery IN ('undelivered', 'failed', 'canceled', 'busy', 'no-answer'))"
)
# Each way a notification's row changes, as one literal statement (no names built into SQL).
SENDING = (
    "UPDATE notifications SET status='sending', attempts=?, in_flight_since=?, updated=? WHERE id=?"
)
REQUEUE = "UPDATE notifications SET status=?, next_attempt='', reason=NULL, updated=? WHERE id=?"
DEFER = "UPDATE notifications SET next_attempt=?, updated=? WHERE id=?"
DEFER_FOR = "UPDATE notifications SET next_attempt=?, reason=?, updated=? WHERE id=?"
SKIPPED = (
    "UPDATE notifications SET status='skipped', reason=?, in_flight_since=NULL, updated=?"
    " WHERE id=?"
)
SENT = (
    "UPDATE notifications SET status='sent', provider_id=?, reason=NULL, in_flight_since=NULL,"
    " error_code=NULL, error_message=NULL, updated=? WHERE id=?"
)
FAILED = (
    "UPDATE notifications SET status=?, reason=NULL, next_attempt=?, in_flight_since=?,"
    " error_code=?, error_message=?, updated=? WHERE id=?"
)
# A failed delivery keeps what Twilio said (63016: outside WhatsApp's 24-hour window).
DELIVERY = (
    "UPDATE notifications SET delivery=?, error_code=COALESCE(?, error_code),"
    " error_message=COALESCE(?, error_message), updated=? WHERE id=?"
)
# The newest inbound message of a WhatsApp user wins, whatever order ingest sees them in.
WROTE = (
    "INSERT INTO whatsapp_windows VALUES (?, ?) ON CONFLICT (number)"
    " DO UPDATE SET last_inbound=MAX(last_inbound, excluded.last_inbound)"
)
# What one voicemail callback tells is merged in; what it leaves empty keeps what is known.
VOICEMAIL = (
    "UPDATE voicemails SET from_number=COALESCE(NULLIF(?, ''), from_number),"
    " to_number=COALESCE(NULLIF(?, ''), to_number),"
    " recording_sid=COALESCE(NULLIF(?, ''), recording_sid),"
    " recording_url=COALESCE(NULLIF(?, ''), recording_url),"
    " recorded_at=COALESCE(NULLIF(?, ''), recorded_at),"
    " transcription=COALESCE(NULLIF(?, ''), transcription),"
    " transcribed=MAX(transcribed, ?), logged=MAX(logged, ?) WHERE call_sid=?"
)
