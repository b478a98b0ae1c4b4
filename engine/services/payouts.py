"""Paying referrers their approved rewards, by the campaign's payout method.

An approved reward waits out the programme's hold period (decided by the app's clock), then the
payout pass (a scheduled task, and a job after each review) starts its payout:

- `webhook`: the shop is told (reward.approved) and pays it itself, then confirms through the
  API (`mark_paid`, idempotent), with its own reference;
- `coupon`: a code (from the campaign's payout pool, else generated) is given to the reward and
  sent to the referrer's confirmed contact, by email or text as they confirmed it. A referrer
  who confirmed no contact waits (`waiting_contact`, shown in the console) until they do. The
  sending is at most once, like every message: claimed (`queued -> sending`) and committed
  before the provider is called; an ambiguous failure leaves it `unknown`, never resent
  blindly. Suppression and the recipient cap apply as to any message.

A referrer's contact is read through a port (`ReferrerContacts`): the referrer's own confirmed
address or number, which this module never stores.

Every step is written to the reward's history (engine.services.reward_history).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from flask_babel import gettext as _
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from engine.caps import CapSettings, CapsUnavailable, Limiter, recipient_rule
from engine.channels import channel as channel_named
from engine.clock import Clock
from engine.contacts import Contact, ContactHasher
from engine.db import Database, rows_changed
from engine.i18n import catalog_locale, rendering_in
from engine.models import Campaign
from engine.models.rewards import PayoutMethod, PayoutState, Reward, RewardCode, RewardProgram, RewardStatus
from engine.services.coupons import CouponCode
from engine.services.lookups import find_campaign
from engine.services.reward_history import SYSTEM_ACTOR, Step, note
from engine.services.reward_listing import MAX_ID
from engine.services.reward_rules import RewardRules
from engine.services.rewards import (
    RewardFilter,
    RewardNotFound,
    RewardsNotAllowed,
    RewardView,
    incentives_refusal,
    list_rewards,
    programme_rules,
    reward_event,
)
from engine.services.suppression import suppressed_hashes
from engine.services.webhooks import publish
from engine.transports import (
    AmbiguousError,
    PermanentError,
    TransientError,
    Transports,
)

log = logging.getLogger(__name__)

SEND_JOB = "workers.jobs.send_reward_code"
PAY_JOB = "workers.jobs.pay_rewards"
MAX_REFERENCE_LENGTH = 200
# A payout the recipient cap or a provider hiccup held back is tried again after this.
RETRY_AFTER = timedelta(hours=1)
PASS_BATCH = 500
GENERATED_CODE_CHARACTERS = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
GENERATED_CODE_LENGTH = 10


class ReferrerContacts(Protocol):
    """The contact a referrer confirmed for hearing about their rewards, if they did."""

    def __call__(self, session: Session, campaign_id: int, referrer_key: str) -> Contact | None: ...


def no_confirmed_contact(session: Session, campaign_id: int, referrer_key: str) -> Contact | None:
    """The default port: no referrer has confirmed a contact, so coupon payouts wait."""
    return None


class ReferrerLinks(Protocol):
    """(the referrer's own page, the one-click stop of their rewards messages), if they have a page."""

    def __call__(self, campaign_id: int, referrer_key: str) -> tuple[str, str] | None: ...


def no_links(campaign_id: int, referrer_key: str) -> tuple[str, str] | None:
    return None


class NotPayable(Exception):
    """The reward cannot be marked paid (held, rejected, paid by code, still in its hold)."""


class PaidAlready(Exception):
    """Paid before, with another reference: the first confirmation stands."""

    def __init__(self, reference: str | None) -> None:
        super().__init__(f"this reward was confirmed paid already (reference {reference!r})")
        self.reference = reference


@dataclass(frozen=True)
class PaidReward:
    reward: RewardView
    replayed: bool  # confirmed paid before with the same reference: nothing changed


def reward_campaign(db: Database, reward_id: int) -> str:
    """The slug of the campaign a reward belongs to. Raises RewardNotFound."""
    if not 0 < reward_id <= MAX_ID:  # no such row, and PostgreSQL refuses to compare an integer with it
        raise RewardNotFound(f"there is no reward {reward_id}")
    with db.reading() as session:
        slug = session.scalar(
            select(Campaign.slug).join(Reward, Reward.campaign_id == Campaign.id).where(Reward.id == reward_id)
        )
    if slug is None:
        raise RewardNotFound(f"there is no reward {reward_id}")
    return slug


def mark_paid(
    db: Database, slug: str, reward_id: int, *, paid_by: str, reference: str | None = None, now: datetime
) -> PaidReward:
    """The shop confirms it paid out an approved reward (webhook payouts). The same confirmation
    again changes nothing. Raises CampaignNotFound, RewardNotFound, RewardsNotAllowed (the policy
    allows no incentives), NotPayable or PaidAlready (confirmed before with another reference)."""
    if reference is not None and not 1 <= len(reference) <= MAX_REFERENCE_LENGTH:
        raise ValueError(f"a payout reference is 1 to {MAX_REFERENCE_LENGTH} characters")
    with db.transaction() as session:
        campaign = find_campaign(session, slug)
        if refusal := incentives_refusal(campaign):
            raise RewardsNotAllowed(refusal)
        reward = session.scalar(
            select(Reward).where(Reward.id == reward_id, Reward.campaign_id == campaign.id).with_for_update()
        )
        if reward is None:
            raise RewardNotFound(f"campaign {slug} has no reward {reward_id}")
        replayed = False
        if reward.status == RewardStatus.PAID:
            if reward.payout_reference != reference:
                raise PaidAlready(reward.payout_reference)
            replayed = True
        elif reward.status != RewardStatus.APPROVED:
            raise NotPayable(f"reward {reward_id} is {reward.status}: only an approved reward is paid out")
        elif reward.payout_method != PayoutMethod.WEBHOOK:
            raise NotPayable(f"reward {reward_id} is paid out by sending the referrer a code, not by the shop")
        elif reward.payable_at is not None and now < reward.payable_at:
            raise NotPayable(f"reward {reward_id} is in its hold period until {reward.payable_at.isoformat()}")
        else:
            _paid(session, campaign, reward, paid_by, now, reference=reference)
    view = list_rewards(db, slug, limit=1, where=RewardFilter(ids=(reward_id,)))[0]
    if not replayed:
        log.info("campaign %s: reward %d paid (confirmed by %s)", slug, reward_id, paid_by)
    return PaidReward(view, replayed)


def _paid(
    session: Session, campaign: Campaign, reward: Reward, actor: str, now: datetime, *, reference: str | None
) -> None:
    reward.status = RewardStatus.PAID.value
    reward.payout_reference = reference
    reward.paid_by = actor
    reward.paid_at = now
    note(session, reward.id, actor, Step.PAID, now, reference=reference)
    publish(session, "reward.paid", reward_event(campaign, reward), now=now)


@dataclass
class PassReport:
    approved: list[int] = field(default_factory=list)  # approved automatically after their hold
    shop_told: list[int] = field(default_factory=list)
    queued: list[int] = field(default_factory=list)
    waiting_contact: list[int] = field(default_factory=list)


class PayoutService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        transports: Transports,
        limiter: Limiter,
        hasher: ContactHasher,
        enqueue: Callable[..., None],
        contacts: ReferrerContacts = no_confirmed_contact,
    ) -> None:
        self._db = db
        self._clock = clock
        self._transports = transports
        self._limiter = limiter
        self._hasher = hasher
        self._enqueue = enqueue
        self.contacts = contacts
        # Every message about a referrer's rewards carries their page and its one-click stop.
        self.links: ReferrerLinks = no_links

    # -- the pass: what the hold period releases ---------------------------------------------------

    def run_due(self) -> PassReport:
        """Approve (where the programme says so) and start the payout of every reward whose hold
        period is over; look again for the contact of referrers who had none. Enqueues the
        sends after its transaction commits."""
        now = self._clock.now()
        report = PassReport()
        with self._db.transaction() as session:
            rows = session.execute(
                select(Reward, RewardProgram)
                .join(RewardProgram, RewardProgram.campaign_id == Reward.campaign_id)
                .where(
                    Reward.payable_at <= now,
                    or_(
                        and_(Reward.status == RewardStatus.HELD.value, Reward.flagged.is_(False)),
                        and_(
                            Reward.status == RewardStatus.APPROVED.value,
                            or_(
                                Reward.payout_state.is_(None),
                                Reward.payout_state.in_(
                                    [PayoutState.WAITING_HOLD.value, PayoutState.WAITING_CONTACT.value]
                                ),
                                and_(
                                    Reward.payout_state == PayoutState.CAPPED.value,
                                    Reward.payout_not_before <= now,
                                ),
                            ),
                        ),
                    ),
                )
                .order_by(Reward.id)
                .limit(PASS_BATCH)
                .with_for_update(of=Reward, skip_locked=True)
            ).all()
            for reward, program in rows:
                rules = programme_rules(program)
                campaign = session.get(Campaign, reward.campaign_id)
                assert campaign is not None
                if incentives_refusal(campaign):
                    continue  # the policy changed since: nothing is paid out (the console says why)
                if reward.status == RewardStatus.HELD:
                    if not rules.auto_approve:
                        continue
                    reward.status = RewardStatus.APPROVED.value
                    reward.reviewed_by = SYSTEM_ACTOR
                    reward.reviewed_at = now
                    note(session, reward.id, SYSTEM_ACTOR, Step.APPROVED, now, why="hold period over, no fraud flags")
                    publish(session, "reward.approved", reward_event(campaign, reward), now=now)
                    report.approved.append(reward.id)
                self._start(session, campaign, reward, rules, now, report)
        for reward_id in report.queued:
            self._enqueue(SEND_JOB, reward_id)
        return report

    def request_pass(self) -> None:
        """Run the pass soon, in a worker (after a review: an approved reward past its hold is
        paid out without waiting for the schedule)."""
        self._enqueue(PAY_JOB)

    def _start(
        self,
        session: Session,
        campaign: Campaign,
        reward: Reward,
        rules: RewardRules,
        now: datetime,
        report: PassReport,
    ) -> None:
        if reward.payout_state in (None, PayoutState.WAITING_HOLD):
            note(session, reward.id, SYSTEM_ACTOR, Step.HOLD_OVER, now)
        if reward.payout_method == PayoutMethod.WEBHOOK:
            reward.payout_state = PayoutState.WAITING_SHOP.value
            note(session, reward.id, SYSTEM_ACTOR, Step.SHOP_TOLD, now)
            # No second event: `reward.approved` told the shop when it may pay (`payable_at`).
            report.shop_told.append(reward.id)
            return
        contact = self._reachable(session, campaign.id, reward.referrer_key)
        if contact is None:
            if reward.payout_state != PayoutState.WAITING_CONTACT:
                reward.payout_state = PayoutState.WAITING_CONTACT.value
                note(session, reward.id, SYSTEM_ACTOR, Step.WAITING_CONTACT, now)
            report.waiting_contact.append(reward.id)
            return
        if reward.payout_code is None:
            reward.payout_code = _give_code(session, campaign.id, reward.id, rules.code_prefix)
            note(session, reward.id, SYSTEM_ACTOR, Step.CODE_ASSIGNED, now)
        reward.payout_state = PayoutState.QUEUED.value
        reward.payout_channel = contact.channel
        note(session, reward.id, SYSTEM_ACTOR, Step.QUEUED, now, channel=contact.channel)
        report.queued.append(reward.id)

    def _reachable(self, session: Session, campaign_id: int, referrer_key: str) -> Contact | None:
        return reachable(self.contacts(session, campaign_id, referrer_key), self._transports)

    # -- sending a code ------------------------------------------------------------------------------

    def send(self, reward_id: int) -> str:
        """Send a queued reward's code to its referrer; the reward's payout state after it."""
        now = self._clock.now()
        with self._db.transaction() as session:
            claimed = rows_changed(
                session,
                update(Reward)
                .where(Reward.id == reward_id, Reward.payout_state == PayoutState.QUEUED.value)
                .values(payout_state=PayoutState.SENDING.value),
            )
        if not claimed:
            return "not queued"  # sent already, or another job has it
        with self._db.transaction() as session:
            reward = session.get(Reward, reward_id)
            assert reward is not None
            campaign = session.get(Campaign, reward.campaign_id)
            assert campaign is not None
            contact = self._reachable(session, campaign.id, reward.referrer_key)
            held = self._held_back(session, campaign, reward, contact, now)
            if held is not None:
                return held
            assert contact is not None and reward.payout_code is not None
        try:
            provider_id = self._deliver(campaign, reward, contact)
        except AmbiguousError as error:
            return self._settle(reward_id, PayoutState.UNKNOWN, now, str(error))
        except TransientError as error:
            return self._settle(reward_id, PayoutState.QUEUED, now, str(error), retry=True)
        except PermanentError as error:
            return self._settle(reward_id, PayoutState.FAILED, now, str(error))
        with self._db.transaction() as session:
            reward = session.get(Reward, reward_id)
            assert reward is not None
            reward.payout_state = PayoutState.SENT.value
            reward.payout_error = None
            note(session, reward.id, SYSTEM_ACTOR, Step.SENT, now, channel=contact.channel, to=contact.masked())
            _paid(session, campaign, reward, SYSTEM_ACTOR, now, reference=provider_id[:MAX_REFERENCE_LENGTH])
        log.info("reward %d: code sent by %s", reward_id, contact.channel)
        return PayoutState.SENT.value

    def _held_back(
        self, session: Session, campaign: Campaign, reward: Reward, contact: Contact | None, now: datetime
    ) -> str | None:
        """Why the code may not go now (the state it is left in), or None: it may."""
        if incentives_refusal(campaign) or reward.status != RewardStatus.APPROVED:
            reward.payout_state = PayoutState.FAILED.value
            reward.payout_error = "the reward is no longer payable under the campaign's policy"
            note(session, reward.id, SYSTEM_ACTOR, Step.NOT_SENT, now, why=reward.payout_error)
            return reward.payout_state
        if contact is None:
            reward.payout_state = PayoutState.WAITING_CONTACT.value
            note(session, reward.id, SYSTEM_ACTOR, Step.WAITING_CONTACT, now)
            return reward.payout_state
        contact_hash = self._hasher.hash(contact)
        if suppressed_hashes(session, campaign.id, contact.channel, [contact_hash]):
            reward.payout_state = PayoutState.SUPPRESSED.value
            note(session, reward.id, SYSTEM_ACTOR, Step.NOT_SENT, now, why="the referrer's contact opted out")
            return reward.payout_state
        rule = recipient_rule(CapSettings.from_overrides(campaign.caps), contact_hash)
        try:
            allowed = rule is None or self._limiter.acquire([rule]).allowed
        except CapsUnavailable as error:
            allowed = False
            log.warning("reward %d: caps unavailable (%s); tried again later", reward.id, error)
        if not allowed:
            reward.payout_state = PayoutState.CAPPED.value
            reward.payout_not_before = now + RETRY_AFTER
            note(session, reward.id, SYSTEM_ACTOR, Step.NOT_SENT, now, why="over the recipient cap; tried again later")
            return reward.payout_state
        return None

    def _deliver(self, campaign: Campaign, reward: Reward, contact: Contact) -> str:
        # In the campaign's own language (its first), as its other messages to people.
        with rendering_in(catalog_locale(campaign.default_locale, campaign.address_form)):
            text = _(
                "Thank you for recommending %(brand)s! Your reward: %(reward)s. Your code: %(code)s",
                brand=campaign.brand_name,
                reward=reward.description,
                code=reward.payout_code or "",
            )
            subject = _("Your reward from %(brand)s", brand=campaign.brand_name)
            links = self.links(campaign.id, reward.referrer_key)
            if links is not None:
                text += "\n" + _("Your page: %(page)s - stop these messages: %(stop)s", page=links[0], stop=links[1])
        return send_notice(
            self._transports, campaign, contact, subject=subject, text=text, reference=f"reward-{reward.id}"
        )

    def _settle(self, reward_id: int, state: PayoutState, now: datetime, error: str, *, retry: bool = False) -> str:
        with self._db.transaction() as session:
            reward = session.get(Reward, reward_id)
            assert reward is not None
            reward.payout_state = (PayoutState.CAPPED if retry else state).value
            reward.payout_error = error[:2000]
            if retry:
                reward.payout_not_before = now + RETRY_AFTER
            note(session, reward.id, SYSTEM_ACTOR, Step.NOT_SENT, now, why=error[:500])
        log.warning(
            "reward %d: code not sent (%s): %s", reward_id, reward.payout_state if not retry else "retry", error
        )
        return (PayoutState.CAPPED if retry else state).value


