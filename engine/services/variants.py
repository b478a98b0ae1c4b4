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

from engine.models import CampaignVariant
from engine.tokens import InvalidToken, Purpose, Tokens


class Wrapper(StrEnum):
    """How a variant wraps the offer: a label its figures are reported by."""

    PLAIN = "plain"
    STORY = "story"
    VIDEO = "video"
    QUIZ = "quiz"
    CONTEST = "contest"
    COUPON = "coupon"

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
