"""Referrers' own pages, and the contact a referrer may confirm to follow their rewards.

A referrer is whoever sent a forward, known as the analytics and rewards know senders: by the
sender key (`engine.services.analytics.sender_key_expression`). Forwarding never asks for more.
After forwarding, a referrer gets a page of their own behind a signed, unguessable link: their
personal tracked link, how many friends their forwards reached, clicked and converted (counts,
never who), their rewards, and the milestones ahead.

They MAY confirm their own e-mail address (a signed link, its own salt and max_age) or phone
number (a six-digit one-time code, stored only as a keyed hash, expiring, with few attempts and
throttled resends). That confirmation is consent to hear from the brand about their rewards and
nothing else: a consent row with the purpose `rewards`, which never lets a campaign's offers
through (engine.services.consents). Revoking it is one click (a POST, RFC 8058 style), and
erases the contact.

What is stored, and for how long:
- while a confirmation is pending: the contact it was sent to and the secret's hash, until the
  code or link expires (then `purge_referrer_contacts` drops them, confirmed or not);
- once confirmed: the contact, for as long as the referrer has rewards open (held or approved,
  not yet paid or rejected) and then the campaign's retention days (none for policies that keep
  nothing), after which the same purge erases it and ends the consent;
- `engine.services.privacy` exports and erases both.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import String, and_, cast, distinct, exists, false, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.caps import DAY, CapSettings, Limiter, Rule
from engine.channels import channel as channel_named
from engine.channels import registered
from engine.clock import Clock, SystemClock
from engine.contacts import Contact, ContactHasher, InvalidContact, parse_contact
from engine.db import Database, rows_changed
from engine.ids import new_public_id
from engine.models import (
    Campaign,
    Click,
    Consent,
    ConsentPurpose,
    ConsentSource,
    Forward,
    Redemption,
    Referrer,
    Reward,
    RewardProgram,
    RewardStatus,
)
from engine.policy import PolicyError, Retention, policy_for
from engine.services.analytics import sender_key_expression
from engine.services.rewards import incentives_refusal, programme_rules
from engine.services.suppression import suppressed_hashes
from engine.tokens import REFERRER_CONFIRM_MAX_AGE_SECONDS, InvalidToken, Purpose, Tokens
from engine.transports import OutgoingEmail, OutgoingSms, TransportError, Transports

__all__ = [
    "CodeRefused",
    "FollowRefused",
    "FollowThrottled",
    "Milestone",
    "ReferrerCounts",
    "ReferrerNotFound",
    "ReferrerPage",
    "ReferrerService",
    "ReferrerSummary",
    "RewardsSummary",
    "confirmed_contact",
    "incentives_refusal_of",
    "key_of_contact",
    "milestones_ahead",
    "purge_referrer_contacts",
    "referrer_summary",
    "rewards_on",
    "rewards_on_for",
]

log = logging.getLogger(__name__)

CODE_DIGITS = 6
CODE_MAX_AGE = timedelta(minutes=10)
LINK_MAX_AGE = timedelta(seconds=REFERRER_CONFIRM_MAX_AGE_SECONDS)
# Wrong codes one confirmation takes; then a new one must be asked for.
MAX_CODE_ATTEMPTS = 5
# A new code or link no sooner than this after the last one...
RESEND_AFTER = timedelta(seconds=60)
# ...and at most so many an hour per referrer, per contact and per connection (engine.caps).
CONFIRMATIONS_PER_HOUR = 5
CONFIRMATIONS_PER_ADDRESS_PER_HOUR = 10
HOUR = timedelta(hours=1)
# Rewards a referrer still waits for: their contact is kept while any is open.
OPEN_REWARDS = (RewardStatus.HELD.value, RewardStatus.APPROVED.value)
# Programmes that pay rewards out mark them so (its status is theirs to define).
PAID = "paid"


class ReferrerNotFound(LookupError):
    """No referrer behind this link or key (forged, foreign, or of a campaign that is gone)."""


class FollowRefused(Exception):
    """The offer to follow rewards cannot be taken; str() says why, for the person."""

    def __init__(self, message: str, *, field: str = "contact") -> None:
        super().__init__(message)
        self.field = field


class FollowThrottled(Exception):
    """Too many codes or links asked for: try again after `retry_after`."""

    def __init__(self, retry_after: timedelta) -> None:
        minutes = max(1, int(retry_after.total_seconds() + 59) // 60)
        super().__init__(
            ngettext(
                "We have just sent you a code or link. You can ask for a new one in about %(num)d minute.",
                "We have just sent you a code or link. You can ask for a new one in about %(num)d minutes.",
                minutes,
            )
        )
        self.retry_after = retry_after


class CodeRefused(Exception):
    """A code that confirms nothing; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ReferrerCounts:
    """What the referrer's forwards and personal link did: counts only, never who."""

    reached: int  # friends invited, and people who opened their personal link
    clicked: int  # of those, the ones who opened the offer
    converted: int  # codes given through their forwards that were redeemed

    def to_json(self) -> dict[str, int]:
        return {"reached": self.reached, "clicked": self.clicked, "converted": self.converted}


