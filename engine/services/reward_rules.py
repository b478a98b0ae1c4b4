"""A reward programme's rules, as value objects checked when they are made, and the one pure
decision they take: does this conversion earn its referrer a reward, and which?

A programme is `single` (a reward per converted friend) or `tiered` (milestones: "3 friends: a
coffee; 10: a bag of beans", a reward when the referrer's count of qualifying friends reaches
each one). A conversion qualifies when its order meets the minimum order value (in the same
currency: amounts are never converted) and, for a programme for new customers only, the shop
said the customer is new. A cap limits the rewards one referrer can earn in the campaign. The
hold period keeps an approved reward from being paid out before the shop's return window is
over. None of it applies where the consent policy allows no incentives: nothing is earned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from engine.models.rewards import PayoutMethod

MAX_MILESTONES = 10
MAX_MILESTONE_FRIENDS = 10_000
MAX_CAP = 100_000
MAX_HOLD_DAYS = 365
MAX_DESCRIPTION_LENGTH = 500
MAX_PREFIX_LENGTH = 20
# Order totals above this are refused as typing errors (or overflow attempts).
MAX_ORDER_TOTAL = Decimal("1000000000")

# Digits after the decimal point, where a currency's minor unit is not the cent (ISO 4217).
_MINOR_DIGITS = {
    "BHD": 3, "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "IQD": 3, "ISK": 0, "JOD": 3, "JPY": 0, "KMF": 0,
    "KRW": 0, "KWD": 3, "LYD": 3, "OMR": 3, "PYG": 0, "RWF": 0, "TND": 3, "UGX": 0, "VND": 0, "VUV": 0,
    "XAF": 0, "XOF": 0, "XPF": 0,
}  # fmt: skip
_CURRENCY = re.compile(r"[A-Z]{3}")
_AMOUNT = re.compile(r"\d{1,12}(\.\d{1,3})?")


class ProgrammeKind(StrEnum):
    SINGLE = "single"  # a reward per converted friend
    TIERED = "tiered"  # a reward at each milestone of converted friends


def minor_digits(currency: str) -> int:
    return _MINOR_DIGITS.get(currency, 2)


@dataclass(frozen=True, order=True)
class Money:
    """An amount in one currency (ISO 4217 code), with no more decimals than its minor unit."""

    currency: str
    amount: Decimal

    def __post_init__(self) -> None:
        if not _CURRENCY.fullmatch(self.currency):
            raise ValueError("the currency is a three-letter ISO 4217 code, such as EUR")
        if not self.amount.is_finite() or self.amount < 0:
            raise ValueError("an amount is zero or more")
        if self.amount > MAX_ORDER_TOTAL:
            raise ValueError(f"an amount is at most {MAX_ORDER_TOTAL:,}")
        exponent = self.amount.as_tuple().exponent
        assert isinstance(exponent, int)  # finite, checked above
        if -exponent > minor_digits(self.currency):
            raise ValueError(f"{self.currency} amounts have at most {minor_digits(self.currency)} decimals")

    @classmethod
    def parse(cls, amount: str, currency: str) -> Money:
        """From a decimal string ("42.50") and a currency code. Raises ValueError."""
        text = amount.strip()
        if not _AMOUNT.fullmatch(text):
            raise ValueError("an amount is a decimal string such as 42.50 (a point, no thousands separators)")
        try:
            return cls(currency.strip().upper(), Decimal(text))
        except InvalidOperation:
            raise ValueError("not a decimal amount") from None

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        return cls(currency, Decimal(minor).scaleb(-minor_digits(currency)))

    @property
    def minor(self) -> int:
        """In minor units (cents): what is stored, and summed."""
        return int(self.amount.scaleb(minor_digits(self.currency)))

    def __str__(self) -> str:
        return f"{self.amount:.{minor_digits(self.currency)}f} {self.currency}"


@dataclass(frozen=True)
class Milestone:
    friends: int  # converted friends (qualifying conversions) the referrer reaches
    description: str  # what they get then, in the marketer's words

    def __post_init__(self) -> None:
        if not 1 <= self.friends <= MAX_MILESTONE_FRIENDS:
            raise ValueError(f"a milestone is from 1 to {MAX_MILESTONE_FRIENDS:,} friends")
        if not self.description.strip():
            raise ValueError(f"say what a referrer gets at {self.friends} friends")
        if len(self.description) > MAX_DESCRIPTION_LENGTH:
            raise ValueError(f"a milestone's description is longer than {MAX_DESCRIPTION_LENGTH} characters")


@dataclass(frozen=True)
class RewardRules:
    kind: ProgrammeKind = ProgrammeKind.SINGLE
    milestones: tuple[Milestone, ...] = ()
    min_order: Money | None = None
    new_customers_only: bool = False
    cap_per_referrer: int | None = None  # rewards one referrer can earn in the campaign
    hold_days: int = 0
    payout: PayoutMethod = PayoutMethod.WEBHOOK
    # Approved rewards need a person unless this is on: then the payout pass approves a reward
    # that no fraud filter flagged once its hold period is over (flagged ones still wait).
    auto_approve: bool = False
    # Prefix of the codes generated for coupon payouts when the payout pool is empty.
    code_prefix: str = ""

    def __post_init__(self) -> None:
        if self.kind is ProgrammeKind.TIERED:
            if not self.milestones:
                raise ValueError("a tiered programme has at least one milestone")
            if len(self.milestones) > MAX_MILESTONES:
                raise ValueError(f"a programme has at most {MAX_MILESTONES} milestones")
            friends = [m.friends for m in self.milestones]
            if friends != sorted(set(friends)):
                raise ValueError("milestones go up: each asks for more friends than the one before")
        elif self.milestones:
            raise ValueError("only a tiered programme has milestones")
        if self.cap_per_referrer is not None and not 1 <= self.cap_per_referrer <= MAX_CAP:
            raise ValueError(f"the cap per referrer is from 1 to {MAX_CAP:,} rewards (or none)")
        if not 0 <= self.hold_days <= MAX_HOLD_DAYS:
            raise ValueError(f"the hold period is from 0 to {MAX_HOLD_DAYS} days")
        if len(self.code_prefix) > MAX_PREFIX_LENGTH or not re.fullmatch(r"[A-Za-z0-9_-]*", self.code_prefix):
            raise ValueError(f"the code prefix is at most {MAX_PREFIX_LENGTH} letters, digits, - or _")
        if self.code_prefix[:1] in ("-",):
            raise ValueError("the code prefix may not start with - (a spreadsheet would read a formula)")

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "milestones": [{"friends": m.friends, "description": m.description} for m in self.milestones],
            "min_order": (
                {"amount": f"{self.min_order.amount}", "currency": self.min_order.currency} if self.min_order else None
            ),
            "new_customers_only": self.new_customers_only,
            "cap_per_referrer": self.cap_per_referrer,
            "hold_days": self.hold_days,
            "payout": self.payout.value,
            "auto_approve": self.auto_approve,
            "code_prefix": self.code_prefix,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RewardRules:
        """From what to_json wrote (an empty dict: the defaults). Raises ValueError."""
        if not data:
            return cls()
        try:
            minimum = data.get("min_order")
            return cls(
                kind=ProgrammeKind(data.get("kind", ProgrammeKind.SINGLE.value)),
                milestones=tuple(
                    Milestone(int(m["friends"]), str(m["description"])) for m in data.get("milestones", [])
                ),
                min_order=Money.parse(str(minimum["amount"]), str(minimum["currency"])) if minimum else None,
                new_customers_only=bool(data.get("new_customers_only", False)),
                cap_per_referrer=int(data["cap_per_referrer"]) if data.get("cap_per_referrer") is not None else None,
                hold_days=int(data.get("hold_days", 0)),
                payout=PayoutMethod(data.get("payout", PayoutMethod.WEBHOOK.value)),
                auto_approve=bool(data.get("auto_approve", False)),
                code_prefix=str(data.get("code_prefix", "")),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"the stored rules cannot be read ({error})") from None


@dataclass(frozen=True)
class Order:
    """What the shop said of the order a code was redeemed with (nothing, for a bare redemption)."""

    total: Money | None = None
    new_customer: bool | None = None  # None: the shop did not say


@dataclass(frozen=True)
class Referrals:
    """The referrer's record in this campaign before this conversion."""

    qualifying: int = 0  # earlier conversions of their friends that met the rules
    rewards: int = 0  # rewards earned so far, not counting rejected ones


