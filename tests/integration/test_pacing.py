"""The pacer shares one rate between every worker through Redis: each turn reserves the next
free slot, so turns follow each other exactly 1/rate apart (1% under it), whoever asks.

Waiting is taken out of the picture: the pacer's sleep is recorded instead of slept, and each
slot is read back from Redis, on Redis's own clock; so nothing here depends on how fast this
machine is. The rate achieved in real time, by four worker processes of four threads against
the Twilio stub, is measured by `make bench-caps` (bench/caps/pacing.py).
"""

from __future__ import annotations

import threading

import pytest
import redis

from engine.caps import Limiter, Pacer

RATE = 0.1  # one turn every ~10.1 s: the slots never fall behind the time it takes to ask
UNIT_US = round(1_000_000 / (RATE * (1 - Pacer.MARGIN)))


@pytest.fixture
def connection(redis_url: str):  # type: ignore[no-untyped-def]
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("engine.caps.time.sleep", slept.append)
    return slept


def next_free(connection: redis.Redis) -> int:
    return int(connection.get("fluister:cap:pace:sms:+15005550006"))


def test_turns_asked_from_many_threads_get_slots_exactly_one_unit_apart(connection, sleeps: list[float]) -> None:  # type: ignore[no-untyped-def]
    pacers = [Pacer(Limiter(connection), "sms:+15005550006", RATE, max_wait=120) for _ in range(3)]
    start = threading.Barrier(6)
    granted: list[bool] = []

    def ask(pacer: Pacer) -> None:
        start.wait()
        granted.append(pacer.wait_turn())

    threads = [threading.Thread(target=ask, args=(pacers[n % 3],)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted == [True] * 6
    # Six turns took six consecutive slots from now: the first went at once, each of the others
    # waited for its own, and the next free slot is six units away.
    assert len(sleeps) == 5
    assert sorted(round(s * 1_000_000 / UNIT_US) for s in sleeps) == [1, 2, 3, 4, 5]
    seconds, microseconds = connection.time()
    assert round((next_free(connection) - (seconds * 1_000_000 + microseconds)) / UNIT_US) == 6


def test_a_turn_costs_its_segments(connection, sleeps: list[float]) -> None:  # type: ignore[no-untyped-def]
    pacer = Pacer(Limiter(connection), "sms:+15005550006", RATE, max_wait=120)
    assert pacer.wait_turn(3)
    after_three = next_free(connection)
    assert pacer.wait_turn(1)
    assert next_free(connection) - after_three == UNIT_US
    # The second turn waited for the three units the first one took.
    assert sleeps and round(sleeps[-1] * 1_000_000 / UNIT_US) == 3


def test_a_turn_beyond_the_longest_wait_is_refused_and_reserves_nothing(connection, sleeps: list[float]) -> None:  # type: ignore[no-untyped-def]
    pacer = Pacer(Limiter(connection), "sms:+15005550006", RATE, max_wait=15)
    assert pacer.wait_turn() and pacer.wait_turn()  # the second waits one unit, ~10.1 s
    reserved = next_free(connection)
    assert not pacer.wait_turn()  # the third would wait ~20.2 s
    assert next_free(connection) == reserved
    assert len(sleeps) == 1
