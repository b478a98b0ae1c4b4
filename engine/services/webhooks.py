"""Outgoing webhooks: the events brands' systems hear about, and the endpoints they register.

`publish(session, event_type, data)` writes an event, and a delivery for every enabled endpoint
that wants it, in the caller's transaction: the event exists exactly when what caused it does,
and the request that caused it only writes a few rows (no network). Once that transaction
commits, the runtime asks for a job per delivery (see `take_new_deliveries`); the jobs
(engine.services.webhook_delivery) sign and send them, and retry.

An event never carries a contact, a name or a note: hashes, public ids, slugs and counts only.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.db import Database, utcnow
from engine.models import Campaign, DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from engine.outbound import N_, Reason, Resolver, UnsafeUrl, parse_target, resolve

log = logging.getLogger(__name__)

EVENT_TYPES = (
    "forward.created",
    "forward.clicked",
    "friend.converted",
    "reward.earned",
    "reward.approved",
    "reward.paid",
    "campaign.paused",
    "opt_out.recorded",
)
# Keys an event's data may never have: what would name or reach a person.
PERSONAL_KEYS = frozenset(
    {"contact", "email", "phone", "address", "recipient_contact", "sender_name", "referrer_name", "name", "note"}
)
MAX_DESCRIPTION_LENGTH = 200
# Row ids are 32-bit integers: a larger one names no row (and PostgreSQL refuses to compare it).
MAX_ROW_ID = 2**31 - 1
MAX_ENDPOINTS_PER_TEAM = 20
# Where the ids of deliveries written in a session wait for its commit (Session.info).
_NEW_DELIVERIES = "fluister.webhook_deliveries"
# The endpoints subscribed to a campaign's events, looked up once per transaction.
_SUBSCRIBERS = "fluister.webhook_subscribers"


class InvalidEndpoint(ValueError):
    """What is wrong with an endpoint's fields: field -> why (English when printed; the console
    translates each Reason)."""

    def __init__(self, errors: dict[str, Reason]) -> None:
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in errors.items()))
        self.errors = errors


class EndpointNotFound(LookupError):
    """No such endpoint, or one of another team."""


class EndpointDisabled(Exception):
    """A delivery cannot be sent again to a disabled endpoint."""


def publish(session: Session, event_type: str, data: Mapping[str, Any], *, now: datetime | None = None) -> None:
    """Write the event, and a delivery for each enabled endpoint subscribed to it, in the
    caller's transaction. `data["campaign"]` (a slug), when present, says whose event it is:
    only that campaign's team's endpoints hear of it; an event of no campaign reaches every
    subscribed endpoint. `now` is the app's clock (the wall clock when not given)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    _refuse_personal(data)
    slug = data.get("campaign")
    team, subscribers = _subscribers(session, slug if isinstance(slug, str) else None)
    endpoint_ids = [endpoint_id for endpoint_id, types in subscribers if event_type in types]
    if not endpoint_ids:
        return  # nobody listens: nothing to keep
    now = now or utcnow()
    public_id = f"msg_{secrets.token_urlsafe(18)}"
    event = WebhookEvent(public_id=public_id, type=event_type, team=team, data=dict(data), created_at=now)
    pending = DeliveryStatus.PENDING.value
    deliveries = [
        WebhookDelivery(event=event, endpoint_id=endpoint_id, status=pending, queued_at=now, created_at=now)
        for endpoint_id in endpoint_ids
    ]
    session.add(event)
    session.add_all(deliveries)
    session.flush()
    session.info.setdefault(_NEW_DELIVERIES, []).extend(delivery.id for delivery in deliveries)


def _subscribers(session: Session, slug: str | None) -> tuple[str | None, list[tuple[int, frozenset[str]]]]:
    """The campaign's team and the enabled endpoints that hear of it (id, event types), looked up
    once per transaction: a form sent to five friends publishes five events."""
    cache: dict[str | None, tuple[str | None, list[tuple[int, frozenset[str]]]]] = session.info.setdefault(
        _SUBSCRIBERS, {}
    )
    if slug not in cache:
        team = session.scalar(select(Campaign.team).where(Campaign.slug == slug)) if slug else None
        cache[slug] = (team, team_subscribers(session, team))
    return cache[slug]


