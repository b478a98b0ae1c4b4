"""`GET /readyz`: 200 only when the database answers at this release's schema and Redis answers;
otherwise a 503 problem+json naming each missing part, without a password or a traceback.
`/healthz` stays a liveness check that asks nothing. The missing services are addresses where
nothing listens, and a database of this test's own one migration behind (the shared servers
are never stopped)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command as alembic_command
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from engine import create_app
from engine.cli import alembic_config
from engine.readiness import schema_heads
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.conftest import POSTGRES_URL, _ensure_postgres_database, _unavailable
from tests.helpers import runtime_of

PASSWORD = "hunter2-secret"
NOBODY_LISTENS_POSTGRES = f"postgresql+psycopg://fluister:{PASSWORD}@127.0.0.1:9/fluister?connect_timeout=2"
NOBODY_LISTENS_REDIS = f"redis://:{PASSWORD}@127.0.0.1:9/0"


def previous_revision() -> str:
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = scripts.get_revision(scripts.get_current_head())
    assert isinstance(head.down_revision, str), "the newest migration should follow exactly one other"
    return head.down_revision


def migrated_to(revision: str, backend: str, tmp_path: Path) -> str:
    """A database of this test's own, migrated up to `revision` only."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'behind.db'}"
    else:
        target = make_url(POSTGRES_URL)
        url = target.set(database=f"{target.database}_behind").render_as_string(hide_password=False)
        try:
            _ensure_postgres_database(url)
            engine = create_engine(url)
            with engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            engine.dispose()
        except Exception as error:
            _unavailable("PostgreSQL", error)
    alembic_command.upgrade(alembic_config(url), revision)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def behind_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return migrated_to(previous_revision(), request.param, tmp_path)


def app_for(settings) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    transport = MemoryTransport()
    app = create_app(settings, transports=Transports(email=transport, sms=transport))
    yield app
    runtime_of(app).db.dispose()


def problem(app: Flask) -> dict:
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert PASSWORD not in response.text
    assert "Traceback" not in response.text
    body = response.json
    assert (body["status"], body["title"]) == (503, "Not ready")
    return body


def missing_parts(body: dict) -> list[str]:
    return [part["part"] for part in body["missing"]]


def test_ready_when_the_database_is_at_the_newest_migration_and_redis_answers(
    database_url: str, redis_url: str, settings_for
) -> None:  # type: ignore[no-untyped-def]
    for app in app_for(settings_for(database_url, redis_url)):
        response = app.test_client().get("/readyz")
        assert response.status_code == 200, response.text
        assert response.text == "ready\n"


def test_without_redis_url_the_embedded_queue_needs_no_redis(database_url: str, settings_for) -> None:  # type: ignore[no-untyped-def]
    for app in app_for(settings_for(database_url)):
        assert app.test_client().get("/readyz").status_code == 200


def test_a_database_that_refuses_is_named_without_its_password(redis_url: str, settings_for) -> None:  # type: ignore[no-untyped-def]
    for app in app_for(settings_for(NOBODY_LISTENS_POSTGRES, redis_url)):
        body = problem(app)
        assert missing_parts(body) == ["database"]
        assert "cannot be reached" in body["detail"]
        assert "127.0.0.1:9" in body["detail"]
        # Alive all the same: a liveness probe must not restart a process waiting for its database.
        assert app.test_client().get("/healthz").status_code == 200


def test_a_redis_that_does_not_answer_is_named_without_its_password(database_url: str, settings_for) -> None:  # type: ignore[no-untyped-def]
    for app in app_for(settings_for(database_url, NOBODY_LISTENS_REDIS)):
        body = problem(app)
        assert missing_parts(body) == ["redis"]
        assert "Redis at redis://:***@127.0.0.1:9/0 cannot be reached" in body["detail"]


def test_each_missing_part_is_named(settings_for) -> None:  # type: ignore[no-untyped-def]
    for app in app_for(settings_for(NOBODY_LISTENS_POSTGRES, NOBODY_LISTENS_REDIS)):
        assert missing_parts(problem(app)) == ["database", "redis"]


def test_a_schema_one_migration_behind_is_not_ready_and_says_to_upgrade(
    behind_url: str, redis_url: str, settings_for
) -> None:  # type: ignore[no-untyped-def]
    (head,) = schema_heads()
    for app in app_for(settings_for(behind_url, redis_url)):
        body = problem(app)
        assert missing_parts(body) == ["schema"]
        assert body["detail"] == (
            f"the database schema is at {previous_revision()}, this release needs {head}: "
            "run `flask --app wsgi db upgrade`"
        )
        alembic_command.upgrade(alembic_config(behind_url), "head")
        assert app.test_client().get("/readyz").status_code == 200


def test_an_empty_database_is_not_ready(tmp_path: Path, settings_for) -> None:  # type: ignore[no-untyped-def]
    for app in app_for(settings_for(f"sqlite:///{tmp_path / 'empty.db'}")):
        body = problem(app)
        assert missing_parts(body) == ["schema"]
        assert body["detail"].startswith("the database has no schema yet")


def test_a_schema_from_a_newer_release_says_so(database_url: str, settings_for) -> None:  # type: ignore[no-untyped-def]
    for app in app_for(settings_for(database_url)):
        with runtime_of(app).db.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
        try:
            body = problem(app)
            assert missing_parts(body) == ["schema"]
            assert "9999_from_the_future, which this release does not know" in body["detail"]
        finally:
            (head,) = schema_heads()
            with runtime_of(app).db.engine.begin() as connection:
                connection.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
