"""A rule's fallback: another channel, tried once when the first notification does not arrive.

The fallback is decided with the first one (same record, same recipient, its own id) and
waits in the outbox, linked by `fallback_of`. It goes out as soon as the first one ends
failed, skipped or undelivered, or `after` its decision when no delivery receipt came by
then (on channels that have receipts); a receipt that says it arrived drops it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from x3twilio.model import CHANNELS, Channel, is_channel
from x3twilio.templates import Template, TemplateError, compile_template
from x3twilio.yamlnode import Node

# Which receipts say arrived or not, and which channels have them: outbox_sql.ARRIVED and
# NOT_ARRIVED, the queries that act on them.
KEYS = ("channel", "after", "subject")


@dataclass(frozen=True)
class Fallback:
    channel: Channel
    after: float  # seconds after the decision: no receipt by then counts as not arrived
    subject: Template | None = None  # email only


def load_fallback(spec: Node, channel: str, kinds: Mapping[str, str]) -> Fallback | None:
    """`fallback: {channel: email, after: 30m}` of a rule on `channel`; None without one."""
    if not spec.has("fallback"):
        return None
    node = spec.child("fallback")
    other = node.get("channel", str)
    if not is_channel(other) or other == channel:
        choices = ", ".join(c for c in CHANNELS if c != channel)
        raise node.error("channel", f"expected another channel than {channel}: {choices}")
    after = node.duration("after", 1800.0, low=60.0, high=7 * 86400.0)
    subject = None
    if other == "email":  # the rule's own channel is not email: it has no subject
        try:
            subject = compile_template(node.get("subject", str), kinds)
        except TemplateError as exc:
            raise node.error("subject", str(exc)) from None
    node.done(also=KEYS)
    return Fallback(other, after, subject)
