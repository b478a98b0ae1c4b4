"""Alembic environment: migrates the database the settings (or the caller) name."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

import engine.models  # noqa: F401  (registers every model on Base.metadata)
from engine.db import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from config import load_settings

    settings = load_settings()
    # The key that identifies contacts goes with the database it was used on: data migrations
    # (0016, the rehash) need it. A caller naming its own URL hands its key over itself.
    config.attributes.setdefault("contact_hash_key", settings.contact_hash_key)
    return settings.database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = create_engine(_url(), poolclass=pool.NullPool)
    with connectable.connect() as connection:
        # Batch mode lets ALTER TABLE migrations run on SQLite, which cannot alter most things in place.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    connectable.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
