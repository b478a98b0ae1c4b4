"""Clicks that are people: a link preview, a mail scanner or a HEAD request that opens a
tracked link gets the redirect and the page, but is no click, sets no referral cookie, counts
no landing view, and is counted apart as a prefetch (engine/visitors.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from engine.models import Campaign, Click, Forward
from engine.runtime import Runtime
from engine.services import analytics
from engine.tokens import Purpose
from engine.web.public.pages import REF_COOKIE

CHROME = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36"
)
INSTAGRAM = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 Instagram 311.0.3.16.110 (iPhone14,5; iOS 17_1_2; nl_NL; nl; scale=3.00; 1170x2532; 546843227)"
)
WHATSAPP = "WhatsApp/2.23.20.0 A"
IMESSAGE = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 "
    "Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0"
)
SLACK = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"


@pytest.fixture
def link(runtime: Runtime, campaign: Campaign) -> str:
    with runtime.db.transaction() as session:
        session.add(
            Forward(
                public_id="pubF1",
                campaign_id=campaign.id,
                generation=1,
                channel="email",
                sender_name="Anna",
                recipient_contact_hash="friend",
                policy_name="custom",
                policy_version=1,
                locale="en",
            )
        )
    return f"/f/{runtime.tokens.sign(Purpose.FORWARD, 'pubF1')}"


def clicks(runtime: Runtime) -> list[tuple[bool, str | None]]:
    with runtime.db.reading() as session:
        return [(c.prefetch, c.user_agent) for c in session.scalars(select(Click).order_by(Click.id))]


def visitors(runtime: Runtime, slug: str) -> int:
    counter = analytics.VisitCounter(runtime.queue.connection)
    return analytics.campaign_metrics(runtime.db, slug, runtime.clock.now(), visits=counter).overall.visitors


def open_link(client: FlaskClient, link: str, user_agent: str, method: str = "GET") -> Any:
    return client.open(link, method=method, headers={"User-Agent": user_agent})


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """The SQL statements sent to the database meanwhile: its round trips."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement.split()[0].upper())

    event.listen(runtime.db.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", record)


@pytest.mark.parametrize("user_agent", [CHROME, INSTAGRAM])
def test_a_person_following_a_link_is_a_click_with_the_cookie(
    app: Flask, runtime: Runtime, campaign: Campaign, link: str, user_agent: str
) -> None:
    person = app.test_client()
    followed = open_link(person, link, user_agent)
    assert followed.status_code == 303
    assert REF_COOKIE in followed.headers.get("Set-Cookie", "")
    assert person.get(followed.headers["Location"], headers={"User-Agent": user_agent}).status_code == 200
    assert clicks(runtime) == [(False, user_agent[:256])]
    assert visitors(runtime, campaign.slug) == 1


@pytest.mark.parametrize("user_agent", [WHATSAPP, IMESSAGE, SLACK, ""])
def test_a_link_preview_gets_the_page_but_is_a_prefetch(
    app: Flask, runtime: Runtime, campaign: Campaign, link: str, user_agent: str
) -> None:
    bot = app.test_client()
    followed = open_link(bot, link, user_agent)
    assert followed.status_code == 303  # still sent on to the page, which the preview needs
    assert REF_COOKIE not in followed.headers.get("Set-Cookie", "")
    landing = bot.get(followed.headers["Location"], headers={"User-Agent": user_agent})
    assert landing.status_code == 200 and "<form" in landing.text
    assert clicks(runtime) == [(True, user_agent or None)]
    assert visitors(runtime, campaign.slug) == 0


def test_a_head_request_is_a_prefetch_whoever_sends_it(
    app: Flask, runtime: Runtime, campaign: Campaign, link: str
) -> None:
    checked = open_link(app.test_client(), link, CHROME, method="HEAD")
    assert checked.status_code == 303
    assert REF_COOKIE not in checked.headers.get("Set-Cookie", "")
    assert app.test_client().head(f"/c/{campaign.slug}", headers={"User-Agent": CHROME}).status_code == 200
    assert clicks(runtime) == [(True, CHROME[:256])]
    assert visitors(runtime, campaign.slug) == 0


def test_a_visitor_with_a_referral_cookie_behind_a_preview_still_counts_no_view(
    app: Flask, runtime: Runtime, campaign: Campaign, link: str
) -> None:
    # A person's click, then a scanner in the same cookie jar (a mail gateway replaying it).
    client = app.test_client()
    open_link(client, link, CHROME)
    client.get(f"/c/{campaign.slug}", headers={"User-Agent": SLACK})
    assert visitors(runtime, campaign.slug) == 0


def test_prefetches_are_counted_apart_in_the_figures(
    app: Flask, runtime: Runtime, campaign: Campaign, link: str
) -> None:
    open_link(app.test_client(), link, WHATSAPP)
    open_link(app.test_client(), link, IMESSAGE)
    open_link(app.test_client(), link, CHROME)
    m = analytics.campaign_metrics(runtime.db, campaign.slug, runtime.clock.now())
    assert (m.overall.clicks, m.overall.clicked, m.overall.prefetches) == (1, 1, 2)
    assert {c.channel: c.prefetches for c in m.channels}["email"] == 2
    assert m.overall.to_json()["prefetches"] == 2


def test_a_link_fetched_only_by_previews_is_not_clicked(
    app: Flask, runtime: Runtime, campaign: Campaign, link: str
) -> None:
    open_link(app.test_client(), link, WHATSAPP)
    m = analytics.campaign_metrics(runtime.db, campaign.slug, runtime.clock.now())
    assert (m.overall.clicks, m.overall.clicked, m.overall.prefetches) == (0, 0, 1)
    assert m.overall.click_through == 0.0 or m.overall.click_through is None


def test_a_click_and_a_prefetch_are_each_one_write(app: Flask, runtime: Runtime, link: str) -> None:
    client = app.test_client()
    open_link(client, link, CHROME)  # warm: the app's first request reads its settings
    with statements(runtime) as human:
        open_link(client, link, CHROME)
    with statements(runtime) as bot:
        open_link(client, link, WHATSAPP)
    assert [s for s in human if s == "INSERT"] == ["INSERT"]  # the click (no webhook endpoint listens)
    assert [s for s in bot if s == "INSERT"] == ["INSERT"]  # the prefetch, no event
