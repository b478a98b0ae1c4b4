"""SMS encoding and segment counting.

Expected values are worked out by hand in the comments. The reference arithmetic is
the one Twilio's open-source segment calculator uses: a segment is 140 octets = 1120
bits; a split message spends 6 octets (48 bits) per segment on the User Data Header,
leaving 1072 bits: 1072 // 7 = 153 septets, 1072 // 16 = 67 UTF-16 units. Unsplit:
1120 // 7 = 160 septets, 1120 // 16 = 70 units.
"""

import dataclasses
import math

import pytest

from engine.sms import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    Encoding,
    SegmentLimitExceeded,
    SmsMeasure,
    check_segments,
    measure,
    non_gsm_characters,
    smart_encode,
)

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # man ZWJ woman ZWJ girl ZWJ boy: 11 units
FLAG_NL = "\U0001f1f3\U0001f1f1"  # two regional indicators: 4 units, one flag
THUMBS_UP_MEDIUM = "\U0001f44d\U0001f3fd"  # thumbs up + skin tone modifier: 4 units
E_ACUTE_DECOMPOSED = "e\u0301"  # e + combining acute: 2 units, one letter
GRINNING = "\U0001f600"  # outside the BMP: one surrogate pair, 2 units
NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("text", "segments", "units", "per_segment", "remaining"),
    [
        # Empty: providers reject an empty body, so it is no segment rather than one.
        ("", 0, 0, 160, 160),
        ("a", 1, 1, 160, 159),
        ("a" * 160, 1, 160, 160, 0),
        # One more and the text is split: 153 + 8, so 153 - 8 = 145 left in the second.
        ("a" * 161, 2, 161, 153, 145),
        ("a" * 153 * 2, 2, 306, 153, 0),
        ("a" * (153 * 2 + 1), 3, 307, 153, 152),
        ("a" * 153 * 3, 3, 459, 153, 0),
        # 80 extension characters are exactly 160 septets: still one message.
        ("€" * 80, 1, 160, 160, 0),
        # 161 septets: 76 pairs (152 septets) fill the first segment, the 77th pair would
        # need septets 153-154, so it moves: 4 pairs + "a" = 9 septets in the second.
        ("€" * 80 + "a", 2, 161, 153, 144),
    ],
)
def test_gsm7_segment_boundaries(text: str, segments: int, units: int, per_segment: int, remaining: int) -> None:
    sms = measure(text)
    assert sms.encoding == "GSM-7"
    assert (sms.segments, sms.units, sms.per_segment, sms.remaining) == (segments, units, per_segment, remaining)
    assert sms.characters == len(text)


@pytest.mark.parametrize(
    ("text", "segments", "units", "per_segment", "remaining"),
    [
        ("ł" * 70, 1, 70, 70, 0),
        ("ł" * 71, 2, 71, 67, 63),
        ("ł" * 67 * 2, 2, 134, 67, 0),
        ("ł" * (67 * 2 + 1), 3, 135, 67, 66),
        # Every character counts as one unit in UCS-2, GSM-7 ones included.
        ("a" * 69 + "ł", 1, 70, 70, 0),
        ("a" * 70 + "ł", 2, 71, 67, 63),
        # An emoji outside the BMP is two units: 69 + 2 = 71 no longer fits one message.
        ("a" * 68 + GRINNING, 1, 70, 70, 0),
        ("a" * 69 + GRINNING, 2, 71, 67, 63),
    ],
)
def test_ucs2_segment_boundaries(text: str, segments: int, units: int, per_segment: int, remaining: int) -> None:
    sms = measure(text)
    assert sms.encoding == "UCS-2"
    assert (sms.segments, sms.units, sms.per_segment, sms.remaining) == (segments, units, per_segment, remaining)


def test_counts_agree_with_plain_division_when_nothing_can_straddle() -> None:
    # With only single-unit characters, first-fit packing is ceil(n / per_segment).
    for n in range(161, 1000):
        assert measure("a" * n).segments == math.ceil(n / 153)
    for n in range(71, 500):
        assert measure("ł" * n).segments == math.ceil(n / 67)


