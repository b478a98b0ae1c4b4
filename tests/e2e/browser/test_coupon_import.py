"""A marketer uploads a CSV of 100,000 coupon codes in a real browser and watches the import: the
progress page polls itself (htmx, under our CSP) and its counts grow until it shows the result."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from engine.services import coupon_imports
from tests.e2e.browser.conftest import LiveApp, Tab
from tests.helpers import STAFF_PASSWORD, US_CUSTOM_SMS, make_campaign

MARKETER = "marketer@staff.example"
CODES = 100_000
# This machine imports 100,000 codes in about a second, before the page's first poll: each batch
# of 1,000 is held up a little, so that the import takes a few seconds and its progress shows.
BATCH_DELAY_SECONDS = 0.04


@pytest.fixture
def slower_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    real = coupon_imports.import_codes

    def slower(*args: Any, progress: Any, **kwargs: Any) -> Any:
        def after_batch(lines_read: int) -> None:
            progress(lines_read)
            time.sleep(BATCH_DELAY_SECONDS)

        return real(*args, progress=after_batch, **kwargs)

    # The live server runs in this process: its import thread uses this module's name.
    monkeypatch.setattr(coupon_imports, "import_codes", slower)


def test_a_large_upload_shows_its_progress_until_done(
    tab: Tab, live: LiveApp, tmp_path: Path, slower_batches: None
) -> None:
    page = tab.page
    make_campaign(live.runtime.db, "spring", policy_settings={**US_CUSTOM_SMS, "incentives": True}, coupon_mode="pool")
    live.runtime.staff.create_user(MARKETER, "marketer", STAFF_PASSWORD)
    codes = tmp_path / "codes.csv"
    codes.write_text("code\n" + "".join(f"SPRING-{n:07d}\n" for n in range(CODES)))

    tab.open("/login", "login")
    page.get_by_label("E-mail address").fill(MARKETER)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live.url}/console")
    tab.open("/console/campaigns/spring/coupons", "coupons")
    page.get_by_label("CSV file of codes").set_input_files(codes)
    page.get_by_role("button", name="Upload and import").click()
    page.wait_for_url(f"{live.url}/console/campaigns/spring/coupons/imports/*")
    progress_url = page.url
    tab.shot("progress")

    # Read the counts as htmx swaps them in, without reloading the page, until the import is done.
    panel = page.locator("#import-progress")
    seen: list[int] = []
    deadline = time.monotonic() + 120
    while panel.get_attribute("data-state") == "running" and time.monotonic() < deadline:
        imported = int(page.locator('[data-progress="imported"]').inner_text().replace(",", ""))
        if not seen or imported != seen[-1]:
            seen.append(imported)
            if len(seen) == 2:
                tab.shot("progress-growing")
        time.sleep(0.1)
    expect(panel).to_have_attribute("data-state", "done")
    tab.shot("done")

    assert page.url == progress_url  # the page refreshed its panel, not itself
    # Growing: a count part-way was on screen. The last one read while running may already be
    # the whole file (its last batch written, "done" not yet), however busy the machine is.
    assert seen == sorted(seen) and any(0 < n < CODES for n in seen), f"the counts did not grow: {seen}"
    expect(page.get_by_role("status")).to_contain_text(
        "100,000 codes imported; 0 repeated in the file, 0 already there, 0 bad rows skipped"
    )
    expect(page.locator('[data-count="total"]')).to_have_text("100,000")
    expect(panel).not_to_have_attribute("hx-trigger", "every 1s")
    page.get_by_role("link", name="Back to the coupons of spring").click()
    expect(page.locator('td[data-count="total"]')).to_have_text("100,000")
    tab.assert_no_errors()
