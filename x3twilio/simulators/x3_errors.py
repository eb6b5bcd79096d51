"""What the simulated X3 refuses: an HTTP status and the message of its `$diagnoses`."""

from __future__ import annotations


class SimError(Exception):
    """A request the simulated X3 refuses: an HTTP status and a `$diagnoses` message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(SimError, KeyError):
    """No record with that key (X3's message 721); over HTTP, `missing_status`."""

    def __init__(self, cls: str, key: str) -> None:
        super().__init__(404, "721 : Record does not exist")
        self.cls, self.key = cls, key
