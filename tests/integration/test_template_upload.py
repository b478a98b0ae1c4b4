"""Template upload on SQLite and PostgreSQL: from the command line and the console, all files
or none, what each policy requires, and the next message rendered with what was uploaded."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from engine.models import Campaign, CampaignTemplate, Forward, Message
from engine.runtime import Runtime
from engine.services.composer import LANGUAGE_VALUES
from engine.services.delivery import Links, message_context
from engine.services.lookups import CampaignNotFound
from engine.services.template_context import sample_campaign_context
from engine.services.templates import MAX_UPLOAD_BYTES, SAMPLE_MESSAGE_VALUES, upload_templates
from engine.transports.memory import MemoryTransport
from tests.helpers import csrf_token, make_campaign, staff_client, submission, visible_text

GOOD_HTML = (
    "<p>{{ sender_name }} sent you {{ offer_title }} from {{ brand_name }}.</p>"
    '<p><a href="{{ link }}">Uploaded-version offer link</a></p>'
    '<p><a href="{{ unsubscribe_link }}">Unsubscribe</a> · {{ brand_name }}, {{ postal_address }}</p>'
)
GOOD_TEXT = (
    "{{ sender_name }} sent you {{ offer_title }} (uploaded text part): {{ link }}\n"
    "Unsubscribe: {{ unsubscribe_link }}\n{{ brand_name }}, {{ postal_address }}\n"
)
BARE_TEXT = "{{ offer_title }}: {{ link }}\n"


def versions(runtime: Runtime, slug: str = "spring") -> dict[str, int]:
    """The newest version of each template the campaign has."""
    with runtime.db.reading() as session:
        rows = session.execute(select(CampaignTemplate.name, CampaignTemplate.version))
        newest: dict[str, int] = {}
        for name, version in rows:
            newest[name] = max(version, newest.get(name, 0))
        return newest


def zipped(*entries: tuple[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


def write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


# -- the command line ------------------------------------------------------------------------------


def test_the_command_stores_each_file_as_its_next_version(
    app: Flask, runtime: Runtime, campaign, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    before = versions(runtime)
    html = write(tmp_path, "email.html", GOOD_HTML)
    subject = write(tmp_path, "subject.txt", "{{ sender_name }} has a present for you")
    result = app.test_cli_runner().invoke(args=["templates", "upload", "spring", str(html), str(subject)])
    assert result.exit_code == 0, result.output
    assert "spring: email.html stored as version 2" in result.output
    assert "spring: subject.txt stored as version 2" in result.output
    assert versions(runtime) == {**before, "email.html": 2, "subject.txt": 2}


def test_the_command_refuses_with_every_reason_and_exit_code_1(
    app: Flask, runtime: Runtime, campaign, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    before = versions(runtime)
    html = write(tmp_path, "email.html", GOOD_HTML + "<script>steal()</script>{{ frend }}")
    sms = write(
        tmp_path,
        "sms.txt",
        "{{ offer_title }} {% for i in range(10000) %}{% for j in range(99) %}{% endfor %}{% endfor %}",
    )
    result = app.test_cli_runner().invoke(args=["templates", "upload", "spring", str(html), str(sms)])
    assert result.exit_code == 1
    assert "spring: nothing stored" in result.stderr
    assert "email.html: unknown variables frend" in result.stderr
    assert "sms.txt: the template does too much work" in result.stderr
    assert versions(runtime) == before


def test_the_command_answers_usage_errors_with_exit_code_2(app: Flask, campaign, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    html = write(tmp_path, "email.html", GOOD_HTML)
    runner = app.test_cli_runner()
    unknown = runner.invoke(args=["templates", "upload", "nope", str(html)])
    assert unknown.exit_code == 2 and "no campaign 'nope'" in unknown.output
    assert runner.invoke(args=["templates", "upload", "spring"]).exit_code == 2
    assert runner.invoke(args=["templates", "upload", "spring", str(tmp_path / "missing.html")]).exit_code == 2


def test_one_bad_file_in_a_zip_stores_nothing(app: Flask, runtime: Runtime, campaign, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = versions(runtime)
    bundle = write(
        tmp_path,
        "spring.zip",
        zipped(
            ("subject.txt", "A present from {{ sender_name }}"),
            ("email.txt", GOOD_TEXT),
            ("email.html", "<p>{{ nope }}</p>"),
        ),
    )
    result = app.test_cli_runner().invoke(args=["templates", "upload", "spring", str(bundle)])
    assert result.exit_code == 1 and "email.html: unknown variables nope" in result.stderr
    assert versions(runtime) == before
    # The same zip, fixed, stores all three at once.
    bundle.write_bytes(
        zipped(("subject.txt", "A present from {{ sender_name }}"), ("email.txt", GOOD_TEXT), ("email.html", GOOD_HTML))
    )
    result = app.test_cli_runner().invoke(args=["templates", "upload", "spring", str(bundle)])
    assert result.exit_code == 0, result.output
    assert versions(runtime) == {**before, "subject.txt": 2, "email.txt": 2, "email.html": 2}


# -- what each policy requires -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "settings", "missing", "not_missing"),
    [
        ("us", {}, ["unsubscribe link", "brand name", "postal address"], ["friend who sent it"]),
        ("eu-strict", {}, ["unsubscribe link", "brand name", "friend who sent it"], ["postal address"]),
        ("custom", None, ["unsubscribe link", "brand name", "postal address", "friend who sent it"], []),
    ],
)
def test_the_campaign_policy_decides_what_a_message_must_print(  # type: ignore[no-untyped-def]
    runtime: Runtime, policy: str, settings, missing: list[str], not_missing: list[str]
) -> None:
    fields = {"policy_name": policy} if settings is None else {"policy_name": policy, "policy_settings": settings}
    make_campaign(runtime.db, "matrix", **fields)
    report = upload_templates(runtime.db, runtime.renderer, "matrix", {"email.txt": BARE_TEXT.encode()})
    assert not report.accepted and len(report.refusals) == 1
    (reason,) = report.refusals
    assert reason.startswith(f"email.txt lacks what the campaign's {policy} policy requires: ")
    assert all(m in reason for m in missing) and not any(m in reason for m in not_missing)
    assert upload_templates(runtime.db, runtime.renderer, "matrix", {"email.txt": GOOD_TEXT.encode()}).accepted


def test_an_unknown_campaign_is_not_found(runtime: Runtime) -> None:
    with pytest.raises(CampaignNotFound):
        upload_templates(runtime.db, runtime.renderer, "nope", {"email.txt": GOOD_TEXT.encode()})
    with pytest.raises(CampaignNotFound):
        upload_templates(runtime.db, runtime.renderer, "bad\x00slug", {"email.txt": GOOD_TEXT.encode()})


# -- the uploaded templates are what goes out ---------------------------------------------------------


def test_the_next_message_uses_the_uploaded_email(runtime: Runtime, campaign, transport: MemoryTransport) -> None:  # type: ignore[no-untyped-def]
    report = upload_templates(
        runtime.db,
        runtime.renderer,
        "spring",
        {
            "email.html": GOOD_HTML.encode(),
            "email.txt": GOOD_TEXT.encode(),
            "subject.txt": b"Uploaded: {{ offer_title }}",
        },
    )
    assert report.accepted
    receipt = runtime.forwarding.submit("spring", submission("bob@example.com"))
    runtime.delivery.deliver(receipt.message_ids)
    (email,) = transport.emails
    assert email.subject == "Uploaded: Ten percent off"
    assert "Uploaded-version offer link" in email.html
    assert "(uploaded text part)" in email.text and "http://fluister.test/u/" in email.text


def test_the_sample_values_are_what_a_message_prints(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    # The checks allow exactly the variables delivery gives a message: if one is added there,
    # this test says the sample must learn it too.
    receipt = runtime.forwarding.submit("spring", submission("bob@example.com"))
    with runtime.db.reading() as session:
        # Loaded as delivery loads it: with its campaign's logo.
        message = session.scalar(
            select(Message)
            .where(Message.id == receipt.message_ids[0])
            .options(selectinload(Message.forward).selectinload(Forward.campaign).selectinload(Campaign.logo))
        )
        assert message is not None
        context = message_context(message, Links(runtime.settings.public_base_url, runtime.tokens))
        campaign_values = sample_campaign_context(message.forward.campaign)
        expected = set(campaign_values) | set(SAMPLE_MESSAGE_VALUES) | set(LANGUAGE_VALUES)
        assert set(context) == expected


# -- the console -------------------------------------------------------------------------------------------


def upload(client: FlaskClient, *files: tuple[str, bytes], slug: str = "spring"):  # type: ignore[no-untyped-def]
    page = client.get(f"/console/campaigns/{slug}/templates")
    data = {"csrf_token": csrf_token(page.text), "files": [(io.BytesIO(content), name) for name, content in files]}
    return client.post(f"/console/campaigns/{slug}/templates", data=data, content_type="multipart/form-data")


def test_a_marketer_uploads_templates_in_the_console(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    client = staff_client(app, "marketer")
    home = client.get("/console")
    assert 'href="/console/campaigns/spring/templates"' in home.text
    page = client.get("/console/campaigns/spring/templates")
    assert page.status_code == 200
    assert 'enctype="multipart/form-data"' in page.text and 'type="file"' in page.text and "multiple" in page.text
    assert "email.html version 1" in visible_text(page.text)

    # Larger than the app's 64 KiB form limit, well within the upload budget.
    padded = GOOD_HTML + "<p>" + "Long copy. " * 10_000 + "</p>"
    stored = upload(client, ("email.html", padded.encode()), ("spring.zip", zipped(("email.txt", GOOD_TEXT))))
    assert stored.status_code == 303 and stored.headers["Location"].endswith("/console/campaigns/spring/templates")
    after = visible_text(client.get("/console/campaigns/spring/templates").text)
    assert "email.html stored as version 2" in after and "email.txt stored as version 2" in after
    assert "email.html version 2" in after and "email.txt version 2" in after
    assert versions(runtime)["email.html"] == 2


def test_the_console_lists_every_reason_and_stores_nothing(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    client = staff_client(app, "marketer")
    before = versions(runtime)
    refused = upload(
        client,
        ("email.html", b'<p>{{ brand_name }}</p><a href="javascript:alert(1)">x</a>'),
        ("notes.md", b"hello"),
        ("sms.txt", b"\xff\xfe"),
    )
    assert refused.status_code == 422
    reasons = re.findall(
        r"<li>(.*?)</li>", refused.text.split('class="errors form-errors refusals"')[1].split("</ul>")[0]
    )
    assert len(reasons) == 4  # the script link and the missing unsubscribe link are both listed
    text = visible_text(refused.text)
    assert "Nothing was stored" in text
    assert "'notes.md' is not a template file name" in text
    assert "sms.txt is not UTF-8 text" in text
    assert "email.html, line 1: &lt;a href&gt;: script links are not allowed" in refused.text
    assert "email.html lacks what the campaign&#39;s custom policy requires: the unsubscribe link" in refused.text
    assert versions(runtime) == before


def test_an_upload_without_files_or_token_is_refused_in_the_form(app: Flask, campaign) -> None:  # type: ignore[no-untyped-def]
    client = staff_client(app, "marketer")
    empty = upload(client)
    assert empty.status_code == 422 and "Choose one or more template files" in empty.text
    forged = client.post("/console/campaigns/spring/templates", data={"files": (io.BytesIO(b"x"), "sms.txt")})
    assert forged.status_code == 400


def test_an_oversized_upload_gets_the_friendly_413(app: Flask, campaign) -> None:  # type: ignore[no-untyped-def]
    client = staff_client(app, "marketer")
    too_big = upload(client, ("email.html", b"x" * (MAX_UPLOAD_BYTES + 100 * 1024)))
    assert too_big.status_code == 413
    assert "larger than the" in visible_text(too_big.text) and "email.html 256 KiB" in too_big.text


def test_only_marketers_and_admins_may_upload(app: Flask, campaign) -> None:  # type: ignore[no-untyped-def]
    assert staff_client(app, "compliance").get("/console/campaigns/spring/templates").status_code == 403
    assert staff_client(app, "admin").get("/console/campaigns/spring/templates").status_code == 200
    signed_out = app.test_client().get("/console/campaigns/spring/templates")
    assert signed_out.status_code == 302 and "/login" in signed_out.headers["Location"]
    assert staff_client(app, "marketer", "m2@staff.example").get("/console/campaigns/nope/templates").status_code == 404
