"""Duplicating a campaign: a new draft with its settings, its current templates, its share
card image and its reward programme, under a new slug.

Nothing that happened to the original comes along: no forwards, messages, coupons, contacts,
rewards, figures or history. The copy is a draft of the original's team, named after it, and
its first history row says what it was copied from. Its settings are copied as they are,
a custom consent policy among them (with the justification an admin gave it): the copy
sends under the rules the original was allowed, and is checked on activation like any draft.
"""

from __future__ import annotations

from dataclasses import asdict

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.db import Database
from engine.models import Campaign, CampaignImage, CampaignStatus
from engine.models.rewards import RewardProgram
from engine.services.campaigns import CampaignSettings, DraftInvalid, slug_problem
from engine.services.history import Actor, EventAction, record_event
from engine.services.lookups import find_campaign
from engine.services.templates import add_template_versions

MAX_NAME = 200  # CampaignDraft's limit on a name


def duplicate_campaign(db: Database, slug: str, new_slug: str, actor: Actor) -> str:
    """Copy the campaign `slug` as a new draft at `new_slug`; its slug. Raises CampaignNotFound,
    or DraftInvalid (by field: `slug`) for a slug that is malformed, reserved or taken."""
    new_slug = new_slug.strip()
    problem = slug_problem(new_slug)
    if problem:
        raise DraftInvalid({"slug": problem})
    try:
        with db.transaction() as session:
            if session.scalar(select(Campaign.id).where(Campaign.slug == new_slug)) is not None:
                raise DraftInvalid({"slug": _taken(new_slug)})
            source = find_campaign(session, slug, with_templates=True)
            settings = asdict(CampaignSettings.of(source))
            settings.update(slug=new_slug, name=_("%(name)s (copy)", name=source.name)[:MAX_NAME])
            copy = Campaign(status=CampaignStatus.DRAFT, team=source.team, **_stored(settings))
            session.add(copy)
            add_template_versions(session, copy, source.own_sources())
            session.flush()
            _copy_card_and_programme(session, source.id, copy.id)
            changes = {"duplicated_from": [None, source.slug]}
            record_event(session, copy.id, actor, EventAction.DUPLICATED, changes, _("copied from %(slug)s", slug=slug))
            return new_slug
    except IntegrityError:  # the same slug, taken at the same moment
        raise DraftInvalid({"slug": _taken(new_slug)}) from None


def _taken(slug: str) -> str:
    return _("there is already a campaign %(slug)s", slug=slug)


def _stored(settings: dict[str, object]) -> dict[str, object]:
    """The settings as the Campaign model stores them (JSON columns take lists and dicts)."""
    return {name: list(value) if isinstance(value, tuple) else value for name, value in settings.items()}


def _copy_card_and_programme(session: Session, source_id: int, copy_id: int) -> None:
    for image in session.scalars(select(CampaignImage).where(CampaignImage.campaign_id == source_id)):
        session.add(
            CampaignImage(
                campaign_id=copy_id,
                kind=image.kind,
                content_type=image.content_type,
                data=image.data,
                sha256=image.sha256,
                width=image.width,
                height=image.height,
            )
        )
    programme = session.get(RewardProgram, source_id)
    if programme is not None:
        session.add(
            RewardProgram(
                campaign_id=copy_id,
                enabled=programme.enabled,
                description=programme.description,
                rules=dict(programme.rules or {}),
            )
        )
