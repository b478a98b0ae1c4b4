"""What the benchmarks share: a throwaway PostgreSQL database of their own."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url


def libpq_url(url: str, database: str | None = None) -> str:
    """A plain postgresql:// URL for psycopg, whatever driver suffix the given one had."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def recreate_database(url: str) -> str:
    """Drop and create the benchmark database; returns the server's version."""
    name = make_url(url).database
    if not name or not re.fullmatch(r"[A-Za-z0-9_]+", name):
        sys.exit(f"refusing to drop database {name!r}: give a plain name such as fluister_bench")
    with psycopg.connect(libpq_url(url, "postgres"), autocommit=True) as connection:
        # FORCE: a run killed half-way may have left connections open.
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
        row = connection.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


REPO_ROOT = Path(__file__).resolve().parent.parent


def flask_command(env: dict[str, str], *arguments: str) -> None:
    """`flask --app wsgi ARGUMENTS` in the repository, with this environment; raises when it fails."""
    command = [sys.executable, "-m", "flask", "--app", "wsgi", *arguments]
    completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout + completed.stderr)
        raise RuntimeError(f"flask {' '.join(arguments)} failed (exit status {completed.returncode})")
