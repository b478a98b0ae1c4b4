"""A campaign's A/B variants: which one a visitor sees, and which one each forward spreads.

A campaign with variants shows each new visitor one of them, drawn by weight among those not
stopped, and keeps showing it (a signed cookie per campaign, path-scoped to its pages). A friend
who arrives through a tracked link gets the sender's variant when the campaign's inheritance
mode is `inherit` (the experiment: which wrapper spreads), or a draw of their own when it is
`fresh` (the experiment: which first touch makes people share). Every forward records the
variant whose page its sender saw: the form carries it, signed, so the embedded form (no
cookies there) attributes its forwards as the landing page does.

A campaign without variants is its own single variant: nothing is drawn, no cookie is set,
nothing is counted apart and its forwards carry no variant.

The variants are part of the campaign's snapshot (engine.services.snapshots): choosing one
costs the hot paths no query. The random source is injected (`VariantAssigner`): tests give a
seeded `random.Random`, production the system's.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from flask_babel import gettext as _

from engine.db import Database
from engine.models import Campaign, CampaignVariant
from engine.policy import PolicyError, policy_for
from engine.services.history import Actor, EventAction, record_event
from engine.services.lookups import find_campaign
from engine.services.wrappers import Quiz, QuizRefused
from engine.tokens import InvalidToken, Purpose, Tokens


class Wrapper(StrEnum):
    """How a variant wraps the offer: a label its figures are reported by. A quiz and a scratch
    card are also steps the landing page shows before the offer (engine.services.wrappers)."""

    PLAIN = "plain"
    STORY = "story"
    VIDEO = "video"
    QUIZ = "quiz"
    CONTEST = "contest"
    COUPON = "coupon"
    SCRATCH = "scratch"

    @property
    def is_incentive(self) -> bool:
        """A contest or a coupon promises the friend something: a policy without incentives
        (eu-strict) does not allow it (engine.policy)."""
        return self in (Wrapper.CONTEST, Wrapper.COUPON)


class Inheritance(StrEnum):
    INHERIT = "inherit"  # a referred friend gets the sender's variant
    FRESH = "fresh"  # a referred friend gets a draw of their own


@dataclass(frozen=True)
class Variant:
    """One variant as the hot paths read it (a copy of its row, safe to share between requests)."""

    id: int
    key: str
    name: str
    weight: int
    wrapper: str = Wrapper.PLAIN
    offer_title: str | None = None
    offer_description: str | None = None
    share_text: str | None = None
    stopped: bool = False
    gives_coupon: bool = True
    # The question a quiz variant asks before its offer (None for every other wrapper).
    quiz: Quiz | None = None

    @classmethod
    def of(cls, row: CampaignVariant) -> Variant:
        return cls(
            id=row.id,
            key=row.key,
            name=row.name,
            weight=row.weight,
            wrapper=row.wrapper,
            offer_title=row.offer_title or None,
            offer_description=row.offer_description or None,
            share_text=row.share_text or None,
            stopped=row.stopped,
            gives_coupon=row.gives_coupon,
            quiz=Quiz.stored(row.quiz) if row.wrapper == Wrapper.QUIZ else None,
        )


@dataclass(frozen=True)
class CampaignVariants:
    """A campaign's variants and its inheritance mode. Empty: no experiment."""

    variants: tuple[Variant, ...] = ()
    inheritance: str = Inheritance.INHERIT

    @classmethod
    def of(cls, rows: Iterable[CampaignVariant], inheritance: str) -> CampaignVariants:
        return cls(tuple(Variant.of(row) for row in sorted(rows, key=lambda r: r.key)), inheritance)

    @property
    def active(self) -> tuple[Variant, ...]:
        return tuple(v for v in self.variants if not v.stopped and v.weight > 0)

    def by_key(self, key: str) -> Variant | None:
        return next((v for v in self.variants if v.key == key), None)

    def by_id(self, variant_id: int | None) -> Variant | None:
        return next((v for v in self.variants if v.id == variant_id), None)


NO_VARIANTS = CampaignVariants()


