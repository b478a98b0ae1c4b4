"""The naive baseline: one RQ job per message, one SDK call per job.

What a straightforward implementation does: the job loads its message, renders it
with the same renderer and templates as the engine, sends it with the official SDK
exactly as its README shows (a client per call; for an email the SendGrid SDK opens a
new connection, TLS handshake included, for every request anyway, and a fresh Twilio
client has a fresh HTTP session, so a text does too), and marks it sent with one UPDATE.
There is no claim: the job trusts that it runs once. Headers, the reference custom arg
and the status callback URL are the engine's, so both variants send the same bytes per
recipient.

Enqueued as `bench.dispatch.naive.send_one` (an email) or `...send_one_text` (a text)
with the message id; runs inside the app context that `python -m workers` pushes.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from urllib.parse import quote

from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Content, CustomArg, From, Header, Mail, To
from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload
from twilio.rest import Client

from engine.db import utcnow
from engine.models import Campaign, Forward, Message, MessageStatus
from engine.rendering import default_templates
from engine.runtime import current_runtime
from engine.services.delivery import Links, message_context

JOB = "bench.dispatch.naive.send_one"
TEXT_JOB = "bench.dispatch.naive.send_one_text"
REFERENCE_ARG = "fluister_message"


@cache
def _links() -> Links:
    runtime = current_runtime()
    settings = runtime.settings
    return Links(settings.public_base_url, runtime.tokens, settings.unsubscribe_mailto)


def send_one(message_id: int) -> str:
    runtime = current_runtime()
    settings = runtime.settings
    started = utcnow()
    with runtime.db.reading() as session:
        message = _queued(session, message_id)
        if message is None:
            return "skipped"
        forward = message.forward
        campaign = forward.campaign
        links = _links()
        context = message_context(message, links)
        unsubscribe = context["unsubscribe_link"]
        sources = campaign.template_sources(default_templates())
        recipient = forward.recipient_contact or ""
        from_email, from_name = campaign.sender_email, campaign.brand_name
        public_id = message.public_id
        list_unsubscribe = links.list_unsubscribe(message, unsubscribe)

    rendered = runtime.renderer.render_email(sources, context)
    mail = Mail(from_email=From(from_email, from_name), to_emails=To(recipient), subject=rendered.subject)
    mail.content = [Content("text/plain", rendered.text), Content("text/html", rendered.html)]
    domain = from_email.rpartition("@")[2]
    mail.header = Header("Message-ID", f"<{public_id}@{domain}>")
    mail.header = Header("List-Unsubscribe", list_unsubscribe)
    mail.header = Header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    mail.custom_arg = CustomArg(REFERENCE_ARG, public_id)

    client = SendGridAPIClient(api_key=settings.sendgrid_api_key, host=settings.sendgrid_api_host)
    response = client.send(mail)
    provider_id = response.headers.get("X-Message-Id") or ""

    _mark_sent(message_id, provider_id, started)
    return provider_id


def send_one_text(message_id: int) -> str:
    """A text: rendered as the engine renders it, sent with a fresh Twilio client (the SDK's
    README way: `Client(sid, token).messages.create(...)`), from the configured number."""
    runtime = current_runtime()
    settings = runtime.settings
    started = utcnow()
    with runtime.db.reading() as session:
        message = _queued(session, message_id)
        if message is None:
            return "skipped"
        campaign = message.forward.campaign
        context = message_context(message, _links())
        sources = campaign.template_sources(default_templates())
        recipient = message.forward.recipient_contact or ""
        segment_limit, smart = max(1, campaign.sms_segment_limit), campaign.sms_smart_encoding
        public_id = message.public_id

    text = runtime.renderer.render_sms(sources, context, segment_limit=segment_limit, smart=smart)
    client = Client(settings.twilio_account_sid, settings.twilio_auth_token)
    client.api.base_url = settings.twilio_api_base.rstrip("/")
    callback = f"{settings.public_base_url}/hooks/twilio/status?m={quote(public_id)}"
    sent = client.messages.create(to=recipient, from_=settings.twilio_from, body=text, status_callback=callback)
    provider_id = str(sent.sid)
    _mark_sent(message_id, provider_id, started)
    return provider_id


def _queued(session: Session, message_id: int) -> Message | None:
    """The message with its forward, campaign, templates and logo, if it is still queued."""
    message = session.scalar(
        select(Message)
        .where(Message.id == message_id)
        .options(
            selectinload(Message.forward).selectinload(Forward.campaign).selectinload(Campaign.templates),
            selectinload(Message.forward).selectinload(Forward.campaign).selectinload(Campaign.logo),
        )
    )
    if message is None or message.status != MessageStatus.QUEUED:
        return None
    return message


def _mark_sent(message_id: int, provider_id: str, started: datetime) -> None:
    runtime = current_runtime()
    now = utcnow()
    with runtime.db.transaction() as session:
        session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(
                status=MessageStatus.SENT,
                provider_id=provider_id,
                attempts=Message.attempts + 1,
                claimed_at=started,
                sent_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