@dataclass(frozen=True)
class Verdict:
    qualifies: bool  # the conversion meets the rules (it counts towards milestones)
    earns: bool  # it earns a reward now
    why: str  # said in plain words, for the reward's history and the logs
    milestone: Milestone | None = None


def qualification(rules: RewardRules, order: Order) -> str | None:
    """Why the order does not qualify (None: it does)."""
    if rules.min_order is not None:
        if order.total is None:
            return f"the minimum order is {rules.min_order} and the shop reported no order total"
        if order.total.currency != rules.min_order.currency:
            return f"the minimum order is in {rules.min_order.currency}; this order was in {order.total.currency}"
        if order.total.amount < rules.min_order.amount:
            return f"the order ({order.total}) is under the minimum order of {rules.min_order}"
    if rules.new_customers_only and order.new_customer is None:
        return "the programme rewards new customers only, and the shop did not say whether the customer is new"
    if rules.new_customers_only and not order.new_customer:
        return "the programme rewards new customers only, and the shop said the customer is not new"
    return None


def decide(rules: RewardRules, order: Order, before: Referrals, *, incentives_allowed: bool = True) -> Verdict:
    """Whether this conversion earns its referrer a reward under these rules."""
    if not incentives_allowed:
        return Verdict(False, False, "the campaign's consent policy allows no incentives")
    problem = qualification(rules, order)
    if problem:
        return Verdict(False, False, problem)
    if rules.cap_per_referrer is not None and before.rewards >= rules.cap_per_referrer:
        return Verdict(True, False, f"the referrer has reached the cap of {rules.cap_per_referrer} rewards")
    if rules.kind is ProgrammeKind.SINGLE:
        return Verdict(True, True, "a converted friend")
    reached = before.qualifying + 1
    for milestone in rules.milestones:
        if milestone.friends == reached:
            return Verdict(True, True, f"milestone of {milestone.friends} friends reached", milestone)
    ahead = [m.friends for m in rules.milestones if m.friends > reached]
    if ahead:
        return Verdict(True, False, f"{reached} friends so far; the next milestone is {ahead[0]}")
    return Verdict(True, False, f"{reached} friends; every milestone was reached already")