def draw(variants: Sequence[Variant], rng: random.Random) -> Variant:
    """One of `variants` (each with a positive weight), with a chance proportional to its weight."""
    total = sum(v.weight for v in variants)
    if total <= 0:
        raise ValueError("a draw needs at least one variant of positive weight")
    point = rng.randrange(total)
    for variant in variants:
        point -= variant.weight
        if point < 0:
            return variant
    raise AssertionError("unreachable: the point lies within the total weight")


@dataclass(frozen=True)
class Assignment:
    """The variant a visit shows. `new`: drawn or inherited on this visit (a new visitor of the
    variant; its cookie is to be set). `token`: the signed variant, for the cookie and the form."""

    variant: Variant
    new: bool
    token: str


class VariantAssigner:
    """Assigns visitors their variant with an injected random source, and reads signed variants."""

    def __init__(self, tokens: Tokens, rng: random.Random | None = None) -> None:
        self._tokens = tokens
        # Not module-global randomness: a test gives a seeded one; production the OS's.
        self.rng = rng or random.SystemRandom()

    def assign(
        self, campaign_id: int, variants: CampaignVariants, *, kept: str | None, inherited_id: int | None
    ) -> Assignment | None:
        """The variant this visit shows: the one the visitor was shown before (`kept`, their
        cookie) while it takes visitors; else, for a friend arriving through a forward in a
        campaign that inherits, the sender's (`inherited_id`) while it takes visitors; else a
        draw. None: the campaign has no variant to show (no experiment)."""
        active = variants.active
        if not active:
            return None
        before = self.attributed(campaign_id, variants, kept)
        if before is not None and before in active and kept is not None:
            return Assignment(before, False, kept)
        inherited = variants.by_id(inherited_id) if variants.inheritance == Inheritance.INHERIT else None
        chosen = inherited if inherited is not None and inherited in active else draw(active, self.rng)
        return Assignment(chosen, True, self.sign(campaign_id, chosen))

    def sign(self, campaign_id: int, variant: Variant) -> str:
        return self._tokens.sign(Purpose.VARIANT, f"{campaign_id}:{variant.key}")

    def attributed(self, campaign_id: int, variants: CampaignVariants, token: str | None) -> Variant | None:
        """The variant a signed token names, if it is genuine and of this campaign (stopped or
        not: a form shown before the stop still sends under the variant it showed)."""
        if not token or not variants.variants:
            return None
        try:
            payload = self._tokens.verify(Purpose.VARIANT, token)
        except InvalidToken:
            return None
        signed_for, _, key = payload.partition(":")
        if signed_for != str(campaign_id):
            return None
        return variants.by_key(key)


# -- the console: a campaign's variants, changed by staff, each change in its history ----------

MAX_VARIANTS = 26  # keys a to z
MAX_WEIGHT = 1000
KEYS = "abcdefghijklmnopqrstuvwxyz"


