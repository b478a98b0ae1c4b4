"""Starting, and refusing to, as an operator sees it: separate processes (gunicorn, the worker,
`flask --app wsgi` commands), one line on stderr and no traceback, and the documented exit
statuses: 0 done, 1 refused, 2 usage or unknown object."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from engine import PROJECT_ROOT
from engine.readiness import schema_heads
from tests.conftest import REDIS_URL
from tests.integration.test_readiness import PASSWORD, migrated_to, previous_revision

NOBODY_LISTENS_POSTGRES = f"postgresql://fluister:{PASSWORD}@127.0.0.1:9/fluister?connect_timeout=2"
NOBODY_LISTENS_REDIS = "redis://127.0.0.1:9/0"
# What a production process needs besides its database (the transports are never called here).
PRODUCTION = {
    "FLUISTER_ENV": "production",
    "REDIS_URL": REDIS_URL,
    "PUBLIC_BASE_URL": "https://offers.example.com",
    "SECRET_KEYS": "a" * 32,
    "CONTACT_HASH_KEY": "b" * 32,
    "EMAIL_TRANSPORT": "smtp",
    "SMTP_URL": "smtp://relay.invalid:25",
    "SMS_TRANSPORT": "twilio",
    "TWILIO_ACCOUNT_SID": "AC1",
    "TWILIO_AUTH_TOKEN": "t",
    "TWILIO_FROM": "+15005550006",
}
UPGRADE = "run `flask --app wsgi db upgrade`"


def run(args: list[str], tmp_path: Path, timeout: float = 120, **environ: str) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("FLUISTER_", "DATABASE_", "REDIS_"))}
    env = {**inherited, "INSTANCE_PATH": str(tmp_path / "instance"), **environ}
    return subprocess.run(args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def flask(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "wsgi", *args]


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The process said one thing on stderr, and no traceback."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert PASSWORD not in result.stderr
    return lines[0]


@pytest.fixture
def migrated_sqlite(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "fluister.db"
    path.write_bytes(sqlite_template.read_bytes())
    return f"sqlite:///{path}"


@pytest.fixture
def postgres_behind(tmp_path: Path) -> str:
    return migrated_to(previous_revision(), "postgresql", tmp_path)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.postgres
def test_in_production_nothing_serves_an_old_schema_until_db_upgrade_brings_it_up(
    postgres_behind: str, tmp_path: Path
) -> None:
    (head,) = schema_heads()
    said = f"Error: the database schema is at {previous_revision()}, this release needs {head}: {UPGRADE}"
    environ = {**PRODUCTION, "DATABASE_URL": postgres_behind}
    port = str(free_port())
    # --preload loads the app once, before gunicorn forks its workers: a refusal stops gunicorn.
    gunicorn = [sys.executable, "-m", "gunicorn", "--preload", "--workers=2", f"--bind=127.0.0.1:{port}", "wsgi:app"]

    server = run(gunicorn, tmp_path, **environ)
    assert server.returncode == 1
    assert said in server.stderr.splitlines()
    assert "Traceback" not in server.stderr
    assert "Booting worker" not in server.stderr

    worker = run([sys.executable, "-m", "workers", "--burst"], tmp_path, **environ)
    assert (worker.returncode, one_line(worker)) == (1, said)
    flask_worker = run(flask("worker", "--burst"), tmp_path, **environ)
    assert (flask_worker.returncode, one_line(flask_worker)) == (1, said)

    # The command that fixes it still runs against the old schema, in production.
    upgrade = run(flask("db", "upgrade"), tmp_path, **environ)
    assert upgrade.returncode == 0, upgrade.stderr
    served = run([sys.executable, "-c", "import wsgi"], tmp_path, **environ)
    assert served.returncode == 0, served.stderr


def test_in_production_a_server_refuses_a_database_it_cannot_reach(tmp_path: Path) -> None:
    result = run([sys.executable, "-c", "import wsgi"], tmp_path, **PRODUCTION, DATABASE_URL=NOBODY_LISTENS_POSTGRES)
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith("Error: the database at postgresql+psycopg://fluister:***@127.0.0.1:9/fluister")
    assert "cannot be reached" in line


@pytest.mark.parametrize(
    ("environ", "args", "said"),
    [
        ({"DATABASE_URL": f"mysql://shop:{PASSWORD}@db/fluister"}, ["db", "current"], "not mysql://"),
        ({"DATABASE_URL": "db.example.org/fluister"}, ["db", "upgrade"], "DATABASE_URL is not a database URL"),
        ({"REDIS_URL": "http://cache:6379/0"}, ["messages", "sweep"], "REDIS_URL must be a redis://"),
        ({"FLUISTER_ENV": "staging"}, ["db", "current"], "FLUISTER_ENV must be one of"),
        ({"FLUISTER_ENV": "production", "DATABASE_URL": "postgresql://db/x"}, ["db", "upgrade"], "SECRET_KEYS"),
        ({"DATABASE_URL": NOBODY_LISTENS_POSTGRES}, ["db", "upgrade"], "cannot be reached"),
        ({"DATABASE_URL": NOBODY_LISTENS_POSTGRES}, ["messages", "sweep"], "cannot be reached"),
    ],
)
def test_configuration_and_services_a_command_cannot_use_are_one_line_and_exit_1(
    environ: dict[str, str], args: list[str], said: str, tmp_path: Path
) -> None:
    result = run(flask(*args), tmp_path, **environ)
    assert result.returncode == 1, result.stderr
    line = one_line(result)
    assert line.startswith("Error: ") and said in line


def test_a_worker_without_redis_is_one_line_and_exit_1(migrated_sqlite: str, tmp_path: Path) -> None:
    for args in (flask("worker", "--burst"), [sys.executable, "-m", "workers", "--burst"]):
        result = run(args, tmp_path, DATABASE_URL=migrated_sqlite, REDIS_URL=NOBODY_LISTENS_REDIS)
        assert result.returncode == 1, result.stderr
        assert one_line(result).startswith("Error: Redis at redis://127.0.0.1:9/0 cannot be reached")


def test_an_unmigrated_database_says_to_upgrade(tmp_path: Path) -> None:
    result = run(flask("messages", "sweep"), tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")
    assert result.returncode == 1
    assert one_line(result).endswith(
        f"(the database has no schema yet, this release needs {', '.join(schema_heads())}: {UPGRADE})"
    )


def test_exit_statuses_done_usage_and_unknown_object(migrated_sqlite: str, tmp_path: Path) -> None:
    done = run(flask("messages", "sweep"), tmp_path, DATABASE_URL=migrated_sqlite)
    assert done.returncode == 0, done.stderr
    unknown_campaign = run(flask("campaigns", "pause", "nope", "--reason", "x"), tmp_path, DATABASE_URL=migrated_sqlite)
    assert unknown_campaign.returncode == 2, unknown_campaign.stderr
    assert "nope" in unknown_campaign.stderr
    bad_option = run(flask("messages", "sweep", "--everything"), tmp_path, DATABASE_URL=migrated_sqlite)
    assert bad_option.returncode == 2
    assert "No such option" in bad_option.stderr
