"""Small builders shared by the integration and e2e tests."""

from __future__ import annotations

import html
import os
import re
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any, TypeVar

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from config import Settings
from engine.clock import FixedClock
from engine.contacts import parse_contact
from engine.db import Database
from engine.models import Campaign, CampaignStatus, Click, Forward, Message, MessageStatus, OutboxMessage
from engine.rendering import default_templates
from engine.resources import STATIC_DIR
from engine.runtime import Runtime
from engine.services.forwarding import ForwardSubmission
from engine.services.templates import add_template_versions
from engine.static_files import versioned_name

US_CUSTOM_SMS = {
    "version": 1,
    "server_email": True,
    "server_sms": "allowed",
    "incentives": False,
    "retention": "days_after_send",
    "retention_days": 30,
    "sms_hours": [0, 24],  # tests run at any hour; quiet hours have tests of their own
    "justification": "Test campaign: sends only to fake transports.",
}


def static_path(filename: str) -> str:
    """The address a page writes for a file of static/: versioned by its content."""
    return "/static/" + versioned_name(filename, (STATIC_DIR / filename).read_bytes())


def make_campaign(db: Database, slug: str = "spring", **fields: Any) -> Campaign:
    values: dict[str, Any] = {
        "slug": slug,
        "name": f"Campaign {slug}",
        "status": CampaignStatus.ACTIVE,
        "offer_title": "Ten percent off",
        "offer_description": "Ten percent off your first order.",
        "brand_name": "Acme",
        "sender_email": "offers@acme.example",
        "postal_address": "1 Main St, Springfield",
        "channels": ["email", "sms"],
        "policy_name": "custom",
        "policy_settings": US_CUSTOM_SMS,
        "max_friends_per_submission": 5,
    }
    values.update(fields)
    with db.transaction() as session:
        campaign = Campaign(**values)
        session.add(campaign)
        add_template_versions(session, campaign, default_templates())
    return campaign


def submission(*friends: str, sender_name: str = "Anna", region: str = "NL", **fields: Any) -> ForwardSubmission:
    """A submission as the form makes it, its preview seen (where a policy asks for one:
    tests/integration/test_preview.py is about that step)."""
    sender_contact = fields.pop("sender_contact", None)
    fields.setdefault("previewed", True)
    return ForwardSubmission(
        sender_name=sender_name,
        friends=[parse_contact(f, region) for f in friends],
        sender_contact=parse_contact(sender_contact, region) if sender_contact else None,
        **fields,
    )


def count(db: Database, model: type) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def counts(db: Database) -> dict[str, int]:
    return {m.__tablename__: count(db, m) for m in (Forward, Message, Click, OutboxMessage)}


def statuses(db: Database) -> dict[int, str]:
    with db.reading() as session:
        return {row[0]: row[1] for row in session.execute(select(Message.id, Message.status).order_by(Message.id))}


def deliver_overnight(runtime: Runtime, clock: FixedClock) -> None:
    """Dispatch what is due; texts that quiet hours hold back wait until their window opens:
    move the clock to that moment and dispatch again, as the worker would then. A test that
    uses it passes at any hour and says what is sent, not when."""
    runtime.queue.drain()
    runtime.delivery.dispatch()
    for _ in range(10):  # each round sends the texts whose window opens first
        with runtime.db.reading() as session:
            opens = session.scalar(select(func.min(Message.not_before)).where(Message.status == MessageStatus.DEFERRED))
        if opens is None:
            return
        # Quiet hours never push a text past the next day's window.
        assert opens - clock.now() <= timedelta(hours=36), f"deferred until {opens}, at {clock.now()}"
        clock.set(max(opens, clock.now()))
        runtime.delivery.dispatch()
    raise AssertionError("texts still deferred after ten windows opened")


def csrf_token(html: str) -> str:
    match = re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def hidden_field(page_html: str, name: str) -> str:
    match = re.search(rf'name="{name}" type="hidden" value="([^"]*)"', page_html)
    assert match, f"no hidden {name} field on the page"
    return match.group(1)


def hidden_ref(page_html: str) -> str:
    return hidden_field(page_html, "ref")


def tracked_links(text: str) -> list[str]:
    return re.findall(r"https?://\S+/f/[\w.-]+", text)


def runtime_of(app: Flask):  # type: ignore[no-untyped-def]
    from engine.runtime import EXTENSION_KEY

    return app.extensions[EXTENSION_KEY]


# -- end-to-end helpers: forms and pages as a browser sees them --------------------------

T = TypeVar("T")


