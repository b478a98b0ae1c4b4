"""The migrations build the same schema as the models, and go down and up again, on both databases."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

import engine.models  # noqa: F401
from engine import create_app
from engine.cli import alembic_config
from engine.contacts import ContactHasher, parse_contact
from engine.db import Base
from tests.conftest import POSTGRES_URL, _ensure_postgres_database
from tests.helpers import runtime_of


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


def test_the_delivery_migration_carries_automatic_pauses_and_messages_in_flight(empty_database: str) -> None:
    config = alembic_config(empty_database)
    alembic_command.upgrade(config, "0013")
    engine = create_engine(empty_database)
    stamp = "2026-12-01 10:00:00+00:00"
    campaign = (
        "INSERT INTO campaigns (id, slug, name, status, status_reason, offer_title, offer_description, brand_name,"
        " sender_email, postal_address, support_contact, channels, policy_name, policy_settings,"
        " max_friends_per_submission, created_at, updated_at) VALUES (:id, :slug, 'n', :status, :reason, 'o', '',"
        " 'b', 's@example.com', 'a', '', '[\"email\"]', 'us', '{}', 5, :at, :at)"
    )
    with engine.begin() as connection:
        for id_, status, reason in [
            (1, "paused", "paused automatically: 12 of its last 20 messages failed"),
            (2, "paused", "checking the copy"),
            (3, "active", None),
        ]:
            connection.execute(
                text(campaign), {"id": id_, "slug": f"c{id_}", "status": status, "reason": reason, "at": stamp}
            )
        connection.execute(
            text(
                "INSERT INTO forwards (id, public_id, campaign_id, generation, channel, sender_name,"
                " recipient_contact_hash, policy_name, policy_version, created_at)"
                " VALUES (1, 'f1', 3, 1, 'email', 'Anna', :hash, 'us', 1, :at)"
            ),
            {"hash": "h" * 64, "at": stamp},
        )
        connection.execute(
            text(
                "INSERT INTO messages (id, public_id, forward_id, channel, status, attempts, policy_name,"
                " policy_version, created_at, updated_at, claimed_at)"
                " VALUES (1, 'm1', 1, 'email', 'sending', 1, 'us', 1, :at, :at, :at)"
            ),
            {"at": stamp},
        )
    alembic_command.upgrade(config, "0015")
    with engine.connect() as connection:
        paused = dict(connection.execute(text("SELECT id, paused_automatically FROM campaigns ORDER BY id")).all())
        handed = connection.execute(text("SELECT handed_at IS NOT NULL FROM messages")).scalar_one()
    # The send loop's pause keeps the page up from now on; a person's pause does not.
    assert {key: bool(value) for key, value in paused.items()} == {1: True, 2: False, 3: False}
    # A message an older worker left `sending` may have gone: the sweeper still calls it unknown.
    assert handed
    engine.dispose()


def test_unknown_messages_from_before_hand_overs_were_recorded_are_never_requeued_as_unsent(
    empty_database: str,
) -> None:
    config = alembic_config(empty_database)
    alembic_command.upgrade(config, "0015")
    engine = create_engine(empty_database)
    stamp = "2026-12-01 10:00:00+00:00"
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO campaigns (id, slug, name, status, offer_title, offer_description, brand_name,"
                " sender_email, postal_address, support_contact, channels, policy_name, policy_settings,"
                " max_friends_per_submission, created_at, updated_at) VALUES (1, 'c1', 'n', 'active', 'o', '',"
                " 'b', 's@example.com', 'a', '', '[\"email\"]', 'us', '{}', 5, :at, :at)"
            ),
            {"at": stamp},
        )
        for id_ in (1, 2):
            connection.execute(
                text(
                    "INSERT INTO forwards (id, public_id, campaign_id, generation, channel, sender_name,"
                    " recipient_contact_hash, policy_name, policy_version, created_at)"
                    " VALUES (:id, :public_id, 1, 1, 'email', 'Anna', :hash, 'us', 1, :at)"
                ),
                {"id": id_, "public_id": f"f{id_}", "hash": str(id_) * 64, "at": stamp},
            )
        for id_, status in ((1, "unknown"), (2, "queued")):
            connection.execute(
                text(
                    "INSERT INTO messages (id, public_id, forward_id, channel, status, attempts, policy_name,"
                    " policy_version, created_at, updated_at, claimed_at)"
                    " VALUES (:id, :public_id, :id, 'email', :status, 1, 'us', 1, :at, :at, :at)"
                ),
                {"id": id_, "public_id": f"m{id_}", "status": status, "at": stamp},
            )
    alembic_command.upgrade(config, "head")
    with engine.connect() as connection:
        handed = dict(connection.execute(text("SELECT id, handed_at IS NOT NULL FROM messages")).all())
    # An old `unknown` one may have reached its provider: `requeue --never-handed-over` leaves it.
    assert {key: bool(value) for key, value in handed.items()} == {1: True, 2: False}
    engine.dispose()


CONTACT_HASH_KEY = "migration-contact-hash-key-0123"


def _legacy_rows(engine: Engine) -> tuple[str, str]:
    """What a version before canonical identities kept for a friend typed as
    "V.ictim+x@gmail.com" who opted out: every hash the address lowercased."""
    old = hmac.new(CONTACT_HASH_KEY.encode(), b"email:v.ictim+x@gmail.com", hashlib.sha256).hexdigest()
    new = ContactHasher(CONTACT_HASH_KEY).hash(parse_contact("victim@gmail.com", "NL"))
    stamp = "2026-12-01 10:00:00+00:00"
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO campaigns (id, slug, name, status, offer_title, offer_description, brand_name,"
                " sender_email, postal_address, support_contact, channels, policy_name, policy_settings,"
                " max_friends_per_submission, created_at, updated_at) VALUES (1, 'c1', 'n', 'active', 'o', '',"
                " 'b', 's@example.com', 'a', '', '[\"email\"]', 'us', '{}', 5, :at, :at)"
            ),
            {"at": stamp},
        )
        connection.execute(
            text(
                "INSERT INTO forwards (id, public_id, campaign_id, generation, channel, sender_name,"
                " recipient_contact_hash, recipient_contact, policy_name, policy_version, created_at)"
                " VALUES (1, 'f1', 1, 1, 'email', 'Anna', :hash, 'V.ictim+x@gmail.com', 'us', 1, :at)"
            ),
            {"hash": old, "at": stamp},
        )
        connection.execute(
            text(
                "INSERT INTO suppressions (contact_hash, channel, scope, scope_key, source, created_at)"
                " VALUES (:hash, 'email', 'global', 'global', 'link', :at)"
            ),
            {"hash": old, "at": stamp},
        )
        connection.execute(
            text(
                "INSERT INTO consents (contact_hash, channel, source, evidence, given_at)"
                " VALUES (:hash, 'email', 'import', '{}', :at)"
            ),
            {"hash": old, "at": stamp},
        )
    return old, new


def _hashes(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return {
            *connection.execute(text("SELECT recipient_contact_hash FROM forwards")).scalars(),
            *connection.execute(text("SELECT contact_hash FROM suppressions")).scalars(),
            *connection.execute(text("SELECT contact_hash FROM consents")).scalars(),
        }


def test_the_upgrade_rehashes_contacts_kept_before_canonical_identities(empty_database: str) -> None:
    alembic_command.upgrade(alembic_config(empty_database), "0015")
    engine = create_engine(empty_database)
    _, new = _legacy_rows(engine)
    # As `flask db upgrade` runs it: with the app's contact hash key.
    alembic_command.upgrade(alembic_config(empty_database, CONTACT_HASH_KEY), "head")
    assert _hashes(engine) == {new}
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM pending_upgrades")).scalar_one() == 0
    engine.dispose()


def test_an_upgrade_without_the_key_leaves_the_rehash_owed(empty_database: str) -> None:
    alembic_command.upgrade(alembic_config(empty_database), "0015")
    engine = create_engine(empty_database)
    old, _ = _legacy_rows(engine)
    alembic_command.upgrade(alembic_config(empty_database), "head")
    assert _hashes(engine) == {old}
    with engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM pending_upgrades")).scalars().all() == ["contacts rehash"]
    engine.dispose()


def test_flask_db_upgrade_hands_the_apps_key_to_the_rehash(empty_database: str, settings_for) -> None:  # type: ignore[no-untyped-def]
    alembic_command.upgrade(alembic_config(empty_database), "0015")
    engine = create_engine(empty_database)
    settings = settings_for(empty_database, contact_hash_key=CONTACT_HASH_KEY)
    _, new = _legacy_rows(engine)
    app = create_app(settings)
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    runtime_of(app).db.dispose()
    assert result.exit_code == 0, result.output
    assert _hashes(engine) == {new}
    engine.dispose()


def test_a_sql_script_of_the_upgrade_leaves_the_rehash_owed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Written out for a DBA to run, the migration cannot read the rows it would rehash.
    alembic_command.upgrade(alembic_config(f"sqlite:///{tmp_path / 'never.db'}"), "0015:head", sql=True)
    assert "INSERT INTO pending_upgrades (name, created_at) VALUES ('contacts rehash'" in capsys.readouterr().out