@dataclass(frozen=True)
class RewardsSummary:
    earned: int  # every reward not rejected
    pending: int  # held for review
    approved: int  # approved, not paid yet
    paid: int
    rejected: int

    def to_json(self) -> dict[str, int]:
        return {
            "earned": self.earned,
            "pending": self.pending,
            "approved": self.approved,
            "paid": self.paid,
            "rejected": self.rejected,
        }


@dataclass(frozen=True)
class Milestone:
    friends: int  # converted friends that reach it
    reward: str  # in the marketer's words
    to_go: int


@dataclass(frozen=True)
class ReferrerSummary:
    """A referrer as the API shows it to the brand: counts and a rewards summary, no contact."""

    campaign: str
    referrer_key: str
    name: str
    confirmed: bool
    confirmed_channel: str | None
    counts: ReferrerCounts
    rewards: RewardsSummary | None
    rewards_refusal: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "referrer_key": self.referrer_key,
            "name": self.name,
            "confirmed": self.confirmed,
            "confirmed_channel": self.confirmed_channel,
            "counts": self.counts.to_json(),
            "rewards": self.rewards.to_json() if self.rewards else None,
            "rewards_refusal": self.rewards_refusal,
        }


@dataclass(frozen=True)
class ReferrerPage:
    token: str
    campaign_slug: str
    brand_name: str
    offer_title: str
    name: str
    link: str
    counts: ReferrerCounts
    rewards: RewardsSummary | None
    # Why this campaign offers no rewards (its policy), or None when it may.
    rewards_refusal: str | None
    # Its rewards are on now: the offer to follow them is made.
    rewards_on: bool
    reward_description: str
    milestones: list[Milestone]
    confirmed_channel: str | None
    masked_contact: str | None
    pending_channel: str | None
    # An e-mail or a text: what they may still confirm (the campaign's server channels).
    follow_channels: tuple[str, ...]


# -- reading ---------------------------------------------------------------------------------------


def _of_referrer(key: str) -> Any:
    """Forwards sent by the referrer with this key. The key's own column narrows it first (the
    indexes on sender contact and parent), the full expression then decides."""
    expression = sender_key_expression()
    kind, _, rest = key.partition(":")
    if kind == "c":
        return and_(Forward.sender_contact_hash == rest, expression == key)
    if kind == "p" and rest.isascii() and rest.isdigit() and len(rest) <= 9:  # a forward id the column can hold
        return and_(Forward.parent_id == int(rest), expression == key)
    if kind == "p":
        return false()  # no forward has such an id
    return expression == key


def referrer_counts(session: Session, campaign_id: int, key: str) -> ReferrerCounts:
    mine = select(Forward.id, Forward.channel).where(Forward.campaign_id == campaign_id, _of_referrer(key)).subquery()
    shared = mine.c.channel.like("share-%")
    invited = session.scalar(select(func.count()).select_from(mine).where(~shared)) or 0
    invited_clicked = (
        session.scalar(
            select(func.count(distinct(Click.forward_id)))
            .join(mine, mine.c.id == Click.forward_id)
            .where(~shared, Click.prefetch.is_(False))
        )
        or 0
    )
    # A shared link reaches whoever opens it: people counted by their (hashed) address.
    openers = (
        session.scalar(
            select(func.count(distinct(func.coalesce(Click.client_ip_hash, cast(Click.id, String)))))
            .join(mine, mine.c.id == Click.forward_id)
            .where(shared, Click.prefetch.is_(False))
        )
        or 0
    )
    converted = (
        session.scalar(select(func.count()).select_from(Redemption).join(mine, mine.c.id == Redemption.forward_id)) or 0
    )
    return ReferrerCounts(reached=invited + openers, clicked=invited_clicked + openers, converted=converted)


def rewards_summary(session: Session, campaign_id: int, key: str) -> RewardsSummary:
    by_status: dict[str, int] = {
        str(status): int(count)
        for status, count in session.execute(
            select(Reward.status, func.count())
            .where(Reward.campaign_id == campaign_id, Reward.referrer_key == key)
            .group_by(Reward.status)
        ).all()
    }
    rejected = by_status.get(RewardStatus.REJECTED.value, 0)
    return RewardsSummary(
        earned=sum(by_status.values()) - rejected,
        pending=by_status.get(RewardStatus.HELD.value, 0),
        approved=by_status.get(RewardStatus.APPROVED.value, 0),
        paid=by_status.get(PAID, 0),
        rejected=rejected,
    )


