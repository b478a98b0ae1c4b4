"""What a run is measured with: CPU time per process from /proc, and Redis commands from
`INFO commandstats`, less the ones the benchmark itself sends to watch the run."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import redis

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _processes() -> Iterator[tuple[int, str, float]]:
    """(pid, comm, cpu seconds) of every process we can read in /proc."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:  # exited while we looked
            continue
        yield int(entry.name), raw[raw.index("(") + 1 : raw.rindex(")")], _cpu_seconds(raw)


def _cpu_seconds(stat: str) -> float:
    fields = stat[stat.rindex(")") + 2 :].split()
    # After the comm: state, ppid, ...; utime and stime are the 12th and 13th.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_cpu(pid: int) -> float | None:
    """user + system seconds of one process (all its threads), None once it is gone."""
    try:
        return _cpu_seconds(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None


def machine_busy_seconds() -> float:
    # The first line of /proc/stat: the whole machine's time per state, in clock ticks.
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def machine_load(seconds: float = 1.0) -> float:
    """Cores busy on the whole machine for a moment."""
    before = machine_busy_seconds()
    time.sleep(seconds)
    return (machine_busy_seconds() - before) / seconds


def cpu_snapshot(workers: Iterable[int], stub: int, redis_pid: int | None = None) -> dict[str, float]:
    """CPU seconds so far: the workers, the stub, PostgreSQL (every backend), Redis, this
    process and the whole machine. A PostgreSQL backend that exits between two snapshots
    is not counted; the workers' pooled connections live through a run. Redis is every
    redis-server, or only `redis_pid` when given."""
    worker_pids = set(workers)
    totals = dict.fromkeys(("workers", "stub", "postgres", "redis", "bench", "machine"), 0.0)
    me = os.getpid()
    for pid, comm, seconds in _processes():
        if pid in worker_pids:
            totals["workers"] += seconds
        elif pid == stub:
            totals["stub"] += seconds
        elif pid == me:
            totals["bench"] += seconds
        elif comm == "postgres":
            totals["postgres"] += seconds
        elif pid == redis_pid or (redis_pid is None and comm.startswith("redis-server")):
            totals["redis"] += seconds
    totals["machine"] = machine_busy_seconds()
    return totals


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    delta = {name: after[name] - before[name] for name in before}
    ours = sum(value for name, value in delta.items() if name != "machine")
    delta["other"] = max(0.0, delta["machine"] - ours)
    return delta


class RedisCounter:
    """Commands Redis executed between two snapshots, by command, less our own.

    `INFO commandstats` is server-wide: anything else talking to this Redis is counted too,
    which is why `background_rate` is checked before a run. An INFO is counted once it has
    run, so each snapshot adds one `info` to the next delta: it is subtracted with the other
    commands this class sends (CLIENT LIST, and what `own` is told about).
    """

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self._own: Counter[str] = Counter()
        connection.ping()  # connect (HELLO, CLIENT SETINFO) before anything is counted

    def own(self, command: str, count: int = 1) -> None:
        self._own[command] += count

    def snapshot(self) -> dict[str, int]:
        stats = self.connection.info("commandstats")
        self._own["info"] += 1
        calls = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
        # Our own commands so far ride along, so that a delta can take them out.
        return {**calls, "__own__": dict(self._own)}  # type: ignore[dict-item]

    @staticmethod
    def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
        own_before: dict[str, int] = before["__own__"]  # type: ignore[assignment]
        own_after: dict[str, int] = after["__own__"]  # type: ignore[assignment]
        result: dict[str, int] = {}
        for name, calls in after.items():
            if name == "__own__":
                continue
            ours = own_after.get(name, 0) - own_before.get(name, 0)
            if name == "info":
                # The `before` snapshot's INFO lands in this delta, the `after` one's does not.
                ours = ours - 1
            count = calls - before.get(name, 0) - ours
            if count:
                result[name] = count
        return dict(sorted(result.items(), key=lambda item: -item[1]))

    def blocked_clients(self, db: int) -> int:
        """Clients of this database blocked waiting for a job (an idle RQ worker waits in BLMOVE,
        or BLPOP when it listens on several queues)."""
        self._own["client|list"] += 1
        return sum(
            1
            for client in self.connection.client_list()
            if client.get("db") == str(db)
            and client.get("cmd") in ("blpop", "blmove")
            and "b" in client.get("flags", "")
        )

    def background_rate(self, seconds: float = 1.0) -> float:
        """Commands per second that others send to this Redis while we do nothing."""
        before = self.snapshot()
        time.sleep(seconds)
        after = self.snapshot()
        return sum(self.delta(before, after).values()) / seconds
