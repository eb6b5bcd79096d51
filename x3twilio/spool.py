"""The inbox: webhook payloads written by the shim and claimed by `ingest`, maildir style.

tmp/        a payload being written (every byte checked, fsync, then renamed into new/)
new/        spooled, waiting for ingest
cur/        claimed by one ingest run (rename is atomic: two runs never get the same file)
done/       processed and logged (pruned after DONE_RETENTION)
failed/     refused by X3 for good, kept for `replay`
quarantine/ cannot be processed (unreadable, malformed, unknown route, still failing after
            MAX_ATTEMPTS or MAX_AGE), kept for a person and for `replay`
keys/       one empty file per delivery already spooled (create-exclusive de-duplication,
            pruned after KEY_RETENTION)

File names are made here (time, pid, random), never from request input. A payload that
`ingest` put back after a transient failure carries its attempt count in its name
(`<name>.t3.json`). Every folder is 0700 and every file 0600.

Every payload has one shape, whether Twilio posted a form or a JSON body: `spool_payload`
makes and reads it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from x3twilio.errors import StateError
from x3twilio.spool_payload import IDENTITY, Inbound, Unusable, known_fields, normalise
from x3twilio.state import ensure_dir, fsync_dir

INBOX = "inbox"
DONE_RETENTION = 14 * 86400.0  # processed payloads are kept this long (the audit trail: for good)
KEY_RETENTION = 14 * 86400.0  # de-duplication keys too: far beyond Twilio's retries (hours)
PRUNE_EVERY = 3600.0  # ingest prunes at most once an hour
TORN_AFTER = 60.0  # a file in tmp/ untouched this long was left by a shim that died
# A spooled file larger than this is not a webhook the shim wrote (inbound.max_body is at most
# 16 MiB; its fields and raw body, JSON-escaped, stay well within this).
MAX_ITEM_BYTES = 128 << 20

_ATTEMPTS = re.compile(r"^(?P<base>.+)\.t(?P<n>\d{1,6})\.json$")


@dataclass(frozen=True)
class Spooled:
    path: Path
    payload: dict[str, Any]  # as stored; {} when the file holds no JSON object
    inbound: Inbound | None = None  # None when it cannot be read: see `problem`
    problem: Unusable | None = None
    attempts: int = 0  # transient failures so far
    mtime: float = field(default=0.0, compare=False)

    @property
    def known(self) -> dict[str, str]:
        """The sids, sender and recipient, as far as they can be read (for the audit trail)."""
        if self.inbound is not None:
            return self.inbound.fields
        return known_fields(self.payload)

    @property
    def sid(self) -> str:
        known = self.known
        return next((known[k] for k in IDENTITY if known.get(k)), "")

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def base(self) -> str:
        """The name without its attempt count."""
        match = _ATTEMPTS.match(self.name)
        return f"{match['base']}.json" if match else self.name

    @property
    def route(self) -> str:
        return self.inbound.route if self.inbound else "unreadable"


# -- the folders -------------------------------------------------------------------------


class Spool:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / INBOX
        self._made: set[str] = set()  # folders known to exist: no mkdir per request

    def _dir(self, folder: str) -> Path:
        path = self.root / folder
        if folder not in self._made:
            ensure_dir(self.root.parent)  # the state directory, 0700 when made here
            for directory in (self.root, path):  # mkdir -p would leave the inbox 0755
                ensure_dir(directory)
                _tighten(directory)
            self._made.add(folder)
        return path

    # -- the shim's side ---------------------------------------------------------------

    def write(self, payload: dict[str, Any], dedupe_key: str) -> bool:
        """Spool one payload unless `dedupe_key` was spooled before; True if written.

        Returns only once the payload is whole on disk (every byte written, fsync, renamed
        into new/, the folder synced); any storage error raises StateError, and nothing of
        this payload is left behind for ingest, so that Twilio's retry stores it whole.
        """
        digest = hashlib.sha256(dedupe_key.encode()).hexdigest()[:40]
        try:
            keys, tmp_dir, new = self._dir("keys"), self._dir("tmp"), self._dir("new")
        except StateError as exc:
            raise StateError(f"cannot spool a webhook: {exc}") from None
        key_path = keys / digest
        if key_path.exists():
            return False
        name = f"{time.time_ns()}.{os.getpid()}.{secrets.token_hex(4)}.json"
        tmp, keyed, published = tmp_dir / name, False, False
        try:
            _write_whole(tmp, json.dumps(payload, ensure_ascii=False).encode())
            try:
                os.close(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:  # the same delivery, spooled by a request beside this one
                tmp.unlink()
                return False
            keyed = True
            os.rename(tmp, new / name)
            published = True
            fsync_dir(new)
        except OSError as exc:
            if not published:  # stored: Twilio's retry finds the key and is answered
                with contextlib.suppress(OSError):
                    tmp.unlink()
                if keyed:
                    with contextlib.suppress(OSError):
                        key_path.unlink()  # not spooled: let Twilio's retry try again
            raise StateError(f"cannot spool a webhook into {self.root}: {_reason(exc)}") from None
        return True

    # -- ingest's side -------------------------------------------------------------------

    def claim(self) -> list[Spooled]:
        """Move every waiting payload to cur/ and return those this run won, oldest first."""
        return [self.load(path) for path in self.claim_paths(orphans=False)]

    def claim_paths(self, orphans: bool = True) -> list[Path]:
        """What this run is to process, read by the caller one at a time: the payloads a
        run that died left in cur/ (with `orphans`), then every waiting one, moved to cur/
        (rename is atomic: two runs never get the same file); fewest attempts first, then
        oldest."""
        self._recover_written()
        new, cur = self._dir("new"), self._dir("cur")
        claimed = [cur / name for name in _names(cur)] if orphans else []
        for name in sorted(_names(new)):
            try:
                os.rename(new / name, cur / name)
            except FileNotFoundError:
                continue  # another ingest run took it
            except OSError as exc:
                raise StateError(f"cannot claim {new / name}: {_reason(exc)}") from None
            claimed.append(cur / name)
        return sorted(claimed, key=lambda path: (attempts_of(path.name), path.name))

    def waiting(self) -> Iterator[Spooled]:
        """What waits in new/, read one at a time (nothing is moved)."""
        new = self._dir("new")
        for name in sorted(_names(new)):
            yield self.load(new / name)

    def _recover_written(self, older_than: float = TORN_AFTER) -> None:
        """A shim killed before its rename leaves a payload in tmp/: publish it; a torn one
        too (it was never acknowledged, Twilio retried it), so that ingest quarantines it
        with an audit record instead of leaving it unseen."""
        tmp, new = self._dir("tmp"), self._dir("new")
        for name in _names(tmp):
            with contextlib.suppress(OSError):
                if time.time() - os.lstat(tmp / name).st_mtime > older_than:
                    os.replace(tmp / name, new / name)

    def load(self, path: Path) -> Spooled:
        """Read one spooled file; never raises: what cannot be used says why in `problem`."""
        attempts = attempts_of(path.name)
        try:
            info = os.lstat(path)
            mtime = info.st_mtime
            if not stat.S_ISREG(info.st_mode):
                raise Unusable("unreadable", "not a regular file")
            with open(path, "rb") as handle:
                data = handle.read(MAX_ITEM_BYTES + 1)
        except Unusable as exc:
            return Spooled(path, {}, problem=exc, attempts=attempts)
        except OSError as exc:
            problem = Unusable("unreadable", f"cannot be read: {_reason(exc)}")
            return Spooled(path, {}, problem=problem, attempts=attempts)
        if len(data) > MAX_ITEM_BYTES:
            problem = Unusable("too_large", f"larger than {MAX_ITEM_BYTES} bytes")
            return Spooled(path, {}, problem=problem, attempts=attempts, mtime=mtime)
        if not data.strip():
            problem = Unusable("empty", "the file is empty")
            return Spooled(path, {}, problem=problem, attempts=attempts, mtime=mtime)
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError):
            problem = _not_json(data)
            return Spooled(path, {}, problem=problem, attempts=attempts, mtime=mtime)
        payload = raw if isinstance(raw, dict) else {}
        try:
            inbound = normalise(raw)
        except Unusable as exc:
            return Spooled(path, payload, problem=exc, attempts=attempts, mtime=mtime)
        return Spooled(path, payload, inbound, attempts=attempts, mtime=mtime)

    def finish(self, item: Spooled, folder: str, attempts: int | None = None) -> Path:
        """Move a claimed payload to done/, failed/, quarantine/, or back to new/ (with its
        attempt count in the name) for the next run."""
        name = item.base
        if attempts:
            name = f"{name.removesuffix('.json')}.t{attempts}.json"
        target = self._dir(folder) / name
        try:
            os.replace(item.path, target)
        except OSError as exc:
            raise StateError(f"cannot move {item.path} to {folder}/: {_reason(exc)}") from None
        return target

    def requeue(self, item: Spooled) -> Path:
        """Put a failed or quarantined payload back for ingest, with a fresh count and age."""
        target = self.finish(item, "new")
        with contextlib.suppress(OSError):
            os.utime(target)
        return target

    def failed(self) -> list[Spooled]:
        path = self._dir("failed")
        return [self.load(path / name) for name in sorted(_names(path))]

    def quarantined(self) -> list[Spooled]:
        path = self._dir("quarantine")
        return [self.load(path / name) for name in sorted(_names(path))]

    # -- retention -----------------------------------------------------------------------

    def prune(self, now: float | None = None, force: bool = False) -> int:
        """Remove done/ payloads and de-duplication keys past their retention (at most once
        per PRUNE_EVERY unless forced); return how many files went. Quarantined and failed
        payloads are never pruned: they wait for a person."""
        now = time.time() if now is None else now
        marker = self.root / ".pruned"
        with contextlib.suppress(OSError):
            if not force and now - marker.stat().st_mtime < PRUNE_EVERY:
                return 0
        removed = 0
        for folder, keep in (("done", DONE_RETENTION), ("keys", KEY_RETENTION)):
            path = self._dir(folder)
            for entry in _entries(path):
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime > keep:
                        os.unlink(entry.path)
                        removed += 1
        with contextlib.suppress(OSError):
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600))
            os.utime(marker, (now, now))
        return removed


def attempts_of(name: str) -> int:
    """The transient failures a spooled file's name records (`<name>.t3.json`: 3)."""
    match = _ATTEMPTS.match(name)
    return int(match["n"]) if match else 0


def _write_whole(path: Path, data: bytes) -> None:
    """Create `path` 0600 and write every byte of `data` (a short write is continued, a
    write that makes no progress is an error), then fsync; on error the file is removed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            if written <= 0:
                raise OSError(errno.ENOSPC, "no progress writing (is the disk full?)")
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    os.close(fd)


def _tighten(path: Path) -> None:
    """Spool folders are 0700 whoever made them (they hold message bodies)."""
    with contextlib.suppress(OSError):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)


def _names(path: Path) -> list[str]:
    try:
        return [name for name in os.listdir(path) if name not in (".", "..")]
    except OSError as exc:
        raise StateError(f"cannot list {path}: {_reason(exc)}") from None


def _entries(path: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            yield from entries
    except OSError:
        return


def _not_json(data: bytes) -> Unusable:
    text = data.lstrip()
    if text[:1] in (b"{", b"["):
        return Unusable("truncated", "not valid JSON: truncated or torn")
    return Unusable("not_json", "not JSON")


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