def milestones_ahead(session: Session, campaign_id: int, converted: int) -> list[Milestone]:
    """The milestones of the campaign's tiered reward programme the referrer has not reached
    yet (none for a programme with a reward per friend, or none at all)."""
    program = session.get(RewardProgram, campaign_id)
    if program is None or not program.enabled:
        return []
    rules = programme_rules(program)
    return [
        Milestone(m.friends, m.description, m.friends - converted) for m in rules.milestones if m.friends > converted
    ]


def referrer_summary(session: Session, campaign: Campaign, key: str) -> ReferrerSummary:
    """The referrer with this key, as the API shows them; ReferrerNotFound when they sent nothing."""
    name = session.scalar(
        select(Forward.sender_name)
        .where(Forward.campaign_id == campaign.id, _of_referrer(key))
        .order_by(Forward.id)
        .limit(1)
    )
    if name is None:
        raise ReferrerNotFound(f"no referrer {key!r} in campaign {campaign.slug}")
    referrer = session.scalar(select(Referrer).where(Referrer.campaign_id == campaign.id, Referrer.referrer_key == key))
    confirmed = referrer is not None and _confirmed(session, referrer) is not None
    refusal = incentives_refusal(campaign)
    return ReferrerSummary(
        campaign=campaign.slug,
        referrer_key=key,
        name=name,
        confirmed=confirmed,
        confirmed_channel=referrer.contact_channel if confirmed and referrer else None,
        counts=referrer_counts(session, campaign.id, key),
        rewards=None if refusal else rewards_summary(session, campaign.id, key),
        rewards_refusal=refusal,
    )


def incentives_refusal_of(db: Database, slug: str) -> str | None:
    """Why the campaign with this slug rewards no one (its policy), or None."""
    with db.reading() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
        return incentives_refusal(campaign) if campaign is not None else None


def rewards_on(session: Session, campaign: Campaign) -> bool:
    """Whether the campaign rewards referrers now: its policy allows it and its rewards are on.
    Only then is a referrer asked whether they want to follow them (nothing to follow, no contact)."""
    program = session.get(RewardProgram, campaign.id)
    return incentives_refusal(campaign) is None and program is not None and program.enabled


def rewards_on_for(db: Database, slug: str) -> bool:
    with db.reading() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
        return campaign is not None and rewards_on(session, campaign)


def key_of_contact(session: Session, campaign_id: int, contact_hash: str) -> str | None:
    """The referrer key of whoever confirmed this contact (by its hash) in this campaign, still
    consenting; None otherwise. A lookup of one, never a list."""
    return session.scalar(
        select(Referrer.referrer_key)
        .join(Consent, Consent.id == Referrer.consent_id)
        .where(
            Referrer.campaign_id == campaign_id,
            Referrer.contact_hash == contact_hash,
            Referrer.contact.is_not(None),
            Consent.revoked_at.is_(None),
        )
        .order_by(Referrer.confirmed_at.desc())
        .limit(1)
    )


def confirmed_contact(session: Session, campaign_id: int, referrer_key: str) -> Contact | None:
    """Where the referrer with this key may be told about their rewards: the contact they
    confirmed, while their consent stands and they have not opted out of the campaign on its
    channel; None otherwise (they never confirmed, revoked, or the contact was purged)."""
    referrer = session.scalar(
        select(Referrer).where(Referrer.campaign_id == campaign_id, Referrer.referrer_key == referrer_key)
    )
    if referrer is None:
        return None
    return _confirmed(session, referrer)


def _confirmed(session: Session, referrer: Referrer) -> Contact | None:
    if referrer.contact is None or referrer.contact_channel is None or referrer.consent_id is None:
        return None
    consent = session.get(Consent, referrer.consent_id)
    if consent is None or consent.revoked_at is not None:
        return None
    if referrer.contact_hash and suppressed_hashes(
        session, referrer.campaign_id, referrer.contact_channel, [referrer.contact_hash]
    ):
        return None
    return Contact(referrer.contact_channel, referrer.contact)


# -- retention -------------------------------------------------------------------------------------


