"""WhatsApp through Twilio's Messages API: free text inside the 24-hour window, else the
rule's approved template; never sending twice what Twilio may already hold.

The choice is made when the message is sent, from when the recipient last wrote to us
(`last_inbound`, which ingest records): a supplier may write between decision and send.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import requests

from x3twilio.config import TwilioConfig
from x3twilio.model import Notification
from x3twilio.senders.twilio import TwilioApiError, TwilioSender, _carries
from x3twilio.transport import Outcome, Retrier
from x3twilio.whatsapp import address, message_fields

NO_SENDER = (
    "channel whatsapp has no sender: set twilio.whatsapp_from (whatsapp:+E164) or "
    "twilio.messaging_service_sid"
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TwilioWhatsAppSender(TwilioSender):
    channel = "whatsapp"
    reconciles = True
    # A template's text is Twilio's, not ours: an unanswered one is found by its number
    # alone, so one message at a time goes to a number while one is unresolved.
    one_at_a_time = True

    def __init__(
        self,
        config: TwilioConfig,
        public_url: str,
        session: requests.Session,
        retrier: Retrier,
        last_inbound: Callable[[str], datetime | None],
        is_known: Callable[[str], bool] = lambda sid: False,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """`last_inbound(number)`: when that E.164 number last wrote to us on WhatsApp;
        `is_known(sid)`: a message already recorded for another notification."""
        super().__init__(config, public_url, session, retrier)
        self.last_inbound, self.is_known, self.clock = last_inbound, is_known, clock

    def _form(self, n: Notification) -> dict[str, str]:
        """Free text within the 24-hour window, else the template; from the WhatsApp sender."""
        if not (self.config.whatsapp_from or self.config.messaging_service_sid):
            raise TwilioApiError(NO_SENDER, outcome=Outcome.ACCOUNT)  # nothing was posted
        form = {"To": address(n.to), "StatusCallback": self.status_callback(n.id)}
        form |= message_fields(n, self.last_inbound(n.to), self.clock())
        return form | self._sender(self.config.whatsapp_from)

    def find_sent(self, n: Notification, since: datetime) -> str | None:
        """The SID of a message to n.to created since `since`: one carrying n.body, or, for
        a notification with a template (whose text Twilio wrote), one not recorded for
        another notification."""
        params = {"To": address(n.to), "PageSize": "50"}
        if self.config.whatsapp_from:
            params["From"] = self.config.whatsapp_from
        for message in self._listed("Messages", params, since):
            if message.get("status") == "canceled":
                continue
            listed, sid = message.get("body"), str(message.get("sid"))
            if isinstance(listed, str) and _carries(listed, n.body):
                return sid
            if n.content and not self.is_known(sid):
                return sid
        return None
