"""Build the MIME message for an outgoing email (SMTP sends it as is)."""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, Policy
from email.utils import formatdate

from engine.transports import OutgoingEmail

# A header our code sets itself; a template or a caller must not override it.
_RESERVED = {"from", "to", "subject", "date"}
# The content headers the email package writes for the parts themselves.
_CONTENT_OWN = {"content-type", "content-transfer-encoding", "content-disposition"}
REFERENCE_HEADER = "X-Fluister-Message"


class WordFoldedHeader(str):
    """A header of plain ASCII words (links in angle brackets, ids, keywords), written as it is:
    folded only at the whitespace between its words, never turned into an RFC 2047 encoded word.

    The email package encodes any word longer than a line (a realistic one-click link is about
    120 characters) as `=?utf-8?q?...?=`, and mailbox providers then find no link in
    `List-Unsubscribe`. RFC 5322 allows lines of up to 998 characters, so a long word may
    simply stay whole. (The email package folds a header object with `name` and `fold` by
    calling its `fold`.)
    """

    name: str

    def __new__(cls, name: str, value: str) -> WordFoldedHeader:
        if not value.isascii() or any(ch < " " or ch == "\x7f" for ch in value):
            raise ValueError(f"{name} must be printable ASCII on one line")
        header = super().__new__(cls, value)
        header.name = name
        return header

    def fold(self, *, policy: Policy) -> str:
        limit = policy.max_line_length or 998
        lines = [f"{self.name}:"]
        for word in self.split():
            if len(lines[-1]) + 1 + len(word) > limit and lines[-1].strip() != f"{self.name}:":
                lines.append(" " + word)
            else:
                lines[-1] += " " + word
        return policy.linesep.join(lines) + policy.linesep


def _header(name: str, value: str) -> str:
    """ASCII values are kept as written (WordFoldedHeader); anything else is left to the email
    package, which encodes it."""
    return WordFoldedHeader(name, value) if value.isascii() else value


def build_mime(email: OutgoingEmail) -> EmailMessage:
    """multipart/alternative with the text part first (clients show the last part they can).

    The SMTP policy (and WordFoldedHeader) refuses header values with line breaks, so nothing
    can smuggle in a header. The subject and a display name in another script are RFC 2047
    encoded, as they must be; the headers we write ourselves (List-Unsubscribe, Message-ID...)
    are not.
    """
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(display_name=email.from_name, addr_spec=email.from_email)
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False)
    for name, value in email.headers.items():
        if name.lower() not in _RESERVED and not name.lower().startswith("content-"):
            message[name] = _header(name, value)
    if email.reference:
        message[REFERENCE_HEADER] = _header(REFERENCE_HEADER, email.reference)
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    # After the parts: setting content clears every Content-* header (Content-Language too).
    for name, value in email.headers.items():
        if name.lower().startswith("content-") and name.lower() not in _CONTENT_OWN:
            message[name] = _header(name, value)
    return message
