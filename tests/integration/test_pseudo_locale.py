"""Every page a consumer can see, rendered in the pseudo-locale (every translated string wrapped
in ⟦…⟧ and accented): any word left outside the brackets never went through gettext, and would
stay English on a Dutch or French page. What may stand outside: what the campaign and the
people typed (brand, offer, names, codes, links), numbers and punctuation, proper names."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine import create_app
from engine.i18n import PSEUDO_CLOSE, PSEUDO_OPEN
from engine.models import Campaign, CampaignTemplate, Contest, Message
from engine.runtime import Runtime
from engine.services.history import CLI
from engine.services.variants import VariantInput, add_variant
from engine.tokens import Purpose
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import US_CUSTOM_SMS, forward_form, hidden_field, make_campaign, runtime_of

# Words that are nobody's to translate: brands and products, and languages named in their own.
PROPER_NAMES = (
    *("Fluister", "ALTCHA", "WhatsApp", "Facebook", "X", "LinkedIn", "YouTube", "Vimeo"),
    *("Nederlands", "English", "Français"),
)
ATTRIBUTES = ("placeholder", "aria-label", "title", "alt")


class _Words(HTMLParser):
    """The text a person reads (and the attributes a screen reader says), outside the offer's
    own content (the campaign's template) and outside scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._skip = 0
        self._depth: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = set((attributes.get("class") or "").split())
        # The campaign's own content (its landing template, the message a preview shows).
        skipping = tag in ("script", "style", "title") or bool(classes & {"offer", "campaign-content"})
        if self._skip or skipping:
            if tag not in ("input", "link", "meta", "br", "img"):
                self._skip += 1
            return
        self.texts.extend(v for name in ATTRIBUTES if (v := attributes.get(name)))
        if tag == "altcha-widget" and attributes.get("strings"):
            self.texts.extend(json.loads(attributes["strings"] or "{}").values())

    def handle_endtag(self, tag: str) -> None:
        if self._skip and tag not in ("input", "link", "meta", "br", "img"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.texts.append(data)


def untranslated(html: str, *allowed: str) -> list[str]:
    """Each piece of text with a letter outside the pseudo-locale's brackets, once the allowed
    words (the campaign's and the people's own) are taken out."""
    parser = _Words()
    # A <time> is written by Babel in the page's language (its CLDR data), not by the catalogs: a
    # figure in its place keeps the sentence around it whole.
    parser.feed(re.sub(r"<time\b[^>]*>.*?</time>", "0", html, flags=re.DOTALL))
    leaks = []
    for text in parser.texts:
        rest = re.sub(re.escape(PSEUDO_OPEN) + r".*?" + re.escape(PSEUDO_CLOSE), " ", text, flags=re.DOTALL)
        for word in sorted((*allowed, *PROPER_NAMES), key=len, reverse=True):
            rest = re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", " ", rest)
        if re.search(r"[^\W\d_]", rest):
            leaks.append(text.strip())
    return leaks


@pytest.fixture
def pseudo_app(database_url: str, settings_for) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    memory = MemoryTransport()
    app = create_app(settings_for(database_url, pseudo_locale=True), transports=Transports(email=memory, sms=memory))
    yield app
    runtime_of(app).db.dispose()


# The campaign's own words, and what the tests type (shown back in the form).
CAMPAIGN_WORDS = (
    "Ten percent off",
    "Acme",
    "Campaign pseudo",
    "Anna",
    "see www.x.com",
    "bad@",
    "a@b.example",
    "bob@example.com",
    "Spring in the shop",
)


def _page(client: FlaskClient, path: str) -> str:
    return client.get(path, headers={"Accept-Language": "en"}).get_data(as_text=True)


def test_every_consumer_page_goes_through_the_catalogs(pseudo_app: Flask) -> None:
    runtime: Runtime = runtime_of(pseudo_app)
    make_campaign(runtime.db, "pseudo", locales=["en", "nl"], caps={"challenge_after_submissions_per_ip_per_hour": 1})
    make_campaign(runtime.db, "gone", locales=["en"], status="ended")
    make_campaign(runtime.db, "strict", locales=["en"], policy_name="eu-strict", policy_settings={}, channels=["email"])
    client = pseudo_app.test_client()
    pages: dict[str, str] = {}

    landing = _page(client, "/c/pseudo")
    pages["landing"] = landing
    wrong = client.post(
        "/c/pseudo/forward",
        data=forward_form(landing, sender_name="", friends=["bad@", "12", "a@b.example"] * 2, note="see www.x.com"),
    )
    assert wrong.status_code == 422
    pages["form errors"] = wrong.get_data(as_text=True)
    pages["bad locale"] = client.post("/c/pseudo/forward", data=forward_form(landing, locale="fr")).get_data(
        as_text=True
    )

    sent = client.post("/c/pseudo/forward", data=forward_form(landing, friends=["bob@example.com", "+31612345678"]))
    assert sent.status_code == 303, untranslated(sent.get_data(as_text=True))
    pages["thanks"] = client.get(sent.headers["Location"]).get_data(as_text=True)
    # The sender's own page (their link, counts, rewards), linked from the thanks page.
    own_page = re.search(
        r'id="referrer-page-link"[^>]*href="([^"]+)"|href="([^"]+)"[^>]*id="referrer-page-link"', pages["thanks"]
    )
    assert own_page is not None
    pages["referrer's page"] = _page(client, own_page.group(1) or own_page.group(2))
    pages["thanks again"] = _page(client, "/c/pseudo/thanks")
    # One forward from this address: past the campaign's threshold, the form has the challenge.
    pages["landing with the challenge"] = challenged = _page(client, "/c/pseudo")
    assert "<altcha-widget" in challenged

    token = re.search(r'name="csrf_token" value="([^"]+)"', landing)
    assert token
    pages["copy link"] = client.post(
        "/c/pseudo/share", data={"csrf_token": token.group(1), "channel": "link"}
    ).get_data(as_text=True)
    pages["unknown share"] = client.post(
        "/c/pseudo/share", data={"csrf_token": token.group(1), "channel": "pigeon"}
    ).get_data(as_text=True)

    with runtime.db.reading() as session:
        message = session.scalars(select(Message).order_by(Message.id)).first()
        assert message is not None
        unsubscribe = runtime.tokens.sign(Purpose.UNSUBSCRIBE, message.public_id)
        follow = runtime.tokens.sign(Purpose.FORWARD, message.forward.public_id)
    pages["unsubscribe"] = _page(client, f"/u/{unsubscribe}")
    pages["unsubscribed"] = client.post(f"/u/{unsubscribe}", data={"scope": "campaign"}).get_data(as_text=True)
    everywhere = client.post(f"/u/{unsubscribe}", data={"scope": "friends"}).get_data(as_text=True)
    pages["unsubscribed everywhere"] = everywhere
    pages["unsubscribed, seen again"] = _page(client, f"/u/{unsubscribe}")
    undo = re.search(r'name="undo" value="([^"]+)"', everywhere)
    assert undo is not None
    pages["unsubscribe undone"] = client.post(f"/u/{unsubscribe}/undo", data={"undo": undo.group(1)}).get_data(
        as_text=True
    )
    pages["undo not valid"] = client.post(f"/u/{unsubscribe}/undo", data={"undo": "forged"}).get_data(as_text=True)
    friend = pseudo_app.test_client()
    pages["friend's landing"] = _page(friend, friend.get(f"/f/{follow}").headers["Location"])

    pages["unsubscribe link not valid"] = _page(client, "/u/not-a-token")
    pages["link not valid"] = _page(client, "/f/not-a-token")
    pages["link's QR code not valid"] = _page(client, "/f/not-a-token/qr.svg")
    pages["no such offer"] = _page(client, "/c/nope")
    pages["offer ended"] = _page(client, "/c/gone")
    pages["no such page"] = _page(client, "/nothing/here")
    pages["wrong method"] = client.put("/c/pseudo").get_data(as_text=True)
    pages["expired form"] = client.post("/c/pseudo/forward", data={"sender_name": "x"}).get_data(as_text=True)

    strict = _page(client, "/c/strict")
    pages["preview"] = preview = client.post("/c/strict/forward", data=forward_form(strict)).get_data(as_text=True)
    assert 'name="preview_token"' in preview

    pages.update(_embedded_pages(pseudo_app))

    # A landing page with a video: a provider's facade, and a self-hosted file waiting for the form.
    video = {"caption": "Spring in the shop", "reveal_form": "after-video"}
    for slug, url in (("tube", "https://youtu.be/dQw4w9WgXcQ"), ("film", "https://media.acme.example/a.mp4")):
        make_campaign(
            runtime.db, slug, locales=["en"], media_hosts=["media.acme.example"], landing_video={**video, "url": url}
        )
        pages[f"landing with a video ({slug})"] = _page(client, f"/c/{slug}")
    assert "data-skip-video" in pages["landing with a video (film)"]
    # A landing page whose form waits for a step of its own template (a quiz): its Skip control.
    quiz = make_campaign(runtime.db, "quiz", locales=["en"], landing_video={"reveal_form": "after-step"})
    with runtime.db.transaction() as session:
        step = '<h1>{{ offer_title }}</h1><button type="button" data-fluister-step-done>{{ brand_name }}</button>'
        session.add(CampaignTemplate(campaign_id=quiz.id, name="landing.html", version=99, body=step))
    pages["landing waiting for a step"] = _page(client, "/c/quiz")
    # A landing page announcing a running contest, and the contest's own page.
    make_campaign(runtime.db, "prize", locales=["en"], policy_settings={**US_CUSTOM_SMS, "incentives": True})
    now = runtime.clock.now()
    with runtime.db.transaction() as session:
        prize = session.scalar(select(Campaign).where(Campaign.slug == "prize"))
        assert prize is not None
        session.add(
            Contest(
                campaign_id=prize.id,
                title="Acme",
                rules="Acme",
                metric="friends-reached",
                prizes=["Acme"],
                starts_at=now - timedelta(hours=1),
                ends_at=now + timedelta(days=7),
                time_zone="UTC",
                created_by="ops",
            )
        )
    pages["landing with a contest"] = _page(client, "/c/prize")
    assert 'id="contest"' in pages["landing with a contest"]
    pages["contest rules"] = _page(client, "/c/prize/contest")
    # A quiz variant's question, its answer right, wrong and without a right answer, and the skip;
    # a scratch card (the campaign's words: Acme).
    for slug, wrapper, correct in (("asks", "quiz", 1), ("opinion", "quiz", None), ("scratch", "scratch", None)):
        make_campaign(runtime.db, slug, locales=["en"])
        given = VariantInput(
            "Acme", 1, wrapper, quiz_question="Acme", quiz_answers=("Acme", "Anna"), quiz_correct=correct
        )
        add_variant(runtime.db, slug, given, CLI)
    pages["landing asking a quiz"] = asking = _page(client, "/c/asks")
    assert 'name="answer"' in asking
    pages["quiz answered right"] = _page(client, "/c/asks?answer=0")
    pages["quiz answered wrong"] = wrong_answer = _page(client, "/c/asks?answer=1")
    assert 'id="quiz-result"' in wrong_answer
    pages["quiz skipped"] = _page(client, "/c/asks?skip=1")
    pages["opinion quiz answered"] = _page(client, "/c/opinion?answer=1")
    pages["landing with a scratch card"] = scratch = _page(client, "/c/scratch")
    assert "<details" in scratch
    assert "data-skip-step" in pages["landing waiting for a step"]

    leaks = {name: leak for name, html in pages.items() if (leak := untranslated(html, *CAMPAIGN_WORDS))}
    assert leaks == {}
    # The pages did render translated text (the check above is not vacuous).
    assert all(PSEUDO_OPEN in html for html in pages.values())


def _embedded_pages(app: Flask) -> dict[str, str]:
    """The form embedded on a brand's site (a frame without cookies), and its refusals."""
    runtime: Runtime = runtime_of(app)
    shop = "https://shop.example"
    make_campaign(runtime.db, "framed", locales=["en", "nl"], embed_origins=[shop])
    frame = app.test_client(use_cookies=False)
    frame.environ_base["REMOTE_ADDR"] = "198.51.100.9"  # another visitor than the landing page's
    pages = {"embedded form": _page(frame, f"/c/framed/embed?origin={shop}")}
    posted = {"origin": shop, "rendered": hidden_field(pages["embedded form"], "rendered"), "website": ""}
    sent = frame.post("/c/framed/embed", data={**posted, "sender_name": "Anna", "friend": "bob@example.com"})
    assert sent.status_code == 303
    pages["embedded thanks"] = _page(frame, sent.headers["Location"])
    pages["embedded share bar"] = _page(frame, f"/c/framed/embed?origin={shop}&mode=share")
    pages["embedded form errors"] = frame.post("/c/framed/embed", data={**posted, "sender_name": ""}).get_data(
        as_text=True
    )
    pages["embedded share expired"] = frame.post(
        "/c/framed/embed/share", data={"origin": shop, "rendered": "x", "channel": "link"}
    ).get_data(as_text=True)
    pages["embedded on another site"] = _page(frame, "/c/framed/embed?origin=https://evil.example")
    return pages


def test_the_check_finds_text_that_skipped_the_catalogs() -> None:
    assert untranslated("<p>⟦Ĥéļļö⟧</p>") == []
    assert untranslated("<p>⟦Ĥéļļö⟧ world</p>") == ["⟦Ĥéļļö⟧ world"]
    assert untranslated('<input placeholder="First name">') == ["First name"]
    assert untranslated("<p>Acme · 12</p>", "Acme") == []
