"""The landing page's form, kept per process after its first render (engine.form_html):
what a later visitor gets from it is byte for byte what a render gives them, with their own
tokens in it; what one visitor typed never reaches another; and a change to the campaign shows
at once."""

from __future__ import annotations

import re
from itertools import count

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine.models import Campaign, Forward
from engine.runtime import Runtime
from engine.services.history import CLI
from engine.services.variants import VariantInput, add_variant
from engine.tokens import Purpose
from tests.helpers import forward_form, hidden_field, make_campaign, submission

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"}


@pytest.fixture
def fixed_stamps(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Render stamps a test can foresee: each page's is `stamp-<n>`, in order."""
    numbers = count(1)
    monkeypatch.setattr(runtime.intake, "new_stamp", lambda *_args, **_kwargs: f"stamp-{next(numbers)}")


def _form_of(html: str) -> str:
    start = html.index('<section class="card" aria-labelledby="forward-heading"')
    return html[start : html.index("</section>", start)]


def _kept(runtime: Runtime) -> int:
    return len(runtime.landing_forms)


def _page(client: FlaskClient, path: str = "/c/spring") -> str:
    response = client.get(path, headers=BROWSER)
    assert response.status_code == 200
    return response.text


def test_a_kept_form_is_what_a_render_gives_with_the_visitors_own_tokens(
    app: Flask, runtime: Runtime, campaign: Campaign, fixed_stamps: None
) -> None:
    anna = app.test_client()
    rendered = _page(anna)  # the first view renders the form, and keeps it
    assert _kept(runtime) == 1
    again = _page(anna)  # the same visitor again: the kept form, with the next stamp
    # (the CSRF token is re-signed with the time: the same session's may differ by a second)
    same_token = again.replace(hidden_field(again, "csrf_token"), hidden_field(rendered, "csrf_token"))
    assert same_token.replace("stamp-2", "stamp-1") == rendered
    bob = app.test_client()
    bobs = _form_of(_page(bob))
    assert hidden_field(bobs, "rendered") == "stamp-3"
    assert hidden_field(bobs, "csrf_token") != hidden_field(rendered, "csrf_token")  # his own session's
    assert _kept(runtime) == 1


def test_a_visitor_on_a_kept_form_forwards_as_on_a_rendered_one(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    _page(app.test_client())
    bob = app.test_client()
    page = _page(bob)  # from the kept form
    sent = bob.post("/c/spring/forward", data=forward_form(page, sender_name="Bob"), headers=BROWSER)
    assert sent.status_code == 303
    with runtime.db.reading() as session:
        assert session.scalars(select(Forward.sender_name)).all() == ["Bob"]


def test_a_friend_through_a_link_with_a_variant_gets_their_referral_and_variant_in_the_kept_form(
    app: Flask, runtime: Runtime, campaign: Campaign, fixed_stamps: None
) -> None:
    add_variant(runtime.db, "spring", VariantInput(name="Only", weight=1, wrapper="plain"), CLI)
    for friend in ("bob@example.com", "carol@example.com", "dan@example.com"):
        runtime.forwarding.submit("spring", submission(friend))
    with runtime.db.reading() as session:
        forwards = session.scalars(select(Forward.public_id).order_by(Forward.id)).all()
    pages = []
    for public_id in forwards:  # the first renders the form; the others get the kept one
        friend = app.test_client()
        assert friend.get(f"/f/{runtime.tokens.sign(Purpose.FORWARD, public_id)}").status_code == 303
        pages.append(_page(friend))
    refs = [hidden_field(page, "ref") for page in pages]
    variants = [hidden_field(page, "variant") for page in pages]
    assert all(refs) and all(variants) and len(set(refs)) == 3
    # Each page's form is the render with that visitor's values: the kept one with theirs.
    shown = [_form_of(page) for page in pages]
    for page, ref, variant in zip(shown, refs, variants, strict=True):
        assert f'value="{ref}"' in page and f'value="{variant}"' in page
    assert re.sub(r'value="[^"]*"', "", shown[1]) == re.sub(r'value="[^"]*"', "", shown[2])


def test_what_a_visitor_typed_never_reaches_the_next_visitor(app: Flask, runtime: Runtime, campaign: Campaign) -> None:
    anna = app.test_client()
    page = _page(anna)
    refused = anna.post(
        "/c/spring/forward",
        data=forward_form(page, sender_name="Anna", friends=["not-an-address", "dora@example.com"]),
        headers=BROWSER,
    )
    assert refused.status_code == 422 and "dora@example.com" in refused.text
    for visitor in (app.test_client(), anna):
        fresh = _page(visitor)
        assert "dora@example.com" not in fresh and "not-an-address" not in fresh
        assert 'value="Anna"' not in fresh


def test_a_change_to_the_campaign_shows_in_the_next_form(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "spring", max_friends_per_submission=5)
    assert 'data-max="5"' in _page(app.test_client())
    with runtime.db.transaction() as session:
        found = session.scalar(select(Campaign).where(Campaign.slug == "spring"))
        assert found is not None
        found.max_friends_per_submission = 2
    assert 'data-max="2"' in _page(app.test_client())
    # Each language its own form.
    with runtime.db.transaction() as session:
        found = session.scalar(select(Campaign).where(Campaign.slug == "spring"))
        assert found is not None
        found.locales = ["en", "nl"]
    english, dutch = _page(app.test_client(), "/c/spring?lang=en"), _page(app.test_client(), "/c/spring?lang=nl")
    assert "Send this offer to a friend" in english and "Send this offer to a friend" not in dutch
    assert 'name="locale" type="hidden" value="nl"' in dutch or 'value="nl"' in _form_of(dutch)
