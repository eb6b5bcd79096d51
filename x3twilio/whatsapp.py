"""WhatsApp as a channel: a rule's approved template, the 24-hour window, what check says.

WhatsApp lets a business write free text to a person only within 24 hours of that person's
last message (the customer-service window); outside it only an approved Content template
(`HX…`, with its variables) reaches them. A rule's `message` is the free text; its
`template:` is what goes when the window is closed. Which of the two is chosen when the
notification is sent, not when it is decided: a supplier may write in between.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from x3twilio.templates import Template, TemplateError, compile_template
from x3twilio.yamlnode import Node

if TYPE_CHECKING:
    from x3twilio.model import Notification

PREFIX = "whatsapp:"  # Twilio's address of a WhatsApp user or sender: whatsapp:+E164
CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
_VARIABLE = re.compile(r"^[A-Za-z0-9_]{1,64}$")  # {{1}}, or a named one ({{order}})
# WhatsApp counts its 24 hours from when it received the person's message. We know when the
# shim received Twilio's webhook (a little later), and Twilio may hold our message in its queue
# a while before WhatsApp gets it: ten minutes short of 24 h keeps free text from arriving just
# after the window closed (63016) when a template would have gone.
WINDOW_TRUSTED = timedelta(hours=23, minutes=50)
WINDOW_CLOSED = 63016
WINDOW_REASON = (
    "WhatsApp allows free text only within 24 h of the supplier's last message; "
    "add an approved template"
)
# Twilio's WhatsApp and Content errors, as an operator acts on them (twilio.com/docs/api/errors).
REASONS: Mapping[int, str] = {
    WINDOW_CLOSED: WINDOW_REASON,
    63003: "the recipient's number is not on WhatsApp",
    63007: "twilio.whatsapp_from must be a WhatsApp sender of this account (whatsapp:+E164)",
    21654: "a template's variables were sent without its content_sid",
    21655: "the rule's template.content_sid is not a Content template of this account",
    21656: "the rule's template.variables are not what the template takes",
    21910: "From and To are of different channels: set twilio.whatsapp_from to a WhatsApp sender",
}
TEMPLATE_FORM = "{content_sid: HX…, variables: {'1': '{order_number}'}}"


def reason_for(code: int | None) -> str | None:
    """What a Twilio WhatsApp error code means for the operator, if it is one of them."""
    return REASONS.get(code) if code is not None else None


# -- addresses --------------------------------------------------------------------------


def address(number: str) -> str:
    """Twilio's WhatsApp address of an E.164 number: `whatsapp:+33612345678`."""
    return number if number.startswith(PREFIX) else PREFIX + number


def is_whatsapp(address: str) -> bool:
    return address.startswith(PREFIX)


def number_of(address: str) -> str:
    """The E.164 number in a WhatsApp address (an SMS number as it is)."""
    return address.removeprefix(PREFIX)


# -- a rule's template ------------------------------------------------------------------


@dataclass(frozen=True)
class ContentTemplate:
    """An approved Content template (`sid`) and each of its variables as a message template."""

    sid: str
    variables: Mapping[str, Template]

    @property
    def names(self) -> set[str]:
        """The record's fields its variables read."""
        return set().union(*(t.names for t in self.variables.values()))

    def render(self, value: Callable[[str], Any], locale: str | None = None) -> dict[str, str]:
        return {key: t.render(value, locale) for key, t in self.variables.items()}


def load_content(spec: Node, kinds: Mapping[str, str], channel: str) -> ContentTemplate | None:
    """A rule's `template:` (WhatsApp only): its content_sid and variables, checked now."""
    given = spec.get("template", dict, None)
    if given is None:
        return None
    if channel != "whatsapp":
        raise spec.error("template", f"a template is for channel whatsapp, not {channel}")
    node = Node(spec.file, spec.where("template"), given)
    sid = node.get("content_sid", str).strip()
    if not CONTENT_SID.match(sid):
        raise node.error("content_sid", f"expected HX and 32 hex digits, got {sid[:40]!r}")
    raw = node.get("variables", dict, {})
    variables = Node(node.file, node.where("variables"), raw)
    compiled = {}
    for key in raw:
        name = str(key)  # YAML reads {1: …} with a number as its key
        if not _VARIABLE.match(name):
            raise variables.error(name, "expected a variable number (1, 2…) or name")
        text = raw[key]
        if not isinstance(text, str | int):
            raise variables.error(
                name, f"expected a text such as '{{order_number}}': {TEMPLATE_FORM}"
            )
        try:
            compiled[name] = compile_template(str(text), kinds)
        except TemplateError as exc:
            raise variables.error(name, str(exc)) from None
    node.done()
    return ContentTemplate(sid, compiled)


class HasContent(Protocol):
    """A rule, as far as its WhatsApp template goes (rules imports this module)."""

    @property
    def content(self) -> ContentTemplate | None: ...


def content_of(rule: HasContent, value: Callable[[str], Any], locale: str | None) -> str | None:
    """The notification's `content`: the rule's template with its variables rendered from
    the record (JSON text), or None for a rule without one (free text only)."""
    if rule.content is None:
        return None
    variables = rule.content.render(value, locale)
    return json.dumps({"sid": rule.content.sid, "variables": variables}, ensure_ascii=False)


# -- the 24-hour window, at send time ---------------------------------------------------


def within_window(last_inbound: datetime | None, now: datetime) -> bool:
    """Whether free text reaches someone who last wrote at `last_inbound` (None: never)."""
    return last_inbound is not None and now - last_inbound < WINDOW_TRUSTED


def message_fields(n: Notification, last_inbound: datetime | None, now: datetime) -> dict[str, str]:
    """What carries `n`: free text (`Body`) inside the window; outside it the template
    (`ContentSid`, `ContentVariables`) when there is one, else free text all the same (Twilio
    refuses it with 63016, and the notification is reported failed)."""
    if within_window(last_inbound, now) or not n.content:
        return {"Body": n.body}
    content = json.loads(n.content)
    fields = {"ContentSid": str(content["sid"])}
    if content.get("variables"):  # a template without variables: none sent
        fields["ContentVariables"] = json.dumps(content["variables"], ensure_ascii=False)
    return fields
