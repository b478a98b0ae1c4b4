"""What the public types into the form, as a reader would see it: look-alike characters are
read as what they look like, invisible ones are refused, and nothing refused is written."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from engine.models import Campaign, Forward
from engine.runtime import Runtime
from engine.services.templates import add_template_versions
from tests.helpers import counts, forward_form, make_campaign, visible_text


def post(app: Flask, **fields):  # type: ignore[no-untyped-def]
    client = app.test_client()
    form = forward_form(client.get("/c/spring").text, **fields)
    return client.post("/c/spring/forward", data=form, environ_base={"REMOTE_ADDR": "203.0.113.7"})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"note": "deals at cheap-pills\u3002eu"}, "The note can't contain links or web addresses."),
        ({"note": "deals at 198.51.100.7/win"}, "The note can't contain links or web addresses."),
        ({"note": "call me \u202e8765 4321 60"}, "The note can't contain invisible characters"),
        ({"note": "text me on 06 12345678"}, "The note can't contain phone numbers."),
        ({"sender_name": "An\u200bna"}, "Your name can't contain invisible characters"),
        ({"sender_name": "FREE $500 GIFT"}, "Your name can only contain letters, spaces and the punctuation"),
    ],
)
def test_hostile_text_is_refused_on_its_field_and_nothing_is_written(site, fields, message: str) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    before = counts(runtime.db)
    response = post(app, **fields)
    assert response.status_code == 422
    assert message in visible_text(response.text)
    assert counts(runtime.db) == before


def test_full_width_letters_are_stored_as_the_letters_they_are(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    assert post(app, sender_name="\uff21\uff4e\uff4e\uff41", note="See you\r\nSaturday").status_code == 303
    with runtime.db.reading() as session:
        forward = session.scalars(select(Forward)).one()
    assert (forward.sender_name, forward.note) == ("Anna", "See you\r\nSaturday")


# -- a text that would be too long is refused before anything is written ------------------


def texts(runtime: Runtime, segments: int) -> None:
    make_campaign(runtime.db, "texts", sms_segment_limit=segments)


def post_to(app: Flask, slug: str, **fields):  # type: ignore[no-untyped-def]
    client = app.test_client()
    form = forward_form(client.get(f"/c/{slug}").text, **fields)
    return client.post(f"/c/{slug}/forward", data=form, environ_base={"REMOTE_ADDR": "203.0.113.7"})


def test_a_name_that_makes_every_text_too_long_is_refused_on_the_name(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    texts(runtime, 2)
    before = counts(runtime.db)
    # Three Chinese characters make the whole text UCS-2: 70 characters a part instead of 160.
    refused = post_to(app, "texts", sender_name="\u738b\u5c0f\u660e", friends=["06 12345678"])
    assert refused.status_code == 422
    page = visible_text(refused.text)
    assert "Your name makes the text message to your friends too long" in page
    assert "at most 2" in page and "special characters" in page
    assert counts(runtime.db) == before
    # The same name to an email friend is fine: only texts have segments.
    assert post_to(app, "texts", sender_name="\u738b\u5c0f\u660e", friends=["wang@example.com"]).status_code == 303
    assert post_to(app, "texts", sender_name="Anna", friends=["06 12345679"]).status_code == 303


def test_a_note_that_makes_the_text_too_long_is_refused_on_the_note(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    texts(runtime, 2)
    with runtime.db.transaction() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.slug == "texts")).one()
        add_template_versions(
            session, campaign, {"sms.txt": "{{ sender_name }}: {{ note }} {{ link }} STOP? {{ unsubscribe_link }}"}
        )
    before = counts(runtime.db)
    refused = post_to(app, "texts", note="You will love this, " * 10, friends=["06 12345678"])
    assert refused.status_code == 422
    assert "Your note makes the text message to your friends too long" in visible_text(refused.text)
    assert counts(runtime.db) == before
    assert post_to(app, "texts", note="You will love this", friends=["06 12345678"]).status_code == 303
