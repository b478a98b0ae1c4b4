"""Text messages: phone numbers, the `sms.txt` template and what it must print, quiet hours,
segments (engine.sms measures them), sending through an SMS transport (Twilio, the outbox),
and what Twilio's status callbacks mean."""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, ClassVar

import phonenumbers

from engine.channels import ChannelRule, ComposedMessage, MessageChannel
from engine.contacts import Contact, InvalidContact
from engine.policy import SENDER_IDENTITY, SMS_OPT_OUT, ConsentPolicy, RequiredElement
from engine.quiet_hours import Window
from engine.rendering import RenderError, TemplateRenderer
from engine.sms import SmsPreview, SmsPrice, measure, non_gsm_characters
from engine.transports import OutgoingSms

NAME = "sms"
TEMPLATE = "sms.txt"

# A server-sent text (us with the friend's consent, custom when allowed) names the brand and
# says how to stop (CTIA: brand and "Reply STOP"; TCPA: opt-out honoured). "Reply STOP" or the
# unsubscribe link both work: STOP replies reach /hooks/twilio/inbound.
ELEMENTS: tuple[RequiredElement, ...] = (SENDER_IDENTITY, SMS_OPT_OUT)

# Twilio's status words that change a message's state (queued, accepted, sending, read: none).
_TWILIO_STATUS = {"delivered": "delivered", "undelivered": "failed", "failed": "failed", "sent": "sent"}


