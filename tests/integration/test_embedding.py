"""The send-to-friend form embedded on a brand's own site: who may frame it (frame-ancestors,
exactly the campaign's origins; every other page stays unframeable), the snippet's
configuration (CORS for listed origins only), and the form posted from a frame with no cookie
at all (its signed, campaign-bound stamp stands in for the session's CSRF token)."""

from __future__ import annotations

import gzip
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer

from engine import PROJECT_ROOT
from engine.models import Campaign, Forward, Message
from engine.runtime import Runtime
from engine.tokens import Purpose
from tests.helpers import count, form_values, hidden_field, make_campaign

SHOP = "https://shop.example"
OUTLET = "http://localhost:8080"
STRANGER = "https://evil.example"


@pytest.fixture
def embeddable(runtime: Runtime) -> Campaign:
    return make_campaign(runtime.db, "spring", embed_origins=[SHOP, OUTLET])


def cookieless(app: Flask) -> FlaskClient:
    """A client that keeps no cookie: a frame on another site, where none is sent."""
    return app.test_client(use_cookies=False)


def frame_ancestors(response) -> str:  # type: ignore[no-untyped-def]
    policy = response.headers["Content-Security-Policy"]
    return next(d for d in policy.split("; ") if d.startswith("frame-ancestors")).removeprefix("frame-ancestors ")


def embed_form(client: FlaskClient, host: str = SHOP, slug: str = "spring"):  # type: ignore[no-untyped-def]
    return client.get(f"/c/{slug}/embed", query_string={"origin": host})


def posted(page_html: str, **extra: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "origin": hidden_field_named(page_html, "origin"),
        "mode": "button",
        "rendered": hidden_field(page_html, "rendered"),
        "website": "",
        "sender_name": "Anna",
        "friend": ["bob@example.com", "+31612345678"],
    }
    fields.update(extra)
    return fields


def hidden_field_named(page_html: str, name: str) -> str:
    match = re.search(rf'type="hidden" name="{name}" value="([^"]*)"', page_html)
    assert match, f"no hidden {name} input"
    return match.group(1)


# -- who may frame it --------------------------------------------------------------------------


def test_the_embedded_form_may_be_framed_by_exactly_the_campaigns_origins(app: Flask, embeddable) -> None:  # type: ignore[no-untyped-def]
    page = embed_form(cookieless(app))
    assert page.status_code == 200
    assert frame_ancestors(page) == f"{SHOP} {OUTLET}"
    assert "X-Frame-Options" not in page.headers
    assert "Set-Cookie" not in page.headers  # nothing for a frame to keep
    assert 'name="csrf_token"' not in page.text


def test_every_other_page_stays_unframeable(app: Flask, embeddable) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    for path in ("/c/spring", "/c/spring/thanks", "/healthz", "/c/nothing-here/embed"):
        response = client.get(path)
        assert frame_ancestors(response) == "'none'", path
        assert response.headers["X-Frame-Options"] == "DENY", path


def test_a_page_of_an_unlisted_origin_gets_no_frame_and_no_configuration(app: Flask, embeddable) -> None:  # type: ignore[no-untyped-def]
    client = cookieless(app)
    page = embed_form(client, STRANGER)
    assert page.status_code == 403
    assert frame_ancestors(page) == "'none'" and page.headers["X-Frame-Options"] == "DENY"
    config = client.get("/c/spring/embed.json", headers={"Origin": STRANGER})
    assert config.status_code == 403
    assert "https://evil.example is not among the sites that may embed campaign 'spring'" in config.json["detail"]
    assert config.headers["Access-Control-Allow-Origin"] == "*"  # the refusal, readable; nothing else
    assert "frame" not in config.json


def test_a_listed_origin_gets_the_configuration_for_it_alone(app: Flask, embeddable) -> None:  # type: ignore[no-untyped-def]
    config = cookieless(app).get("/c/spring/embed.json?mode=inline", headers={"Origin": SHOP})
    assert config.status_code == 200
    assert config.headers["Access-Control-Allow-Origin"] == SHOP
    assert "Origin" in config.headers["Vary"]
    frame = urlsplit(config.json["frame"])
    assert frame.path == "/c/spring/embed"
    assert parse_qs(frame.query) == {"origin": [SHOP], "mode": ["inline"]}
    assert config.json["button"] == "Send to a friend"


@pytest.mark.parametrize(
    ("slug", "status", "says"),
    [("nothing-here", 404, "there is no campaign 'nothing-here'"), ("quiet", 403, "lists no site")],
)
def test_an_unknown_or_unlisted_campaign_is_refused_with_a_reason(
    app: Flask, runtime: Runtime, slug: str, status: int, says: str
) -> None:
    make_campaign(runtime.db, "quiet")
    config = cookieless(app).get(f"/c/{slug}/embed.json", headers={"Origin": SHOP})
    assert config.status_code == status
    assert says in config.json["detail"]
    assert embed_form(cookieless(app), SHOP, slug).status_code == status


