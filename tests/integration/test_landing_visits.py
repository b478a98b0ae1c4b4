"""The landing GET's hot path: the campaign read from the process's snapshot while it is
current, a visitor's referral read in one query, no coupon look-up on a campaign without
coupons, each view counted once, and no shared cache keeping a visitor's page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from engine.models import Campaign, Forward
from engine.runtime import Runtime
from engine.services import analytics
from engine.tokens import Purpose
from engine.web.public.pages import REF_COOKIE

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"}


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(" ".join(statement.split()))

    event.listen(runtime.db.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", record)


def reading(sent: list[str], table: str) -> list[str]:
    return [s for s in sent if s.upper().startswith("SELECT") and f"FROM {table} " in f"{s} "]


@pytest.fixture
def referral(runtime: Runtime, campaign: Campaign) -> str:
    with runtime.db.transaction() as session:
        session.add(
            Forward(
                public_id="pubL1",
                campaign_id=campaign.id,
                generation=1,
                channel="sms",
                sender_name="Anna",
                recipient_contact_hash="friend",
                policy_name="custom",
                policy_version=1,
            )
        )
    return runtime.tokens.sign(Purpose.FORWARD, "pubL1")


def test_a_landing_view_reads_the_campaign_once_per_process(app: Flask, runtime: Runtime, campaign: Campaign) -> None:
    visitor = app.test_client()
    assert visitor.get(f"/c/{campaign.slug}", headers=BROWSER).status_code == 200
    with statements(runtime) as sent:
        page = app.test_client().get(f"/c/{campaign.slug}", headers=BROWSER)
    assert page.status_code == 200 and "Ten percent off" in page.text
    assert reading(sent, "campaigns") == [] and reading(sent, "campaign_templates") == []
    selects = [s for s in sent if s.upper().startswith("SELECT")]
    assert len(selects) == 1 and "FROM campaign_snapshot_version " in selects[0]  # only the snapshot version


def test_no_shared_cache_keeps_a_page_made_for_one_visitor(app: Flask, campaign: Campaign) -> None:
    first, second = (app.test_client().get(f"/c/{campaign.slug}", headers=BROWSER) for _ in range(2))
    assert first.headers["Cache-Control"] == "private, no-store"
    assert "ETag" not in first.headers
    # Why: each visitor's page holds their own form tokens.
    assert first.text != second.text


def test_a_changed_campaign_is_shown_as_changed_at_the_next_view(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    assert "Ten percent off" in app.test_client().get(f"/c/{campaign.slug}", headers=BROWSER).text
    with runtime.db.transaction() as session:
        session.get(Campaign, campaign.id).offer_title = "Twenty percent off"  # type: ignore[union-attr]
    assert "Twenty percent off" in app.test_client().get(f"/c/{campaign.slug}", headers=BROWSER).text
    with runtime.db.transaction() as session:
        session.get(Campaign, campaign.id).status = "ended"  # type: ignore[union-attr]
    assert app.test_client().get(f"/c/{campaign.slug}", headers=BROWSER).status_code == 410


def test_a_visit_through_a_link_reads_its_forward_once_and_no_coupon(
    app: Flask, runtime: Runtime, campaign: Campaign, referral: str
) -> None:
    app.test_client().get(f"/c/{campaign.slug}", headers=BROWSER)  # the campaign's snapshot
    friend = app.test_client()
    friend.set_cookie(REF_COOKIE, referral, path=f"/c/{campaign.slug}")
    with statements(runtime) as sent:
        page = friend.get(f"/c/{campaign.slug}", headers=BROWSER)
    assert page.status_code == 200 and "Anna" in page.text
    assert len(reading(sent, "forwards")) == 1
    assert reading(sent, "coupons") == []  # the campaign hands no codes out
    counter = analytics.VisitCounter(runtime.queue.connection)
    m = analytics.campaign_metrics(runtime.db, campaign.slug, runtime.clock.now(), visits=counter)
    assert {g.generation: g.visitors for g in m.generations} == {1: 1, 2: 1}  # each view once


@pytest.mark.parametrize("cookie", ["forged", "other"])
def test_a_referral_that_is_not_of_this_campaign_is_a_first_visit(
    app: Flask, runtime: Runtime, campaign: Campaign, referral: str, cookie: str
) -> None:
    with runtime.db.transaction() as session:
        other = Campaign(**{c: getattr(campaign, c) for c in ("name", "status", "offer_title", "offer_description",
                                                                 "brand_name", "sender_email", "postal_address",
                                                                 "channels", "policy_name", "policy_settings")},
                         slug="autumn", max_friends_per_submission=5)  # fmt: skip
        session.add(other)
    friend = app.test_client()
    friend.set_cookie(REF_COOKIE, referral if cookie == "other" else "forged", path="/c/autumn")
    page = friend.get("/c/autumn", headers=BROWSER)
    assert page.status_code == 200 and "Anna" not in page.text
