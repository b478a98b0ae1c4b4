"""What compliance staff ask of the records: the opt-out log, filtered; one contact's history.

A contact is searched by its keyed hash, computed on the fly from what staff type; the
plaintext is neither stored nor logged. Lists are read in keyset pages (newest first on
screen, in log order for exports), so that an export of any size runs in constant memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from engine.channels import names as channel_names
from engine.contacts import Contact, ContactHasher, InvalidContact, parse_contact
from engine.db import Database
from engine.models import (
    Campaign,
    Consent,
    Forward,
    Message,
    MessageStatus,
    OptOutAction,
    OptOutEntry,
    Suppression,
    SuppressionScope,
    SuppressionSource,
)
from engine.services.lookups import SLUG
from engine.services.opt_out_log import entry_digest

_HASH = re.compile(r"[0-9a-f]{64}")
FILTER_NAMES = ("from", "to", "channel", "source", "campaign", "contact", "legacy")
# Dates a log can hold; beyond them date arithmetic overflows.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(9998, 12, 31)
UTC_ZONE = ZoneInfo("UTC")
# Entry numbers a database integer holds: a larger one names no entry.
MAX_SEQ = 2**62


class FilterError(ValueError):
    """A filter value that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class OptOutFilter:
    """The filters of the opt-out log, checked when made. Dates are whole days in `zone` (the
    staff member's), both ends included."""

    since: date | None = None
    until: date | None = None
    channel: str | None = None
    source: str | None = None
    campaign: str | None = None  # a slug
    contact_hash: str | None = None
    # The hash older versions kept for the spelling searched for (the address lowercased):
    # the log is append-only, so its entries from then keep it (ContactHasher.legacy_hash).
    legacy_hash: str | None = None
    # Where the days begin and end: the zone the staff member reads times in.
    zone: ZoneInfo = UTC_ZONE

    def __post_init__(self) -> None:
        if self.since and self.until and self.since > self.until:
            raise FilterError(_("the From date is after the To date"))
        if self.channel is not None and self.channel not in channel_names():
            raise FilterError(_("unknown channel: %(channel)s", channel=self.channel))
        if self.source is not None and self.source not in {s.value for s in SuppressionSource}:
            raise FilterError(_("unknown source: %(source)s", source=self.source))
        if self.campaign is not None and not SLUG.fullmatch(self.campaign):
            raise FilterError(_("no campaign can have that name"))
        for value in (self.contact_hash, self.legacy_hash):
            if value is not None and not _HASH.fullmatch(value):
                raise FilterError(_("not a contact hash"))
        if self.legacy_hash is not None and self.contact_hash is None:
            raise FilterError(_("an old contact hash goes with a contact"))

    @classmethod
    def from_args(
        cls,
        args: Mapping[str, str],
        hasher: ContactHasher,
        regions: Sequence[str],
        *,
        plaintext: bool = False,
        zone: ZoneInfo = UTC_ZONE,
    ) -> OptOutFilter:
        """From a form or a query: `contact` is a contact hash, as the console's links carry it,
        or, only where `plaintext` is allowed (a POSTed form, whose body no access log keeps),
        an e-mail address or a phone number, hashed here (a number typed without its country
        code is read in `regions`, see contact_in_regions). `from` and `to` are days in `zone`."""
        values = {name: (args.get(name) or "").strip() for name in FILTER_NAMES}
        if values["contact"] and not plaintext and not _HASH.fullmatch(values["contact"]):
            raise FilterError(_("search for a contact with the form: addresses and numbers are not taken in links"))
        contact_hash, legacy_hash = (
            contact_hashes_of(values["contact"], hasher, regions, first_region_wins=bool(values["campaign"]))
            if values["contact"]
            else (None, None)
        )
        if _HASH.fullmatch(values["contact"]):
            legacy_hash = values["legacy"] or None  # carried by the links, beside the hash
        return cls(
            since=_day(values["from"], _("From")),
            until=_day(values["to"], _("To")),
            channel=values["channel"] or None,
            source=values["source"] or None,
            campaign=values["campaign"] or None,
            contact_hash=contact_hash,
            legacy_hash=legacy_hash,
            zone=zone,
        )

    @property
    def contact_hashes(self) -> list[str]:
        return [h for h in (self.contact_hash, self.legacy_hash) if h is not None]

    def as_args(self) -> dict[str, str]:
        """Query parameters for links (next page, export): the contact only as its hash."""
        args = {
            "from": self.since.isoformat() if self.since else "",
            "to": self.until.isoformat() if self.until else "",
            "channel": self.channel or "",
            "source": self.source or "",
            "campaign": self.campaign or "",
            "contact": self.contact_hash or "",
            "legacy": self.legacy_hash or "",
        }
        return {k: v for k, v in args.items() if v}


