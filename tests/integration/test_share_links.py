"""Share buttons: the consumer shares the offer from their own apps, and every share is a
tracked forward with its channel, so the friends who click it are attributed."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine.models import Click, Forward, Message
from engine.runtime import Runtime
from engine.sharing import ShareButton
from engine.web.security import CONTENT_SECURITY_POLICY
from tests.helpers import copy_button, count, csrf_token, forward_form, make_campaign, static_path


def share(client: FlaskClient, slug: str, channel: str, ip: str = "203.0.113.7"):  # type: ignore[no-untyped-def]
    page = client.get(f"/c/{slug}")
    return client.post(
        f"/c/{slug}/share",
        data={"csrf_token": csrf_token(page.text), "channel": channel},
        environ_base={"REMOTE_ADDR": ip},
    )


def tracked_link(text: str) -> str:
    match = re.search(r"https?://[^\s\"'&<]+/f/[\w.-]+", text)
    assert match, "no tracked link"
    return match.group(0)


@pytest.mark.parametrize(
    ("channel", "target"),
    [
        ("whatsapp", "https://wa.me/?text="),
        ("sms", "sms:?&body="),
        ("email", "mailto:?subject="),
        ("facebook", "https://www.facebook.com/sharer/sharer.php?u="),
        ("x", "https://x.com/intent/post?"),
        ("linkedin", "https://www.linkedin.com/sharing/share-offsite/?url="),
    ],
)
def test_each_share_button_opens_the_app_with_a_tracked_link(
    app: Flask, runtime: Runtime, campaign, channel: str, target: str
) -> None:  # type: ignore[no-untyped-def]
    shared = share(app.test_client(), "spring", channel)
    assert shared.status_code == 303
    location = shared.headers["Location"]
    assert location.startswith(target)
    assert "/f/" in unquote(location)
    with runtime.db.reading() as session:
        forward = session.scalars(select(Forward)).one()
    assert forward.channel == f"share-{channel}"
    assert forward.recipient_contact is None and forward.generation == 1
    assert count(runtime.db, Message) == 0  # the consumer sends it, not us
    # The app the browser is sent on to must be one the page's CSP lets a form go to.
    form_action = next(d for d in CONTENT_SECURITY_POLICY.split("; ") if d.startswith("form-action"))
    assert any(location.startswith(source) for source in form_action.split()[1:] if source != "'self'")


def test_a_friend_who_clicks_a_shared_link_is_the_next_generation(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    first = app.test_client()
    location = share(first, "spring", "whatsapp").headers["Location"]
    link = tracked_link(unquote(parse_qs(urlsplit(location).query)["text"][0]))
    friend = app.test_client()
    landed = friend.get(urlsplit(link).path)
    assert landed.status_code == 303
    # The friend forwards in turn, and shares too: both hang under the shared forward.
    form = forward_form(friend.get("/c/spring").text, friends=["carol@example.com"])
    assert friend.post("/c/spring/forward", data=form).status_code == 303
    assert share(friend, "spring", "sms").status_code == 303
    with runtime.db.reading() as session:
        forwards = session.scalars(select(Forward).order_by(Forward.id)).all()
        clicks = count(runtime.db, Click)
    root, by_email, by_sms = forwards
    assert (root.channel, by_email.channel, by_sms.channel) == ("share-whatsapp", "email", "share-sms")
    assert by_email.parent_id == root.id and by_sms.parent_id == root.id
    assert by_email.generation == by_sms.generation == 2
    assert clicks == 1


def test_copy_link_shows_the_link_on_a_page_of_ours(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    page = share(app.test_client(), "spring", "link")
    assert page.status_code == 200
    assert "Your link to share" in page.text
    assert "/f/" in tracked_link(page.text)
    button = copy_button(page.text, "share-link")
    assert button["text"] == "Copy link" and "hidden" in button and button["status"] == "status"
    assert static_path("copy.js") in page.text


def test_a_share_only_campaign_shows_share_buttons_and_no_form(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "uk", policy_name="share-only", policy_settings={})
    page = app.test_client().get("/c/uk").text
    assert "Send this offer to a friend" not in page
    assert "Share this offer" in page
    for channel in ShareButton:
        assert f'value="{channel.value}"' in page
    assert share(app.test_client(), "uk", "whatsapp").status_code == 303


def test_shares_count_against_the_address_cap(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "tight", caps={"submissions_per_ip_per_hour": 2})
    client = app.test_client()
    assert share(client, "tight", "link").status_code == 200
    assert share(client, "tight", "sms").status_code == 303
    refused = share(client, "tight", "whatsapp")
    assert refused.status_code == 429
    assert "Retry-After" in refused.headers
    assert count(runtime.db, Forward) == 2


@pytest.mark.parametrize("channel", ["", "telegram", "x" * 100])
def test_an_unknown_way_to_share_is_a_clear_400(app: Flask, runtime: Runtime, campaign, channel: str) -> None:  # type: ignore[no-untyped-def]
    answer = share(app.test_client(), "spring", channel)
    assert answer.status_code == 400
    assert "Choose one of the ways to share" in answer.text
    assert count(runtime.db, Forward) == 0


def test_a_share_without_the_forms_token_is_refused(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    answer = app.test_client().post("/c/spring/share", data={"channel": "sms"})
    assert answer.status_code == 400
    assert count(runtime.db, Forward) == 0


def test_the_link_page_offers_the_share_sheet(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    page = share(app.test_client(), "spring", "link").text
    button = re.search(r"<button[^>]*data-web-share[^>]*>", page)
    assert button and " hidden" in button.group(0)  # shown by the script only where navigator.share exists
    assert 'data-url="http://fluister.test/f/' in button.group(0)
    assert f'<script type="module" src="{static_path("share.js")}">' in page
    assert app.test_client().get("/static/share.js").status_code == 200


@pytest.mark.parametrize(
    ("offer", "text"),
    [
        ("Ten percent off", "Ten percent off from Acme: "),
        # An offer that names its brand is not told whose it is twice.
        ("A free coffee from ACME", "A free coffee from ACME: "),
    ],
)
def test_the_shared_text_names_the_brand_once(app: Flask, runtime: Runtime, offer: str, text: str) -> None:
    make_campaign(runtime.db, "named", offer_title=offer)
    location = unquote(share(app.test_client(), "named", "whatsapp").headers["Location"])
    assert location.startswith(f"https://wa.me/?text={text}http")