class VariantRefused(Exception):
    """The change breaks a rule; `errors` maps form fields to messages (nothing was stored)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(m for messages in errors.values() for m in messages))
        self.errors = errors


@dataclass(frozen=True)
class VariantInput:
    """A variant as the console's form gives it (overrides empty: the campaign's words)."""

    name: str
    weight: int
    wrapper: str
    offer_title: str = ""
    offer_description: str = ""
    share_text: str = ""
    # False: this variant's friends get no coupon code (an arm that tests what the coupon is worth).
    gives_coupon: bool = True
    # A quiz variant's quiz, as typed: an answer per input (blank ones left out), the right
    # answer as its input's position from 1 (None: no answer is wrong).
    quiz_question: str = ""
    quiz_answers: tuple[str, ...] = ()
    quiz_correct: int | None = None
    quiz_explanation: str = ""

    def quiz(self) -> Quiz:
        """Raises QuizRefused."""
        return Quiz.typed(self.quiz_question, self.quiz_answers, self.quiz_correct, self.quiz_explanation)


@dataclass(frozen=True)
class VariantRow:
    """A variant as the console lists it, with its share of new visitors."""

    variant: Variant
    # Percent of new visitors it gets now (0 when stopped), rounded to a tenth.
    percent: float


@dataclass(frozen=True)
class VariantSettings:
    campaign_id: int
    slug: str
    name: str
    inheritance: str
    incentives_allowed: bool
    rows: tuple[VariantRow, ...]
    metric: str = "k"
    autopilot: bool = False
    gives_codes: bool = False  # the campaign gives its friends coupon codes

    def row(self, key: str) -> VariantRow | None:
        return next((r for r in self.rows if r.variant.key == key), None)


def variant_settings(db: Database, slug: str) -> VariantSettings:
    """Raises CampaignNotFound."""
    with db.reading() as session:
        campaign = find_campaign(session, slug)
        variants = CampaignVariants.of(campaign.variants, campaign.variant_inheritance)
        return VariantSettings(
            campaign.id,
            campaign.slug,
            campaign.name,
            campaign.variant_inheritance,
            _incentives_allowed(campaign),
            shares_of(variants),
            campaign.variant_metric,
            campaign.variant_autopilot,
            campaign.coupon_mode != "none",
        )


def shares_of(variants: CampaignVariants) -> tuple[VariantRow, ...]:
    total = sum(v.weight for v in variants.active)
    return tuple(
        VariantRow(v, round(100 * v.weight / total, 1) if total and v in variants.active else 0.0)
        for v in variants.variants
    )


def add_variant(db: Database, slug: str, given: VariantInput, actor: Actor) -> str:
    """A new variant, with the next free key; its key. Raises VariantRefused, CampaignNotFound."""
    with db.transaction() as session:
        campaign = find_campaign(session, slug, for_update=True)
        used = {v.key for v in campaign.variants}
        free = [k for k in KEYS if k not in used]
        if not free:
            raise VariantRefused({"name": [_("A campaign has at most %(num)s variants.", num=MAX_VARIANTS)]})
        _check(campaign, given)
        row = CampaignVariant(key=free[0], stopped=False, **_stored(given))
        campaign.variants.append(row)
        record_event(session, campaign.id, actor, EventAction.VARIANTS, _changes(row.key, None, _shown(row)))
        return row.key


def edit_variant(db: Database, slug: str, key: str, given: VariantInput, actor: Actor) -> None:
    """Raises VariantRefused, VariantNotFound, CampaignNotFound."""
    with db.transaction() as session:
        campaign = find_campaign(session, slug, for_update=True)
        row = _variant(campaign, key)
        _check(campaign, given)
        before = _shown(row)
        for name, value in _stored(given).items():
            setattr(row, name, value)
        if _shown(row) != before:
            record_event(session, campaign.id, actor, EventAction.VARIANTS, _changes(key, before, _shown(row)))


def stop_variant(db: Database, slug: str, key: str, actor: Actor) -> None:
    """The variant takes no new visitors (its visitors are drawn again). The last variant that
    takes visitors cannot be stopped: the campaign would have none to show. Raises
    VariantRefused, VariantNotFound, CampaignNotFound."""
    with db.transaction() as session:
        campaign = find_campaign(session, slug, for_update=True)
        row = _variant(campaign, key)
        if row.stopped:
            return
        if not any(v is not row and not v.stopped for v in campaign.variants):
            raise VariantRefused(
                {"stop": [_("At least one variant must take new visitors: add another before stopping this one.")]}
            )
        row.stopped = True
        record_event(session, campaign.id, actor, EventAction.VARIANTS, {f"variant {key}: stopped": [False, True]})


def set_inheritance(db: Database, slug: str, mode: str, actor: Actor) -> None:
    """Raises VariantRefused, CampaignNotFound."""
    try:
        wanted = Inheritance(mode)
    except ValueError:
        raise VariantRefused({"inheritance": [_("Choose how a referred friend gets a variant.")]}) from None
    with db.transaction() as session:
        campaign = find_campaign(session, slug, for_update=True)
        if campaign.variant_inheritance != wanted:
            changes = {"variant_inheritance": [campaign.variant_inheritance, wanted.value]}
            campaign.variant_inheritance = wanted.value
            record_event(session, campaign.id, actor, EventAction.VARIANTS, changes)


class VariantNotFound(Exception):
    pass


def _variant(campaign: Campaign, key: str) -> CampaignVariant:
    row = next((v for v in campaign.variants if v.key == key), None)
    if row is None:
        raise VariantNotFound(key)
    return row


def _incentives_allowed(campaign: Campaign) -> bool:
    try:
        return policy_for(campaign.policy_name, campaign.policy_settings).incentives
    except PolicyError:
        return False


def _check(campaign: Campaign, given: VariantInput) -> None:
    errors: dict[str, list[str]] = {}
    if not given.name.strip():
        errors.setdefault("name", []).append(_("Give the variant a name."))
    elif len(given.name.strip()) > 80:
        errors.setdefault("name", []).append(_("At most %(num)s characters.", num=80))
    if not 1 <= given.weight <= MAX_WEIGHT:
        errors.setdefault("weight", []).append(_("A weight is a whole number from 1 to %(max)s.", max=MAX_WEIGHT))
    try:
        wrapper = Wrapper(given.wrapper)
    except ValueError:
        errors.setdefault("wrapper", []).append(_("Choose one of the wrappers."))
    else:
        if wrapper.is_incentive and not _incentives_allowed(campaign):
            errors.setdefault("wrapper", []).append(
                _("This campaign's consent policy allows no incentives: a contest or a coupon is not possible.")
            )
    for name, limit in (("offer_title", 200), ("share_text", 280)):
        if len(getattr(given, name).strip()) > limit:
            errors.setdefault(name, []).append(_("At most %(num)s characters.", num=limit))
    if given.wrapper == Wrapper.QUIZ:
        # A quiz variant asks its quiz: without one (or with a broken one) it is refused.
        try:
            given.quiz()
        except QuizRefused as refused:
            for name, messages in refused.errors.items():
                errors.setdefault(f"quiz_{name}", []).extend(messages)
    if errors:
        raise VariantRefused(errors)


def _stored(given: VariantInput) -> dict[str, object]:
    return {
        "name": given.name.strip(),
        "weight": given.weight,
        "wrapper": given.wrapper,
        "offer_title": given.offer_title.strip() or None,
        "offer_description": given.offer_description.strip() or None,
        "share_text": given.share_text.strip() or None,
        "gives_coupon": given.gives_coupon,
        "quiz": given.quiz().to_stored() if given.wrapper == Wrapper.QUIZ else None,
    }


def _shown(row: CampaignVariant) -> dict[str, object]:
    """What the history keeps of a variant: its settings, and of its own words their length
    (the words are the brand's copy, not a setting; the variant's page shows them)."""
    return {
        "name": row.name,
        "weight": row.weight,
        "wrapper": row.wrapper,
        "gives coupon": row.gives_coupon,
        "own words": {
            name: len(value)
            for name, value in (
                ("offer_title", row.offer_title),
                ("offer_description", row.offer_description),
                ("share_text", row.share_text),
            )
            if value
        },
        "quiz": _quiz_shown(row.quiz),
    }


def _quiz_shown(stored: dict[str, object] | None) -> dict[str, object] | None:
    """What the history keeps of a quiz: which answer is right (from 1), and of its words their
    length, as of a variant's own words."""
    quiz = Quiz.stored(stored)
    if quiz is None:
        return None
    return {
        "question": len(quiz.question),
        "answers": [len(answer) for answer in quiz.answers],
        "right answer": quiz.correct + 1 if quiz.correct is not None else None,
        "explanation": len(quiz.explanation),
    }


def _changes(key: str, before: dict[str, object] | None, after: dict[str, object]) -> dict[str, list[object]]:
    """One history entry per setting that changed, named `variant <key>: <setting>`."""
    return {
        f"variant {key}: {name}": [before.get(name) if before else None, value]
        for name, value in after.items()
        if before is None or before.get(name) != value
    }
