"""What every template of a campaign may print about the campaign itself."""

from __future__ import annotations

from markupsafe import Markup

from engine.models import Campaign
from engine.services.variants import Variant
from engine.video import VIDEO_PLACEHOLDER

# What a landing template may print besides: `{{ video }}`, where the campaign's hero video goes
# (the page swaps the placeholder for the player; docs/landing-video.md).
LANDING_VALUES: dict[str, Markup] = {"video": VIDEO_PLACEHOLDER}


def campaign_context(campaign: Campaign, variant: Variant | None = None) -> dict[str, str]:
    """What every template of a campaign may print about it (messages add their own values), in
    the words of its A/B `variant` where that variant has words of its own."""
    return {
        "campaign_name": campaign.name,
        "offer_title": offer_title(campaign, variant),
        "offer_description": offer_description(campaign, variant),
        "brand_name": campaign.brand_name,
        "postal_address": campaign.postal_address,
        "support_contact": campaign.support_contact,
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
