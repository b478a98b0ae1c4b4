"""Migrations expand, then contract a release later (docs/operations.md, *Deploy and upgrade*).

During a rolling deploy the new release's `db upgrade` runs while the previous release still
serves and sends. That only works when a migration keeps everything the previous release's code
reads and writes: so each migration, checked here on PostgreSQL against the schema just before
it, may add tables and columns, but may not drop or rename a table or a column, change a
column's type, or make a column NOT NULL; and a column it adds to an existing table is nullable
or has a server default, since the previous release's INSERTs do not name it. Dropping what the
code no longer uses is a later migration, once no release that uses it is running: such a
contraction is listed in CONTRACTIONS below, with the release that stopped using it.

This checks the schema, not the previous release's code itself: a change of meaning (a column
the new code fills differently) is for the review, and for the migration's docstring.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from alembic import command as alembic_command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.engine import make_url

from engine.cli import alembic_config
from tests.conftest import POSTGRES_URL, _ensure_postgres_database, _unavailable

pytestmark = pytest.mark.postgres

# (revision, what it contracts): a drop or change of something an older release used, made
# once no running release uses it any more. Written here by the one who writes the migration.
CONTRACTIONS: dict[str, set[str]] = {}


@dataclass(frozen=True)
class Column:
    type: str
    nullable: bool
    has_default: bool


Schema = dict[str, dict[str, Column]]


def _schema(connection: Connection) -> Schema:
    inspector = inspect(connection)
    return {
        table: {
            column["name"]: Column(str(column["type"]), column["nullable"], column.get("default") is not None)
            for column in inspector.get_columns(table)
        }
        for table in inspector.get_table_names()
        if table != "alembic_version"
    }


def breaking_changes(before: Schema, after: Schema) -> set[str]:
    """What the previous release's code could trip over: each as `table` or `table.column: why`."""
    problems: set[str] = set()
    for table, columns in before.items():
        if table not in after:
            problems.add(f"{table}: table dropped or renamed")
            continue
        for name, old in columns.items():
            new = after[table].get(name)
            if new is None:
                problems.add(f"{table}.{name}: column dropped or renamed")
            elif new.type != old.type:
                problems.add(f"{table}.{name}: type changed from {old.type} to {new.type}")
            elif old.nullable and not new.nullable:
                problems.add(f"{table}.{name}: made NOT NULL")
        for name, new in after[table].items():
            if name not in columns and not new.nullable and not new.has_default:
                problems.add(f"{table}.{name}: added NOT NULL without a server default")
    return problems


def test_the_rule_catches_what_would_break_the_previous_release() -> None:
    before = {"messages": {"id": Column("INTEGER", False, True), "body": Column("TEXT", True, False)}}
    assert breaking_changes(before, before) == set()
    assert breaking_changes(before, {}) == {"messages: table dropped or renamed"}
    grown = {"messages": {**before["messages"], "note": Column("TEXT", True, False)}, "events": {}}
    assert breaking_changes(before, grown) == set()
    required = {"messages": {**before["messages"], "kind": Column("VARCHAR(8)", False, False)}}
    assert breaking_changes(before, required) == {"messages.kind: added NOT NULL without a server default"}
    renamed = {"messages": {"id": before["messages"]["id"], "text": Column("TEXT", True, False)}}
    assert breaking_changes(before, renamed) == {"messages.body: column dropped or renamed"}
    tightened = {"messages": {**before["messages"], "body": Column("TEXT", False, False)}}
    assert breaking_changes(before, tightened) == {"messages.body: made NOT NULL"}


@pytest.fixture
def scratch_database() -> Iterator[str]:
    """A PostgreSQL database of this test's own (beside the session's test database), emptied."""
    url = make_url(POSTGRES_URL).set(database=f"{make_url(POSTGRES_URL).database}_migrations")
    rendered = url.render_as_string(hide_password=False)
    try:
        _ensure_postgres_database(rendered)
        engine = create_engine(rendered)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    except Exception as error:
        _unavailable("PostgreSQL", error)
    yield rendered


def test_each_migration_only_expands_the_schema_the_release_before_it_runs_on(scratch_database: str) -> None:
    config = alembic_config(scratch_database)
    revisions = list(reversed(list(ScriptDirectory.from_config(config).walk_revisions())))
    engine = create_engine(scratch_database)
    found: dict[str, set[str]] = {}
    try:
        alembic_command.upgrade(config, revisions[0].revision)
        for revision in revisions[1:]:
            with engine.connect() as connection:
                before = _schema(connection)
            alembic_command.upgrade(config, revision.revision)
            with engine.connect() as connection:
                after = _schema(connection)
            problems = breaking_changes(before, after) - CONTRACTIONS.get(revision.revision, set())
            if problems:
                found[revision.revision] = problems
    finally:
        engine.dispose()
    assert found == {}, "migrations that would break the release running beside them (see the docstring)"
