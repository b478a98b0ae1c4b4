"""Scaling out, shown: two web processes (gunicorn, each on its own port) and three delivery workers
(`python -m workers`, each registered under its own name), all separate processes sharing one
PostgreSQL database and one Redis, as on several machines. Forwards go through both web
processes (the form from one, the POST to the other); every message goes out exactly once, and
the cap on submissions per IP address holds across both web processes, since it lives in Redis
and not in either process. The outbox transport stores what is sent, so sends can be counted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests
from rq import Worker
from sqlalchemy import create_engine, func, select, text, update

from config import load_settings
from engine import PROJECT_ROOT, create_app
from engine.models import Campaign, Message
from engine.services.campaigns import seed_demo_campaign
from tests.conftest import TABLES
from tests.faults import PrivateRedis, free_port
from tests.helpers import forward_form, runtime_of, wait_until

pytestmark = pytest.mark.postgres

WSGI_APP = "engine.startup:wsgi_app()"  # what the Procfile's web process serves
HTTP_TIMEOUT = 10
STARTUP_TIMEOUT = 60
DELIVERY_TIMEOUT = 120
WEB_PROCESSES = 2
WORKER_PROCESSES = 3
SUBMISSIONS_PER_IP = 8  # the cap under test, far below the default, so that it is reached
ATTEMPTS = 12
FRIENDS_PER_FORWARD = 3
SENDERS = ["Anna", "Bram", "Cato", "Daan", "Eva", "Fenna", "Gijs", "Hanna", "Ids", "Jet", "Koen", "Lotte"]


@dataclass
class Cluster:
    web_urls: list[str]
    redis_url: str
    database_url: str
    processes: dict[str, subprocess.Popen[bytes]]
    logs: Path


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _truncated(url: str) -> str:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str, private_redis: PrivateRedis) -> Iterator[Cluster]:
    database_url = _truncated(postgres_url)
    ports = [free_port() for _ in range(WEB_PROCESSES)]
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "FLUISTER_ENV": "development",  # the outbox transport is for development only
        "DATABASE_URL": database_url,
        "REDIS_URL": private_redis.url,
        "SECRET_KEYS": "scale-out-secret-key-0123456789",
        "CONTACT_HASH_KEY": "scale-out-contact-hash-key-0123456789",
        # One public address for every process, as behind a load balancer.
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports[0]}",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "MIN_FORM_SECONDS": "0",
        "EMAIL_TRANSPORT": "outbox",
    }
    app = create_app(load_settings(env, dotenv_path=tmp_path / "no.env"))
    db = runtime_of(app).db
    seed_demo_campaign(db)
    with db.transaction() as session:
        caps = {
            "submissions_per_ip_per_hour": SUBMISSIONS_PER_IP,
            "friends_per_sender_per_day": None,  # every forward comes from the same address
            "challenge_after_submissions_per_ip_per_hour": None,  # no proof of work to solve here
        }
        session.execute(update(Campaign).where(Campaign.slug == "demo").values(caps=caps))
    db.dispose()

    logs = tmp_path / "logs"
    logs.mkdir()
    processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, command: list[str]) -> None:
        with (logs / f"{name}.log").open("wb") as output:
            processes[name] = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )

    try:
        for number, port in enumerate(ports, start=1):
            bind = f"127.0.0.1:{port}"
            start(f"web{number}", [_bin("gunicorn"), "--preload", "--bind", bind, "--no-control-socket", WSGI_APP])
        for number in range(1, WORKER_PROCESSES + 1):
            start(f"worker{number}", [sys.executable, "-m", "workers"])
        yield Cluster([f"http://127.0.0.1:{port}" for port in ports], private_redis.url, database_url, processes, logs)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in processes.items():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            print(f"--- {name}\n{(logs / f'{name}.log').read_text()}")  # shown when the test fails


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=HTTP_TIMEOUT).status_code == 200
    except requests.ConnectionError:
        return False


def _forward(page_from: str, post_to: str, sender: str, friends: list[str]) -> int:
    """A browser loads the form from one web process and its POST lands on the other."""
    browser = requests.Session()
    landing = browser.get(f"{page_from}/c/demo", timeout=HTTP_TIMEOUT)
    assert landing.status_code == 200, landing.text
    form = forward_form(landing.text, sender_name=sender, friends=friends)
    answer = browser.post(f"{post_to}/c/demo/forward", data=form, allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert answer.status_code in (303, 429), answer.text
    return answer.status_code


def test_two_web_processes_and_three_workers_send_each_message_once_within_the_caps(cluster: Cluster) -> None:
    for url in cluster.web_urls:
        wait_until(lambda url=url: _healthy(url), what=f"gunicorn at {url}", timeout=STARTUP_TIMEOUT)
    connection = redis.Redis.from_url(cluster.redis_url)
    workers = wait_until(
        lambda: found if len(found := Worker.all(connection=connection)) == WORKER_PROCESSES else None,
        what=f"{WORKER_PROCESSES} workers to register",
        timeout=STARTUP_TIMEOUT,
    )
    assert len({worker.name for worker in workers}) == WORKER_PROCESSES  # three workers, not one thrice

    web_a, web_b = cluster.web_urls
    accepted: list[str] = []
    refused: list[str] = []
    answered_by = Counter[str]()
    for attempt in range(ATTEMPTS):
        page_from, post_to = (web_a, web_b) if attempt % 2 == 0 else (web_b, web_a)
        friends = [f"friend-{attempt}-{n}@example.com" for n in range(FRIENDS_PER_FORWARD)]
        status = _forward(page_from, post_to, SENDERS[attempt], friends)
        (accepted if status == 303 else refused).extend(friends)
        answered_by[f"{post_to} {status}"] += 1

    # One cap across both processes: each alone would have let all 12 through (8 a process).
    assert len(accepted) == SUBMISSIONS_PER_IP * FRIENDS_PER_FORWARD
    assert len(refused) == (ATTEMPTS - SUBMISSIONS_PER_IP) * FRIENDS_PER_FORWARD
    assert answered_by[f"{web_a} 303"] and answered_by[f"{web_b} 303"]  # both took forwards

    def all_settled() -> bool:
        engine = create_engine(cluster.database_url)
        try:
            with engine.connect() as db:
                waiting = db.scalar(select(func.count()).select_from(Message).where(Message.status != "sent"))
                total = db.scalar(select(func.count()).select_from(Message))
        finally:
            engine.dispose()
        return total == len(accepted) and waiting == 0

    wait_until(all_settled, what="every accepted message to be sent", timeout=DELIVERY_TIMEOUT)
    outbox = requests.get(f"{web_b}/dev/outbox.json", params={"limit": 1000}, timeout=HTTP_TIMEOUT).json()
    sent_to = Counter(message["to"] for message in outbox)
    assert sent_to == Counter(accepted)  # each accepted friend exactly once, no refused one ever
    assert all(cluster.processes[name].poll() is None for name in cluster.processes)  # nobody crashed
