"""`-m "not postgres"` runs nothing against PostgreSQL: every test that pins the PostgreSQL
database carries the marker (the session fixture empties the schema TEST_DATABASE_URL names)."""

from __future__ import annotations

import subprocess
import sys

from engine import PROJECT_ROOT


def test_deselecting_postgres_leaves_no_test_on_postgresql() -> None:
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    collected = subprocess.run(
        [*command, "-m", "not postgres", "tests/integration", "tests/e2e"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert collected.returncode == 0, collected.stdout + collected.stderr
    ids = [line for line in collected.stdout.splitlines() if "::" in line]
    assert ids, collected.stdout
    assert [i for i in ids if "postgresql" in i] == []
