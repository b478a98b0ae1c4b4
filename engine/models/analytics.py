"""Analytics roll-ups: landing visits counted as they happen, and per-campaign figures
recomputed from the forwards by `engine.services.analytics.refresh_rollups`.

The roll-ups exist so that a campaign's dashboard is a handful of reads of small tables,
whatever the campaign's size: every figure on it is an aggregate over up to millions of
forwards, clicks, messages and redemptions, which is too slow to compute per request.
Nothing here holds a contact, a name typed by a friend, or an address: only counts, the
forwards' own ids, and a sender key (a keyed hash, or a forward id; see docs/analytics.md).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, Float, ForeignKey, Index, Integer, String, false, text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime


class Visit(Base):
    """Landing page views per campaign, day, generation and arrival channel: a counter, no visitor.

    `generation` is the generation the visitor's own forwards would have (1 for a direct visitor,
    n + 1 for one who came through a forward of generation n); `channel` is the channel of the
    forward they came through, or "direct"."""

    __tablename__ = "visits"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class VideoPlay(Base):
    """Plays of a landing page's video, sliced as its views are (`Visit`): a counter, no visitor."""

    __tablename__ = "video_plays"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class VariantVisit(Base):
    """Views and new visitors of an A/B variant, folded in from Redis by every refresh."""

    __tablename__ = "variant_visits"

    variant_id: Mapped[int] = mapped_column(ForeignKey("campaign_variants.id", ondelete="CASCADE"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    views: Mapped[int] = mapped_column(BigInteger, default=0)
    visitors: Mapped[int] = mapped_column(BigInteger, default=0)


class ForwardStats(Base):
    """One row per forward of a refreshed campaign: what happened to it (what is below it is in
    `forward_reach`)."""

    __tablename__ = "forward_stats"
    __table_args__ = (
        Index("ix_forward_stats_parent", "parent_id"),
        # K on mature cohorts over a date range (engine.services.analytics.maturity): the
        # forwards of those days. Not `children`, which a refresh changes: a row rewritten with no
        # indexed column changed stays in its page, without new index entries.
        Index("ix_forward_stats_day", "campaign_id", "day", postgresql_include=["generation", "sender_key"]),
        Index("ix_forward_stats_root", "root_id", "generation"),
        # An incremental refresh recounts the distinct senders and the ambassadors of the sender
        # keys it touched, and the median cycle time of the slices it touched, through these.
        Index("ix_forward_stats_sender", "campaign_id", "sender_key"),
        *(
            Index(
                f"ix_forward_stats_cycle{suffix}",
                "campaign_id",
                *columns,
                "cycle_seconds",
                postgresql_where=text("cycle_seconds IS NOT NULL"),
                sqlite_where=text("cycle_seconds IS NOT NULL"),
            )
            for suffix, columns in (("", ()), ("_generation", ("generation",)), ("_channel", ("channel",)))
        ),
        # Room in each page for an updated row (migration 0038).
        {"postgresql_with": {"fillfactor": 90}},
    )

    forward_id: Mapped[int] = mapped_column(ForeignKey("forwards.id", ondelete="CASCADE"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    # Copies of the forward's own columns, so that the aggregates never join back to it.
    parent_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    root_id: Mapped[int] = mapped_column(Integer)
    generation: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))
    # The channel of the forward the sender came through ("direct" for generation 1).
    arrival_channel: Mapped[str] = mapped_column(String(16))
    sender_key: Mapped[str] = mapped_column(String(160))
    sender_name: Mapped[str] = mapped_column(String(80))
    day: Mapped[date] = mapped_column(Date)
    delivered: Mapped[int] = mapped_column(Integer, default=0)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    # Fetches of the link by link previews and mail scanners (engine.visitors), not clicks.
    prefetches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    children: Mapped[int] = mapped_column(Integer, default=0)
    # From the first click on this forward to the first forward its recipient made; None
    # unless both happened.
    cycle_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    conversions: Mapped[int] = mapped_column(Integer, default=0)
    # What is below a forward moved to `forward_reach` (migration 0038). These columns stay for
    # the release before it, which reads them while a rolling deploy replaces it; this release
    # writes 0 in them, and a later migration drops them.
    legacy_descendants: Mapped[int] = mapped_column("descendants", Integer, default=0)
    legacy_downstream_conversions: Mapped[int] = mapped_column("downstream_conversions", Integer, default=0)
    legacy_height: Mapped[int] = mapped_column("height", Integer, default=0)


class ForwardReach(Base):
    """What is below each forward of a refreshed campaign: its downstream reach, the
    conversions below it and its height.

    A table of its own, apart from `forward_stats`: a new forward changes these figures of every
    one of its ancestors, so an incremental refresh rewrites thousands of these rows at a time.
    A narrow row with two indexes is cheap to rewrite; the wide `forward_stats` row with its
    eight indexes was not. The free space left in each page (`fillfactor`) lets PostgreSQL
    rewrite a row in its own page, without touching the indexes, when `descendants` stays."""

    __tablename__ = "forward_reach"
    __table_args__ = {"postgresql_with": {"fillfactor": 80}}

    forward_id: Mapped[int] = mapped_column(ForeignKey("forwards.id", ondelete="CASCADE"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    generation: Mapped[int] = mapped_column(Integer)
    # Every forward below this one, at any depth.
    descendants: Mapped[int] = mapped_column(Integer, default=0)
    # The redemptions of all those forwards.
    downstream_conversions: Mapped[int] = mapped_column(Integer, default=0)
    # Levels below this forward: 0 for a forward nobody forwarded on.
    height: Mapped[int] = mapped_column(Integer, default=0)


# The largest chains and the tree view's roots: the largest subtrees of a generation first, the
# oldest first among equals, in the order the index holds them (a LIMIT reads a few entries and
# sorts nothing).
Index(
    "ix_forward_reach_campaign_reach",
    ForwardReach.campaign_id,
    ForwardReach.generation,
    ForwardReach.descendants.desc(),
    ForwardReach.forward_id,
)


class AmbassadorStats(Base):
    """One row per sender of a refreshed campaign: their forwards, reach and conversions downstream."""

    __tablename__ = "ambassador_stats"
    __table_args__ = (
        Index("ix_ambassador_stats_reach", "campaign_id", "reach"),
        Index("ix_ambassador_stats_conversions", "campaign_id", "conversions"),
    )

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    sender_key: Mapped[str] = mapped_column(String(160), primary_key=True)
    sender_name: Mapped[str] = mapped_column(String(80))
    generation: Mapped[int] = mapped_column(Integer)
    forwards: Mapped[int] = mapped_column(Integer)
    reach: Mapped[int] = mapped_column(Integer)
    conversions: Mapped[int] = mapped_column(Integer)


class MetricCell(Base):
    """The figures of one slice of a campaign: a generation (channel "*"), a channel
    (generation 0), or the whole campaign (generation 0, channel "*")."""

    __tablename__ = "metric_cells"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    invites: Mapped[int] = mapped_column(Integer)
    senders: Mapped[int] = mapped_column(Integer)
    became_senders: Mapped[int] = mapped_column(Integer)
    delivered: Mapped[int] = mapped_column(Integer)
    clicked: Mapped[int] = mapped_column(Integer)
    clicks: Mapped[int] = mapped_column(Integer)
    prefetches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    conversions: Mapped[int] = mapped_column(Integer)
    cycle_median_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)


class DailyForwards(Base):
    """Forwards made per day and generation: the reach-over-time chart."""

    __tablename__ = "daily_forwards"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    forwards: Mapped[int] = mapped_column(Integer)


class DailyCohort(Base):
    """The forwards made on one day, of one generation (or of every one: generation 0), with
    what K on mature cohorts sums over the days before a date (engine.services.analytics.maturity):
    the invites, those that became senders, and the senders whose first forward (in that
    generation, or at all) was made that day. Summed over the days before D, the last gives the
    distinct senders of the forwards before D, without counting distinct keys over every row."""

    __tablename__ = "daily_cohorts"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    invites: Mapped[int] = mapped_column(Integer)
    became_senders: Mapped[int] = mapped_column(Integer)
    first_senders: Mapped[int] = mapped_column(Integer)


class RollupState(Base):
    """When a campaign's roll-ups were last recomputed, and from how many forwards."""

    __tablename__ = "rollup_state"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    forwards: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    # Where the next incremental refresh starts (engine.services.analytics.watermarks): None
    # before the first refresh; the next refresh is then a full rebuild.
    watermarks: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Set by changes an incremental refresh cannot see (a sender's name erased): the next
    # refresh rebuilds every roll-up of the campaign.
    rebuild_due: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
