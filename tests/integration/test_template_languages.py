"""Template files per language (`email.nl.html`): uploads accepted and refused naming the file,
the message of each language rendered from its own file, activation refused while a language
lacks a file, and the console's preview switching language."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import update

from engine.models import Forward, Message
from engine.runtime import Runtime
from engine.services.campaigns import readiness_problems
from engine.services.lookups import find_campaign
from engine.services.templates import upload_templates
from engine.transports.memory import MemoryTransport
from tests.helpers import csrf_token, make_campaign, staff_client, submission, visible_text
from tests.integration.test_template_upload import GOOD_HTML, GOOD_TEXT, upload, versions, write, zipped

DUTCH_HTML = GOOD_HTML.replace("sent you", "stuurt je").replace("Uploaded-version offer link", "Bekijk het aanbod")
DUTCH_TEXT = GOOD_TEXT.replace("sent you", "stuurt je").replace("(uploaded text part)", "(Nederlandse tekst)")
ENGLISH_HTML = GOOD_HTML.replace("Uploaded-version offer link", "English offer link")


@pytest.fixture
def bilingual(runtime: Runtime):  # type: ignore[no-untyped-def]
    """A draft campaign that speaks Dutch, then English."""
    return make_campaign(runtime.db, locales=["nl", "en"], status="draft")


def test_files_per_language_are_stored_and_each_message_uses_its_own(
    runtime: Runtime, transport: MemoryTransport
) -> None:
    make_campaign(runtime.db, locales=["en", "nl"])  # live, English first
    report = upload_templates(
        runtime.db,
        runtime.renderer,
        "spring",
        {
            "email.NL.html": DUTCH_HTML.encode(),  # stored as email.nl.html
            "email.nl.txt": DUTCH_TEXT.encode(),
            "email.html": ENGLISH_HTML.encode(),
        },
    )
    assert report.accepted, report.refusals
    assert {s.name for s in report.stored} == {"email.nl.html", "email.nl.txt", "email.html"}
    assert versions(runtime)["email.nl.html"] == 1

    sent = {}
    for friend, locale in (("bob@example.com", "nl"), ("clara@example.com", "en")):
        receipt = runtime.forwarding.submit("spring", submission(friend))
        with runtime.db.transaction() as session:
            session.execute(update(Forward).where(Forward.id.in_(receipt.forward_ids)).values(locale=locale))
        runtime.delivery.deliver(receipt.message_ids)
        sent[friend] = receipt.message_ids[0]

    by_friend = {email.to: email for email in transport.emails}
    assert "Bekijk het aanbod" in by_friend["bob@example.com"].html
    assert "(Nederlandse tekst)" in by_friend["bob@example.com"].text
    assert by_friend["bob@example.com"].headers["Content-Language"] == "nl"
    # English, the campaign's first language, gets the file without a language.
    assert "English offer link" in by_friend["clara@example.com"].html
    assert "(uploaded text part)" not in by_friend["clara@example.com"].text
    assert by_friend["clara@example.com"].headers["Content-Language"] == "en"
    # A message records the files it was rendered from.
    with runtime.db.reading() as session:
        dutch = session.get(Message, sent["bob@example.com"])
        assert dutch is not None
        assert dutch.template_versions["email.nl.html"] == 1 and "email.html" not in dutch.template_versions


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("email.de.html", "'email.de.html': 'de' is not a language Fluister speaks (en, fr, nl)"),
        ("email.fr.html", "email.fr.html: this campaign does not speak 'fr' (its languages: nl, en)"),
        ("email.nl-BE.html", "'email.nl-BE.html': 'nl-BE' is not a language code such as nl or fr"),
        ("emial.nl.html", "'emial.nl.html' is not a template file name"),
    ],
)
def test_a_file_for_an_unknown_or_foreign_language_is_refused_naming_it(
    runtime: Runtime, bilingual, name: str, says: str
) -> None:  # type: ignore[no-untyped-def]
    before = versions(runtime)

    report = upload_templates(runtime.db, runtime.renderer, "spring", {name: GOOD_HTML.encode()})

    assert not report.accepted
    assert any(says in reason for reason in report.refusals), report.refusals
    assert versions(runtime) == before


def test_the_checks_apply_to_each_language_file_and_name_it(runtime: Runtime, bilingual) -> None:  # type: ignore[no-untyped-def]
    report = upload_templates(
        runtime.db,
        runtime.renderer,
        "spring",
        {
            "spring.zip": zipped(
                ("email.nl.html", "<p>{{ brand_name }}</p><script>x</script>"), ("sms.en.txt", "{{ nope }}")
            )
        },
    )
    assert not report.accepted
    reasons = " | ".join(report.refusals)
    assert "email.nl.html, line 1: <script> is not allowed" in reasons
    assert "email.nl.html lacks what the campaign's custom policy requires" in reasons
    assert "sms.en.txt: unknown variables nope" in reasons


def test_the_command_line_refuses_a_foreign_language_with_exit_code_1(
    app: Flask, runtime: Runtime, bilingual, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, "sms.fr.txt", "{{ brand_name }}: {{ link }} Répondez STOP pour vous désabonner")
    result = app.test_cli_runner().invoke(args=["templates", "upload", "spring", str(path)])
    assert result.exit_code == 1
    assert "sms.fr.txt: this campaign does not speak 'fr'" in result.output

    dutch = write(tmp_path, "sms.nl.txt", "{{ brand_name }}: {{ link }} Stuur STOP om je af te melden")
    stored = app.test_cli_runner().invoke(args=["templates", "upload", "spring", str(dutch)])
    assert stored.exit_code == 0, stored.output
    assert "spring: sms.nl.txt stored as version 1" in stored.output


def activate(client, slug: str = "spring"):  # type: ignore[no-untyped-def]
    token = csrf_token(client.get(f"/console/campaigns/{slug}").text)
    return client.post(f"/console/campaigns/{slug}/status", data={"csrf_token": token, "status": "active"})


def test_activation_is_refused_while_a_language_lacks_a_file_of_the_campaigns_own(
    app: Flask, runtime: Runtime, bilingual
) -> None:  # type: ignore[no-untyped-def]
    client = staff_client(app, "marketer")
    # The built-in defaults (stored unchanged, as for the demo) speak every language.
    assert activate_ok(runtime)
    assert upload(client, ("email.html", DUTCH_HTML.encode())).status_code == 303

    refused = activate(client)

    assert refused.status_code == 422
    text = visible_text(refused.text)
    assert "email.html has no en version: upload email.en.html" in text
    assert "email.txt has no en version" not in text  # the built-in text part: still the default's

    assert upload(client, ("email.en.html", ENGLISH_HTML.encode())).status_code == 303
    assert activate(client).status_code == 303


def activate_ok(runtime: Runtime) -> bool:
    with runtime.db.reading() as session:
        campaign = find_campaign(session, "spring", with_templates=True)
        return readiness_problems(campaign, runtime.renderer, runtime.clock.now()) == []


def test_a_live_campaign_takes_a_new_languages_files_only_together(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, locales=["nl", "en"])  # active
    client = staff_client(app, "marketer")

    alone = upload(client, ("email.html", DUTCH_HTML.encode()))
    assert alone.status_code == 422
    assert "email.html has no en version: upload email.en.html" in visible_text(alone.text)
    assert "(the campaign is live)" in visible_text(alone.text)

    together = upload(client, ("email.html", DUTCH_HTML.encode()), ("email.en.html", ENGLISH_HTML.encode()))
    assert together.status_code == 303
    page = visible_text(client.get("/console/campaigns/spring/templates").text)
    assert "email.en.html" in page


def test_the_preview_switches_language(app: Flask, runtime: Runtime, bilingual) -> None:  # type: ignore[no-untyped-def]
    client = staff_client(app, "marketer")

    dutch = client.get("/console/campaigns/spring/preview")
    assert dutch.status_code == 200
    assert "Alexandra van den Berg denkt dat je dit leuk vindt" in visible_text(dutch.text)
    assert 'value="en"' in dutch.text  # the switch offers the campaign's other language

    english = client.get("/console/campaigns/spring/preview?locale=en&sender_name=Anna&note=&coupon_code=")
    assert english.status_code == 200
    text = visible_text(english.text)
    assert "Anna thinks you'll like this" in text or "Anna thinks you&#39;ll like this" in english.text
    assert "Content-Language" in text and "denkt dat je" not in text

    foreign = client.get("/console/campaigns/spring/preview?locale=fr&sender_name=Anna&note=&coupon_code=")
    assert foreign.status_code == 422
    assert "This campaign does not speak 'fr'; its languages are nl, en." in visible_text(foreign.text)
