"""HTTP plumbing shared by every remote call: one session, one retry policy, and the one
classifier of what a failed request means (`Outcome`)."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

import requests

from x3twilio import __version__
from x3twilio.errors import RemoteError

if TYPE_CHECKING:
    import tenacity

    from x3twilio.config import RetryConfig

T = TypeVar("T")
USER_AGENT = f"x3twilio/{__version__}"


def make_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Retrier:
    """Retries transient RemoteErrors: full-jitter exponential backoff, a cap, a run budget.

    The budget is shared by every call in a run, so a dead service cannot keep a cron
    run alive for longer than configured.
    """

    def __init__(
        self,
        config: RetryConfig,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config, self.sleep, self.clock = config, sleep, clock
        self.deadline = clock() + config.budget

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        import tenacity  # lazy: start-up time matters for a cron job

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_is_transient),
            stop=tenacity.stop_after_attempt(self.config.attempts)
            | tenacity.stop_after_delay(max(0.0, self.deadline - self.clock())),
            wait=self._wait,
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(fn, *args)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        import tenacity

        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RemoteError) and error.retry_after is not None:
            delay = error.retry_after
        else:
            jitter = tenacity.wait_random_exponential(
                multiplier=self.config.initial, max=self.config.maximum
            )
            delay = jitter(state)
        return max(0.0, min(delay, self.config.maximum, self.deadline - self.clock()))


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, RemoteError) and error.transient


def retry_after(response: requests.Response) -> float | None:
    """Seconds from a Retry-After header given in seconds (dates are rare; ignored)."""
    value = response.headers.get("Retry-After", "")
    return float(value) if value.strip().isdigit() else None


# -- what any HTTP answer or failure says, in words an operator can act on -----------------


def try_json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def date_header(response: requests.Response) -> datetime | None:
    """The server's clock from its Date header, or None."""
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def snippet(response: requests.Response) -> str:
    """The start of an answer's body, on one line, for an error message."""
    text = " ".join(response.text.split())
    return (text[:120] + "…") if len(text) > 120 else (text or "(empty body)")


def reason_of(exc: Exception) -> str:
    """Why a request got no answer, in a few words ("connection refused"), else its text."""
    text = str(exc)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "reset by peer",
        "Connection aborted",
        "RemoteDisconnected",
    ):
        if marker in text:
            return marker.lower()
    return text[:160]


# -- what a failed request means: the one classifier every client and the dispatcher use ----


class Outcome(Enum):
    """What a failed request means, decided once where the error is made."""

    # This notification as it is will never be accepted (an invalid To, opted out, a body
    # too long): failed for good, a person fixes the data and replays it.
    REFUSED = "refused"
    # Refused for now, certainly not accepted (429): this notification again after a backoff.
    LATER = "later"
    # About the account or the sender, not this notification (credentials, a suspended
    # account, a From not on the account, a Messaging Service that does not exist, the
    # sender's queue full): the run stops (exit 69) and every notification stays pending.
    ACCOUNT = "account"
    # The service could not be reached, or failed before accepting anything (no connection,
    # a lookup that kept failing): the run stops and every notification stays pending.
    UNREACHABLE = "unreachable"
    # The request may have been accepted (a timeout, a reset, a 5xx, an answer without an
    # id): never posted again in this run; looked up in the provider's list once the
    # settle delay has passed, and sent again only if it is still not there.
    MAYBE_SENT = "maybe_sent"
    # May have been accepted, and the provider cannot be asked (SendGrid): failed for a
    # person to check, never sent again automatically.
    UNCONFIRMED = "unconfirmed"

    @property
    def repeatable(self) -> bool:
        """Whether the same request may be made again at once (the retrier's `transient`)."""
        return self in (Outcome.LATER, Outcome.UNREACHABLE)

    @property
    def stops_run(self) -> bool:
        return self in (Outcome.ACCOUNT, Outcome.UNREACHABLE)


def outcome_of(error: RemoteError) -> Outcome:
    """The outcome a sender gave `error`; for any other remote error, judged by its status."""
    given = getattr(error, "outcome", None)
    if isinstance(given, Outcome):
        return given
    status = error.status
    if status in (401, 403):
        return Outcome.ACCOUNT
    if status == 429:
        return Outcome.LATER
    if status is None or status >= 500:
        return Outcome.UNREACHABLE if error.transient else Outcome.MAYBE_SENT
    return Outcome.LATER if error.transient else Outcome.REFUSED


def never_connected(exc: BaseException) -> bool:
    """Whether a request certainly never reached the service (so repeating it is safe)."""
    from urllib3.exceptions import ConnectTimeoutError

    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.SSLError):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    # urllib3 wraps a refused or unresolvable connection (NewConnectionError is one)
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, ConnectTimeoutError)
