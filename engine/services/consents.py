"""Consents: a person's own prior consent to be messaged on a channel, and the checks on it.

Under the `us` policy a text goes to a friend only when that friend's own consent is on
record (TCPA: a referrer cannot consent for a friend): given by keyword (START), or imported
by the brand with its evidence. Checked when a forward is accepted and again before the send.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from engine.channels import channel as channel_named
from engine.clock import Clock, SystemClock
from engine.contacts import ContactHasher, InvalidContact, parse_contact
from engine.db import Database
from engine.models import Campaign, Consent, ConsentPurpose, ConsentSource

MAX_EVIDENCE = 500
MAX_LISTED_PROBLEMS = 20
_BATCH = 1000


def consented_hashes(session: Session, campaign_id: int, channel: str, hashes: Iterable[str]) -> set[str]:
    """Those of these contact hashes whose consent to this campaign (or to the brand's
    campaigns as a whole) is on record and not withdrawn."""
    wanted = list(set(hashes))
    if not wanted:
        return set()
    return set(session.scalars(consented_query(campaign_id, {channel: wanted})))


def consented_query(campaign_id: int, hashes_by_channel: Mapping[str, Iterable[str]]) -> Select[str]:
    """The query of consented_hashes for contacts on several channels at once (a part of a
    larger read: a forward checks its friends in one round trip)."""
    return select(Consent.contact_hash).where(
        or_(
            *(
                and_(Consent.channel == channel, Consent.contact_hash.in_(sorted(set(hashes))))
                for channel, hashes in hashes_by_channel.items()
            )
        ),
        # A referrer's consent to hear about their own rewards is no consent to offers.
        Consent.purpose == ConsentPurpose.OFFERS.value,
        Consent.revoked_at.is_(None),
        or_(Consent.campaign_id.is_(None), Consent.campaign_id == campaign_id),
    )


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    already_on_record: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def problem(self, line: int, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(f"line {line}: {message}")


class ConsentImporter:
    """Imports consents from a CSV the brand keeps as evidence: columns `contact` (an address or
    a number), optional `given_at` (ISO 8601) and `evidence` (how it was given). Only hashes are
    stored; the file is read as a stream, in batches."""

    def __init__(self, db: Database, hasher: ContactHasher, default_region: str, *, clock: Clock | None = None) -> None:
        self._db = db
        self._hasher = hasher
        self._region = default_region
        self._clock = clock or SystemClock()

    def import_csv(
        self, stream: IO[bytes], channel: str, campaign_slug: str | None = None, source_note: str = ""
    ) -> ImportReport:
        """Raises LookupError for an unknown campaign, ValueError for a file without a contact column."""
        campaign_id = self._campaign_id(campaign_slug)
        report = ImportReport()
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
        reader = csv.DictReader(text)
        if not reader.fieldnames or "contact" not in [name.strip().lower() for name in reader.fieldnames]:
            raise ValueError("the CSV needs a header row with a `contact` column")
        for batch in _batches(self._consents(reader, channel, campaign_id, source_note, report), _BATCH):
            self._store(batch, report)
        return report

    def _consents(
        self, reader: csv.DictReader[str], channel: str, campaign_id: int | None, note: str, report: ImportReport
    ) -> Iterator[Consent]:
        try:
            for row in reader:
                report.rows += 1
                line = reader.line_num
                values = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if isinstance(v, str)}
                consent = self._consent(values, channel, campaign_id, note, line, report)
                if consent is not None:
                    yield consent
        except UnicodeDecodeError:
            report.problem(reader.line_num + 1, "not UTF-8 text; the rest of the file was not read")
        except csv.Error as error:
            report.problem(reader.line_num, f"not valid CSV ({error}); the rest of the file was not read")

    def _consent(
        self,
        values: dict[str, str],
        channel: str,
        campaign_id: int | None,
        note: str,
        line: int,
        report: ImportReport,
    ) -> Consent | None:
        try:
            contact = parse_contact(values.get("contact", ""), self._region, enabled=[channel])
        except InvalidContact as error:
            report.problem(line, f"not an e-mail address or a phone number ({error})")
            return None
        if contact.channel != channel:
            report.problem(line, f"not a {channel_named(channel).contact_noun}")
            return None
        now = self._clock.now()
        given_at = now
        if values.get("given_at"):
            try:
                given_at = datetime.fromisoformat(values["given_at"])
            except ValueError:
                report.problem(line, "given_at is not a date and time like 2026-11-30T09:00:00+00:00")
                return None
            if given_at.tzinfo is None or given_at > now:
                report.problem(line, "given_at needs a time zone and cannot be in the future")
                return None
        evidence = {"imported": note[:MAX_EVIDENCE]} if note else {}
        if values.get("evidence"):
            evidence["evidence"] = values["evidence"][:MAX_EVIDENCE]
        return Consent(
            contact_hash=self._hasher.hash(contact),
            channel=channel,
            campaign_id=campaign_id,
            source=ConsentSource.IMPORT.value,
            evidence=evidence,
            given_at=given_at,
        )

    def _store(self, batch: list[Consent], report: ImportReport) -> None:
        """Adds the batch's consents that are not on record yet (a file imported twice adds nothing)."""
        with self._db.transaction() as session:
            on_record = {
                (contact_hash, campaign_id)
                for contact_hash, campaign_id in session.execute(
                    select(Consent.contact_hash, Consent.campaign_id).where(
                        Consent.contact_hash.in_({c.contact_hash for c in batch}),
                        Consent.channel == batch[0].channel,
                        Consent.purpose == ConsentPurpose.OFFERS.value,
                        Consent.revoked_at.is_(None),
                    )
                )
            }
            for consent in batch:
                key = (consent.contact_hash, consent.campaign_id)
                if key in on_record:
                    report.already_on_record += 1
                    continue
                on_record.add(key)
                session.add(consent)
                report.imported += 1

    def _campaign_id(self, slug: str | None) -> int | None:
        if slug is None:
            return None
        with self._db.reading() as session:
            campaign_id = session.scalar(select(Campaign.id).where(Campaign.slug == slug))
        if campaign_id is None:
            raise LookupError(f"no campaign {slug!r}")
        return campaign_id


def _batches(items: Iterable[Consent], size: int) -> Iterator[list[Consent]]:
    batch: list[Consent] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
