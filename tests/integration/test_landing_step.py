"""The send-to-friend form after a step of the campaign's own landing template (a quiz, a game):
the setting (no video needed), its refusal while the landing template has no step, and the
page's markup (the form marked to wait, a Skip control, the form simply there without
JavaScript and when it comes back with errors)."""

from __future__ import annotations

import io
import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine.models import Campaign, CampaignStatus, CampaignTemplate
from engine.runtime import Runtime
from engine.services.templates import has_step_hook
from tests.helpers import csrf_token, forward_form, make_campaign, staff_client, static_path, visible_text
from tests.integration.test_campaigns_console import edit_form

# A quiz a marketer writes in their landing template: any answer is the step done.
QUIZ = (
    "<h1>{{ offer_title }}</h1>"
    '<div class="quiz"><p>Which bean makes our espresso?</p>'
    '<button type="button" data-fluister-step-done>Arabica</button>'
    '<a href="#forward" data-fluister-step-done>Robusta</a></div>'
)
NO_STEP = "<h1>{{ offer_title }}</h1><p>{{ brand_name }}</p>"


def with_landing(runtime: Runtime, campaign: Campaign, body: str) -> None:
    with runtime.db.transaction() as session:
        session.add(CampaignTemplate(campaign_id=campaign.id, name="landing.html", version=99, body=body))


def stored_reveal(runtime: Runtime) -> str | None:
    with runtime.db.reading() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.slug == "spring")).one()
        return (campaign.landing_video or {}).get("reveal_form")


def upload_landing(client: FlaskClient, body: str):  # type: ignore[no-untyped-def]
    page = client.get("/console/campaigns/spring/templates")
    data = {"csrf_token": csrf_token(page.text), "files": [(io.BytesIO(body.encode()), "landing.html")]}
    return client.post("/console/campaigns/spring/templates", data=data, content_type="multipart/form-data")


# -- settings -------------------------------------------------------------------------------------------


def test_the_form_may_wait_for_a_step_without_any_video(app: Flask, runtime: Runtime) -> None:
    with_landing(runtime, make_campaign(runtime.db), QUIZ)
    marketer = staff_client(app, "marketer")
    page = marketer.get("/console/campaigns/spring/edit").text
    assert '<option value="after-step">after a step of the landing page</option>' in page
    saved = marketer.post("/console/campaigns/spring/edit", data=edit_form(marketer, video_reveal_form="after-step"))
    assert saved.status_code == 303, saved.text
    with runtime.db.reading() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.slug == "spring")).one()
        assert campaign.landing_video == {"reveal_form": "after-step"}


def test_a_live_campaign_without_a_step_in_its_landing_template_refuses_the_setting(
    app: Flask, runtime: Runtime
) -> None:
    with_landing(runtime, make_campaign(runtime.db), NO_STEP)
    marketer = staff_client(app, "marketer")
    refused = marketer.post("/console/campaigns/spring/edit", data=edit_form(marketer, video_reveal_form="after-step"))
    assert refused.status_code == 422
    assert "the landing page in en has no step that shows the send-to-friend form" in visible_text(refused.text)
    assert "data-fluister-step-done" in visible_text(refused.text)
    assert stored_reveal(runtime) is None


def test_a_draft_waiting_for_a_missing_step_cannot_be_activated(app: Flask, runtime: Runtime) -> None:
    campaign = make_campaign(runtime.db, status=CampaignStatus.DRAFT, landing_video={"reveal_form": "after-step"})
    with_landing(runtime, campaign, NO_STEP)
    marketer = staff_client(app, "marketer")
    token = csrf_token(marketer.get("/console/campaigns/spring").text)
    refused = marketer.post("/console/campaigns/spring/status", data={"csrf_token": token, "status": "active"})
    assert refused.status_code == 422
    assert "has no step that shows the send-to-friend form" in visible_text(refused.text)
    assert app.test_client().get("/c/spring").status_code == 404  # still a draft

    with runtime.db.transaction() as session:  # a newer version of the landing template, with the step
        session.add(CampaignTemplate(campaign_id=campaign.id, name="landing.html", version=100, body=QUIZ))
    activated = marketer.post("/console/campaigns/spring/status", data={"csrf_token": token, "status": "active"})
    assert activated.status_code == 303, activated.text


