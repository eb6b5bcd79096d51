"""The magic numbers of Twilio's test credentials (TWILIO.md §4): what each answers.

A number maps to the error code Twilio answers for it, 0 for "accepted".
"""

from __future__ import annotations

MAGIC_SMS_TO = {
    "+15005550001": 21211,
    "+15005550002": 21612,
    "+15005550003": 21408,
    "+15005550004": 21610,
    "+15005550009": 21614,
}
MAGIC_SMS_FROM = {"+15005550006": 0, "+15005550001": 21212, "+15005550007": 21606}
MAGIC_SMS_FROM |= {"+15005550008": 21611}
MAGIC_CALL_TO = {
    "+15005550001": 21217,
    "+15005550002": 21214,
    "+15005550003": 21215,
    "+15005550004": 21216,
}
MAGIC_CALL_FROM = {"+15005550006": 0, "+15005550001": 21212}
MAGIC_BUY_NUMBER = {"+15005550000": 21422, "+15005550001": 21421}
