"""A worker rides out a Redis outage: Redis is killed while the worker is in the middle of a job,
and comes back empty. The worker is still running
afterwards, every message went out exactly once, and the outage cost one log line, not a
traceback per retry."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from engine import PROJECT_ROOT, create_app
from engine.models import Message
from tests.faults import PrivateRedis
from tests.helpers import make_campaign, runtime_of, settings_environment, submission, wait_until
from tests.stubs.sendgrid import SendGridStub


def _forwards(runtime, first: int, count: int) -> None:  # type: ignore[no-untyped-def]
    for n in range(first, first + count):
        friends = [f"f{n}-{i}@example.com" for i in range(5)]
        runtime.forwarding.submit("spring", submission(*friends, sender_name=f"Sender {_letters(n)}"))


def _letters(n: int) -> str:
    return "".join(chr(ord("a") + int(d)) for d in str(n)).capitalize()  # names take no digits


def test_a_worker_rides_out_a_redis_outage_and_sends_everything_once(
    database_url: str, settings_for, sendgrid_stub: SendGridStub, private_redis: PrivateRedis, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(
        database_url,
        private_redis.url,
        email_transport="sendgrid",
        sendgrid_api_key=sendgrid_stub.api_key,
        sendgrid_api_host=sendgrid_stub.url,
        dispatch_batch_size=20,
    )
    app = create_app(settings)
    runtime = runtime_of(app)
    make_campaign(runtime.db)
    _forwards(runtime, 0, 30)

    # Slow answers keep the worker in the middle of its job when Redis goes. An interval of an
    # hour between outage lines: the whole outage must then cost exactly one line.
    sendgrid_stub.latency = 0.2
    log_file = tmp_path / "worker.log"
    with log_file.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "workers"],
            cwd=PROJECT_ROOT,
            env={**settings_environment(settings), "OUTAGE_LOG_EVERY_SECONDS": "3600"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: len(sendgrid_stub.deliveries()) >= 20, what="the worker to send a few batches")
        private_redis.kill()
        wait_until(lambda: "Redis cannot be reached" in log_file.read_text(), what="the worker to notice")
        time.sleep(1)  # a few of its tries fail
        assert worker.poll() is None, "the worker exited when Redis went away"
        private_redis.start()  # empty: the job in hand and the dispatch flag are gone

        total = 30 * 5
        wait_until(lambda: len(sendgrid_stub.deliveries()) >= total, what="every message to go out", timeout=60)
        # The job in hand finished, and the worker went back to the queue, on the new Redis.
        wait_until(lambda: "Redis is back" in log_file.read_text(), what="the worker to find Redis again")
        # It is listening: a forward made now is sent through a new job.
        sendgrid_stub.latency = 0
        _forwards(runtime, 40, 1)
        wait_until(lambda: len(sendgrid_stub.deliveries()) >= total + 5, what="a forward after the outage")
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    with runtime.db.reading() as session:
        statuses = {m.public_id: m.status for m in session.query(Message)}
    references = [d.custom_args["fluister_message"] for d in sendgrid_stub.deliveries()]
    assert len(statuses) == total + 5
    assert len(references) == len(set(references)), "a message reached the provider twice"
    assert set(references) == set(statuses) and set(statuses.values()) == {"sent"}

    lines = log_file.read_text().splitlines()
    assert len([line for line in lines if "Redis cannot be reached" in line]) == 1, lines
    assert len([line for line in lines if "Redis is back" in line]) == 1, "\n".join(lines)
    assert not [line for line in lines if "Traceback" in line or "quitting" in line], lines
    runtime.db.dispose()


def test_a_worker_waiting_for_redis_stops_cleanly_on_sigterm(
    database_url: str, settings_for, private_redis: PrivateRedis, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(database_url, private_redis.url)
    log_file = tmp_path / "worker.log"
    with log_file.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "workers"],
            cwd=PROJECT_ROOT,
            env=settings_environment(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "Listening on" in log_file.read_text(), what="the worker to listen")
        private_redis.kill()
        wait_until(lambda: "Redis cannot be reached" in log_file.read_text(), what="the worker to notice")
        worker.terminate()
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
    assert "Traceback" not in log_file.read_text()
