"""static/ as production serves it (engine.static_files): compressed, cached for a year at the
versioned address every page writes, briefly at the bare one; a changed file, a new address."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from flask import Flask

from engine.resources import STATIC_DIR
from engine.static_files import StaticFiles
from tests.helpers import static_path

GZIP = {"Accept-Encoding": "gzip, deflate"}


def test_a_versioned_file_comes_gzipped_and_cached_for_a_year(app: Flask) -> None:
    response = app.test_client().get(static_path("fluister.css"), headers=GZIP)
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Vary"] == "Accept-Encoding"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.mimetype == "text/css"
    assert gzip.decompress(response.data) == (STATIC_DIR / "fluister.css").read_bytes()
    assert int(response.headers["Content-Length"]) == len(response.data) < (STATIC_DIR / "fluister.css").stat().st_size


def test_a_client_that_takes_no_gzip_gets_the_file_itself(app: Flask) -> None:
    response = app.test_client().get(static_path("friends.js"))
    assert "Content-Encoding" not in response.headers
    assert response.data == (STATIC_DIR / "friends.js").read_bytes()
    assert response.mimetype == "text/javascript"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_revalidation_by_the_contents_etag_gets_a_304(app: Flask) -> None:
    client = app.test_client()
    first = client.get(static_path("fluister.css"), headers=GZIP)
    digest = static_path("fluister.css").rsplit(".", 2)[1]
    assert first.headers["ETag"] == f'"{digest}"'
    again = client.get("/static/fluister.css", headers={**GZIP, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_the_bare_address_still_answers_but_is_not_immutable(app: Flask) -> None:
    response = app.test_client().get("/static/fluister.css", headers=GZIP)
    assert response.status_code == 200 and response.headers["Content-Encoding"] == "gzip"
    assert "immutable" not in response.headers["Cache-Control"]
    assert response.headers["Cache-Control"] == "public, max-age=300"


def test_an_image_is_sent_as_it_is(app: Flask) -> None:
    response = app.test_client().get(static_path("share-card.png"), headers=GZIP)
    assert "Content-Encoding" not in response.headers and response.mimetype == "image/png"
    assert "immutable" in response.headers["Cache-Control"]


def test_an_unknown_file_is_a_404(app: Flask) -> None:
    assert app.test_client().get("/static/nothing.0123456789ab.css").status_code == 404


def test_every_reference_of_a_page_is_versioned_and_answers(app: Flask, campaign) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = client.get("/c/spring").text
    references = re.findall(r'(?:href|src|data-worker)="(/static/[^"]+)"', page)
    assert references
    for reference in references:
        assert re.search(r"\.[0-9a-f]{12}\.(css|js|png)$", reference), reference
        response = client.get(reference)
        assert response.status_code == 200 and "immutable" in response.headers["Cache-Control"], reference
        response.close()


def test_a_changed_file_gets_a_new_address(tmp_path: Path) -> None:
    (tmp_path / "site.css").write_text("body { color: black; }\n" * 20)

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("404 Not Found", [])
        return [b""]

    before = StaticFiles(app, tmp_path)
    (tmp_path / "site.css").write_text("body { color: navy; }\n" * 20)
    after = StaticFiles(app, tmp_path)
    old, new = before.manifest.url_name("site.css"), after.manifest.url_name("site.css")
    assert old != new and old.startswith("site.") and new.endswith(".css")
    assert f"/static/{old}" in before.files and f"/static/{old}" not in after.files
    assert f"/static/{new}" in after.files and "/static/site.css" in after.files