def contact_hashes_of(
    value: str, hasher: ContactHasher, regions: Sequence[str], *, first_region_wins: bool = False
) -> tuple[str, str | None]:
    """The contact's hash, and the one older versions kept for this spelling where it differs
    (an opt-out logged then is only known by that); a hash typed in is taken as it is."""
    if _HASH.fullmatch(value):
        return value, None
    contact = contact_in_regions(value, regions, first_region_wins=first_region_wins)
    return hasher.hash(contact), hasher.legacy_hash(contact)


def contact_in_regions(value: str, regions: Sequence[str], *, first_region_wins: bool = False) -> Contact:
    """The contact `value` is, a phone number typed without its country code read in
    `regions`: staff type numbers as the people they look for type them, `06 12345678` in the
    Netherlands, `0470 12 34 56` in Belgium. A number valid in none is refused.

    For one campaign (`first_region_wins`) the first region it is valid in wins, as the
    campaign's own form read it when the number was typed there. Across campaigns, a number
    that is a different number in two regions (`0475 12 34 56` is a Dutch landline and a
    Belgian mobile) is refused, naming both: a report on the wrong person would look like proof."""
    readings: dict[str, tuple[Contact, list[str]]] = {}
    for region in dict.fromkeys(regions):  # in order, each once
        try:
            contact = parse_contact(value, region)
        except InvalidContact:
            continue
        if first_region_wins:
            return contact
        readings.setdefault(contact.identity, (contact, []))[1].append(region)
    if not readings:
        if regions and not value.lstrip().startswith("+") and "@" not in value:
            raise FilterError(
                _(
                    "not an e-mail address or a phone number (numbers without a country code are read as"
                    " numbers of %(regions)s)",
                    regions=", ".join(dict.fromkeys(regions)),
                )
            )
        raise FilterError(_("not an e-mail address or a phone number"))
    if len(readings) > 1:
        meanings = ", ".join(f"{contact.value} ({'/'.join(where)})" for contact, where in readings.values())
        raise FilterError(
            _(
                "%(typed)s is a different number in each region: %(meanings)s. Type it with its country code"
                " (+31, +32, ...), or choose the campaign",
                typed=value.strip(),
                meanings=meanings,
            )
        )
    return next(iter(readings.values()))[0]


@dataclass(frozen=True)
class CampaignRegions:
    """A campaign as the contact search offers it: where its numbers are typed without a country code."""

    slug: str
    name: str
    regions: tuple[str, ...]


def region_choices(db: Database, *, fallback: str) -> list[CampaignRegions]:
    """Every campaign with its phone regions (its own first), by name."""
    with db.reading() as session:
        campaigns = session.scalars(select(Campaign).order_by(Campaign.name, Campaign.slug)).all()
        return [CampaignRegions(c.slug, c.name, c.phone_regions(fallback)) for c in campaigns]


def campaign_regions(db: Database, slug: str | None, *, fallback: str) -> tuple[str, ...]:
    """The regions a number typed without its country code is read in: the campaign's (its own
    first), or, with no campaign (or one that does not exist), every campaign's, the most
    common first; `fallback` (DEFAULT_PHONE_REGION) when there is no campaign at all."""
    choices = region_choices(db, fallback=fallback)
    chosen = [c for c in choices if c.slug == slug]
    if chosen:
        return chosen[0].regions
    counted: dict[str, int] = {}
    for choice in choices:
        for region in choice.regions:
            counted[region] = counted.get(region, 0) + 1
    ordered = sorted(counted, key=lambda region: (-counted[region], region))
    return tuple(ordered) or (fallback,)


def _day(value: str, name: str) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise FilterError(_("%(name)s must be a date like 2026-11-30", name=name)) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise FilterError(
            _("%(name)s must be between %(first)s and %(last)s", name=name, first=FIRST_DAY, last=LAST_DAY)
        )
    return day


@dataclass(frozen=True)
class LogRow:
    seq: int
    created_at: datetime
    action: str
    channel: str
    scope: str
    source: str
    campaign: str | None
    message_id: int | None
    contact_hash: str
    detail: dict[str, object]
    entry_hash: str
    prev_hash: str
    hash_matches: bool


