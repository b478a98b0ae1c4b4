"""Data-subject requests: export what Fluister holds about a person, or erase it.

A person is named by an e-mail address or a phone number, parsed and normalised the way a
forward's friend is, and found by its keyed hash, and by the hash older versions kept for
the spelling typed (the address lowercased: rows from then that no rehash could move). What
they can be linked to: the forwards sent to them (and those forwards' messages and clicks),
the forwards they sent when they gave their own contact, their suppressions, consents and
opt-out log entries, and the outbox's copies of messages to them (development transport only).

Erasure removes every plaintext copy of the contact and what they wrote as a sender, and
suppresses the contact globally on its channel, so that they are never messaged again. The
hash stays (in forwards, the suppression and the opt-out log), as GDPR allows for exactly
this purpose; the opt-out log itself is append-only and holds no plaintext.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from engine.channels import channel as channel_named
from engine.clock import Clock, SystemClock
from engine.contacts import (
    Contact,
    ContactHasher,
    parse_contact,
)
from engine.db import Database, rows_changed, utcnow
from engine.models import (
    Campaign,
    Click,
    Consent,
    Forward,
    Message,
    MessageStatus,
    OptOutAction,
    OptOutEntry,
    OutboxMessage,
    Referrer,
    RollupState,
    Suppression,
    SuppressionScope,
    SuppressionSource,
)
from engine.models.suppression import scope_key
from engine.services.suppression import suppress_contact

log = logging.getLogger(__name__)

EXPORT_FORMAT = "fluister.privacy-export"
EXPORT_VERSION = 1
# What an erased sender is called from then on, on their forwards' unsubscribe pages too.
ERASED_SENDER_NAME = "(erased)"
ERASED_BEFORE_SEND = "not sent: the recipient's data was erased at their request"
# Messages that have not been handed to a provider yet: an erasure stops them.
_NOT_YET_SENT = (MessageStatus.QUEUED.value, MessageStatus.DEFERRED.value)


@dataclass(frozen=True)
class ErasureReport:
    """What one erasure changed; all zero (and `suppressed` False) when there was nothing left."""

    contact_hash: str
    channel: str
    contacts_erased: int = 0  # forwards that still held the plaintext contact
    messages_stopped: int = 0  # queued messages to them, now `suppressed`
    errors_masked: int = 0  # stored provider errors that quoted the contact
    outbox_deleted: int = 0  # development outbox copies of messages to them
    forwards_scrubbed: int = 0  # forwards they sent: their name and note removed
    notes_cleared: int = 0  # other senders' notes that quoted the contact
    consents_revoked: int = 0
    referrer_contacts_erased: int = 0  # contacts they confirmed (or were confirming) as a referrer
    suppressed: bool = False  # a global erase-request suppression (and log entry) written

    @property
    def changes(self) -> int:
        counts = [value for value in asdict(self).values() if type(value) is int]
        return sum(counts) + int(self.suppressed)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changes": self.changes}


class PrivacyService:
    def __init__(self, db: Database, hasher: ContactHasher, default_region: str, clock: Clock | None = None) -> None:
        self._db = db
        # The erasure's suppression is compared with the messages' `sent_at`: the app's clock.
        self._clock = clock or SystemClock()
        self._hasher = hasher
        self._default_region = default_region

    def parse(self, raw: str) -> Contact:
        """The contact as typed, normalised; raises InvalidContact."""
        return parse_contact(raw, self._default_region)

    def export(self, raw_contact: str) -> dict[str, Any]:
        """Everything held about this person, as a JSON-serialisable document. Other people's
        contacts never appear, not even as hashes: a forward the person sent is counted, not listed."""
        contact = self.parse(raw_contact)
        contact_hash = self._hasher.hash(contact)
        hashes = self._hashes(contact)
        with self._db.reading() as session:
            document = {
                "format": EXPORT_FORMAT,
                "version": EXPORT_VERSION,
                "generated_at": _iso(utcnow()),
                "contact": {"channel": contact.channel, "value": contact.value, "hash": contact_hash},
                "forwards_received": _forwards_received(session, hashes),
                "forwards_sent": _forwards_sent(session, hashes),
                "suppressions": _suppressions(session, hashes),
                "consents": _consents(session, hashes),
                "referrer_contacts": _referrer_contacts(session, hashes),
                "opt_out_log": _opt_out_log(session, hashes),
                "outbox_copies": session.scalar(
                    select(func.count()).select_from(OutboxMessage).where(_outbox_to(session, contact))
                )
                or 0,
            }
        log.info("privacy: export for contact %s", contact_hash[:12])
        return document

    def erase(self, raw_contact: str) -> ErasureReport:
        """Remove every plaintext copy of the contact and what they wrote as a sender, stop
        what is still queued to them, and suppress them for good, in one transaction.
        Erasing again changes nothing and says so."""
        contact = self.parse(raw_contact)
        contact_hash = self._hasher.hash(contact)
        hashes = self._hashes(contact)
        now = self._clock.now()
        with self._db.transaction() as session:
            # The suppression first: from here on the send-time check stops anything to them.
            suppressed = _suppress_for_good(session, contact_hash, contact.channel, now)
            # Steps of one transaction, run in this order: the report is only their counts.
            stopped = _stop_queued(session, hashes, now)
            masked = _mask_errors(session, contact, hashes)
            erased = _erase_recipient_contacts(session, hashes)
            outbox = _delete_outbox_copies(session, contact)
            scrubbed = _scrub_sender(session, hashes)
            cleared = _clear_quoting_notes(session, contact)
            revoked = _revoke_consents(session, hashes, contact.channel, now)
            referrers = _erase_referrer_contacts(session, hashes, now)
        report = ErasureReport(
            contact_hash=contact_hash,
            channel=contact.channel,
            contacts_erased=erased,
            messages_stopped=stopped,
            errors_masked=masked,
            outbox_deleted=outbox,
            forwards_scrubbed=scrubbed,
            notes_cleared=cleared,
            consents_revoked=revoked,
            referrer_contacts_erased=referrers,
            suppressed=suppressed,
        )
        log.info("privacy: erasure for contact %s: %d changes", contact_hash[:12], report.changes)
        return report

    def _hashes(self, contact: Contact) -> list[str]:
        """The contact's hash, and the one older versions kept for this spelling (the address
        lowercased) where it differs: rows no rehash could move (the opt-out log, which is
        append-only; a sender's own forwards) are only known by that."""
        legacy = self._hasher.legacy_hash(contact)
        return [self._hasher.hash(contact), *([legacy] if legacy else [])]


# -- export ---------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _campaign(campaign: Campaign | None) -> dict[str, str] | None:
    if campaign is None:
        return None
    return {"slug": campaign.slug, "name": campaign.name, "brand": campaign.brand_name}


def _forwards_received(session: Session, hashes: list[str]) -> list[dict[str, Any]]:
    forwards = list(
        session.scalars(
            select(Forward).where(Forward.recipient_contact_hash.in_(hashes)).order_by(Forward.created_at, Forward.id)
        )
    )
    ids = [f.id for f in forwards]
    messages: dict[int, list[Message]] = {i: [] for i in ids}
    clicks: dict[int, list[Click]] = {i: [] for i in ids}
    if ids:
        for message in session.scalars(select(Message).where(Message.forward_id.in_(ids)).order_by(Message.id)):
            messages[message.forward_id].append(message)
        for click in session.scalars(select(Click).where(Click.forward_id.in_(ids)).order_by(Click.created_at)):
            clicks[click.forward_id].append(click)
    return [
        {
            "campaign": _campaign(forward.campaign),
            "sender_name": forward.sender_name,
            "note": forward.note,
            "generation": forward.generation,
            "channel": forward.channel,
            "created_at": _iso(forward.created_at),
            "contact_stored": forward.recipient_contact is not None,
            "messages": [_message(m) for m in messages[forward.id]],
            # Whoever opened the link: the fact and the time. The stored IP hash and user agent
            # are only said to exist, since a forwarded link may have been opened by someone else.
            "clicks": [
                {
                    "at": _iso(click.created_at),
                    "ip_hash_stored": click.client_ip_hash is not None,
                    "user_agent_stored": click.user_agent is not None,
                }
                for click in clicks[forward.id]
            ],
        }
        for forward in forwards
    ]


def _message(message: Message) -> dict[str, Any]:
    return {
        "channel": message.channel,
        "status": message.status,
        "policy": message.policy_name,
        "policy_version": message.policy_version,
        "created_at": _iso(message.created_at),
        "sent_at": _iso(message.sent_at),
    }


def _forwards_sent(session: Session, hashes: list[str]) -> list[dict[str, Any]]:
    """One entry per submission (its forwards share campaign, moment, name and note): how many
    friends, never who."""
    query = (
        select(Forward.campaign_id, Forward.created_at, Forward.sender_name, Forward.note, func.count())
        .where(Forward.sender_contact_hash.in_(hashes))
        .group_by(Forward.campaign_id, Forward.created_at, Forward.sender_name, Forward.note)
        .order_by(Forward.created_at)
    )
    return [
        {
            "campaign": _campaign(session.get(Campaign, campaign_id)),
            "sender_name": sender_name,
            "note": note,
            "friends": friends,
            "created_at": _iso(created_at),
        }
        for campaign_id, created_at, sender_name, note, friends in session.execute(query)
    ]


def _slug(session: Session, campaign_id: int | None) -> str | None:
    campaign = session.get(Campaign, campaign_id) if campaign_id is not None else None
    return campaign.slug if campaign else None


def _suppressions(session: Session, hashes: list[str]) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Suppression).where(Suppression.contact_hash.in_(hashes)).order_by(Suppression.created_at)
    )
    return [
        {
            "channel": s.channel,
            "scope": s.scope,
            "campaign": _slug(session, s.campaign_id),
            "source": s.source,
            "created_at": _iso(s.created_at),
        }
        for s in rows
    ]


