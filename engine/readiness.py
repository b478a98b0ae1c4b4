"""Is this process ready to serve? The database answers, its schema is this release's, Redis answers.

`GET /readyz` asks on every call (a load balancer keeps an unready process out of rotation);
`require_serviceable` asks once, when a server or a worker starts in production, and refuses
to start with one line that says what to do. `/healthz` asks nothing: a process that is alive
but waiting for its database must not be restarted for it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import redis
from alembic.script import ScriptDirectory
from sqlalchemy import exc as sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from engine.db import Database

UPGRADE_COMMAND = "flask --app wsgi db upgrade"


class StartupRefused(RuntimeError):
    """The process must not start; the message is the one line an operator reads."""


@dataclass(frozen=True)
class Problem:
    """One missing part: `part` is its name (`database`, `schema`, `redis`), `detail` says why."""

    part: str
    detail: str


@functools.cache
def schema_heads() -> frozenset[str]:
    """The newest migration(s) of this release. The scripts do not change while a process runs."""
    return frozenset(_scripts().get_heads())


def safe_url(url: str) -> str:
    """The URL without its password, for messages an operator (or a probe) reads."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sql.ArgumentError:
        return "(an unreadable URL)"


def database_problems(db: Database) -> list[Problem]:
    """Whether the database answers and its schema is at this release's newest migration."""
    try:
        with db.engine.connect() as connection:
            try:
                revisions = frozenset(connection.scalars(text("SELECT version_num FROM alembic_version")))
            except (sql.ProgrammingError, sql.OperationalError):
                # No alembic_version table: nothing was ever migrated. (SQLite says "no such
                # table" as an OperationalError; the connection itself worked, as we got here.)
                revisions = frozenset()
    except sql.DBAPIError as error:
        return [Problem("database", f"the database at {safe_url(db.url)} cannot be reached: {first_line(error)}")]
    heads = schema_heads()
    if revisions == heads:
        return []
    return [Problem("schema", _schema_detail(revisions, heads))]


def redis_problems(connection: redis.Redis | None, url: str | None) -> list[Problem]:
    if connection is None or not url:
        return []
    try:
        connection.ping()
    except redis.RedisError as error:
        return [Problem("redis", f"Redis at {safe_url(url)} cannot be reached: {error}")]
    return []


def require_serviceable(db: Database) -> None:
    """Refuse to start (StartupRefused) unless the database answers at this release's schema."""
    problems = database_problems(db)
    if problems:
        raise StartupRefused(problems[0].detail)


def _schema_detail(revisions: frozenset[str], heads: frozenset[str]) -> str:
    needed = ", ".join(sorted(heads))
    if not revisions:
        return f"the database has no schema yet, this release needs {needed}: run `{UPGRADE_COMMAND}`"
    found = ", ".join(sorted(revisions))
    if revisions - _known_revisions():
        # Written by a newer release (or another application): upgrading cannot help.
        return (
            f"the database schema is at {found}, which this release does not know (it needs {needed}): "
            "deploy the release that migrated it"
        )
    return f"the database schema is at {found}, this release needs {needed}: run `{UPGRADE_COMMAND}`"


@functools.cache
def _known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


def _scripts() -> ScriptDirectory:
    # Imported here: the commands (engine.cli) check readiness in turn.
    from engine.cli import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def first_line(error: BaseException) -> str:
    # A driver's message runs over several lines (hints, the SQL); the first says what happened.
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__
