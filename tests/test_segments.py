from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from x3twilio.segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    Segments,
    segment_info,
    ucs2_characters,
)

EMOJI = "\U0001f61c"  # outside the BMP: a surrogate pair


# The verified examples of TWILIO.md §10 (Twilio's own calculator tests).
@pytest.mark.parametrize(
    ("body", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),
        ("€" * 81, "GSM-7", 2),
        ("a" * 159 + "€", "GSM-7", 2),
        ("ł" * 70, "UCS-2", 1),
        ("ł" * 71, "UCS-2", 2),
        ("ł" * 134, "UCS-2", 2),
        ("ł" * 135, "UCS-2", 3),
        (EMOJI * 35, "UCS-2", 1),
        (EMOJI * 36, "UCS-2", 2),
    ],
)
def test_segment_info_should_match_twilios_calculator(
    body: str, encoding: str, segments: int
) -> None:
    info = segment_info(body)

    assert (info.encoding, info.segments) == (encoding, segments)


def test_units_should_count_escapes_as_two_septets_and_emoji_as_two_units() -> None:
    assert segment_info("€" * 80) == Segments("GSM-7", 1, 160)
    assert segment_info(EMOJI * 35) == Segments("UCS-2", 1, 70)
    assert segment_info("ł" * 71) == Segments("UCS-2", 2, 71)


def test_the_calculators_three_segment_gsm_message_should_leave_one_char() -> None:
    body = ("1234567890" * 31)[:307]

    assert segment_info(body).segments == 3  # 153 + 153 + 1


def test_the_calculators_three_segment_ucs2_message_should_leave_one_char() -> None:
    body = EMOJI + ("1234567890" * 14)[1:134]  # 2 + 133 units = 67 + 67 + 1

    assert segment_info(body) == Segments("UCS-2", 3, 135)


def test_an_escape_pair_should_never_be_split_across_segments() -> None:
    # 306 septets would fit in two segments if the € could straddle them.
    body = "a" * 152 + "€" + "a" * 152

    assert segment_info(body) == Segments("GSM-7", 3, 306)


def test_a_surrogate_pair_should_never_be_split_across_segments() -> None:
    body = "ł" * 66 + EMOJI + "ł" * 66

    assert segment_info(body) == Segments("UCS-2", 3, 134)


def test_one_non_gsm_character_should_switch_the_whole_message_to_ucs2() -> None:
    info = segment_info("a" * 100 + "’")

    assert info == Segments("UCS-2", 2, 101)


@pytest.mark.parametrize("char", ["ç", "`", "ê", "’", EMOJI])
def test_characters_outside_gsm7_should_force_ucs2(char: str) -> None:
    assert segment_info(char).encoding == "UCS-2"


@pytest.mark.parametrize("char", ["Ç", "é", "à", "Δ", "¤", "\n", "\r", "\f", "€", "@"])
def test_gsm7_characters_should_stay_gsm7(char: str) -> None:
    assert segment_info(char).encoding == "GSM-7"


def test_the_character_tables_should_have_their_published_sizes() -> None:
    assert len(GSM7_BASIC) == 127  # plus ESC, which is not a character of its own
    assert len(GSM7_EXTENSION) == 10


def test_empty_body_should_cost_one_segment() -> None:
    assert segment_info("") == Segments("GSM-7", 1, 0)


def test_ucs2_characters_should_list_each_offender_once_in_order() -> None:
    assert ucs2_characters("Café ’ok’ naïve ç ç " + EMOJI) == ["’", "ï", "ç", EMOJI]
    assert ucs2_characters("Plain GSM € [text]") == []


gsm_plain = st.text(alphabet=sorted(GSM7_BASIC), max_size=1600)
bmp_non_gsm = st.text(alphabet="łąęśćżźńóÿŁ€ab", min_size=1, max_size=1600).map(
    lambda body: body + "ł"
)


@given(gsm_plain)
def test_plain_gsm_bodies_should_follow_160_then_153(body: str) -> None:
    expected = 1 if len(body) <= 160 else math.ceil(len(body) / 153)

    assert segment_info(body) == Segments("GSM-7", expected, len(body))


@given(bmp_non_gsm)
def test_bmp_ucs2_bodies_should_follow_70_then_67(body: str) -> None:
    expected = 1 if len(body) <= 70 else math.ceil(len(body) / 67)

    assert segment_info(body) == Segments("UCS-2", expected, len(body))


@given(st.text(max_size=400))
def test_units_should_equal_septets_or_utf16_code_units(body: str) -> None:
    info = segment_info(body)

    if info.encoding == "UCS-2":
        assert info.units == len(body.encode("utf-16-le")) // 2
        assert ucs2_characters(body)
    else:
        assert info.units == len(body) + sum(c in GSM7_EXTENSION for c in body)
        assert ucs2_characters(body) == []
    assert info.segments >= math.ceil(info.units / (160 if info.encoding == "GSM-7" else 70))
