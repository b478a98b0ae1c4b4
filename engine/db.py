"""Database engine, sessions and the unit-of-work helper.

Everything here is built by `Database(url)`; importing the module connects to nothing.
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any, ClassVar

from psycopg import Error as PsycopgError
from sqlalchemy import CursorResult, DateTime, Engine, Executable, MetaData, Table, create_engine, event, inspect, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so that Alembic migrations name things the same on
# SQLite and PostgreSQL and can drop them later.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Every model maps one Table (no model maps a join or a select), so its __table__ is typed
    # as one: insert(), update() and .c[...] then type-check on it.
    __table__: ClassVar[Table]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always handed back timezone-aware.

    SQLite has no time zones; without this, values read back would be naive on
    SQLite and aware on PostgreSQL, and comparisons would differ by backend.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine: Engine = _make_engine(url, echo=echo)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        _track_snapshot_changes(self.sessions)
        # Reads need no write lock: on SQLite they begin DEFERRED and never hold up a writer.
        self._reader_sessions = sessionmaker(self.engine.execution_options(fluister_read_only=True))

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A unit of work: commit on success, roll back on any error, always close."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only; nothing is committed.

        Closing (not rolling back) keeps what was loaded usable after the block.
        """
        session = self._reader_sessions()
        try:
            yield session
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


# The tables a campaign snapshot is read from (engine.services.snapshots), each with the
# columns whose changes leave it as it was: a change to any other column, or a row added or
# deleted, moves the snapshot version on in the same transaction.
SNAPSHOT_TABLES: dict[str, frozenset[str]] = {
    "campaigns": frozenset(),
    "campaign_templates": frozenset(),
    # The card image a landing page's link preview names (engine.services.share_cards).
    "campaign_images": frozenset(),
    # The contest a landing page announces (engine.services.contests); its result is not shown there.
    "contests": frozenset({"finalised_at"}),
    # Its A/B variants: their weights, words and whether they take new visitors.
    "campaign_variants": frozenset(),
    # An endpoint's failure counters move with every failed delivery; who hears what does not.
    "webhook_endpoints": frozenset(
        {"failing_since", "failed_deliveries", "disabled_reason", "disabled_at", "url", "secret", "description"}
    ),
}
SNAPSHOT_VERSION_BUMP = text("UPDATE campaign_snapshot_version SET version = version + 1")


def _track_snapshot_changes(sessions: sessionmaker[Session]) -> None:
    """Every session of this factory moves the snapshot version on when it changes what a
    snapshot holds: through the unit of work (after its flush) or a bulk UPDATE, DELETE or
    INSERT statement (before it runs). Both in the writer's own transaction, so the number
    moves exactly when the change is committed, whichever process reads it."""
    event.listen(sessions, "after_flush", _bump_after_flush)
    event.listen(sessions, "do_orm_execute", _bump_before_bulk_change)


def _bump_after_flush(session: Session, _flush_context: Any) -> None:
    if any(_changes_snapshot(instance, whole_row=True) for instance in chain(session.new, session.deleted)) or any(
        _changes_snapshot(instance, whole_row=False) for instance in session.dirty
    ):
        session.execute(SNAPSHOT_VERSION_BUMP)


def _changes_snapshot(instance: object, *, whole_row: bool) -> bool:
    table = getattr(type(instance), "__tablename__", None)
    if table not in SNAPSHOT_TABLES:
        return False
    if whole_row:
        return True
    unchanged = SNAPSHOT_TABLES[table]
    return any(attr.key not in unchanged and attr.history.has_changes() for attr in inspect(instance).attrs)


def _bump_before_bulk_change(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in SNAPSHOT_TABLES:
        state.session.execute(SNAPSHOT_VERSION_BUMP)


def _make_engine(url: str, *, echo: bool) -> Engine:
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_immediate_on_sqlite)
        return engine
    # No ping before each checkout (a round trip per request): a connection the server closed
    # (a restart, a failover, an idle timeout) has its end of file waiting on the socket, which
    # the checkout looks for without asking the server; the pool then opens a new one. A
    # connection lost without a word (a network cut) fails its request (a 503), and the error
    # invalidates the pool, so the next request reconnects. pool_recycle retires connections
    # before a proxy or firewall would drop them silently.
    engine = create_engine(url, echo=echo, pool_size=10, max_overflow=10, pool_recycle=POOL_RECYCLE_SECONDS)
    event.listen(engine, "checkout", _refuse_closed_connection)
    return engine


# Shorter than the idle timeouts of the usual proxies and firewalls (PgBouncer's server_idle_timeout
# is 10 minutes, many cloud NATs drop flows after 5).
POOL_RECYCLE_SECONDS = 240


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection whose socket is readable while no query is running was closed by
    the server (or holds its goodbye, such as "terminating connection due to administrator
    command"): DisconnectionError makes the pool drop it and check out another."""
    try:
        poller = select.poll()
        poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
        closed = bool(poller.poll(0))
    except (OSError, ValueError, PsycopgError) as error:  # a connection already closed has no socket
        raise DisconnectionError(str(error)) from error
    if closed:
        raise DisconnectionError("the server closed this pooled connection")


def _configure_sqlite(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # Let SQLAlchemy manage transactions (see _begin_immediate_on_sqlite), use WAL so
    # the web process and the worker thread can read while one writes, and enforce
    # foreign keys, which SQLite leaves off by default.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_immediate_on_sqlite(connection) -> None:  # type: ignore[no-untyped-def]
    # A writer's BEGIN IMMEDIATE takes the write lock up front, so that two writers queue on
    # busy_timeout instead of failing with "database is locked" on upgrade. Readers begin
    # DEFERRED: with WAL they read a snapshot while a writer writes.
    read_only = connection.get_execution_options().get("fluister_read_only", False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def rows_changed(session: Session, statement: Executable) -> int:
    """Run an UPDATE or DELETE and say how many rows it changed."""
    result = session.execute(statement)
    # Session.execute is typed to return a plain Result; for an UPDATE or DELETE it is a
    # CursorResult, the one that counts the rows.
    if not isinstance(result, CursorResult):
        raise TypeError(f"{type(result).__name__} does not count changed rows")
    return result.rowcount
