"""Provider webhooks. Every call must prove it comes from the provider; others get 403, logged.

- `/hooks/twilio/inbound`: texts people send to our number. STOP and its kin suppress the
  number, START and its kin lift that and record consent, HELP is answered with the brand
  and its support contact; see engine/keywords.py for how a text is read. Twilio expects
  TwiML back; anything else gets an empty `<Response/>`. The sender's number is hashed at
  once, and neither stored nor logged.

- Twilio signs with HMAC-SHA1 of the full URL plus the sorted form parameters, keyed with
  the auth token (`X-Twilio-Signature`); the URL is ours as the provider saw it, so it is
  rebuilt from PUBLIC_BASE_URL, not from what a proxy passed on.
- SendGrid's Signed Event Webhook signs timestamp + raw body with ECDSA P-256
  (`X-Twilio-Email-Event-Webhook-Signature` / `-Timestamp`); stale timestamps are refused so
  that a captured request cannot be replayed later.
"""

from __future__ import annotations

import json
import logging
import time
from functools import lru_cache

from flask import Blueprint, Response, current_app, request
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from config import Settings
from engine.contacts import InvalidContact, parse_phone
from engine.keywords import Keyword, KeywordBook, KeywordKind
from engine.runtime import Runtime, current_runtime
from engine.web.errors import error_response

log = logging.getLogger(__name__)

bp = Blueprint("hooks", __name__, url_prefix="/hooks")

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_SIGNATURE_AGE_SECONDS = 10 * 60
# SendGrid posts events in arrays of hundreds: far more than a form may send (MAX_CONTENT_LENGTH).
MAX_HOOK_BYTES = 10 * 1024 * 1024


@bp.before_request
def allow_provider_sized_bodies() -> None:
    request.max_content_length = MAX_HOOK_BYTES


@bp.post("/twilio/status")
def twilio_status() -> Response:
    if not _twilio_signed():
        return _forbidden("twilio status")
    current_runtime().provider_events.twilio_status(request.form.to_dict(), reference=request.args.get("m"))
    return Response(status=204)


@bp.post("/twilio/inbound")
def twilio_inbound() -> Response:
    if not _twilio_signed():
        return _forbidden("twilio inbound")
    runtime = current_runtime()
    keyword = keyword_book(runtime.settings).classify(request.form.get("Body", ""), request.form.get("OptOutType"))
    if keyword is None:
        return _twiml(MessagingResponse())  # an ordinary reply: nothing to do, nothing to say
    contact_hash = _sender_hash(runtime, request.form.get("From", ""))
    sid = request.form.get("MessageSid") or request.form.get("SmsSid") or ""
    if keyword.kind is KeywordKind.HELP:
        return _twiml(_help_reply(runtime, contact_hash))
    if contact_hash is None:
        log.warning("twilio inbound %s %s from a sender that is no phone number: not recorded", keyword.word, sid)
        return _twiml(MessagingResponse())
    _record_keyword(runtime, keyword, contact_hash, sid)
    # Twilio (or its Advanced Opt-Out) sends the carriers' confirmation text itself.
    return _twiml(MessagingResponse())


@bp.post("/sendgrid/events")
def sendgrid_events() -> Response:
    if not _sendgrid_signed():
        return _forbidden("sendgrid events")
    try:
        events = json.loads(request.get_data())
    except ValueError:
        return error_response(400, "The body is not JSON.")
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        return error_response(400, "The body must be a JSON array of event objects.")
    current_runtime().provider_events.sendgrid_events(events)
    return Response(status=204)


@lru_cache(maxsize=4)
def keyword_book(settings: Settings) -> KeywordBook:
    """The keywords in force, built once per settings (which config has already validated)."""
    return KeywordBook.build(
        settings.sms_keyword_languages,
        extra_opt_out=settings.sms_opt_out_keywords,
        extra_opt_in=settings.sms_opt_in_keywords,
        extra_help=settings.sms_help_keywords,
    )


def _sender_hash(runtime: Runtime, sender: str) -> str | None:
    """The keyed hash of the texting number, as forwards store it; None for no phone number
    (a short code, an alphanumeric sender, a WhatsApp address)."""
    try:
        contact = parse_phone(sender, runtime.settings.default_phone_region)
    except InvalidContact:
        return None
    return runtime.hasher.hash(contact)


def _record_keyword(runtime: Runtime, keyword: Keyword, contact_hash: str, sid: str) -> None:
    events = runtime.provider_events
    if keyword.kind is KeywordKind.OPT_OUT:
        recorded = events.twilio_opt_out(contact_hash, keyword.word, sid)
    else:
        recorded = events.twilio_opt_in(contact_hash, keyword.word, sid)
    # The hash's first characters identify the person to staff who can search the log; no number.
    what = "recorded" if recorded else "already recorded (a retried webhook)"
    log.info("twilio inbound %s from contact %s… %s: %s", keyword.word, contact_hash[:12], sid, what)


def _help_reply(runtime: Runtime, contact_hash: str | None) -> MessagingResponse:
    """CTIA: the brand's name and a support contact; the campaign that last texted the number
    says which brand that is. A number we never texted gets the operator's generic line."""
    texted = runtime.provider_events.last_texted_by(contact_hash) if contact_hash else None
    reply = MessagingResponse()
    if texted is None:
        reply.message(runtime.settings.sms_help_reply)
    else:
        reply.message(f"{texted.brand_name}: help at {texted.support_contact}. Reply STOP to opt out.")
    return reply


def _twiml(reply: MessagingResponse) -> Response:
    return Response(str(reply), mimetype="text/xml")


def _twilio_signed() -> bool:
    settings = current_runtime().settings
    signature = request.headers.get("X-Twilio-Signature", "")
    if not settings.twilio_auth_token or not signature:
        return False
    url = settings.public_base_url + request.full_path.rstrip("?")
    return RequestValidator(settings.twilio_auth_token).validate(url, request.form.to_dict(), signature)


def _sendgrid_signed() -> bool:
    key = current_runtime().settings.sendgrid_webhook_public_key
    signature = request.headers.get(SENDGRID_SIGNATURE, "")
    timestamp = request.headers.get(SENDGRID_TIMESTAMP, "")
    if not key or not signature or not timestamp.isdigit():
        return False
    if abs(time.time() - int(timestamp)) > MAX_SIGNATURE_AGE_SECONDS:
        return False
    try:
        body = request.get_data().decode("utf-8")
        return EventWebhook(key).verify_signature(body, signature, timestamp)
    except (ValueError, TypeError):  # a malformed key, signature or body
        current_app.logger.warning("sendgrid events: malformed signature, key or body")
        return False


def _forbidden(hook: str) -> Response:
    # Who called and with what, but never the body: it may carry contacts.
    log.warning("%s webhook refused: missing or bad signature (from %s)", hook, request.remote_addr)
    return error_response(403, "The request is not signed by the provider.", "Forbidden")
