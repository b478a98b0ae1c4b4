"""A worker through a Redis outage, in real time: how many log lines the outage costs, and how
long after Redis is back the worker takes a job again.

    .venv/bin/python -m bench.outage [--down SECONDS]

It starts a redis-server of its own on a free port (no persistence), a worker process
(`python -m workers`, default settings: one outage line a minute) on a throwaway SQLite
database, stops Redis for `--down` seconds (150 by default), starts it again empty, enqueues a
dispatch job and times how long the worker takes to pick it up. The tests check the same
behaviour with an injected interval and no clock (tests/e2e/test_worker_outage.py); this is
where the minute is real.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from bench.common import REPO_ROOT, flask_command


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_redis(port: int, directory: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            if client.ping():
                return server
        except redis.RedisError:
            time.sleep(0.1)
    raise RuntimeError("redis-server did not start")


def _wait_for(check, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"gave up waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--down", type=float, default=150.0, help="seconds Redis stays stopped")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed")

    work = Path(tempfile.mkdtemp(prefix="fluister-outage-"))
    port = _free_port()
    env = {
        **os.environ,
        "FLUISTER_ENV": "development",
        "DATABASE_URL": f"sqlite:///{work / 'fluister.db'}",
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "INSTANCE_PATH": str(work / "instance"),
        "SECRET_KEYS": "outage-bench-secret-key-0123456789",
        "CONTACT_HASH_KEY": "outage-bench-contact-hash-key-0123",
    }
    env.pop("OUTAGE_LOG_EVERY_SECONDS", None)
    flask_command(env, "db", "upgrade")
    server = _start_redis(port, work)
    log_path = work / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "workers"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_for(lambda: "Listening on" in log_path.read_text(), 60, "the worker to listen")
        server.send_signal(signal.SIGKILL)
        server.wait()
        print(f"Redis stopped for {args.down:.0f} s ...", flush=True)
        time.sleep(args.down)
        server = _start_redis(port, work)
        back = time.monotonic()
        client = redis.Redis(port=port)
        # What a forward would do: ask for a dispatch job (the queue as the default settings name it).
        from rq import Queue
        from rq.serializers import JSONSerializer

        queue = Queue("fluister:fluister", connection=client, serializer=JSONSerializer)
        queue.enqueue("workers.jobs.dispatch", job_id="fluister-bench-after-outage")
        _wait_for(lambda: "Successfully completed" in log_path.read_text(), 120, "the worker to run the job")
        resumed = time.monotonic() - back
        alive = worker.poll() is None
        threads = len(os.listdir(f"/proc/{worker.pid}/task")) if Path("/proc").exists() else "?"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        server.terminate()
        server.wait(timeout=10)

    lines = log_path.read_text().splitlines()
    outage = [line for line in lines if "engine.resilience" in line or "cannot be reached" in line]
    print(f"Redis down: {args.down:.0f} s; worker still running afterwards: {alive}")
    print(f"outage log lines: {len(outage)} (one at the start, one a minute, one when back)")
    for line in outage:
        print(f"  {line[:160]}")
    print(f"a job enqueued once Redis was back was done after {resumed:.1f} s")
    print(f"threads of the worker process at the end: {threads}")
    print(f"tracebacks in the worker's log: {sum('Traceback' in line for line in lines)}")
    if os.environ.get("BENCH_SHOW_LOG"):
        print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
