"""The Procfile, as an operator runs it (`honcho start -f Procfile`): gunicorn answers through
the web process, the RQ worker process registers and sends what a forward through the web
process queued, the scheduler takes its lease, and SIGTERM stops them all cleanly. On SQLite
and a private redis-server, on free ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests
from rq import Worker

from config import load_settings
from engine import PROJECT_ROOT, create_app
from engine.services.campaigns import seed_demo_campaign
from tests.faults import PrivateRedis, free_port
from tests.helpers import forward_form, runtime_of, wait_until

HTTP_TIMEOUT = 10
STARTUP_TIMEOUT = 60


def _procfile_lines() -> dict[str, str]:
    lines = (PROJECT_ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_the_procfile_runs_the_web_server_the_worker_and_the_scheduler() -> None:
    # The scheduler runs the sweeper and the other housekeeping: no cron.
    assert set(_procfile_lines()) == {"web", "worker", "scheduler"}


@dataclass(frozen=True)
class Stack:
    url: str
    redis: PrivateRedis
    honcho: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def stack(tmp_path: Path, sqlite_template: Path, private_redis: PrivateRedis) -> Iterator[Stack]:
    """`honcho start -f Procfile` from the checkout, with its output in a file; stopped afterwards
    if the test did not stop it."""
    database = tmp_path / "fluister.db"
    database.write_bytes(sqlite_template.read_bytes())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "FLUISTER_ENV": "development",
        "DATABASE_URL": f"sqlite:///{database}",
        "REDIS_URL": private_redis.url,
        "SECRET_KEYS": "procfile-secret-key-0123456789",
        "CONTACT_HASH_KEY": "procfile-contact-hash-key-0123456789",
        "PUBLIC_BASE_URL": url,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "MIN_FORM_SECONDS": "0",
        "HOST": "127.0.0.1",
    }
    app = create_app(load_settings(env, dotenv_path=tmp_path / "no.env"))
    seed_demo_campaign(runtime_of(app).db)
    runtime_of(app).db.dispose()

    log = tmp_path / "honcho.log"
    with log.open("wb") as output:
        honcho = subprocess.Popen(
            [str(Path(sys.executable).parent / "honcho"), "start", "-f", "Procfile", "-p", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Stack(url, private_redis, honcho, log)
    finally:
        if honcho.poll() is None:
            honcho.send_signal(signal.SIGTERM)
            try:
                honcho.wait(timeout=30)
            except subprocess.TimeoutExpired:
                honcho.kill()
                honcho.wait(timeout=10)
        print(log.read_text())  # shown when the test fails


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=HTTP_TIMEOUT).status_code == 200
    except requests.ConnectionError:
        return False


def test_honcho_starts_web_worker_and_scheduler_sends_a_forward_and_stops_cleanly(stack: Stack) -> None:
    url = stack.url
    wait_until(lambda: _healthy(url), what="gunicorn to answer /healthz", timeout=STARTUP_TIMEOUT)
    connection = redis.Redis.from_url(stack.redis.url)
    workers = wait_until(
        lambda: Worker.all(connection=connection) or None, what="the RQ worker to register", timeout=STARTUP_TIMEOUT
    )
    assert [q.name for q in workers[0].queues] == ["fluister:fluister"]  # REDIS_KEY_PREFIX + QUEUE_NAME
    wait_until(lambda: connection.get("fluister:scheduler:lease"), what="the scheduler to take its lease")

    browser = requests.Session()
    landing = browser.get(f"{url}/c/demo", timeout=HTTP_TIMEOUT)
    assert landing.status_code == 200
    form = forward_form(landing.text, sender_name="Anna", friends=["bob@example.com"])
    sent = browser.post(f"{url}/c/demo/forward", data=form, allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert sent.status_code == 303, sent.text

    def delivered() -> list[dict[str, str]] | None:
        outbox = requests.get(f"{url}/dev/outbox.json", timeout=HTTP_TIMEOUT).json()
        return outbox or None

    (message,) = wait_until(delivered, what="the worker to send the forward", timeout=STARTUP_TIMEOUT)
    assert message["to"] == "bob@example.com"
    assert f"{url}/f/" in message["text"]  # its link points at the web process

    stack.honcho.send_signal(signal.SIGTERM)
    stack.honcho.wait(timeout=30)
    output = stack.log.read_text()
    assert "web.1 stopped (rc=0)" in output
    assert "worker.1 stopped (rc=0)" in output
    assert "scheduler.1 stopped (rc=0)" in output
    assert connection.get("fluister:scheduler:lease") is None  # handed over, not left to lapse
    assert "warm shut down" in output  # the worker finished its job in hand, if any, and left
    assert "Shutting down: Master" in output
    assert "Traceback" not in output
    assert Worker.all(connection=connection) == []  # it unregistered: no ghost worker for the next start
    assert not _healthy(url)
