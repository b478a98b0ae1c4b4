"""Incremental analytics refreshes give exactly the roll-ups a full rebuild gives, on SQLite and
PostgreSQL: random forwards, clicks, redemptions and delivery reports between refreshes, old
rows included (a late click before the first one, a delivery report days later, a conversion
deep down a chain); a transaction that commits after a refresh saw a higher id is not skipped;
an erased sender's name makes the next refresh a rebuild; `flask analytics rebuild`."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, select, text

from engine.db import Database
from engine.models import (
    AmbassadorStats,
    Campaign,
    Click,
    Coupon,
    DailyCohort,
    DailyForwards,
    Forward,
    ForwardReach,
    ForwardStats,
    Message,
    MetricCell,
    Redemption,
    RollupState,
)
from engine.runtime import Runtime
from engine.services import analytics
from engine.services.analytics import maturity, rollups, watermarks
from engine.services.analytics.sql import lock_campaign
from engine.services.privacy import _scrub_sender
from tests.helpers import make_campaign

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
STATUSES = ["queued", "sent", "delivered", "bounced", "failed"]
ROLLUP_MODELS = (ForwardStats, ForwardReach, MetricCell, DailyForwards, DailyCohort, AmbassadorStats)


class Campaigner:
    """Writes a campaign's events, at random, straight into the base tables."""

    def __init__(self, db: Database, campaign: Campaign, seed: int) -> None:
        self.db = db
        self.campaign_id = campaign.id
        self.random = random.Random(seed)
        self.forwards: list[tuple[int, int]] = []  # (id, generation)
        self.messages: list[int] = []
        self.made = 0

    def forward(self, session: Any, parent: tuple[int, int] | None) -> Forward:
        self.made += 1
        contact = self.random.choice([None, None, "ann", "bo", "cy"])
        forward = Forward(
            public_id=f"p{self.campaign_id}-{self.made}",
            campaign_id=self.campaign_id,
            parent_id=parent[0] if parent else None,
            generation=parent[1] + 1 if parent else 1,
            channel=self.random.choice(["email", "email", "sms"]),
            sender_name=self.random.choice(["Ann", "Bo", "Cy"]),
            sender_contact_hash=contact,
            recipient_contact_hash=f"friend-{self.campaign_id}-{self.made}",
            policy_name="custom",
            policy_version=1,
            client_ip_hash=self.random.choice(["ip1", "ip2"]),
            created_at=T0 + timedelta(hours=self.random.randint(0, 300)),
        )
        session.add(forward)
        session.flush()
        message = Message(
            public_id=f"m{self.campaign_id}-{self.made}",
            forward_id=forward.id,
            channel=forward.channel,
            status=self.random.choice(STATUSES),
            policy_name="custom",
            policy_version=1,
        )
        session.add(message)
        session.flush()
        self.forwards.append((forward.id, forward.generation))
        self.messages.append(message.id)
        return forward

    def round(self) -> None:
        """A few of everything, in one transaction, touching old forwards as much as new ones."""
        pick = self.random.choice
        with self.db.transaction() as session:
            for _ in range(self.random.randint(0, 12)):
                parent = pick(self.forwards) if self.forwards and self.random.random() < 0.8 else None
                self.forward(session, parent)
            if not self.forwards:
                return
            for _ in range(self.random.randint(0, 8)):
                # Any time: before a forward's first click (its cycle time changes), or after.
                at = T0 + timedelta(hours=self.random.randint(0, 400))
                session.add(Click(forward_id=pick(self.forwards)[0], created_at=at))
            for _ in range(self.random.randint(0, 3)):
                forward_id = pick(self.forwards)[0]
                coupon = Coupon(campaign_id=self.campaign_id, code=f"C{self.made}-{self.random.random()}")
                session.add(coupon)
                session.flush()
                session.add(Redemption(coupon_id=coupon.id, campaign_id=self.campaign_id, forward_id=forward_id))
            for _ in range(self.random.randint(0, 6)):
                message = session.get(Message, pick(self.messages))
                message.status = pick(STATUSES)  # a delivery report, however late


def rollup_rows(session: Any, campaign_id: int) -> dict[str, list[tuple[Any, ...]]]:
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for model in ROLLUP_MODELS:
        table = model.__table__
        key = list(table.primary_key.columns)
        rows = session.execute(select(table).where(table.c.campaign_id == campaign_id).order_by(*key))
        tables[table.name] = [tuple(row) for row in rows]
    return tables