def team_subscribers(session: Session, team: str | None) -> list[tuple[int, frozenset[str]]]:
    """The enabled endpoints that hear of a campaign of `team` (None: of no one campaign), with
    the event types each wants."""
    query = select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(WebhookEndpoint.enabled.is_(True))
    if team is not None:
        query = query.where(WebhookEndpoint.team == team)
    return [(endpoint_id, frozenset(types or ())) for endpoint_id, types in session.execute(query)]


def remember_subscribers(
    session: Session, slug: str, team: str, subscribers: Sequence[tuple[int, frozenset[str]]]
) -> None:
    """What `publish` would look up for this campaign, known already (a campaign snapshot
    checked current in this transaction): its events in this session cost no query."""
    session.info.setdefault(_SUBSCRIBERS, {})[slug] = (team, list(subscribers))


def take_new_deliveries(session: Session) -> list[int]:
    """The deliveries written in this session since the last call (the runtime asks for their
    jobs once the session commits, and forgets them when it rolls back)."""
    return list(session.info.pop(_NEW_DELIVERIES, []))


def _refuse_personal(data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        if key in PERSONAL_KEYS:
            raise ValueError(f"a webhook event may not carry {key!r}: hashes, ids and counts only")
        if isinstance(value, Mapping):
            _refuse_personal(value)


def new_secret() -> str:
    """A signing secret as Standard Webhooks writes it: `whsec_` and the base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


@dataclass(frozen=True)
class EndpointFields:
    """What a person or a client gives for an endpoint (None: not given, on an update)."""

    url: str | None = None
    event_types: tuple[str, ...] | None = None
    description: str | None = None
    enabled: bool | None = None


@dataclass(frozen=True)
class EndpointView:
    id: int
    url: str
    description: str
    event_types: tuple[str, ...]
    enabled: bool
    disabled_reason: str | None
    disabled_automatically: bool
    disabled_at: datetime | None
    failing_since: datetime | None
    created_by: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "description": self.description,
            "events": list(self.event_types),
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "disabled_automatically": self.disabled_automatically,
            "disabled_at": _iso(self.disabled_at),
            "failing_since": _iso(self.failing_since),
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True)
class DeliveryView:
    id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    response_status: int | None
    response_ms: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "status": self.status,
            "attempts": self.attempts,
            "response_status": self.response_status,
            "response_ms": self.response_ms,
            "last_error": self.last_error,
            "last_attempt_at": _iso(self.last_attempt_at),
            "next_attempt_at": _iso(self.next_attempt_at) if self.status == DeliveryStatus.PENDING else None,
            "created_at": _iso(self.created_at),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


class WebhookEndpoints:
    """Registering, changing and listing a team's endpoints, and their delivery logs.

    `team` None (an admin) reaches every team's endpoints. A URL is checked when it is given
    (and again at every delivery, by the sender): see engine.outbound."""

    def __init__(self, db: Database, clock: Clock, *, allow_local: bool, resolver: Resolver) -> None:
        self._db = db
        self._clock = clock
        self._allow_local = allow_local
        # Where host names are looked up (engine.outbound.system_resolver); tests give their own.
        self.resolver = resolver

    def create(self, team: str, fields: EndpointFields, created_by: str) -> tuple[EndpointView, str]:
        """The new endpoint and its secret (shown this once). Raises InvalidEndpoint."""
        errors = self._check(fields, creating=True)
        with self._db.transaction() as session:
            count = len(session.scalars(select(WebhookEndpoint.id).where(WebhookEndpoint.team == team)).all())
            if count >= MAX_ENDPOINTS_PER_TEAM:
                errors["url"] = Reason(
                    N_("a team may have at most %(limit)d endpoints; delete one first"),
                    {"limit": MAX_ENDPOINTS_PER_TEAM},
                )
            if errors:
                raise InvalidEndpoint(errors)
            assert fields.url is not None and fields.event_types is not None
            endpoint = WebhookEndpoint(
                team=team,
                url=fields.url,
                description=(fields.description or "").strip(),
                event_types=list(fields.event_types),
                secret=new_secret(),
                enabled=True if fields.enabled is None else fields.enabled,
                disabled_reason=None if fields.enabled is not False else f"disabled by {created_by}",
                disabled_automatically=False,
                disabled_at=None if fields.enabled is not False else self._clock.now(),
                failed_deliveries=0,
                created_by=created_by,
                created_at=self._clock.now(),
            )
            session.add(endpoint)
            session.flush()
            view, secret = _endpoint_view(endpoint), endpoint.secret
        log.info("webhook endpoint %d registered by %s for %s", view.id, created_by, ", ".join(view.event_types))
        return view, secret

    def update(self, team: str | None, endpoint_id: int, fields: EndpointFields, actor: str) -> EndpointView:
        """Change what was given. Raises EndpointNotFound, InvalidEndpoint."""
        errors = self._check(fields, creating=False)
        if errors:
            raise InvalidEndpoint(errors)
        with self._db.transaction() as session:
            endpoint = _endpoint(session, team, endpoint_id, lock=True)
            if fields.url is not None:
                endpoint.url = fields.url
            if fields.event_types is not None:
                endpoint.event_types = list(fields.event_types)
            if fields.description is not None:
                endpoint.description = fields.description.strip()
            if fields.enabled is True and not endpoint.enabled:
                # A fresh start: whatever failed before is no longer held against it.
                endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = True, None, None
                endpoint.disabled_automatically, endpoint.failing_since, endpoint.failed_deliveries = False, None, 0
            elif fields.enabled is False and endpoint.enabled:
                endpoint.enabled, endpoint.disabled_reason = False, f"disabled by {actor}"
                endpoint.disabled_at, endpoint.disabled_automatically = self._clock.now(), False
            session.flush()
            view = _endpoint_view(endpoint)
        log.info("webhook endpoint %d changed by %s", endpoint_id, actor)
        return view

    def delete(self, team: str | None, endpoint_id: int, actor: str) -> None:
        """Raises EndpointNotFound. Its deliveries (the log) go with it."""
        with self._db.transaction() as session:
            endpoint = _endpoint(session, team, endpoint_id, lock=True)
            session.delete(endpoint)
        log.info("webhook endpoint %d deleted by %s", endpoint_id, actor)

    def get(self, team: str | None, endpoint_id: int) -> EndpointView:
        with self._db.reading() as session:
            return _endpoint_view(_endpoint(session, team, endpoint_id))

    def all(self, team: str | None) -> list[EndpointView]:
        with self._db.reading() as session:
            query = select(WebhookEndpoint).order_by(WebhookEndpoint.id)
            if team is not None:
                query = query.where(WebhookEndpoint.team == team)
            return [_endpoint_view(endpoint) for endpoint in session.scalars(query)]

    def deliveries(
        self, team: str | None, endpoint_id: int, *, before: int | None = None, limit: int = 50
    ) -> list[DeliveryView]:
        """An endpoint's log, newest first (`before`: older than that delivery id)."""
        with self._db.reading() as session:
            _endpoint(session, team, endpoint_id)
            query = (
                select(WebhookDelivery, WebhookEvent.public_id, WebhookEvent.type)
                .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                .where(WebhookDelivery.endpoint_id == endpoint_id)
                .order_by(WebhookDelivery.id.desc())
                .limit(limit)
            )
            if before is not None and before <= 1:
                return []  # nothing is older than the first
            if before is not None and before <= MAX_ROW_ID:
                query = query.where(WebhookDelivery.id < before)
            return [_delivery_view(*row) for row in session.execute(query)]

    def send_again(self, team: str | None, endpoint_id: int, delivery_id: int) -> DeliveryView:
        """A new delivery of that delivery's event (same `webhook-id`: the receiver may tell
        it has seen it). Raises EndpointNotFound, EndpointDisabled, LookupError."""
        with self._db.transaction() as session:
            endpoint = _endpoint(session, team, endpoint_id)
            if not endpoint.enabled:
                raise EndpointDisabled("the endpoint is disabled: enable it first")
            if not 0 < delivery_id <= MAX_ROW_ID:
                raise LookupError(f"endpoint {endpoint_id} has no delivery {delivery_id}")
            earlier = session.scalar(
                select(WebhookDelivery).where(
                    WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint_id
                )
            )
            if earlier is None:
                raise LookupError(f"endpoint {endpoint_id} has no delivery {delivery_id}")
            now = self._clock.now()
            delivery = WebhookDelivery(
                event_id=earlier.event_id,
                endpoint_id=endpoint_id,
                status=DeliveryStatus.PENDING.value,
                queued_at=now,
                created_at=now,
            )
            session.add(delivery)
            session.flush()
            session.info.setdefault(_NEW_DELIVERIES, []).append(delivery.id)
            view = _delivery_view(delivery, earlier.event.public_id, earlier.event.type)
        return view

    def disabled_alerts(self, team: str | None) -> list[EndpointView]:
        """Endpoints Fluister disabled for failing: what the console warns about."""
        return [view for view in self.all(team) if view.disabled_automatically]

    def _check(self, fields: EndpointFields, *, creating: bool) -> dict[str, Reason]:
        errors: dict[str, Reason] = {}
        if fields.url is not None or creating:
            try:
                target = parse_target(fields.url or "", allow_local=self._allow_local)
                resolve(target, self.resolver, allow_local=self._allow_local)
            except UnsafeUrl as error:
                errors["url"] = error.reason
        if fields.event_types is not None or creating:
            chosen = fields.event_types or ()
            unknown = sorted(set(chosen) - set(EVENT_TYPES))
            if unknown:
                known = ", ".join(EVENT_TYPES)
                errors["events"] = Reason(
                    N_("unknown event types: %(unknown)s (known: %(known)s)"),
                    {"unknown": ", ".join(unknown), "known": known},
                )
            elif not chosen:
                errors["events"] = Reason(N_("choose at least one event type"))
        if fields.description is not None and len(fields.description) > MAX_DESCRIPTION_LENGTH:
            errors["description"] = Reason(N_("at most %(limit)d characters"), {"limit": MAX_DESCRIPTION_LENGTH})
        elif fields.description is not None and not fields.description.isprintable():
            errors["description"] = Reason(N_("one line of text, without control characters"))
        return errors


def _endpoint(session: Session, team: str | None, endpoint_id: int, *, lock: bool = False) -> WebhookEndpoint:
    if not 0 < endpoint_id <= MAX_ROW_ID:
        raise EndpointNotFound(f"there is no webhook endpoint {endpoint_id}")
    query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if team is not None:
        query = query.where(WebhookEndpoint.team == team)
    if lock:
        query = query.with_for_update()
    endpoint = session.scalar(query)
    if endpoint is None:
        raise EndpointNotFound(f"there is no webhook endpoint {endpoint_id}")
    return endpoint


def _endpoint_view(endpoint: WebhookEndpoint) -> EndpointView:
    return EndpointView(
        id=endpoint.id,
        url=endpoint.url,
        description=endpoint.description,
        event_types=tuple(endpoint.event_types),
        enabled=endpoint.enabled,
        disabled_reason=endpoint.disabled_reason,
        disabled_automatically=endpoint.disabled_automatically,
        disabled_at=endpoint.disabled_at,
        failing_since=endpoint.failing_since,
        created_by=endpoint.created_by,
        created_at=endpoint.created_at,
    )


def _delivery_view(delivery: WebhookDelivery, event_id: str, event_type: str) -> DeliveryView:
    return DeliveryView(
        id=delivery.id,
        event_id=event_id,
        event_type=event_type,
        status=delivery.status,
        attempts=delivery.attempts,
        response_status=delivery.response_status,
        response_ms=delivery.response_ms,
        last_error=delivery.last_error,
        last_attempt_at=delivery.last_attempt_at,
        next_attempt_at=delivery.next_attempt_at,
        created_at=delivery.created_at,
    )


def event_types_of(values: Iterable[str]) -> tuple[str, ...]:
    """Chosen event types, each once, in the order of EVENT_TYPES (unknown ones kept, for the check)."""
    chosen = set(values)
    return tuple(t for t in EVENT_TYPES if t in chosen) + tuple(sorted(chosen - set(EVENT_TYPES)))
