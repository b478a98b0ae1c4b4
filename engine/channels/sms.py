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
from flask_babel import gettext, ngettext

from engine.channels import ChannelRule, ComposedMessage, ContactKind, MessageChannel
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


def national_display(number: str, region: str) -> str:
    """An E.164 number as people of `region` write it: nationally (`06 12345678`) when it is
    one of that region's numbers, internationally (`+32 470 12 34 56`) otherwise."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    national = phonenumbers.region_code_for_number(parsed) == region
    style = phonenumbers.PhoneNumberFormat.NATIONAL if national else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(parsed, style)


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
    contact_kind = ContactKind.PHONE_NUMBER
    preview_contact = "+10000000000"  # a number no phone has

    def recognises(self, text: str) -> bool:
        return "@" not in text

    def shown(self, value: str, region: str) -> str:
        return national_display(value, region)

    def own_contact_problem(self, position: int) -> str:
        return gettext("Friend %(position)s: that is your own phone number.", position=position)

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

    def not_offered_problem(self, position: int) -> str:
        return gettext("Friend %(position)s: this offer can't be sent by text message.", position=position)

    templates = (TEMPLATE,)
    built_in_rules: ClassVar[Mapping[str, ChannelRule]] = {"us": ChannelRule.WITH_CONSENT}
    legacy_policy_key = "server_sms"
    concurrent = True
    # Twilio's opt-out handling on long codes answers STOP, START and their kin itself.
    provider_confirms_keywords = True
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
        if without_note is not None and without_note <= limit:
            field_name = "note"
            problem = ngettext(
                "Your note makes the text message to your friends too long: it would need %(needed)s parts, "
                "and this offer sends at most %(num)s part.",
                "Your note makes the text message to your friends too long: it would need %(needed)s parts, "
                "and this offer sends at most %(num)s parts.",
                limit,
                needed=needed,
            )
        else:
            field_name = "sender_name"
            problem = ngettext(
                "Your name makes the text message to your friends too long: it would need %(needed)s parts, "
                "and this offer sends at most %(num)s part.",
                "Your name makes the text message to your friends too long: it would need %(needed)s parts, "
                "and this offer sends at most %(num)s parts.",
                limit,
                needed=needed,
            )
        advice = (
            gettext(
                "Please shorten it, or write it without special characters or emoji, which make each part much shorter."
            )
            if non_gsm_characters(f"{sender_name} {note}")
            else gettext("Please shorten it.")
        )
        # Two whole sentences, each translated as one.
        return {field_name: [f"{problem} {advice}"]}

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

    def notice(
        self, to: str, *, subject: str, text: str, brand: str, sender_email: str, postal_address: str, reference: str
    ) -> OutgoingSms:
        # A text has no subject: the text names the brand itself.
        return OutgoingSms(to=to, text=text, reference=reference)

    def send(self, transport: Any, outgoing: OutgoingSms) -> str:
        return str(transport.send_sms(outgoing))

    def provider_address(self, provider: str, address: str) -> str | None:
        # Twilio writes a text's sender as the bare number; a scheme (`whatsapp:`) is another channel's.
        text = address.strip()
        return text if provider == "twilio" and ":" not in text else None

    def provider_status(self, status: str) -> str | None:
        return _TWILIO_STATUS.get(status)


CHANNEL = SmsChannel()
