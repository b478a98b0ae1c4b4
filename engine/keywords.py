"""What a text sent to our number asks for: opt out (STOP), opt back in (START), or help.

The same words are read from WhatsApp messages to our WhatsApp sender; what they do then acts
on WhatsApp alone (engine.web.hooks: the channel a message came on is its own scope).

Twilio's own long-code keywords come first (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT,
REVOKE, OPTOUT / START, UNSTOP, YES / HELP, INFO); each language adds the words its speakers
use, and operators may add more through settings. A text is matched against the keywords
of every enabled language at once: we cannot tell which language its sender speaks, and a
word that means "stop" in any of them must stop the texts.

How a text is read, and why:
- Twilio's `OptOutType` parameter (STOP, START or HELP: sent when Advanced Opt-Out matched a
  keyword) wins over our own reading, since Twilio has then already acted on it.
- Otherwise an opt-out is the first word of the text ("Stop texting me" stops): an opt-out
  request must be honoured however it is phrased, and stopping one text too many is cheap.
- An opt-in or a help request must be the whole text ("Yes", "START!"): opting back in is
  consent, which must be unambiguous, so "Yes, stop texting me" opts nobody in.
- Accents do not matter ("ARRÊT" and "arret" are one word): phones without a French keyboard,
  and autocorrect, spell them either way.

Who confirms an opt-out or an opt-in: Twilio answers the words of its own list itself (and
blocks an opted-out number before our reply could reach it), so a keyword Twilio matched
(`OptOutType`) or one of its list is `provider_confirms`; the words only we know (STOPPEN,
ARRÊT, AANMELDEN...) are confirmed by our own reply, in the language of the campaign that
texted the number last (engine.web.hooks).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class KeywordKind(StrEnum):
    OPT_OUT = "opt-out"
    OPT_IN = "opt-in"
    HELP = "help"


# Twilio's OptOutType values, as its incoming-message webhook sends them.
OPT_OUT_TYPES: Mapping[str, KeywordKind] = {
    "STOP": KeywordKind.OPT_OUT,
    "START": KeywordKind.OPT_IN,
    "HELP": KeywordKind.HELP,
}


@dataclass(frozen=True)
class LanguageKeywords:
    opt_out: frozenset[str]
    opt_in: frozenset[str]
    help: frozenset[str]


def normalise(word: str) -> str:
    """One spelling for comparisons: trimmed, case-folded, trailing punctuation and accents
    dropped ("Arrêt!" is "arret")."""
    decomposed = unicodedata.normalize("NFKD", word.strip().strip(".,;:!?¡¿'\"()«»"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _words(*words: str) -> frozenset[str]:
    return frozenset(normalise(word) for word in words)


BUILT_IN: Mapping[str, LanguageKeywords] = {
    # Twilio's defaults for long codes and toll-free numbers (CTIA).
    "en": LanguageKeywords(
        opt_out=_words("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"),
        opt_in=_words("START", "UNSTOP", "YES"),
        help=_words("HELP", "INFO"),
    ),
    # Dutch: STOP is the word the Dutch SMS code of conduct prescribes; people also write
    # "afmelden" (sign off), "uitschrijven" (unsubscribe) and "stoppen". "Ja" is left out:
    # it is too common a reply to count as consent.
    "nl": LanguageKeywords(
        opt_out=_words("STOP", "STOPPEN", "AFMELDEN", "UITSCHRIJVEN"),
        opt_in=_words("START", "AANMELDEN"),
        help=_words("HELP", "INFO"),
    ),
    # French: STOP is what French and Belgian operators print ("STOP au ..."); people also
    # write "arrêt", "arrêter", "désabonner" and "désinscrire". "Oui" is left out for the same
    # reason as "ja".
    "fr": LanguageKeywords(
        opt_out=_words(
            "STOP", "ARRET", "ARRÊT", "ARRETER", "ARRÊTER", "DESABONNER", "DÉSABONNER", "DESINSCRIRE", "DÉSINSCRIRE"
        ),
        opt_in=_words("START", "ABONNER"),
        help=_words("HELP", "AIDE", "INFO"),
    ),
}
LANGUAGES = tuple(BUILT_IN)
# Twilio's own keywords for long codes: it confirms these itself (and OptOutType names them).
PROVIDER_CONFIRMED = _words(
    "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "START", "UNSTOP", "YES"
)
# Longer than any keyword: what the log keeps of a word Twilio matched on its own list.
MAX_WORD = 32


def languages_of(word: str) -> tuple[str, ...]:
    """The built-in languages that have this keyword ("STOPPEN": Dutch; "STOP": all of them)."""
    wanted = normalise(word)
    return tuple(
        language for language, words in BUILT_IN.items() if wanted in words.opt_out | words.opt_in | words.help
    )


@dataclass(frozen=True)
class Keyword:
    """A keyword found in a text: what it asks for, and the word (upper case, for the log)."""

    kind: KeywordKind
    word: str
    # Twilio matched it (OptOutType) or it is on Twilio's own list: Twilio has confirmed it
    # to the sender, and an opted-out number takes no reply of ours.
    provider_confirms: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class KeywordBook:
    """The keywords in force. Building one refuses a word listed under two kinds."""

    opt_out: frozenset[str]
    opt_in: frozenset[str]
    help: frozenset[str]

    def __post_init__(self) -> None:
        for kind, words in self._by_kind().items():
            if any(not word or " " in word for word in words):
                raise ValueError(f"{kind} keywords must be single words")
        clashes = (self.opt_out & self.opt_in) | (self.opt_out & self.help) | (self.opt_in & self.help)
        if clashes:
            listed = ", ".join(sorted(word.upper() for word in clashes))
            raise ValueError(f"a keyword cannot mean two things: {listed}")

    @classmethod
    def build(
        cls,
        languages: Iterable[str] = LANGUAGES,
        *,
        extra_opt_out: Iterable[str] = (),
        extra_opt_in: Iterable[str] = (),
        extra_help: Iterable[str] = (),
    ) -> KeywordBook:
        """The built-in words of these languages, plus the operator's own."""
        chosen = []
        for language in languages:
            if language not in BUILT_IN:
                raise ValueError(f"no keywords for language {language!r}; known: {', '.join(LANGUAGES)}")
            chosen.append(BUILT_IN[language])
        return cls(
            opt_out=frozenset().union(*(c.opt_out for c in chosen), _words(*extra_opt_out)),
            opt_in=frozenset().union(*(c.opt_in for c in chosen), _words(*extra_opt_in)),
            help=frozenset().union(*(c.help for c in chosen), _words(*extra_help)),
        )

    def classify(self, body: str, opt_out_type: str | None = None) -> Keyword | None:
        """What this text asks for, or None for an ordinary reply."""
        words = body.split()
        first = normalise(words[0]) if words else ""
        if opt_out_type and opt_out_type.strip().upper() in OPT_OUT_TYPES:
            kind = OPT_OUT_TYPES[opt_out_type.strip().upper()]
            # Twilio matched the whole text against its keyword list: the text is the keyword.
            return Keyword(kind, (first.upper() or opt_out_type.strip().upper())[:MAX_WORD], provider_confirms=True)
        confirmed = first in PROVIDER_CONFIRMED
        if first in self.opt_out:
            return Keyword(KeywordKind.OPT_OUT, first.upper(), confirmed)
        if len(words) != 1:
            return None
        if first in self.opt_in:
            return Keyword(KeywordKind.OPT_IN, first.upper(), confirmed)
        if first in self.help:
            return Keyword(KeywordKind.HELP, first.upper(), confirmed)
        return None

    def _by_kind(self) -> dict[KeywordKind, frozenset[str]]:
        return {KeywordKind.OPT_OUT: self.opt_out, KeywordKind.OPT_IN: self.opt_in, KeywordKind.HELP: self.help}
