"""WhatsApp: a phone number's other channel, through Twilio's Messages API.

- Contacts: phone numbers, read as for texts and hashed as texts hash them (one person on both
  channels: caps and "already invited" see one person); suppressions and consents stay
  scoped by the channel's own name, so a WhatsApp STOP leaves texts alone.
- Policy: WhatsApp's business rules make it an opt-in channel everywhere: `us` sends only to
  numbers whose WhatsApp consent is on record (imported with its evidence, or START sent on
  WhatsApp); eu-strict and share-only never (the consumer's own `wa.me` share link remains).
- Quiet hours as for texts; at most 1,600 characters of body.

A business may open a WhatsApp conversation only with a template WhatsApp has approved
(a Content Template at Twilio, `HX` + 32 hex digits). A campaign that enables WhatsApp
therefore names its template, copies the template's approved body (for the console's
preview: Twilio renders the real one), and says which of our values fills each of the
template's numbered variables: `{"1": "sender_name", "2": "link"}`.

WhatsApp approves a template in one language. A campaign that speaks several languages gives
one Content Template per language: the settings' own template is its default language's (its
first locale), `languages` holds the others' (`{"en": {"content_sid": ..., "body": ...}}`, the
variables the default's unless given), and a message goes with the template of its language.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from flask_babel import gettext, lazy_gettext

from engine.channels import ChannelRule, ComposedMessage, SettingsField
from engine.channels.sms import PhoneChannel
from engine.policy import ConsentPolicy
from engine.rendering import RenderError, TemplateRenderer
from engine.transports import OutgoingWhatsApp

NAME = "whatsapp"
# How Twilio writes a WhatsApp address (To, From): "whatsapp:+31612345678".
TWILIO_PREFIX = "whatsapp:"
CONTENT_SID = re.compile(r"^HX[0-9a-f]{32}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}$")
PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")
# What a WhatsApp message body may hold (Twilio's limit for a template's body, and a session's).
MAX_BODY = 1600
# The values of ours a template variable may take: those every composed message has (the
# campaign's, engine.services.composer). Their order is the console's.
KNOWN_VARIABLES = (
    "sender_name",
    "note",
    "link",
    "unsubscribe_link",
    "coupon_code",
    "offer_title",
    "offer_description",
    "brand_name",
    "campaign_name",
    "support_contact",
    "postal_address",
)


class TemplateSettingsInvalid(ValueError):
    """A campaign's WhatsApp template settings cannot be used; str() says why."""


@dataclass(frozen=True)
class ContentTemplate:
    """A campaign's WhatsApp template: checked in the constructor, so one that exists is usable."""

    content_sid: str
    body: str
    # The template's variable ("1", "2", ...) -> the name of our value that fills it.
    variables: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not CONTENT_SID.match(self.content_sid):
            raise TemplateSettingsInvalid(
                "the Content Template SID is HX followed by 32 hexadecimal digits, as Twilio's console shows it"
            )
        if not self.body.strip():
            raise TemplateSettingsInvalid("copy the template's approved body, with its {{1}} placeholders")
        if len(self.body) > MAX_BODY:
            raise TemplateSettingsInvalid(f"a WhatsApp template's body is at most {MAX_BODY} characters")
        unknown = sorted({name for name in self.variables.values()} - set(KNOWN_VARIABLES))
        if unknown:
            raise TemplateSettingsInvalid(
                f"unknown values {', '.join(unknown)}; a variable takes one of {', '.join(KNOWN_VARIABLES)}"
            )
        unmapped = sorted(set(self.placeholders) - set(self.variables), key=int)
        if unmapped:
            raise TemplateSettingsInvalid(
                f"say which value fills {', '.join('{{' + number + '}}' for number in unmapped)}"
            )
        extra = sorted(set(self.variables) - set(self.placeholders), key=_number)
        if extra:
            raise TemplateSettingsInvalid(f"the body has no placeholder {', '.join(extra)}")

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The template's variables, in the order the body first uses them."""
        return tuple(dict.fromkeys(PLACEHOLDER.findall(self.body)))

    @classmethod
    def for_language(cls, settings: Mapping[str, Any], locale: str | None) -> ContentTemplate:
        """The template a message in `locale` goes with: that language's, when the settings have
        one (`languages`), else the default language's."""
        languages = settings.get("languages") or {}
        own = languages.get(locale) if isinstance(languages, Mapping) and locale else None
        if own is None:
            return cls.from_settings(settings)
        if not isinstance(own, Mapping):
            raise TemplateSettingsInvalid(f"the {locale} template must be an object with its content_sid and body")
        return cls.from_settings({"variables": settings.get("variables"), **own})

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ContentTemplate:
        """From a campaign's stored `channel_settings["whatsapp"]` (its default language's)."""
        variables = settings.get("variables") or {}
        if not isinstance(variables, Mapping) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in variables.items()
        ):
            raise TemplateSettingsInvalid("the variables map each placeholder's number to one of our values")
        return cls(
            content_sid=str(settings.get("content_sid", "")).strip(),
            body=str(settings.get("body", "")),
            variables={key.strip(): value.strip() for key, value in variables.items()},
        )

    def as_settings(self) -> dict[str, Any]:
        return {"content_sid": self.content_sid, "body": self.body, "variables": dict(self.variables)}

    def values_for(self, context: Mapping[str, Any]) -> dict[str, str]:
        """ContentVariables: each of the template's variables filled from the composed message's
        values. WhatsApp refuses an empty variable, so an empty value (no note) becomes a dash."""
        return {number: str(context.get(name, "")).strip() or "-" for number, name in self.variables.items()}

    def render(self, values: Mapping[str, str]) -> str:
        """The body as the recipient will read it, the variables filled in."""
        return PLACEHOLDER.sub(lambda match: values.get(match[1], match[0]), self.body)


