"""E-mail: addresses, the e-mail templates and what each policy requires of them, the
List-Unsubscribe headers, and sending through an e-mail transport (SMTP, SendGrid, the outbox)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from email.headerregistry import Address
from typing import Any, ClassVar

from disposable_email_domains import blocklist as DISPOSABLE_DOMAINS
from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext
from flask_babel import gettext as _

from engine.channels import CampaignSending, ChannelRule, ComposedMessage, ContactKind, MessageChannel, MessageLinks
from engine.contacts import EMAIL_IN_TEXT, Contact, InvalidContact, canonical_email, mailbox_domains
from engine.policy import (
    POSTAL_ADDRESS,
    REFERRER_NAME,
    SENDER_IDENTITY,
    UNSUBSCRIBE_LINK,
    ConsentPolicy,
    RequiredElement,
)
from engine.rendering import TemplateRenderer
from engine.transports import OutgoingEmail

NAME = "email"
TEMPLATES = ("email.html", "email.txt")

# What the server-sent email must carry, by policy (docs/policies.md). Every policy that
# sends email needs the unsubscribe link (CAN-SPAM's opt-out, the GDPR right to object, the
# mailbox providers' one-click rule) and the brand (the recipient must see who sends it).
# - us: the brand is the sender of a rewarded forward (FTC 2008), so CAN-SPAM's postal
#   address too; CAN-SPAM does not ask for the referrer's name.
# - eu-strict: the recipient must see who sent it and through which site (ACM, NL) and the
#   referrer must be named (UFMD charter, FR); no EU rule asks for a postal address.
# - custom: may send anywhere, so it meets both: the union of the two (as does any policy
#   not in this table).
# share-only sends no email; a custom policy without server email needs nothing either.
ELEMENTS: Mapping[str, tuple[RequiredElement, ...]] = {
    "us": (UNSUBSCRIBE_LINK, SENDER_IDENTITY, POSTAL_ADDRESS),
    "eu-strict": (UNSUBSCRIBE_LINK, SENDER_IDENTITY, REFERRER_NAME),
    "custom": (UNSUBSCRIBE_LINK, SENDER_IDENTITY, POSTAL_ADDRESS, REFERRER_NAME),
}


def parse_email(raw: str) -> Contact:
    try:
        # Syntax only: a DNS lookup has no place in the request path.
        # ASCII addresses only: many relays cannot carry internationalised ones (SMTPUTF8).
        result = validate_email(raw.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as error:
        raise InvalidContact(str(error)) from None
    # The ASCII form (punycode domain) is what every relay can carry, and one spelling of an
    # address keeps one hash.
    return Contact(NAME, result.ascii_email or result.normalized)


@dataclass(frozen=True)
class EmailPreview:
    subject: str
    html: str  # CSS inlined, as sent
    text: str
    headers: tuple[tuple[str, str], ...]  # (name, value), in the order a mail client lists them


def _from_header(name: str, address: str) -> str:
    try:
        # Quotes the display name where it must be (a comma, a dot), as the transports do.
        return str(Address(display_name=name, addr_spec=address))
    except (ValueError, IndexError):  # an address the header parser refuses: shown as stored
        return f"{name} <{address}>"


class EmailChannel(MessageChannel):
    confirms_referrers = True
    name = NAME
    label = "email"

    def not_offered_problem(self, position: int) -> str:
        return gettext("Friend %(position)s: this offer can't be sent by email.", position=position)

    def own_contact_problem(self, position: int) -> str:
        return gettext("Friend %(position)s: that is your own email address.", position=position)

    contact_noun = "e-mail address"
    contact_kind = ContactKind.EMAIL_ADDRESS
    templates = TEMPLATES
    built_in_rules: ClassVar[Mapping[str, ChannelRule]] = {"us": ChannelRule.ALLOWED, "eu-strict": ChannelRule.ALLOWED}
    legacy_policy_key = "server_email"
    rehash_needed = True
    message_noun = "e-mail"
    preview_partial = "pages/console/preview/email.html"
    previewed_always = True
    preview_contact = "friend@example.invalid"  # RFC 2606's .invalid: nobody's
    staff_signs_in_with = True

    def recognises(self, text: str) -> bool:
        return "@" in text

    def parse(self, text: str, region: str) -> Contact:
        return parse_email(text)

    def identity(self, value: str) -> str:
        """An address is reduced to the mailbox it reaches (`canonical_email`), so that an
        opt-out, a cap or "already invited" cannot be dodged by changing the case, a dot or a
        `+tag`. Messages still go to the address as typed."""
        return f"{NAME}:{canonical_email(value)}"

    def legacy_identity(self, value: str) -> str | None:
        # Versions before canonical identities hashed the address lowercased.
        legacy = f"{NAME}:{value.lower()}"
        return legacy if legacy != self.identity(value) else None

    def masked(self, value: str) -> str:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"

    def spelling_hints(self, value: str) -> tuple[str, ...]:
        # Every spelling of a mailbox (case, a provider's dots and +tags, its alias domains)
        # ends at one of its domains.
        return tuple(f"@{domain}" for domain in mailbox_domains(value))

    def mask_quotes(self, value: str, text: str) -> str:
        # The address as typed in any case, then any other spelling of the same mailbox.
        masked = super().mask_quotes(value, text)
        mailbox = canonical_email(value)
        return EMAIL_IN_TEXT.sub(lambda m: self.masked(value) if canonical_email(m[0]) == mailbox else m[0], masked)

    def disposable(self, value: str) -> bool:
        return value.rpartition("@")[2].lower() in DISPOSABLE_DOMAINS

    def required_elements(self, policy: ConsentPolicy, template_name: str) -> tuple[RequiredElement, ...]:
        return ELEMENTS.get(policy.name, ELEMENTS["custom"])

    def activation_problems(self, campaign: Any, policy: ConsentPolicy) -> list[str]:
        problems = []
        if not campaign.sender_email:
            problems.append(
                _(
                    "a sender email address is needed: the %(policy)s policy has the server send email",
                    policy=policy.name,
                )
            )
        needs_address = any(POSTAL_ADDRESS in self.required_elements(policy, name) for name in self.templates)
        if needs_address and not campaign.postal_address.strip():
            problems.append(
                _("a postal address is needed: the %(policy)s policy requires it in every email", policy=policy.name)
            )
        return problems

    def headers(self, campaign: CampaignSending, links: MessageLinks, reference: str) -> dict[str, str]:
        domain = campaign.sender_email.rpartition("@")[2] or "fluister.invalid"
        return {
            "Message-ID": f"<{reference}@{domain}>",
            "List-Unsubscribe": links.list_unsubscribe or f"<{links.unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            # The language the friend reads it in (RFC 3282): mail clients offer to translate
            # by it, and screen readers pick their voice.
            "Content-Language": campaign.locale,
        }

    def render(self, renderer: TemplateRenderer, message: ComposedMessage) -> OutgoingEmail:
        rendered = renderer.render_email(message.campaign.sources, message.context)
        return OutgoingEmail(
            to=message.to,
            from_name=message.campaign.brand_name,
            from_email=message.campaign.sender_email,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            headers=dict(message.headers),
            reference=message.reference,
        )

    def preview(self, renderer: TemplateRenderer, message: ComposedMessage, settings: Any) -> EmailPreview:
        email = self.render(renderer, message)
        campaign = message.campaign
        # In the order a mail client lists them: who, what, then the rest, the message id last.
        headers = {"From": _from_header(campaign.brand_name, campaign.sender_email), "Subject": email.subject}
        headers |= {name: value for name, value in message.headers.items() if name != "Message-ID"}
        headers["Message-ID"] = message.headers["Message-ID"]
        return EmailPreview(email.subject, email.html, email.text, tuple(headers.items()))

    def mark_as_test(self, outgoing: OutgoingEmail, prefix: str) -> OutgoingEmail:
        return replace(outgoing, subject=prefix + outgoing.subject, reference="")

    def notice(
        self, to: str, *, subject: str, text: str, brand: str, sender_email: str, postal_address: str, reference: str
    ) -> OutgoingEmail:
        return OutgoingEmail(
            to=to,
            from_name=brand,
            from_email=sender_email,
            subject=subject,
            html="",
            # Ends with who sent it and where they are, as the brand's other e-mails do.
            text=f"{text}\n\n{brand}\n{postal_address}",
            reference=reference,
        )

    def send(self, transport: Any, outgoing: OutgoingEmail) -> str:
        return str(transport.send_email(outgoing))


CHANNEL = EmailChannel()