def rebuilt_rows(db: Database, campaign_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """The rows a full rebuild computes now, in a transaction rolled back afterwards (so that the
    incremental roll-ups carry on from their own rows, never from a rebuild's)."""
    session = db.sessions()
    try:
        lock_campaign(session, campaign_id)
        rollups._rebuild(session, campaign_id)
        return rollup_rows(session, campaign_id)
    finally:
        session.rollback()
        session.close()


def current_rows(db: Database, campaign_id: int) -> dict[str, list[tuple[Any, ...]]]:
    with db.reading() as session:
        return rollup_rows(session, campaign_id)


def assert_same_as_a_rebuild(db: Database, campaign_id: int) -> None:
    incremental, rebuilt = current_rows(db, campaign_id), rebuilt_rows(db, campaign_id)
    for table, rows in rebuilt.items():
        assert incremental[table] == rows, table


def assert_mature_figures_equal_a_count_of_the_rows(db: Database, campaign_id: int) -> None:
    """K on mature cohorts from the daily roll-up is what counting the rows themselves gives,
    whatever day the cohorts end on."""
    with db.reading() as session:
        for days in range(0, 16, 2):
            before = T0.date() + timedelta(days=days)
            summed = [tuple(int(v) for v in row) for row in maturity.mature_rows(session, campaign_id, before)]
            (_, invites, senders, became), per_generation = maturity.scan_mature(session, campaign_id, before, None)
            counted = [(0, int(invites), int(senders), int(became))] if invites else []
            counted += [tuple(int(v) for v in row) for row in per_generation]
            assert summed == counted, before


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_refreshes_equal_a_rebuild_row_by_row(runtime: Runtime, campaign: Campaign, seed: int) -> None:
    db = runtime.db
    other = make_campaign(db, "autumn")
    ours, theirs = Campaigner(db, campaign, seed), Campaigner(db, other, seed + 100)
    ours.round()
    first = analytics.refresh_rollups(db, campaign.slug, NOW)
    assert first.full
    for _ in range(8):
        theirs.round()  # ids of another campaign in between: a watermark is over the whole table
        ours.round()
        report = analytics.refresh_rollups(db, campaign.slug, NOW)
        assert not report.full
        assert_same_as_a_rebuild(db, campaign.id)
        assert_mature_figures_equal_a_count_of_the_rows(db, campaign.id)
    with db.reading() as session:
        state = session.get(RollupState, campaign.id)
        assert state is not None and state.forwards == len(ours.forwards)
        assert len(current_rows(db, campaign.id)["forward_stats"]) == len(ours.forwards)


def test_a_refresh_with_nothing_new_changes_nothing(runtime: Runtime, campaign: Campaign) -> None:
    db = runtime.db
    writer = Campaigner(db, campaign, 7)
    for _ in range(3):
        writer.round()
    analytics.refresh_rollups(db, campaign.slug, NOW)
    before = current_rows(db, campaign.id)
    report = analytics.refresh_rollups(db, campaign.slug, NOW)
    assert not report.full
    assert current_rows(db, campaign.id) == before


def test_a_change_deep_down_a_chain_reaches_every_ancestor(runtime: Runtime, campaign: Campaign) -> None:
    db = runtime.db
    writer = Campaigner(db, campaign, 11)
    with db.transaction() as session:
        chain = [writer.forward(session, None)]
        for _ in range(5):
            chain.append(writer.forward(session, (chain[-1].id, chain[-1].generation)))
    analytics.refresh_rollups(db, campaign.slug, NOW)
    with db.transaction() as session:
        leaf = chain[-1]
        writer.forward(session, (leaf.id, leaf.generation))
        coupon = Coupon(campaign_id=campaign.id, code="DEEP")
        session.add(coupon)
        session.flush()
        session.add(Redemption(coupon_id=coupon.id, campaign_id=campaign.id, forward_id=leaf.id))
    analytics.refresh_rollups(db, campaign.slug, NOW)
    with db.reading() as session:
        root = session.get(ForwardReach, chain[0].id)
        assert root is not None
        assert (root.descendants, root.height) == (6, 6)
        assert root.downstream_conversions >= 1
    assert_same_as_a_rebuild(db, campaign.id)


# PostgreSQL only: SQLite runs one writer at a time, so no id commits out of order there.
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_transaction_that_commits_after_a_refresh_saw_a_higher_id_is_not_skipped(
    runtime: Runtime, campaign: Campaign, database_url: str
) -> None:
    db = runtime.db
    writer = Campaigner(db, campaign, 5)
    writer.round()
    analytics.refresh_rollups(db, campaign.slug, NOW)
    slow = create_engine(database_url)
    with slow.connect() as connection:
        # A forward whose transaction takes its id now and commits only after a refresh.
        late_id = connection.execute(
            text(
                "INSERT INTO forwards (public_id, campaign_id, generation, channel, sender_name,"
                " recipient_contact_hash, policy_name, policy_version, created_at)"
                " VALUES ('late', :campaign, 1, 'email', 'Lou', 'friend-late', 'custom', 1, :at) RETURNING id"
            ),
            {"campaign": campaign.id, "at": T0},
        ).scalar_one()
        with db.transaction() as session:
            quick = writer.forward(session, None)
        assert quick.id > late_id
        analytics.refresh_rollups(db, campaign.slug, NOW)
        with db.reading() as session:
            assert session.get(ForwardStats, quick.id) is not None
            assert session.get(ForwardStats, late_id) is None
            state = session.get(RollupState, campaign.id)
            assert state is not None
            marks = watermarks.Watermarks.from_json(state.watermarks)
            assert marks is not None and marks.pending is not None
            assert marks.settled.ids["forwards"] < late_id  # held back while the writer runs
        connection.commit()
    slow.dispose()
    analytics.refresh_rollups(db, campaign.slug, NOW)
    with db.reading() as session:
        assert session.get(ForwardStats, late_id) is not None
    assert_same_as_a_rebuild(db, campaign.id)
    # With the writer gone, the next refresh settles everything it has seen.
    analytics.refresh_rollups(db, campaign.slug, NOW)
    with db.reading() as session:
        state = session.get(RollupState, campaign.id)
        assert state is not None
        marks = watermarks.Watermarks.from_json(state.watermarks)
        assert marks is not None and marks.pending is None and marks.settled.ids["forwards"] >= quick.id


# PostgreSQL only: SQLite runs one writer at a time anyway.
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_refreshes_of_one_campaign_take_turns(runtime: Runtime, campaign: Campaign, database_url: str) -> None:
    db = runtime.db
    writer = Campaigner(db, campaign, 9)
    writer.round()
    analytics.refresh_rollups(db, campaign.slug, NOW)
    writer.round()
    holder = db.sessions()
    lock_campaign(holder, campaign.id)  # a refresh under way, holding the campaign's lock
    waiting = threading.Thread(target=analytics.refresh_rollups, args=(db, campaign.slug, NOW))
    waiting.start()
    watcher = create_engine(database_url)
    with watcher.connect() as connection:
        for _ in range(600):  # until the second refresh queues on the lock (at most a minute)
            queued = connection.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            ).scalar_one()
            if queued:
                break
            threading.Event().wait(0.1)
    watcher.dispose()
    assert queued == 1 and waiting.is_alive()
    holder.rollback()
    holder.close()
    waiting.join()
    assert_same_as_a_rebuild(db, campaign.id)