def number_in_twilio_address(address: str) -> str | None:
    """The number of a WhatsApp address as Twilio writes it, or None for any other address."""
    text = address.strip()
    return text[len(TWILIO_PREFIX) :] if text.lower().startswith(TWILIO_PREFIX) else None


def _number(key: str) -> tuple[int, str]:
    return (int(key), key) if key.isdigit() else (1 << 30, key)


def template_problem(settings: Mapping[str, Any] | None) -> str | None:
    """Why a campaign's WhatsApp settings cannot be used, or None."""
    if not settings:
        return "WhatsApp needs the campaign's Content Template: its SID, its approved body and its variables"
    languages = settings.get("languages") or {}
    if not isinstance(languages, Mapping) or not all(LANGUAGE.match(str(key)) for key in languages):
        return (
            'the templates in other languages are an object by language code: {"en": {"content_sid": ..., "body": ...}}'
        )
    try:
        ContentTemplate.from_settings(settings)
        for locale in languages:
            try:
                ContentTemplate.for_language(settings, locale)
            except TemplateSettingsInvalid as error:
                raise TemplateSettingsInvalid(f"the {locale} template: {error}") from None
    except TemplateSettingsInvalid as error:
        return str(error)
    return None


def language_gaps(settings: Mapping[str, Any] | None, locales: list[str]) -> list[str]:
    """The campaign's languages, beyond its first, that have no Content Template of their own."""
    languages = (settings or {}).get("languages") or {}
    return [locale for locale in locales[1:] if not isinstance(languages, Mapping) or locale not in languages]


@dataclass(frozen=True)
class WhatsAppPreview:
    """The message as the friend will read it, and what it is made of: the template and the
    value each of its variables takes."""

    content_sid: str
    text: str
    # (the template's variable, the name of our value that fills it, the value), in body order.
    variables: tuple[tuple[str, str, str], ...]
    characters: int
    limit: int = MAX_BODY


# Twilio's status words for WhatsApp: "read" comes after "delivered" and means no less.
_TWILIO_STATUS = {
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "sent": "sent",
}


def _variables_shown(variables: Any) -> str:
    return "\n".join(f"{number} = {name}" for number, name in (variables or {}).items())


def _languages_shown(languages: Any) -> str:
    return json.dumps(languages, indent=2, ensure_ascii=False) if languages else ""


def _languages_typed(text: str) -> dict[str, Any]:
    """A JSON object: for each other language, its template's content_sid and body."""
    if not text.strip():
        return {}
    try:
        languages = json.loads(text)
    except ValueError as error:
        raise ValueError(f"write the templates in other languages as a JSON object ({error})") from None
    if not isinstance(languages, dict):
        raise ValueError(
            'write the templates in other languages as a JSON object: {"en": {"content_sid": ..., "body": ...}}'
        )
    return languages


def _variables_typed(text: str) -> dict[str, str]:
    """`1 = sender_name` (or `{{1}}: sender_name`), one a line."""
    variables: dict[str, str] = {}
    wrong = None
    for line in (line.strip() for line in text.splitlines()):
        if not line:
            continue
        number, separator, name = line.replace(":", "=", 1).partition("=")
        if not separator or not number.strip() or not name.strip():
            wrong = line
            continue
        variables[number.strip().strip("{} ")] = name.strip()
    if wrong is not None:
        raise ValueError(f"write each variable as 1 = sender_name, not {wrong!r}")
    return variables