def test_extension_characters_take_two_septets() -> None:
    sms = measure("[x]\f")
    assert (sms.encoding, sms.characters, sms.units) == ("GSM-7", 4, 7)
    for char in GSM7_EXTENSION:
        assert measure(char).units == 2, repr(char)


def test_every_basic_character_is_one_septet() -> None:
    # 128 table positions less the escape to the extension table.
    assert len(GSM7_BASIC) == 127
    sms = measure("".join(sorted(GSM7_BASIC)))
    assert (sms.encoding, sms.units, sms.characters) == ("GSM-7", 127, 127)


@pytest.mark.parametrize(
    ("tail", "segments", "remaining"),
    [
        # 152 + 2 + 151 = 305 septets. The € would take septets 153-154, straddling the
        # boundary, so it moves and septet 153 of the first segment stays unused:
        # the second segment holds 2 + 151 = 153 septets exactly.
        (151, 2, 0),
        # 306 septets: plain division says 2 segments, but the unused septet pushes the
        # last "a" into a third segment (2 + 151 = 153, then 1).
        (152, 3, 152),
    ],
)
def test_an_extension_character_is_never_split_across_segments(tail: int, segments: int, remaining: int) -> None:
    sms = measure("a" * 152 + "€" + "a" * tail)
    assert sms.encoding == "GSM-7"
    assert (sms.segments, sms.remaining) == (segments, remaining)


@pytest.mark.parametrize("culprit", ["ł", "ç", GRINNING, "\u2019", NBSP, "\x1b"])
def test_one_non_gsm_character_switches_the_whole_message_to_ucs2(culprit: str) -> None:
    # 100 septets would be one GSM-7 message; 101 UCS-2 units are two segments.
    text = "a" * 50 + culprit + "a" * 50
    assert measure("a" * 100).segments == 1
    sms = measure(text)
    assert sms.encoding == "UCS-2"
    assert sms.segments == 2
    assert sms.characters == 101


@pytest.mark.parametrize(
    ("before", "segments"),
    [
        # 65 + 2 = 67: the pair ends the first segment exactly, 67 more fill the second.
        (65, 2),
        # The pair would take units 67-68: it moves, unit 67 stays unused, and 134 units
        # need three segments although 134 / 67 = 2.
        (66, 3),
    ],
)
def test_a_surrogate_pair_is_never_split_at_the_67_unit_boundary(before: int, segments: int) -> None:
    text = "ł" * before + GRINNING + "ł" * (134 - before - 2)
    sms = measure(text)
    assert (sms.encoding, sms.units, sms.segments) == ("UCS-2", 134, segments)


@pytest.mark.parametrize(
    ("cluster", "head"),
    [
        # head: units of the cluster's leading code points that would exactly fill the
        # first segment if it were split between code points.
        (FAMILY, 9),  # man ZWJ woman ZWJ girl ZWJ = 2+1+2+1+2+1, the boy would follow
        (FLAG_NL, 2),  # one regional indicator: a meaningless letter on its own
        (THUMBS_UP_MEDIUM, 2),  # a yellow thumb, and a lone skin-tone swatch after it
        (E_ACUTE_DECOMPOSED, 1),  # a bare "e", and an accent on nothing
    ],
)
def test_a_grapheme_cluster_is_never_split(cluster: str, head: int) -> None:
    # 134 units (67 * 2) in all, with the cluster starting `head` units before the end of
    # the first segment. Splitting between code points would fill both segments exactly
    # and need two. Kept whole, the cluster moves on, the first segment keeps `head` units
    # unused, and the second overflows by `head`: three segments.
    units = len(cluster.encode("utf-16-le")) // 2
    before = 67 - head
    sms = measure("ł" * before + cluster + "ł" * (134 - before - units))
    assert sms.units == 134
    assert (sms.segments, sms.remaining) == (3, 67 - head)
    assert sms.characters == 1 + 134 - units


