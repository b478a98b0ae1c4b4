"""Contests: for a period, a campaign's referrers compete for prizes by rank.

A marketer sets a contest up in the console: a title, official rules (shown in full on the
campaign's contest page, linked from the landing page while it runs), a metric, a period typed
in a named time zone, and prizes by rank. Once it has started nothing about it changes but
being cancelled (with a reason): changing the rules of a running contest would be unfair to
those already taking part.

Who takes part (eligibility), by the rules the issue and the law ask for:

- confirmed referrers only: a referrer who confirmed their contact (engine.services.referrers)
  before the contest ended, and did not revoke it. Nobody else can be told they won;
- one entry per person: every sender key confirmed with one contact is one person, whose
  friends are counted once across those keys;
- fraud filters: `friends-converted` counts rewards as the leaderboard does (`ELIGIBLE`: a
  reward a fraud filter flagged counts only once a reviewer approved it; a rejected one never);
  `friends-reached` counts distinct friends whose invitation went out (sent or delivered), never
  the referrer's own contact;
- only what happened within the period, on the app's clock.

Ties go to whoever reached their score first; then to whoever confirmed first.

When the period is over, the scheduler's pass (and the console, when a marketer looks first)
freezes the final leaderboard in `contest_winners`, once: it is never computed again, so later
corrections (a reward rejected after the end) do not move a published result. Winners with a
prize are told through the contact they confirmed, at most once, as reward codes are
(engine.services.payouts): claimed and committed before the provider is called; an ambiguous
failure is left `unknown`, never resent blindly; a contact that opted out is not messaged.

A contest is an incentive for forwarding: under a consent policy that allows none, or for a
campaign open to a region whose law asks for steps Fluister does not take (CONTEST_BARRED_REGIONS),
no contest can be set up, and the console says why.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import and_, false, or_, select, update
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.contacts import Contact, ContactHasher
from engine.db import Database, rows_changed
from engine.i18n import catalog_locale, rendering_in
from engine.models import (
    Campaign,
    Contest,
    ContestMetric,
    ContestWinner,
    Forward,
    Message,
    MessageStatus,
    NoticeState,
    Referrer,
    Reward,
    RewardProgram,
)
from engine.services.analytics import sender_key_expression
from engine.services.history import Actor, ActorKind, EventAction, record_event
from engine.services.lookups import find_campaign
from engine.services.payouts import ReferrerContacts, ReferrerLinks, no_links, reachable, send_notice
from engine.services.rewards import ELIGIBLE, incentives_refusal
from engine.services.suppression import suppressed_hashes
from engine.time_zones import is_time_zone, time_zone
from engine.transports import AmbiguousError, PermanentError, TransientError, Transports

log = logging.getLogger(__name__)

NOTICE_JOB = "workers.jobs.send_contest_notice"
MAX_TITLE_LENGTH = 200
MIN_RULES_LENGTH = 100
MAX_RULES_LENGTH = 20_000
MAX_PRIZES = 20
MAX_PRIZE_LENGTH = 200
MAX_CANCEL_REASON_LENGTH = 500
# Places kept on a final leaderboard besides the prize winners (the runners-up, for the record).
FINAL_PLACES = 20
STANDINGS_SHOWN = 20
# A period shorter than this is no contest anyone could take part in.
MIN_PERIOD = timedelta(hours=1)
MAX_PERIOD = timedelta(days=366)
# A notice the provider held back (a hiccup) is tried again by the next pass after this.
RETRY_AFTER = timedelta(hours=1)

METRIC_LABELS: Mapping[str, Any] = {
    ContestMetric.FRIENDS_REACHED: lazy_gettext("friends reached (invitations that went out)"),
    ContestMetric.FRIENDS_CONVERTED: lazy_gettext("friends converted (redeemed an offer)"),
}

# Where a prize contest needs what Fluister does not do (an authorisation or a filing before it
# starts), by the ISO region a campaign is open to (its phone regions): no contest is set up.
CONTEST_BARRED_REGIONS: Mapping[str, Any] = {
    "IT": lazy_gettext(
        "Prize contests in Italy must be notified to the Ministry of Enterprises, with a deposit, before they"
        " start (DPR 430/2001)."
    ),
    "BR": lazy_gettext(
        "Prize promotions in Brazil need the Ministry of Finance's authorisation before they start (Law 5,768/1971)."
    ),
}


class ContestInvalid(Exception):
    """What is wrong with a contest as typed, by field."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {problem}" for field, problem in problems.items()))
        self.problems = dict(problems)


