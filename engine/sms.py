"""SMS encoding and segment counting: what a text message will cost before it is sent.

An SMS carries 140 octets. A text is sent either as GSM-7 (the GSM 03.38 alphabet,
7 bits a character: 160 per message) or, as soon as one character is outside that
alphabet, the whole text is sent as UCS-2 (really UTF-16, 16 bits a unit: 70 per
message). A longer text is split into concatenated segments, each of which gives up
6 octets to a User Data Header so the phone can reassemble them: 153 septets or 67
UTF-16 units per segment. Every segment is billed, so marketers need the count
while they write, and a campaign caps it.

Splitting rules, which make our count a guarantee rather than an estimate:

* GSM-7: a character from the extension table (``^{}[]~\\|€`` and form feed) is an
  escape septet plus a septet, and the pair is never split; if only one septet is
  left in a segment, the pair moves to the next one and that septet stays unused.
* UCS-2: a surrogate pair (an emoji outside the Basic Multilingual Plane) is never
  split, and neither is a grapheme cluster (a flag, a ZWJ family emoji, a letter with
  combining marks, an emoji with a skin tone), so no recipient sees half a
  character (a split pair arrives as two replacement glyphs). Twilio's segment
  calculator treats grapheme clusters as indivisible too. Only a cluster
  longer than a whole segment (pathological stacks of combining marks) is split,
  and then at code point boundaries, never inside a surrogate pair. Keeping clusters
  whole can cost a segment more than a naive ``ceil(len / 67)``: that is deliberate,
  we would rather over-count than have a campaign billed above its limit.

Grapheme clusters come from the ``regex`` module's ``\\X`` (Unicode UAX #29), not
hand-written rules: emoji sequences change with every Unicode version.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final

import regex
from flask_babel import gettext


class Encoding(StrEnum):
    # StrEnum, so a measure's encoding compares equal to (and serialises as) the plain string.
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


# The GSM 03.38 basic character set, in table order (0x00-0x7F). 0x1B is the escape to
# the extension table: it is a control septet, not a character a text may contain, so
# it is left out and a literal ESC in a text forces UCS-2 instead of corrupting the next
# character. 0x09 is mapped to capital Ç, as in the 3GPP mapping.
GSM7_BASIC: Final[frozenset[str]] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"  # 0x10-0x1F without 0x1B (escape)
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

# The extension table: each of these costs two septets (escape + character).
GSM7_EXTENSION: Final[frozenset[str]] = frozenset("\f^{}\\[]~|€")

GSM7_SINGLE: Final = 160  # 140 octets * 8 / 7 bits
GSM7_MULTIPART: Final = 153  # (140 - 6 octets of header) * 8 / 7, rounded down
UCS2_SINGLE: Final = 70  # 140 octets / 2
UCS2_MULTIPART: Final = 67  # (140 - 6) / 2

_LIMITS: Final[dict[Encoding, tuple[int, int]]] = {
    Encoding.GSM7: (GSM7_SINGLE, GSM7_MULTIPART),
    Encoding.UCS2: (UCS2_SINGLE, UCS2_MULTIPART),
}

_GRAPHEME: Final = regex.compile(r"\X")


def _smart_map() -> dict[int, str]:
    """Unicode look-alikes and their GSM-7 stand-ins, as a str.translate table.

    Modelled on the list Twilio documents for its "Smart Encoding" (punctuation,
    typographic spaces, fullwidth forms), so texts pasted from word processors or
    typed on phones that "smarten" quotes stay GSM-7. Letters are deliberately not
    transliterated (no ł -> l, no á -> a): changing the spelling of a name or a word
    is worse than sending a second segment.
    """
    groups: dict[str, str] = {
        '"': "\u00ab\u00bb\u201c\u201d\u201e\u201f\u2033\u02ba\u02ee\u275d\u275e\u301d\u301e\u301f",
        "'": "\u2018\u2019\u201a\u201b\u2032\u2039\u203a\u02b9\u02bb\u02bc\u02bd\u02c8\u02ca\u02cb"
        "\u00b4\u0060\u275b\u275c",
        "-": "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\u2022\u2023\u2027\ufe58\ufe63",
        " ": "\t\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000",
        "\n": "\u2028\u2029",  # line and paragraph separators: a line break is what was meant
        "": "\u00ad\u200b\u2060\ufeff",  # soft hyphen and zero-width characters: invisible anyway
        "/": "\u00f7\u2044\u2215",
        ".": "\u3002\uff61",
        ",": "\u3001\uff64",
    }
    table: dict[int, str] = {ord(char): gsm for gsm, chars in groups.items() for char in chars}
    table |= {
        ord("\u2026"): "...",  # horizontal ellipsis
        ord("\u203c"): "!!",
        ord("\u00bc"): "1/4",
        ord("\u00bd"): "1/2",
        ord("\u00be"): "3/4",
    }
    # Fullwidth ASCII (U+FF01-U+FF5E) sits exactly 0xFEE0 above ASCII. The grave accent
    # is the one printable ASCII character missing from GSM-7, so it becomes an apostrophe.
    for code in range(0xFF01, 0xFF5F):
        ascii_char = chr(code - 0xFEE0)
        table[code] = ascii_char if ascii_char != "`" else "'"
    # Internal check, not input validation: every replacement must itself be GSM-7.
    assert all(_is_gsm7(replacement) for replacement in table.values())
    return table


def _is_gsm7(text: str) -> bool:
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


_SMART: Final[dict[int, str]] = _smart_map()


def smart_encode(text: str) -> str:
    """Replace common Unicode look-alikes with GSM-7 characters (curly quotes, dashes, odd spaces, ...).

    The text is first composed to NFC, which changes no meaning (canonically equivalent
    text) but turns a decomposed "e" + combining acute, as some keyboards and macOS
    pastes produce, into the single "é" that GSM-7 has. Characters without a stand-in,
    emoji for instance, are left alone, so the result may still need UCS-2. Whoever
    measures with ``smart=True`` must also send ``smart_encode(text)``.
    """
    return unicodedata.normalize("NFC", text).translate(_SMART)


@dataclass(frozen=True)
class SmsMeasure:
    """How a text is encoded and how many segments it takes.

    ``characters`` counts what a reader sees: for GSM-7 the characters of the text
    (every GSM-7 character is one code point and one visible character), for UCS-2
    grapheme clusters, so a family emoji made of seven code points counts as one.
    ``units`` counts what the network carries: septets for GSM-7 (two for an
    extension character), UTF-16 code units for UCS-2 (two for an emoji outside the
    BMP). ``remaining`` is how many units still fit in the last segment before
    another segment is needed, with ``per_segment`` the limit that applies (160/70 for
    a single message, 153/67 once the text is split). An empty text has no segment;
    sending one is rejected elsewhere, as providers reject an empty body.
    """

    encoding: Encoding
    segments: int
    characters: int
    units: int
    per_segment: int
    remaining: int

    def __post_init__(self) -> None:
        # Normalise first, so a measure built from the plain string is a real Encoding.
        object.__setattr__(self, "encoding", Encoding(self.encoding))
        single, multipart = _LIMITS[self.encoding]
        if min(self.segments, self.characters, self.units, self.remaining) < 0:
            raise ValueError(f"an SMS measure cannot be negative: {self!r}")
        if (self.segments == 0) != (self.units == 0) or (self.units == 0) != (self.characters == 0):
            raise ValueError(f"only an empty text has no segment, no unit and no character: {self!r}")
        expected_limit = multipart if self.segments > 1 else single
        if self.per_segment != expected_limit:
            raise ValueError(f"{self.segments} segment(s) of {self.encoding} hold {expected_limit} units each")
        if self.remaining > self.per_segment or self.units > self.segments * self.per_segment:
            raise ValueError(f"{self.units} units do not fit the given segments: {self!r}")

    @property
    def is_multipart(self) -> bool:
        return self.segments > 1


def measure(text: str, *, smart: bool = False) -> SmsMeasure:
    """Encoding and segment count for ``text`` (after ``smart_encode`` if ``smart``)."""
    if smart:
        text = smart_encode(text)
    if _is_gsm7(text):
        # Per character: an extension character's escape+char pair is one indivisible item.
        septets = [2 if char in GSM7_EXTENSION else 1 for char in text]
        return _segment(Encoding.GSM7, septets, characters=len(text))
    clusters = _GRAPHEME.findall(text)
    return _segment(Encoding.UCS2, _ucs2_items(clusters), characters=len(clusters))


def _utf16_units(code_point: str) -> int:
    # Above the BMP a code point is a surrogate pair. Counted arithmetically rather than by
    # encoding, so a lone surrogate (invalid, but possible in a Python str) cannot crash a count.
    return 2 if ord(code_point) > 0xFFFF else 1


def _ucs2_items(clusters: Iterable[str]) -> list[int]:
    """Sizes, in UTF-16 units, of the pieces a UCS-2 text may be split between, in order."""
    items: list[int] = []
    for cluster in clusters:
        sizes = [_utf16_units(code_point) for code_point in cluster]
        if sum(sizes) <= UCS2_MULTIPART:
            items.append(sum(sizes))
        else:
            # Longer than any segment, so it must be split: at code points, each of which
            # (1 or 2 units, a surrogate pair being one code point) stays whole.
            items.extend(sizes)
    return items


def _segment(encoding: Encoding, items: Sequence[int], *, characters: int) -> SmsMeasure:
    """Pack indivisible items (sizes in units) into segments, first fit in order."""
    single, multipart = _LIMITS[encoding]
    units = sum(items)
    if units <= single:
        # The header only exists on a split message, so a short text gets the full 140 octets.
        segments = 1 if units else 0
        return SmsMeasure(encoding, segments, characters, units, single, single - units)
    segments, used = 1, 0
    for size in items:
        if used + size > multipart:
            # What does not fit moves whole to a new segment; the rest of this one stays unused.
            segments, used = segments + 1, 0
        used += size
    return SmsMeasure(encoding, segments, characters, units, multipart, multipart - used)


def non_gsm_characters(text: str) -> list[str]:
    """The distinct grapheme clusters of ``text`` that force UCS-2, in order of first appearance.

    Whole clusters, not code points, so a marketer is shown "👍🏽" rather than a bare
    skin-tone modifier, or "é" rather than an invisible combining accent.
    """
    found: dict[str, None] = {}
    for cluster in _GRAPHEME.findall(text):
        if not _is_gsm7(cluster):
            found.setdefault(cluster)
    return list(found)


def _describe(cluster: str) -> str:
    # Spaces and invisible characters are the usual culprits in pasted text and cannot be
    # seen when quoted, so they are named instead.
    if len(cluster) == 1 and (not cluster.isprintable() or cluster.isspace()):
        name = unicodedata.name(cluster, "unnamed character")
        return f"U+{ord(cluster):04X} {name}"
    return f'"{cluster}"'


class SegmentLimitExceeded(ValueError):
    """A text needs more segments than its campaign allows; str() is written for marketers."""

    SHOWN: Final = 5  # offending characters listed in the message; more would be noise

    def __init__(self, sms: SmsMeasure, limit: int, offending: Sequence[str] = ()) -> None:
        if sms.segments <= limit:
            raise ValueError(f"{sms.segments} segment(s) are within the limit of {limit}")
        self.measure = sms
        self.limit = limit
        self.offending = tuple(offending)
        # Shown to marketers in the console (checks of their templates), in their language.
        message = gettext(
            "This text message needs %(segments)s segments, but the campaign allows at most %(limit)s. "
            "Encoding: %(encoding)s, %(units)s units at %(per_segment)s per segment.",
            segments=sms.segments,
            limit=limit,
            encoding=sms.encoding,
            units=sms.units,
            per_segment=sms.per_segment,
        )
        if sms.encoding is Encoding.GSM7 and sms.units > sms.characters:
            message += " " + gettext("The characters ^ { } [ ] ~ \\ | and € count as two units each.")
        if sms.encoding is Encoding.UCS2 and self.offending:
            shown = ", ".join(_describe(cluster) for cluster in self.offending[: self.SHOWN])
            more = len(self.offending) - self.SHOWN
            if more > 0:
                shown = gettext("%(shown)s and %(more)s more", shown=shown, more=more)
            message += " " + gettext(
                "It is sent as UCS-2, which fits %(ucs2)s characters in a single message instead of %(gsm7)s, "
                "because of these characters: %(shown)s. Replacing or removing them lets more text fit.",
                ucs2=UCS2_SINGLE,
                gsm7=GSM7_SINGLE,
                shown=shown,
            )
        super().__init__(message)


def check_segments(text: str, limit: int, *, smart: bool = False) -> SmsMeasure:
    """Measure ``text`` and raise SegmentLimitExceeded if it needs more than ``limit`` segments.

    Only the segment count is checked: an empty text (0 segments) passes here.
    """
    if limit < 1:
        raise ValueError(f"a segment limit must be at least 1, not {limit}")
    if smart:
        text = smart_encode(text)
    sms = measure(text)
    if sms.segments > limit:
        offending = non_gsm_characters(text) if sms.encoding is Encoding.UCS2 else []
        raise SegmentLimitExceeded(sms, limit, offending)
    return sms


# -- the console preview's figures ---------------------------------------------------------


@dataclass(frozen=True)
class SmsPrice:
    """What one segment costs (SMS_PRICE_PER_SEGMENT, SMS_PRICE_CURRENCY): an estimate for marketers."""

    per_segment: Decimal = Decimal("0.0079")
    currency: str = "USD"

    def __post_init__(self) -> None:
        if self.per_segment < 0:
            raise ValueError("a price per segment cannot be negative")
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise ValueError(f"a currency is a three-letter ISO 4217 code, not {self.currency!r}")

    def of(self, segments: int) -> Decimal:
        return self.per_segment * segments


@dataclass(frozen=True)
class SmsPreview:
    """The text as sent (whitespace collapsed, smart-encoded when the campaign says so) and its figures."""

    text: str
    encoding: str
    segments: int
    characters: int
    units: int  # septets (GSM-7) or UTF-16 units (UCS-2): what segments are counted in
    per_segment: int
    left_in_segment: int  # units still free in the last segment
    segment_limit: int
    smart_encoding: bool
    estimated_cost: Decimal
    currency: str

    @classmethod
    def of(cls, text: str, *, segment_limit: int, smart_encoding: bool, price: SmsPrice) -> SmsPreview:
        """The figures of `text` as it will be sent (already smart-encoded when the campaign says so)."""
        figures = measure(text)
        return cls(
            text=text,
            encoding=str(figures.encoding),
            segments=figures.segments,
            characters=figures.characters,
            units=figures.units,
            per_segment=figures.per_segment,
            left_in_segment=figures.remaining,
            segment_limit=segment_limit,
            smart_encoding=smart_encoding,
            estimated_cost=price.of(figures.segments),
            currency=price.currency,
        )

    @property
    def over_limit(self) -> bool:
        return self.segments > self.segment_limit

    @property
    def problems(self) -> tuple[str, ...]:
        """Why such a text is not sent: the same words the upload check and the send loop use,
        naming the characters that force UCS-2."""
        try:
            check_segments(self.text, self.segment_limit)
        except SegmentLimitExceeded as exceeded:
            return (f"sms.txt: {exceeded} Such a text is not sent.",)
        return ()
