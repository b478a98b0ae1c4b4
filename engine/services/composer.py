"""The composer: the one place a message's context and headers are built.

Sending, the consumer's preview before an eu-strict forward, the console preview and the
console's test send all compose their message here, so that what a person previews is what
a friend gets. `campaign_sending` resolves what a campaign sends with (its policy among it)
once, for every message of a batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.channels import CampaignSending, ComposedMessage, MessageLinks, channel
from engine.contacts import Contact
from engine.models import Campaign
from engine.policy import ConsentPolicy, policy_for
from engine.services.template_context import campaign_context

# What of a message differs from one friend to the next and is theirs: the values `compose`
# takes besides the links (`coupon_code` is empty without coupons, or when the pool ran out).
RECIPIENT_VALUES = ("sender_name", "note", "coupon_code")


def campaign_sending(
    campaign: Campaign, defaults: Mapping[str, str], policy: ConsentPolicy | None = None
) -> CampaignSending:
    """What this campaign sends with, as it is now (its `policy` when the caller has it parsed
    already). Raises PolicyError for a policy that is not valid."""
    return CampaignSending(
        campaign_id=campaign.id,
        policy=policy or policy_for(campaign.policy_name, campaign.policy_settings),
        brand_name=campaign.brand_name,
        sender_email=campaign.sender_email,
        sources=campaign.template_sources(defaults),
        context=campaign_context(campaign),
        sms_segment_limit=campaign.sms_segment_limit,
        sms_smart_encoding=campaign.sms_smart_encoding,
        channel_settings=dict(getattr(campaign, "channel_settings", None) or {}),
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
        context=compose_context(campaign.context, values, links),
        headers=channel(recipient.channel).headers(campaign, links, reference),
        reference=reference,
    )


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
