"""The state directory: atomic JSON files, the run lock, and the watermarks."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from x3twilio.decoding import parse_stamp
from x3twilio.errors import LockHeld, StateCreateError, StateError

WATERMARKS = "watermarks.json"
LOCK = "lock"
VERSION = 1


def ensure_dir(path: Path) -> Path:
    """Create a state directory 0700 (an existing one keeps its mode)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateCreateError(
            f"cannot create {path}: {exc.strerror}; give the user cron runs as write "
            "access there, or point state_dir (or --state-dir) elsewhere"
        ) from None
    return path


def usable(path: Path) -> None:
    """Raise StateCreateError unless a run could create or write the state directory here.

    `check` asks before anything is written, so a mistyped or read-only state_dir is named
    up front instead of failing the first cron run.
    """
    fix = "give the user cron runs as write access there, or point state_dir elsewhere"
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        problem = f"{existing} is not a directory"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing} is not writable by this user"
    else:
        return
    what = "state_dir" if existing == path else f"state_dir {path} cannot be created:"
    raise StateCreateError(f"{what} {problem}; {fix}")


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Temp file, fsync, rename, fsync the directory: the file is old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        os.fchmod(fd, mode)  # the umask must not take what the reader needs
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StateError(
            f"cannot write {path}: {exc.strerror} (is the disk full or read-only?)"
        ) from None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def run_lock(state_dir: Path, name: str = LOCK) -> Iterator[None]:
    """Hold one of the state directory's locks for a run; a second run gets LockHeld at once.

    `poll` and `ingest` take different locks: each may run beside the other, never twice.
    """
    ensure_dir(state_dir)
    try:
        fd = os.open(state_dir / name, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateCreateError(f"cannot open the lock {state_dir / name}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(f"another run holds {state_dir / name}; nothing was done") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


_FIX = "restore it from a backup, or remove it and poll with --since (see README)"


class Watermarks:
    """Per-source high-water marks: the newest X3 change stamp fully processed, and since
    when each source is watched (records created before that are history, not news).

    A source's `since` is written only once it differs from its watermark: a file without it
    (an older version's, or one first run's) began watching at its watermark, so an upgrade
    never takes history for new records, and older readers see the format they know.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / WATERMARKS
        self.values: dict[str, str]
        self.starts: dict[str, str]  # source -> since (absent: its watermark)
        self.values, self.starts = self._read()

    def _read(self) -> tuple[dict[str, str], dict[str, str]]:
        try:
            data: Any = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}, {}
        except (OSError, ValueError) as exc:
            raise StateError(f"{self.path} is unreadable ({exc}); {_FIX}") from None
        sources = data.get("sources") if isinstance(data, dict) else None
        if not isinstance(sources, dict) or data.get("version") != VERSION:
            raise StateError(f"{self.path}: unknown format (expected version {VERSION}); {_FIX}")
        try:
            marks = {str(k): str(v["wm"]) for k, v in sources.items()}
            starts = {str(k): str(v["since"]) for k, v in sources.items() if "since" in v}
            for mark in [*marks.values(), *starts.values()]:
                parse_stamp(mark)
        except (KeyError, TypeError, ValueError):
            raise StateError(f"{self.path}: a watermark is not a UTC stamp; {_FIX}") from None
        return marks, starts

    def get(self, source: str) -> str | None:
        return self.values.get(source)

    def since(self, source: str) -> str | None:
        """When this tool began watching `source` (its first watermark); None: not yet."""
        return self.starts.get(source) or self.values.get(source)

    def save(self, source: str, stamp: str) -> None:
        """Record `stamp` for `source` (never moving backwards) and write the file; the
        first stamp of a source is also its `since`."""
        current = self.values.get(source)
        if current is not None and parse_stamp(current) >= parse_stamp(stamp):
            return
        self.starts.setdefault(source, current or stamp)
        self.values[source] = stamp
        body = {"version": VERSION, "sources": {k: self._entry(k) for k in self.values}}
        write_atomic(self.path, json.dumps(body, indent=2, sort_keys=True).encode() + b"\n")

    def _entry(self, source: str) -> dict[str, str]:
        mark = self.values[source]
        since = self.starts.get(source, mark)
        return {"wm": mark} if since == mark else {"wm": mark, "since": since}
