"""The console's list of campaigns on SQLite and PostgreSQL: status badges, reach, K and the
30-day sparkline read from the roll-ups in a fixed number of queries, search and the status
filter, duplicating a campaign, archiving it, and the sub-navigation of a campaign's pages."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from engine.clock import FixedClock
from engine.models import (
    Campaign,
    CampaignEvent,
    CampaignImage,
    CampaignStatus,
    CampaignTemplate,
    Coupon,
    Forward,
    TemplateName,
)
from engine.runtime import Runtime
from engine.services import analytics
from engine.services.lookups import find_campaign
from engine.services.template_context import VARIABLE_MEANINGS, campaign_context
from engine.services.templates import template_variables
from tests.helpers import csrf_token, make_campaign, staff_client, visible_text
from tests.integration.test_analytics import NOW, build_tree


@contextmanager
def counted_queries(runtime: Runtime) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(runtime.db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", record)


def add_forwards(runtime: Runtime, campaign: Campaign, count: int) -> None:
    """`count` forwards of generation 1 on the day of NOW, each to its own friend."""
    with runtime.db.transaction() as session:
        for n in range(count):
            session.add(
                Forward(
                    public_id=f"{campaign.slug}-{n}",
                    campaign_id=campaign.id,
                    generation=1,
                    channel="email",
                    sender_name="Ann",
                    recipient_contact_hash=f"friend-{n}",
                    policy_name="custom",
                    policy_version=1,
                    client_ip_hash="ip",
                    created_at=NOW,
                )
            )


def row_of(html: str, slug: str) -> str:
    found = re.search(rf'<tr data-slug="{slug}">(.*?)</tr>', html, re.DOTALL)
    assert found, f"no row for {slug}"
    return found.group(1)


def post(client: FlaskClient, path: str, page: str = "/console", **data: str):  # type: ignore[no-untyped-def]
    return client.post(path, data={"csrf_token": csrf_token(client.get(page).text), **data})


# -- figures ---------------------------------------------------------------------------------------


def test_each_campaign_shows_a_readable_status_its_reach_k_and_a_sparkline(
    app: Flask, runtime: Runtime, clock: FixedClock
) -> None:
    clock.set(NOW)
    spring = make_campaign(runtime.db, "spring", name="Spring sale")
    make_campaign(runtime.db, "autumn", name="Autumn", status=CampaignStatus.DRAFT)
    build_tree(runtime.db, spring)
    metrics = analytics.campaign_metrics(runtime.db, "spring", NOW)  # refreshes the roll-ups
    assert metrics.overall.k == pytest.approx(0.6)

    page = staff_client(app, "marketer").get("/console", headers={"Accept-Language": "nl"})
    row = row_of(page.text, "spring")
    # A word for people (in their language), not the code `active`.
    assert re.search(r'<span class="badge badge-live" data-status="active">[^<a][^<]*</span>', row), row
    # Dutch figures, right-aligned: 8 people reached, K 0,60 (the dashboard's own K).
    assert '<td class="figure">8</td>' in row and '<td class="figure">0,60</td>' in row
    # Forwards per day: 6 on 5 January, 1 on the 6th and 1 on the 7th, all within the last 30 days.
    svg = re.search(r'<svg class="sparkline"[^>]*aria-label="([^"]*)"[^>]*>.*?<polyline points="([^"]*)"', row)
    assert svg, row
    assert "8" in svg.group(1) and "6" in svg.group(1)
    assert len(svg.group(2).split()) == 30
    heights = [float(point.split(",")[1]) for point in svg.group(2).split()]
    assert heights.count(min(heights)) == 1  # one peak: 5 January

    autumn = row_of(page.text, "autumn")
    assert '<td class="figure">0</td>' in autumn and '<td class="figure">—</td>' in autumn  # no K without senders


def test_the_list_reads_its_figures_in_queries_that_do_not_grow_with_the_campaigns(
    app: Flask, runtime: Runtime, clock: FixedClock
) -> None:
    clock.set(NOW)
    client = staff_client(app, "marketer")
    for n in range(2):
        add_forwards(runtime, make_campaign(runtime.db, f"few-{n}"), 2)
        analytics.refresh_rollups(runtime.db, f"few-{n}", NOW)
    client.get("/console")
    with counted_queries(runtime) as few:
        assert client.get("/console").status_code == 200
    for n in range(10):
        add_forwards(runtime, make_campaign(runtime.db, f"many-{n}"), 2)
        analytics.refresh_rollups(runtime.db, f"many-{n}", NOW)
    with counted_queries(runtime) as many:
        page = client.get("/console")
    assert page.text.count('<svg class="sparkline"') == 12
    assert len(many) == len(few), "\n".join(many)
    figures = [s for s in many if "metric_cells" in s or "daily_forwards" in s]
    assert len(figures) == 2


# -- search and filter ------------------------------------------------------------------------------


def test_search_by_name_slug_or_brand_and_filter_by_status(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "spring", name="Spring sale", brand_name="Acme")
    make_campaign(runtime.db, "coffee", name="Free coffee", brand_name="Koffie & Co", status=CampaignStatus.DRAFT)
    make_campaign(runtime.db, "tea-100", name="Tea", brand_name="Thee", status=CampaignStatus.ENDED)
    client = staff_client(app, "marketer")

    def listed(query: str) -> list[str]:
        return re.findall(r'<tr data-slug="([^"]+)">', client.get(f"/console?{query}").text)

    assert listed("") == ["tea-100", "coffee", "spring"]
    assert listed("q=SALE") == ["spring"]  # the name, in any case
    assert listed("q=koffie") == ["coffee"]  # the brand
    assert listed("q=tea-1") == ["tea-100"]  # the slug
    assert listed("q=100%25") == []  # a % is a character, not a wildcard
    assert listed("status=draft") == ["coffee"]
    assert listed("status=active&q=spring") == ["spring"]
    empty = client.get("/console?q=nothing-like-it")
    assert "No campaign matches this search." in visible_text(empty.text)
    assert 'value="nothing-like-it"' in empty.text  # the search stays in its field
    assert client.get("/console?status=gone").status_code == 400


# -- duplicate ---------------------------------------------------------------------------------------


def test_duplicate_makes_a_draft_with_the_settings_templates_and_card_but_nothing_that_happened(
    app: Flask, runtime: Runtime
) -> None:
    spring = make_campaign(runtime.db, "spring", name="Spring sale", locales=["nl", "en"], coupon_mode="generated")
    build_tree(runtime.db, spring)
    with runtime.db.transaction() as session:
        session.add(
            CampaignImage(
                campaign_id=spring.id,
                kind="card",
                content_type="image/png",
                data=b"png",
                sha256="a" * 64,
                width=1200,
                height=630,
            )
        )
    client = staff_client(app, "marketer")
    assert 'href="/console/campaigns/spring/duplicate"' in client.get("/console").text
    assert 'href="/console/campaigns/spring/duplicate"' in client.get("/console/campaigns/spring").text
    form = client.get("/console/campaigns/spring/duplicate")
    assert 'value="spring-copy"' in form.text

    bad = post(client, "/console/campaigns/spring/duplicate", "/console/campaigns/spring/duplicate", slug="Not A Slug")
    assert bad.status_code == 422
    slug_field = re.search(r'<input[^>]*id="slug"[^>]*>', bad.text)
    assert (
        slug_field
        and 'aria-invalid="true"' in slug_field.group(0)
        and 'aria-describedby="slug-error"' in slug_field.group(0)
    )
    assert "lower-case letters" in visible_text(bad.text).lower()
    taken = post(client, "/console/campaigns/spring/duplicate", "/console/campaigns/spring/duplicate", slug="spring")
    assert taken.status_code == 422 and "already a campaign spring" in visible_text(taken.text)

    done = post(client, "/console/campaigns/spring/duplicate", "/console/campaigns/spring/duplicate", slug="summer")
    assert done.status_code == 303 and done.headers["Location"].endswith("/console/campaigns/summer")
    overview = visible_text(client.get("/console/campaigns/summer").text)
    assert "a copy of spring" in overview and "copied from spring" in overview

    with runtime.db.reading() as session:
        copy = session.scalars(select(Campaign).where(Campaign.slug == "summer")).one()
        assert copy.status == CampaignStatus.DRAFT and copy.name == "Spring sale (copy)"
        assert (copy.locales, copy.coupon_mode, copy.policy_settings) == (
            ["nl", "en"],
            "generated",
            spring.policy_settings,
        )
        bodies = {
            t.name: t.body
            for t in session.scalars(select(CampaignTemplate).where(CampaignTemplate.campaign_id == copy.id))
        }
        assert set(bodies) == {name.value for name in TemplateName}
        assert session.scalar(select(CampaignImage.sha256).where(CampaignImage.campaign_id == copy.id)) == "a" * 64
        for model in (Forward, Coupon):
            assert session.scalar(select(func.count()).select_from(model).where(model.campaign_id == copy.id)) == 0
        actions = session.scalars(select(CampaignEvent.action).where(CampaignEvent.campaign_id == copy.id)).all()
        assert actions == ["duplicated"]
    assert staff_client(app, "compliance").get("/console/campaigns/spring/duplicate").status_code == 403


# -- archive -----------------------------------------------------------------------------------------


def test_archive_hides_a_campaign_that_is_not_live_and_blocks_its_activation(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "spring")
    make_campaign(runtime.db, "coffee", status=CampaignStatus.DRAFT)
    client = staff_client(app, "marketer")
    listing = client.get("/console").text
    assert "/console/campaigns/coffee/archive" in listing
    assert "/console/campaigns/spring/archive" not in listing  # live: pause or end it first

    refused = post(client, "/console/campaigns/spring/archive")
    assert refused.status_code == 409 and "pause it or end it first" in visible_text(refused.text)

    archived = post(client, "/console/campaigns/coffee/archive", back="list")
    assert archived.status_code == 303 and archived.headers["Location"].endswith("/console")
    listing = client.get("/console").text
    assert "Campaign coffee archived." in visible_text(listing)
    assert re.findall(r'<tr data-slug="([^"]+)">', listing) == ["spring"]
    shelf = client.get("/console?status=archived").text
    assert re.findall(r'<tr data-slug="([^"]+)">', shelf) == ["coffee"]
    assert "badge-archived" in row_of(shelf, "coffee")

    overview = client.get("/console/campaigns/coffee").text
    assert "take it out of the archive first" in visible_text(overview)
    activate = post(client, "/console/campaigns/coffee/status", "/console/campaigns/coffee", status="active")
    assert activate.status_code == 422 and "take it out of the archive first" in visible_text(activate.text)
    assert client.get("/api/v1/campaigns/coffee").json["archived"] is True  # type: ignore[index]

    again = post(client, "/console/campaigns/coffee/unarchive", back="list", status="archived", q="cof")
    assert again.status_code == 303 and again.headers["Location"].endswith("/console?q=cof&status=archived")
    assert post(client, "/console/campaigns/coffee/archive").status_code == 303
    back = post(client, "/console/campaigns/coffee/unarchive", "/console/campaigns/coffee")
    assert back.status_code == 303 and back.headers["Location"].endswith("/console/campaigns/coffee")
    assert "coffee" in re.findall(r'<tr data-slug="([^"]+)">', client.get("/console").text)
    assert client.get("/api/v1/campaigns/coffee").json["archived_at"] is None  # type: ignore[index]
    history = visible_text(client.get("/console/campaigns/coffee").text)
    assert history.count("unarchived") == 2 and "archived" in history
    assert staff_client(app, "compliance").post("/console/campaigns/coffee/archive").status_code in (400, 403)


# -- the campaign's pages ---------------------------------------------------------------------------

PAGES = {
    "Overview": "/console/campaigns/spring",
    "Dashboard": "/console/campaigns/spring/dashboard",
    "Preview": "/console/campaigns/spring/preview",
    "Templates": "/console/campaigns/spring/templates",
    "Variants": "/console/campaigns/spring/variants",
    "Contests": "/console/campaigns/spring/contests",
    "Coupons": "/console/campaigns/spring/coupons",
    "Rewards": "/console/campaigns/spring/rewards",
    "Share card": "/console/campaigns/spring/share-card",
    "E-mail logo": "/console/campaigns/spring/logo",
    "Cap usage": "/console/campaigns/spring/usage",
}


def test_every_page_of_a_campaign_links_the_others_and_marks_itself(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "spring")
    client = staff_client(app, "marketer")
    for label, path in PAGES.items():
        page = client.get(path)
        assert page.status_code == 200, path
        nav = re.search(r'<nav class="campaign-nav".*?</nav>', page.text, re.DOTALL)
        assert nav, path
        links = re.findall(r'<a href="([^"]+)"( aria-current="page")?>([^<]+)</a>', nav.group(0))
        assert [(href, text) for href, _, text in links] == [(p, lbl) for lbl, p in PAGES.items()]
        assert [text for _, current, text in links if current] == [label]
    # A refused form's page (another address of the same section) is still that entry's.
    refused = client.post(PAGES["Contests"], data={"csrf_token": csrf_token(client.get(PAGES["Contests"]).text)})
    assert refused.status_code == 422
    nav = re.search(r'<nav class="campaign-nav".*?</nav>', refused.text, re.DOTALL)
    assert nav and re.findall(r'aria-current="page">([^<]+)</a>', nav.group(0)) == ["Contests"]
    compliance = staff_client(app, "compliance")
    nav = re.search(r'<nav class="campaign-nav".*?</nav>', compliance.get("/console/campaigns/spring").text, re.DOTALL)
    offered = re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', nav.group(0)) if nav else []
    assert [text for _, text in offered] == ["Overview", "Contests", "Cap usage"]  # the pages it may open
    assert all(compliance.get(href).status_code == 200 for href, _ in offered)
    assert compliance.get(PAGES["Variants"]).status_code == 403


# -- the templates page -------------------------------------------------------------------------------


def test_the_templates_page_documents_every_variable_a_template_may_use(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "spring")
    with runtime.db.reading() as session:
        spring_values = campaign_context(find_campaign(session, "spring", with_logo=True), "")
    page = staff_client(app, "marketer").get("/console/campaigns/spring/templates").text
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr id="variable-([a-z_]+)">.*?</tr>', page, re.DOTALL)}
    for template in TemplateName:
        for name in template_variables(template, spring_values):
            assert name in VARIABLE_MEANINGS, f"{name} has no meaning in VARIABLE_MEANINGS"
            assert name in rows, f"{name} is not on the page"
            assert f"<code>{template.value}</code>" in rows[name], f"{name} is not listed for {template.value}"
    assert "Alexandra van den Berg" in rows["sender_name"]  # an example
    assert "Ten percent off" in rows["offer_title"]  # the campaign's own value
    assert "<code>landing.html</code>" not in rows["unsubscribe_link"]


def test_the_starter_kit_is_accepted_by_the_upload_as_it_is(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "spring", status=CampaignStatus.DRAFT)
    client = staff_client(app, "marketer")
    page = client.get("/console/campaigns/spring/templates").text
    assert 'href="/console/campaigns/spring/templates/starter-kit.zip"' in page
    kit = client.get("/console/campaigns/spring/templates/starter-kit.zip")
    assert kit.status_code == 200 and kit.mimetype == "application/zip"
    assert "attachment" in kit.headers["Content-Disposition"]
    names = zipfile.ZipFile(io.BytesIO(kit.data)).namelist()
    assert sorted(names) == sorted(name.value for name in TemplateName)
    uploaded = client.post(
        "/console/campaigns/spring/templates",
        data={"csrf_token": csrf_token(page), "files": [(io.BytesIO(kit.data), "starter-kit.zip")]},
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 303, visible_text(uploaded.text)
    stored = visible_text(client.get("/console/campaigns/spring/templates").text)
    assert "email.html stored as version 2" in stored
    assert staff_client(app, "compliance").get("/console/campaigns/spring/templates/starter-kit.zip").status_code == 403


def test_a_campaign_that_paused_its_own_sending_is_live_and_cannot_be_archived(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "spring", status=CampaignStatus.PAUSED, paused_automatically=True)
    make_campaign(runtime.db, "by-hand", status=CampaignStatus.PAUSED)
    client = staff_client(app, "marketer")
    listing = client.get("/console").text
    assert "Sending paused" in row_of(listing, "spring") and "/campaigns/spring/archive" not in listing
    assert "/campaigns/by-hand/archive" in listing
    refused = post(client, "/console/campaigns/spring/archive")
    assert refused.status_code == 409 and "pause it or end it first" in visible_text(refused.text)
    assert post(client, "/console/campaigns/by-hand/archive").status_code == 303