def purge_referrer_contacts(session: Session, now: datetime) -> int:
    """Drop pending confirmations past their expiry, and confirmed contacts no longer needed:
    no reward open and the campaign's retention over since the last one closed (or since the
    confirmation). The contact's consent ends with it. Returns the referrers changed."""
    changed = rows_changed(
        session,
        update(Referrer)
        .where(Referrer.pending_expires_at.is_not(None), Referrer.pending_expires_at < now)
        .values(
            pending_channel=None,
            pending_contact=None,
            pending_contact_hash=None,
            pending_secret_hash=None,
            pending_expires_at=None,
            pending_attempts=0,
        )
        .execution_options(synchronize_session=False),
    )
    campaigns = session.execute(
        select(Campaign.id, Campaign.policy_name, Campaign.policy_settings).where(
            Campaign.id.in_(select(Referrer.campaign_id).where(Referrer.contact.is_not(None)))
        )
    ).all()
    for campaign_id, policy_name, settings in campaigns:
        cutoff = now - timedelta(days=_retention_days(policy_name, settings or {}))
        reward_of_theirs = and_(
            Reward.campaign_id == Referrer.campaign_id, Reward.referrer_key == Referrer.referrer_key
        )
        expired = list(
            session.scalars(
                select(Referrer).where(
                    Referrer.campaign_id == campaign_id,
                    Referrer.contact.is_not(None),
                    Referrer.confirmed_at < cutoff,
                    ~exists().where(reward_of_theirs, Reward.status.in_(OPEN_REWARDS)),
                    ~exists().where(reward_of_theirs, func.coalesce(Reward.reviewed_at, Reward.created_at) >= cutoff),
                )
            )
        )
        for referrer in expired:
            _end_consent(session, referrer, now, "retention")
            _forget_contact(referrer)
        changed += len(expired)
    if changed:
        log.info("retention: %d referrers' contacts or pending confirmations dropped", changed)
    return changed


def _retention_days(policy_name: str, settings: Mapping[str, Any]) -> int:
    try:
        policy = policy_for(policy_name, dict(settings))
    except PolicyError:
        return 0  # a policy that no longer parses keeps nothing
    return policy.retention_days if policy.retention is Retention.DAYS_AFTER_SEND else 0


def _end_consent(session: Session, referrer: Referrer, now: datetime, why: str) -> None:
    if referrer.consent_id is None:
        return
    consent = session.get(Consent, referrer.consent_id)
    if consent is not None and consent.revoked_at is None:
        consent.revoked_at = now
        consent.evidence = {**(consent.evidence or {}), "ended": why}


def _forget_contact(referrer: Referrer) -> None:
    referrer.contact = None
    referrer.contact_channel = None
    referrer.contact_hash = None
    referrer.consent_id = None


def _forget_pending(referrer: Referrer) -> None:
    referrer.pending_channel = None
    referrer.pending_contact = None
    referrer.pending_contact_hash = None
    referrer.pending_secret_hash = None
    referrer.pending_expires_at = None
    referrer.pending_attempts = 0


# -- the service the public pages use ----------------------------------------------------------------


