"""The scheduler: one active at a time, tasks at their intervals, and outages that cost one
log line each rather than a line per try. The clock is a test's own: nothing waits a minute."""

from __future__ import annotations

import logging
import threading

import fakeredis
import pytest
import redis
from sqlalchemy import exc as sql

from engine.resilience import RetryLog
from engine.scheduler import PeriodicTask, Scheduler

LEASE = "test:scheduler:lease"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counting:
    def __init__(self, fail_with: Exception | None = None) -> None:
        self.runs = 0
        self.fail_with = fail_with

    def __call__(self) -> None:
        self.runs += 1
        if self.fail_with is not None:
            raise self.fail_with


def scheduler(connection: redis.Redis, clock: Clock, tasks: list[PeriodicTask], **options: object) -> Scheduler:
    return Scheduler(connection, LEASE, tasks, RetryLog(every=60, clock=clock), clock=clock, **options)  # type: ignore[arg-type]


def test_one_scheduler_is_active_and_runs_each_task_at_its_interval() -> None:
    connection = fakeredis.FakeRedis()
    clock = Clock()
    sweep, refresh = Counting(), Counting()
    tasks = [PeriodicTask("sweep", 60, sweep), PeriodicTask("analytics refresh", 900, refresh)]
    first, second = scheduler(connection, clock, tasks), scheduler(connection, clock, tasks)

    first.tick()
    second.tick()
    assert (first.active, second.active) == (True, False)
    assert (sweep.runs, refresh.runs) == (1, 1)  # each task once, by the active one alone

    clock.now += 59
    first.tick()
    second.tick()
    assert (sweep.runs, refresh.runs) == (1, 1)
    clock.now += 1
    first.tick()
    assert (sweep.runs, refresh.runs) == (2, 1)

    # The active one stops: it hands the lease over, and the standby takes it at its next tick.
    stop = threading.Event()
    stop.set()
    first.run(stop)
    second.tick()
    assert second.active and (sweep.runs, refresh.runs) == (3, 2)


def test_a_standby_takes_over_when_the_active_ones_lease_lapses() -> None:
    connection = fakeredis.FakeRedis()
    clock = Clock()
    sweep = Counting()
    tasks = [PeriodicTask("sweep", 60, sweep)]
    dead, standby = scheduler(connection, clock, tasks), scheduler(connection, clock, tasks)
    dead.tick()
    standby.tick()
    assert not standby.active
    connection.delete(LEASE)  # what its expiry does when the active one stops renewing it
    standby.tick()
    assert standby.active and sweep.runs == 2


def test_while_redis_is_out_the_scheduler_stands_down_logs_once_and_comes_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = fakeredis.FakeServer()
    clock = Clock()
    sweep = Counting()
    active = scheduler(fakeredis.FakeRedis(server=server), clock, [PeriodicTask("sweep", 60, sweep)])
    active.tick()
    caplog.set_level(logging.WARNING, logger="engine.resilience")
    # What the outage logs, whatever levels an earlier test left the other loggers at.
    caplog.clear()
    server.connected = False  # fakeredis's way of being unreachable
    pauses = []
    for _ in range(6):
        pauses.append(active.tick())
        clock.now += 5
    assert not active.active and sweep.runs == 1
    assert pauses == sorted(pauses) and pauses[-1] > pauses[0]  # it backs off
    assert [r.getMessage()[:28] for r in caplog.records] == ["Redis cannot be reached (Con"]

    server.connected = True
    clock.now += 60
    active.tick()
    assert active.active and sweep.runs == 2
    assert "Redis is back after 90 s and 6 tries" in caplog.records[-1].getMessage()


def test_a_task_that_finds_the_database_out_is_tried_at_every_tick_and_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outage = sql.OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
    sweep = Counting(fail_with=outage)
    active = scheduler(fakeredis.FakeRedis(), clock, [PeriodicTask("sweep", 600, sweep)])
    caplog.set_level(logging.WARNING, logger="engine.resilience")
    for _ in range(130):
        active.tick()
        clock.now += 1
    assert sweep.runs == 130
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and lines[0].startswith("the database cannot be reached")
    assert all(line.startswith("the database still cannot be reached") for line in lines[1:])

    sweep.fail_with = None
    active.tick()
    assert caplog.records[-1].getMessage().startswith("the database is back")
    clock.now += 599
    active.tick()
    assert sweep.runs == 131  # done: the next run is an interval away


def test_a_task_with_a_bug_is_logged_and_waits_for_its_next_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    broken = Counting(fail_with=ValueError("a bug"))
    active = scheduler(fakeredis.FakeRedis(), clock, [PeriodicTask("analytics refresh", 900, broken)])
    active.tick()
    active.tick()
    assert broken.runs == 1
    assert "scheduled analytics refresh failed" in caplog.text and "ValueError: a bug" in caplog.text
