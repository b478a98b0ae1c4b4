"""What every template of a campaign may print about the campaign itself, and what each value
a template may print means (the reference the templates page shows)."""

from __future__ import annotations

from collections.abc import Mapping

from flask_babel import lazy_gettext

from engine.models import Campaign, CampaignImage
from engine.services.variants import Variant
from engine.services.wrappers import NO_QUIZ
from engine.video import VIDEO_PLACEHOLDER

# What a landing template may print besides: `{{ video }}`, where the campaign's hero video goes
# (the page swaps the placeholder for the player; docs/landing-video.md), and `quiz`, the quiz of
# a quiz variant and the visitor's answer (engine.services.wrappers; NO_QUIZ on any other page).
LANDING_VALUES: Mapping[str, object] = {"video": VIDEO_PLACEHOLDER, "quiz": NO_QUIZ}

# The box the built-in e-mail shows a logo in (CSS pixels): scaled down to fit, never up.
LOGO_BOX = (200, 80)
# The logo as the sandbox renders an uploaded template with (docs/messages.md): a template's
# `{% if logo_url %}` branch is checked even for a campaign without a logo yet.
SAMPLE_LOGO_VALUES: Mapping[str, str] = {
    "logo_url": "https://offers.example.com/c/sample/logo.png?v=0123456789abcdef",
    "logo_width": "200",
    "logo_height": "50",
}


def campaign_context(campaign: Campaign, public_base_url: str, variant: Variant | None = None) -> dict[str, str]:
    """What every template of a campaign may print about it (messages add their own values), in
    the words of its A/B `variant` where that variant has words of its own. `public_base_url`
    makes the logo's address absolute, as e-mail clients need it. The campaign's logo must be
    loaded with it (`selectinload(Campaign.logo)`)."""
    return _context(campaign, logo_values(campaign.slug, campaign.logo, public_base_url), variant)


def sample_campaign_context(campaign: Campaign) -> dict[str, str]:
    """The campaign's values as its uploaded templates are checked and documented with: the
    sample logo in place of its own (a template's `{% if logo_url %}` branch is checked even
    for a campaign without a logo yet), so its logo need not be read."""
    return _context(campaign, SAMPLE_LOGO_VALUES, None)


def _context(campaign: Campaign, logo: Mapping[str, str], variant: Variant | None) -> dict[str, str]:
    return {
        "campaign_name": campaign.name,
        "offer_title": offer_title(campaign, variant),
        "offer_description": offer_description(campaign, variant),
        "brand_name": campaign.brand_name,
        "postal_address": campaign.postal_address,
        "support_contact": campaign.support_contact,
        **logo,
        # Which A/B variant the page or message is in ("" without one): a landing template of its
        # own per variant is one template that says `{% if variant == "b" %}` (docs/variants.md).
        "variant": variant.key if variant is not None else "",
        "wrapper": variant.wrapper if variant is not None else "",
    }


def offer_title(campaign: Campaign, variant: Variant | None) -> str:
    """The offer's title as `variant` words it (the campaign's own when it has none)."""
    return (variant.offer_title if variant is not None else None) or campaign.offer_title


def offer_description(campaign: Campaign, variant: Variant | None) -> str:
    return (variant.offer_description if variant is not None else None) or campaign.offer_description or ""


def logo_values(slug: str, logo: CampaignImage | None, public_base_url: str) -> dict[str, str]:
    """`logo_url` (empty without a logo: `{% if logo_url %}`), and the size to show it at."""
    if logo is None:
        return {"logo_url": "", "logo_width": "", "logo_height": ""}
    width, height = logo_size(logo.width, logo.height)
    return {"logo_url": logo_url(public_base_url, slug, logo), "logo_width": str(width), "logo_height": str(height)}


def logo_url(public_base_url: str, slug: str, logo: CampaignImage) -> str:
    """The logo's public address, versioned by its content (engine.web.public.cards.logo_image)."""
    extension = logo.content_type.split("/", 1)[1].replace("jpeg", "jpg")
    return f"{public_base_url.rstrip('/')}/c/{slug}/logo.{extension}?v={logo.sha256[:16]}"


def logo_size(width: int, height: int) -> tuple[int, int]:
    """The logo scaled down into LOGO_BOX, its proportions kept (at least a pixel a side)."""
    scale = min(1.0, LOGO_BOX[0] / width, LOGO_BOX[1] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


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
    "logo_url": lazy_gettext("The address of the brand's logo; empty when the campaign has none."),
    "logo_width": lazy_gettext("The width to show the logo at, in pixels."),
    "logo_height": lazy_gettext("The height to show the logo at, in pixels."),
    "variant": lazy_gettext("The key of the A/B variant the page or message is in; empty without variants."),
    "wrapper": lazy_gettext(
        "The wrapper of that variant (plain, story, video, quiz, contest, coupon, scratch); empty without variants."
    ),
    "quiz": lazy_gettext(
        "The quiz of a Quiz variant and the visitor's answer: quiz.asked (the page has one), quiz.question, "
        "quiz.answers, quiz.revealed (answered or skipped: the offer is shown), quiz.answer (the position of "
        "their answer, from 0), quiz.answered (its words), quiz.right (right or not; none without a right answer), "
        "quiz.right_answer and quiz.explanation."
    ),
}
VARIABLE_EXAMPLES: Mapping[str, str] = {
    "locale": "nl",
    "gettext": "{% trans %}See the offer{% endtrans %}",
    "ngettext": "{% trans count=2 %}{{ count }} friend{% pluralize %}{{ count }} friends{% endtrans %}",
    "link": "https://offers.example.com/f/…",
    "unsubscribe_link": "https://offers.example.com/u/…",
    "video": "{{ video }}",
    "logo_url": '{% if logo_url %}<img src="{{ logo_url }}" alt="{{ brand_name }}">{% endif %}',
    "variant": '{% if variant == "b" %}…{% endif %}',
    "quiz": "{% if quiz.asked and quiz.right %}…{% endif %}",
}
