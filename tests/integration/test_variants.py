"""A/B variants end to end: the landing page draws a variant for a new visitor and keeps it, a
referred friend inherits the sender's or gets a draw of their own, stopped variants take nobody
new, each forward records its variant, the page, the share and the message use its words, and
the console's Variants page changes them (each change in the history)."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from engine.models import Campaign, CampaignEvent, Forward
from engine.runtime import Runtime
from engine.services.analytics import refresh_rollups
from engine.services.analytics.variants import add_variant_visits, variant_counts, variant_visits_taken
from engine.services.history import CLI
from engine.services.snapshots import snapshot_version
from engine.services.templates import upload_templates
from engine.services.variants import VariantInput, add_variant, edit_variant, set_inheritance, stop_variant
from engine.tokens import Purpose
from engine.transports.memory import MemoryTransport
from engine.web.public.variant_choice import VARIANT_COOKIE
from tests.helpers import csrf_token, forward_form, hidden_field, make_campaign, staff_client, visible_text

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"}


class Scripted(random.Random):
    """Draws what the test says, in order: randrange(total) of a 1:1 pair picks a (0) or b (1)."""

    def __init__(self, points: Sequence[int]) -> None:
        super().__init__(0)
        self.points = list(points)

    def randrange(self, *_args: object, **_kwargs: object) -> int:
        return self.points.pop(0)


def _variants(runtime: Runtime, slug: str = "spring", weights: Sequence[int] = (1, 1)) -> None:
    for number, weight in enumerate(weights):
        given = VariantInput(
            name=f"Wrapper {number}",
            weight=weight,
            wrapper="story" if number else "plain",
            offer_title=f"Title of variant {'ab'[number]}",
            share_text=f"Words of variant {'ab'[number]}" if number else "",
        )
        add_variant(runtime.db, slug, given, CLI)


def _shown(client: FlaskClient, path: str = "/c/spring") -> str:
    page = client.get(path, headers=BROWSER)
    assert page.status_code == 200
    return page.text


def _cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie(VARIANT_COOKIE, path="/c/spring")
    return cookie.value if cookie else None


def _forward(client: FlaskClient, page: str, friend: str) -> None:
    form = forward_form(page, friends=[friend], variant=hidden_field(page, "variant"))
    assert client.post("/c/spring/forward", data=form, headers=BROWSER).status_code == 303


def _variant_of_forward_to(runtime: Runtime, number: int) -> str | None:
    with runtime.db.reading() as session:
        forwards = session.scalars(select(Forward).order_by(Forward.id)).all()
        forward = forwards[number]
        return forward.variant.key if forward.variant else None


def _follow_newest(runtime: Runtime, app: Flask) -> FlaskClient:
    """A new browser that follows the newest forward's link."""
    with runtime.db.reading() as session:
        public_id = session.scalars(select(Forward.public_id).order_by(Forward.id.desc())).first()
    friend = app.test_client()
    token = runtime.tokens.sign(Purpose.FORWARD, str(public_id))
    assert friend.get(f"/f/{token}", headers=BROWSER).status_code == 303
    return friend


