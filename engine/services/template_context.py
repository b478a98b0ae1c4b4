"""What every template of a campaign may print about the campaign itself."""

from __future__ import annotations

from collections.abc import Mapping

from markupsafe import Markup

from engine.models import Campaign, CampaignImage
from engine.services.variants import Variant
from engine.video import VIDEO_PLACEHOLDER

# What a landing template may print besides: `{{ video }}`, where the campaign's hero video goes
# (the page swaps the placeholder for the player; docs/landing-video.md).
LANDING_VALUES: dict[str, Markup] = {"video": VIDEO_PLACEHOLDER}

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
    makes the logo's address absolute, as e-mail clients need it."""
    return {
        "campaign_name": campaign.name,
        "offer_title": offer_title(campaign, variant),
        "offer_description": offer_description(campaign, variant),
        "brand_name": campaign.brand_name,
        "postal_address": campaign.postal_address,
        "support_contact": campaign.support_contact,
        **logo_values(campaign.slug, campaign.logo, public_base_url),
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
