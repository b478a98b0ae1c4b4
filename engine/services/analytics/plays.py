"""Plays of a landing page's video: a funnel stage between visits and forwards.

Each landing view that shows a video carries a signed play stamp: the campaign, where the view
counts (its `VisitSlice` generation and channel) and a random nonce. The page posts it once
when the visitor starts the video. A stamp counts once (its nonce is remembered in Redis for as
long as it is valid), for its own campaign, within its age; a connection posting more than a
person could is refused. Counted like views: a Redis hash per campaign and day
(`<prefix>analytics:plays:…`), folded into `video_plays` by each refresh.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

import redis

from engine.services.analytics.visits import VisitCounter, VisitSlice
from engine.tokens import PLAY_MAX_AGE_SECONDS, ExpiredToken, InvalidToken, Purpose, Tokens

log = logging.getLogger(__name__)

PLAY_KEY_PREFIX = "analytics:plays"
# A connection may start this many videos in PLAY_FLOOD_WINDOW: a person watching pages of
# several campaigns stays far below; a script replaying fresh stamps does not.
PLAY_FLOOD_LIMIT = 30
PLAY_FLOOD_WINDOW = timedelta(minutes=10)


class PlayRefusal(StrEnum):
    MISSING = "missing"
    INVALID = "invalid"
    EXPIRED = "expired"
    OTHER_CAMPAIGN = "other-campaign"
    REPLAYED = "replayed"
    FLOOD = "flood"


class PlayRefused(Exception):
    def __init__(self, refusal: PlayRefusal) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal


class PlaysUnavailable(Exception):
    """Redis cannot be reached: the play is neither checked nor counted."""


@dataclass(frozen=True)
class PlayStamp:
    """What a play stamp signs. The slug too, so that checking a play reads no database."""

    campaign_id: int
    slug: str
    generation: int
    channel: str
    nonce: str

    def payload(self) -> str:
        # Colons: neither a slug, a slice's channel nor a URL-safe nonce has one.
        return f"{self.campaign_id}:{self.slug}:{self.generation}:{self.channel}:{self.nonce}"

    @classmethod
    def read(cls, payload: str) -> PlayStamp:
        campaign_id, slug, generation, channel, nonce = payload.split(":")
        return cls(int(campaign_id), slug, int(generation), channel, nonce)


class PlayCounter:
    """Play stamps handed out and checked, and plays counted (in Redis, like landing views)."""

    def __init__(self, connection: redis.Redis, tokens: Tokens, key_prefix: str = "fluister:") -> None:
        self._redis = connection
        self._tokens = tokens
        self._key_prefix = key_prefix
        self.counts = VisitCounter(connection, key_prefix=key_prefix, name=PLAY_KEY_PREFIX)

    def new_stamp(self, campaign_id: int, slug: str, where: VisitSlice) -> str:
        """The stamp a landing view carries: what its play will count as."""
        stamp = PlayStamp(campaign_id, slug, where.generation, where.channel, secrets.token_urlsafe(12))
        return self._tokens.sign(Purpose.PLAY, stamp.payload())

    def count(self, slug: str, token: str, client: str, today: date) -> None:
        """Count the play this stamp stands for, once, on the campaign's page `slug`. Raises
        PlayRefused (why it does not count) or PlaysUnavailable."""
        stamp = self._checked(slug, token)
        try:
            if self._flooding(client):
                raise PlayRefused(PlayRefusal.FLOOD)
            fresh = self._redis.set(f"{self._key_prefix}video:stamp:{stamp.nonce}", 1, nx=True, ex=PLAY_MAX_AGE_SECONDS)
        except redis.RedisError as error:
            raise PlaysUnavailable(str(error)) from None
        if not fresh:
            raise PlayRefused(PlayRefusal.REPLAYED)
        self.counts.count(stamp.campaign_id, VisitSlice(today, stamp.generation, stamp.channel))

    def _checked(self, slug: str, token: str) -> PlayStamp:
        if not token:
            raise PlayRefused(PlayRefusal.MISSING)
        try:
            stamp = PlayStamp.read(self._tokens.verify(Purpose.PLAY, token))
        except ExpiredToken:
            raise PlayRefused(PlayRefusal.EXPIRED) from None
        except (InvalidToken, ValueError):
            raise PlayRefused(PlayRefusal.INVALID) from None
        if stamp.slug != slug:
            raise PlayRefused(PlayRefusal.OTHER_CAMPAIGN)
        return stamp

    def _flooding(self, client: str) -> bool:
        key = f"{self._key_prefix}video:client:{client}"
        with self._redis.pipeline(transaction=True) as pipeline:
            pipeline.incr(key)
            pipeline.expire(key, int(PLAY_FLOOD_WINDOW.total_seconds()), nx=True)
            started, _ = pipeline.execute()
        return int(started) > PLAY_FLOOD_LIMIT
