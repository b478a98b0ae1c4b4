"""Signed tokens, one serializer per purpose.

Each purpose has its own salt, so a token made for one purpose is worthless for
another, and its own max_age. Secret keys come oldest first: the newest signs,
all of them verify, which is how keys are rotated without breaking old links.
The payload is always an opaque public id, never a contact.

Tokens stay on the wall clock, not the app's: itsdangerous stamps them with the wall clock
and checks `max_age` with it, so their age (the form's "too fast" and how old a render stamp
is) is measured on that same clock; mixing in the app's would make them disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


class Purpose(StrEnum):
    FORWARD = "forward"
    UNSUBSCRIBE = "unsubscribe"
    FORM = "form"  # when a form was rendered: a submission faster than a person types is a bot
    PREVIEW = "preview"  # the sender has seen this very submission's message (a digest of it)
    REFERRER_PAGE = "referrer-page"  # a referrer's own page (and the one-click stop of their rewards messages)
    REFERRER_CONFIRM = "referrer-confirm"  # the magic link that confirms a referrer's e-mail address
    UNSUBSCRIBE_UNDO = "unsubscribe-undo"  # takes back the opt-out just made on the unsubscribe page
    # The embedded form's render stamp, bound to its campaign: its CSRF token too (no cookies there).
    EMBED_FORM = "embed-form"
    EMBED_SENT = "embed-sent"  # what the embedded form's thanks page tells the page it is on (counts)
    PLAY = "play"  # a landing view's video play, counted once (engine.services.analytics.plays)
    # The A/B variant a visitor was shown (engine.services.variants): their cookie, and the form's field.
    VARIANT = "variant"


class InvalidToken(Exception):
    """Forged, foreign, malformed, or signed with a key we no longer hold."""


class ExpiredToken(InvalidToken):
    """Genuine, but older than its purpose allows."""


@dataclass(frozen=True)
class TokenPolicy:
    purpose: Purpose
    max_age_seconds: int


class Tokens:
    def __init__(self, secret_keys: Sequence[str], policies: Sequence[TokenPolicy]) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is needed to sign tokens")
        keys = list(secret_keys)
        self._serializers = {p.purpose: URLSafeTimedSerializer(keys, salt=f"fluister.{p.purpose}") for p in policies}
        self._max_age = {p.purpose: p.max_age_seconds for p in policies}

    def sign(self, purpose: Purpose, public_id: str) -> str:
        return self._serializers[purpose].dumps(public_id)

    def verify_with_age(self, purpose: Purpose, token: str) -> tuple[str, timedelta]:
        """The payload of a genuine, unexpired token of this purpose, and how long ago it was signed."""
        payload, signed_at = self._load(purpose, token)
        return payload, datetime.now(UTC) - signed_at

    def verify(self, purpose: Purpose, token: str) -> str:
        """The public id inside a genuine, unexpired token of this purpose."""
        return self._load(purpose, token)[0]

    def _load(self, purpose: Purpose, token: str) -> tuple[str, datetime]:
        if not token or len(token) > 512:
            raise InvalidToken("malformed token")
        try:
            payload, signed_at = self._serializers[purpose].loads(
                token, max_age=self._max_age[purpose], return_timestamp=True
            )
        except SignatureExpired:
            raise ExpiredToken(f"{purpose} token expired") from None
        except BadSignature:
            raise InvalidToken(f"bad {purpose} token") from None
        if not isinstance(payload, str):
            raise InvalidToken(f"bad {purpose} token payload")
        return payload, signed_at


PREVIEW_MAX_AGE_SECONDS = 3600
# A referrer's page is theirs for as long as a campaign runs; the link that confirms their
# address is for now (the confirmation it names dies with the next one asked for anyway).
REFERRER_PAGE_MAX_AGE_SECONDS = 400 * 24 * 3600
REFERRER_CONFIRM_MAX_AGE_SECONDS = 3600
# Undo is for a slip of the finger, seen on the page that confirms it: minutes, not days.
UNSUBSCRIBE_UNDO_MAX_AGE_SECONDS = 15 * 60
# A render stamp: a slow person may take their time, and it is spent when its form is sent.
FORM_MAX_AGE_SECONDS = 24 * 3600
# The embedded form's stamp stands in for a CSRF token (engine.web.public.embed): short-lived.
# Two hours to fill a form in; a longer visit is asked to send it again.
EMBED_FORM_MAX_AGE_SECONDS = 2 * 3600
# From the form's answer to its thanks page: a redirect, followed at once.
EMBED_SENT_MAX_AGE_SECONDS = 600
# A landing view's play stamp: a visitor may press play a while after the page opened.
PLAY_MAX_AGE_SECONDS = 6 * 3600
# A visitor sees the same variant for as long as an experiment usually runs.
VARIANT_MAX_AGE_SECONDS = 180 * 24 * 3600


def tokens_for(secret_keys: Sequence[str], forward_days: int, unsubscribe_days: int) -> Tokens:
    day = 24 * 3600
    return Tokens(
        secret_keys,
        [
            TokenPolicy(Purpose.FORWARD, forward_days * day),
            TokenPolicy(Purpose.UNSUBSCRIBE, unsubscribe_days * day),
            TokenPolicy(Purpose.FORM, FORM_MAX_AGE_SECONDS),
            # A preview is for sending now: long enough to read it, not to keep it.
            TokenPolicy(Purpose.PREVIEW, PREVIEW_MAX_AGE_SECONDS),
            TokenPolicy(Purpose.REFERRER_PAGE, REFERRER_PAGE_MAX_AGE_SECONDS),
            TokenPolicy(Purpose.REFERRER_CONFIRM, REFERRER_CONFIRM_MAX_AGE_SECONDS),
            TokenPolicy(Purpose.UNSUBSCRIBE_UNDO, UNSUBSCRIBE_UNDO_MAX_AGE_SECONDS),
            TokenPolicy(Purpose.EMBED_FORM, EMBED_FORM_MAX_AGE_SECONDS),
            TokenPolicy(Purpose.EMBED_SENT, EMBED_SENT_MAX_AGE_SECONDS),
            TokenPolicy(Purpose.PLAY, PLAY_MAX_AGE_SECONDS),
            TokenPolicy(Purpose.VARIANT, VARIANT_MAX_AGE_SECONDS),
        ],
    )
