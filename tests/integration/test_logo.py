"""A campaign's logo: a marketer uploads it in the console (checked as a card image is, with a
logo's limits), the built-in e-mail shows it at its top at an absolute, versioned address
cached for a year (the brand's name in text without one), templates may print `logo_url`, the
console's preview shows it, and the text parts stay as they were. What the upload page shares
with the share card's (refusals, history, who may upload) is in test_campaign_images.py."""

from __future__ import annotations

import html
import io
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import event, inspect, select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import undefer

from engine.models import CampaignEvent, CampaignImage
from engine.rendering import TemplateRenderer
from engine.runtime import Runtime
from engine.services.lookups import find_campaign
from engine.services.templates import TemplateChecker, campaign_snapshot
from engine.transports.memory import MemoryTransport
from tests.helpers import csrf_token, make_campaign, staff_client, submission

BASE = "http://fluister.test"
LOGO_IMG = re.compile(r"<img [^>]*src=\"(http://fluister\.test/c/spring/logo\.(png|jpg)\?v=[0-9a-f]{16})\"[^>]*>")


def image_bytes(kind: str = "PNG", size: tuple[int, int] = (600, 150), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (20, 120, 200)).save(out, kind)
    return out.getvalue()


def upload(client: FlaskClient, data: bytes, name: str = "logo.png", slug: str = "spring"):  # type: ignore[no-untyped-def]
    page = client.get(f"/console/campaigns/{slug}/logo")
    return client.post(
        f"/console/campaigns/{slug}/logo",
        data={"csrf_token": csrf_token(page.text), "image": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def sent_email(runtime: Runtime, transport: MemoryTransport, slug: str = "spring"):  # type: ignore[no-untyped-def]
    receipt = runtime.forwarding.submit(slug, submission("bob@example.com"))
    runtime.delivery.deliver(receipt.message_ids)
    return transport.emails[-1]


def test_the_email_shows_the_uploaded_logo_from_an_absolute_versioned_address(
    app: Flask, runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    marketer = staff_client(app, "marketer")
    assert upload(marketer, image_bytes()).status_code == 303
    with runtime.db.reading() as session:
        row = session.scalars(select(CampaignImage).options(undefer(CampaignImage.data))).one()
        events = session.scalars(select(CampaignEvent).where(CampaignEvent.action == "logo")).all()
    assert (row.kind, row.content_type, row.width, row.height) == ("logo", "image/png", 600, 150)
    assert len(events) == 1 and events[0].actor == "marketer@staff.example"

    email = sent_email(runtime, transport)
    found = LOGO_IMG.search(email.html)
    assert found, email.html[:2000]
    tag = found.group(0)
    assert found.group(1) == f"{BASE}/c/spring/logo.png?v={row.sha256[:16]}"
    # Named by the brand, at a size that fits the e-mail's 200 x 80 box, never wider than the screen.
    assert 'alt="Acme"' in tag and 'width="200"' in tag and 'height="50"' in tag
    assert "max-width:100%" in tag and "height:auto" in tag
    # It comes first: above the greeting.
    assert email.html.index(found.group(0)) < email.html.index("Hi,")
    # The text part has no picture, and no address of one.
    assert "logo" not in email.text

    served = app.test_client().get(found.group(1).removeprefix(BASE))
    assert served.status_code == 200 and served.mimetype == "image/png" and served.data == row.data
    assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    unversioned = app.test_client().get("/c/spring/logo.png")
    assert unversioned.status_code == 200 and "immutable" not in unversioned.headers["Cache-Control"]
    # The history on the campaign's page says so, and the page links to the logo's.
    overview = marketer.get("/console/campaigns/spring").text
    assert "/console/campaigns/spring/logo" in overview and ">logo<" in overview


def test_without_a_logo_the_email_names_the_brand_in_text(
    app: Flask, runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    email = sent_email(runtime, transport)
    assert "<img" not in email.html
    assert re.search(r'<p class="fl-brand"[^>]*>Acme</p>', email.html)
    assert app.test_client().get("/c/spring/logo.png").status_code == 404


def test_a_removed_logo_leaves_the_email(app: Flask, runtime: Runtime, campaign, transport: MemoryTransport) -> None:  # type: ignore[no-untyped-def]
    marketer = staff_client(app, "marketer")
    assert upload(marketer, image_bytes()).status_code == 303
    page = marketer.get("/console/campaigns/spring/logo")
    assert 'alt="Acme"' in page.text
    removed = marketer.post("/console/campaigns/spring/logo/remove", data={"csrf_token": csrf_token(page.text)})
    assert removed.status_code == 303
    assert "<img" not in sent_email(runtime, transport).html


def test_a_webp_logo_is_stored_as_png_for_every_inbox(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    assert upload(staff_client(app, "marketer"), image_bytes("WEBP", mode="RGBA"), "logo.webp").status_code == 303
    with runtime.db.reading() as session:
        row = session.scalars(select(CampaignImage).options(undefer(CampaignImage.data))).one()
    assert row.content_type == "image/png" and Image.open(io.BytesIO(row.data)).format == "PNG"


def test_a_drafts_logo_is_served_at_its_version_only(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "secret", status="draft")
    assert upload(staff_client(app, "marketer"), image_bytes(), slug="secret").status_code == 303
    with runtime.db.reading() as session:
        version = session.scalars(select(CampaignImage.sha256)).one()[:16]
    client = app.test_client()
    assert client.get("/c/secret/logo.png").status_code == 404
    assert client.get("/c/secret/logo.png?v=0000000000000000").status_code == 404
    assert client.get(f"/c/secret/logo.png?v={version}").status_code == 200


def test_the_console_preview_shows_the_logo(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    marketer = staff_client(app, "marketer")
    assert upload(marketer, image_bytes()).status_code == 303
    preview = marketer.get("/console/campaigns/spring/preview")
    assert preview.status_code == 200
    assert LOGO_IMG.search(html.unescape(preview.text))


def test_the_senders_preview_shows_the_logo(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, policy_name="eu-strict", policy_settings={}, channels=["email"])
    assert upload(staff_client(app, "marketer"), image_bytes()).status_code == 303
    shown = runtime.forwarding.preview("spring", submission("bob@example.com"))
    assert LOGO_IMG.search(shown.html) and "logo" not in shown.text


def test_templates_may_print_the_logo_url(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    with runtime.db.reading() as session:
        checker = TemplateChecker(
            TemplateRenderer(), campaign_snapshot(find_campaign(session, "spring", with_templates=True))
        )
    source = (
        '{% if logo_url %}<img src="{{ logo_url }}" alt="{{ brand_name }}" width="{{ logo_width }}">{% endif %}'
        '<p>{{ sender_name }}: {{ offer_title }}. <a href="{{ link }}">See it</a></p>'
        '<p><a href="{{ unsubscribe_link }}">Unsubscribe</a> · {{ brand_name }}, {{ postal_address }}</p>'
    )
    assert checker.check("email.html", source) == []


def test_a_plain_campaign_query_leaves_the_logo_unread(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    assert upload(staff_client(app, "marketer"), image_bytes()).status_code == 303
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(runtime.db.engine, "before_cursor_execute", record)
    try:
        with runtime.db.reading() as session:
            plain = find_campaign(session, "spring")
            assert "logo" in inspect(plain).unloaded
            # Read where it was not loaded, it fails loudly instead of costing a query.
            with pytest.raises(InvalidRequestError):
                _ = plain.logo
        assert sent and not any("campaign_images" in statement for statement in sent)

        with runtime.db.reading() as session:
            shown = find_campaign(session, "spring", with_logo=True)
            assert shown.logo is not None and (shown.logo.width, shown.logo.height) == (600, 150)
        # The process's copy of a campaign that every page and message renders from has it too.
        with runtime.db.reading() as session:
            snapshot = runtime.snapshots.current(session, "spring")
        assert snapshot is not None and snapshot.campaign.logo is not None
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", record)
    assert any("campaign_images" in statement for statement in sent)
