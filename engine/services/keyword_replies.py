"""What we text back to a keyword: the HELP answer, and the confirmation of an opt-out or an
opt-in that Twilio did not confirm itself (engine.keywords: `provider_confirms`).

A reply speaks the language of the campaign that texted the number last (the language its
text was in, in that campaign's address form); a number we never texted is answered in the
language of the word it sent, when only one language has that word ("STOPPEN", "ARRÊT"),
else in English. Each reply names the brand when there is one (CTIA: the brand, and how to
stop or get help) and keeps to one GSM-7 segment where it can: STOP, START and HELP stay the
keywords in every language, since every language's list has them.
"""

from __future__ import annotations

from flask_babel import gettext

from engine.i18n import DEFAULT_LOCALE, AddressForm, catalog_locale, rendering_in
from engine.keywords import Keyword, KeywordKind, languages_of
from engine.services.provider_events import TextedBy


def keyword_reply(
    keyword: Keyword, texted: TextedBy | None, help_fallback: str, *, provider_confirms: bool = True
) -> str | None:
    """The text to answer `keyword` with (None: no answer of ours). `texted`: the campaign that
    last texted the number on its channel; `help_fallback`: the operator's HELP answer for a
    number we never texted (SMS_HELP_REPLY); `provider_confirms`: whether the channel's
    provider confirms the words of its own list (texts at Twilio: yes; WhatsApp: no). Needs
    an app context (the catalogues)."""
    if keyword.kind is not KeywordKind.HELP and keyword.provider_confirms and provider_confirms:
        return None  # Twilio has confirmed it, and blocks our reply to an opted-out number
    if texted is None:
        if keyword.kind is KeywordKind.HELP:
            return help_fallback
        languages = languages_of(keyword.word)
        catalog = languages[0] if len(languages) == 1 else DEFAULT_LOCALE
    else:
        catalog = catalog_locale(texted.locale, texted.address_form or AddressForm.INFORMAL)
    with rendering_in(catalog):
        return _wording(keyword.kind, texted)


def _wording(kind: KeywordKind, texted: TextedBy | None) -> str:
    if texted is None:
        if kind is KeywordKind.OPT_OUT:
            return gettext("You are unsubscribed: no more messages from this number. Reply START to undo.")
        return gettext("You can receive messages from this number again. Reply HELP for help, STOP to opt out.")
    brand, support = texted.brand_name, texted.support_contact
    if kind is KeywordKind.HELP:
        return gettext(
            "%(brand_name)s: help at %(support_contact)s. Reply STOP to opt out.",
            brand_name=brand,
            support_contact=support,
        )
    if kind is KeywordKind.OPT_OUT:
        return gettext(
            "%(brand_name)s: you are unsubscribed and get no more messages from this number. Reply START to undo.",
            brand_name=brand,
        )
    return gettext(
        "%(brand_name)s: you can receive messages from us again. Msg & data rates may apply. "
        "Reply HELP for help, STOP to opt out.",
        brand_name=brand,
    )