class ReferrerService:
    def __init__(
        self,
        db: Database,
        tokens: Tokens,
        hasher: ContactHasher,
        limiter: Limiter,
        transports: Transports,
        *,
        base_url: str,
        default_region: str,
        clock: Clock | None = None,
    ) -> None:
        self._db = db
        self._tokens = tokens
        self._hasher = hasher
        self._limiter = limiter
        self._transports = transports
        self._base = base_url.rstrip("/")
        self._region = default_region
        self._clock = clock or SystemClock()

    # -- links

    def page_url(self, token: str) -> str:
        return f"{self._base}/r/{token}"

    def stop_url(self, token: str) -> str:
        return f"{self._base}/r/{token}/stop"

    def links_for(self, campaign_id: int, referrer_key: str) -> tuple[str, str] | None:
        """(their page, the one-click stop of their rewards messages) for a referrer known by
        key, for every message about their rewards to carry; None when they have no page."""
        with self._db.reading() as session:
            public_id = session.scalar(
                select(Referrer.public_id).where(
                    Referrer.campaign_id == campaign_id, Referrer.referrer_key == referrer_key
                )
            )
        if public_id is None:
            return None
        token = self._tokens.sign(Purpose.REFERRER_PAGE, public_id)
        return self.page_url(token), self.stop_url(token)

    def page_token_for_forward(self, forward_id: int) -> str | None:
        """The signed link to the page of whoever sent this forward, made on first use; None
        when the forward is gone."""
        with self._db.transaction() as session:
            forward = session.get(Forward, forward_id)
            if forward is None:
                return None
            key = session.scalar(select(sender_key_expression()).where(Forward.id == forward.id))
            assert key is not None
            referrer = self._referrer_for(session, forward, key)
            return self._tokens.sign(Purpose.REFERRER_PAGE, referrer.public_id)

    def _referrer_for(self, session: Session, forward: Forward, key: str) -> Referrer:
        existing = session.scalar(
            select(Referrer).where(Referrer.campaign_id == forward.campaign_id, Referrer.referrer_key == key)
        )
        if existing is not None:
            return existing
        referrer = Referrer(
            public_id=new_public_id(), campaign_id=forward.campaign_id, referrer_key=key, forward_id=forward.id
        )
        try:
            with session.begin_nested():
                session.add(referrer)
        except IntegrityError:
            # Two thanks pages at once: the other one made it.
            found = session.scalar(
                select(Referrer).where(Referrer.campaign_id == forward.campaign_id, Referrer.referrer_key == key)
            )
            assert found is not None
            return found
        return referrer

    def _load(self, session: Session, token: str) -> tuple[Referrer, Campaign]:
        """Raises InvalidToken (ExpiredToken) for a forged or old link, ReferrerNotFound."""
        public_id = self._tokens.verify(Purpose.REFERRER_PAGE, token)
        referrer = session.scalar(select(Referrer).where(Referrer.public_id == public_id))
        if referrer is None:
            raise ReferrerNotFound("no referrer behind this link")
        campaign = session.get(Campaign, referrer.campaign_id)
        assert campaign is not None
        return referrer, campaign

    def campaign_languages(
        self, *, page_token: str | None = None, link_token: str | None = None
    ) -> tuple[list[str], str] | None:
        """The languages (and address form) of the campaign behind a page or confirmation link,
        which its pages speak; None for a link that names none."""
        try:
            if page_token:
                public_id = self._tokens.verify(Purpose.REFERRER_PAGE, page_token)
            elif link_token:
                public_id, _secret = self._split_link(link_token)
            else:
                return None
        except InvalidToken:
            return None
        with self._db.reading() as session:
            row = session.execute(
                select(Campaign.locales, Campaign.address_form)
                .join(Referrer, Referrer.campaign_id == Campaign.id)
                .where(Referrer.public_id == public_id)
            ).first()
        return (list(row[0] or []), str(row[1])) if row else None

    # -- the page

    def page(self, token: str) -> ReferrerPage:
        with self._db.transaction() as session:
            referrer, campaign = self._load(session, token)
            link = self._personal_link(session, referrer)
            counts = referrer_counts(session, campaign.id, referrer.referrer_key)
            refusal = incentives_refusal(campaign)
            program = session.get(RewardProgram, campaign.id)
            contact = _confirmed(session, referrer)
            anchor = session.get(Forward, referrer.forward_id)
            return ReferrerPage(
                token=token,
                campaign_slug=campaign.slug,
                brand_name=campaign.brand_name,
                offer_title=campaign.offer_title,
                name=anchor.sender_name if anchor else "",
                link=link,
                counts=counts,
                rewards=None if refusal else rewards_summary(session, campaign.id, referrer.referrer_key),
                rewards_refusal=refusal,
                rewards_on=rewards_on(session, campaign),
                reward_description=program.description if program and program.enabled else "",
                milestones=[] if refusal else milestones_ahead(session, campaign.id, counts.converted),
                confirmed_channel=contact.channel if contact else None,
                masked_contact=contact.masked() if contact else None,
                pending_channel=referrer.pending_channel if self._pending(referrer) else None,
                follow_channels=self._follow_channels(),
            )

    def _follow_channels(self) -> tuple[str, ...]:
        return tuple(c.name for c in registered() if c.confirms_referrers and c.name in self._transports)

    def _personal_link(self, session: Session, referrer: Referrer) -> str:
        """Their own tracked link: a `share-link` forward with the very sender identity of the
        forward their page came from, so that what it brings in counts as theirs. Made the
        first time the page is opened."""
        link_forward = session.get(Forward, referrer.link_forward_id) if referrer.link_forward_id else None
        if link_forward is None:
            anchor = session.get(Forward, referrer.forward_id)
            assert anchor is not None
            public_id = new_public_id()
            link_forward = Forward(
                public_id=public_id,
                campaign_id=anchor.campaign_id,
                parent_id=anchor.parent_id,
                generation=anchor.generation,
                channel="share-link",
                sender_name=anchor.sender_name,
                sender_contact_hash=anchor.sender_contact_hash,
                recipient_contact_hash=self._hasher.hash_text(f"share:{public_id}"),
                policy_name=anchor.policy_name,
                policy_version=anchor.policy_version,
                client_ip_hash=anchor.client_ip_hash,
                client_network_hash=anchor.client_network_hash,
            )
            session.add(link_forward)
            session.flush()
            referrer.link_forward_id = link_forward.id
        return f"{self._base}/f/{self._tokens.sign(Purpose.FORWARD, link_forward.public_id)}"

    def _pending(self, referrer: Referrer) -> bool:
        return (
            referrer.pending_secret_hash is not None
            and referrer.pending_expires_at is not None
            and referrer.pending_expires_at > self._clock.now()
        )

    # -- following rewards: asking for a code or a link

    def follow(self, token: str, raw_contact: str, client_ip: str | None = None) -> str:
        """Send a confirmation to the contact typed: a one-time code by text, a signed link by
        e-mail. Returns the channel. Quietly sends nothing to a contact that opted out (the page
        says the same either way). Raises InvalidToken, ReferrerNotFound, FollowRefused,
        FollowThrottled, CapsUnavailable."""
        now = self._clock.now()
        with self._db.transaction() as session:
            referrer, campaign = self._load(session, token)
            refusal = incentives_refusal(campaign)
            if refusal is not None:
                raise FollowRefused(_("This campaign offers no rewards to follow: %(reason)s", reason=refusal))
            if not rewards_on(session, campaign):
                raise FollowRefused(_("This campaign has no rewards to follow at the moment."))
            contact = self._parse(raw_contact)
            contact_hash = self._hasher.hash(contact)
            if referrer.pending_sent_at is not None and now - referrer.pending_sent_at < RESEND_AFTER:
                raise FollowThrottled(RESEND_AFTER - (now - referrer.pending_sent_at))
            self._take_allowance(campaign, referrer, contact_hash, client_ip)
            suppressed = bool(suppressed_hashes(session, campaign.id, contact.channel, [contact_hash]))
            by_code = _by_code(contact.channel)
            secret = _new_code() if by_code else secrets.token_urlsafe(12)
            referrer.pending_channel = contact.channel
            referrer.pending_contact = contact.value
            referrer.pending_contact_hash = contact_hash
            referrer.pending_secret_hash = self._secret_hash(referrer, secret)
            referrer.pending_expires_at = now + (
                CODE_MAX_AGE if channel_named(contact.channel).confirms_by_code else LINK_MAX_AGE
            )
            referrer.pending_attempts = 0
            referrer.pending_sent_at = now
            outgoing = None if suppressed else self._confirmation(campaign, referrer, token, contact, secret)
            referrer_id = referrer.id
        if outgoing is None:
            log.info("referrer %d: confirmation not sent: the contact opted out", referrer_id)
            return contact.channel
        try:
            channel_named(contact.channel).send(self._transports[contact.channel], outgoing)
        except TransportError as error:
            with self._db.transaction() as session:
                stale = session.get(Referrer, referrer_id)
                if stale is not None:
                    _forget_pending(stale)
                    stale.pending_sent_at = None
            log.warning("referrer %d: confirmation %s failed: %s", referrer_id, contact.channel, type(error).__name__)
            raise FollowRefused(
                _("We could not send you a message just now. Please try again in a few minutes.")
            ) from None
        log.info("referrer %d: confirmation sent by %s", referrer_id, contact.channel)
        return contact.channel

    def _parse(self, raw: str) -> Contact:
        channels = self._follow_channels()
        try:
            contact = parse_contact(raw or "", self._region, channels)
        except InvalidContact as error:
            raise FollowRefused(
                _("Enter your e-mail address or mobile number (%(problem)s).", problem=str(error))
            ) from None
        if contact.channel not in channels:
            raise FollowRefused(_("Enter your e-mail address or a mobile number that can receive texts."))
        return contact

    def _take_allowance(self, campaign: Campaign, referrer: Referrer, contact_hash: str, client_ip: str | None) -> None:
        """The throttles of confirmations, and the campaign's own message budgets (the caps every
        message of the campaign counts against): all taken, or none."""
        caps = CapSettings.from_overrides(campaign.caps)
        budgets = []
        if caps.campaign_messages_per_day is not None:
            budgets.append(
                Rule("campaign messages per day", f"c{campaign.id}:day", caps.campaign_messages_per_day, DAY)
            )
        if caps.campaign_messages_total is not None:
            budgets.append(
                Rule("campaign messages in total", f"c{campaign.id}:total", caps.campaign_messages_total, None)
            )
        rules = [
            *budgets,
            Rule(
                "referrer confirmations per referrer",
                f"referrer-confirm:referrer:{referrer.id}",
                CONFIRMATIONS_PER_HOUR,
                HOUR,
            ),
            Rule(
                "referrer confirmations per contact",
                f"referrer-confirm:contact:{contact_hash}",
                CONFIRMATIONS_PER_HOUR,
                HOUR,
            ),
        ]
        if client_ip:
            ip_hash = self._hasher.hash_text(f"ip:{client_ip}")
            rules.append(
                Rule(
                    "referrer confirmations per address",
                    f"referrer-confirm:ip:{ip_hash}",
                    CONFIRMATIONS_PER_ADDRESS_PER_HOUR,
                    HOUR,
                )
            )
        decision = self._limiter.acquire(rules)
        if decision.allowed:
            return
        if decision.rule in budgets and decision.retry_after is None:
            raise FollowRefused(_("This offer sends no more messages, so we cannot send you a code or link."))
        raise FollowThrottled(decision.retry_after or HOUR)

    def _secret_hash(self, referrer: Referrer, secret: str) -> str:
        return self._hasher.hash_text(f"referrer-confirm:{referrer.public_id}:{secret}")

    def _confirmation(
        self, campaign: Campaign, referrer: Referrer, token: str, contact: Contact, secret: str
    ) -> OutgoingEmail | OutgoingSms:
        brand = campaign.brand_name
        if _by_code(contact.channel):
            minutes = int(CODE_MAX_AGE.total_seconds() // 60)
            return OutgoingSms(
                to=contact.value,
                text=_(
                    "%(brand)s: %(code)s is your code to follow your rewards. It expires in %(minutes)d minutes. "
                    "We will only text you about your rewards.",
                    brand=brand,
                    code=secret,
                    minutes=minutes,
                ),
                reference=f"referrer-{referrer.public_id}",
            )
        link = f"{self._base}/r/confirm/{self._tokens.sign(Purpose.REFERRER_CONFIRM, f'{referrer.public_id}:{secret}')}"
        page, stop = self.page_url(token), self.stop_url(token)
        offer = campaign.offer_title
        hello = _("Hello,")
        ask = _("To follow your rewards from %(brand)s (%(offer)s), confirm this address:", brand=brand, offer=offer)
        agree = _(
            "The link works for an hour. By confirming, you agree to hear from %(brand)s about your rewards, "
            "and about nothing else.",
            brand=brand,
        )
        your_page = _("Your page: %(link)s", link=page)
        not_you = _("Not you, or changed your mind? Stop these messages: %(link)s", link=stop)
        text = f"{hello}\n\n{ask}\n\n{link}\n\n{agree}\n\n{your_page}\n\n{not_you}\n\n{campaign.postal_address}\n"
        confirm_button, page_link, stop_link = (
            _("Confirm my address"),
            _("Your page"),
            _("Stop messages about my rewards"),
        )
        html = (
            f"<p>{_escape(hello)}</p><p>{_escape(ask)}</p>"
            f'<p><a href="{link}">{_escape(confirm_button)}</a></p><p>{_escape(agree)}</p>'
            f'<p><a href="{page}">{_escape(page_link)}</a></p>'
            f'<p><a href="{stop}">{_escape(stop_link)}</a></p>'
            f"<p>{_escape(campaign.postal_address)}</p>"
        )
        return OutgoingEmail(
            to=contact.value,
            from_name=brand,
            from_email=campaign.sender_email,
            subject=_("Confirm your address to follow your rewards from %(brand)s", brand=brand),
            html=html,
            text=text,
            headers={"List-Unsubscribe": f"<{stop}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
            reference=f"referrer-{referrer.public_id}",
        )

    # -- confirming

    def confirm_code(self, token: str, code: str) -> None:
        """Confirm the pending number with its code. Raises InvalidToken, ReferrerNotFound,
        CodeRefused (422 wrong, 410 expired or none pending, 429 too many wrong codes)."""
        now = self._clock.now()
        code = (code or "").strip().replace(" ", "")
        with self._db.transaction() as session:
            referrer, campaign = self._load(session, token)
            if not _by_code(referrer.pending_channel) or referrer.pending_secret_hash is None:
                raise CodeRefused(_("There is no code waiting for this page: ask for a new one."), 410)
            if referrer.pending_expires_at is None or referrer.pending_expires_at <= now:
                _forget_pending(referrer)
                raise CodeRefused(_("That code has expired: ask for a new one."), 410)
            if referrer.pending_attempts >= MAX_CODE_ATTEMPTS:
                raise CodeRefused(_("Too many wrong codes: ask for a new one."), 429)
            if not (code.isdigit() and len(code) == CODE_DIGITS) or not hmac.compare_digest(
                self._secret_hash(referrer, code), referrer.pending_secret_hash
            ):
                referrer.pending_attempts += 1
                left = MAX_CODE_ATTEMPTS - referrer.pending_attempts
                if left <= 0:
                    _forget_pending(referrer)
                    # Committed, then refused: the spent code must stay spent.
                    session.commit()
                    raise CodeRefused(_("Too many wrong codes: ask for a new one."), 429)
                session.commit()
                raise CodeRefused(
                    ngettext(
                        "That is not the code we sent. %(num)d try left.",
                        "That is not the code we sent. %(num)d tries left.",
                        left,
                    )
                )
            self._store_confirmed(session, referrer, campaign, now, "one-time code")

    def confirmation_target(self, link_token: str) -> str:
        """The page token of the referrer a confirmation link is for (to show its button);
        raises InvalidToken / ExpiredToken, ReferrerNotFound."""
        public_id, _ = self._split_link(link_token)
        with self._db.reading() as session:
            if session.scalar(select(Referrer.id).where(Referrer.public_id == public_id)) is None:
                raise ReferrerNotFound("no referrer behind this link")
        return self._tokens.sign(Purpose.REFERRER_PAGE, public_id)

    def confirm_link(self, link_token: str) -> str:
        """Confirm the pending address of the referrer this signed link names; returns their page
        token. Raises InvalidToken (ExpiredToken), ReferrerNotFound, CodeRefused (410: a link
        that was replaced by a newer one, or already used)."""
        public_id, secret = self._split_link(link_token)
        now = self._clock.now()
        with self._db.transaction() as session:
            referrer = session.scalar(select(Referrer).where(Referrer.public_id == public_id))
            if referrer is None:
                raise ReferrerNotFound("no referrer behind this link")
            campaign = session.get(Campaign, referrer.campaign_id)
            assert campaign is not None
            if (
                referrer.pending_channel is None
                or _by_code(referrer.pending_channel)
                or referrer.pending_secret_hash is None
                or not hmac.compare_digest(self._secret_hash(referrer, secret), referrer.pending_secret_hash)
            ):
                raise CodeRefused(_("This link was already used, or a newer one was sent: use the newest one."), 410)
            if referrer.pending_expires_at is None or referrer.pending_expires_at <= now:
                _forget_pending(referrer)
                raise CodeRefused(_("This link has expired: ask for a new one from your page."), 410)
            self._store_confirmed(session, referrer, campaign, now, "signed link")
        return self._tokens.sign(Purpose.REFERRER_PAGE, public_id)

    def _split_link(self, link_token: str) -> tuple[str, str]:
        payload = self._tokens.verify(Purpose.REFERRER_CONFIRM, link_token)
        public_id, _, secret = payload.partition(":")
        if not public_id or not secret:
            raise InvalidToken("bad referrer-confirm payload")
        return public_id, secret

    def _store_confirmed(
        self, session: Session, referrer: Referrer, campaign: Campaign, now: datetime, how: str
    ) -> None:
        refusal = incentives_refusal(campaign)
        if refusal is not None:  # the policy changed since the code was sent
            _forget_pending(referrer)
            raise CodeRefused(_("This campaign offers no rewards to follow: %(reason)s", reason=refusal), 409)
        assert referrer.pending_channel and referrer.pending_contact and referrer.pending_contact_hash
        _end_consent(session, referrer, now, "replaced")
        consent = Consent(
            contact_hash=referrer.pending_contact_hash,
            channel=referrer.pending_channel,
            campaign_id=campaign.id,
            source=ConsentSource.CONFIRMED.value,
            purpose=ConsentPurpose.REWARDS.value,
            evidence={"confirmed_by": how, "referrer": referrer.public_id},
            given_at=now,
        )
        session.add(consent)
        session.flush()
        referrer.contact_channel = referrer.pending_channel
        referrer.contact = referrer.pending_contact
        referrer.contact_hash = referrer.pending_contact_hash
        referrer.consent_id = consent.id
        referrer.confirmed_at = now
        referrer.revoked_at = None
        _forget_pending(referrer)
        log.info("referrer %d: %s confirmed by %s", referrer.id, referrer.contact_channel, how)

    # -- stopping

    def stop(self, token: str) -> bool:
        """Withdraw the consent and erase the confirmed contact (and any pending one). True when
        there was something to stop. Raises InvalidToken, ReferrerNotFound."""
        now = self._clock.now()
        with self._db.transaction() as session:
            referrer, _ = self._load(session, token)
            had = referrer.contact is not None or referrer.pending_contact is not None
            _end_consent(session, referrer, now, "revoked")
            _forget_contact(referrer)
            _forget_pending(referrer)
            if had:
                referrer.revoked_at = now
                log.info("referrer %d: rewards messages stopped", referrer.id)
            return had


def _new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def contact_hash_problem(hasher: ContactHasher, raw: str, region: str) -> tuple[str | None, str | None]:
    """(the contact's hash, None) or (None, why it is no contact), for the API's lookup."""
    try:
        contact = parse_contact(raw, region)
    except InvalidContact as error:
        return None, str(error)
    return hasher.hash(contact), None


def _by_code(channel: str | None) -> bool:
    """Whether a contact of this channel is confirmed by a typed code (else by a signed link)."""
    return channel is not None and channel_named(channel).confirms_by_code
