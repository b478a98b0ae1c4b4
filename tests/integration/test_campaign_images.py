"""What the share card's image and the e-mail logo have in common: the console pages that upload
and remove them (engine.web.console.image_upload). Each kind's own effects (link previews, the
e-mail) are in test_share_cards.py and test_logo.py."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select

from engine.models import Campaign, CampaignEvent, CampaignImage
from engine.runtime import Runtime
from tests.helpers import count, csrf_token, staff_client


def image_bytes(kind: str = "PNG", size: tuple[int, int] = (1200, 630), **save: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (20, 120, 200)).save(out, kind, **save)  # type: ignore[arg-type]
    return out.getvalue()


def bomb() -> bytes:
    """A small file that unpacks to 48 million pixels."""
    out = io.BytesIO()
    Image.new("1", (8000, 6000)).save(out, "PNG")
    return out.getvalue()


def huge_header() -> bytes:
    """A PNG whose header claims 100000 x 100000 pixels, with a few bytes of pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))


@dataclass(frozen=True)
class ImagePage:
    """A kind of campaign image and what its console page says."""

    path: str  # under /console/campaigns/<slug>/
    size: tuple[int, int]  # a good upload's
    max_mib: int
    history: str  # the history line's action, and its change's name
    change: str
    stored: str
    removed: str

    def url(self, slug: str = "spring") -> str:
        return f"/console/campaigns/{slug}/{self.path}"

    def upload(self, client: FlaskClient, data: bytes, name: str = "image.png", slug: str = "spring"):  # type: ignore[no-untyped-def]
        page = client.get(self.url(slug))
        return client.post(
            self.url(slug),
            data={"csrf_token": csrf_token(page.text), "image": (io.BytesIO(data), name)},
            content_type="multipart/form-data",
        )


CARD = ImagePage(
    path="share-card",
    size=(1200, 630),
    max_mib=5,
    history="card image",
    change="card_image",
    stored="Card image stored: 1200 x 630 pixels.",
    removed="Card image removed: link previews show the default card.",
)
LOGO = ImagePage(
    path="logo",
    size=(600, 150),
    max_mib=1,
    history="logo",
    change="logo",
    stored="Logo stored: 600 x 150 pixels.",
    removed="Logo removed: the e-mail shows the brand&#39;s name instead.",
)
PAGES = pytest.mark.parametrize("page", [CARD, LOGO], ids=["card", "logo"])

SCRIPTED_SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
# What neither kind takes, and what one refuses by its own limits; the words the page says.
REFUSED = [
    *[
        (page, data, words, name)
        for page in (CARD, LOGO)
        for data, words, name in [
            (SCRIPTED_SVG, "scripts", "svg"),
            (b"<svg onload='alert(1)'></svg>", "scripts", "bare svg"),
            (b"<!doctype html><html><body>hello</body></html>", "not a PNG, JPEG or WebP", "html"),
            (image_bytes()[:300], "damaged or incomplete", "truncated"),
            (b"GIF89a" + b"\x00" * 100, "not a PNG, JPEG or WebP", "gif"),
            (b"", "The file is empty", "empty"),
        ]
    ],
    (CARD, image_bytes(size=(120, 80)), "at least 200 pixels", "tiny"),
    (CARD, huge_header(), "at most 8192 pixels a side", "huge header"),
    (CARD, bomb(), "at most 8192 pixels", "bomb"),
    (LOGO, image_bytes(size=(10, 10)), "at least 16 pixels", "tiny"),
    (LOGO, image_bytes(size=(3000, 100)), "at most 2000 pixels a side", "too wide"),
    (LOGO, huge_header(), "at most 2000 pixels", "huge header"),
    (LOGO, bomb(), "at most 2000 pixels", "bomb"),
]


@pytest.mark.parametrize(
    ("page", "data", "words"),
    [(page, data, words) for page, data, words, _ in REFUSED],
    ids=[f"{page.path}-{name}" for page, _, _, name in REFUSED],
)
def test_what_is_not_an_image_of_its_kind_is_refused_and_nothing_is_stored(
    app: Flask, runtime: Runtime, campaign: Campaign, page: ImagePage, data: bytes, words: str
) -> None:
    refused = page.upload(staff_client(app, "marketer"), data)
    assert refused.status_code == 422
    assert words in refused.text
    assert 'id="image-error"' in refused.text and 'aria-invalid="true"' in refused.text
    assert count(runtime.db, CampaignImage) == 0
    assert count(runtime.db, CampaignEvent) == 0


@PAGES
def test_an_upload_without_a_file_is_refused_on_its_field(
    app: Flask, runtime: Runtime, campaign: Campaign, page: ImagePage
) -> None:
    marketer = staff_client(app, "marketer")
    refused = marketer.post(page.url(), data={"csrf_token": csrf_token(marketer.get(page.url()).text)})
    assert refused.status_code == 422
    assert "Choose a PNG, JPEG or WebP image." in refused.text
    assert count(runtime.db, CampaignImage) == 0


@PAGES
def test_an_oversized_upload_is_refused_before_it_is_read(
    app: Flask, runtime: Runtime, campaign: Campaign, page: ImagePage
) -> None:
    too_large = b"\x89PNG" + b"\x00" * ((page.max_mib + 1) * 1024 * 1024)
    refused = page.upload(staff_client(app, "marketer"), too_large)
    assert refused.status_code == 413
    assert f"larger than {page.max_mib} MiB. Nothing was stored." in refused.text
    assert count(runtime.db, CampaignImage) == 0


@PAGES
def test_an_upload_and_a_removal_are_said_and_in_the_history(
    app: Flask, runtime: Runtime, campaign: Campaign, page: ImagePage
) -> None:
    marketer = staff_client(app, "marketer")
    stored = page.upload(marketer, image_bytes(size=page.size))
    assert stored.status_code == 303 and stored.headers["Location"].endswith(page.url())
    shown = marketer.get(page.url()).text
    assert page.stored in shown
    removed = marketer.post(f"{page.url()}/remove", data={"csrf_token": csrf_token(shown)})
    assert removed.status_code == 303 and removed.headers["Location"].endswith(page.url())
    assert page.removed in marketer.get(page.url()).text
    assert count(runtime.db, CampaignImage) == 0
    with runtime.db.reading() as session:
        events = session.scalars(select(CampaignEvent).order_by(CampaignEvent.id)).all()
    assert [e.action for e in events] == [page.history, page.history]
    assert all(e.actor == "marketer@staff.example" for e in events)
    (before_upload, upload_after), (before_removal, removal_after) = (e.changes[page.change] for e in events)
    assert before_upload is None and upload_after.startswith("image/png ")
    assert before_removal == upload_after and removal_after is None
    # Nothing left to remove: nothing happens, and nothing is said.
    again = marketer.post(f"{page.url()}/remove", data={"csrf_token": csrf_token(shown)})
    assert again.status_code == 303 and count(runtime.db, CampaignEvent) == 2


@PAGES
def test_only_campaign_editors_upload_or_remove(
    app: Flask, runtime: Runtime, campaign: Campaign, page: ImagePage
) -> None:
    compliance = staff_client(app, "compliance")
    assert compliance.get(page.url()).status_code == 403
    token = csrf_token(compliance.get("/console").text)
    refused = compliance.post(
        page.url(),
        data={"csrf_token": token, "image": (io.BytesIO(image_bytes(size=page.size)), "a.png")},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 403
    assert compliance.post(f"{page.url()}/remove", data={"csrf_token": token}).status_code == 403
    assert count(runtime.db, CampaignImage) == 0 and count(runtime.db, CampaignEvent) == 0
