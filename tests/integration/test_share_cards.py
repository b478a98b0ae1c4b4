"""Share cards and QR codes: what a shared link shows in a chat or a feed (Open Graph and
Twitter card tags, the campaign's card image), a sender's link as a QR code, and the campaign's
printed code, whose scans are attributed to a `share-qr` forward of its own."""

from __future__ import annotations

import io
import re
import time
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
import segno
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous.timed import TimestampSigner
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import undefer

from engine import qr
from engine.models import CampaignEvent, CampaignImage, Click, Forward
from engine.runtime import Runtime
from engine.services import analytics
from engine.services.templates import add_template_versions
from engine.tokens import Purpose
from tests.helpers import count, csrf_token, forward_form, make_campaign, staff_client, static_path

BASE = "http://fluister.test"
TAGS = (
    "og:type",
    "og:title",
    "og:description",
    "og:url",
    "og:image",
    "og:locale",
    "twitter:card",
    "twitter:image",
)


class _Head(HTMLParser):
    """The <meta> tags of a page's head, by property or name (each kept as often as it occurs)."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, list[str]] = {}
        self.in_head = False
        self.in_body_meta = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "head":
            self.in_head = True
        if tag == "meta":
            key = attributes.get("property") or attributes.get("name")
            if key and self.in_head:
                self.meta.setdefault(key, []).append(attributes.get("content") or "")
            elif key:
                self.in_body_meta += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self.in_head = False


def tags(page_html: str) -> dict[str, str]:
    parser = _Head()
    parser.feed(page_html)
    assert parser.in_body_meta == 0, "card tags outside the head"
    for key in TAGS:
        assert len(parser.meta.get(key, [])) == 1, f"{key} not once in the head"
    return {key: values[0] for key, values in parser.meta.items()}


def png(size: tuple[int, int] = (1200, 630), **save: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, "PNG", **save)  # type: ignore[arg-type]
    return out.getvalue()


def image_bytes(kind: str, size: tuple[int, int] = (1200, 630), **save: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (20, 120, 200)).save(out, kind, **save)  # type: ignore[arg-type]
    return out.getvalue()


def upload(client: FlaskClient, data: bytes, name: str = "card.png", slug: str = "spring"):  # type: ignore[no-untyped-def]
    page = client.get(f"/console/campaigns/{slug}/share-card")
    return client.post(
        f"/console/campaigns/{slug}/share-card",
        data={"csrf_token": csrf_token(page.text), "image": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def share_link_page(client: FlaskClient, slug: str = "spring"):  # type: ignore[no-untyped-def]
    landing = client.get(f"/c/{slug}")
    return client.post(f"/c/{slug}/share", data={"csrf_token": csrf_token(landing.text), "channel": "link"})


# -- the tags ----------------------------------------------------------------------------------


def test_the_landing_page_head_carries_the_offer_as_a_card(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, offer_title='Coffee "&" <cake>', offer_description="  Two for one, <b>today</b>.\n")
    page = app.test_client().get("/c/spring")
    found = tags(page.text)
    assert found["og:title"] == found["twitter:title"] == 'Coffee "&" <cake>'
    assert found["og:description"] == "Two for one, <b>today</b>."
    assert "<b>today" not in page.text and "<cake>" not in page.text.split("</head>")[0]
    assert found["og:url"] == f"{BASE}/c/spring"
    assert found["og:type"] == "website"
    assert found["og:locale"] == "en_US"
    assert found["og:site_name"] == "Acme"
    assert found["twitter:card"] == "summary_large_image"
    # Without an image of its own: the built-in card, absolute, and it is there.
    assert found["og:image"] == found["twitter:image"] == f"{BASE}{static_path('share-card.png')}"
    assert (found["og:image:width"], found["og:image:height"]) == ("1200", "630")
    default = app.test_client().get(urlsplit(found["og:image"]).path)
    assert default.status_code == 200
    assert Image.open(io.BytesIO(default.data)).size == (1200, 630)


def test_a_long_description_is_shortened_at_a_word(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, offer_description="word " * 200)
    description = tags(app.test_client().get("/c/spring").text)["og:description"]
    assert len(description) <= 300 and description.endswith("word…")


def test_an_uploaded_landing_template_keeps_the_tags_in_the_head_fluister_writes(app: Flask, runtime: Runtime) -> None:
    campaign = make_campaign(runtime.db)
    own = '<h1>{{ offer_title }}</h1><meta property="og:title" content="not ours"><p>Own page</p>'
    with runtime.db.transaction() as session:
        session.add(campaign)
        add_template_versions(session, campaign, {"landing.html": own})
    page = app.test_client().get("/c/spring").text
    assert "Own page" in page
    head = page.split("</head>")[0]
    assert head.count('property="og:title"') == 1
    assert 'content="Ten percent off"' in head


def test_a_page_in_another_language_names_its_own_url_and_locale(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, locales=["en", "nl"])
    found = tags(app.test_client().get("/c/spring?lang=nl").text)
    assert found["og:url"] == f"{BASE}/c/spring?lang=nl"
    assert found["og:locale"] == "nl_NL"
    assert tags(app.test_client().get("/c/spring?lang=en").text)["og:url"] == f"{BASE}/c/spring"


def test_a_tracked_link_lands_on_the_card_without_its_token(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    sender = app.test_client()
    link = re.search(r'id="share-link" value="([^"]+)"', share_link_page(sender).text)
    assert link
    token = link.group(1).rsplit("/", 1)[1]
    crawler = app.test_client()
    landed = crawler.get(urlsplit(link.group(1)).path, follow_redirects=True)
    assert landed.status_code == 200
    found = tags(landed.text)
    assert found["og:url"] == f"{BASE}/c/spring"
    assert all(token not in value for value in found.values())


def test_the_share_link_page_has_the_card_and_the_link_as_a_qr_code(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    page = share_link_page(app.test_client())
    assert page.status_code == 200
    found = tags(page.text)
    assert found["og:url"] == f"{BASE}/c/spring"
    assert found["og:title"] == "Ten percent off"
    link = re.search(r'id="share-link" value="([^"]+)"', page.text)
    assert link
    # The inline code is the one segno makes of exactly this link.
    expected_path = re.search(r' d="([^"]+)"', str(qr.inline_svg(link.group(1), "x")))
    assert expected_path and f'd="{expected_path.group(1)}"' in page.text
    token = link.group(1).rsplit("/", 1)[1]
    assert f"/f/{token}/qr.svg" in page.text and f"/f/{token}/qr.png" in page.text


def test_the_sender_downloads_their_link_as_svg_and_png(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    with runtime.db.transaction() as session:
        forward = Forward(
            public_id="qrfwd1",
            campaign_id=1,
            channel="share-link",
            sender_name="",
            recipient_contact_hash="x" * 64,
            policy_name="custom",
            policy_version=1,
        )
        session.add(forward)
    token = runtime.tokens.sign(Purpose.FORWARD, "qrfwd1")
    link = f"{BASE}/f/{token}"
    client = app.test_client()
    svg = client.get(f"/f/{token}/qr.svg")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    assert svg.headers["X-Content-Type-Options"] == "nosniff"
    assert "attachment" in svg.headers["Content-Disposition"]
    expected = io.BytesIO()
    segno.make(link, error="m", micro=False).save(expected, kind="svg", scale=10, border=4, xmldecl=True)
    assert svg.data == expected.getvalue()
    image = client.get(f"/f/{token}/qr.png")
    assert image.status_code == 200 and image.mimetype == "image/png"
    decoded = Image.open(io.BytesIO(image.data))
    decoded.load()
    side = qr.png_side(link)
    assert decoded.format == "PNG" and decoded.size == (side, side)
    # Modules of 10 pixels, with the 4-module quiet zone: big enough to print.
    assert side == (segno.make(link, error="m", micro=False).symbol_size(scale=1, border=4)[0]) * 10


@pytest.mark.parametrize("path", ["/f/forged.token.here/qr.svg", "/f/not-a-token/qr.png"])
def test_a_forged_link_gets_no_qr_code(app: Flask, runtime: Runtime, campaign, path: str) -> None:  # type: ignore[no-untyped-def]
    answer = app.test_client().get(path)
    assert answer.status_code == 404
    assert answer.mimetype == "text/html"


def test_an_unknown_qr_format_is_not_found(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    token = runtime.tokens.sign(Purpose.FORWARD, "whatever")
    assert app.test_client().get(f"/f/{token}/qr.gif").status_code == 404


# -- the card image ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name", "content_type", "extension"),
    [
        ("PNG", "a.png", "image/png", "png"),
        ("JPEG", "a.jpeg", "image/jpeg", "jpg"),
        ("WEBP", "x", "image/webp", "webp"),
    ],
)
def test_a_marketer_uploads_a_card_image_that_pages_then_name(
    app: Flask, runtime: Runtime, campaign, kind: str, name: str, content_type: str, extension: str
) -> None:  # type: ignore[no-untyped-def]
    marketer = staff_client(app, "marketer")
    stored = upload(marketer, image_bytes(kind), name)
    assert stored.status_code == 303
    with runtime.db.reading() as session:
        row = session.scalars(select(CampaignImage).options(undefer(CampaignImage.data))).one()
        events = session.scalars(select(CampaignEvent).where(CampaignEvent.action == "card image")).all()
    assert (row.content_type, row.width, row.height) == (content_type, 1200, 630)
    assert len(events) == 1 and events[0].actor == "marketer@staff.example"
    found = tags(app.test_client().get("/c/spring").text)
    assert found["og:image"] == f"{BASE}/c/spring/card.{extension}?v={row.sha256[:16]}"
    assert found["og:image:type"] == content_type
    served = app.test_client().get(found["og:image"].removeprefix(BASE))
    assert served.status_code == 200
    assert served.mimetype == content_type
    assert served.data == row.data
    assert Image.open(io.BytesIO(served.data)).format == kind
    # The history on the campaign's page says so.
    assert "card image" in marketer.get("/console/campaigns/spring").text


def test_the_card_image_is_cached_for_good_under_its_version(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    assert upload(staff_client(app, "marketer"), png()).status_code == 303
    image_url = tags(app.test_client().get("/c/spring").text)["og:image"].removeprefix(BASE)
    client = app.test_client()
    first = client.get(image_url)
    assert first.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert first.headers["X-Content-Type-Options"] == "nosniff"
    etag = first.headers["ETag"]
    again = client.get(image_url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    # An old or unversioned address answers the current image, but not for good.
    unversioned = client.get("/c/spring/card.png")
    assert unversioned.status_code == 200 and "immutable" not in unversioned.headers["Cache-Control"]
    assert client.get("/c/spring/card.gif").status_code == 404


def test_a_campaign_without_its_own_image_or_in_draft_has_none_to_serve(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db)
    make_campaign(runtime.db, "secret", status="draft")
    client = app.test_client()
    assert client.get("/c/spring/card.png").status_code == 404
    marketer = staff_client(app, "marketer")
    assert upload(marketer, png(), slug="secret").status_code == 303
    assert client.get("/c/secret/card.png").status_code == 404
    # Staff see a draft's image on its page.
    preview = marketer.get("/console/campaigns/secret/share-card/image")
    assert preview.status_code == 200 and preview.mimetype == "image/png"


def test_the_stored_image_has_no_metadata_left(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0112] = 6  # Orientation: turned a quarter; stored upright
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 0.0)}  # GPS
    photo = image_bytes("JPEG", (1200, 630), exif=exif.tobytes())
    marketer = staff_client(app, "marketer")
    assert upload(marketer, photo, "photo.jpg").status_code == 303
    with runtime.db.reading() as session:
        stored = session.scalars(select(CampaignImage).options(undefer(CampaignImage.data))).one()
    assert b"PhoneMaker" not in stored.data and b"Exif" not in stored.data
    reread = Image.open(io.BytesIO(stored.data))
    assert not reread.getexif() and reread.size == (630, 1200)

    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "secret location 52.37N")
    assert upload(marketer, png(pnginfo=info)).status_code == 303
    with runtime.db.reading() as session:
        stored = session.scalars(select(CampaignImage).options(undefer(CampaignImage.data))).one()
    assert b"secret location" not in stored.data


def test_only_campaign_editors_download_the_printed_code(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    # Uploading and removing the image: test_campaign_images.py.
    assert staff_client(app, "compliance").get("/console/campaigns/spring/qr.svg").status_code == 403
    assert count(runtime.db, Forward) == 0


def test_removing_the_image_brings_back_the_default_card(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    marketer = staff_client(app, "marketer")
    assert upload(marketer, png()).status_code == 303
    page = marketer.get("/console/campaigns/spring/share-card")
    removed = marketer.post("/console/campaigns/spring/share-card/remove", data={"csrf_token": csrf_token(page.text)})
    assert removed.status_code == 303
    assert tags(app.test_client().get("/c/spring").text)["og:image"] == f"{BASE}{static_path('share-card.png')}"
    assert app.test_client().get("/c/spring/card.png").status_code == 404


# -- the printed code ------------------------------------------------------------------------------


def test_the_campaign_qr_code_is_one_tracked_share_qr_forward(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    marketer = staff_client(app, "marketer")
    signed_at = int(time.time())
    with pytest.MonkeyPatch.context() as patch:
        # Tokens signed in the same second are the same: how the test knows the files' link.
        patch.setattr(TimestampSigner, "get_timestamp", lambda _self: signed_at)
        svg = marketer.get("/console/campaigns/spring/qr.svg")
        image = marketer.get("/console/campaigns/spring/qr.png")
        with runtime.db.reading() as session:
            poster = session.scalars(select(Forward)).one()  # two downloads, one forward
        link = f"{BASE}/f/{runtime.tokens.sign(Purpose.FORWARD, poster.public_id)}"
    assert svg.status_code == image.status_code == 200
    assert 'filename="spring-qr.svg"' in svg.headers["Content-Disposition"]
    assert poster.channel == "share-qr" and poster.recipient_contact is None and poster.sender_name == ""
    assert svg.data == qr.svg_file(link)
    decoded = Image.open(io.BytesIO(image.data))
    assert decoded.format == "PNG" and decoded.size == (qr.png_side(link),) * 2

    # Someone scans the poster: the click is the poster forward's, and so is what follows.
    scanner = app.test_client()
    assert scanner.get(urlsplit(link).path).status_code == 303
    form = forward_form(scanner.get("/c/spring").text, friends=["carol@example.com"])
    assert scanner.post("/c/spring/forward", data=form).status_code == 303
    with runtime.db.reading() as session:
        clicks = session.scalars(select(Click)).all()
        child = session.scalars(select(Forward).where(Forward.id != poster.id)).one()
    assert [c.forward_id for c in clicks] == [poster.id]
    assert child.parent_id == poster.id and child.generation == 2
    assert "Scanned once so far." in marketer.get("/console/campaigns/spring/share-card").text


def test_the_figures_show_the_printed_code_as_a_share_source(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    marketer = staff_client(app, "marketer")
    assert marketer.get("/console/campaigns/spring/qr.png").status_code == 200
    with runtime.db.reading() as session:
        poster = session.scalars(select(Forward)).one()
    scanner = app.test_client()
    assert scanner.get(f"/f/{runtime.tokens.sign(Purpose.FORWARD, poster.public_id)}").status_code == 303
    assert scanner.get("/c/spring").status_code == 200
    form = forward_form(scanner.get("/c/spring").text, friends=["carol@example.com"])
    assert scanner.post("/c/spring/forward", data=form).status_code == 303
    counter = analytics.VisitCounter(runtime.queue.connection)
    figures = analytics.campaign_metrics(runtime.db, "spring", runtime.clock.now(), visits=counter)
    by_channel = {c.channel: c for c in figures.channels}
    assert by_channel["share-qr"].visitors == 2  # both views came through the poster
    dashboard = marketer.get("/console/campaigns/spring/dashboard")
    assert dashboard.status_code == 200 and "channel share-qr" in dashboard.text


def test_no_code_is_printed_for_an_ended_campaign_or_another_teams(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "gone", status="ended")
    make_campaign(runtime.db, "theirs", team="north")
    marketer = staff_client(app, "marketer")
    assert marketer.get("/console/campaigns/theirs/qr.svg").status_code == 404
    assert marketer.get("/console/campaigns/theirs/share-card").status_code == 404
    other_teams = marketer.post(
        "/console/campaigns/theirs/share-card",
        data={"csrf_token": csrf_token(marketer.get("/console").text), "image": (io.BytesIO(png()), "a.png")},
        content_type="multipart/form-data",
    )
    assert other_teams.status_code == 404
    assert count(runtime.db, CampaignImage) == 0
    assert marketer.get("/console/campaigns/gone/qr.svg").status_code == 410
    assert marketer.get("/console/campaigns/nope/qr.svg").status_code == 404
    assert marketer.get("/console/campaigns/gone/qr.gif").status_code == 404
    assert count(runtime.db, Forward) == 0