def forward_form(
    page_html: str,
    *,
    sender_name: str = "Anna",
    friends: Sequence[str] = ("bob@example.com",),
    note: str = "",
    **extra: str,
) -> dict[str, Any]:
    """The send-to-friend form as a browser posts it from this page: its CSRF token and hidden
    `ref`, plus what the sender typed. `extra` adds or overrides fields (a forged `ref`, say)."""
    fields: dict[str, Any] = {
        "csrf_token": csrf_token(page_html),
        "ref": hidden_ref(page_html),
        "rendered": hidden_field(page_html, "rendered"),
        "website": "",
        "sender_name": sender_name,
        "friend": list(friends),
        "note": note,
    }
    fields.update(extra)
    return fields


def visible_text(page_html: str) -> str:
    """What a person reads on a page: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", page_html)).split())


class _FormValues(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, list[str]] = {}
        self._textarea: str | None = None
        self._select: str | None = None
        self._first_option: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        name = attributes.get("name")
        ticked = attributes.get("type") not in ("checkbox", "radio") or "checked" in attributes
        if tag == "input" and name and ticked:
            self.values.setdefault(name, []).append(attributes.get("value") or "")
        elif tag == "select" and name:
            self._select, self._first_option = name, None
        elif tag == "option" and self._select:
            value = attributes.get("value") or ""
            self._first_option = value if self._first_option is None else self._first_option
            if "selected" in attributes:
                self.values[self._select] = [value]
        elif tag == "textarea" and name:
            self._textarea = name
            self.values.setdefault(name, []).append("")

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea][-1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self._select:
            # Nothing selected: the browser sends the first option.
            self.values.setdefault(self._select, [self._first_option or ""])
            self._select = None
        if tag == "textarea" and self._textarea:
            self.values[self._textarea][-1] = self.values[self._textarea][-1].strip("\r\n")
            self._textarea = None


def form_values(page_html: str) -> dict[str, list[str]]:
    """The values a page's form fields hold, by field name (what the user would see filled in)."""
    parser = _FormValues()
    parser.feed(page_html)
    return parser.values


class _Elements(HTMLParser):
    """Every element's attributes, in page order, with the text each button says."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[dict[str, str | None]] = []
        self._button: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, **dict(attrs)}
        self.elements.append(element)
        if tag == "button":
            self._button = element
            element["text"] = ""

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button["text"] = (self._button["text"] or "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "button":
            self._button = None


def copy_button(page_html: str, target: str) -> dict[str, str | None]:
    """The one "Copy" button (templates/pages/_copy.html) for the element `target` (an id), with
    its status line's attributes under "status"."""
    parser = _Elements()
    parser.feed(page_html)
    (button,) = [e for e in parser.elements if e["tag"] == "button" and e.get("data-copy") == target]
    (status,) = [e for e in parser.elements if e.get("id") == button["data-status"]]
    (copied,) = [e for e in parser.elements if e.get("id") == target]
    assert copied is not None
    return {**button, "status": status.get("role"), "text": (button["text"] or "").strip()}


def unsubscribe_links(text: str) -> list[str]:
    return re.findall(r"https?://\S+/u/[\w.-]+", text)


def wait_until(check: Callable[[], T | None], *, what: str, timeout: float = 30.0) -> T:
    """Poll `check` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def settings_environment(settings: Settings) -> dict[str, str]:
    """The environment that makes a separate process (a worker) load these same settings."""
    values = {
        "FLUISTER_ENV": settings.env,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url or "",
        "SECRET_KEYS": ",".join(settings.secret_keys),
        "CONTACT_HASH_KEY": settings.contact_hash_key,
        "PUBLIC_BASE_URL": settings.public_base_url,
        "QUEUE_NAME": settings.queue_name,
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "INSTANCE_PATH": str(settings.instance_path),
        "DEFAULT_PHONE_REGION": settings.default_phone_region,
        "EMAIL_TRANSPORT": settings.email_transport,
        "SMS_TRANSPORT": settings.sms_transport,
        "SENDGRID_API_KEY": settings.sendgrid_api_key or "",
        "SENDGRID_API_HOST": settings.sendgrid_api_host,
        "DISPATCH_BATCH_SIZE": str(settings.dispatch_batch_size),
        "SENDING_STALE_AFTER_SECONDS": str(settings.sending_stale_after_seconds),
    }
    return {**os.environ, **{k: v for k, v in values.items() if v}}


STAFF_PASSWORD = "correct horse battery staple"


def sign_in(client: FlaskClient, email: str, password: str = STAFF_PASSWORD, next_page: str | None = None):  # type: ignore[no-untyped-def]
    data = {"email": email, "password": password, "csrf_token": csrf_token(client.get("/login").text)}
    if next_page is not None:
        data["next"] = next_page
    return client.post("/login", data=data, environ_base={"REMOTE_ADDR": "192.0.2.10"})


def staff_client(app: Flask, role: str, email: str | None = None) -> FlaskClient:
    """A test client signed in as a new staff member of this role."""
    email = email or f"{role}@staff.example"
    runtime_of(app).staff.create_user(email, role, STAFF_PASSWORD)
    client = app.test_client()
    assert sign_in(client, email).status_code == 303
    return client
