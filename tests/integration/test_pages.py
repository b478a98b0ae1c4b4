"""Page-level behaviour that every public response shares."""

from __future__ import annotations

from flask import Flask


def test_pages_carry_security_headers(app: Flask, campaign) -> None:  # type: ignore[no-untyped-def]
    for path in ("/c/spring", "/c/nope", "/healthz"):
        response = app.test_client().get(path)
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        # Not in development or tests: browsers would refuse http://127.0.0.1 for a year.
        assert "Strict-Transport-Security" not in response.headers


def test_production_over_https_asks_browsers_to_keep_to_https(settings_for, database_url: str, campaign) -> None:  # type: ignore[no-untyped-def]
    from engine import create_app
    from tests.helpers import runtime_of

    production = settings_for(database_url, env="production", public_base_url="https://offers.example.com")
    prod_app = create_app(production)
    for path in ("/c/spring", "/c/nope", "/healthz"):
        response = prod_app.test_client().get(path, base_url="https://offers.example.com")
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    runtime_of(prod_app).db.dispose()


def test_outbox_exists_only_with_the_outbox_transport_outside_production(
    app: Flask, settings_for, database_url: str
) -> None:  # type: ignore[no-untyped-def]
    from engine import create_app
    from tests.helpers import runtime_of

    assert app.test_client().get("/dev/outbox.json").status_code == 200
    # The test settings are not production; the same app built as production has no outbox route.
    production = settings_for(database_url, env="production")
    prod_app = create_app(production)
    assert prod_app.test_client().get("/dev/outbox.json").status_code == 404
    assert prod_app.test_client().get("/dev/outbox").status_code == 404
    runtime_of(prod_app).db.dispose()


def test_campaigns_can_be_paused_and_resumed_from_the_command_line(app: Flask, campaign) -> None:  # type: ignore[no-untyped-def]
    runner = app.test_cli_runner()
    paused = runner.invoke(args=["campaigns", "pause", "spring", "--reason", "checking the copy"])
    assert paused.exit_code == 0 and "spring: paused" in paused.output
    assert app.test_client().get("/c/spring").status_code == 404
    resumed = runner.invoke(args=["campaigns", "resume", "spring"])
    assert resumed.exit_code == 0
    assert app.test_client().get("/c/spring").status_code == 200
    unknown = runner.invoke(args=["campaigns", "resume", "nope"])
    assert unknown.exit_code != 0 and "no campaign 'nope'" in unknown.output


def test_the_form_invites_only_contacts_the_policy_lets_the_server_message(app: Flask, runtime) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import make_campaign

    make_campaign(runtime.db, "us", policy_name="us", policy_settings={}, channels=["email", "sms"])
    make_campaign(runtime.db, "both", channels=["email", "sms"])
    assert "an email address each" in app.test_client().get("/c/us").text  # no consent, no texts
    assert "an email address or a mobile number each" in app.test_client().get("/c/both").text


def test_a_landing_page_over_the_budget_shows_the_default_page_not_a_server_error(
    app: Flask, runtime, campaign
) -> None:  # type: ignore[no-untyped-def]
    # A stored version that no longer passes (the budget tightened since it was uploaded): every
    # anonymous view renders it, so it must stop at the budget and leave the page working.
    from sqlalchemy import select

    from engine.models import Campaign
    from engine.services.templates import add_template_versions

    hostile = "<h1>{{ offer_title }}</h1>{{ ('{x:>9999}' * 2000).format(x=1) }}"
    with runtime.db.transaction() as session:
        stored = session.scalar(select(Campaign).where(Campaign.slug == "spring"))
        add_template_versions(session, stored, {"landing.html": hostile})
    response = app.test_client().get("/c/spring")
    assert response.status_code == 200
    assert "{x:" not in response.text and " " * 9999 not in response.text
    assert 'name="friend' in response.text  # the form is still there


def test_the_landing_page_is_rendered_once_per_template_version_not_on_every_view(
    app: Flask, runtime, campaign, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # What it shows depends on the campaign only, the same for every visitor: a stored version
    # over the budget is paid for once, not on every anonymous view.
    from sqlalchemy import select

    from engine.models import Campaign
    from engine.services.templates import add_template_versions

    renders: list[str] = []
    render = runtime.renderer.render

    def counted(name: str, source: str, context):  # type: ignore[no-untyped-def]
        renders.append(name)
        return render(name, source, context)

    monkeypatch.setattr(runtime.renderer, "render", counted)
    heavy = "<h1>{{ offer_title }}</h1>{% for i in range(10000) %}{% for j in range(2) %}{% endfor %}{% endfor %}"
    with runtime.db.transaction() as session:
        add_template_versions(session, session.scalar(select(Campaign)), {"landing.html": heavy})
    for _ in range(5):
        page = app.test_client().get("/c/spring")
        assert page.status_code == 200 and 'name="friend' in page.text
    assert renders == ["landing.html", "landing.html"]  # the stored version refused once, the default once
    with runtime.db.transaction() as session:
        add_template_versions(
            session, session.scalar(select(Campaign)), {"landing.html": "<h1>New: {{ offer_title }}</h1>"}
        )
    for _ in range(3):
        assert "New: Ten percent off" in app.test_client().get("/c/spring").text
    assert len(renders) == 3  # a new version is rendered as soon as it is stored