def read_phone_number(raw: str, default_region: str) -> str:
    """The number in E.164, or `InvalidContact`."""
    # Full-width digits and plus, as phone keyboards in East Asia type them, made ASCII.
    text = unicodedata.normalize("NFKC", raw).strip()
    number = _read_number(text, default_region)
    if number is None and text.startswith("00"):
        # 00 is the international prefix in most of the world, whatever the default region's
        # own (011 in the US): "0031 6 ..." typed to a US campaign is a Dutch number.
        number = _read_number("+" + text[2:], default_region)
    if number is None:
        raise InvalidContact(f"{raw.strip()!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _read_number(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        # `tel:` URIs and extensions (", ext. 12", ";ext=12", " x12") are understood; a text
        # goes to the line, so the extension is dropped and the number stays one identity.
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def parse_phone(raw: str, default_region: str) -> Contact:
    return Contact(NAME, read_phone_number(raw, default_region))


def phone_identity(number: str) -> str:
    """What a phone number is hashed as, on every channel that reaches it (SMS, WhatsApp): one
    person, one identity, for caps, "already invited" and the hashes already stored."""
    return f"{NAME}:{number}"


def masked_number(number: str) -> str:
    return f"{number[:5]}****{number[-2:]}"


def mask_number_quotes(number: str, text: str) -> str:
    """`text` with the number masked wherever it is quoted, with or without its plus."""
    return re.sub(r"\+?" + re.escape(number.lstrip("+")), lambda _: masked_number(number), text)


class PhoneChannel(MessageChannel):
    """What every channel that reaches a phone number shares (texts, WhatsApp): its contacts are
    numbers, typed as people type them, hashed as one identity, masked alike; and its messages
    buzz a phone, so they keep to the policy's hours in the recipient's time zone."""

    contact_noun = "phone number"
    preview_contact = "+10000000000"  # a number no phone has

    def recognises(self, text: str) -> bool:
        return "@" not in text

    def parse(self, text: str, region: str) -> Contact:
        return Contact(self.name, read_phone_number(text, region))

    def identity(self, value: str) -> str:
        return phone_identity(value)

    def masked(self, value: str) -> str:
        return masked_number(value)

    def mask_quotes(self, value: str, text: str) -> str:
        return mask_number_quotes(value, text)

    def quiet_window(self, policy: ConsentPolicy) -> Window | None:
        return policy.sms_window


class SmsChannel(PhoneChannel):
    confirms_by_code = True
    confirms_referrers = True
    name = NAME
    label = "text message"
    templates = (TEMPLATE,)
    built_in_rules: ClassVar[Mapping[str, ChannelRule]] = {"us": ChannelRule.WITH_CONSENT}
    legacy_policy_key = "server_sms"
    concurrent = True
    message_noun = "text message"
    preview_partial = "pages/console/preview/sms.html"
    previewed_always = True

    def required_elements(self, policy: ConsentPolicy, template_name: str) -> tuple[RequiredElement, ...]:
        return ELEMENTS

    def render(self, renderer: TemplateRenderer, message: ComposedMessage) -> OutgoingSms:
        campaign = message.campaign
        text = renderer.render_sms(
            campaign.sources,
            message.context,
            segment_limit=max(1, campaign.sms_segment_limit),
            smart=campaign.sms_smart_encoding,
        )
        return OutgoingSms(to=message.to, text=text, reference=message.reference)

    def typed_input_problems(
        self, renderer: TemplateRenderer, compose: Callable[[str, str], ComposedMessage], sender_name: str, note: str
    ) -> dict[str, list[str]]:
        """A text to a friend is the campaign's SMS template with this sender's name and note: one
        that needs more segments than the campaign allows would fail when sent, so it is refused
        now, on the field that made it long. A non-GSM character (王, an emoji) alone makes every
        segment hold 70 characters instead of 160."""

        def segments(name: str, typed_note: str) -> int | None:
            # Without the campaign's limit: the point is to say by how much a text is over it.
            # None when the template does not render: the campaign's to fix, the send's to report.
            message = compose(name, typed_note)
            unlimited = replace(message, campaign=replace(message.campaign, sms_segment_limit=sys.maxsize))
            try:
                return measure(self.render(renderer, unlimited).text).segments
            except RenderError:
                return None

        limit = max(1, compose("", "").campaign.sms_segment_limit)
        needed = segments(sender_name, note)
        if needed is None or needed <= limit:
            return {}
        bare = segments("", "")
        if bare is None or bare > limit:
            # Too long whatever the sender types: the sender could not do anything about it.
            return {}
        without_note = segments(sender_name, "") if note else None
        field_name, what = (
            ("note", "Your note")
            if without_note is not None and without_note <= limit
            else ("sender_name", "Your name")
        )
        advice = (
            ", or write it without special characters or emoji, which make each part much shorter."
            if non_gsm_characters(f"{sender_name} {note}")
            else "."
        )
        return {
            field_name: [
                f"{what} makes the text message to your friends too long: it would need {needed} parts, "
                f"and this offer sends at most {limit}. Please shorten it" + advice
            ]
        }

    def preview(self, renderer: TemplateRenderer, message: ComposedMessage, settings: Any) -> SmsPreview:
        # Its own rendering (whitespace, smart encoding) without its segment limit: a text over
        # the limit is still shown, with its figures, and the limit listed as the problem.
        campaign = message.campaign
        unlimited = replace(message, campaign=replace(campaign, sms_segment_limit=sys.maxsize))
        price = SmsPrice(settings.sms_price_per_segment, settings.sms_price_currency) if settings else SmsPrice()
        return SmsPreview.of(
            self.render(renderer, unlimited).text,
            segment_limit=max(1, campaign.sms_segment_limit),
            smart_encoding=campaign.sms_smart_encoding,
            price=price,
        )

    def mark_as_test(self, outgoing: OutgoingSms, prefix: str) -> OutgoingSms:
        return replace(outgoing, text=prefix + outgoing.text, reference="")

    def cost(self, outgoing: OutgoingSms) -> int:
        return measure(outgoing.text).segments

    def send(self, transport: Any, outgoing: OutgoingSms) -> str:
        return str(transport.send_sms(outgoing))

    def provider_address(self, provider: str, address: str) -> str | None:
        # Twilio writes a text's sender as the bare number; a scheme (`whatsapp:`) is another channel's.
        text = address.strip()
        return text if provider == "twilio" and ":" not in text else None

    def provider_status(self, status: str) -> str | None:
        return _TWILIO_STATUS.get(status)


CHANNEL = SmsChannel()
