"""How closely the SMS pacer holds several worker processes to a sender number's rate.

W sender processes (spawned, as RQ workers are separate processes), each with T threads as a
worker's SMS pool has, take turns from `engine.caps.Pacer` on one key and send each text they
are granted through the engine's Twilio transport (the official SDK) into the Twilio stub,
which runs in a process of its own. The stub's arrival times are the one clock; the senders'
grant times (time.time() right after the pacer said yes) are kept too, to tell the pacer's
spacing from the jitter of the HTTP hop after it.
"""

from __future__ import annotations

import bisect
import itertools
import multiprocessing
import os
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.queues import Queue
from typing import Any

import redis

from engine.caps import Limiter, Pacer
from engine.sms import measure
from engine.transports import OutgoingSms
from engine.transports.twilio import TwilioTransport

KEY_PREFIX = "bench:caps"
SENDER = "+15005550006"
# One GSM-7 segment, about what a forward's text looks like.
TEXT = "Anna thinks you'll like this: Ten percent off at Acme. https://fluister.example/f/AbCdEf123"
START_DELAY = 1.0  # seconds between every sender being ready and the first turn asked for
SPAWN_TIMEOUT = 60.0


@dataclass(frozen=True)
class Stub:
    url: str
    account_sid: str
    auth_token: str


# -- the stub's process ------------------------------------------------------------------------


def _serve_stub(commands: Connection) -> None:
    """The Twilio stub in this process; answers `arrivals` with (received_at, segments) pairs."""
    from tests.stubs.twilio import TwilioStub  # the stubs live with the tests

    with TwilioStub.running() as stub:
        commands.send(Stub(stub.url, stub.account_sid, stub.auth_token))
        while (command := commands.recv()) != "quit":
            if command == "arrivals":
                commands.send([(m.request.received_at, m.num_segments) for m in stub.messages])
            elif command == "reset":
                stub.reset()
                commands.send(True)


class StubProcess:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._commands, theirs = context.Pipe()
        self._process = context.Process(target=_serve_stub, args=(theirs,), daemon=True)

    def __enter__(self) -> StubProcess:
        self._process.start()
        if not self._commands.poll(SPAWN_TIMEOUT):
            raise RuntimeError("the Twilio stub did not start")
        self.stub: Stub = self._commands.recv()
        return self

    def __exit__(self, *_: object) -> None:
        self._commands.send("quit")
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()

    def arrivals(self) -> list[tuple[float, int]]:
        self._commands.send("arrivals")
        return sorted(self._commands.recv())

    def reset(self) -> None:
        self._commands.send("reset")
        self._commands.recv()


# -- the senders' processes ----------------------------------------------------------------------


@dataclass(frozen=True)
class SenderJob:
    redis_url: str
    key: str
    rate: float
    threads: int
    stub: Stub
    seconds: float
    worker: int