def test_a_campaign_without_variants_sets_no_cookie_and_its_forwards_have_none(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    client = app.test_client()
    page = _shown(client)
    assert _cookie(client) is None
    assert hidden_field(page, "variant") == ""
    _forward(client, page, "bob@example.com")
    assert _variant_of_forward_to(runtime, 0) is None
    assert variant_counts(runtime.db, campaign.id, visits=runtime.variant_visits) == ()


def test_a_visitor_keeps_their_variant_and_is_counted_once(app: Flask, runtime: Runtime, campaign: Campaign) -> None:
    _variants(runtime)
    runtime.variants.rng = Scripted([1])
    client = app.test_client()
    first = _shown(client)
    assert "Title of variant b" in visible_text(first)
    for _ in range(3):
        assert "Title of variant b" in visible_text(_shown(client))
    counts = {c.key: c for c in variant_counts(runtime.db, campaign.id, visits=runtime.variant_visits)}
    assert (counts["b"].visitors, counts["b"].views) == (1, 4)
    assert (counts["a"].visitors, counts["a"].views) == (0, 0)


def test_the_refresh_moves_a_variants_counts_out_of_redis_so_losing_redis_loses_none_folded(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    _variants(runtime)
    runtime.variants.rng = Scripted([1, 0])
    first, second = app.test_client(), app.test_client()
    for _ in range(3):
        _shown(first)
    _shown(second)

    def counted() -> dict[str, tuple[int, int]]:
        counts = variant_counts(runtime.db, campaign.id, visits=runtime.variant_visits)
        return {c.key: (c.visitors, c.views) for c in counts}

    assert counted() == {"a": (1, 1), "b": (1, 3)}
    refresh_rollups(runtime.db, "spring", runtime.clock.now(), variant_visits=runtime.variant_visits)
    assert runtime.variant_visits.totals(campaign.id) == {}  # nothing left waiting in Redis
    assert counted() == {"a": (1, 1), "b": (1, 3)}
    _shown(first)
    assert counted() == {"a": (1, 1), "b": (1, 4)}  # the table's, and what waits since
    runtime.queue.connection.flushdb()  # type: ignore[attr-defined]  # Redis loses everything
    assert counted() == {"a": (1, 1), "b": (1, 3)}  # only the view since the refresh is gone

    # A refresh that fails gives what it took back to Redis: nothing counted twice or lost.
    _shown(second)
    with pytest.raises(RuntimeError), runtime.db.transaction() as session:
        with variant_visits_taken(runtime.variant_visits, campaign.id) as taken:
            add_variant_visits(session, campaign.id, taken)
            raise RuntimeError("the refresh fails")
    assert counted() == {"a": (1, 2), "b": (1, 3)}
    refresh_rollups(runtime.db, "spring", runtime.clock.now(), variant_visits=runtime.variant_visits)
    assert counted() == {"a": (1, 2), "b": (1, 3)}


def test_the_forward_post_records_the_variant_and_the_message_uses_its_words(
    app: Flask, runtime: Runtime, campaign: Campaign, transport: MemoryTransport
) -> None:
    _variants(runtime)
    runtime.variants.rng = Scripted([1])
    client = app.test_client()
    page = _shown(client)
    _forward(client, page, "bob@example.com")
    assert _variant_of_forward_to(runtime, 0) == "b"
    runtime.queue.drain()
    runtime.delivery.dispatch()
    assert any("Title of variant b" in email.text for email in transport.emails)
    counts = {c.key: c for c in variant_counts(runtime.db, campaign.id, visits=runtime.variant_visits)}
    assert (counts["b"].forwards, counts["b"].invites, counts["b"].senders) == (1, 1, 1)


def test_a_share_uses_the_variants_own_words_and_is_its_forward(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    _variants(runtime)
    runtime.variants.rng = Scripted([1])
    client = app.test_client()
    page = _shown(client)
    shared = client.post(
        "/c/spring/share", data={"csrf_token": csrf_token(page), "channel": "whatsapp"}, headers=BROWSER
    )
    assert shared.status_code == 303
    assert "Words%20of%20variant%20b" in shared.headers["Location"]
    assert _variant_of_forward_to(runtime, 0) == "b"


@pytest.mark.parametrize(("mode", "expected"), [("inherit", ["b", "b", "b"]), ("fresh", ["b", "a", "b"])])
def test_three_generations_inherit_or_draw_by_the_campaigns_mode(
    app: Flask, runtime: Runtime, campaign: Campaign, mode: str, expected: list[str]
) -> None:
    _variants(runtime)
    set_inheritance(runtime.db, "spring", mode, CLI)
    # The draws, in order: the first visitor's, then (fresh only) each friend's.
    runtime.variants.rng = Scripted([1, 0, 1])
    client = app.test_client()
    for generation, friend in enumerate(("bob@example.com", "carol@example.com", "dan@example.com")):
        page = _shown(client)
        _forward(client, page, friend)
        assert _variant_of_forward_to(runtime, generation) == expected[generation]
        client = _follow_newest(runtime, app)
    with runtime.db.reading() as session:
        generations = session.scalars(select(Forward.generation).order_by(Forward.id)).all()
    assert generations == [1, 2, 3]


def test_a_stopped_variant_takes_no_one_new_and_its_visitors_are_drawn_again(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    _variants(runtime)
    runtime.variants.rng = Scripted([0])
    client = app.test_client()
    assert "Title of variant a" in visible_text(_shown(client))
    kept = _cookie(client)
    stop_variant(runtime.db, "spring", "a", CLI)
    runtime.variants.rng = random.Random(5)
    assert "Title of variant b" in visible_text(_shown(client))
    assert _cookie(client) not in (None, kept)
    for _ in range(20):
        assert "Title of variant b" in visible_text(_shown(app.test_client()))


def test_a_changed_variant_moves_the_snapshot_on_and_the_next_view_shows_it(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    _variants(runtime, weights=(1,))
    client = app.test_client()
    assert "Title of variant a" in visible_text(_shown(client))
    with runtime.db.reading() as session:
        before = snapshot_version(session)
    edit_variant(runtime.db, "spring", "a", VariantInput("Wrapper 0", 1, "plain", offer_title="Brand new words"), CLI)
    with runtime.db.reading() as session:
        assert snapshot_version(session) != before
    assert "Brand new words" in visible_text(_shown(client))


def test_the_variants_page_adds_edits_and_stops_and_the_history_says_so(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    client = staff_client(app, "marketer")
    page = client.get("/console/campaigns/spring/variants").text
    assert "No variants" in visible_text(page)
    refused = client.post(
        "/console/campaigns/spring/variants",
        data={"csrf_token": csrf_token(page), "name": "Story", "weight": "0", "wrapper": "story"},
    )
    assert refused.status_code == 422
    assert "A weight is a whole number from 1 to 1000." in visible_text(refused.text)
    for name, weight in (("Plain", "3"), ("Story", "1")):
        added = client.post(
            "/console/campaigns/spring/variants",
            data={"csrf_token": csrf_token(page), "name": name, "weight": weight, "wrapper": "plain"},
        )
        assert added.status_code == 303
    listed = visible_text(client.get("/console/campaigns/spring/variants").text)
    assert "75.0 %" in listed and "25.0 %" in listed
    edited = client.post(
        "/console/campaigns/spring/variants/b",
        data={
            "csrf_token": csrf_token(page),
            "name": "Story",
            "weight": "1",
            "wrapper": "quiz",
            "offer_title": "Q?",
            "quiz_question": "Which?",
            "quiz_answer_1": "This",
            "quiz_answer_2": "That",
        },
    )
    assert edited.status_code == 303
    assert (
        client.post("/console/campaigns/spring/variants/a/stop", data={"csrf_token": csrf_token(page)}).status_code
        == 303
    )
    last = client.post("/console/campaigns/spring/variants/b/stop", data={"csrf_token": csrf_token(page)})
    assert last.status_code == 422
    assert "At least one variant must take new visitors" in visible_text(last.text)
    with runtime.db.reading() as session:
        actions = session.scalars(select(CampaignEvent.action).where(CampaignEvent.action == "variants")).all()
    assert len(actions) == 4  # two added, one edited, one stopped
    figures = client.get("/api/v1/campaigns/spring/variants").get_json()
    assert [(v["key"], v["wrapper"], v["stopped"]) for v in figures["variants"]] == [
        ("a", "plain", True),
        ("b", "quiz", False),
    ]


def test_a_policy_without_incentives_refuses_a_contest_or_coupon_wrapper(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "strict", policy_name="eu-strict", policy_settings={})
    client = staff_client(app, "marketer")
    page = client.get("/console/campaigns/strict/variants").text
    refused = client.post(
        "/console/campaigns/strict/variants",
        data={"csrf_token": csrf_token(page), "name": "Win", "weight": "1", "wrapper": "contest"},
    )
    assert refused.status_code == 422
    assert "allows no incentives" in visible_text(refused.text)


def test_one_landing_template_speaks_per_variant_and_passes_the_upload_checks(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    landing = (
        '{% if variant == "b" %}<p>A story ({{ wrapper }}): {{ offer_title }}</p>'
        "{% else %}<p>Plainly: {{ offer_title }}</p>{% endif %}"
    )
    report = upload_templates(runtime.db, runtime.renderer, "spring", {"landing.html": landing.encode()})
    assert report.accepted, report
    refused = upload_templates(runtime.db, runtime.renderer, "spring", {"landing.html": b"{{ variant.__class__ }}"})
    assert not refused.accepted
    _variants(runtime)
    runtime.variants.rng = Scripted([1, 0])
    assert "A story (story): Title of variant b" in visible_text(_shown(app.test_client()))
    assert "Plainly: Title of variant a" in visible_text(_shown(app.test_client()))


def test_the_embedded_form_carries_its_variant_without_a_cookie(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "spring", embed_origins=["https://shop.example"])
    _variants(runtime)
    runtime.variants.rng = Scripted([1])
    frame = app.test_client(use_cookies=False)
    page = frame.get("/c/spring/embed", query_string={"origin": "https://shop.example"}, headers=BROWSER)
    assert page.status_code == 200
    assert "Set-Cookie" not in page.headers
    origin = re.search(r'type="hidden" name="origin" value="([^"]*)"', page.text)
    assert origin is not None
    fields = {
        "origin": origin.group(1),
        "mode": "button",
        "rendered": hidden_field(page.text, "rendered"),
        "variant": hidden_field(page.text, "variant"),
        "website": "",
        "sender_name": "Anna",
        "friend": ["bob@example.com"],
    }
    assert frame.post("/c/spring/embed", data=fields, headers=BROWSER).status_code == 303
    assert _variant_of_forward_to(runtime, 0) == "b"


def test_a_form_shown_again_keeps_the_variant_it_was_sent_from(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    _variants(runtime)
    runtime.variants.rng = Scripted([1])
    client = app.test_client()
    page = _shown(client)
    form = forward_form(page, friends=["not-an-address"], variant=hidden_field(page, "variant"))
    again = client.post("/c/spring/forward", data=form, headers=BROWSER)
    assert again.status_code == 422
    assert "Title of variant b" in visible_text(again.text)
    assert hidden_field(again.text, "variant") == hidden_field(page, "variant")


def test_the_landing_view_and_the_forward_post_read_no_variant_row_while_the_copy_is_current(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    _variants(runtime)
    runtime.variants.rng = Scripted([1, 0])
    _shown(app.test_client())  # this process reads the campaign, its variants among it, once
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(runtime.db.engine, "before_cursor_execute", record)
    try:
        client = app.test_client()
        page = _shown(client)
        _forward(client, page, "bob@example.com")
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", record)
    assert sent, "no statement recorded"
    assert [s for s in sent if "FROM campaign_variants" in s] == []
    assert _variant_of_forward_to(runtime, 0) == "a"
