"""Shared fixtures: settings, databases (SQLite and PostgreSQL) and Redis.

Integration tests run on every available database backend. PostgreSQL and Redis
are used when reachable (TEST_DATABASE_URL / TEST_REDIS_URL, or the local
defaults); without them those variants are skipped, except when
REQUIRE_SERVICES=1 (as in CI), where a missing service fails the run instead.

The app in a test runs on a clock that stands still (`clock`), at DEFAULT_TEST_CLOCK unless
FLUISTER_TEST_CLOCK names another moment (`2026-06-07T16:30:00Z`): CI runs the tests that
depend on the time of day (marked `clock`) again at a few such moments.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from alembic import command as alembic_command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config import Settings
from engine.cli import alembic_config
from engine.clock import FixedClock

pytest_plugins = ["tests.stubs.fixtures", "tests.faults"]


def _worker_index() -> int:
    """Which of pytest-xdist's processes this is (0 without it): each gets its own databases."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker.removeprefix("gw") or 0)


def _own_database(url: str) -> str:
    index = _worker_index()
    if index == 0:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{index}").render_as_string(hide_password=False)


def _own_redis_db(url: str) -> str:
    """The Redis database below the given one for each further process (15, 14, 13…)."""
    index = _worker_index()
    head, _, db = url.rpartition("/")
    if index == 0 or not db.isdigit():
        return url
    return f"{head}/{int(db) - index}"


POSTGRES_URL = _own_database(
    os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/fluister_test")
)
REDIS_URL = _own_redis_db(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"

# A Wednesday afternoon in Europe, late morning to midday across the United States: inside
# every quiet-hours window, so a text goes at once unless a test moves the clock.
DEFAULT_TEST_CLOCK = "2026-06-03T15:00:00Z"
TEST_CLOCK_VARIABLE = "FLUISTER_TEST_CLOCK"

TABLES = [
    "api_idempotency_keys",
    "webhook_deliveries",
    "webhook_events",
    "webhook_endpoints",
    "pending_upgrades",
    "reward_events",
    "reward_codes",
    "referrers",
    "rewards",
    "reward_programs",
    "visits",
    "forward_stats",
    "forward_reach",
    "ambassador_stats",
    "metric_cells",
    "daily_forwards",
    "daily_cohorts",
    "rollup_state",
    "redemptions",
    "coupons",
    "opt_out_log",
    "opt_out_log_head",
    "consents",
    "api_keys",
    "users",
    "provider_events",
    "suppressions",
    "outbox_messages",
    "clicks",
    "messages",
    "forwards",
    "campaign_images",
    "campaign_events",
    "campaign_templates",
    "campaigns",
]


def pytest_configure(config: pytest.Config) -> None:
    value = os.environ.get(TEST_CLOCK_VARIABLE)
    if value:
        try:
            FixedClock.parse(value)
        except ValueError as error:
            raise pytest.UsageError(f"{TEST_CLOCK_VARIABLE}={value!r}: {error} (e.g. 2026-06-03T21:30:00Z)") from None


@pytest.fixture
def clock() -> FixedClock:
    """The moment the app in this test lives in; the test may set or advance it."""
    return FixedClock.parse(os.environ.get(TEST_CLOCK_VARIABLE) or DEFAULT_TEST_CLOCK)


def _unavailable(service: str, error: Exception) -> None:
    message = f"{service} is not reachable: {error}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


def _ensure_postgres_database(url: str) -> None:
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database})
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A migrated PostgreSQL database for this test session."""
    try:
        _ensure_postgres_database(POSTGRES_URL)
        engine = create_engine(POSTGRES_URL)
        with engine.begin() as connection:
            # Start from nothing, so that the migrations themselves are what is tested.
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    except Exception as error:
        _unavailable("PostgreSQL", error)
    alembic_command.upgrade(alembic_config(POSTGRES_URL), "head")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    alembic_command.upgrade(alembic_config(f"sqlite:///{path}"), "head")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """An empty, migrated database: a fresh SQLite file, or the PostgreSQL test database truncated."""
    if request.param == "sqlite":
        path = tmp_path / "fluister.db"
        path.write_bytes(sqlite_template.read_bytes())
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A real Redis database, emptied before and after the test."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.RedisError as error:
        _unavailable("Redis", error)
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def settings_for(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Build test settings for a database (and optionally Redis)."""

    def build(database_url: str, redis_url: str | None = None, **overrides: object) -> Settings:
        settings = Settings(
            env="test",
            instance_path=tmp_path / "instance",
            database_url=database_url,
            redis_url=redis_url,
            secret_keys=("test-secret-key-0123456789",),
            contact_hash_key="test-contact-hash-key-0123456789",
            public_base_url="http://fluister.test",
            default_phone_region="NL",
            inprocess_worker=False,
            min_form_seconds=0,
        )
        return settings.with_overrides(**overrides)

    return build
