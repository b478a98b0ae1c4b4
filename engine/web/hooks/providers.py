"""Provider webhooks. Every call must prove it comes from the provider; others get 403, logged.

- `/hooks/twilio/inbound`: texts people send to our number. STOP and its kin suppress the
  number, START and its kin lift that and record consent, HELP is answered with the brand
  and its support contact, and the opt-outs and opt-ins Twilio does not confirm itself are
  confirmed, in the language of the campaign that texted the number last; see
  engine/keywords.py for how a text is read. Twilio expects
  TwiML back; anything else gets an empty `<Response/>`. The sender's number is hashed at
  once, and neither stored nor logged. A `whatsapp:` sender wrote on WhatsApp: its keywords
  act on that channel alone (a WhatsApp STOP leaves texts alone, and the other way round).

- Twilio signs with HMAC-SHA1 of the full URL plus the sorted form parameters, keyed with
  the auth token (`X-Twilio-Signature`); the URL is ours as the provider saw it, so it is
  rebuilt from PUBLIC_BASE_URL, not from what a proxy passed on.
- SendGrid's Signed Event Webhook signs timestamp + raw body with ECDSA P-256
  (`X-Twilio-Email-Event-Webhook-Signature` / `-Timestamp`); stale timestamps are refused so
  that a captured request cannot be replayed later.

Anyone can post here, so a refusal must cost us less than the request cost its sender: a body
over the hook's size limit is refused by its Content-Length before a byte is read (a chunked
one is read only up to the limit), then a body without a signature, then (Twilio) one with
more parameters than Twilio ever sends, all before the signature is computed; nothing is
parsed for use until the signature holds.
"""

from __future__ import annotations

import json
import logging
import time

from flask import Blueprint, Response, current_app, request
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from engine import metrics
from engine.channels import MessageChannel, claiming
from engine.contacts import InvalidContact
from engine.keywords import Keyword, KeywordKind
from engine.metrics import WebhookResult
from engine.runtime import Runtime, current_runtime
from engine.services.keyword_replies import keyword_reply
from engine.services.provider_events import EventReport
from engine.web.clients import loggable_ip
from engine.web.errors import error_response

log = logging.getLogger(__name__)


bp = Blueprint("hooks", __name__, url_prefix="/hooks")

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_SIGNATURE_AGE_SECONDS = 10 * 60
# Twilio's callbacks are a few KiB of form parameters (an inbound text: at most 1,600
# characters, percent-encoded, and up to 10 media URLs), a few dozen parameters at most.
MAX_TWILIO_BYTES = 64 * 1024
MAX_TWILIO_PARAMS = 128
# SendGrid posts events in batches of up to about 768 KB (or every 30 seconds): more than a
# form may send (MAX_CONTENT_LENGTH), with room to spare.
MAX_SENDGRID_BYTES = 2 * 1024 * 1024
FORM_URLENCODED = "application/x-www-form-urlencoded"


@bp.before_request
def refuse_what_no_provider_sends() -> Response | None:
    """Size first: by the Content-Length header, before reading anything; a body without one
    (chunked) is read up to the limit and no further, and refused if it reaches it."""
    limit = MAX_SENDGRID_BYTES if request.path.startswith("/hooks/sendgrid/") else MAX_TWILIO_BYTES
    request.max_content_length = limit
    if request.content_length is not None:
        too_big = request.content_length > limit
    else:  # chunked: read up to the limit (no further) and kept; one that reaches it is cut short
        too_big = len(request.get_data(cache=True)) >= limit
    if too_big:
        metrics.webhook_events(_provider_of(request.path), WebhookResult.TOO_LARGE)
        log.warning("%s webhook refused: a body of more than %d bytes", request.path, limit)
        return error_response(413, f"A webhook body is at most {limit} bytes.", "Too much data")
    return None


@bp.post("/twilio/status")
def twilio_status() -> Response:
    if refused := _twilio_refusal("twilio status"):
        return refused
    report = current_runtime().provider_events.twilio_status(request.form.to_dict(), reference=request.args.get("m"))
    _count_report("twilio", report)
    return Response(status=204)


@bp.post("/twilio/inbound")
def twilio_inbound() -> Response:
    if refused := _twilio_refusal("twilio inbound"):
        return refused
    runtime = current_runtime()
    keyword = runtime.keywords.classify(request.form.get("Body", ""), request.form.get("OptOutType"))
    if keyword is None:
        metrics.webhook_events("twilio", WebhookResult.IGNORED)
        return _twiml(MessagingResponse())  # an ordinary reply: nothing to do, nothing to say
    claimed = claiming("twilio", request.form.get("From", ""))
    channel = claimed[0].name if claimed else None
    contact_hash = _sender_hash(runtime, *claimed) if claimed else None
    sid = request.form.get("MessageSid") or request.form.get("SmsSid") or ""
    if keyword.kind is KeywordKind.HELP:
        metrics.webhook_events("twilio", WebhookResult.APPLIED)
        return _twiml(_reply(runtime, keyword, contact_hash, claimed))
    if contact_hash is None or channel is None:
        metrics.webhook_events("twilio", WebhookResult.UNMATCHED)
        log.warning("twilio inbound %s %s from a sender that is no phone number: not recorded", keyword.word, sid)
        return _twiml(MessagingResponse())
    _record_keyword(runtime, keyword, contact_hash, sid, channel)
    # Twilio (or its Advanced Opt-Out) confirms the words of its own list; ours are confirmed here.
    return _twiml(_reply(runtime, keyword, contact_hash, claimed))