# -- the form without cookies -------------------------------------------------------------------


def test_the_form_is_sent_from_a_frame_without_any_cookie(app: Flask, runtime: Runtime, embeddable) -> None:  # type: ignore[no-untyped-def]
    client = cookieless(app)
    page = embed_form(client)
    sent = client.post("/c/spring/embed", data=posted(page.text))
    assert sent.status_code == 303, sent.text
    assert count(runtime.db, Forward) == 2
    thanks = client.get(sent.headers["Location"])
    assert thanks.status_code == 200
    assert frame_ancestors(thanks) == f"{SHOP} {OUTLET}"
    # What the page it is on is told: counts and kinds, never a contact.
    assert 'data-fluister-forward="2"' in thanks.text
    assert 'data-fluister-kinds="email-address,phone-number"' in thanks.text
    assert 'data-fluister-host="https://shop.example"' in thanks.text
    assert "bob@example.com" not in thanks.text and "612345678" not in thanks.text


def _forged(app: Flask, runtime: Runtime, page_html: str) -> dict[str, str]:
    other = make_campaign(runtime.db, "autumn", embed_origins=[SHOP])
    assert other.slug == "autumn"
    foreign = cookieless(app).get("/c/autumn/embed", query_string={"origin": SHOP})
    stamp = hidden_field(page_html, "rendered")
    wrong_key = URLSafeTimedSerializer("not our key", salt="fluister.embed-form").dumps("embed/spring:abc")
    landing_stamp = runtime.intake.new_stamp("visitor", Purpose.FORM)
    return {
        "forged": wrong_key,
        "tampered": stamp[:-2] + ("AA" if not stamp.endswith("AA") else "BB"),
        "another campaign's": hidden_field(foreign.text, "rendered"),
        "the landing page's": landing_stamp,
        "missing": "",
    }


def test_a_forged_foreign_or_missing_stamp_is_refused_and_nothing_is_stored(
    app: Flask, runtime: Runtime, embeddable
) -> None:  # type: ignore[no-untyped-def]
    client = cookieless(app)
    page = embed_form(client)
    for what, stamp in _forged(app, runtime, page.text).items():
        refused = client.post("/c/spring/embed", data=posted(page.text, rendered=stamp))
        assert refused.status_code == 422, what
        assert "This form has expired" in refused.text, what
        assert frame_ancestors(refused) == f"{SHOP} {OUTLET}", what  # shown in the frame
    assert count(runtime.db, Forward) == 0 and count(runtime.db, Message) == 0


