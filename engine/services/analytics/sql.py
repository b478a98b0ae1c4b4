"""The SQL building blocks the analytics share: who a sender is, a campaign's id by its slug,
and what differs between PostgreSQL and SQLite (days, durations, locks, upserts)."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Date, Float, String, case, cast, func, literal, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.models import Campaign, Forward
from engine.services.lookups import SLUG, CampaignNotFound


def campaign_id_of(session: Session, slug: str) -> int | None:
    """The id of the campaign with this slug, or None. A slug that cannot exist is not looked
    up (PostgreSQL refuses a NUL byte in text outright)."""
    return session.scalar(select(Campaign.id).where(Campaign.slug == slug)) if SLUG.fullmatch(slug) else None


def find_campaign_id(session: Session, slug: str) -> int:
    """The id of the campaign with this slug; CampaignNotFound when there is none."""
    campaign_id = campaign_id_of(session, slug)
    if campaign_id is None:
        raise CampaignNotFound(f"no campaign {slug!r}")
    return campaign_id


def sender_key_expression(forwards: Any = Forward.__table__.c) -> ColumnElement[str]:
    """Who sent a forward: the sender's own contact hash when they gave one; else the forward
    they came through (each friend gets one forward per campaign, so it names one person);
    else, for a direct visitor who gave no contact, their address hash and the name typed."""
    return case(
        (forwards.sender_contact_hash.is_not(None), literal("c:") + forwards.sender_contact_hash),
        (forwards.parent_id.is_not(None), literal("p:") + cast(forwards.parent_id, String)),
        else_=literal("a:") + func.coalesce(forwards.client_ip_hash, "") + literal(":") + forwards.sender_name,
    )


def utc_day(session: Session, column: Any) -> ColumnElement[date]:
    """The UTC day of a timestamp column."""
    if dialect(session) == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def seconds_between(session: Session, later: Any, earlier: Any) -> ColumnElement[float]:
    """The seconds from one timestamp column to another."""
    if dialect(session) == "postgresql":
        return cast(func.extract("epoch", later - earlier), Float)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def lock_campaign(session: Session, campaign_id: int) -> None:
    """Two refreshes of one campaign at once would both delete and insert: on PostgreSQL the
    second waits for the first (SQLite already runs one writer at a time)."""
    if dialect(session) == "postgresql":
        digest = hashlib.blake2b(f"analytics:{campaign_id}".encode(), digest_size=8).digest()
        session.execute(select(func.pg_advisory_xact_lock(int.from_bytes(digest, "big", signed=True))))


def upsert(session: Session, table: Any) -> Any:
    """An INSERT that can say what to do on a conflict (`on_conflict_do_update`)."""
    return postgresql_insert(table) if dialect(session) == "postgresql" else sqlite_insert(table)
