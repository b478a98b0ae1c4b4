"""The composer: the one place a message's context and headers are built.

Sending, the consumer's preview before an eu-strict forward, the console preview and the
console's test send all compose their message here, so that what a person previews is what
a friend gets. `campaign_sending` resolves what a campaign sends with (its policy among it)
once, for every message of a batch, in one of its languages.

A message speaks the language its sender used (the forward's locale), if the campaign still
offers it, else the campaign's default (its first locale): its templates are that language's
files (engine.template_files.resolve), its words come from that language's catalogue (in the
campaign's address form: formal Dutch has a catalogue of its own), and its e-mail says so in
`Content-Language`. The catalogue travels in the message's context (`gettext`, `ngettext`),
so rendering needs no request, no app context and no global language: a worker renders a
Dutch message and a French one side by side.
"""

from __future__ import annotations

import gettext
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from babel.support import Translations as BabelTranslations
from flask import has_app_context
from flask_babel import get_translations

from engine.channels import CampaignSending, ComposedMessage, MessageLinks, channel
from engine.contacts import Contact
from engine.i18n import DEFAULT_LOCALE, DOMAIN, TRANSLATIONS_DIR, catalog_locale, rendering_in
from engine.models import Campaign
from engine.policy import ConsentPolicy, policy_for
from engine.rendering import Translations, translation_values
from engine.services.template_context import campaign_context
from engine.services.variants import Variant

# What of a message differs from one friend to the next and is theirs: the values `compose`
# takes besides the links (`coupon_code` is empty without coupons, or when the pool ran out).
RECIPIENT_VALUES = ("sender_name", "note", "coupon_code")
# What a message's context says of its language: the locale (`<html lang="{{ locale }}">`)
# and the catalogue's functions, which {% trans %} and _() call.
LANGUAGE_VALUES = ("locale", "gettext", "ngettext")
_SOURCE_TEXT = gettext.NullTranslations()


def message_locale(campaign: Campaign, wanted: str | None) -> str:
    """The language of a message of this campaign: `wanted` (the sender's, a forward's locale)
    when the campaign offers it, else the campaign's default (its first locale)."""
    return offered_locale(campaign.locales, wanted)


def offered_locale(locales: Sequence[str] | None, wanted: str | None) -> str:
    """`wanted` when `locales` (a campaign's, its default first) has it, else the first."""
    offered = list(locales or ()) or [DEFAULT_LOCALE]
    return wanted if wanted in offered else offered[0]


def catalogue(catalog: str) -> Translations:
    """A catalogue (`nl`, `nl@formal`: engine.i18n.catalog_locale). In the app, through
    Flask-Babel (its cache, and the pseudo-locale that tests switch on); outside any app (a
    script, a unit test), read from the compiled catalogues."""
    if has_app_context():
        with rendering_in(catalog):
            translations: Translations = get_translations()
        return translations
    return _compiled(catalog)


@cache
def _compiled(catalog: str) -> Translations:
    loaded: Translations = BabelTranslations.load(str(TRANSLATIONS_DIR), [catalog], DOMAIN)
    return loaded


def campaign_sending(
    campaign: Campaign,
    defaults: Mapping[str, str],
    policy: ConsentPolicy | None = None,
    locale: str | None = None,
    variant: Variant | None = None,
    *,
    public_base_url: str,
) -> CampaignSending:
    """What this campaign sends with, as it is now (its `policy` when the caller has it parsed
    already), in `locale` (see message_locale), in the words of the forward's A/B `variant`;
    `public_base_url` is where its logo is served.
    Raises PolicyError for a policy that is not valid."""
    language = message_locale(campaign, locale)
    return CampaignSending(
        campaign_id=campaign.id,
        policy=policy or policy_for(campaign.policy_name, campaign.policy_settings),
        brand_name=campaign.brand_name,
        sender_email=campaign.sender_email,
        sources=campaign.template_sources(defaults, language),
        context=campaign_context(campaign, public_base_url, variant),
        sms_segment_limit=campaign.sms_segment_limit,
        sms_smart_encoding=campaign.sms_smart_encoding,
        channel_settings=dict(getattr(campaign, "channel_settings", None) or {}),
        locale=language,
        translations=catalogue(catalog_locale(language, campaign.address_form)),
    )


def compose(
    campaign: CampaignSending,
    recipient: Contact,
    values: Mapping[str, Any],
    links: MessageLinks,
    reference: str = "",
) -> ComposedMessage:
    """The message to `recipient`: what its templates may print (the campaign's values, the
    recipient's own `values` and links) and the headers its channel gives it."""
    return ComposedMessage(
        channel=recipient.channel,
        to=recipient.value,
        campaign=campaign,
        context=compose_context(campaign.context, values, links) | language_values(campaign),
        headers=channel(recipient.channel).headers(campaign, links, reference),
        reference=reference,
    )


def language_values(campaign: CampaignSending) -> dict[str, Any]:
    """What a message's templates know of its language (LANGUAGE_VALUES)."""
    return {"locale": campaign.locale, **translation_values(campaign.translations or _SOURCE_TEXT)}


def campaign_language_values(campaign: Campaign, locale: str | None) -> dict[str, Any]:
    """LANGUAGE_VALUES of a message of this campaign in `locale` (see message_locale), for
    those that build a context without composing a message."""
    return locale_values(campaign.locales, campaign.address_form, locale)


def locale_values(locales: Sequence[str] | None, address_form: str, locale: str | None) -> dict[str, Any]:
    """LANGUAGE_VALUES in `locale` for a campaign of these `locales` and address form."""
    language = offered_locale(locales, locale)
    return {"locale": language, **translation_values(catalogue(catalog_locale(language, address_form)))}


def compose_context(
    campaign_values: Mapping[str, Any], values: Mapping[str, Any], links: MessageLinks
) -> dict[str, Any]:
    """What a message's templates may print: the campaign's values, the recipient's own
    (`RECIPIENT_VALUES`), and their links."""
    return {
        **campaign_values,
        "sender_name": values.get("sender_name", ""),
        "note": values.get("note") or "",
        "link": links.forward,
        "unsubscribe_link": links.unsubscribe,
        "coupon_code": values.get("coupon_code", ""),
    }