SETTINGS_FIELDS = (
    SettingsField(
        "content_sid",
        lazy_gettext("WhatsApp Content Template SID"),
        lazy_gettext("HX followed by 32 hexadecimal digits, as Twilio's console shows it."),
    ),
    SettingsField(
        "body",
        lazy_gettext("The template's approved body"),
        lazy_gettext(
            "Word for word, with its %(placeholders)s placeholders: the preview shows it filled in.",
            placeholders="{{1}}, {{2}}",
        ),
        multiline=True,
    ),
    SettingsField(
        "variables",
        lazy_gettext("What fills each variable (one a line: %(example)s)", example="1 = sender_name"),
        lazy_gettext("Each placeholder of the body takes one of: %(names)s.", names=", ".join(KNOWN_VARIABLES)),
        multiline=True,
        format=_variables_shown,
        parse=_variables_typed,
    ),
    SettingsField(
        "languages",
        lazy_gettext("Templates in the campaign's other languages"),
        lazy_gettext(
            "WhatsApp approves a template in one language: the one above is for the campaign's first language. "
            "For each other, a JSON object: %(example)s (the variables as above unless given).",
            example='{"en": {"content_sid": "HX…", "body": "…"}}',
        ),
        multiline=True,
        optional=True,
        format=_languages_shown,
        parse=_languages_typed,
    ),
)


class WhatsAppChannel(PhoneChannel):
    name = NAME
    label = "WhatsApp message"

    def not_offered_problem(self, position: int) -> str:
        return gettext("Friend %(position)s: this offer can't be sent on WhatsApp.", position=position)

    # No template file of ours: WhatsApp sends the campaign's approved Content Template.
    templates = ()
    built_in_rules: ClassVar[Mapping[str, ChannelRule]] = {"us": ChannelRule.WITH_CONSENT}
    concurrent = True
    message_noun = "WhatsApp message"
    preview_partial = "pages/console/preview/whatsapp.html"

    def activation_problems(self, campaign: Any, policy: ConsentPolicy) -> list[str]:
        # Checked when saved too; this catches a campaign whose settings were written otherwise.
        if NAME not in campaign.channels:
            return []
        settings = (campaign.channel_settings or {}).get(NAME)
        problem = template_problem(settings)
        if problem:
            return [problem]
        return [
            f"WhatsApp needs a Content Template in {locale}, a language of the campaign (WhatsApp approves each "
            "template in one language)"
            for locale in language_gaps(settings, list(campaign.locales or ()))
        ]

    def render(self, renderer: TemplateRenderer, message: ComposedMessage) -> OutgoingWhatsApp:
        """The campaign's Content Template, its variables filled from the message's values."""
        try:
            settings = message.campaign.channel_settings.get(NAME) or {}
            template = ContentTemplate.for_language(settings, message.campaign.locale)
        except TemplateSettingsInvalid as error:
            raise RenderError(f"WhatsApp: {error}") from None
        values = template.values_for(message.context)
        text = template.render(values)
        if len(text) > MAX_BODY:
            raise RenderError(f"the WhatsApp message is {len(text)} characters long; WhatsApp takes {MAX_BODY}")
        return OutgoingWhatsApp(
            to=message.to, content_sid=template.content_sid, variables=values, text=text, reference=message.reference
        )

    def preview(self, renderer: TemplateRenderer, message: ComposedMessage, settings: Any) -> WhatsAppPreview:
        """What the console's preview shows; raises `RenderError` as `render` does."""
        outgoing = self.render(renderer, message)
        template = ContentTemplate.for_language(message.campaign.channel_settings[NAME], message.campaign.locale)
        filled = tuple(
            (number, template.variables[number], outgoing.variables[number]) for number in template.placeholders
        )
        return WhatsAppPreview(outgoing.content_sid, outgoing.text, filled, len(outgoing.text))

    def mark_as_test(self, outgoing: OutgoingWhatsApp, prefix: str) -> OutgoingWhatsApp:
        # An approved template cannot take a prefix: the test is the message itself.
        return replace(outgoing, reference="")

    settings_fields = SETTINGS_FIELDS
    settings_heading = "WhatsApp"
    settings_intro = lazy_gettext(
        "Only with the WhatsApp channel. WhatsApp lets a business write first only with a template it has "
        "approved: create it as a Content Template at Twilio, wait for WhatsApp's approval, and copy it here. "
        "WhatsApp then goes only to friends whose WhatsApp consent is on record."
    )

    def settings_problem(self, settings: Mapping[str, Any] | None, *, enabled: bool) -> str | None:
        # Kept while the channel is off (so that switching it back on keeps the template), and
        # checked whenever given: a wrong SID saved today is a failed send on the day it is used.
        return template_problem(settings) if enabled or settings else None

    def send(self, transport: Any, outgoing: OutgoingWhatsApp) -> str:
        return str(transport.send_whatsapp(outgoing))

    def provider_address(self, provider: str, address: str) -> str | None:
        return number_in_twilio_address(address) if provider == "twilio" else None

    def provider_status(self, status: str) -> str | None:
        return _TWILIO_STATUS.get(status)


CHANNEL = WhatsAppChannel()
