"""The request id, as an operator follows it through the logs: the answer names it, every line
of the request carries it, and so does every line the worker writes for the job that request
enqueued (a worker process of its own, writing JSON lines)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from engine import PROJECT_ROOT, create_app
from engine.logs import prepare_handler
from engine.runtime import Runtime
from engine.services.campaigns import seed_demo_campaign
from tests.helpers import forward_form, runtime_of, settings_environment, statuses

WORKER_TIMEOUT = 120


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the app logs during the test, as JSON lines (beside the runner's own capture)."""
    stream = io.StringIO()
    handler = prepare_handler(logging.StreamHandler(stream), "json")
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def _parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.fixture
def queued_app(database_url: str, redis_url: str, settings_for) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    """The demo campaign on a real Redis queue, drained by nobody but the test's worker."""
    app = create_app(settings_for(database_url, redis_url))
    seed_demo_campaign(runtime_of(app).db)
    yield app
    runtime_of(app).db.dispose()


def _forward(app: Flask, headers: dict[str, str]) -> Any:
    client = app.test_client()
    form = forward_form(client.get("/c/demo").text, friends=["bob@example.com"])
    return client.post("/c/demo/forward", data=form, headers=headers)


def test_the_request_id_travels_into_the_job_and_onto_the_worker_lines(queued_app: Flask) -> None:
    runtime: Runtime = runtime_of(queued_app)
    sent = _forward(queued_app, {"X-Request-ID": "forward-7f3a"})
    assert sent.status_code == 303
    assert sent.headers["X-Request-ID"] == "forward-7f3a"
    (job,) = runtime.queue.queue.get_jobs()
    assert job.meta == {"request_id": "forward-7f3a"}

    worker = subprocess.run(
        [sys.executable, "-m", "workers", "--burst"],
        cwd=PROJECT_ROOT,
        env={**settings_environment(runtime.settings), "LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
        check=False,
    )
    assert worker.returncode == 0, worker.stderr
    lines = [json.loads(line) for line in worker.stderr.splitlines()]  # every line is JSON
    job_lines = [line for line in lines if line["job_id"] == job.id]
    assert job_lines, worker.stderr
    assert {line["request_id"] for line in job_lines} == {"forward-7f3a"}
    # The worker's own lines, between jobs, belong to no request.
    assert any(line["request_id"] is None for line in lines)
    assert "bob@example.com" not in worker.stderr
    assert set(statuses(runtime.db).values()) == {"sent"}


def test_every_line_of_a_request_carries_its_id(queued_app: Flask, json_lines: io.StringIO) -> None:
    # An unsubscribe link that does not verify is logged, with the client as a hash.
    answer = queued_app.test_client().post(
        "/u/not-a-token", headers={"X-Request-ID": "unsub-1"}, environ_base={"REMOTE_ADDR": "203.0.113.9"}
    )
    assert answer.headers["X-Request-ID"] == "unsub-1"
    (line,) = [line for line in _parsed(json_lines) if "invalid token" in line["message"]]
    assert line["request_id"] == "unsub-1"
    assert "203.0.113.9" not in json_lines.getvalue()
    assert line["message"].split()[-1].startswith("ip:")


@pytest.mark.parametrize("incoming", [None, "two words", "bob@example.com", "x" * 200])
def test_a_request_without_a_sane_id_gets_a_new_one(queued_app: Flask, incoming: str | None) -> None:
    client = queued_app.test_client()
    headers = {"X-Request-ID": incoming} if incoming is not None else {}
    first = client.get("/healthz", headers=headers).headers["X-Request-ID"]
    second = client.get("/healthz", headers=headers).headers["X-Request-ID"]
    assert first != second
    assert len(first) == 32 and int(first, 16) >= 0
