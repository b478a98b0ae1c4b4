"""The vendored front-end files (static/vendor/*): served by the app, exactly the bytes their
README vouches for, and loaded only where they belong."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from flask import Flask

from tests.helpers import staff_client, static_path

VENDOR = Path(__file__).resolve().parents[2] / "static" / "vendor"
# A row of a README's table: | `file here` | `from the package` | `sha256` |
CHECKSUM_ROW = re.compile(r"^\| `([^`]+)` \| `[^`]+` \| `([0-9a-f]{64})` \|$", re.MULTILINE)


def checksums(package: str) -> dict[str, str]:
    return dict(CHECKSUM_ROW.findall((VENDOR / package / "README.md").read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    ("package", "files"),
    [
        ("pico", {"pico.min.css"}),
        ("htmx", {"htmx.min.js"}),
        ("altcha", {"altcha.min.js", "altcha.css", "workers/pbkdf2.js"}),
    ],
)
def test_vendored_files_are_served_as_their_readme_says(app: Flask, package: str, files: set[str]) -> None:
    listed = checksums(package)
    assert set(listed) == files
    client = app.test_client()
    for name, digest in listed.items():
        response = client.get(f"/static/vendor/{package}/{name}")
        assert response.status_code == 200, name
        assert hashlib.sha256(response.data).hexdigest() == digest, name
        response.close()


def test_every_page_has_pico_under_our_stylesheet_and_no_htmx_unless_it_needs_it(app: Flask, campaign) -> None:  # type: ignore[no-untyped-def]
    page = app.test_client().get("/c/spring").text
    assert page.index(static_path("vendor/pico/pico.min.css")) < page.index(static_path("fluister.css"))
    assert "htmx" not in page


def test_the_opt_out_log_loads_htmx_configured_for_our_csp(app: Flask, runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    response = staff_client(app, "compliance").get("/compliance/opt-outs")
    assert response.status_code == 200
    assert f'<script src="{static_path("vendor/htmx/htmx.min.js")}" defer></script>' in response.text
    config = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", response.text)
    assert config is not None
    assert '"allowEval":false' in config.group(1) and '"includeIndicatorStyles":false' in config.group(1)
    assert "hx-on" not in response.text
    assert "'unsafe-eval'" not in response.headers["Content-Security-Policy"]