class ContestRefused(Exception):
    """The campaign may not run a contest (its policy, its regions); the message says why."""


class ContestNotFound(LookupError):
    pass


class ContestLocked(Exception):
    """The contest has started (or is over): only cancelling it is possible."""


def contest_refusal(campaign: Campaign, session: Session | None = None, metric: str | None = None) -> str | None:
    """Why this campaign may not run a contest (on this metric), or None."""
    if refusal := incentives_refusal(campaign):
        return _("A contest entry is an incentive for forwarding. %(why)s", why=refusal)
    for region in sorted({campaign.phone_region or "", *(campaign.extra_phone_regions or [])}):
        if region in CONTEST_BARRED_REGIONS:
            return _(
                "The campaign is open to %(region)s: %(why)s Fluister does not take that step, so it runs no"
                " contest there.",
                region=region,
                why=CONTEST_BARRED_REGIONS[region],
            )
    if metric == ContestMetric.FRIENDS_CONVERTED and session is not None:
        program = session.get(RewardProgram, campaign.id)
        if program is None or not program.enabled:
            return _(
                "Friends converted are counted from the reward programme's rewards, with its fraud filters:"
                " switch the reward programme on first, or choose friends reached."
            )
    return None


@dataclass(frozen=True)
class ContestDraft:
    """A contest as typed: the period in `time_zone`'s wall-clock time. Validates in its constructor
    (ContestInvalid, every problem by field)."""

    title: str
    rules: str
    metric: str
    starts_local: datetime | None
    ends_local: datetime | None
    time_zone: str
    prizes: tuple[str, ...]

    def __post_init__(self) -> None:
        problems: dict[str, str] = {}
        if not self.title.strip():
            problems["title"] = _("Give the contest a title.")
        elif len(self.title) > MAX_TITLE_LENGTH:
            problems["title"] = _("At most %(count)d characters.", count=MAX_TITLE_LENGTH)
        if len(self.rules.strip()) < MIN_RULES_LENGTH:
            problems["rules"] = _(
                "The official rules need at least %(count)d characters: who may take part, how entries count,"
                " the prizes and how winners are told.",
                count=MIN_RULES_LENGTH,
            )
        elif len(self.rules) > MAX_RULES_LENGTH:
            problems["rules"] = _("At most %(count)d characters.", count=MAX_RULES_LENGTH)
        if self.metric not in METRIC_LABELS:
            problems["metric"] = _("Choose what the contest counts.")
        if not is_time_zone(self.time_zone):
            problems["time_zone"] = _("Choose a time zone from the list (such as Europe/Amsterdam).")
        if self.starts_local is None:
            problems["starts"] = _("When does it start?")
        if self.ends_local is None:
            problems["ends"] = _("When does it end?")
        if not problems.get("starts") and not problems.get("ends") and "time_zone" not in problems:
            period = self.ends_utc - self.starts_utc
            if period < MIN_PERIOD:
                problems["ends"] = _("The contest must end at least an hour after it starts.")
            elif period > MAX_PERIOD:
                problems["ends"] = _("A contest lasts at most a year.")
        if not self.prizes:
            problems["prizes"] = _("Name at least one prize, one a line: the first for rank 1.")
        elif len(self.prizes) > MAX_PRIZES:
            problems["prizes"] = _("At most %(count)d prizes.", count=MAX_PRIZES)
        elif any(len(prize) > MAX_PRIZE_LENGTH for prize in self.prizes):
            problems["prizes"] = _("Each prize is at most %(count)d characters.", count=MAX_PRIZE_LENGTH)
        if problems:
            raise ContestInvalid(problems)

    @property
    def starts_utc(self) -> datetime:
        assert self.starts_local is not None
        return _to_utc(self.starts_local, self.time_zone)

    @property
    def ends_utc(self) -> datetime:
        assert self.ends_local is not None
        return _to_utc(self.ends_local, self.time_zone)


