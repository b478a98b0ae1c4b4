"""compose.yaml runs the Procfile's processes from the Dockerfile's image, beside PostgreSQL and a
Redis that keeps its data and never evicts it, with no secret written in the file. (Docker is not
run by the tests: this reads the file.)"""

from __future__ import annotations

import re
import shlex
from typing import Any

import yaml

from engine import PROJECT_ROOT


def _compose() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())


def _procfile() -> dict[str, list[str]]:
    lines = (PROJECT_ROOT / "Procfile").read_text().splitlines()
    pairs = (line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {kind: shlex.split(_without_catalogs(command.strip()).removeprefix("exec ")) for kind, command in pairs}


def _without_catalogs(command: str) -> str:
    """A checkout's process compiles the catalogs first; the image compiled them when it was built."""
    return command.removeprefix("python -m engine.catalogs && ")


def _as_installed(command: list[str]) -> list[str]:
    """A checkout's `flask --app wsgi X` is the image's `fluister X` (the image has no wsgi.py)."""
    if command[:3] == ["flask", "--app", "wsgi"]:
        return ["fluister", *command[3:]]
    return command


def test_compose_runs_every_process_of_the_procfile_and_the_two_services() -> None:
    services = _compose()["services"]
    assert set(_procfile()) | {"scheduler", "postgres", "redis", "migrate"} == set(services)


def test_each_process_runs_the_procfile_command_from_the_image() -> None:
    services = _compose()["services"]
    for kind, command in _procfile().items():
        service = services[kind]
        assert service["build"] == "."
        if kind == "web":
            assert "command" not in service  # the image's CMD, which test_dockerfile ties to the Procfile
        else:
            assert service["command"] == _as_installed(command), kind


def test_the_scheduler_runs_the_scheduler_command() -> None:
    assert _compose()["services"]["scheduler"]["command"] == ["fluister", "scheduler"]


def test_the_processes_start_after_the_migration_and_healthy_services() -> None:
    services = _compose()["services"]
    for kind in ("web", "worker", "scheduler"):
        assert services[kind]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }
    assert services["migrate"]["command"] == ["fluister", "db", "upgrade"]


def test_redis_persists_to_a_volume_and_never_evicts() -> None:
    redis = _compose()["services"]["redis"]
    arguments = " ".join(redis["command"])
    assert "--appendonly yes" in arguments
    assert "--maxmemory-policy noeviction" in arguments
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_no_secret_is_written_in_the_file() -> None:
    environment = _compose()["services"]["web"]["environment"]
    for name in ("SECRET_KEYS", "CONTACT_HASH_KEY", "SENDGRID_API_KEY", "TWILIO_AUTH_TOKEN", "METRICS_TOKEN"):
        assert re.fullmatch(r"\$\{[A-Z_]+(:[?-][^}]*)?\}", environment[name]), name
    assert "${POSTGRES_PASSWORD:?" in environment["DATABASE_URL"]
