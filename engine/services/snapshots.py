"""Campaigns as the public hot paths read them, kept by each process between requests.

A forward or a landing view needs the campaign, its policy and caps, its languages, its
templates, its A/B variants and the webhook endpoints that hear of it: loading all of that for every request
was most of what a forward cost the database. A process keeps each campaign it loaded (a
`CampaignSnapshot`) with the snapshot version it was loaded at. Every change to a campaign,
a campaign's template or a webhook endpoint moves that version on, in the transaction that
makes the change (engine.db installs the hook on every session), so reading the one number
(a primary-key lookup, or part of a query the caller makes anyway) says whether the copy is
still the campaign as committed, whichever process changed it. A copy is only ever used
after its version was read in the caller's own transaction: a paused or ended campaign, or
a new policy, is honoured by the very next request of every process. Whether the campaign is
open is decided again at each use, on the caller's clock (its start and end do not move the
version).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from engine.caps import CapSettings
from engine.db import Database
from engine.models import Campaign, CampaignSnapshotVersion
from engine.policy import ConsentPolicy, policy_for
from engine.services.lookups import NO_OFFER, SLUG, CampaignLanguage, CampaignUnavailable, check_open
from engine.services.share_cards import CardRef, card_ref
from engine.services.variants import NO_VARIANTS, CampaignVariants
from engine.services.webhooks import remember_subscribers, team_subscribers

# More campaigns than any installation keeps open at once: past it, the copies start over.
MAX_SNAPSHOTS = 512

SNAPSHOT_VERSION = select(CampaignSnapshotVersion.version).where(CampaignSnapshotVersion.id == 1)


def snapshot_version(session: Session) -> int | None:
    """The snapshot version as committed now (None on a database without its row: then no copy
    is ever trusted)."""
    return session.scalar(SNAPSHOT_VERSION)


@dataclass(eq=False)
class CampaignSnapshot:
    """One campaign as committed at `version`. `campaign` is detached from any session, with
    its templates, contests, variants and logo loaded: read it, never change it (it is shared
    by the requests of a process)."""

    version: int
    campaign: Campaign
    # The enabled endpoints of the campaign's team that hear of its events: (id, event types).
    subscribers: tuple[tuple[int, frozenset[str]], ...]
    # The newest version of each of its own template files, by file name.
    template_versions: Mapping[str, int] = field(default_factory=dict)
    # Its A/B variants and inheritance mode (none: no experiment), read with the rest.
    variants: CampaignVariants = NO_VARIANTS
    # Its card image as first read for this copy (a new image moves the version on too).
    _card: tuple[CardRef | None] | None = field(default=None, init=False, repr=False)

    @property
    def slug(self) -> str:
        return self.campaign.slug

    @property
    def id(self) -> int:
        return self.campaign.id

    @cached_property
    def policy(self) -> ConsentPolicy:
        """Its consent policy (raises PolicyError, as policy_for does, for one not valid)."""
        return policy_for(self.campaign.policy_name, self.campaign.policy_settings)

    @cached_property
    def caps(self) -> CapSettings:
        return CapSettings.from_overrides(self.campaign.caps)

    def language(self, fallback_region: str) -> CampaignLanguage:
        return CampaignLanguage.of(self.campaign, fallback_region)

    def open_campaign(self, now: datetime | None = None) -> Campaign:
        """The campaign, if the public may forward it at `now`; else CampaignUnavailable."""
        check_open(self.campaign, now)
        return self.campaign

    def card(self, session: Session) -> CardRef | None:
        """Its card image (what a page names of it), read once for this copy."""
        if self._card is None:
            self._card = (card_ref(session, self.campaign.id),)
        return self._card[0]

    def publish_to(self, session: Session) -> None:
        """Its webhook subscribers known to `session`: its events there cost no lookup."""
        remember_subscribers(session, self.campaign.slug, self.campaign.team, self.subscribers)


class CampaignSnapshots:
    """Each process's copies of the campaigns it served, by slug."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._by_slug: dict[str, CampaignSnapshot] = {}
        self._lock = threading.Lock()

    def current(self, session: Session, slug: str, version: int | None = None) -> CampaignSnapshot | None:
        """The campaign with this slug as committed now (open or not), or None when there is
        none. `version` is the snapshot version the caller read in `session`'s transaction (read
        here when not given): a copy at that version is used as it is, any other is reloaded."""
        if not SLUG.fullmatch(slug):
            return None
        if version is None:
            version = snapshot_version(session)
        kept = self._by_slug.get(slug)
        if kept is not None and version is not None and kept.version == version:
            return kept
        return self._load(slug)

    def kept(self, slug: str) -> CampaignSnapshot | None:
        """The copy this process has, whatever its version (None: none yet). Only for what the
        caller checks again against `current` in its own transaction."""
        return self._by_slug.get(slug)

    def open(self, session: Session, slug: str, now: datetime | None = None) -> CampaignSnapshot:
        """The campaign with this slug as committed now, if the public may forward it at `now`;
        else CampaignUnavailable (as engine.services.lookups.load_open_campaign)."""
        snapshot = self.current(session, slug)
        if snapshot is None:
            raise CampaignUnavailable(NO_OFFER, 404)
        snapshot.open_campaign(now)
        return snapshot

    def forget(self) -> None:
        with self._lock:
            self._by_slug.clear()

    def _load(self, slug: str) -> CampaignSnapshot | None:
        # In a session of its own: the copy outlives the caller's. The version is read first, so
        # what is loaded after it is at least that new: a copy is never older than its label
        # (one newer than its label is only reloaded once more).
        with self._db.reading() as session:
            version = snapshot_version(session)
            campaign = session.scalar(
                select(Campaign)
                .where(Campaign.slug == slug)
                .options(
                    selectinload(Campaign.templates),
                    selectinload(Campaign.contests),
                    selectinload(Campaign.variants),
                    # Every page and message of it may show its logo.
                    selectinload(Campaign.logo),
                )
            )
            if campaign is None:
                # Not kept (a flood of made-up slugs must not fill the memory), and a copy of a
                # campaign since deleted is forgotten.
                with self._lock:
                    self._by_slug.pop(slug, None)
                return None
            subscribers = tuple(team_subscribers(session, campaign.team))
            versions = {name: template.version for name, template in campaign.current_templates().items()}
            variants = CampaignVariants.of(campaign.variants, campaign.variant_inheritance)
            snapshot = CampaignSnapshot(
                version if version is not None else -1, campaign, subscribers, versions, variants
            )
        if version is not None:
            self._keep(slug, snapshot)
        return snapshot

    def _keep(self, slug: str, snapshot: CampaignSnapshot) -> None:
        with self._lock:
            if len(self._by_slug) >= MAX_SNAPSHOTS:
                self._by_slug.clear()
            self._by_slug[slug] = snapshot