def _sender(job: SenderJob, ready: Any, start: Any, results: Queue) -> None:
    """One worker process: T threads taking turns and sending, from `start` (a shared
    time.time() value) for `job.seconds`; puts its grants and failures on `results`."""
    pacer = Pacer(Limiter(redis.Redis.from_url(job.redis_url), prefix=KEY_PREFIX), job.key, job.rate)
    transport = TwilioTransport(job.stub.account_sid, job.stub.auth_token, from_number=SENDER, api_base=job.stub.url)
    segments = measure(TEXT).segments
    grants: list[float] = []
    failures: list[str] = []
    numbers = itertools.count()
    lock = threading.Lock()

    def send_until(deadline: float) -> None:
        while time.time() < deadline:
            if not pacer.wait_turn(segments):
                failures.append("no turn within the pacer's max_wait")
                continue
            granted = time.time()
            with lock:
                number = next(numbers)
            try:
                transport.send_sms(OutgoingSms(to=f"+3161{job.worker:02d}{number:05d}", text=TEXT))
            except Exception as error:  # counted and reported: the run then fails its checks
                failures.append(f"{type(error).__name__}: {error}")
                continue
            grants.append(granted)

    ready.put(os.getpid())
    begin = start.get()
    time.sleep(max(0.0, begin - time.time()))
    threads = [threading.Thread(target=send_until, args=(begin + job.seconds,)) for _ in range(job.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put((grants, failures))


# -- what is computed from the times ---------------------------------------------------------------


def most_in_one_second(sends: Sequence[tuple[float, int]]) -> tuple[int, float]:
    """The most segments in any window [t, t + 1 s), slid over every send (a window holding
    the most can be slid right until it starts at a send), and where that window starts."""
    ordered = sorted(sends)
    times = [moment for moment, _ in ordered]
    before = list(itertools.accumulate((segments for _, segments in ordered), initial=0))
    best, at = 0, times[0] if times else 0.0
    for i, start in enumerate(times):
        inside = before[bisect.bisect_left(times, start + 1.0)] - before[i]
        if inside > best:
            best, at = inside, start
    return best, at


def whole_seconds(sends: Sequence[tuple[float, int]]) -> list[int]:
    """Segments in each whole second from the first send (the last, partial one left out)."""
    first = sends[0][0]
    counts = [0] * int(sends[-1][0] - first)
    for moment, segments in sends:
        second = int(moment - first)
        if second < len(counts):
            counts[second] += segments
    return counts


def describe(sends: Sequence[tuple[float, int]], rate: float) -> dict[str, Any]:
    """Worst window against the rate, the average rate, and the spacing of consecutive sends."""
    ordered = sorted(sends)
    most, at = most_in_one_second(ordered)
    span = ordered[-1][0] - ordered[0][0]
    # The last send's segments are the turns after the span measured.
    average = (sum(segments for _, segments in ordered) - ordered[-1][1]) / span if span > 0 else 0.0
    gaps_ms = [(b[0] - a[0]) * 1000 for a, b in itertools.pairwise(ordered)]
    interval_ms = statistics.median(s for _, s in ordered) / rate * 1000
    seconds = whole_seconds(ordered)
    return {
        "sends": len(ordered),
        "segments": sum(s for _, s in ordered),
        "span_s": round(span, 3),
        "worst_window": most,
        "worst_window_starts_s": round(at - ordered[0][0], 3),
        "worst_window_over_rate": round(most / rate, 4),
        "average_rate": round(average, 3),
        "average_over_rate": round(average / rate, 4),
        "interval_ms": round(interval_ms, 3),
        "gap_ms": {
            "min": round(min(gaps_ms), 2),
            "median": round(statistics.median(gaps_ms), 2),
            "mean": round(statistics.mean(gaps_ms), 3),
            "max": round(max(gaps_ms), 2),
        },
        # How late, on average, each turn came after the previous one's end: never made up.
        "late_per_turn_ms": round(statistics.mean(gaps_ms) - interval_ms, 3),
        "whole_seconds": {"min": min(seconds, default=0), "max": max(seconds, default=0), "counts": seconds},
    }


# -- one rate ----------------------------------------------------------------------------------------


def measure_rate(
    stub: StubProcess, redis_url: str, *, rate: float, workers: int, threads: int, seconds: float
) -> dict[str, Any]:
    stub.reset()
    key = f"sms:bench-{rate:g}"
    connection = redis.Redis.from_url(redis_url)
    connection.delete(f"{KEY_PREFIX}:pace:{key}")
    context = multiprocessing.get_context("spawn")
    ready: Queue = context.Queue()
    start: Queue = context.Queue()
    results: Queue = context.Queue()
    processes = [
        context.Process(
            target=_sender,
            args=(SenderJob(redis_url, key, rate, threads, stub.stub, seconds, n), ready, start, results),
            daemon=True,
        )
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=SPAWN_TIMEOUT)
        # One start time for all, on the clock every process shares.
        begin = time.time() + START_DELAY
        for _ in processes:
            start.put(begin)
        outcomes = [results.get(timeout=seconds + SPAWN_TIMEOUT) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    segments = measure(TEXT).segments
    grants = sorted((moment, segments) for own, _ in outcomes for moment in own)
    failures = [failure for _, own in outcomes for failure in own]
    arrivals = stub.arrivals()
    problems = list(dict.fromkeys(failures))[:5]
    if len(arrivals) != len(grants):
        problems.append(f"{len(grants)} texts sent, {len(arrivals)} accepted by the stub")
    return {
        "rate": rate,
        "workers": workers,
        "threads_per_worker": threads,
        "seconds": seconds,
        "segments_per_text": segments,
        "arrivals": describe(arrivals, rate) if len(arrivals) > 1 else None,
        "grants": describe(grants, rate) if len(grants) > 1 else None,
        "per_worker_sends": sorted(len(own) for own, _ in outcomes),
        "failures": len(failures),
        "problems": problems,
    }
