"""Metrics across processes as the Procfile runs them: gunicorn with several workers (and
config/gunicorn.py's hook) writing to one PROMETHEUS_MULTIPROC_DIR. Whichever worker answers
a scrape, it shows every worker's counts, and a worker that dies takes none of them along."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from engine import PROJECT_ROOT
from tests.helpers import wait_until
from tests.integration.test_startup import free_port

FORGED = 8
BAD_SIGNATURES = 'fluister_webhook_events_total{provider="twilio",result="bad_signature"}'


@pytest.fixture
def gunicorn(tmp_path: Path, sqlite_template: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    database = tmp_path / "fluister.db"
    database.write_bytes(sqlite_template.read_bytes())
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("FLUISTER_", "DATABASE_", "REDIS_"))}
    environ = {
        **inherited,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{database}",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    command = [sys.executable, "-m", "gunicorn", "-c", "python:config.gunicorn", "--workers=3"]
    command += [f"--bind=127.0.0.1:{port}", "--no-control-socket", "wsgi:app"]
    server = subprocess.Popen(command, cwd=PROJECT_ROOT, env=environ)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), what="gunicorn to answer", timeout=60)
        yield url, server
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=10).status_code == 200
    except requests.RequestException:  # not listening yet, or still booting
        return False


def bad_signatures(url: str) -> float:
    lines = requests.get(f"{url}/metrics", timeout=10).text.splitlines()
    (line,) = [line for line in lines if line.startswith(BAD_SIGNATURES)]
    return float(line.rsplit(" ", 1)[1])


def gunicorn_workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def test_every_gunicorn_worker_counts_toward_one_scrape(gunicorn: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, server = gunicorn
    for _ in range(FORGED):
        # New connections: sync workers take them in turn as each is free.
        forged = requests.post(
            f"{url}/hooks/twilio/status", data={"a": "b"}, headers={"X-Twilio-Signature": "x"}, timeout=10
        )
        assert forged.status_code == 403
    assert [bad_signatures(url) for _ in range(6)] == [FORGED] * 6

    # A worker killed: gunicorn's child_exit hook runs, a new worker starts, the counts stay.
    before = gunicorn_workers(server.pid)
    os.kill(before[0], signal.SIGKILL)
    wait_until(lambda: len(set(gunicorn_workers(server.pid)) - set(before)) == 1, what="a new worker", timeout=30)
    time.sleep(0.5)
    assert [bad_signatures(url) for _ in range(6)] == [FORGED] * 6
