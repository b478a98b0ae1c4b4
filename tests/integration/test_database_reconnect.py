"""A pooled PostgreSQL connection the server closed (a restart, a failover, an administrator)
is replaced at checkout, without a ping per request and without an error for the next one."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from engine.db import Database

pytestmark = pytest.mark.postgres


def test_a_connection_the_server_closed_is_replaced_without_an_error(postgres_url: str) -> None:
    db = Database(postgres_url)
    admin = create_engine(postgres_url)
    try:
        with db.reading() as session:
            pid = session.scalar(text("SELECT pg_backend_pid()"))
        with admin.begin() as connection:
            assert connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        # pg_terminate_backend only signals the backend: wait until it is gone.
        for _ in range(200):
            with admin.begin() as connection:
                alive = connection.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid})
            if not alive:
                break
            time.sleep(0.05)
        with db.reading() as session:
            assert session.scalar(text("SELECT pg_backend_pid()")) != pid
        assert db.engine.pool.checkedin() == 1  # the closed one dropped, one new one pooled
    finally:
        admin.dispose()
        db.dispose()