def reachable(contact: Contact | None, transports: Transports) -> Contact | None:
    """A referrer's confirmed contact, if a notice (a reward's code, a contest's prize) can go to
    it: by email, or by text where texts can be sent. A WhatsApp number alone waits: a notice is
    no approved WhatsApp template."""
    if contact is None or contact.channel not in transports:
        return None
    if not channel_named(contact.channel).confirms_referrers:
        return None
    return contact


def send_notice(
    transports: Transports, campaign: Campaign, contact: Contact, *, subject: str, text: str, reference: str
) -> str:
    """Send a notice to a referrer's reachable contact, from the campaign's brand; the provider's id.
    Raises the transports' errors, and PermanentError for a channel that sends no notices."""
    channel = channel_named(contact.channel)
    outgoing = channel.notice(
        contact.value,
        subject=subject,
        text=text,
        brand=campaign.brand_name,
        sender_email=campaign.sender_email,
        postal_address=campaign.postal_address,
        reference=reference,
    )
    if outgoing is None:
        raise PermanentError(f"notices are not sent by {contact.channel}")
    return channel.send(transports[channel.name], outgoing)


def _give_code(session: Session, campaign_id: int, reward_id: int, prefix: str) -> str:
    """A code from the campaign's payout pool (oldest first), else a generated one."""
    free = session.scalar(
        select(RewardCode)
        .where(RewardCode.campaign_id == campaign_id, RewardCode.reward_id.is_(None))
        .order_by(RewardCode.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if free is not None:
        free.reward_id = reward_id
        return free.code
    code = prefix + "".join(secrets.choice(GENERATED_CODE_CHARACTERS) for _ in range(GENERATED_CODE_LENGTH))
    session.add(RewardCode(campaign_id=campaign_id, code=code, reward_id=reward_id))
    return code


def add_payout_codes(db: Database, slug: str, codes: list[str]) -> int:
    """Load codes into the campaign's payout pool (codes it has already are skipped); how many
    were new. Raises CampaignNotFound, RewardsNotAllowed, or ValueError for a bad code."""
    checked = list(dict.fromkeys(CouponCode(code.strip()).value for code in codes if code.strip()))
    with db.transaction() as session:
        campaign = find_campaign(session, slug)
        if refusal := incentives_refusal(campaign):
            raise RewardsNotAllowed(refusal)
        existing = set(
            session.scalars(
                select(RewardCode.code).where(RewardCode.campaign_id == campaign.id, RewardCode.code.in_(checked))
            )
        )
        new = [code for code in checked if code not in existing]
        session.add_all(RewardCode(campaign_id=campaign.id, code=code) for code in new)
    return len(new)
