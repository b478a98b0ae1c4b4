"""The app decides by its runtime's clock, not the wall clock: what a test (or CI) sets is what
the landing page, the form and the importers go by."""

from __future__ import annotations

import io
from datetime import timedelta

from flask import Flask

from engine.clock import FixedClock
from engine.runtime import Runtime
from engine.services.consents import ConsentImporter
from tests.helpers import forward_form, make_campaign


def test_the_landing_page_and_the_form_agree_on_when_a_campaign_ends(
    app: Flask, runtime: Runtime, clock: FixedClock
) -> None:
    make_campaign(runtime.db, "summer", ends_at=clock.now() + timedelta(minutes=1))
    client = app.test_client()
    page = client.get("/c/summer")
    assert page.status_code == 200
    clock.advance(timedelta(minutes=2))
    assert client.get("/c/summer").status_code == 410
    assert (
        client.post("/c/summer/forward", data=forward_form(page.text, friends=["bob@example.com"])).status_code == 410
    )


def test_a_consent_is_in_the_future_by_the_apps_clock(runtime: Runtime, clock: FixedClock) -> None:
    importer = ConsentImporter(runtime.db, runtime.hasher, "NL", clock=clock)
    later = (clock.now() + timedelta(hours=1)).isoformat()
    earlier = (clock.now() - timedelta(hours=1)).isoformat()
    csv = f"contact,given_at\n+31612345678,{later}\n+31687654321,{earlier}\n"
    report = importer.import_csv(io.BytesIO(csv.encode()), "sms")
    assert (report.imported, report.problem_count) == (1, 1)
    assert "future" in report.problems[0]
