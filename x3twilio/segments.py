"""Count the SMS segments a message body costs, as Twilio's segment calculator does.

A single SMS carries 140 octets: 160 GSM-7 septets or 70 UCS-2 code units. Once a
message needs more than one, each part spends 6 octets on the concatenation
header, leaving 153 septets or 67 units. One character outside GSM-7 turns the
whole message into UCS-2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# The GSM 03.38 basic character set as Twilio's calculator maps it (LF and CR included).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Reached through ESC, so each costs two septets.
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

SINGLE_CAPACITY: dict[Encoding, int] = {"GSM-7": 160, "UCS-2": 70}
MULTI_CAPACITY: dict[Encoding, int] = {"GSM-7": 153, "UCS-2": 67}


@dataclass(frozen=True)
class Segments:
    """How a body is encoded, how many segments it takes, and its size in code units.

    `units` counts septets for GSM-7 and UTF-16 code units for UCS-2, without headers.
    """

    encoding: Encoding
    segments: int
    units: int


def is_gsm7(char: str) -> bool:
    return char in GSM7_BASIC or char in GSM7_EXTENSION


def ucs2_characters(body: str) -> list[str]:
    """Return the characters that force UCS-2, once each, in order of appearance."""
    return list(dict.fromkeys(char for char in body if not is_gsm7(char)))


def encoding_for(body: str) -> Encoding:
    return "GSM-7" if all(is_gsm7(char) for char in body) else "UCS-2"


def unit_cost(char: str, encoding: Encoding) -> int:
    """Code units one character takes; it is never split across segments."""
    if encoding == "GSM-7":
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1  # a surrogate pair outside the BMP


def count_segments(costs: list[int], encoding: Encoding) -> int:
    """Pack character costs greedily into segments, as the calculator does."""
    if sum(costs) <= SINGLE_CAPACITY[encoding]:
        return 1
    capacity = MULTI_CAPACITY[encoding]
    segments, used = 1, 0
    for cost in costs:
        if used + cost > capacity:
            segments, used = segments + 1, 0
        used += cost
    return segments


def segment_info(body: str) -> Segments:
    """Return the encoding, segment count and code units of an SMS body."""
    encoding = encoding_for(body)
    costs = [unit_cost(char, encoding) for char in body]
    return Segments(encoding, count_segments(costs, encoding), sum(costs))