def test_a_cluster_longer_than_a_segment_is_split_between_code_points_only() -> None:
    # One letter carrying 40 skin-tone modifiers is one 81-unit cluster: it cannot fit any
    # segment, so it is split. "ł" + "a" + 32 modifiers = 66 units; the 33rd modifier is a
    # surrogate pair that would straddle, so it opens the second segment: 8 pairs = 16 units.
    sms = measure("ł" + "a" + "\U0001f3fd" * 40)
    assert (sms.characters, sms.units, sms.segments, sms.remaining) == (2, 82, 2, 51)
    zalgo = measure("e" + "\u0301" * 100)
    assert (zalgo.characters, zalgo.units, zalgo.segments, zalgo.remaining) == (1, 101, 2, 33)


def test_characters_are_grapheme_clusters_in_ucs2_and_characters_in_gsm7() -> None:
    assert measure(FAMILY).characters == 1
    assert measure(FAMILY).units == 11
    assert measure(f"Hi {FLAG_NL}!").characters == 5
    # GSM-7 counts each character, so CR LF is two (one septet each).
    assert measure("a\r\nb").characters == 4


def test_empty_text_is_gsm7_with_no_segment() -> None:
    sms = measure("")
    assert (sms.encoding, sms.segments, sms.characters, sms.units) == ("GSM-7", 0, 0, 0)
    assert check_segments("", 1) == sms


def test_a_lone_surrogate_is_counted_not_crashed_on() -> None:
    sms = measure("a\ud800")
    assert (sms.encoding, sms.units, sms.segments) == ("UCS-2", 2, 1)


def test_encoding_is_the_plain_string() -> None:
    assert isinstance(measure("a").encoding, str)
    assert measure("a").encoding == "GSM-7"
    assert measure("ł").encoding == "UCS-2"
    assert f"{measure('ł').encoding}" == "UCS-2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\u201cquoted\u201d", '"quoted"'),
        ("it\u2019s \u2018fine\u2019", "it's 'fine'"),
        ("\u00abbonjour\u00bb", '"bonjour"'),
        ("a \u2013 b \u2014 c", "a - b - c"),
        ("wait\u2026", "wait..."),
        (f"10{NBSP}km\u2009away\u202fnow", "10 km away now"),
        ("\u2022 one", "- one"),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("\uff21\uff22\uff23\uff01", "ABC!"),
        ("\u00bd price", "1/2 price"),
        # NFC composes a decomposed é into the GSM-7 é.
        ("caf" + E_ACUTE_DECOMPOSED, "caf\u00e9"),
        # Letters without a GSM-7 form and emoji are left alone.
        (f"\u0142\u00f3d\u017a {GRINNING}", f"\u0142\u00f3d\u017a {GRINNING}"),
    ],
)
def test_smart_encode_replaces_look_alikes(text: str, expected: str) -> None:
    assert smart_encode(text) == expected


def test_smart_encoding_turns_typographic_punctuation_back_into_gsm7() -> None:
    text = "\u201cBring a friend\u201d \u2014 you\u2019ll both save\u2026"
    assert measure(text).encoding == "UCS-2"
    smart = measure(text, smart=True)
    assert smart.encoding == "GSM-7"
    assert smart == measure(smart_encode(text))


def test_smart_encoding_can_save_segments() -> None:
    # 146 plain characters + 4 curly quotes = 150: three UCS-2 segments (67 + 67 + 16),
    # one GSM-7 message once the quotes are straight.
    text = "\u201c" + "a" * 73 + "\u201d \u2018" + "b" * 72 + "\u2019"
    assert len(text) == 150
    assert (measure(text).encoding, measure(text).segments) == ("UCS-2", 3)
    assert (measure(text, smart=True).encoding, measure(text, smart=True).segments) == ("GSM-7", 1)


