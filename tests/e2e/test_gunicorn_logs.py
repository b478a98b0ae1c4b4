"""gunicorn as the Procfile starts it, with its access log: one line per request in the app's
format (LOG_FORMAT), with the method, the path without its query string, the status, the
duration, the client only as a hash and the request id; in JSON, every line it and the app
write parses. No contact and no raw address in any line, gunicorn's own included."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests

from config import load_settings
from engine import PROJECT_ROOT, create_app
from engine.services.campaigns import seed_demo_campaign
from tests.faults import free_port
from tests.helpers import runtime_of, wait_until

HTTP_TIMEOUT = 10
STARTUP_TIMEOUT = 60
LOGGED_CLIENT = re.compile(r"ip:[0-9a-f]{12}")


def _procfile_web_command() -> str:
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no web process in the Procfile")


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=HTTP_TIMEOUT).status_code == 200
    except requests.ConnectionError:
        return False


def _serve_one_page(tmp_path: Path, sqlite_template: Path, log_format: str) -> tuple[str, str]:
    """Start the Procfile's web command, ask for a landing page (with an address in its query)
    and stop it: what gunicorn wrote to stdout (the access log) and to stderr."""
    database = tmp_path / "fluister.db"
    database.write_bytes(sqlite_template.read_bytes())
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "FLUISTER_ENV": "development",
        "DATABASE_URL": f"sqlite:///{database}",
        "SECRET_KEYS": "gunicorn-logs-secret-key-0123456789",
        "CONTACT_HASH_KEY": "gunicorn-logs-contact-hash-key-0123456789",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_FORMAT": log_format,
    }
    env.pop("REDIS_URL", None)
    app = create_app(load_settings(env, dotenv_path=tmp_path / "no.env"))
    seed_demo_campaign(runtime_of(app).db)
    runtime_of(app).db.dispose()

    url = f"http://127.0.0.1:{port}"
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        server = subprocess.Popen(
            ["sh", "-c", _procfile_web_command()], cwd=PROJECT_ROOT, env=env, stdout=stdout, stderr=stderr
        )
    try:
        wait_until(lambda: _answers(url), what="gunicorn to answer", timeout=STARTUP_TIMEOUT)
        page = requests.get(
            f"{url}/c/demo?friend=bob@example.com", headers={"X-Request-ID": "page-1"}, timeout=HTTP_TIMEOUT
        )
        assert page.status_code == 200
        assert page.headers["X-Request-ID"] == "page-1"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return out.read_text(), err.read_text()


def _no_contact_or_address(*outputs: str) -> None:
    for output in outputs:
        assert "bob@example.com" not in output
        assert "bob%40example.com" not in output
        assert "127.0.0.1" not in output


def test_json_access_lines_name_the_request_and_hide_the_client(tmp_path: Path, sqlite_template: Path) -> None:
    access, errors = _serve_one_page(tmp_path, sqlite_template, "json")

    access_lines = [json.loads(line) for line in access.splitlines()]
    error_lines = [json.loads(line) for line in errors.splitlines()]  # gunicorn's and the app's own
    (page,) = [line for line in access_lines if line["request_id"] == "page-1"]
    assert page["logger"] == "gunicorn.access"
    assert (page["method"], page["path"], page["status"]) == ("GET", "/c/demo", 200)
    assert isinstance(page["duration_ms"], int | float)
    assert LOGGED_CLIENT.fullmatch(page["client"])
    assert any(line["logger"] == "gunicorn.error" for line in error_lines)
    _no_contact_or_address(access, errors)


def test_text_access_lines_are_one_readable_line(tmp_path: Path, sqlite_template: Path) -> None:
    access, errors = _serve_one_page(tmp_path, sqlite_template, "text")

    (page,) = [line for line in access.splitlines() if "request_id=page-1" in line]
    assert re.search(r" INFO gunicorn\.access: GET /c/demo 200 [\d.]+ms ip:[0-9a-f]{12} \[request_id=page-1\]$", page)
    _no_contact_or_address(access, errors)