def test_an_erased_sender_makes_the_next_refresh_a_rebuild(runtime: Runtime, campaign: Campaign) -> None:
    db = runtime.db
    writer = Campaigner(db, campaign, 3)
    for _ in range(3):
        writer.round()
    analytics.refresh_rollups(db, campaign.slug, NOW)
    with db.transaction() as session:
        _scrub_sender(session, ["ann"])  # what an erasure does to the forwards they sent
    report = analytics.refresh_rollups(db, campaign.slug, NOW)
    assert report.full
    with db.reading() as session:
        names = set(session.scalars(select(AmbassadorStats.sender_name).where(AmbassadorStats.sender_key == "c:ann")))
    assert "Ann" not in names


def test_a_refresh_by_the_release_before_forward_reach_makes_the_next_refresh_a_rebuild(
    runtime: Runtime, campaign: Campaign
) -> None:
    """During a rolling deploy the release before migration 0038 may refresh a campaign: it
    updates the old columns, not `forward_reach`, and writes the watermarks without the mark.
    Carrying on from the stale `forward_reach` rows would leave chains too small for good."""
    db = runtime.db
    writer = Campaigner(db, campaign, 9)
    writer.round()
    analytics.refresh_rollups(db, campaign.slug, NOW)
    writer.round()
    assert not analytics.refresh_rollups(db, campaign.slug, NOW).full
    with db.transaction() as session:
        state = session.get(RollupState, campaign.id)
        assert state is not None and state.watermarks is not None
        state.watermarks = {k: v for k, v in state.watermarks.items() if k != rollups.REACH_MARK}
    writer.round()
    assert analytics.refresh_rollups(db, campaign.slug, NOW).full
    writer.round()
    assert not analytics.refresh_rollups(db, campaign.slug, NOW).full


def test_the_rebuild_command(app: Flask, runtime: Runtime, campaign: Campaign) -> None:
    writer = Campaigner(runtime.db, campaign, 4)
    writer.round()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["analytics", "refresh", campaign.slug])
    assert result.exit_code == 0 and "rebuilt" in result.output  # the first refresh is a rebuild
    writer.round()
    result = runner.invoke(args=["analytics", "refresh", campaign.slug])
    assert result.exit_code == 0 and "re-derived" in result.output
    result = runner.invoke(args=["analytics", "rebuild", campaign.slug])
    assert result.exit_code == 0 and "rebuilt" in result.output
    result = runner.invoke(args=["analytics", "rebuild", "no-such-campaign"])
    assert result.exit_code != 0 and "no-such-campaign" in result.output
