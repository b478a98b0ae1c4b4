"""Campaign use cases: find an open campaign, add template versions, seed the demo."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from engine.contacts import Channel
from engine.db import Database, utcnow
from engine.models import Campaign, CampaignStatus, CampaignTemplate, TemplateName
from engine.policy import PolicyError, policy_for
from engine.rendering import TemplateRenderer, default_templates


class CampaignUnavailable(Exception):
    """The campaign does not exist, or the public may not see it now; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


def load_open_campaign(
    session: Session, slug: str, now: datetime | None = None, *, with_templates: bool = True
) -> Campaign:
    # A slug that cannot exist is not looked up (PostgreSQL refuses a NUL byte in text outright).
    if not SLUG.fullmatch(slug):
        raise CampaignUnavailable("There is no offer at this address.", 404)
    query = select(Campaign).where(Campaign.slug == slug)
    if with_templates:
        query = query.options(selectinload(Campaign.templates))
    campaign = session.scalar(query)
    if campaign is None or campaign.status == CampaignStatus.DRAFT:
        raise CampaignUnavailable("There is no offer at this address.", 404)
    if campaign.status == CampaignStatus.ENDED or (
        campaign.ends_at is not None and (now or utcnow()) >= campaign.ends_at
    ):
        raise CampaignUnavailable("This offer has ended.", 410)
    if not campaign.is_open(now or utcnow()):
        raise CampaignUnavailable("This offer is not available right now.", 404)
    return campaign


def add_template_versions(session: Session, campaign: Campaign, files: Mapping[str, str]) -> list[CampaignTemplate]:
    """Store each file as the next version of its template; earlier versions stay as they were."""
    current = campaign.current_templates()
    added = []
    for name, body in files.items():
        TemplateName(name)  # refuses a name that is not one of ours
        version = current[name].version + 1 if name in current else 1
        template = CampaignTemplate(campaign=campaign, name=name, version=version, body=body)
        session.add(template)
        added.append(template)
    return added


DEMO_SLUG = "demo"


def seed_demo_campaign(db: Database) -> bool:
    """Create the `demo` campaign if it is missing; True when it was created."""
    with db.transaction() as session:
        if session.scalar(select(Campaign.id).where(Campaign.slug == DEMO_SLUG)) is not None:
            return False
        campaign = Campaign(
            slug=DEMO_SLUG,
            name="Demo: a free coffee for a friend",
            status=CampaignStatus.ACTIVE,
            offer_title="A free coffee at Koffie & Co",
            offer_description="Show this offer at any Koffie & Co and your first coffee is on us.",
            brand_name="Koffie & Co",
            sender_email="offers@koffie.example",
            postal_address="Prinsengracht 1, 1015 DK Amsterdam, The Netherlands",
            support_contact="help@koffie.example",
            channels=[Channel.EMAIL.value, Channel.SMS.value],
            policy_name="custom",
            policy_settings={
                "version": 1,
                "server_email": True,
                "server_sms": "allowed",
                "incentives": False,
                "retention": "days_after_send",
                "retention_days": 30,
                # Nobody's phone rings: the demo texts any time of day.
                "sms_hours": [0, 24],
                "justification": "Demo campaign: every message goes to the local outbox, never to a real person.",
            },
            max_friends_per_submission=5,
        )
        session.add(campaign)
        add_template_versions(session, campaign, default_templates())
        return True


@dataclass(frozen=True)
class LandingPage:
    slug: str
    name: str
    brand_name: str
    offer_title: str
    channels: tuple[str, ...]
    max_friends: int
    content_html: str


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


def server_channels(campaign: Campaign) -> tuple[str, ...]:
    """The channels the form may offer: the campaign's, as far as its policy lets the server send
    to a friend who has not consented (so that `us` does not invite phone numbers it refuses)."""
    try:
        policy = policy_for(campaign.policy_name, campaign.policy_settings)
    except PolicyError:
        return ()
    return tuple(c for c in campaign.channels if policy.server_sends(Channel(c)))


def landing_page(db: Database, renderer: TemplateRenderer, slug: str) -> LandingPage:
    """What the public landing page shows. Raises CampaignUnavailable."""
    with db.reading() as session:
        campaign = load_open_campaign(session, slug)
        sources = campaign.template_sources(default_templates())
        content = renderer.render(
            TemplateName.LANDING,
            sources[TemplateName.LANDING],
            campaign_context(campaign),
        )
        return LandingPage(
            slug=campaign.slug,
            name=campaign.name,
            brand_name=campaign.brand_name,
            offer_title=campaign.offer_title,
            channels=server_channels(campaign),
            max_friends=campaign.max_friends_per_submission,
            content_html=content,
        )


@dataclass(frozen=True)
class CampaignSummary:
    slug: str
    name: str
    brand_name: str
    status: str
    status_reason: str | None
    policy_name: str


def list_campaigns(db: Database) -> list[CampaignSummary]:
    """Every campaign, newest first, as staff lists show them."""
    with db.reading() as session:
        campaigns = session.scalars(select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc()))
        return [
            CampaignSummary(c.slug, c.name, c.brand_name, c.status, c.status_reason, c.policy_name) for c in campaigns
        ]


def change_status(db: Database, slug: str, status: CampaignStatus, reason: str | None = None) -> Campaign:
    """Pause, resume or end a campaign by hand; raises LookupError for an unknown slug."""
    with db.transaction() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
        if campaign is None:
            raise LookupError(f"no campaign {slug!r}")
        campaign.status = status
        campaign.status_reason = reason
        return campaign
