"""Small builders shared by the integration and e2e tests."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from engine.contacts import parse_contact
from engine.db import Database
from engine.models import Campaign, CampaignStatus, Click, Forward, Message, OutboxMessage
from engine.rendering import default_templates
from engine.services.campaigns import add_template_versions
from engine.services.forwarding import ForwardSubmission

US_CUSTOM_SMS = {
    "version": 1,
    "server_email": True,
    "server_sms": "allowed",
    "incentives": False,
    "retention": "days_after_send",
    "retention_days": 30,
    "justification": "Test campaign: sends only to fake transports.",
}


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
    sender_contact = fields.pop("sender_contact", None)
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


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def hidden_ref(html: str) -> str:
    match = re.search(r'name="ref" type="hidden" value="([^"]*)"', html)
    assert match, "no ref field on the page"
    return match.group(1)


def tracked_links(text: str) -> list[str]:
    return re.findall(r"https?://\S+/f/[\w.-]+", text)


def runtime_of(app: Flask):  # type: ignore[no-untyped-def]
    from engine.runtime import EXTENSION_KEY

    return app.extensions[EXTENSION_KEY]
