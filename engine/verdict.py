"""The verdict of an experiment: which campaign variant spreads furthest, and how sure we are.

Pure and dependency-free (the standard library only), so that it can be tested, benchmarked and
run from a simulation without a database. The caller passes the random source: the same seed
gives the same verdict.

**The unit is the chain.** A chain is the tree grown from one seed visitor: the seed, the friends
they invited, the friends' friends. When a variant is inherited along a chain (a friend sees the
variant of the forward they came through), the forwards inside one chain are not independent:
a generous sender's friends resemble each other, a chain that catches on catches on for all its
branches. So the chain, not the forward, is the unit of randomisation, and the uncertainty of
every per-sender figure (K, invites per sender, cycle time) comes from a Bayesian bootstrap over
chains: each posterior draw weighs every chain by a Dirichlet(1, …, 1) weight and recomputes the
figure, which keeps a chain's forwards together. Plain rates (share rate, click-through,
conversion) get Beta(1 + successes, 1 + failures) posteriors, as in any A/B test.

**K on mature cohorts.** K is new senders made per sender. A sender who forwarded yesterday has
had no chance yet to recruit, and counting them would make a faster-growing variant look worse.
So K counts only *mature* senders (whose forward is at least the window old when the data was
read) and, of their friends, those who forwarded within the window of that forward. A chain with
at least one mature sender is a *mature chain*: the minimum sample is counted in those.

**The decision rule, safe to watch every day.** A variant is declared the winner when every
variant has the minimum number of mature chains, the expected loss of choosing it (how much of
the metric we would give up, on average over the posterior, if another variant were in fact
better) is below the threshold of caring, and the sequential evidence that it beats each other
variant (a normal-mixture likelihood ratio) has reached (variants - 1) / `false_winners`.
The expected loss reads the posterior alone, not a p-value with a planned sample size, so
whenever the rule stops, the choice risks less than the threshold. The evidence is a
martingale under "no difference": by Ville's inequality the chance that it EVER crosses its
bar, however often it is read, is at most `false_winners` (5%), which bounds false winners
under daily looks. The minimum sample keeps the rule from stopping on the few, noisy chains of
the first days, when the posterior still leans on its flat prior and on a handful of chains.
When every variant's expected loss is below the threshold, no variant is worth switching for:
the verdict is *equivalent*, not a winner. docs/experiments.md says how to read it all.
"""

from __future__ import annotations

import enum
import math
import random
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import repeat, starmap

CREDIBILITY = 0.95
DRAWS = 1000  # of the metric the variants are compared on: P(best) to about ±1.5 points
INTERVAL_DRAWS = 400  # of the other metrics, which only need the ends of their intervals


class InvalidEvidence(ValueError):
    """Experiment data that cannot be right (more senders than visitors, no variants, …)."""