def _consents(session: Session, hashes: list[str]) -> list[dict[str, Any]]:
    rows = session.scalars(select(Consent).where(Consent.contact_hash.in_(hashes)).order_by(Consent.given_at))
    return [
        {
            "channel": c.channel,
            "campaign": _slug(session, c.campaign_id),
            "source": c.source,
            "purpose": c.purpose,
            "evidence": c.evidence or {},
            "given_at": _iso(c.given_at),
            "revoked_at": _iso(c.revoked_at),
        }
        for c in rows
    ]


def _of_contact(hashes: list[str]) -> ColumnElement[bool]:
    return or_(Referrer.contact_hash.in_(hashes), Referrer.pending_contact_hash.in_(hashes))


def _referrer_contacts(session: Session, hashes: list[str]) -> list[dict[str, Any]]:
    """Where they confirmed (or were confirming) this contact as a referrer, to hear about their rewards."""
    rows = session.scalars(select(Referrer).where(_of_contact(hashes)).order_by(Referrer.id))
    return [
        {
            "campaign": _slug(session, r.campaign_id),
            "channel": r.contact_channel or r.pending_channel,
            "confirmed": r.contact_hash in hashes,
            "confirmed_at": _iso(r.confirmed_at) if r.contact_hash in hashes else None,
            "pending_until": _iso(r.pending_expires_at) if r.pending_contact_hash in hashes else None,
            "purpose": "rewards",
        }
        for r in rows
    ]


