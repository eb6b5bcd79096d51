"""What the senders and the digest they fold share: the separator between notifications.

What a failed request means (`Outcome`) is the transport's: `x3twilio.transport`.
"""

from __future__ import annotations

DIGEST_SEPARATOR = "\n\n"  # between the notifications folded into one digest message
