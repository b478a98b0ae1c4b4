"""The Redis limiter, on real Redis and on the embedded fakeredis: atomic, all-or-nothing, shared."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from datetime import timedelta

import fakeredis
import pytest
import redis

from engine.caps import CapsUnavailable, Limiter, Rule

HOUR = timedelta(hours=1)


@pytest.fixture(params=["redis", "fakeredis"])
def connection(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    if request.param == "fakeredis":
        yield fakeredis.FakeRedis(server=fakeredis.FakeServer())
        return
    yield redis.Redis.from_url(request.getfixturevalue("redis_url"))


def test_allows_up_to_the_limit_then_says_when_it_resets(connection: redis.Redis) -> None:
    limiter = Limiter(connection)
    rule = Rule("ip-hour", "ip:1", limit=3, period=HOUR)
    assert [limiter.acquire([rule]).allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.acquire([rule])
    assert refused.rule == rule
    assert timedelta(minutes=19) < refused.retry_after <= timedelta(minutes=20)  # one use frees up every 20 min


def test_all_or_nothing_a_refused_request_uses_up_no_other_cap(connection: redis.Redis) -> None:
    limiter = Limiter(connection)
    roomy = Rule("ip-hour", "ip:1", limit=30, period=HOUR)
    tight = Rule("friends-day", "sender:a", limit=10, period=timedelta(days=1), cost=4)
    assert limiter.acquire([roomy, tight]).allowed
    assert limiter.acquire([roomy, tight]).allowed
    refused = limiter.acquire([roomy, tight])  # 12 + 4 > 10
    assert refused.rule == tight
    assert [u.used for u in limiter.usage([roomy, tight])] == [2, 8]


def test_a_cost_above_the_limit_is_never_allowed(connection: redis.Redis) -> None:
    decision = Limiter(connection).acquire(
        [Rule("friends-day", "sender:b", limit=10, period=timedelta(days=1), cost=50)]
    )
    assert (decision.allowed, decision.retry_after) == (False, None)


def test_ever_caps_count_without_expiry(connection: redis.Redis) -> None:
    limiter = Limiter(connection)
    budget = Rule("campaign-total", "campaign:1:total", limit=5, period=None, cost=2)
    assert [limiter.acquire([budget]).allowed for _ in range(3)] == [True, True, False]
    assert limiter.usage([budget])[0].used == 4
    assert connection.ttl("fluister:cap:campaign:1:total") == -1


def test_dry_run_checks_without_consuming(connection: redis.Redis) -> None:
    limiter = Limiter(connection)
    rule = Rule("ip-hour", "ip:2", limit=1, period=HOUR)
    assert limiter.acquire([rule], dry_run=True).allowed
    assert limiter.acquire([rule]).allowed
    assert not limiter.acquire([rule], dry_run=True).allowed


def test_unreachable_redis_fails_closed() -> None:
    limiter = Limiter(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5))
    with pytest.raises(CapsUnavailable):
        limiter.acquire([Rule("ip-hour", "ip:3", limit=1, period=HOUR)])


def _hammer(url: str, attempts: int, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    limiter = Limiter(redis.Redis.from_url(url))
    rule = Rule("ip-hour", "ip:shared", limit=50, period=HOUR)
    results.put(sum(limiter.acquire([rule]).allowed for _ in range(attempts)))


def test_processes_racing_never_exceed_a_cap_together(redis_url: str) -> None:
    results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    workers = [multiprocessing.Process(target=_hammer, args=(redis_url, 40, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert sum(results.get(timeout=5) for _ in workers) == 50


def test_rules_taken_each_on_their_own_after_the_shared_ones(connection: redis.Redis) -> None:
    limiter = Limiter(connection)
    shared = Rule("ip-hour", "ip:9", limit=10, period=HOUR)
    full = Rule("recipient", "recipient:full", limit=1, period=HOUR)
    empty = Rule("recipient", "recipient:empty", limit=1, period=HOUR)
    assert limiter.acquire([full]).allowed
    decision, refused = limiter.acquire_with([shared], [full, empty])
    assert decision.allowed and refused == [full]
    assert [u.used for u in limiter.usage([shared, full, empty])] == [1, 1, 1]
    # When a shared rule refuses, none of the others is touched.
    blocked = Rule("ip-hour", "ip:10", limit=1, period=HOUR, cost=2)
    decision, refused = limiter.acquire_with([blocked], [Rule("recipient", "recipient:other", limit=1, period=HOUR)])
    assert not decision.allowed and refused == []
    assert limiter.usage([Rule("recipient", "recipient:other", limit=1, period=HOUR)])[0].used == 0


def test_a_script_redis_forgot_is_sent_again(connection: redis.Redis) -> None:
    limiter = Limiter(connection)
    rule = Rule("per hour", "forgetful", 2, timedelta(hours=1))
    assert limiter.acquire([rule]).allowed
    connection.script_flush()  # as after a restart of Redis
    assert limiter.acquire([rule]).allowed
    assert not limiter.acquire([rule]).allowed  # and the count went on


def test_a_connection_that_was_cut_is_replaced(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = Limiter(client)
    rule = Rule("per hour", "cut", 5, timedelta(hours=1))
    assert limiter.acquire([rule]).allowed
    # Redis drops the pooled connection (a restart, a proxy's idle timeout).
    admin = redis.Redis.from_url(redis_url)
    admin.client_kill_filter(_type="normal", skipme=True)
    assert limiter.acquire([rule]).allowed
    assert limiter.usage([rule])[0].used == 2


def test_redis_gone_is_caps_unavailable_not_a_hang() -> None:
    limiter = Limiter(redis.Redis(port=1, socket_connect_timeout=0.5))
    with pytest.raises(CapsUnavailable):
        limiter.acquire([Rule("per hour", "nowhere", 5, timedelta(hours=1))])
