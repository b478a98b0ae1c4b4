"""Build the MIME message for an outgoing email (SMTP sends it as is)."""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate

from engine.channels import OutgoingEmail

# A header our code sets itself; a template or a caller must not override it.
_RESERVED = {"from", "to", "subject", "date"}
REFERENCE_HEADER = "X-Fluister-Message"


def build_mime(email: OutgoingEmail) -> EmailMessage:
    """multipart/alternative with the text part first (clients show the last part they can).

    The SMTP policy refuses header values with line breaks, so nothing can smuggle in a header.
    """
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(display_name=email.from_name, addr_spec=email.from_email)
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False)
    for name, value in email.headers.items():
        if name.lower() not in _RESERVED:
            message[name] = value
    if email.reference:
        message[REFERENCE_HEADER] = email.reference
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message
