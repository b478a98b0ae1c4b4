"""The migrations build the same schema as the models, and go down and up again, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

import engine.models  # noqa: F401
from engine.cli import alembic_config
from engine.db import Base
from tests.conftest import POSTGRES_URL, _ensure_postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrations.db'}"
    request.getfixturevalue("postgres_url")  # fails or skips like the other PostgreSQL tests
    # Named after the test database, so that parallel test runs on their own databases never meet.
    base = make_url(POSTGRES_URL)
    url = base.set(database=f"{base.database}_migrations").render_as_string(hide_password=False)
    _ensure_postgres_database(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    return url


def test_upgrade_matches_the_models_and_downgrade_undoes_it(empty_database: str) -> None:
    config = alembic_config(empty_database)
    alembic_command.upgrade(config, "head")
    engine = create_engine(empty_database)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []

    alembic_command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    alembic_command.upgrade(config, "head")
    assert {"campaigns", "forwards", "messages", "clicks", "suppressions"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_existing_keys_campaigns_and_accounts_keep_what_they_could_do(empty_database: str) -> None:
    """Keys made before scopes keep the scopes their role allowed; everything made before teams
    is in the default team, so that nobody loses a campaign they could change."""
    config = alembic_config(empty_database)
    alembic_command.upgrade(config, "0013")
    engine = create_engine(empty_database)
    with engine.begin() as connection:
        for name, role in (("shop", "marketer"), ("ops", "admin"), ("audit", "compliance")):
            connection.execute(
                text(
                    "INSERT INTO api_keys (name, role, prefix, key_hash, created_at)"
                    " VALUES (:name, :role, 'flk_x', :hash, CURRENT_TIMESTAMP)"
                ),
                {"name": name, "role": role, "hash": name * 8},
            )
        connection.execute(
            text(
                "INSERT INTO users (email, password_hash, role, active, created_at)"
                " VALUES ('m@example.com', 'x', 'marketer', true, CURRENT_TIMESTAMP)"
            )
        )
    alembic_command.upgrade(config, "head")
    with engine.connect() as connection:
        scopes = dict(connection.execute(text("SELECT name, scopes FROM api_keys")).all())
        assert scopes == {
            "shop": "redemptions metrics:read",
            "ops": "redemptions metrics:read",
            "audit": "metrics:read",
        }
        assert connection.execute(text("SELECT team, session_epoch FROM users")).one() == ("default", 0)
        assert set(connection.execute(text("SELECT team FROM api_keys")).scalars()) == {"default"}
    engine.dispose()