# -- what goes in ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainTally:
    """What one chain (the tree grown from one seed visitor) did, as read at one moment.

    `clicks` are invites whose friend followed the link; `conversions` are redemptions by those
    friends. `mature_senders` are senders whose forward is at least the window old;
    `mature_recruits` the friends of those senders who forwarded within the window of the
    invite; `cycle_hours` the time from a recruit's first click to their own forward, one per
    mature recruit whose click is known."""

    visitors: int
    senders: int
    invites: int
    clicks: int
    conversions: int
    mature_senders: int = 0
    mature_recruits: int = 0
    cycle_hours: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("visitors", "senders", "invites", "clicks", "conversions", "mature_senders", "mature_recruits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidEvidence(f"{name} must be a whole number of at least 0, not {value!r}")
        if self.visitors < 1:
            raise InvalidEvidence("a chain has at least one visitor: its seed")
        if self.senders > self.visitors:
            raise InvalidEvidence(f"{self.senders} senders out of {self.visitors} visitors")
        if (self.senders == 0) != (self.invites == 0) or self.invites < self.senders:
            raise InvalidEvidence(f"{self.invites} invites cannot come from {self.senders} senders")
        if self.clicks > self.invites:
            raise InvalidEvidence(f"{self.clicks} clicked invites out of {self.invites} invites")
        if self.conversions > self.clicks:
            raise InvalidEvidence(f"{self.conversions} conversions out of {self.clicks} friends who clicked")
        if self.mature_senders > self.senders:
            raise InvalidEvidence(f"{self.mature_senders} mature senders out of {self.senders} senders")
        # (More recruits than senders: a sender alone is a chain when friends draw their own
        # variant, and their recruits are theirs, in whatever chain they then started.)
        if self.mature_recruits > self.clicks or (self.mature_recruits and not self.mature_senders):
            raise InvalidEvidence(
                f"{self.mature_recruits} recruits cannot come from {self.mature_senders} mature senders"
            )
        if len(self.cycle_hours) > self.mature_recruits:
            raise InvalidEvidence(f"{len(self.cycle_hours)} cycle times for {self.mature_recruits} mature recruits")
        if any(not math.isfinite(hours) or hours < 0 for hours in self.cycle_hours):
            raise InvalidEvidence("a cycle time is a finite number of hours of at least 0")

    @property
    def mature(self) -> bool:
        return self.mature_senders > 0


@dataclass(frozen=True)
class VariantEvidence:
    name: str
    chains: tuple[ChainTally, ...]

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InvalidEvidence("a variant needs a name")
        if not isinstance(self.chains, tuple) or not all(isinstance(c, ChainTally) for c in self.chains):
            raise InvalidEvidence(f"variant {self.name!r}: chains must be a tuple of ChainTally")

    @property
    def mature_chains(self) -> int:
        return sum(1 for chain in self.chains if chain.mature)


@dataclass(frozen=True)
class Evidence:
    """Every variant's chains, and the window after which a sender counts as mature."""

    variants: tuple[VariantEvidence, ...]
    window: timedelta

    def __post_init__(self) -> None:
        if len(self.variants) < 2:
            raise InvalidEvidence("an experiment compares at least two variants")
        names = [variant.name for variant in self.variants]
        if len(set(names)) != len(names):
            raise InvalidEvidence(f"variant names must differ: {', '.join(names)}")
        if self.window <= timedelta(0):
            raise InvalidEvidence("the maturity window must be longer than zero")


# -- the rule ---------------------------------------------------------------------------------------


class Metric(enum.StrEnum):
    K = "k"
    SHARE_RATE = "share_rate"
    INVITES_PER_SENDER = "invites_per_sender"
    CLICK_THROUGH = "click_through"
    CONVERSION = "conversion"
    CYCLE_TIME = "cycle_time"

    @property
    def higher_is_better(self) -> bool:
        return self is not Metric.CYCLE_TIME  # a shorter cycle spreads faster


@dataclass(frozen=True)
class DecisionRule:
    """When to stop. `caring`: the expected loss worth caring about, as a share of the metric's
    level (0.005: giving up less than 0.5% of K on average is not worth waiting for).
    `min_mature_chains`: per variant, before any verdict. `false_winners`: the most a rule read
    every day may declare a winner between identical variants. `expected_lift`: the spread of
    the sequential evidence's prior on the true difference, as a share of the metric's level
    (the evidence grows fastest for differences of about that size)."""

    metric: Metric = Metric.K
    caring: float = 0.005
    min_mature_chains: int = 300
    false_winners: float = 0.05
    expected_lift: float = 0.10
    credibility: float = CREDIBILITY
    draws: int = DRAWS

    def __post_init__(self) -> None:
        if not 0 < self.caring < 1:
            raise InvalidEvidence("the threshold of caring is a share of the metric between 0 and 1")
        if self.min_mature_chains < 1:
            raise InvalidEvidence("the minimum sample is at least one mature chain per variant")
        if not 0 < self.false_winners < 0.5:
            raise InvalidEvidence("the share of false winners allowed is between 0 and 0.5")
        if not 0 < self.expected_lift <= 1:
            raise InvalidEvidence("the expected lift is a share of the metric between 0 and 1")
        if not 0 < self.credibility < 1:
            raise InvalidEvidence("the credibility of an interval is between 0 and 1")
        if self.draws < 100:
            raise InvalidEvidence("at least 100 posterior draws")


# -- what comes out ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A point estimate and an equal-tailed credible interval around it."""

    estimate: float
    low: float
    high: float

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class VariantSummary:
    name: str
    chains: int
    mature_chains: int
    visitors: int
    share_rate: Interval | None
    invites_per_sender: Interval | None
    click_through: Interval | None
    conversion: Interval | None
    k: Interval | None
    cycle_hours: Interval | None

    def interval(self, metric: Metric) -> Interval | None:
        found: Interval | None = getattr(self, "cycle_hours" if metric is Metric.CYCLE_TIME else metric.value)
        return found


@dataclass(frozen=True)
class Comparison:
    """The posterior comparison on one metric: P(each variant is best), and the expected loss of
    choosing each (in the metric's units)."""

    metric: Metric
    probability_best: dict[str, float]
    expected_loss: dict[str, float]
    threshold: float  # the threshold of caring, in the metric's units
    # Per variant, the smallest likelihood ratio (normal mixture, see `mixture_evidence`) of
    # "it is better" against "no difference", over the other variants.
    evidence: dict[str, float]


class Outcome(enum.StrEnum):
    NOT_ENOUGH_DATA = "not_enough_data"  # a variant lacks the minimum of mature chains
    UNDECIDED = "undecided"  # enough chains, but no choice is both cheap enough and shown better yet
    WINNER = "winner"
    EQUIVALENT = "equivalent"  # every choice risks less than the threshold: none is worth switching for


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    winner: str | None
    summaries: tuple[VariantSummary, ...]
    comparison: Comparison | None
    window: timedelta
    rule: DecisionRule
    # Per variant, about how many more mature chains it needs (0 for those that need none).
    more_mature_chains: dict[str, int] = field(default_factory=dict)

    @property
    def needs_more(self) -> int:
        return max(self.more_mature_chains.values(), default=0)


# -- the posteriors ---------------------------------------------------------------------------------


def beta_draws(successes: int, trials: int, rng: random.Random, draws: int) -> list[float]:
    """Draws of a rate's posterior under a flat prior."""
    alpha, beta = 1 + successes, 1 + trials - successes
    return [rng.betavariate(alpha, beta) for _ in range(draws)]


def ratio_draws(pairs: Iterable[tuple[float, float]], rng: random.Random, draws: int) -> list[float] | None:
    """Bayesian bootstrap of Σ numerator ÷ Σ denominator over chains (one pair per chain).

    Chains with neither numerator nor denominator drop out of a ratio of weighted sums, and k
    identical chains weigh together as one Gamma(k) (the sum of their k Gamma(1) weights): a
    draw costs one variate per distinct chain, not per chain. None without a denominator."""
    groups = Counter((float(y), float(x)) for y, x in pairs if y or x)
    if sum(x for (_, x) in groups) <= 0:
        return None
    singles = [pair for pair, count in groups.items() if count == 1]
    single_y = [y for y, _ in singles]
    single_x = [x for _, x in singles]
    several = [(y, x, count) for (y, x), count in groups.items() if count > 1]
    uniform, log, one_minus, singles_count = rng.random, math.log, (1.0).__sub__, len(single_y)
    out = []
    for _ in range(draws):
        # -log(U) is Gamma(1); the minus sign cancels in the ratio, so it is left out.
        # (iterated in C: a Python loop here was most of a verdict's time)
        weights = list(map(log, map(one_minus, starmap(uniform, repeat((), singles_count)))))
        numerator = -sum(map(float.__mul__, weights, single_y))
        denominator = -sum(map(float.__mul__, weights, single_x))
        for y, x, count in several:
            weight = _gamma(count, rng)
            numerator += weight * y
            denominator += weight * x
        out.append(numerator / denominator if denominator > 0 else math.nan)
    return out


def _gamma(shape: int, rng: random.Random) -> float:
    """A Gamma(shape, 1) variate for a whole shape (a number of identical chains). Below 30,
    minus the log of a product of `shape` uniforms (the sum of as many Gamma(1)); from 30 on,
    the Wilson-Hilferty cube of a normal variate, whose quantiles are within 0.1% of the exact
    ones there. Both are several times faster than `gammavariate`'s rejection loop, which was
    most of the bootstrap of large groups."""
    if shape < 30:
        return -math.log(math.prod(map((1.0).__sub__, starmap(rng.random, repeat((), shape)))))
    ninth = 1 / (9 * shape)
    return shape * max(0.0, 1 - ninth + rng.gauss() * math.sqrt(ninth)) ** 3


def _interval(estimate: float, draws: Sequence[float], credibility: float) -> Interval:
    ordered = sorted(d for d in draws if not math.isnan(d))
    tail = (1 - credibility) / 2
    last = len(ordered) - 1
    return Interval(estimate, ordered[round(tail * last)], ordered[round((1 - tail) * last)])


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def metric_draws(
    metric: Metric, chains: Sequence[ChainTally], rng: random.Random, draws: int
) -> tuple[float, list[float] | None]:
    """The metric's point estimate on `chains` and its posterior draws (None without data)."""
    if metric is Metric.SHARE_RATE:
        return _rate(sum(c.senders for c in chains), sum(c.visitors for c in chains), rng, draws)
    if metric is Metric.CLICK_THROUGH:
        return _rate(sum(c.clicks for c in chains), sum(c.invites for c in chains), rng, draws)
    if metric is Metric.CONVERSION:
        return _rate(sum(c.conversions for c in chains), sum(c.clicks for c in chains), rng, draws)
    pairs: list[tuple[float, float]]
    if metric is Metric.INVITES_PER_SENDER:
        pairs = [(c.invites, c.senders) for c in chains if c.senders]
    elif metric is Metric.K:
        pairs = [(c.mature_recruits, c.mature_senders) for c in chains if c.mature_senders]
    else:
        pairs = [(math.fsum(c.cycle_hours), len(c.cycle_hours)) for c in chains if c.cycle_hours]
    estimate = _ratio(sum(y for y, _ in pairs), sum(x for _, x in pairs))
    return estimate, ratio_draws(pairs, rng, draws)


def _rate(successes: int, trials: int, rng: random.Random, draws: int) -> tuple[float, list[float] | None]:
    return _ratio(successes, trials), beta_draws(successes, trials, rng, draws) if trials else None


def _summary(
    variant: VariantEvidence, rule: DecisionRule, rng: random.Random, chosen: tuple[float, list[float] | None]
) -> VariantSummary:
    """Every metric's interval; the chosen metric's from the draws the comparison used."""
    intervals: dict[Metric, Interval | None] = {}
    for metric in Metric:
        estimate, found = (
            chosen
            if metric is rule.metric
            else metric_draws(metric, variant.chains, rng, min(rule.draws, INTERVAL_DRAWS))
        )
        intervals[metric] = None if found is None else _interval(estimate, found, rule.credibility)
    return VariantSummary(
        name=variant.name,
        chains=len(variant.chains),
        mature_chains=variant.mature_chains,
        visitors=sum(c.visitors for c in variant.chains),
        share_rate=intervals[Metric.SHARE_RATE],
        invites_per_sender=intervals[Metric.INVITES_PER_SENDER],
        click_through=intervals[Metric.CLICK_THROUGH],
        conversion=intervals[Metric.CONVERSION],
        k=intervals[Metric.K],
        cycle_hours=intervals[Metric.CYCLE_TIME],
    )


def compare(draws: Mapping[str, Sequence[float]], metric: Metric, caring: float, expected_lift: float) -> Comparison:
    """P(best), expected loss and evidence per variant, from equally many posterior draws each.

    The loss of choosing v in one draw is how far v falls short of the best variant of that
    draw; its expected loss is the mean over the draws. The threshold is `caring` times the
    metric's level (the best posterior mean); the evidence's prior scale is `expected_lift`
    times that level."""
    names = list(draws)
    sign = 1.0 if metric.higher_is_better else -1.0
    rows = [values for values in zip(*(draws[name] for name in names), strict=True) if not any(map(math.isnan, values))]
    columns = [[sign * row[i] for row in rows] for i in range(len(names))]
    wins = dict.fromkeys(names, 0)
    losses = dict.fromkeys(names, 0.0)
    for values in zip(*columns, strict=True):
        best = max(values)
        wins[names[values.index(best)]] += 1
        for name, value in zip(names, values, strict=True):
            losses[name] += best - value
    rounds = max(len(rows), 1)
    means = [abs(statistics.fmean(column)) if column else 0.0 for column in columns]
    level = max(means) if metric.higher_is_better else min(means)
    evidence = {
        name: min(
            mixture_evidence([a - b for a, b in zip(columns[i], columns[j], strict=True)], expected_lift * level)
            for j in range(len(names))
            if j != i
        )
        for i, name in enumerate(names)
    }
    return Comparison(
        metric=metric,
        probability_best={name: wins[name] / rounds for name in names},
        expected_loss={name: losses[name] / rounds for name in names},
        threshold=caring * level,
        evidence=evidence,
    )


def mixture_evidence(differences: Sequence[float], scale: float) -> float:
    """The likelihood ratio of "the first variant is better" against "no difference", from the
    posterior draws of their difference (read as a normal estimate and its standard error),
    with a normal prior of sd `scale` on the true difference: the normal mixture of a
    sequential test. Under "no difference" the chance that this ratio EVER reaches 1 / alpha, however
    often it is computed as data comes in, is at most alpha (Ville's inequality on the mixture
    martingale): the bound on false winners that daily looks cannot wear down. 0 when the
    difference leans the other way."""
    if len(differences) < 2:
        return 0.0
    mean = math.fsum(differences) / len(differences)
    # (statistics.stdev is exact, with fractions, and a hundred times slower)
    spread = math.sqrt(math.fsum((d - mean) ** 2 for d in differences) / (len(differences) - 1))
    if mean <= 0:
        return 0.0
    if spread == 0 or scale <= 0:
        return math.inf if spread == 0 else 0.0
    variance, prior = spread**2, scale**2
    log_ratio = 0.5 * math.log(variance / (variance + prior)) + mean**2 * prior / (2 * variance * (variance + prior))
    return math.exp(min(log_ratio, 700.0))


@dataclass(frozen=True)
class Decision:
    """The decision alone, without the intervals of the other metrics (cheaper: what a power
    analysis, repeating experiments, needs)."""

    outcome: Outcome
    winner: str | None
    comparison: Comparison | None
    more_mature_chains: dict[str, int]


def decide(
    evidence: Evidence,
    rule: DecisionRule,
    rng: random.Random,
    _chosen: Mapping[str, tuple[float, list[float] | None]] | None = None,
) -> Decision:
    """The decision rule on `evidence` (see `judge`)."""
    chosen = _chosen or {v.name: metric_draws(rule.metric, v.chains, rng, rule.draws) for v in evidence.variants}
    mature = {v.name: v.mature_chains for v in evidence.variants}
    short = {name: max(0, rule.min_mature_chains - count) for name, count in mature.items()}
    draws = {name: found for name, (_, found) in chosen.items() if found is not None}
    if len(draws) < len(chosen):
        # A variant without any data on the metric yet: nothing to compare.
        return Decision(Outcome.NOT_ENOUGH_DATA, None, None, {n: max(m, n not in draws) for n, m in short.items()})
    comparison = compare(draws, rule.metric, rule.caring, rule.expected_lift)
    if any(short.values()):
        return Decision(Outcome.NOT_ENOUGH_DATA, None, comparison, short)
    losses = comparison.expected_loss
    best = min(losses, key=lambda name: losses[name])
    none_more = dict.fromkeys(losses, 0)
    if all(loss < comparison.threshold for loss in losses.values()):
        return Decision(Outcome.EQUIVALENT, None, comparison, none_more)
    evidence_needed = (len(losses) - 1) / rule.false_winners  # one test against each other variant
    if losses[best] < comparison.threshold and comparison.evidence[best] >= evidence_needed:
        return Decision(Outcome.WINNER, best, comparison, none_more)
    return Decision(Outcome.UNDECIDED, None, comparison, _more_for_loss(mature, comparison, best, evidence_needed))


def judge(evidence: Evidence, rule: DecisionRule, rng: random.Random) -> Verdict:
    """The verdict on `evidence` under `rule`; `rng` makes it reproducible.

    Safe to call every day on the data so far (see the module's docstring): it declares a winner
    only when every variant has `rule.min_mature_chains` mature chains, the expected loss of
    choosing the winner is below the threshold of caring, and the sequential evidence that it is
    better than each other variant reaches (variants - 1) / `rule.false_winners`. When every
    variant's expected loss is below the threshold the verdict is EQUIVALENT. Until one of these,
    the verdict says what is missing: about how many more mature chains each variant needs."""
    chosen = {v.name: metric_draws(rule.metric, v.chains, rng, rule.draws) for v in evidence.variants}
    decision = decide(evidence, rule, rng, chosen)
    summaries = tuple(_summary(v, rule, rng, chosen[v.name]) for v in evidence.variants)
    return Verdict(
        decision.outcome,
        decision.winner,
        summaries,
        decision.comparison,
        evidence.window,
        rule,
        decision.more_mature_chains,
    )


def _more_for_loss(
    mature: Mapping[str, int], comparison: Comparison, best: str, evidence_needed: float
) -> dict[str, int]:
    """About how many more mature chains would settle it. The posterior's spread shrinks about
    as 1 / √chains: the expected loss with it, and the evidence's z-score grows as √chains."""
    loss, threshold = comparison.expected_loss[best], comparison.threshold
    factor = (loss / threshold) ** 2 if loss >= threshold > 0 else 1.0
    evidence = comparison.evidence[best]
    if evidence < evidence_needed:
        # log(evidence) grows about in proportion to the chains once the difference shows;
        # without any sign of one yet, at least double.
        growth = math.log(evidence_needed) / math.log(evidence) if evidence > 1 else 2.0
        factor = max(factor, growth)
    return {name: max(1, math.ceil(count * (factor - 1))) for name, count in mature.items()}


# -- the traffic for the next period ----------------------------------------------------------------


def thompson_weights(verdict: Verdict, *, floor: float = 0.05) -> dict[str, float]:
    """Traffic weights for the next period by Thompson sampling: each variant gets the share of
    traffic equal to its posterior probability of being best, never less than `floor` (a variant
    starved of traffic could never recover from an unlucky start). Equal weights until every
    variant has the minimum sample: early posteriors are too noisy to steer by."""
    names = [s.name for s in verdict.summaries]
    if not 0 <= floor <= 1 / len(names):
        raise InvalidEvidence(f"the floor must be between 0 and {1 / len(names):.3f}")
    if verdict.comparison is None or verdict.outcome is Outcome.NOT_ENOUGH_DATA:
        return dict.fromkeys(names, 1 / len(names))
    best = verdict.comparison.probability_best
    # Each variant gets the floor, and the rest of the traffic goes by P(best).
    spare = 1 - floor * len(names)
    return {name: floor + spare * best[name] for name in names}
