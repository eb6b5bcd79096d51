"""Email through Twilio SendGrid's v3 mail send, never sent twice on an unanswered request.

SendGrid has no API to find a mail by our id, so a request that may have been accepted
(a read timeout, a reset after the request went out) cannot be reconciled: it is not
retried, and a person decides. Only failures where SendGrid certainly did not accept the
mail (no connection, 429, 5xx answers) are retried. Wire details: TWILIO.md §9.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests

from x3twilio.config import SendGridConfig
from x3twilio.errors import RemoteError
from x3twilio.model import Notification
from x3twilio.transport import Outcome, Retrier, never_connected, retry_after

MAIL_SEND = "/v3/mail/send"
_PARAGRAPHS = re.compile(r"\n\s*\n")


class SendGridError(RemoteError):
    """A SendGrid failure; `maybe_sent` when SendGrid may have accepted the mail anyway."""

    def __init__(self, message: str, *, maybe_sent: bool = False, **kwargs: Any) -> None:
        self.maybe_sent = maybe_sent
        super().__init__("SendGrid", message, **kwargs)

    @property
    def outcome(self) -> Outcome:
        """What it means (see `Outcome`): a mail that may have gone is for a person."""
        if self.maybe_sent:
            return Outcome.UNCONFIRMED
        if self.status in (401, 403):  # the key, or the sender identity
            return Outcome.ACCOUNT
        if self.status == 429:
            return Outcome.LATER
        if self.transient:  # no connection, or a 5xx: SendGrid accepted nothing
            return Outcome.UNREACHABLE
        return Outcome.REFUSED


class SendGridSender:
    channel = "email"
    reconciles = False  # SendGrid cannot be asked whether it holds a mail

    def __init__(
        self,
        config: SendGridConfig,
        session: requests.Session,
        retrier: Retrier,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config, self.session, self.retrier, self.clock = config, session, retrier, clock
        self.url = f"{config.api_url.rstrip('/')}{MAIL_SEND}"

    def send(self, n: Notification, in_flight_since: datetime | None) -> str:
        """Send `n` as an email and return SendGrid's X-Message-Id.

        An earlier attempt that may have reached SendGrid (`in_flight_since`) cannot be
        looked up, so it is not repeated: the error says so, and a person decides.
        """
        if in_flight_since is not None:
            raise _unconfirmed(n, f"an earlier attempt (at {in_flight_since:%Y-%m-%d %H:%M})")
        if not n.subject:
            raise SendGridError(
                f"notification {n.id} of rule {n.rule} has no subject, which SendGrid "
                "refuses (HTTP 400): give the rule a subject",
                status=400,
            )
        return self.retrier.call(self._post, n, self.message(n))

    def find_sent(self, n: Notification, since: datetime) -> str | None:
        """SendGrid cannot be asked whether it holds a mail: never found."""
        return None

    def verify(self) -> None:
        """Check the key and the sender with a sandbox-mode mail (nothing is sent)."""
        probe = Notification("check", "", "", "", "email", self.config.from_email, "check")
        body = self.message(probe) | {
            "subject": "x3twilio check",
            "mail_settings": {"sandbox_mode": {"enable": True}},
        }
        try:
            self.retrier.call(self._post, probe, body)
        except SendGridError as exc:
            if exc.maybe_sent:  # a sandbox mail is never sent: only the answer is missing
                raise SendGridError(f"no answer from {self.url}", transient=True) from None
            raise

    def message(self, n: Notification) -> dict[str, Any]:
        """The v3 mail send body for `n`."""
        sender = {"email": self.config.from_email}
        if self.config.from_name:
            sender["name"] = self.config.from_name
        content = [{"type": "text/plain", "value": n.body}]
        if self.config.html:  # text/plain must come first (SendGrid refuses otherwise)
            content.append({"type": "text/html", "value": as_html(n.body)})
        body: dict[str, Any] = {
            "personalizations": [{"to": [{"email": n.to}]}],
            "from": sender,
            "subject": n.subject or "",
            "content": content,
            "custom_args": {"notification_id": n.id},
        }
        if self.config.reply_to:
            body["reply_to"] = {"email": self.config.reply_to}
        return body

    def _post(self, n: Notification, body: dict[str, Any]) -> str:
        headers = {"Authorization": f"Bearer {self.config.api_key}"}
        try:
            response = self.session.post(
                self.url, json=body, headers=headers, timeout=self.config.timeout
            )
        except requests.RequestException as exc:
            raise self._unanswered(n, exc) from None
        if response.status_code in (200, 202):  # 200: sandbox mode, nothing sent
            return response.headers.get("X-Message-Id") or f"sendgrid-{n.id}"
        raise self._refused(response)

    def _unanswered(self, n: Notification, exc: requests.RequestException) -> SendGridError:
        if never_connected(exc):
            return SendGridError(f"cannot connect to {self.url}: {str(exc)[:160]}", transient=True)
        if isinstance(exc, requests.Timeout):
            return _unconfirmed(n, f"no answer within {self.config.timeout:g}s")
        return _unconfirmed(n, f"the connection broke before the answer ({str(exc)[:120]})")

    def _refused(self, response: requests.Response) -> SendGridError:
        status = response.status_code
        message, field = _first_error(response)
        text = f"HTTP {status}: {message}" + (f" (field {field})" if field else "")
        if status == 401:
            text += "; check sendgrid.api_key (a key with the Mail Send permission)"
        elif status == 403:
            text += f"; verify {self.config.from_email} as a Sender Identity in SendGrid"
        return SendGridError(
            text,
            status=status,
            transient=status == 429 or status >= 500,
            retry_after=self._retry_after(response),
        )

    def _retry_after(self, response: requests.Response) -> float | None:
        reset = response.headers.get("X-RateLimit-Reset", "").strip()
        if reset.isdigit():  # epoch seconds when the limit resets
            return max(0.0, int(reset) - self.clock())
        return retry_after(response)


def as_html(text: str) -> str:
    """Plain text as minimal HTML: one escaped <p> per paragraph, <br> for line breaks."""
    paragraphs = [p.strip("\n") for p in _PARAGRAPHS.split(text.strip()) if p.strip()]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def _unconfirmed(n: Notification, what: str) -> SendGridError:
    return SendGridError(
        f"{what}: SendGrid may have accepted the mail to {n.to}, and it cannot be looked "
        f"up, so it is not sent again. Search SendGrid's Activity for custom argument "
        f"notification_id={n.id}; if the mail is not there, replay it",
        maybe_sent=True,
    )


def _first_error(response: requests.Response) -> tuple[str, str | None]:
    """The first error's message and field from SendGrid's {"errors": [...]} body."""
    try:
        errors = response.json().get("errors")
        first = errors[0]
        return str(first.get("message") or response.reason), first.get("field") or None
    except (ValueError, AttributeError, TypeError, IndexError, KeyError):
        return response.reason or "error", None
