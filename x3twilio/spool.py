"""The inbox: webhook payloads written by the shim and claimed by `ingest`, maildir style.

tmp/  a payload being written (fsync, then renamed into new/)
new/  spooled, waiting for ingest
cur/  claimed by one ingest run (rename is atomic: two runs never get the same file)
done/ processed and logged; failed/ refused for good, kept for `replay`
keys/ one empty file per delivery already spooled (create-exclusive de-duplication)

File names are made here (time, pid, random), never from request input.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from x3twilio.errors import StateError
from x3twilio.state import ensure_dir

INBOX = "inbox"
FOLDERS = ("tmp", "new", "cur", "done", "failed", "keys")


@dataclass(frozen=True)
class Spooled:
    path: Path
    payload: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name


class Spool:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / INBOX
        self._made: set[str] = set()  # folders known to exist: no mkdir per request

    def _dir(self, folder: str) -> Path:
        path = self.root / folder
        if folder not in self._made:
            ensure_dir(path)
            self._made.add(folder)
        return path

    def write(self, payload: dict[str, Any], dedupe_key: str) -> bool:
        """Spool one payload unless `dedupe_key` was spooled before; True if written."""
        digest = hashlib.sha256(dedupe_key.encode()).hexdigest()[:40]
        key_path = self._dir("keys") / digest
        try:
            os.close(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return False
        name = f"{time.time_ns()}.{os.getpid()}.{secrets.token_hex(4)}.json"
        tmp = self._dir("tmp") / name
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, json.dumps(payload, ensure_ascii=False).encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self._dir("new") / name)
        except OSError as exc:
            with contextlib.suppress(OSError):
                key_path.unlink()  # not spooled: let Twilio's retry try again
                tmp.unlink()
            raise StateError(f"cannot spool a webhook into {self.root}: {exc.strerror}") from None
        return True

    def claim(self) -> list[Spooled]:
        """Move every waiting payload to cur/ and return those this run won, oldest first."""
        self._recover_written()
        new, cur = self._dir("new"), self._dir("cur")
        claimed = []
        for name in sorted(os.listdir(new)):
            try:
                os.rename(new / name, cur / name)
            except FileNotFoundError:
                continue  # another ingest run took it
            claimed.append(self._load(cur / name))
        return claimed

    def waiting(self) -> list[Spooled]:
        return [self._load(p) for p in sorted(self._dir("new").iterdir())]

    def _recover_written(self, older_than: float = 60.0) -> None:
        """A shim killed between fsync and rename leaves a whole payload in tmp/: publish it."""
        tmp, new = self._dir("tmp"), self._dir("new")
        for path in tmp.iterdir():
            try:
                if time.time() - path.stat().st_mtime > older_than:
                    json.loads(path.read_bytes())  # whole, or it is left for a person
                    os.replace(path, new / path.name)
            except (OSError, ValueError):
                continue

    def orphans(self) -> list[Spooled]:
        """Payloads left in cur/ by a run that died: they were never finished."""
        return [self._load(p) for p in sorted(self._dir("cur").iterdir())]

    def _load(self, path: Path) -> Spooled:
        try:
            return Spooled(path, json.loads(path.read_bytes()))
        except (OSError, ValueError) as exc:
            raise StateError(f"unreadable spooled payload {path}: {exc}") from None

    def finish(self, item: Spooled, folder: str) -> None:
        """Move a claimed payload to done/, failed/, or back to new/ for the next run."""
        os.replace(item.path, self._dir(folder) / item.name)

    def failed(self) -> list[Spooled]:
        return [self._load(p) for p in sorted(self._dir("failed").iterdir())]
