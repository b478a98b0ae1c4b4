"""Provider webhooks. Every call must prove it comes from the provider; others get 403, logged.

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

from flask import Blueprint, Response, current_app, request
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator

from engine.runtime import current_runtime
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
