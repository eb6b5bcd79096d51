"""Phone numbers: X3 keeps them as free text; Twilio wants E.164."""

from __future__ import annotations

import phonenumbers


def to_e164(text: str, region: str | None) -> str | None:
    """Normalise `text` using `region` (ISO country) for national formats; None if invalid."""
    try:
        number = phonenumbers.parse(text, (region or "").upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_MOBILE_TYPES = (
    phonenumbers.PhoneNumberType.MOBILE,
    # North American numbers do not tell: they may be mobiles, so they count.
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
)


def is_mobile(text: str, region: str | None) -> bool:
    """Whether `text` is a valid number that can take an SMS, as far as its plan tells."""
    try:
        number = phonenumbers.parse(text, (region or "").upper() or None)
    except phonenumbers.NumberParseException:
        return False
    valid = phonenumbers.is_valid_number(number)
    return valid and phonenumbers.number_type(number) in _MOBILE_TYPES


def is_e164(text: str) -> bool:
    return text.startswith("+") and to_e164(text, None) == text


def mask(number: str) -> str:
    """+33612345678 → +336…5678, for logs (never print whole numbers there)."""
    return number if len(number) < 8 else f"{number[:4]}…{number[-4:]}"
