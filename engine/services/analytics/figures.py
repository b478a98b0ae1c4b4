"""The figures the dashboard shows, as value objects: a slice (a generation, a channel or the
whole campaign), a day of reach, an ambassador, a chain, a node of a tree, and the campaign's
figures together with their JSON.

The slices' keys are those of the `metric_cells` roll-up: `ALL_GENERATIONS` and
`ALL_CHANNELS` mark a slice over every generation or every channel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from engine.services.analytics.formulas import Projection, ratio, viral_coefficient
from engine.services.analytics.maturity import MatureK
from engine.services.analytics.revenue import Revenue

DIRECT = "direct"  # the arrival channel of a visitor who came without a forward
ALL_CHANNELS = "*"  # MetricCell.channel of a slice over every channel
ALL_GENERATIONS = 0  # MetricCell.generation of a slice over every generation

# The counts a slice holds, by their names in SliceMetrics and in the `metric_cells` roll-up.
COUNT_COLUMNS = ("invites", "senders", "became_senders", "delivered", "clicked", "clicks", "prefetches", "conversions")


@dataclass(frozen=True)
class SliceMetrics:
    """The figures of a generation, a channel, or the whole campaign (None: every one)."""

    generation: int | None
    channel: str | None
    visitors: int
    senders: int
    invites: int
    became_senders: int
    delivered: int
    clicked: int
    clicks: int
    conversions: int
    cycle_time_seconds: float | None
    # Plays of the landing page's video (engine.services.analytics.plays): once per view at most.
    plays: int = 0
    # Fetches of the tracked links by link previews and mail scanners (engine.visitors): apart
    # from the clicks, which are people's.
    prefetches: int = 0

    def __post_init__(self) -> None:
        counts = (
            self.visitors,
            self.plays,
            self.senders,
            self.invites,
            self.became_senders,
            self.delivered,
            self.clicked,
        )
        if min(*counts, self.clicks, self.prefetches, self.conversions) < 0:
            raise ValueError("counts cannot be negative")
        if self.became_senders > self.invites or self.clicked > self.invites or self.delivered > self.invites:
            raise ValueError("became senders, clicked and delivered are counted among the invites")
        if self.generation is not None and self.generation < 1:
            raise ValueError("generations start at 1")

    @property
    def invitees(self) -> int:
        # Each friend is invited at most once per campaign (ForwardingService skips the rest).
        return self.invites

    @property
    def share_rate(self) -> float | None:
        return ratio(self.senders, self.visitors)

    @property
    def click_through(self) -> float | None:
        return ratio(self.clicked, self.delivered)

    @property
    def k(self) -> float | None:
        # Per channel, senders are counted by the channel they came through and invites by the
        # channel they went out on: their quotient is not a K.
        if self.channel is not None:
            return None
        return viral_coefficient(self.invites, self.senders, self.became_senders, self.invitees)

    def to_json(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "channel": self.channel,
            "visitors": self.visitors,
            "plays": self.plays,
            "senders": self.senders,
            "share_rate": rounded(self.share_rate),
            "invites": self.invites,
            "invitees": self.invitees,
            "became_senders": self.became_senders,
            "delivered": self.delivered,
            "clicked": self.clicked,
            "clicks": self.clicks,
            "prefetches": self.prefetches,
            "click_through": rounded(self.click_through),
            "conversions": self.conversions,
            "k": rounded(self.k),
            "cycle_time_seconds": rounded(self.cycle_time_seconds, 1),
        }


@dataclass(frozen=True)
class DayPoint:
    day: date
    generation: int
    forwards: int
    cumulative: int

    def __post_init__(self) -> None:
        if self.forwards < 0 or self.cumulative < self.forwards or self.generation < 1:
            raise ValueError("a day's forwards are non-negative and within the running total")


@dataclass(frozen=True)
class Ambassador:
    sender_name: str
    generation: int
    forwards: int
    reach: int
    conversions: int
    # Their forward with the most forwards below it (its public id), where the tree page starts.
    forward: str | None = None

    def __post_init__(self) -> None:
        if self.reach < self.forwards or self.forwards < 1 or self.conversions < 0:
            raise ValueError("an ambassador made at least one forward, and reaches at least those")


@dataclass(frozen=True)
class Chain:
    """The tree below one forward of generation 1: its size, levels and widest level."""

    root: str  # public id
    sender_name: str
    size: int
    depth: int
    breadth: int
    conversions: int

    def __post_init__(self) -> None:
        if self.size < 1 or self.depth < 1 or not 1 <= self.breadth <= self.size:
            raise ValueError("a chain holds at least its root")


@dataclass(frozen=True)
class TreeNode:
    public_id: str
    parent: str | None
    generation: int
    channel: str
    sender_name: str
    created_at: datetime
    # The live tree (`tree`) never counts a node's descendants (a walk per node); the API's
    # JSON has always had the key, null, and keeps it.
    descendants: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "public_id": self.public_id,
            "parent": self.parent,
            "generation": self.generation,
            "channel": self.channel,
            "sender_name": self.sender_name,
            "created_at": self.created_at.isoformat(),
            "descendants": self.descendants,
        }


@dataclass(frozen=True)
class FunnelStage:
    stage: str
    count: int


@dataclass(frozen=True)
class CampaignMetrics:
    slug: str
    name: str
    as_of: datetime
    refreshed_at: datetime
    overall: SliceMetrics
    generations: list[SliceMetrics]
    channels: list[SliceMetrics]
    reach_over_time: list[DayPoint]
    ambassadors_by_reach: list[Ambassador]
    ambassadors_by_conversions: list[Ambassador]
    chains: list[Chain]
    projection: Projection | None
    # Order totals by generation and by ambassador, per currency (engine.services.analytics.revenue).
    revenue: Revenue | None = None
    # K of the forwards old enough to have been forwarded on (engine.services.analytics.maturity).
    mature: MatureK | None = None

    @property
    def spread_funnel(self) -> list[FunnelStage]:
        """The stages of which each is a part of the one before: forwards, those clicked, and
        those forwarded on (when every one of those was clicked, as a forward on comes through a
        click). The other figures are not parts of each other (a visitor is a view, a sender a
        person) and are shown as rates, not as a funnel."""
        o = self.overall
        stages = [FunnelStage("invites", o.invites), FunnelStage("clicked", o.clicked)]
        if o.became_senders <= o.clicked:
            stages.append(FunnelStage("became senders", o.became_senders))
        return stages

    @property
    def funnel(self) -> list[FunnelStage]:
        o = self.overall
        stages = [
            ("visitors", o.visitors),
            ("plays", o.plays),
            ("senders", o.senders),
            ("invites", o.invites),
            ("delivered", o.delivered),
            ("clicked", o.clicked),
            ("became senders", o.became_senders),
            ("conversions", o.conversions),
        ]
        return [FunnelStage(name, value) for name, value in stages]

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign": self.slug,
            "name": self.name,
            "as_of": self.as_of.isoformat(),
            "refreshed_at": self.refreshed_at.isoformat(),
            "overall": self.overall.to_json(),
            "generations": [g.to_json() for g in self.generations],
            "channels": [c.to_json() for c in self.channels],
            "funnel": [asdict(s) for s in self.funnel],
            "reach_over_time": [{**asdict(p), "day": p.day.isoformat()} for p in self.reach_over_time],
            "ambassadors": {
                "by_reach": [asdict(a) for a in self.ambassadors_by_reach],
                "by_conversions": [asdict(a) for a in self.ambassadors_by_conversions],
            },
            "chains": [asdict(c) for c in self.chains],
            "projection": projection_json(self.projection),
            "revenue": self.revenue.to_json() if self.revenue else None,
            "mature": mature_json(self.mature),
        }


def mature_json(mature: MatureK | None) -> dict[str, Any] | None:
    if mature is None:
        return None
    return {
        "k": rounded(mature.k),
        "window_days": mature.window_days,
        "forwards_before": mature.before.isoformat(),
        "since": mature.since.isoformat() if mature.since else None,
        "invites": mature.overall.invites,
        "senders": mature.overall.senders,
        "became_senders": mature.overall.became_senders,
        "generations": [{"generation": c.generation, "k": rounded(c.k)} for c in mature.generations],
    }


def projection_json(projection: Projection | None) -> dict[str, Any] | None:
    if projection is None:
        return None
    return {**asdict(projection), "k": rounded(projection.k), "total": projection.total}


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