def _opt_out_log(session: Session, hashes: list[str]) -> list[dict[str, Any]]:
    rows = session.scalars(select(OptOutEntry).where(OptOutEntry.contact_hash.in_(hashes)).order_by(OptOutEntry.seq))
    return [
        {
            "seq": e.seq,
            "action": e.action,
            "channel": e.channel,
            "scope": e.scope,
            "source": e.source,
            "campaign": _slug(session, e.campaign_id),
            "created_at": _iso(e.created_at),
            # Request metadata of their own request: their address's hash, their user agent.
            "detail": e.detail or {},
        }
        for e in rows
    ]


# -- erasure --------------------------------------------------------------------------------


def _outbox_to(session: Session, contact: Contact) -> ColumnElement[bool]:
    """The outbox rows sent to this contact, in any spelling of it (an address's case, a
    provider's dots and +tags, its alias domains): the same person as the hash says."""
    channel = channel_named(contact.channel)
    # Narrowed in SQL to what every spelling contains, then compared as identities.
    narrowed = or_(
        *(
            func.lower(OutboxMessage.to).contains(hint, autoescape=True)
            for hint in channel.spelling_hints(contact.value)
        )
    )
    rows = session.execute(
        select(OutboxMessage.id, OutboxMessage.to).where(OutboxMessage.channel == contact.channel, narrowed)
    ).all()
    identity = channel.identity(contact.value)
    return OutboxMessage.id.in_([row_id for row_id, to in rows if channel.identity(to) == identity])


def _delete_outbox_copies(session: Session, contact: Contact) -> int:
    # The outbox is the development transport: its rows are the messages themselves.
    return rows_changed(
        session, delete(OutboxMessage).where(_outbox_to(session, contact)).execution_options(synchronize_session=False)
    )


def _to_them(hashes: list[str]) -> ColumnElement[bool]:
    """Messages whose forward went to this contact."""
    return Message.forward_id.in_(select(Forward.id).where(Forward.recipient_contact_hash.in_(hashes)))


def _suppress_for_good(session: Session, contact_hash: str, channel: str, now: datetime) -> bool:
    """A global suppression with source `erase-request`, logged; skipped when an earlier
    erasure already did both, so that a repeated request leaves no second entry."""
    logged = session.scalar(
        select(
            exists().where(
                OptOutEntry.contact_hash == contact_hash,
                OptOutEntry.channel == channel,
                OptOutEntry.action == OptOutAction.OPT_OUT.value,
                OptOutEntry.source == SuppressionSource.ERASE_REQUEST.value,
            )
        )
    )
    in_force = session.scalar(
        select(
            exists().where(
                Suppression.contact_hash == contact_hash,
                Suppression.channel == channel,
                Suppression.scope_key == scope_key(SuppressionScope.GLOBAL, None),
            )
        )
    )
    if logged and in_force:
        return False
    suppress_contact(session, contact_hash, channel, SuppressionScope.GLOBAL, SuppressionSource.ERASE_REQUEST, now=now)
    return True