def test_an_expired_stamp_is_refused(app: Flask, runtime: Runtime, embeddable, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client = cookieless(app)
    page = embed_form(client)
    # Signed three hours ago: older than an embedded form lives (two hours).
    monkeypatch.setattr("itsdangerous.timed.TimestampSigner.get_timestamp", lambda self: 0)
    old = runtime.intake.new_stamp("embed/spring", Purpose.EMBED_FORM)
    monkeypatch.undo()
    refused = client.post("/c/spring/embed", data=posted(page.text, rendered=old))
    assert refused.status_code == 422
    assert "This form has expired" in refused.text
    assert count(runtime.db, Forward) == 0


def test_a_post_for_an_unlisted_origin_is_refused(app: Flask, runtime: Runtime, embeddable) -> None:  # type: ignore[no-untyped-def]
    client = cookieless(app)
    page = embed_form(client)
    refused = client.post("/c/spring/embed", data=posted(page.text, origin=STRANGER))
    assert refused.status_code == 403
    assert count(runtime.db, Forward) == 0


def test_the_landing_pages_form_still_needs_its_session(app: Flask, runtime: Runtime, embeddable) -> None:  # type: ignore[no-untyped-def]
    """The stamp is the embedded form's: the landing page's POST without a CSRF token is refused."""
    client = cookieless(app)
    page = embed_form(client)
    refused = client.post("/c/spring/forward", data=posted(page.text))
    assert refused.status_code == 400
    assert count(runtime.db, Forward) == 0


def test_sharing_from_the_frame_takes_the_stamp_for_a_csrf_token(app: Flask, runtime: Runtime, embeddable) -> None:  # type: ignore[no-untyped-def]
    client = cookieless(app)
    page = client.get("/c/spring/embed", query_string={"origin": SHOP, "mode": "share"})
    assert 'target="_blank"' in page.text
    form = {"origin": SHOP, "mode": "share", "rendered": hidden_field_named(page.text, "rendered")}
    shared = client.post("/c/spring/embed/share", data={**form, "channel": "whatsapp"})
    assert shared.status_code == 303 and shared.headers["Location"].startswith("https://wa.me/")
    refused = client.post("/c/spring/embed/share", data={**form, "rendered": "forged", "channel": "whatsapp"})
    assert refused.status_code == 403
    assert count(runtime.db, Forward) == 1


def test_a_forged_thanks_token_tells_the_host_page_nothing(app: Flask, embeddable) -> None:  # type: ignore[no-untyped-def]
    thanks = cookieless(app).get("/c/spring/embed/thanks", query_string={"origin": SHOP, "sent": "spring|50|x"})
    assert thanks.status_code == 200
    assert "data-fluister-forward" not in thanks.text


# -- the script ---------------------------------------------------------------------------------


def test_the_script_is_versioned_cached_a_year_and_small(app: Flask) -> None:
    client = app.test_client()
    bare = client.get("/embed.js")
    assert bare.status_code == 302
    assert bare.headers["Cache-Control"] == "public, max-age=300"
    versioned = client.get(bare.headers["Location"])
    assert versioned.status_code == 200
    assert versioned.mimetype == "text/javascript"
    assert versioned.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert versioned.data == (PROJECT_ROOT / "static" / "embed.js").read_bytes()
    assert len(gzip.compress(versioned.data, compresslevel=9)) < 10 * 1024


def test_the_script_needs_no_eval_and_no_style_attribute() -> None:
    """What a strict CSP on the host page forbids is not in it."""
    source = (PROJECT_ROOT / "static" / "embed.js").read_text()
    for forbidden in ("eval(", "new Function", 'setAttribute("style"', "innerHTML", "cssText", '"*"'):
        assert forbidden not in source, forbidden


# -- the landing page's rules, in the frame ------------------------------------------------------


def test_an_eu_strict_preview_in_the_frame_then_sent_from_it(app: Flask, runtime: Runtime) -> None:
    make_campaign(
        runtime.db, "stil", policy_name="eu-strict", policy_settings={}, channels=["email"], embed_origins=[SHOP]
    )
    client = cookieless(app)
    page = embed_form(client, SHOP, "stil")
    preview = client.post("/c/stil/embed", data=posted(page.text, friend=["bob@example.com"]))
    assert preview.status_code == 200
    assert "This is what your friend will get" in preview.text
    assert frame_ancestors(preview) == SHOP and "X-Frame-Options" not in preview.headers
    assert 'action="/c/stil/embed"' in preview.text
    assert count(runtime.db, Forward) == 0
    values = form_values(preview.text)
    sent = client.post("/c/stil/embed", data=values)
    assert sent.status_code == 303 and "/c/stil/embed/thanks" in sent.headers["Location"]
    assert count(runtime.db, Forward) == 1


def test_the_challenge_and_the_caps_hold_in_the_frame(app: Flask, runtime: Runtime) -> None:
    make_campaign(
        runtime.db,
        "quick",
        caps={"challenge_after_submissions_per_ip_per_hour": 1, "submissions_per_ip_per_hour": 2},
        embed_origins=[SHOP],
    )
    client = cookieless(app)
    page = embed_form(client, SHOP, "quick")
    assert client.post("/c/quick/embed", data=posted(page.text, friend=["a@example.com"])).status_code == 303
    # The same form sent twice (its stamp spent) is answered as sent, and sends nothing more.
    twice = client.post("/c/quick/embed", data=posted(page.text, friend=["a@example.com"]))
    assert twice.status_code == 303 and "sent=" not in twice.headers["Location"]
    # Past the threshold: the form again with the proof-of-work widget, framed for the shop.
    again = embed_form(client, SHOP, "quick")
    challenged = client.post("/c/quick/embed", data=posted(again.text, friend=["b@example.com"]))
    assert challenged.status_code == 429
    assert "<altcha-widget" in challenged.text
    assert frame_ancestors(challenged) == SHOP
    assert count(runtime.db, Forward) == 1


def test_a_campaign_the_public_cannot_see_now_gets_no_button(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "asleep", status="paused", embed_origins=[SHOP])
    config = cookieless(app).get("/c/asleep/embed.json", headers={"Origin": SHOP})
    assert config.status_code == 404
    assert "campaign 'asleep': This offer is not available right now." == config.json["detail"]
    # A form opened before the pause says so inside the frame.
    page = embed_form(cookieless(app), SHOP, "asleep")
    assert page.status_code == 404 and "This offer is not available right now." in page.text
    assert frame_ancestors(page) == SHOP
