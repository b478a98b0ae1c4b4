"""What people type into the forms (their name, a note for their friends): the rules it
must meet, the same wherever it is checked (the form, a marketer's preview sample)."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from enum import StrEnum
from functools import cache

import phonenumbers
import tldextract

# Links in a note or a name are what turns a send-to-friend form into a spam relay.
_SCHEME_OR_WWW = re.compile(r"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*+:/|www\.", re.IGNORECASE)
# Possessive and anchored on a word start: linear time, whatever a hostile field holds.
_DOTTED = re.compile(r"(?<![\w-])[\w-]++(?:\.[\w-]++)+")


@cache
def _suffixes() -> tldextract.TLDExtract:
    # The Public Suffix List snapshot shipped with tldextract: never fetched at run time.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def contains_link(text: str) -> bool:
    """A URL, or anything a mail client would turn into one: a name under a real public
    suffix (cheap-pills.eu, spam.ai), but not "e.g", "8.30" or a missing space ("it.Great")."""
    if _SCHEME_OR_WWW.search(text):
        return True
    for candidate in _DOTTED.findall(text):
        parts = _suffixes()(candidate)
        if parts.suffix and parts.domain:
            return True
    return False


MARKUP = re.compile(r"[<>]")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

NOTE_MAX = 280
NAME_MAX = 80

# Full stops that NFKC leaves alone but browsers read as a dot in a host name (IDNA's UTS 46
# maps them): "cheap-pills。eu" is a link.
_LOOKALIKE_DOTS = str.maketrans({"\u3002": "."})
# A bare IPv4 address (a path after it or not): a link that needs no domain.
_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d])")
# An IPv4 address written as one number (hexadecimal, decimal or octal: 0x7f000001,
# 2130706433, 017700000001), which browsers also take as a host: only where it is used as one,
# before a path or a port, or after "http" (a big number in a sentence is no link).
_NUMERIC_HOST = re.compile(
    r"(?:(?<![\w.])(?P<a>0x[0-9a-f]{1,8}|\d{1,12})(?=(?::\d+)?/))|(?:https?\W{1,8}(?P<b>0x[0-9a-f]{1,8}|\d{1,12})\b)",
    re.IGNORECASE,
)
# An IPv6 address in brackets, as it is written in a URL: [::1]/x, [2001:db8::1].
_BRACKETED = re.compile(r"\[([0-9a-f:.]{2,45})\]", re.IGNORECASE)
# Joins an emoji sequence (a family, a flag): allowed between two symbols, nowhere else.
_ZWJ = "\u200d"
# What a name that may land in a subject line is made of, besides letters and marks.
_NAME_PUNCTUATION = frozenset(" .,'\u2019-&()")


def normalised(text: str) -> str:
    """What people meant to type: NFKC (full-width letters and digits, look-alike dots and
    compatibility forms made plain), so that the checks below see what a reader will."""
    return unicodedata.normalize("NFKC", text)


def _invisible(text: str) -> bool:
    """A character that shows nothing or changes the direction of what follows: zero-width
    spaces and joiners, the soft hyphen, bidi overrides and isolates, tag characters, C1
    controls (Unicode categories Cf and Cc), other than a joiner inside an emoji sequence."""
    for position, ch in enumerate(text):
        category = unicodedata.category(ch)
        if category == "Cc" and ch not in "\n\r\t":
            return True
        if category == "Cf":
            if ch == _ZWJ and 0 < position < len(text) - 1 and _emoji_part(text[position - 1]):
                if _emoji_part(text[position + 1]):
                    continue
            return True
    return False


def _emoji_part(ch: str) -> bool:
    return unicodedata.category(ch) in ("So", "Sk", "Mn")


def contains_phone_number(text: str, region: str) -> bool:
    return any(True for _ in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID))


class TextProblem(StrEnum):
    """Why typed text cannot be sent as typed; the form says it in the reader's language."""

    CONTROL = "control"
    INVISIBLE = "invisible"
    LINK = "link"
    MARKUP = "markup"
    NAME_CHARACTERS = "name characters"
    PHONE_NUMBER = "phone number"


_PROBLEM_WORDING = {
    TextProblem.CONTROL: "{kind} can't contain control characters.",
    TextProblem.INVISIBLE: "{kind} can't contain invisible characters or characters that change the text's direction.",
    TextProblem.LINK: "{kind} can't contain links or web addresses.",
    TextProblem.MARKUP: "{kind} can't contain HTML or the characters < and >.",
    TextProblem.NAME_CHARACTERS: "{kind} can only contain letters, spaces and the punctuation . , ' - & ( ).",
    TextProblem.PHONE_NUMBER: "{kind} can't contain phone numbers.",
}


def text_problem(
    kind: str,
    value: str,
    *,
    allow_newlines: bool,
    in_subject: bool = False,
    region: str = "US",
) -> str | None:
    """Why a name or a note cannot be sent as typed, in English (staff's previews), or None."""
    problem = text_problem_kind(value, allow_newlines=allow_newlines, in_subject=in_subject, region=region)
    return None if problem is None else _PROBLEM_WORDING[problem].format(kind=kind)


def text_problem_kind(
    value: str,
    *,
    allow_newlines: bool,
    in_subject: bool = False,
    region: str = "US",
) -> TextProblem | None:
    """Why a name or a note cannot be sent as typed, or None. `value` as typed; the checks
    run on its normalised form (`normalised`), which is what is stored and sent."""
    text = normalised(value)
    # A browser sends a textarea's line breaks as CR LF: a note may have them, a name not.
    if CONTROL.search(text.replace("\r\n", "\n") if allow_newlines else text) or (
        not allow_newlines and ("\n" in text or "\r" in text)
    ):
        return TextProblem.CONTROL
    if _invisible(value):
        return TextProblem.INVISIBLE
    if _links_to(text.translate(_LOOKALIKE_DOTS)):
        return TextProblem.LINK
    if MARKUP.search(text):
        return TextProblem.MARKUP
    if in_subject and any(not (ch.isalpha() or ch in _NAME_PUNCTUATION or _mark(ch)) for ch in text):
        return TextProblem.NAME_CHARACTERS
    if not in_subject and contains_phone_number(text, region):
        return TextProblem.PHONE_NUMBER
    return None


def _links_to(text: str) -> bool:
    """A link, or an address a browser would open: an IPv4 address (dotted, or as one number
    used as a host) or a bracketed IPv6 address. `text` with look-alike dots made plain."""
    if contains_link(text) or _IPV4.search(text):
        return True
    for match in _NUMERIC_HOST.finditer(text):
        if _ipv4_number(match.group("a") or match.group("b")):
            return True
    return any(_is_ipv6(match.group(1)) for match in _BRACKETED.finditer(text))


def _ipv4_number(digits: str) -> bool:
    """A number a browser would read as an IPv4 address (not a small one, like the 3 of 12/3)."""
    if digits[:2].lower() == "0x":
        value = int(digits, 16)
    elif len(digits) > 1 and digits.startswith("0"):
        if any(d in "89" for d in digits):
            return False
        value = int(digits, 8)
    else:
        value = int(digits)
    return 2**24 <= value < 2**32


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _mark(ch: str) -> bool:
    return unicodedata.category(ch).startswith("M")
