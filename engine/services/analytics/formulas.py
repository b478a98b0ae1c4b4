"""The analytics formulas: K, the reach projection and the ceiling the caps put on it.

Pure arithmetic on figures already counted (docs/analytics.md, *Definitions* and *Projected
reach*): nothing here reads the database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.caps import CapSettings

# A bound on the cycles a projection multiplies by K, whatever the horizon.
MAX_PROJECTED_CYCLES = 100


def ratio(part: float, whole: float) -> float | None:
    """part ÷ whole, or None when there is nothing to divide by (not 0: "no data" is not "none")."""
    return part / whole if whole else None


def viral_coefficient(invites: int, senders: int, became_senders: int, invitees: int) -> float | None:
    """K = (invites per sender) * (the share of invitees who became senders)."""
    per_sender = ratio(invites, senders)
    became_share = ratio(became_senders, invitees)
    if per_sender is None or became_share is None:
        return None
    return per_sender * became_share


@dataclass(frozen=True)
class Projection:
    """The reach a campaign may still get: the current wave, multiplied by K once per cycle.

    additional = wave * (K + K² + … + Kⁿ), n = ⌊horizon ÷ cycle⌋ (at most MAX_PROJECTED_CYCLES);
    for K ≥ 1 the series does not converge, and the additional reach is capped at `ceiling`
    (what the campaign's message caps let it send in the horizon), when there is one."""

    current: int
    wave: int
    k: float
    cycle_days: float
    horizon_days: float
    cycles: int
    additional: int
    ceiling: int | None
    capped: bool

    def __post_init__(self) -> None:
        if min(self.current, self.wave, self.cycles, self.additional) < 0 or self.k < 0:
            raise ValueError("a projection is made of non-negative numbers")
        if self.cycle_days <= 0 or self.horizon_days < 0:
            raise ValueError("a projection needs a positive cycle time and a horizon")

    @property
    def total(self) -> int:
        return self.current + self.additional


def project_reach(
    *, current: int, wave: int, k: float, cycle_days: float, horizon_days: float, ceiling: int | None
) -> Projection:
    cycles = min(MAX_PROJECTED_CYCLES, math.floor(horizon_days / cycle_days)) if horizon_days > 0 else 0
    if cycles == 0 or k == 0:
        series = 0.0
    elif k == 1:
        series = float(cycles)
    else:
        series = k * (1 - k**cycles) / (1 - k)
    additional = wave * series
    capped = k >= 1 and ceiling is not None and additional > ceiling
    if capped:
        assert ceiling is not None
        additional = float(ceiling)
    return Projection(
        current=current,
        wave=wave,
        k=k,
        cycle_days=cycle_days,
        horizon_days=horizon_days,
        cycles=cycles,
        additional=round(additional),
        ceiling=ceiling,
        capped=capped,
    )


def message_ceiling(caps: CapSettings, horizon_days: float, invites_so_far: int) -> int | None:
    """How many more invitations the campaign's own caps let it send within the horizon."""
    bounds = []
    if caps.campaign_messages_per_day is not None:
        bounds.append(math.ceil(caps.campaign_messages_per_day * horizon_days))
    if caps.campaign_messages_total is not None:
        bounds.append(max(0, caps.campaign_messages_total - invites_so_far))
    return min(bounds) if bounds else None