def _query(wanted: OptOutFilter) -> Select[OptOutEntry, str | None]:
    query = select(OptOutEntry, Campaign.slug).outerjoin(Campaign, Campaign.id == OptOutEntry.campaign_id)
    # A day begins at midnight in the staff member's zone; the log's times are UTC.
    if wanted.since:
        query = query.where(OptOutEntry.created_at >= _midnight(wanted.since, wanted.zone))
    if wanted.until:
        query = query.where(OptOutEntry.created_at < _midnight(wanted.until + timedelta(days=1), wanted.zone))
    if wanted.channel:
        query = query.where(OptOutEntry.channel == wanted.channel)
    if wanted.source:
        query = query.where(OptOutEntry.source == wanted.source)
    if wanted.campaign:
        query = query.where(Campaign.slug == wanted.campaign)
    if wanted.contact_hash:
        query = query.where(OptOutEntry.contact_hash.in_(wanted.contact_hashes))
    return query


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant `day` begins in `zone`, in UTC (a day of 23 or 25 hours where clocks change)."""
    return datetime.combine(day, time(), zone).astimezone(UTC)


def _row(entry: OptOutEntry, slug: str | None) -> LogRow:
    return LogRow(
        seq=entry.seq,
        created_at=entry.created_at,
        action=entry.action,
        channel=entry.channel,
        scope=entry.scope,
        source=entry.source,
        campaign=slug,
        message_id=entry.message_id,
        contact_hash=entry.contact_hash,
        detail=dict(entry.detail or {}),
        entry_hash=entry.entry_hash,
        prev_hash=entry.prev_hash,
        hash_matches=entry_digest(entry) == entry.entry_hash,
    )


@dataclass(frozen=True)
class LogPage:
    rows: list[LogRow]
    next_before: int | None  # the `before` of the next (older) page, None on the last


def opt_out_page(db: Database, wanted: OptOutFilter, before: int | None = None, size: int = 50) -> LogPage:
    """Newest first, `size` entries older than entry `before`."""
    query = _query(wanted).order_by(OptOutEntry.seq.desc()).limit(size + 1)
    if before is not None:
        query = query.where(OptOutEntry.seq < before)
    with db.reading() as session:
        found = [_row(entry, slug) for entry, slug in session.execute(query)]
    more = len(found) > size
    rows = found[:size]
    return LogPage(rows, rows[-1].seq if more and rows else None)


def opt_out_entry(db: Database, seq: int) -> LogRow | None:
    with db.reading() as session:
        found = session.execute(_query(OptOutFilter()).where(OptOutEntry.seq == seq)).first()
        return _row(*found) if found else None


CSV_HEADER = (
    "seq",
    "created_at",
    "action",
    "channel",
    "scope",
    "source",
    "campaign",
    "message_id",
    "contact_hash",
    "entry_hash",
    "prev_hash",
)


def iter_opt_outs(db: Database, wanted: OptOutFilter, chunk: int = 1000) -> Iterator[list[tuple[object, ...]]]:
    """Every matching entry in log order as CSV rows, a chunk at a time. Each chunk is its own
    short read of plain columns (no ORM objects), so that an export of any length neither
    holds a transaction open nor grows in memory."""
    columns = (
        OptOutEntry.seq,
        OptOutEntry.created_at,
        OptOutEntry.action,
        OptOutEntry.channel,
        OptOutEntry.scope,
        OptOutEntry.source,
        Campaign.slug,
        OptOutEntry.message_id,
        OptOutEntry.contact_hash,
        OptOutEntry.entry_hash,
        OptOutEntry.prev_hash,
    )
    after = 0
    while True:
        query = (
            _query(wanted)
            .with_only_columns(*columns)
            .where(OptOutEntry.seq > after)
            .order_by(OptOutEntry.seq)
            .limit(chunk)
        )
        with db.reading() as session:
            rows = [_csv_row(row) for row in session.execute(query)]
        if not rows:
            return
        yield rows
        after = int(rows[-1][0])  # type: ignore[call-overload]


def _csv_row(row: tuple[object, ...]) -> tuple[object, ...]:
    seq, created_at, *middle, slug, message_id, contact_hash, entry_hash, prev_hash = row
    assert isinstance(created_at, datetime)
    return (seq, created_at.isoformat(), *middle, slug or "", message_id or "", contact_hash, entry_hash, prev_hash)


# -- one contact's history --------------------------------------------------------------------


@dataclass(frozen=True)
class MessageRow:
    id: int
    campaign: str
    channel: str
    status: str
    policy: str
    created_at: datetime
    sent_at: datetime | None
    # The opt-out entry this message was sent after, though it covered it (should never be set).
    sent_after_opt_out: int | None
    # The consent policy it was sent under, as stored (`policy` is both, as the CSV writes them).
    policy_name: str = ""
    policy_version: int = 0


@dataclass(frozen=True)
class SuppressionRow:
    channel: str
    scope: str
    campaign: str | None
    source: str
    created_at: datetime


@dataclass(frozen=True)
class ConsentRow:
    channel: str
    campaign: str | None
    source: str
    given_at: datetime
    revoked_at: datetime | None
    # What it lets the brand send: `offers` (a campaign's messages) or `rewards` (a referrer's own rewards only).
    purpose: str = "offers"


@dataclass(frozen=True)
class ContactReport:
    contact_hash: str
    messages: list[MessageRow]
    opt_outs: list[LogRow]
    suppressions: list[SuppressionRow]
    consents: list[ConsentRow]

    @property
    def sent_after_opt_out(self) -> list[MessageRow]:
        return [m for m in self.messages if m.sent_after_opt_out is not None]


# Statuses in which a message may have reached the person.
_REACHED = {MessageStatus.SENDING, MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNKNOWN}


def contact_report(db: Database, contact_hash: str, legacy_hash: str | None = None) -> ContactReport:
    """Every message to this contact, every opt-out and opt-in they made, what is in force now,
    and for each message whether an opt-out covering it was logged before it was sent; under
    their hash and under `legacy_hash`, the one older versions kept for the spelling searched."""
    wanted = OptOutFilter(contact_hash=contact_hash, legacy_hash=legacy_hash)
    hashes = wanted.contact_hashes
    with db.reading() as session:
        opt_outs = [_row(entry, slug) for entry, slug in session.execute(_query(wanted).order_by(OptOutEntry.seq))]
        messages = [_message_row(m, slug, opt_outs) for m, slug in _messages_to(session, hashes)]
        suppressions = [
            SuppressionRow(s.channel, s.scope, slug, s.source, s.created_at)
            for s, slug in session.execute(
                select(Suppression, Campaign.slug)
                .outerjoin(Campaign, Campaign.id == Suppression.campaign_id)
                .where(Suppression.contact_hash.in_(hashes))
                .order_by(Suppression.created_at)
            )
        ]
        consents = [
            ConsentRow(c.channel, slug, c.source, c.given_at, c.revoked_at, c.purpose)
            for c, slug in session.execute(
                select(Consent, Campaign.slug)
                .outerjoin(Campaign, Campaign.id == Consent.campaign_id)
                .where(Consent.contact_hash.in_(hashes))
                .order_by(Consent.given_at)
            )
        ]
    return ContactReport(contact_hash, messages, opt_outs, suppressions, consents)


def _messages_to(session: Session, hashes: list[str]) -> list[tuple[Message, str]]:
    query = (
        select(Message, Campaign.slug)
        .join(Forward, Forward.id == Message.forward_id)
        .join(Campaign, Campaign.id == Forward.campaign_id)
        .where(Forward.recipient_contact_hash.in_(hashes))
        .order_by(Message.created_at, Message.id)
    )
    return [(m, slug) for m, slug in session.execute(query)]


def _message_row(message: Message, slug: str, opt_outs: list[LogRow]) -> MessageRow:
    return MessageRow(
        id=message.id,
        campaign=slug,
        channel=message.channel,
        status=message.status,
        policy=f"{message.policy_name} v{message.policy_version}",
        created_at=message.created_at,
        sent_at=message.sent_at,
        sent_after_opt_out=_breach(message, slug, opt_outs),
        policy_name=message.policy_name,
        policy_version=message.policy_version,
    )


def _breach(message: Message, slug: str, opt_outs: list[LogRow]) -> int | None:
    """The first opt-out in force when this message was sent and covering it, if any."""
    if message.status not in _REACHED or message.sent_at is None:
        return None
    in_force: list[LogRow] = []
    for entry in opt_outs:  # in log order
        if entry.created_at >= message.sent_at:
            break
        if entry.channel != message.channel:
            continue
        if entry.action == OptOutAction.OPT_IN:
            # START lifts what STOP put in place, nothing else (suppression.lift_keyword_opt_outs).
            in_force = [e for e in in_force if e.source != SuppressionSource.STOP]
        elif _covers(entry, slug):
            in_force.append(entry)
    return in_force[0].seq if in_force else None


def _covers(entry: LogRow, slug: str) -> bool:
    return entry.scope != SuppressionScope.CAMPAIGN or entry.campaign == slug
