"""What every template of a campaign may print about the campaign itself, and what each value
a template may print means (the reference the templates page shows)."""

from __future__ import annotations

from collections.abc import Mapping

from flask_babel import lazy_gettext
from markupsafe import Markup

from engine.models import Campaign
from engine.video import VIDEO_PLACEHOLDER

# What a landing template may print besides: `{{ video }}`, where the campaign's hero video goes
# (the page swaps the placeholder for the player; docs/landing-video.md).
LANDING_VALUES: dict[str, Markup] = {"video": VIDEO_PLACEHOLDER}


def campaign_context(campaign: Campaign) -> dict[str, str]:
    """What every template of a campaign may print about it (messages add their own values)."""
    return {
        "campaign_name": campaign.name,
        "offer_title": campaign.offer_title,
        "offer_description": campaign.offer_description,
        "brand_name": campaign.brand_name,
        "postal_address": campaign.postal_address,
        "support_contact": campaign.support_contact,
    }


# What each value a template may print holds, by its name; and, for a value that is not the
# campaign's own, an example of how it is used or what it holds. Every name the template checks
# allow (engine.services.templates.template_variables) has its line here: a test holds them together.
VARIABLE_MEANINGS: Mapping[str, object] = {
    "campaign_name": lazy_gettext("The campaign's name, as staff see it."),
    "offer_title": lazy_gettext("The offer's title."),
    "offer_description": lazy_gettext("The offer's description."),
    "brand_name": lazy_gettext("The brand: the sender of every message."),
    "postal_address": lazy_gettext("The brand's postal address (some consent policies require it in messages)."),
    "support_contact": lazy_gettext("Where people get help: an email address or a phone number."),
    "locale": lazy_gettext("The language the page or message is in: its code."),
    "gettext": lazy_gettext("Translates a text into that language; {% trans %} calls it for you."),
    "ngettext": lazy_gettext("Translates a text with a count (singular or plural); {% pluralize %} calls it."),
    "sender_name": lazy_gettext("The name the sender typed in the send-to-friend form."),
    "note": lazy_gettext("The sender's personal note; empty when they wrote none."),
    "link": lazy_gettext("The friend's own tracked link to the offer."),
    "unsubscribe_link": lazy_gettext("The link that stops messages from this campaign to the friend."),
    "coupon_code": lazy_gettext("The friend's coupon code; empty without coupons or when the pool ran out."),
    "video": lazy_gettext("Where the landing page's video goes, if the campaign has one."),
}
VARIABLE_EXAMPLES: Mapping[str, str] = {
    "locale": "nl",
    "gettext": "{% trans %}See the offer{% endtrans %}",
    "ngettext": "{% trans count=2 %}{{ count }} friend{% pluralize %}{{ count }} friends{% endtrans %}",
    "link": "https://offers.example.com/f/…",
    "unsubscribe_link": "https://offers.example.com/u/…",
    "video": "{{ video }}",
}