def test_smart_encoding_leaves_emoji_in_ucs2() -> None:
    sms = measure(f"\u201cHi\u201d {GRINNING}", smart=True)
    assert sms.encoding == "UCS-2"
    assert sms.characters == 6


def test_check_segments_returns_the_measure_within_the_limit() -> None:
    assert check_segments("a" * 306, 2) == measure("a" * 306)


def test_check_segments_names_the_characters_that_forced_ucs2() -> None:
    text = ("Zap \u0142 " + GRINNING + NBSP) * 30
    with pytest.raises(SegmentLimitExceeded) as raised:
        check_segments(text, 2)
    error = raised.value
    message = str(error)
    assert error.limit == 2
    assert error.measure == measure(text)
    assert error.offending == ("\u0142", GRINNING, NBSP)
    assert f"needs {error.measure.segments} segments" in message
    assert "at most 2" in message
    assert "UCS-2" in message
    assert '"\u0142"' in message
    assert f'"{GRINNING}"' in message
    # Invisible characters are named, since quoting them shows nothing.
    assert "U+00A0 NO-BREAK SPACE" in message


def test_check_segments_lists_only_the_first_few_offending_characters() -> None:
    text = "\u0105\u0107\u0119\u0142\u0144\u015b\u017a\u017c" * 40
    with pytest.raises(SegmentLimitExceeded) as raised:
        check_segments(text, 1)
    message = str(raised.value)
    assert '"\u0105", "\u0107", "\u0119", "\u0142", "\u0144" and 3 more' in message
    assert '"\u017c"' not in message


def test_check_segments_shows_whole_clusters() -> None:
    assert non_gsm_characters(f"ok {THUMBS_UP_MEDIUM} caf{E_ACUTE_DECOMPOSED} {THUMBS_UP_MEDIUM}") == [
        THUMBS_UP_MEDIUM,
        E_ACUTE_DECOMPOSED,
    ]


def test_check_segments_for_gsm7_mentions_double_characters_not_ucs2() -> None:
    with pytest.raises(SegmentLimitExceeded) as raised:
        check_segments("{x}" * 60, 1)
    message = str(raised.value)
    assert "needs 2 segments" in message
    assert "GSM-7" in message
    assert "count as two" in message
    assert "UCS-2" not in message


def test_check_segments_applies_smart_encoding_first() -> None:
    text = "\u2018a\u2019" * 50  # 150 characters: three UCS-2 segments, one GSM-7 message
    with pytest.raises(SegmentLimitExceeded):
        check_segments(text, 1)
    assert check_segments(text, 1, smart=True).encoding == "GSM-7"


@pytest.mark.parametrize("limit", [0, -1])
def test_check_segments_rejects_a_limit_below_one(limit: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        check_segments("a", limit)


def test_the_error_refuses_a_measure_within_the_limit() -> None:
    with pytest.raises(ValueError, match="within the limit"):
        SegmentLimitExceeded(measure("a"), 1)


@pytest.mark.parametrize(
    "fields",
    [
        {"segments": -1},
        {"remaining": 161},
        {"per_segment": 153},  # a single message has 160 septets, not 153
        {"units": 0},  # units without segments
        {"encoding": "UTF-8"},
    ],
)
def test_a_measure_validates_itself(fields: dict[str, object]) -> None:
    valid = {"encoding": "GSM-7", "segments": 1, "characters": 5, "units": 5, "per_segment": 160, "remaining": 155}
    with pytest.raises(ValueError):
        SmsMeasure(**(valid | fields))  # type: ignore[arg-type]


def test_a_measure_is_immutable_and_normalises_its_encoding() -> None:
    sms = SmsMeasure("UCS-2", 1, 1, 2, 70, 68)  # type: ignore[arg-type]
    assert sms.encoding is Encoding.UCS2
    with pytest.raises(dataclasses.FrozenInstanceError):
        sms.segments = 2  # type: ignore[misc]
