"""The text `flask simulate --variant …` prints: each variant's figures with their credible
intervals, the verdict on K, the traffic Thompson sampling would send next, and the power
analysis. docs/experiments.md explains how to read it."""

from __future__ import annotations

from collections.abc import Callable

from engine.services.simulation import ExperimentPlan, PowerEstimate, VariantPlan
from engine.verdict import Interval, Outcome, VariantSummary, Verdict, thompson_weights


def _percent(value: float) -> str:
    return f"{value:.1%}"


def _decimal(value: float) -> str:
    return f"{value:.3f}"


def _hours(value: float) -> str:
    return f"{value:.1f} h"


def _interval(interval: Interval | None, show: Callable[[float], str]) -> str:
    if interval is None:
        return "no data yet"
    return f"{show(interval.estimate)}  ({show(interval.low)} to {show(interval.high)})"


def _variant_lines(plan: VariantPlan, summary: VariantSummary, verdict: Verdict) -> list[str]:
    window = f"{verdict.window.total_seconds() / 3600:g} h"
    rows = [
        ("visitors", str(summary.visitors)),
        ("chains", f"{summary.chains} ({summary.mature_chains} mature)"),
        ("share rate", _interval(summary.share_rate, _percent)),
        ("invites per sender", _interval(summary.invites_per_sender, _decimal)),
        ("click-through", _interval(summary.click_through, _percent)),
        ("conversion", _interval(summary.conversion, _percent)),
        (f"K ({window} window)", _interval(summary.k, _decimal)),
        ("cycle time (mean)", _interval(summary.cycle_hours, _hours)),
    ]
    lines = [
        f"variant {summary.name}: true share {plan.share:.2f}, click {plan.click:.2f}, "
        f"convert {plan.conversion:.2f} (K {plan.k:.3f} without a window)",
        *(f"  {label:<20}{value}" for label, value in rows),
    ]
    if verdict.comparison is not None:
        comparison = verdict.comparison
        lines.append(
            f"  {'P(best K)':<20}{_percent(comparison.probability_best[summary.name])}, "
            f"expected loss if chosen {comparison.expected_loss[summary.name]:.4f}"
        )
    return lines


def _verdict_line(verdict: Verdict) -> str:
    more = ", ".join(f"about {count} more for {name}" for name, count in verdict.more_mature_chains.items() if count)
    threshold = "" if verdict.comparison is None else f" (threshold of caring {verdict.comparison.threshold:.4f})"
    if verdict.outcome is Outcome.WINNER:
        assert verdict.comparison is not None and verdict.winner is not None
        loss = verdict.comparison.expected_loss[verdict.winner]
        return f"Verdict on K: {verdict.winner} wins: choosing it risks an expected loss of {loss:.4f}{threshold}."
    if verdict.outcome is Outcome.EQUIVALENT:
        return f"Verdict on K: equivalent: no variant is worth switching for{threshold}."
    if verdict.outcome is Outcome.NOT_ENOUGH_DATA:
        return (
            f"Verdict on K: not enough data yet: at least {verdict.rule.min_mature_chains} mature chains "
            f"per variant; needs mature chains: {more}."
        )
    return f"Verdict on K: undecided yet{threshold}: needs mature chains: {more}."


def experiment_lines(plan: ExperimentPlan, verdict: Verdict) -> list[str]:
    window = f"{plan.window.total_seconds() / 3600:g} h"
    lines = [
        f"Experiment: {len(plan.variants)} variants, {plan.chains} seed visitors each over {plan.days:g} days; "
        f"K counts senders at least {window} old and their friends' forwards within {window}; "
        f"intervals are {verdict.rule.credibility:.0%} credible.",
        "",
    ]
    for variant, summary in zip(plan.variants, verdict.summaries, strict=True):
        lines += [*_variant_lines(variant, summary, verdict), ""]
    lines.append(_verdict_line(verdict))
    weights = thompson_weights(verdict)
    shares = ", ".join(f"{name} {_percent(weight)}" for name, weight in weights.items())
    lines.append(f"Traffic for the next period (Thompson sampling): {shares}")
    return lines


def power_lines(baseline: VariantPlan, estimate: PowerEstimate) -> list[str]:
    tried = ", ".join(f"{chains}: {share:.0%}" for chains, share in estimate.tried)
    target = (
        f"To tell a {estimate.lift:.0%} higher K than {baseline.name}'s ({baseline.k:.3f} → "
        f"{baseline.k * (1 + estimate.lift):.3f}) in {estimate.power:.0%} of experiments"
    )
    if estimate.chains is None:
        return [
            f"{target}, more than {estimate.tried[-1][0]} seed visitors per variant are needed.",
            f"  picked the better variant, by seed visitors per variant: {tried}",
        ]
    return [
        f"{target}, an experiment needs about {estimate.visitors} visitors per variant "
        f"({estimate.chains} seed visitors).",
        f"  picked the better variant, by seed visitors per variant: {tried}",
    ]