@bp.post("/sendgrid/events")
def sendgrid_events() -> Response:
    if not _sendgrid_signed():
        return _forbidden("sendgrid events")
    try:
        events = json.loads(request.get_data())
    except (ValueError, RecursionError):  # not JSON, or nested deeper than any event is
        metrics.webhook_events("sendgrid", WebhookResult.MALFORMED)
        return error_response(400, "The body is not JSON.")
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        metrics.webhook_events("sendgrid", WebhookResult.MALFORMED)
        return error_response(400, "The body must be a JSON array of event objects.")
    _count_report("sendgrid", current_runtime().provider_events.sendgrid_events(events))
    return Response(status=204)


def _sender_hash(runtime: Runtime, channel: MessageChannel, number: str) -> str | None:
    """The keyed hash of the number, as forwards store it (a number is one person on texts and
    on WhatsApp); None for no phone number (a short code, an alphanumeric sender)."""
    try:
        contact = channel.parse(number, runtime.settings.default_phone_region)
    except InvalidContact:
        return None
    return runtime.hasher.hash(contact)


def _record_keyword(runtime: Runtime, keyword: Keyword, contact_hash: str, sid: str, channel: str) -> None:
    events = runtime.provider_events
    if keyword.kind is KeywordKind.OPT_OUT:
        recorded = events.twilio_opt_out(contact_hash, keyword.word, sid, channel=channel)
    else:
        recorded = events.twilio_opt_in(contact_hash, keyword.word, sid, channel=channel)
    # The hash's first characters identify the person to staff who can search the log; no number.
    what = "recorded" if recorded else "already recorded (a retried webhook)"
    metrics.webhook_events("twilio", WebhookResult.APPLIED if recorded else WebhookResult.DUPLICATE)
    log.info("twilio inbound %s %s from contact %s… %s: %s", channel, keyword.word, contact_hash[:12], sid, what)


def _reply(
    runtime: Runtime, keyword: Keyword, contact_hash: str | None, claimed: tuple[MessageChannel, str] | None
) -> MessagingResponse:
    """CTIA: HELP gets the brand's name and a support contact, an opt-out or an opt-in its
    confirmation (when Twilio did not send one); the campaign that last wrote to the number on
    this channel says which brand that is, and in which language (engine.services.keyword_replies).
    A number we never wrote to gets the operator's generic HELP line."""
    channel = claimed[0] if claimed else None
    texted = (
        runtime.provider_events.last_texted_by(contact_hash, channel=channel.name) if contact_hash and channel else None
    )
    reply = MessagingResponse()
    confirms = channel.provider_confirms_keywords if channel else True
    text = keyword_reply(keyword, texted, runtime.settings.sms_help_reply, provider_confirms=confirms)
    if text is not None:
        reply.message(text)
    return reply


def _twiml(reply: MessagingResponse) -> Response:
    return Response(str(reply), mimetype="text/xml")


def _twilio_refusal(hook: str) -> Response | None:
    """Why a Twilio callback is refused (None: it is Twilio's), cheapest checks first: the
    signature header, the content type and the number of parameters, then the signature."""
    settings = current_runtime().settings
    signature = request.headers.get("X-Twilio-Signature", "")
    if not settings.twilio_auth_token or not signature:
        return _forbidden(hook)
    if request.mimetype != FORM_URLENCODED:
        metrics.webhook_events("twilio", WebhookResult.MALFORMED)
        return error_response(415, f"Twilio posts {FORM_URLENCODED}.", "Unsupported media type")
    # The raw body (at most MAX_TWILIO_BYTES) is kept, and the form is parsed from it later.
    if request.get_data(cache=True).count(b"&") >= MAX_TWILIO_PARAMS:
        log.warning("%s webhook refused: more than %d parameters", hook, MAX_TWILIO_PARAMS)
        metrics.webhook_events("twilio", WebhookResult.TOO_LARGE)
        return error_response(413, f"A Twilio callback has at most {MAX_TWILIO_PARAMS} parameters.", "Too much data")
    url = settings.public_base_url + request.full_path.rstrip("?")
    if not RequestValidator(settings.twilio_auth_token).validate(url, request.form.to_dict(), signature):
        return _forbidden(hook)
    return None


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


def _count_report(provider: str, report: EventReport) -> None:
    metrics.webhook_events(provider, WebhookResult.APPLIED, report.applied)
    metrics.webhook_events(provider, WebhookResult.DUPLICATE, report.duplicates)
    metrics.webhook_events(provider, WebhookResult.UNMATCHED, report.unmatched)


def _provider_of(path: str) -> str:
    return "sendgrid" if path.startswith("/hooks/sendgrid/") else "twilio"


def _forbidden(hook: str) -> Response:
    metrics.webhook_events(hook.partition(" ")[0], WebhookResult.BAD_SIGNATURE)
    # Who called and with what, but never the body: it may carry contacts.
    log.warning("%s webhook refused: missing or bad signature (from %s)", hook, loggable_ip())
    return error_response(403, "The request is not signed by the provider.", "Forbidden")
