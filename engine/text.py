"""What people type into the forms (their name, a note for their friends): the rules it
must meet, the same wherever it is checked (the form, a marketer's preview sample)."""

from __future__ import annotations

import re
from functools import cache

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
