"""One exception family, each error carrying the exit code cron should see."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """sysexits-style codes, as fixed by the interface contract."""

    OK = 0
    PARTIAL = 1  # the run finished; some items failed and are in the audit trail
    USAGE = 2
    UNAVAILABLE = 69  # X3 or Twilio unreachable or refusing credentials
    INTERNAL = 70
    CANTCREAT = 73  # local state cannot be created
    IOERR = 74  # local state cannot be read or written (read-only, full, corrupt, lost)
    LOCKED = 75  # another run holds the lock
    CONFIG = 78


class X3TwilioError(Exception):
    """Root of every error meant for the operator (no traceback)."""

    exit_code = ExitCode.INTERNAL


class ConfigError(X3TwilioError):
    """Invalid configuration or rules: names the file and the path inside it."""

    exit_code = ExitCode.CONFIG

    def __init__(self, file: str, path: str, problem: str) -> None:
        self.file, self.path, self.problem = file, path, problem
        super().__init__(f"{file}: {path}: {problem}" if path else f"{file}: {problem}")


class X3FieldError(X3TwilioError):
    """The customer's X3 does not expose a property the configuration names: a setup
    mistake (exit 78), never retried as an outage."""

    exit_code = ExitCode.CONFIG

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class LockHeld(X3TwilioError):
    exit_code = ExitCode.LOCKED


class RemoteError(X3TwilioError):
    """A remote service failed; `transient` says whether retrying may help."""

    exit_code = ExitCode.UNAVAILABLE

    def __init__(
        self,
        service: str,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.service, self.message = service, message
        self.status, self.code = status, code
        self.transient, self.retry_after = transient, retry_after
        super().__init__(f"{service}: {message}")


class X3Error(RemoteError):
    def __init__(self, message: str, **kwargs: object) -> None:
        super().__init__("X3", message, **kwargs)  # type: ignore[arg-type]


class TwilioError(RemoteError):
    def __init__(self, message: str, **kwargs: object) -> None:
        super().__init__("Twilio", message, **kwargs)  # type: ignore[arg-type]


class StateError(X3TwilioError):
    """Local state cannot be read or written (disk full, permissions, corrupt, lost): the
    message names the path and the fix."""

    exit_code = ExitCode.IOERR


class StateCreateError(StateError):
    """The state directory or one of its files cannot be created."""

    exit_code = ExitCode.CANTCREAT