def _to_utc(local: datetime, zone: str) -> datetime:
    return local.replace(tzinfo=time_zone(zone)).astimezone(UTC)


def prize_lines(text: str) -> tuple[str, ...]:
    """The prizes typed one a line, blank lines dropped."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())


# -- setting a contest up --------------------------------------------------------------------------


def save_contest(
    db: Database, slug: str, draft: ContestDraft, actor: Actor, now: datetime, contest_id: int | None = None
) -> Contest:
    """Create a contest (or change one that has not started). Raises ContestRefused, ContestInvalid
    (a period in the past, or overlapping another contest), ContestLocked, ContestNotFound."""
    with db.transaction() as session:
        campaign = find_campaign(session, slug, for_update=True)
        if refusal := contest_refusal(campaign, session, draft.metric):
            raise ContestRefused(refusal)
        contest = _own_contest(session, campaign, contest_id) if contest_id is not None else None
        if contest is not None and contest.state(now) != "upcoming":
            raise ContestLocked(_("The contest has started: its rules no longer change. You can cancel it."))
        if draft.starts_utc < now:
            raise ContestInvalid(
                {"starts": _("The start has passed: a contest's rules are published before it starts.")}
            )
        if _overlapping(session, campaign.id, draft, contest_id):
            raise ContestInvalid({"starts": _("Another contest of this campaign runs in that period.")})
        before = contest.rules_snapshot() if contest is not None else {}
        if contest is None:
            contest = Contest(campaign_id=campaign.id, created_by=actor.name[:254], created_at=now)
            session.add(contest)
        contest.title = draft.title.strip()
        contest.rules = draft.rules.replace("\r\n", "\n").strip()
        contest.metric = draft.metric
        contest.starts_at = draft.starts_utc
        contest.ends_at = draft.ends_utc
        contest.time_zone = draft.time_zone
        contest.prizes = list(draft.prizes)
        session.flush()
        after = contest.rules_snapshot()
        changes = {key: [before.get(key), value] for key, value in after.items() if before.get(key) != value}
        record_event(session, campaign.id, actor, EventAction.CONTEST, {"contest": [None, contest.id], **changes})
        session.expunge(contest)
        return contest


def cancel_contest(db: Database, slug: str, contest_id: int, reason: str, actor: Actor, now: datetime) -> Contest:
    """Cancel a contest that is not final: it leaves the landing page and has no winners."""
    if not reason.strip():
        raise ContestInvalid({"reason": _("Say why: participants may ask.")})
    with db.transaction() as session:
        campaign = find_campaign(session, slug, for_update=True)
        contest = _own_contest(session, campaign, contest_id)
        if contest.state(now) in ("final", "cancelled"):
            raise ContestLocked(_("The contest is final already: its result stands."))
        contest.cancelled_at = now
        contest.cancel_reason = reason.strip()[:MAX_CANCEL_REASON_LENGTH]
        record_event(
            session, campaign.id, actor, EventAction.CONTEST, {"cancelled": [None, contest.id]}, reason=reason.strip()
        )
        session.flush()
        session.expunge(contest)
        return contest


def _own_contest(session: Session, campaign: Campaign, contest_id: int) -> Contest:
    contest = session.get(Contest, contest_id)
    if contest is None or contest.campaign_id != campaign.id:
        raise ContestNotFound(f"no contest {contest_id} in {campaign.slug}")
    return contest


def _overlapping(session: Session, campaign_id: int, draft: ContestDraft, contest_id: int | None) -> bool:
    return (
        session.scalar(
            select(Contest.id)
            .where(
                Contest.campaign_id == campaign_id,
                Contest.cancelled_at.is_(None),
                Contest.id != (contest_id or 0),
                Contest.starts_at < draft.ends_utc,
                Contest.ends_at > draft.starts_utc,
            )
            .limit(1)
        )
        is not None
    )


# -- the standings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entrant:
    """One person taking part: their sender keys, the key their notice goes to, their name."""

    person: str
    keys: tuple[str, ...]
    notice_key: str
    name: str
    confirmed_at: datetime
    own_contact_hash: str | None


@dataclass(frozen=True)
class Standing:
    rank: int
    referrer_key: str
    sender_name: str
    score: int
    reached_at: datetime
    prize: str | None


def rank_entries(scores: Iterable[tuple[Entrant, int, datetime]], prizes: tuple[str, ...]) -> list[Standing]:
    """Ranked by score; a tie goes to whoever reached the score first, then to whoever confirmed
    first, then by key (so the order never depends on how the database returned the rows)."""
    ordered = sorted(
        ((entrant, score, reached) for entrant, score, reached in scores if score > 0),
        key=lambda row: (-row[1], row[2], row[0].confirmed_at, row[0].person),
    )
    return [
        Standing(
            rank, entrant.notice_key, entrant.name, score, reached, prizes[rank - 1] if rank <= len(prizes) else None
        )
        for rank, (entrant, score, reached) in enumerate(ordered, 1)
    ]


def standings(session: Session, contest: Contest, until: datetime) -> list[Standing]:
    """The leaderboard of a contest as it stands at `until` (at most its end)."""
    end = min(until, contest.ends_at)
    entrants = _entrants(session, contest.campaign_id, end)
    if not entrants or end <= contest.starts_at:
        return []
    by_key = {key: entrant for entrant in entrants for key in entrant.keys}
    if contest.metric == ContestMetric.FRIENDS_CONVERTED:
        events = _conversions(session, contest, end, list(by_key))
    else:
        events = _friends_reached(session, contest, end, by_key)
    # Per person: the time each counted thing happened (a friend counted once, however many keys).
    counted: dict[str, dict[str, datetime]] = defaultdict(dict)
    for key, what, at in events:
        entrant = by_key[key]
        first = counted[entrant.person].get(what)
        if first is None or at < first:
            counted[entrant.person][what] = at
    people = {entrant.person: entrant for entrant in entrants}
    scores = [(people[person], len(things), max(things.values())) for person, things in counted.items() if things]
    return rank_entries(scores, tuple(contest.prizes or ()))


def _entrants(session: Session, campaign_id: int, end: datetime) -> list[Entrant]:
    """Referrers who confirmed a contact before `end` and still stand by it, one per person."""
    rows = session.execute(
        select(Referrer.referrer_key, Referrer.contact_hash, Referrer.confirmed_at, Forward.sender_name)
        .join(Forward, Forward.id == Referrer.forward_id)
        .where(
            Referrer.campaign_id == campaign_id,
            Referrer.confirmed_at.is_not(None),
            Referrer.confirmed_at < end,
            Referrer.revoked_at.is_(None),
        )
        .order_by(Referrer.confirmed_at, Referrer.referrer_key)
    ).all()
    grouped: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[row.contact_hash or row.referrer_key].append(row)
    entrants = []
    for person, group in grouped.items():
        latest = group[-1]  # the notice goes to the contact confirmed last
        entrants.append(
            Entrant(
                person=person,
                keys=tuple(row.referrer_key for row in group),
                notice_key=latest.referrer_key,
                name=latest.sender_name,
                confirmed_at=group[0].confirmed_at,
                own_contact_hash=latest.contact_hash,
            )
        )
    return entrants


def _of_keys(keys: list[str]) -> Any:
    """Forwards sent under any of these sender keys: each key's own column narrows it first
    (the indexes on sender contact and parent), the full expression then decides."""
    contacts = [key[2:] for key in keys if key.startswith("c:")]
    parents = [int(key[2:]) for key in keys if key.startswith("p:") and key[2:].isdigit() and len(key) <= 11]
    others = [key for key in keys if key.startswith("a:")]
    narrowed = [
        clause
        for clause, wanted in (
            (Forward.sender_contact_hash.in_(contacts), contacts),
            (Forward.parent_id.in_(parents), parents),
            (Forward.sender_contact_hash.is_(None), others),
        )
        if wanted
    ]
    if not narrowed:
        return false()
    return and_(or_(*narrowed), sender_key_expression().in_(keys))


def _friends_reached(
    session: Session, contest: Contest, end: datetime, by_key: Mapping[str, Entrant]
) -> list[tuple[str, str, datetime]]:
    """(sender key, friend, when) for each invitation of the period that went out."""
    key = sender_key_expression().label("key")
    rows = session.execute(
        select(key, Forward.recipient_contact_hash, Forward.created_at)
        .join(Message, Message.forward_id == Forward.id)
        .where(
            Forward.campaign_id == contest.campaign_id,
            Forward.created_at >= contest.starts_at,
            Forward.created_at < end,
            Message.status.in_([MessageStatus.SENT.value, MessageStatus.DELIVERED.value]),
            _of_keys(list(by_key)),
        )
    ).all()
    return [
        (row.key, row.recipient_contact_hash, row.created_at)
        for row in rows
        # Inviting yourself reaches nobody.
        if row.recipient_contact_hash != by_key[row.key].own_contact_hash
    ]


def _conversions(session: Session, contest: Contest, end: datetime, keys: list[str]) -> list[tuple[str, str, datetime]]:
    """(referrer key, the redemption, when) for each reward of the period the fraud filters let count."""
    rows = session.execute(
        select(Reward.referrer_key, Reward.redemption_id, Reward.created_at).where(
            Reward.campaign_id == contest.campaign_id,
            Reward.created_at >= contest.starts_at,
            Reward.created_at < end,
            Reward.referrer_key.in_(keys),
            ELIGIBLE,
        )
    ).all()
    return [(row.referrer_key, str(row.redemption_id), row.created_at) for row in rows]


# -- what the console and the landing page read ------------------------------------------------------


@dataclass(frozen=True)
class ContestView:
    id: int
    title: str
    rules: str
    metric: str
    starts_at: datetime
    ends_at: datetime
    time_zone: str
    prizes: tuple[str, ...]
    state: str
    cancel_reason: str | None
    leaderboard: list[Standing] = field(default_factory=list)
    winners: list[ContestWinner] = field(default_factory=list)

    @property
    def metric_label(self) -> str:
        return str(METRIC_LABELS.get(self.metric, self.metric))

    @property
    def local_starts(self) -> datetime:
        return self.starts_at.astimezone(time_zone(self.time_zone))

    @property
    def local_ends(self) -> datetime:
        return self.ends_at.astimezone(time_zone(self.time_zone))


@dataclass(frozen=True)
class CampaignContests:
    slug: str
    refusal: str | None
    contests: list[ContestView]


def campaign_contests(db: Database, slug: str, now: datetime) -> CampaignContests:
    """Every contest of a campaign, newest first, with the standings of a running one and the
    final leaderboard of an ended one."""
    with db.reading() as session:
        campaign = find_campaign(session, slug)
        contests = session.scalars(
            select(Contest).where(Contest.campaign_id == campaign.id).order_by(Contest.starts_at.desc())
        ).all()
        views = []
        for contest in contests:
            state = contest.state(now)
            board = standings(session, contest, now)[:STANDINGS_SHOWN] if state in ("open", "ended") else []
            winners = _winners(session, contest.id) if state == "final" else []
            views.append(_view(contest, state, board, winners))
        return CampaignContests(campaign.slug, contest_refusal(campaign), views)


def open_contest(campaign: Campaign, contests: Iterable[Contest], now: datetime) -> ContestView | None:
    """The contest a landing page announces: the one running now, while the campaign may run one."""
    running = [contest for contest in contests if contest.state(now) == "open"]
    if not running or contest_refusal(campaign) is not None:
        return None
    return _view(running[0], "open", [], [])


def public_contest(db: Database, slug: str, now: datetime) -> ContestView | None:
    """The contest whose rules the public contest page shows: the running one, else the last that
    ran (its result), else the next; never a cancelled one."""
    with db.reading() as session:
        campaign = find_campaign(session, slug)
        contests = session.scalars(
            select(Contest)
            .where(Contest.campaign_id == campaign.id, Contest.cancelled_at.is_(None))
            .order_by(Contest.starts_at.desc())
        ).all()
        started = [contest for contest in contests if contest.starts_at <= now]
        contest = started[0] if started else (contests[-1] if contests else None)
        if contest is None:
            return None
        state = contest.state(now)
        winners = _winners(session, contest.id) if state == "final" else []
        return _view(contest, state, [], winners)


def _winners(session: Session, contest_id: int) -> list[ContestWinner]:
    winners = list(
        session.scalars(
            select(ContestWinner).where(ContestWinner.contest_id == contest_id).order_by(ContestWinner.rank)
        )
    )
    for winner in winners:
        session.expunge(winner)
    return winners


def _view(contest: Contest, state: str, board: list[Standing], winners: list[ContestWinner]) -> ContestView:
    return ContestView(
        id=contest.id,
        title=contest.title,
        rules=contest.rules,
        metric=contest.metric,
        starts_at=contest.starts_at,
        ends_at=contest.ends_at,
        time_zone=contest.time_zone,
        prizes=tuple(contest.prizes or ()),
        state=state,
        cancel_reason=contest.cancel_reason,
        leaderboard=board,
        winners=winners,
    )


# -- the end: the final leaderboard, and the winners told ------------------------------------------------


@dataclass
class ContestPass:
    finalised: list[int] = field(default_factory=list)
    queued: list[int] = field(default_factory=list)
    waiting_contact: list[int] = field(default_factory=list)


class ContestService:
    """Freezes ended contests and tells their winners, by the scheduler's pass and a job per notice."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        transports: Transports,
        hasher: ContactHasher,
        enqueue: Callable[..., None],
        contacts: ReferrerContacts,
    ) -> None:
        self._db = db
        self._clock = clock
        self._transports = transports
        self._hasher = hasher
        self._enqueue = enqueue
        self._contacts = contacts
        # Every notice to a referrer carries their page and its one-click stop (set by the runtime).
        self.links: ReferrerLinks = no_links

    def finalise_due(self, slug: str | None = None) -> ContestPass:
        """Freeze every ended contest (of one campaign, or all), and queue the notices that can go."""
        now = self._clock.now()
        report = ContestPass()
        with self._db.transaction() as session:
            query = select(Contest).where(
                Contest.ends_at <= now, Contest.finalised_at.is_(None), Contest.cancelled_at.is_(None)
            )
            if slug is not None:
                query = query.join(Campaign, Campaign.id == Contest.campaign_id).where(Campaign.slug == slug)
            for contest in session.scalars(query.order_by(Contest.id).with_for_update(skip_locked=True)).all():
                self._freeze(session, contest, now)
                report.finalised.append(contest.id)
            self._queue_notices(session, now, report)
        for winner_id in report.queued:
            self._enqueue(NOTICE_JOB, winner_id)
        if report.finalised:
            log.info("contests finalised: %s; notices queued: %d", report.finalised, len(report.queued))
        return report

    def _freeze(self, session: Session, contest: Contest, now: datetime) -> None:
        board = standings(session, contest, contest.ends_at)
        prized = len(contest.prizes or ())
        for place in board[: max(prized, FINAL_PLACES)]:
            session.add(
                ContestWinner(
                    contest_id=contest.id,
                    rank=place.rank,
                    referrer_key=place.referrer_key,
                    sender_name=place.sender_name,
                    score=place.score,
                    reached_at=place.reached_at,
                    prize=place.prize,
                    notice_state=NoticeState.WAITING_CONTACT.value if place.prize else None,
                )
            )
        contest.finalised_at = now
        record_event(
            session,
            contest.campaign_id,
            _SYSTEM,
            EventAction.CONTEST,
            {"finalised": [None, contest.id], "winners": [None, sum(1 for p in board[:prized] if p.prize)]},
        )

    def _queue_notices(self, session: Session, now: datetime, report: ContestPass) -> None:
        waiting = session.execute(
            select(ContestWinner, Contest.campaign_id)
            .join(Contest, Contest.id == ContestWinner.contest_id)
            .where(
                or_(
                    ContestWinner.notice_state == NoticeState.WAITING_CONTACT.value,
                    and_(
                        ContestWinner.notice_state == NoticeState.QUEUED.value,
                        or_(
                            ContestWinner.notice_changed_at.is_(None),
                            ContestWinner.notice_changed_at <= now - RETRY_AFTER,
                        ),
                    ),
                )
            )
            .order_by(ContestWinner.id)
            .limit(500)
            .with_for_update(of=ContestWinner, skip_locked=True)
        ).all()
        for winner, campaign_id in waiting:
            contact = self._reachable(session, campaign_id, winner.referrer_key)
            if contact is None:
                report.waiting_contact.append(winner.id)
                continue
            winner.notice_state = NoticeState.QUEUED.value
            winner.notice_channel = contact.channel
            # When it was queued: a queued notice no job took (a lost job) is queued again later.
            winner.notice_changed_at = now
            report.queued.append(winner.id)

    def _reachable(self, session: Session, campaign_id: int, referrer_key: str) -> Contact | None:
        return reachable(self._contacts(session, campaign_id, referrer_key), self._transports)

    def send(self, winner_id: int) -> str:
        """Tell one winner (at most once); the notice's state after it."""
        now = self._clock.now()
        with self._db.transaction() as session:
            claimed = rows_changed(
                session,
                update(ContestWinner)
                .where(ContestWinner.id == winner_id, ContestWinner.notice_state == NoticeState.QUEUED.value)
                .values(notice_state=NoticeState.SENDING.value),
            )
        if not claimed:
            return "not queued"
        with self._db.transaction() as session:
            winner = session.get(ContestWinner, winner_id)
            assert winner is not None
            contest = session.get(Contest, winner.contest_id)
            assert contest is not None
            campaign = session.get(Campaign, contest.campaign_id)
            assert campaign is not None
            contact = self._reachable(session, campaign.id, winner.referrer_key)
            if contact is None:
                winner.notice_state = NoticeState.WAITING_CONTACT.value
                return winner.notice_state
            if suppressed_hashes(session, campaign.id, contact.channel, [self._hasher.hash(contact)]):
                winner.notice_state = NoticeState.SUPPRESSED.value
                return winner.notice_state
            session.expunge_all()
        try:
            self._deliver(campaign, contest, winner, contact)
        except AmbiguousError as error:
            return self._settle(winner_id, NoticeState.UNKNOWN, now, str(error))
        except TransientError as error:
            return self._settle(winner_id, NoticeState.QUEUED, now, str(error))
        except PermanentError as error:
            return self._settle(winner_id, NoticeState.FAILED, now, str(error))
        return self._settle(winner_id, NoticeState.SENT, now, None, channel=contact.channel)

    def _deliver(self, campaign: Campaign, contest: Contest, winner: ContestWinner, contact: Contact) -> str:
        # In the campaign's own language (its first), as its other messages to people; with the
        # referrer's own page and its one-click stop, as every message about their rewards.
        with rendering_in(catalog_locale(campaign.default_locale, campaign.address_form)):
            text = _(
                'You won %(prize)s in %(brand)s\'s contest "%(contest)s": rank %(rank)d, with %(score)d. We will be in'
                " touch about your prize.",
                prize=winner.prize or "",
                brand=campaign.brand_name,
                contest=contest.title,
                rank=winner.rank,
                score=winner.score,
            )
            subject = _("You won: %(contest)s", contest=contest.title)
            links = self.links(campaign.id, winner.referrer_key)
            if links is not None:
                text += "\n" + _("Your page: %(page)s - stop these messages: %(stop)s", page=links[0], stop=links[1])
        return send_notice(
            self._transports, campaign, contact, subject=subject, text=text, reference=f"contest-winner-{winner.id}"
        )

    def _settle(
        self, winner_id: int, state: NoticeState, now: datetime, error: str | None, *, channel: str | None = None
    ) -> str:
        with self._db.transaction() as session:
            winner = session.get(ContestWinner, winner_id)
            assert winner is not None
            winner.notice_state = state.value
            winner.notice_error = error[:2000] if error else None
            winner.notice_changed_at = now
            if channel:
                winner.notice_channel = channel
        if error:
            log.warning("contest winner %d: notice %s: %s", winner_id, state.value, error)
        return state.value


_SYSTEM = Actor("Fluister", ActorKind.SYSTEM)
