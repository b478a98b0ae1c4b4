"""eu-strict: the sender sees the whole message before anything is written or sent (ACM)."""

from __future__ import annotations

import html
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engine.runtime import Runtime
from engine.services.forwarding import PreviewRequired
from tests.helpers import counts, form_values, forward_form, make_campaign, submission


@pytest.fixture
def strict(runtime: Runtime) -> str:
    make_campaign(runtime.db, "stil", policy_name="eu-strict", policy_settings={}, channels=["email"])
    return "stil"


def first_post(client: FlaskClient, slug: str, **fields):  # type: ignore[no-untyped-def]
    form = forward_form(client.get(f"/c/{slug}").text, **fields)
    return client.post(f"/c/{slug}/forward", data=form)


def resend(client: FlaskClient, slug: str, page_html: str, **changes: object):  # type: ignore[no-untyped-def]
    """Press a button of the preview page: its form as the browser would post it."""
    values = form_values(page_html)
    values.update({name: value if isinstance(value, list) else [value] for name, value in changes.items()})
    return client.post(f"/c/{slug}/forward", data=values)


def test_the_sender_sees_the_whole_message_before_anything_is_written(app: Flask, runtime: Runtime, strict) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    before = counts(runtime.db)
    preview = first_post(client, strict, friends=["bob@example.com", "carol@example.com"], note="Lekker!")
    assert preview.status_code == 200
    page = html.unescape(preview.text)
    assert "This is what your 2 friends will get" in page
    assert "bob@example.com, carol@example.com" in page
    assert "Lekker!" in page and "Anna" in page  # the note and the sender's name, in the message itself
    assert re.search(r"<iframe[^>]*\ssandbox[\s>]", preview.text)
    assert counts(runtime.db) == before

    sent = resend(client, strict, preview.text)
    assert sent.status_code == 303
    assert counts(runtime.db)["forwards"] == before["forwards"] + 2


def test_what_is_sent_must_be_what_was_previewed(app: Flask, runtime: Runtime, strict: str) -> None:
    client = app.test_client()
    preview = first_post(client, strict, friends=["bob@example.com"])
    before = counts(runtime.db)
    # A different friend posted with the token of Bob's preview: shown again, not sent.
    swapped = resend(client, strict, preview.text, friend="mallory@example.com")
    assert swapped.status_code == 200
    assert "mallory@example.com" in swapped.text and "will get" in swapped.text
    forged = resend(client, strict, preview.text, preview_token="forged.token.value")
    assert forged.status_code == 200 and "will get" in forged.text
    assert counts(runtime.db) == before


def test_change_something_brings_the_form_back_as_typed(app: Flask, runtime: Runtime, strict: str) -> None:
    client = app.test_client()
    preview = first_post(client, strict, friends=["bob@example.com"], note="Try it")
    back = resend(client, strict, preview.text, edit="1")
    assert back.status_code == 200
    assert 'value="bob@example.com"' in back.text and "Try it" in back.text
    assert "Send this offer to a friend" in back.text
    assert counts(runtime.db)["forwards"] == 0


def test_a_preview_shows_the_forms_errors_first(app: Flask, runtime: Runtime, strict: str) -> None:
    refused = first_post(app.test_client(), strict, friends=["06 12345678"])  # eu-strict sends no texts
    assert refused.status_code == 422
    assert "can't be sent by text message" in html.unescape(refused.text)


def test_no_preview_can_be_skipped_through_the_service(runtime: Runtime, strict: str) -> None:
    with pytest.raises(PreviewRequired):
        runtime.forwarding.submit(strict, submission("bob@example.com", previewed=False))
    assert counts(runtime.db)["forwards"] == 0


def test_other_policies_send_at_once(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    assert first_post(app.test_client(), "spring", friends=["bob@example.com"]).status_code == 303
