"""A landing page's hero video: its settings (console), the page's markup and its CSP (that
campaign's page only), plays counted once per stamp, and the plays in the dashboard and the API."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine.models import Campaign, CampaignTemplate, VideoPlay
from engine.runtime import Runtime
from engine.services.analytics.plays import PLAY_FLOOD_LIMIT, PlayCounter, PlayStamp
from engine.tokens import PLAY_MAX_AGE_SECONDS, Purpose
from engine.web.security import CONTENT_SECURITY_POLICY
from tests.helpers import make_campaign, staff_client, static_path
from tests.integration.test_campaigns_console import edit_form

FILE_VIDEO = {"url": "https://media.acme.example/spring.mp4", "caption": "Spring in the shop"}
YOUTUBE_VIDEO = {"url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "caption": "Spring in the shop"}
HOSTS = ["media.acme.example"]


def video_campaign(runtime: Runtime, slug: str = "spring", **video: str) -> Campaign:
    return make_campaign(runtime.db, slug, media_hosts=HOSTS, landing_video={**FILE_VIDEO, **video})


def play_stamp(html: str) -> str:
    found = re.search(r'data-play-stamp="([^"]+)"', html)
    assert found, "the page carries no play stamp"
    return found.group(1)


def post_play(client: FlaskClient, slug: str, stamp: str | None, ip: str = "198.51.100.7") -> Any:
    data = {} if stamp is None else {"stamp": stamp}
    return client.post(f"/c/{slug}/play", data=data, environ_base={"REMOTE_ADDR": ip})


def metrics(app: Flask) -> dict[str, Any]:
    marketer = staff_client(app, "marketer")
    response = marketer.get("/api/v1/campaigns/spring/metrics")
    assert response.status_code == 200
    return response.get_json()


# -- settings -------------------------------------------------------------------------------------------


def campaign_form(client: FlaskClient, **changes: str) -> dict[str, Any]:
    return edit_form(client, **changes)


@pytest.mark.parametrize(
    ("typed", "stored_url"),
    [
        ({"video_url": "https://media.acme.example/spring.mp4"}, "https://media.acme.example/spring.mp4"),
        ({"video_url": "https://MEDIA.acme.example/v/spring.webm"}, "https://MEDIA.acme.example/v/spring.webm"),
        ({"video_url": "https://youtu.be/dQw4w9WgXcQ"}, "https://youtu.be/dQw4w9WgXcQ"),
        ({"video_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=3"}, None),
        ({"video_url": "https://vimeo.com/76979871"}, "https://vimeo.com/76979871"),
    ],
)
def test_a_marketer_sets_a_video(app: Flask, runtime: Runtime, typed: dict[str, str], stored_url: str | None) -> None:
    make_campaign(runtime.db)
    marketer = staff_client(app, "marketer")
    values = campaign_form(
        marketer,
        media_hosts="media.acme.example",
        video_caption="Spring in the shop",
        video_poster="https://media.acme.example/poster.jpg",
        **typed,
    )
    response = marketer.post("/console/campaigns/spring/edit", data=values)
    assert response.status_code == 303, response.text
    with runtime.db.reading() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.slug == "spring")).one()
        assert campaign.media_hosts == ["media.acme.example"]
        assert campaign.landing_video["url"] == (stored_url or typed["video_url"])
        assert campaign.landing_video["poster"] == "https://media.acme.example/poster.jpg"


@pytest.mark.parametrize(
    ("typed", "field", "words"),
    [
        (
            {"video_url": "https://cdn.elsewhere.example/spring.mp4"},
            "video_url",
            "not one of the campaign's media hosts",
        ),
        ({"video_url": "http://media.acme.example/spring.mp4"}, "video_url", "https://"),
        ({"video_url": "javascript:alert(1)"}, "video_url", "https://"),
        ({"video_url": "data:video/mp4;base64,AAAA"}, "video_url", "https://"),
        ({"video_url": "https://media.acme.example/spring.mov"}, "video_url", ".mp4 or .webm"),
        ({"video_url": "https://www.youtube.com/watch?v=short"}, "video_url", "YouTube address"),
        ({"video_url": "https://www.youtube.com/channel/UC123"}, "video_url", "YouTube address"),
        ({"video_url": "https://vimeo.com/about"}, "video_url", "Vimeo address"),
        ({"video_url": 'https://media.acme.example/a".mp4'}, "video_url", "quotes"),
        ({"video_caption": ""}, "video_caption", "title"),
        ({"video_poster": "https://cdn.elsewhere.example/p.jpg"}, "video_poster", "media hosts"),
        ({"video_poster": "http://media.acme.example/p.jpg"}, "video_poster", "https://"),
        ({"video_captions": "https://media.acme.example/c.srt"}, "video_captions", ".vtt"),
        ({"media_hosts": "https://media.acme.example/"}, "media_hosts", "not a host name"),
        ({"video_url": "", "video_reveal_form": "after-video"}, "video_reveal_form", "a video"),
        ({"video_reveal_form": "at-once"}, "video_reveal_form", "Not a valid choice"),
    ],
)
def test_a_bad_video_setting_is_refused_and_nothing_is_stored(
    app: Flask, runtime: Runtime, typed: dict[str, str], field: str, words: str
) -> None:
    make_campaign(runtime.db)
    marketer = staff_client(app, "marketer")
    values = campaign_form(
        marketer,
        media_hosts="media.acme.example",
        video_url="https://media.acme.example/spring.mp4",
        video_caption="Spring in the shop",
    )
    values.update(typed)
    response = marketer.post("/console/campaigns/spring/edit", data=values)
    assert response.status_code == 422
    # The problem is said beside its own input.
    errors = re.search(rf'id="{field}".*?<ul class="errors">(.*?)</ul>', response.text, re.S)
    assert errors and words.lower() in html.unescape(errors.group(1)).lower(), response.text
    with runtime.db.reading() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.slug == "spring")).one()
        assert campaign.landing_video == {} and campaign.media_hosts == []


# -- the page and its policy ----------------------------------------------------------------------------


def test_a_self_hosted_video_plays_from_its_host_and_only_that_page_allows_it(app: Flask, runtime: Runtime) -> None:
    video_campaign(runtime, captions="https://media.acme.example/spring.vtt", poster="https://media.acme.example/p.jpg")
    make_campaign(runtime.db, "autumn")
    client = app.test_client()
    page = client.get("/c/spring")
    assert page.status_code == 200
    assert '<video controls preload="none" playsinline poster="https://media.acme.example/p.jpg"' in page.text
    assert '<source src="https://media.acme.example/spring.mp4" type="video/mp4">' in page.text
    assert '<track kind="captions" src="https://media.acme.example/spring.vtt"' in page.text
    assert page.headers["Content-Security-Policy"] == (
        "default-src 'self'; media-src https://media.acme.example; "
        + CONTENT_SECURITY_POLICY.removeprefix("default-src 'self'; ")
    )
    # Every other page and campaign keeps the strict policy.
    for other in ("/c/autumn", "/healthz", "/login"):
        assert client.get(other).headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    ("url", "origin", "player"),
    [
        (
            "https://youtu.be/dQw4w9WgXcQ",
            "https://www.youtube-nocookie.com",
            "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ",
        ),
        ("https://vimeo.com/76979871", "https://player.vimeo.com", "https://player.vimeo.com/video/76979871?dnt=1"),
    ],
)
def test_a_provider_player_is_a_facade_until_play_is_pressed(
    app: Flask, runtime: Runtime, url: str, origin: str, player: str
) -> None:
    video_campaign(runtime, url=url, caption="Spring in the shop", poster="https://media.acme.example/p.jpg")
    page = app.test_client().get("/c/spring")
    assert page.headers["Content-Security-Policy"] == (
        f"default-src 'self'; frame-src {origin}; " + CONTENT_SECURITY_POLICY.removeprefix("default-src 'self'; ")
    )
    # Nothing on the page loads from the provider: no frame, no src or poster of its host.
    assert "<iframe" not in page.text
    sources = re.findall(r'\b(?:src|poster|srcset)="([^"]*)"', page.text)
    assert not [s for s in sources if "youtube" in s or "vimeo" in s]
    # The player's address waits in the facade; the button and a link for browsers without JS.
    assert f'data-player="{player}' in page.text
    assert (
        '<button type="button" class="video-play" data-play-button hidden>Play the video: Spring in the shop</button>'
        in page.text
    )
    assert re.search(r'<a class="video-play" href="https://(www\.youtube\.com/watch\?v=|vimeo\.com/)', page.text)
    assert f'<script src="{static_path("video.js")}" defer></script>' in page.text


def test_a_stored_video_whose_host_was_removed_is_not_shown(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, media_hosts=[], landing_video=dict(FILE_VIDEO))
    page = app.test_client().get("/c/spring")
    assert "<video" not in page.text
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_the_landing_template_places_the_video_and_the_form_waits_for_it(app: Flask, runtime: Runtime) -> None:
    campaign = video_campaign(runtime, **FILE_VIDEO, reveal_form="after-video")
    own = '<h1>{{ offer_title }}</h1><section class="story">{{ video }}</section><p>{{ brand_name }}</p>'
    with runtime.db.transaction() as session:
        session.add(CampaignTemplate(campaign_id=campaign.id, name="landing.html", version=99, body=own))
    page = app.test_client().get("/c/spring")
    # The video where the template put it, once; the form marked to wait, the skip button there.
    assert re.search(r'<section class="story"><figure class="card video" data-video', page.text)
    assert page.text.count("<video ") == 1
    assert 'id="forward" data-reveal="after-video"' in page.text
    assert "data-skip-video hidden>Skip the video</button>" in page.text
    # Without JavaScript the form is simply there (nothing but the script hides it).
    assert '<form method="post" action="/c/spring/forward"' in page.text


def test_without_a_video_the_placeholder_prints_nothing(app: Flask, runtime: Runtime) -> None:
    campaign = make_campaign(runtime.db)
    with runtime.db.transaction() as session:
        session.add(
            CampaignTemplate(campaign_id=campaign.id, name="landing.html", version=99, body="<p>{{ video }}</p>")
        )
    page = app.test_client().get("/c/spring")
    assert "<p></p>" in page.text and "data-fluister-video" not in page.text
    assert "data-reveal" not in page.text


# -- plays ----------------------------------------------------------------------------------------------


def test_a_play_counts_once_per_page_view(app: Flask, runtime: Runtime) -> None:
    video_campaign(runtime)
    client = app.test_client()
    first, second = play_stamp(client.get("/c/spring").text), play_stamp(client.get("/c/spring").text)
    assert post_play(client, "spring", first).status_code == 204
    replayed = post_play(client, "spring", first)
    assert replayed.status_code == 409 and replayed.mimetype == "application/problem+json"
    assert post_play(client, "spring", second).status_code == 204
    figures = metrics(app)
    assert figures["overall"]["plays"] == 2 and figures["overall"]["visitors"] == 2
    assert [stage["stage"] for stage in figures["funnel"]][:3] == ["visitors", "plays", "senders"]
    assert figures["funnel"][1]["count"] == 2
    with runtime.db.reading() as session:
        assert session.scalar(select(VideoPlay.count)) == 2


def test_plays_are_folded_by_a_refresh(app: Flask, runtime: Runtime) -> None:
    video_campaign(runtime)
    client = app.test_client()
    assert post_play(client, "spring", play_stamp(client.get("/c/spring").text)).status_code == 204
    result = app.test_cli_runner().invoke(args=["analytics", "refresh", "spring"])
    assert result.exit_code == 0, result.output
    with runtime.db.reading() as session:
        assert session.scalar(select(VideoPlay.count)) == 1


def test_the_dashboard_shows_plays_in_the_funnel(app: Flask, runtime: Runtime) -> None:
    video_campaign(runtime)
    client = app.test_client()
    post_play(client, "spring", play_stamp(client.get("/c/spring").text))
    page = staff_client(app, "marketer").get("/console/campaigns/spring/dashboard")
    assert page.status_code == 200
    # Among the rates beside the funnel: a play is no part of the forwards.
    assert re.search(r"<dt>Video plays</dt><dd>1</dd>", page.text)


def forged(runtime: Runtime, payload: str) -> str:
    return runtime.tokens.sign(Purpose.PLAY, payload)


@pytest.mark.parametrize(
    ("stamp", "status", "reason"),
    [
        (None, 400, "missing"),
        ("", 400, "missing"),
        ("not-a-stamp", 400, "invalid"),
        ("forged", 400, "invalid"),
        ("other campaign", 400, "other-campaign"),
    ],
)
def test_a_bad_play_is_refused_and_not_counted(
    app: Flask, runtime: Runtime, stamp: str | None, status: int, reason: str
) -> None:
    campaign = video_campaign(runtime)
    video_campaign(runtime, "autumn")
    client = app.test_client()
    real = play_stamp(client.get("/c/spring").text)
    if stamp == "forged":
        stamp = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    elif stamp == "other campaign":
        stamp = play_stamp(client.get("/c/autumn").text)
    response = post_play(client, "spring", stamp)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["reason"] == reason
    assert metrics(app)["overall"]["plays"] == 0
    assert campaign.id  # the stamp of spring's own page still counts afterwards
    assert post_play(client, "spring", real).status_code == 204


def test_an_expired_stamp_is_refused(app: Flask, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign = video_campaign(runtime)
    payload = PlayStamp(campaign.id, "spring", 1, "direct", "nonce1").payload()
    # Signed long ago: stamps are on the wall clock, like every signed token.
    signed_at = time.time() - PLAY_MAX_AGE_SECONDS - 60
    with monkeypatch.context() as patched:
        patched.setattr(time, "time", lambda: signed_at)
        stamp = forged(runtime, payload)
    response = post_play(app.test_client(), "spring", stamp)
    assert response.status_code == 410 and response.get_json()["reason"] == "expired"


def test_a_flood_of_plays_from_one_connection_is_refused(app: Flask, runtime: Runtime) -> None:
    campaign = video_campaign(runtime)
    client = app.test_client()
    for n in range(PLAY_FLOOD_LIMIT):
        stamp = forged(runtime, PlayStamp(campaign.id, "spring", 1, "direct", f"n{n}").payload())
        assert post_play(client, "spring", stamp).status_code == 204
    last = forged(runtime, PlayStamp(campaign.id, "spring", 1, "direct", "one-more").payload())
    response = post_play(client, "spring", last)
    assert response.status_code == 429 and response.get_json()["reason"] == "flood"
    # Another connection still counts.
    assert post_play(client, "spring", last, ip="203.0.113.9").status_code == 204
    assert metrics(app)["overall"]["plays"] == PLAY_FLOOD_LIMIT + 1


def test_a_huge_play_body_is_refused(app: Flask, runtime: Runtime) -> None:
    video_campaign(runtime)
    response = app.test_client().post("/c/spring/play", data={"stamp": "x" * 5000})
    assert response.status_code == 413 and response.mimetype == "application/problem+json"


def test_the_openapi_spec_names_plays(app: Flask) -> None:
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    assert "plays" in spec["components"]["schemas"]["MetricsSlice"]["properties"]
    stages = spec["components"]["schemas"]["CampaignMetrics"]["properties"]["funnel"]["items"]["properties"]["stage"]
    assert "plays" in stages["enum"]


def test_a_play_while_redis_is_unreachable_is_a_503_and_the_page_still_shows(app: Flask, runtime: Runtime) -> None:
    video_campaign(runtime)
    runtime.plays = PlayCounter(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2), runtime.tokens)
    client = app.test_client()
    page = client.get("/c/spring")
    assert page.status_code == 200 and "<video " in page.text
    response = post_play(client, "spring", play_stamp(page.text))
    assert response.status_code == 503 and response.mimetype == "application/problem+json"