def _stop_queued(session: Session, hashes: list[str], now: datetime) -> int:
    # A message a worker has already claimed (`sending`) is beyond reach: its request may be
    # on its way. Everything still waiting ends here, as the send-time check would end it.
    return rows_changed(
        session,
        update(Message)
        .where(_to_them(hashes), Message.status.in_(_NOT_YET_SENT))
        .values(status=MessageStatus.SUPPRESSED.value, error=ERASED_BEFORE_SEND, updated_at=now)
        .execution_options(synchronize_session=False),
    )


def _without_quotes(contact: Contact, text: str) -> str:
    """`text` with every quote of the contact masked, in any spelling its channel knows."""
    return channel_named(contact.channel).mask_quotes(contact.value, text)


def _mask_errors(session: Session, contact: Contact, hashes: list[str]) -> int:
    # Errors are masked when recorded while the contact is still stored, but a provider's
    # webhook (a bounce reason) may quote the address after that.
    masked = 0
    for message in session.scalars(select(Message).where(_to_them(hashes), Message.error.is_not(None))):
        assert message.error is not None
        cleaned = _without_quotes(contact, message.error)
        if cleaned != message.error:
            message.error = cleaned
            masked += 1
    session.flush()
    return masked


def _erase_recipient_contacts(session: Session, hashes: list[str]) -> int:
    return rows_changed(
        session,
        update(Forward)
        .where(Forward.recipient_contact_hash.in_(hashes), Forward.recipient_contact.is_not(None))
        .values(recipient_contact=None)
        .execution_options(synchronize_session=False),
    )


def _scrub_sender(session: Session, hashes: list[str]) -> int:
    """Their name and note on the forwards they sent. The forwards stay (the friends' own
    records and the campaign's figures), linked to them by hash only."""
    scrubbed = rows_changed(
        session,
        update(Forward)
        .where(
            Forward.sender_contact_hash.in_(hashes),
            or_(Forward.sender_name != ERASED_SENDER_NAME, Forward.note.is_not(None)),
        )
        .values(sender_name=ERASED_SENDER_NAME, note=None)
        .execution_options(synchronize_session=False),
    )
    if scrubbed:
        # The analytics roll-ups copy the name, and an incremental refresh only reads what is
        # new: the next refresh of those campaigns rebuilds them, and the name is gone there too.
        campaigns = select(Forward.campaign_id).where(Forward.sender_contact_hash.in_(hashes))
        session.execute(
            update(RollupState)
            .where(RollupState.campaign_id.in_(campaigns))
            .values(rebuild_due=True)
            .execution_options(synchronize_session=False)
        )
    return scrubbed


def _clear_quoting_notes(session: Session, contact: Contact) -> int:
    """Someone else's note that spells out the contact, in any spelling, is a plaintext copy too."""
    # Notes holding what every spelling contains, then read for a spelling of the contact.
    narrowed = or_(
        *(
            func.lower(Forward.note).contains(hint, autoescape=True)
            for hint in channel_named(contact.channel).spelling_hints(contact.value)
        )
    )
    rows = session.execute(select(Forward.id, Forward.note).where(Forward.note.is_not(None), narrowed)).all()
    quoting_ids = [row_id for row_id, note in rows if note is not None and _without_quotes(contact, note) != note]
    if not quoting_ids:
        return 0
    return rows_changed(
        session,
        update(Forward)
        .where(Forward.id.in_(quoting_ids))
        .values(note=None)
        .execution_options(synchronize_session=False),
    )


def _erase_referrer_contacts(session: Session, hashes: list[str], now: datetime) -> int:
    """Their contact as a referrer, confirmed or pending, forgotten (their consent revoked above)."""
    erased = 0
    for referrer in session.scalars(select(Referrer).where(_of_contact(hashes))):
        if referrer.contact_hash in hashes:
            referrer.contact = referrer.contact_channel = referrer.contact_hash = None
            referrer.consent_id = None
            referrer.revoked_at = now
            erased += 1
        if referrer.pending_contact_hash in hashes:
            referrer.pending_contact = referrer.pending_contact_hash = referrer.pending_channel = None
            referrer.pending_secret_hash = None
            referrer.pending_expires_at = None
            erased += 1
    return erased


def _revoke_consents(session: Session, hashes: list[str], channel: str, now: datetime) -> int:
    # Revoked, not deleted: the row (hash and evidence) shows what was consented to, and when.
    return rows_changed(
        session,
        update(Consent)
        .where(Consent.contact_hash.in_(hashes), Consent.channel == channel, Consent.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False),
    )
