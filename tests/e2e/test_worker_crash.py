"""A worker killed with SIGKILL in the middle of a batch, and Redis restarted empty: afterwards
every message has been sent exactly once or is marked `unknown` for review. None is lost,
none is sent twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from engine import PROJECT_ROOT, create_app
from engine.models import Message
from tests.faults import PrivateRedis
from tests.helpers import make_campaign, runtime_of, settings_environment, submission, wait_until
from tests.stubs.sendgrid import SendGridStub


def test_killed_worker_and_restarted_redis_lose_nothing_and_send_nothing_twice(
    database_url: str, settings_for, sendgrid_stub: SendGridStub, private_redis: PrivateRedis
) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(
        database_url,
        private_redis.url,
        email_transport="sendgrid",
        sendgrid_api_key=sendgrid_stub.api_key,
        sendgrid_api_host=sendgrid_stub.url,
        dispatch_batch_size=20,
        sending_stale_after_seconds=1,
    )
    app = create_app(settings)
    runtime = runtime_of(app)
    make_campaign(runtime.db)
    for n in range(30):
        friends = [f"f{n}-{i}@example.com" for i in range(5)]
        runtime.forwarding.submit("spring", submission(*friends, sender_name=f"Sender {n}"))
    total = 150

    # Slow answers keep the worker in the middle of a batch when it is killed.
    sendgrid_stub.latency = 0.3
    worker = subprocess.Popen(
        [sys.executable, "-m", "workers"],
        cwd=PROJECT_ROOT,
        env=settings_environment(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: len(sendgrid_stub.deliveries()) >= 40, what="the worker to send a few batches")
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    private_redis.kill()
    private_redis.start()  # empty: the jobs and the dispatch flag are gone

    time.sleep(1.1)  # past SENDING_STALE_AFTER_SECONDS
    sendgrid_stub.latency = 0
    sweep = runtime.delivery.sweep()
    assert sweep.requeued > 0  # the queued messages were found, though Redis forgot them
    subprocess.run(
        [sys.executable, "-m", "workers", "--burst"],
        cwd=PROJECT_ROOT,
        env=settings_environment(settings),
        check=True,
        capture_output=True,
        timeout=120,
    )

    with runtime.db.reading() as session:
        messages = {m.public_id: m.status for m in session.query(Message)}
    references = [d.custom_args["fluister_message"] for d in sendgrid_stub.deliveries()]
    assert len(messages) == total
    assert len(references) == len(set(references)), "a message reached the provider twice"
    assert set(messages.values()) <= {"sent", "unknown"}, "a message was left queued or sending"
    sent = {public_id for public_id, status in messages.items() if status == "sent"}
    unknown = {public_id for public_id, status in messages.items() if status == "unknown"}
    assert sent <= set(references), "a message recorded as sent never reached the provider"
    assert set(references) <= sent | unknown
    # The batch in flight when the worker died went out, but nobody recorded it: it is under review.
    assert unknown
    runtime.db.dispose()
