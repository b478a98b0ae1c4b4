"""The landing page stays light: its first load (the HTML and every stylesheet and script it
references, each as gzip sends it) weighs under 60 KB, and the forward needs no script (a
browser test sends it with JavaScript off: tests/e2e/browser/test_forward_without_javascript.py)."""

from __future__ import annotations

import gzip
import re
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient

from engine.runtime import Runtime
from engine.services.campaigns import seed_demo_campaign

# What a first visit may cost, compressed: a phone on a slow line still shows the form at once.
FIRST_LOAD_BUDGET = 60 * 1024
# A fixed level, so the figure depends on the files alone (gzip -6 is what servers use).
GZIP_LEVEL = 6
# Stylesheets and scripts (module scripts too) the HTML references: what a browser fetches
# before the page works. Images are not counted (the landing page shows none of ours).
ASSETS = re.compile(r'<(?:link rel="stylesheet" href|script(?: type="module")? src)="([^"]+)"')


def gzipped_size(body: bytes) -> int:
    return len(gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0))


def first_load(client: FlaskClient, path: str) -> dict[str, int]:
    """Each file of the page's first load (the page itself first), by its path: gzipped bytes."""
    page = client.get(path)
    assert page.status_code == 200
    sizes = {path: gzipped_size(page.data)}
    for url in ASSETS.findall(page.text):
        asset = client.get(urlsplit(url).path)
        assert asset.status_code == 200, url
        sizes[url] = gzipped_size(asset.data)
        asset.close()
    return sizes


def test_the_demo_landing_page_first_load_stays_under_60_kb_gzipped(app: Flask, runtime: Runtime) -> None:
    seed_demo_campaign(runtime.db)
    sizes = first_load(app.test_client(), "/c/demo")
    assert any(url.endswith(".css") for url in sizes), "the page's stylesheets are counted"
    total = sum(sizes.values())
    assert total < FIRST_LOAD_BUDGET, "\n".join(f"{size:>7} {url}" for url, size in sizes.items())
