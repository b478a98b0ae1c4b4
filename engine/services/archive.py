"""Archiving a campaign: out of the console's list, kept whole, and back.

Only a campaign that is not live may be archived: a draft, an ended campaign, or one a person
paused (its page is closed and nothing is sent). An active campaign is live, and so is one
that paused its own sending (its page still takes forwards, which wait to be sent): both are
paused or ended first. An archived campaign keeps everything (its forwards, figures, history)
and may not be activated or resumed until it is taken out of the archive, so that nothing goes
live from a list nobody looks at. Each change is a row of its history.
"""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _

from engine.db import Database
from engine.models import Campaign
from engine.services.campaigns import ChangeRefused, may_archive
from engine.services.history import Actor, EventAction, record_event
from engine.services.lookups import find_campaign


def archive_refusal(campaign: Campaign) -> str | None:
    """Why this campaign may not be archived now (None: it may)."""
    if campaign.archived_at is not None:
        return _("the campaign is archived already")
    if not may_archive(campaign.status, campaign.paused_automatically):
        return _("a live campaign cannot be archived: pause it or end it first")
    return None


def archive_campaign(db: Database, slug: str, actor: Actor, now: datetime, reason: str = "") -> None:
    """Archive the campaign at `now`. Raises CampaignNotFound or ChangeRefused."""
    with db.transaction() as session:
        campaign = find_campaign(session, slug, for_update=True)
        refusal = archive_refusal(campaign)
        if refusal:
            raise ChangeRefused([refusal])
        campaign.archived_at = now
        changes = {"archived_at": [None, now.isoformat()]}
        record_event(session, campaign.id, actor, EventAction.ARCHIVED, changes, reason.strip())


def unarchive_campaign(db: Database, slug: str, actor: Actor, reason: str = "") -> None:
    """Take the campaign out of the archive, in the status it had. Raises CampaignNotFound or
    ChangeRefused."""
    with db.transaction() as session:
        campaign = find_campaign(session, slug, for_update=True)
        if campaign.archived_at is None:
            raise ChangeRefused([_("the campaign is not archived")])
        changes = {"archived_at": [campaign.archived_at.isoformat(), None]}
        campaign.archived_at = None
        record_event(session, campaign.id, actor, EventAction.UNARCHIVED, changes, reason.strip())