def test_a_live_campaign_waiting_for_a_step_refuses_a_landing_template_without_one(
    app: Flask, runtime: Runtime
) -> None:
    campaign = make_campaign(runtime.db, landing_video={"reveal_form": "after-step"})
    with_landing(runtime, campaign, QUIZ)
    marketer = staff_client(app, "marketer")
    refused = upload_landing(marketer, NO_STEP)
    assert refused.status_code == 422
    assert "has no step that shows the send-to-friend form" in visible_text(refused.text)
    # A step on a <div> cannot be reached with the keyboard: it does not count.
    refused = upload_landing(marketer, NO_STEP + "<div data-fluister-step-done>Done</div>")
    assert refused.status_code == 422
    assert upload_landing(marketer, QUIZ).status_code == 303


def test_only_a_button_or_a_link_is_a_step() -> None:
    assert has_step_hook('<button type="button" data-fluister-step-done>Go</button>')
    assert has_step_hook('<a href="#forward" data-fluister-step-done="">Go</a>')
    assert not has_step_hook("<a data-fluister-step-done>Go</a>")
    assert not has_step_hook('<span data-fluister-step-done="">Go</span>')
    assert not has_step_hook("<p>data-fluister-step-done</p>")


# -- the page -------------------------------------------------------------------------------------------


def test_the_form_waits_for_the_step_and_is_there_without_javascript(app: Flask, runtime: Runtime) -> None:
    with_landing(runtime, make_campaign(runtime.db, landing_video={"reveal_form": "after-step"}), QUIZ)
    page = app.test_client().get("/c/spring?lang=en")
    assert page.status_code == 200
    assert 'id="forward" data-reveal="after-step"' in page.text
    # The Skip control is there for the script to show; nothing but the script hides the form.
    assert re.search(
        r'<p class="card step-skip" data-step-skip hidden><button type="button" class="secondary" '
        r"data-skip-step>Skip this step: show the send-to-friend form</button></p>",
        page.text,
    )
    assert '<form method="post" action="/c/spring/forward"' in page.text
    assert re.search(r'<section class="card"[^>]*id="forward"[^>]*>', page.text)
    assert " hidden" not in re.search(r'<section class="card"[^>]*id="forward"[^>]*>', page.text).group(0)
    assert static_path("step.js") in page.text
    assert "<video" not in page.text and "video.js" not in page.text


def test_a_form_shown_again_with_errors_does_not_wait(app: Flask, runtime: Runtime) -> None:
    with_landing(runtime, make_campaign(runtime.db, landing_video={"reveal_form": "after-step"}), QUIZ)
    client = app.test_client()
    landing = client.get("/c/spring?lang=en")
    again = client.post("/c/spring/forward", data=forward_form(landing.text, friends=["not an address"]))
    assert again.status_code == 422
    assert "Nothing was sent yet" in again.text
    assert "data-reveal" not in again.text and "data-skip-step" not in again.text
    assert "step.js" not in again.text


def test_a_page_without_its_step_does_not_hide_the_form(app: Flask, runtime: Runtime) -> None:
    # Stored before the rule, or a template that no longer renders: the form never waits for nothing.
    with_landing(runtime, make_campaign(runtime.db, landing_video={"reveal_form": "after-step"}), NO_STEP)
    page = app.test_client().get("/c/spring?lang=en")
    assert "data-reveal" not in page.text and "data-skip-step" not in page.text
    assert '<form method="post" action="/c/spring/forward"' in page.text
