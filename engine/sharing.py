"""Share links: the consumer shares the offer from their own phone or mail with their own
words (WhatsApp, a text, an e-mail, a copied link, social networks). Each share is a tracked
forward of its own, so the friends who click it are attributed like any other."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote, urlencode

from flask_babel import gettext, lazy_gettext


class ShareButton(StrEnum):
    WHATSAPP = "whatsapp"
    SMS = "sms"
    EMAIL = "email"
    LINK = "link"
    FACEBOOK = "facebook"
    X = "x"
    LINKEDIN = "linkedin"

    @property
    def forward_channel(self) -> str:
        """How the forward records it: never to be mistaken for a server-sent email or text."""
        return f"share-{self.value}"

    @property
    def label(self) -> str:
        return str(_LABELS[self])


# The forward behind a campaign's printed QR code (engine.services.share_cards): a share
# source like the buttons' (`share-…`), not a channel the server sends on.
POSTER_QR_CHANNEL = "share-qr"


# Lazy: in the language of the page that shows the buttons. Brands' names stay as they are.
_LABELS = {
    ShareButton.WHATSAPP: "WhatsApp",
    ShareButton.SMS: lazy_gettext("Text message"),
    ShareButton.EMAIL: lazy_gettext("E-mail"),
    ShareButton.LINK: lazy_gettext("Copy the link"),
    ShareButton.FACEBOOK: "Facebook",
    ShareButton.X: "X",
    ShareButton.LINKEDIN: "LinkedIn",
}

# Where a share goes after the forward is written; the form-action CSP must allow them all.
SHARE_TARGETS = (
    "https://wa.me",
    "https://www.facebook.com",
    "https://x.com",
    "https://www.linkedin.com",
    "sms:",
    "mailto:",
)


@dataclass(frozen=True)
class ShareMessage:
    """What the consumer's own app opens with, for them to change as they like."""

    offer_title: str
    brand_name: str
    link: str
    # An A/B variant's own words for the share (engine.services.variants), the link after them.
    wording: str | None = None

    @property
    def text(self) -> str:
        if self.wording:
            return f"{self.wording} {self.link}"
        # "A free coffee from Koffie & Co from Koffie & Co" reads like a bug: an offer that
        # names its brand already is not told whose it is twice.
        if self.brand_name.casefold() in self.offer_title.casefold():
            return gettext("%(offer)s: %(link)s", offer=self.offer_title, link=self.link)
        return gettext(
            "%(offer)s from %(brand)s: %(link)s", offer=self.offer_title, brand=self.brand_name, link=self.link
        )

    def target(self, channel: ShareButton) -> str | None:
        """The app's share address; None for the copy-link page, which is ours."""
        if channel is ShareButton.WHATSAPP:
            return f"https://wa.me/?{urlencode({'text': self.text}, quote_via=quote)}"
        if channel is ShareButton.SMS:
            # "?&body=" is what both iOS and Android read.
            return f"sms:?&body={quote(self.text)}"
        if channel is ShareButton.EMAIL:
            return f"mailto:?{urlencode({'subject': self.offer_title, 'body': self.text}, quote_via=quote)}"
        if channel is ShareButton.FACEBOOK:
            return f"https://www.facebook.com/sharer/sharer.php?{urlencode({'u': self.link})}"
        if channel is ShareButton.X:
            return f"https://x.com/intent/post?{urlencode({'text': self.offer_title, 'url': self.link})}"
        if channel is ShareButton.LINKEDIN:
            return f"https://www.linkedin.com/sharing/share-offsite/?{urlencode({'url': self.link})}"
        return None
