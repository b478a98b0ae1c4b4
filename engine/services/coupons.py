"""Coupons: codes for friends, and their redemption (the conversion).

A campaign's `coupon_mode` says where a friend's code comes from: `none` (no coupons), `pool`
(codes the brand uploaded as CSV; when they run out, messages go without one) or `generated`
(free codes in the pool first, then a new one made for each friend who needs it, so it never
runs out). A friend gets one code, lazily: when their message is rendered for sending (a
friend held back as suppressed or over a cap uses none) or when they land through their link.
A forward keeps its code. A code redeems once, through the API; a code never given to anyone
may still be redeemed (the shop handed it out itself), and is then attributed to no forward.

A coupon is an incentive: a campaign whose consent policy does not allow incentives
(eu-strict, or a custom policy that says so) gets no coupons, and switching them on or
loading codes for it is refused with the policy's reason.
"""

from __future__ import annotations

import csv
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TextIO

from flask_babel import gettext as _
from sqlalchemy import Table, bindparam, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from engine.db import Database, utcnow
from engine.models import Campaign, CampaignVariant, Coupon, CouponSource, Forward, Redemption, Reward
from engine.policy import PolicyError, policy_for
from engine.services.history import SYSTEM, Actor, EventAction, record_event
from engine.services.lookups import find_campaign
from engine.services.reward_rules import Money, Order
from engine.services.rewards import record_reward
from engine.services.webhooks import publish
from engine.spreadsheet import could_be_formula

log = logging.getLogger(__name__)

MAX_CODE_LENGTH = 64
# Read aloud, typed from a phone or printed in a small font, 0/O and 1/I get mixed up: left out.
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
# 32 ** 10 = 2 ** 50 codes: guessing one of a million issued codes takes about a billion tries.
GENERATED_CODE_LENGTH = 10
MAX_PREFIX_LENGTH = MAX_CODE_LENGTH - GENERATED_CODE_LENGTH
# Rows written per INSERT (and per transaction): small enough that SQLite's one writer is held
# only briefly while a large file loads, large enough that a million codes take a minute or so.
IMPORT_BATCH_ROWS = 1000
MAX_BAD_ROWS_LISTED = 20
MAX_EXTERNAL_REF_LENGTH = 100
# Codes generated in one go (the console allows fewer: its request must end in seconds).
MAX_GENERATE = 1_000_000
# A chain is a handful of generations; the bound only guards against a loop in bad data.
MAX_CHAIN_LENGTH = 1000

_VALID_CODE = re.compile(rf"[!-~]{{1,{MAX_CODE_LENGTH}}}")  # the fast path; code_problem says why not

ProgressCallback = Callable[[int], None]


class CouponMode(StrEnum):
    NONE = "none"
    POOL = "pool"  # codes uploaded by the brand
    GENERATED = "generated"  # pool codes first, then made by Fluister as friends need them


# -- errors ------------------------------------------------------------------------------------


class CouponsNotAllowed(Exception):
    """The campaign's consent policy does not allow incentives; the message says so for people."""


class CouponFileRefused(ValueError):
    """The file as a whole cannot be read as codes (not a row here and there: those are skipped)."""


class InvalidCode(ValueError):
    pass


class CouponNotFound(LookupError):
    pass


class AlreadyRedeemed(Exception):
    def __init__(self, code: str, redeemed_at: datetime) -> None:
        super().__init__(f"code {code!r} was already redeemed at {redeemed_at.isoformat()}")
        self.code = code
        self.redeemed_at = redeemed_at


# -- codes -------------------------------------------------------------------------------------


def code_problem(text: str) -> str | None:
    """Why `text` cannot be a code (None: it can). A code is 1 to 64 printable ASCII
    characters without spaces: what a checkout form, a URL and an SMS all carry unchanged."""
    if _VALID_CODE.fullmatch(text):
        return None
    if not text:
        return "the code is empty"
    if len(text) > MAX_CODE_LENGTH:
        return f"the code is longer than {MAX_CODE_LENGTH} characters"
    if " " in text:
        return "the code contains a space"
    for character in text:
        if not "!" <= character <= "~":
            return f"the code contains {character!r}, which is not a printable ASCII character"
    return None


@dataclass(frozen=True)
class CouponCode:
    """A valid code, as a checkout would accept it (case and punctuation kept as given)."""

    value: str

    def __post_init__(self) -> None:
        problem = code_problem(self.value)
        if problem:
            raise InvalidCode(problem)

    def __str__(self) -> str:
        return self.value


def check_prefix(prefix: str) -> str:
    """A prefix for generated codes (a campaign's, say `SPRING-`): code characters, and short
    enough to leave room for the random part. Raises InvalidCode."""
    if prefix and (problem := code_problem(prefix)):
        raise InvalidCode(problem.replace("the code", "the prefix"))
    if could_be_formula(prefix):
        # Generated codes are exported to CSV for shops: they must not read as formulas there.
        raise InvalidCode("the prefix could be read as a spreadsheet formula (it starts with = + - or @)")
    if len(prefix) > MAX_PREFIX_LENGTH:
        raise InvalidCode(f"the prefix is longer than {MAX_PREFIX_LENGTH} characters")
    return prefix


def new_code(prefix: str = "") -> CouponCode:
    """A fresh random code from the unambiguous alphabet, after the (checked) prefix."""
    return CouponCode(
        check_prefix(prefix) + "".join(secrets.choice(CODE_ALPHABET) for _ in range(GENERATED_CODE_LENGTH))
    )


# -- policy ------------------------------------------------------------------------------------


def coupons_refusal(campaign: Campaign) -> str | None:
    """Why this campaign may not have coupons (None: it may)."""
    try:
        policy = policy_for(campaign.policy_name, campaign.policy_settings)
    except PolicyError as error:
        return _(
            "Campaign %(slug)s has no valid consent policy (%(error)s), so it cannot have coupons.",
            slug=campaign.slug,
            error=str(error),
        )
    if policy.incentives:
        return None
    if policy.name == "custom":
        return _(
            "Campaign %(slug)s cannot have coupons: a coupon is an incentive for forwarding, and its custom"
            " consent policy does not allow incentives (a friend must receive the offer without a reward).",
            slug=campaign.slug,
        )
    return _(
        "Campaign %(slug)s cannot have coupons: a coupon is an incentive for forwarding, and its consent"
        " policy, %(policy)s, does not allow incentives (a friend must receive the offer without a reward).",
        slug=campaign.slug,
        policy=policy.name,
    )


def _gives_codes(campaign: Campaign) -> bool:
    return campaign.coupon_mode != CouponMode.NONE and coupons_refusal(campaign) is None


def _gets_a_code(forward: Forward) -> bool:
    """A forward to one friend (by email or text) gets a code. A shared link (`share-…`) may be
    opened by anyone it was posted to: one code there would go to whoever is first."""
    return not forward.channel.startswith("share-") and _gives_codes(forward.campaign)


def _withheld_variants(session: Session, forwards: Iterable[Forward]) -> set[int]:
    """The A/B variants among these forwards' that withhold the coupon (their friends are the
    arm without it)."""
    variant_ids = {f.variant_id for f in forwards if f.variant_id is not None}
    return set(
        session.scalars(
            select(CampaignVariant.id).where(
                CampaignVariant.id.in_(variant_ids), CampaignVariant.gives_coupon.is_(False)
            )
        )
    )


def _campaign_allowing_coupons(session: Session, slug: str) -> Campaign:
    campaign = find_campaign(session, slug)
    if refusal := coupons_refusal(campaign):
        raise CouponsNotAllowed(refusal)
    return campaign


def set_mode(db: Database, slug: str, mode: CouponMode, actor: Actor = SYSTEM) -> None:
    """Switch a campaign's coupons on (`pool`, `generated`) or off. Raises CampaignNotFound, or
    CouponsNotAllowed when switching on under a policy without incentives (off is always allowed)."""
    with db.transaction() as session:
        campaign = (
            find_campaign(session, slug) if mode is CouponMode.NONE else _campaign_allowing_coupons(session, slug)
        )
        if campaign.coupon_mode != mode.value:
            changes = {"coupon_mode": [campaign.coupon_mode, mode.value]}
            record_event(session, campaign.id, actor, EventAction.COUPON_MODE, changes)
        campaign.coupon_mode = mode.value
    log.info("campaign %s: coupon mode %s", slug, mode.value)


# -- counts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CouponCounts:
    campaign: str
    mode: str
    total: int  # codes the campaign has
    assigned: int  # given to a friend
    redeemed: int
    available: int  # neither given out nor redeemed: what friends can still get
    refusal: str | None  # why the policy does not allow coupons, if it does not

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "mode": self.mode,
            "total": self.total,
            "assigned": self.assigned,
            "redeemed": self.redeemed,
            "available": self.available,
            "coupons_allowed": self.refusal is None,
        }


def coupon_counts(db: Database, slug: str) -> CouponCounts:
    """Raises CampaignNotFound."""
    with db.reading() as session:
        campaign = find_campaign(session, slug)
        redeemed = Redemption.id.is_not(None)
        total, assigned, redeemed_count, available = session.execute(
            select(
                func.count(Coupon.id),
                func.count(Coupon.forward_id),
                func.count(Redemption.id),
                func.count(Coupon.id).filter(Coupon.forward_id.is_(None), ~redeemed),
            )
            .select_from(Coupon)
            .outerjoin(Redemption, Redemption.coupon_id == Coupon.id)
            .where(Coupon.campaign_id == campaign.id)
        ).one()
        return CouponCounts(
            campaign.slug, campaign.coupon_mode, total, assigned, redeemed_count, available, coupons_refusal(campaign)
        )


# -- importing a CSV ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class ImportReport:
    lines_read: int = 0  # lines of the file, header and blank ones included
    codes_read: int = 0  # rows that held something
    imported: int = 0
    duplicates_in_file: int = 0  # a code that came earlier in the file (or in an import running alongside)
    already_there: int = 0  # the campaign had the code before this import
    bad: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)  # the first MAX_BAD_ROWS_LISTED of them

    def note_bad(self, line: int, reason: str) -> None:
        self.bad += 1
        if len(self.bad_rows) < MAX_BAD_ROWS_LISTED:
            self.bad_rows.append(BadRow(line, reason))

    def summary(self) -> str:
        """For the command line and the logs (the console writes its own, translated)."""
        return (
            f"{_counted(self.imported, 'code')} imported; {self.duplicates_in_file:,} repeated in the file, "
            f"{self.already_there:,} already there, {_counted(self.bad, 'bad row')} skipped"
        )


def _counted(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def import_codes(
    db: Database,
    slug: str,
    source: TextIO,
    *,
    progress: ProgressCallback | None = None,
    batch_rows: int = IMPORT_BATCH_ROWS,
    report: ImportReport | None = None,
) -> ImportReport:
    """Load the codes of a CSV file into the campaign's pool, a batch at a time.

    The file is read as a stream: a million codes never sit in memory together. Its codes are
    in a column named `code` (the first row names the columns; others are ignored), or in its
    only column, without a header. Each code is trimmed and checked; a bad row is skipped and
    reported by line number, a code already there (or earlier in the file) is skipped and
    counted. Each batch is its own transaction: an import cut short keeps what it wrote, and
    running it again skips those codes. `progress` is called with the lines read so far; a
    caller that shows more than lines passes its own (empty) `report` and reads its counts there
    as they grow (the console's progress page does).

    Raises CampaignNotFound, CouponsNotAllowed, or CouponFileRefused (before anything is written).
    """
    with db.reading() as session:
        campaign = _campaign_allowing_coupons(session, slug)
        campaign_id = campaign.id
        # Codes with a higher id than this were written while the import ran: by the import itself.
        newest_before = session.scalar(select(func.max(Coupon.id)).where(Coupon.campaign_id == campaign_id)) or 0
    report = report if report is not None else ImportReport()
    batch: dict[str, int] = {}
    for line, code in _codes_of(source, report):
        problem = code_problem(code)
        if problem:
            report.note_bad(line, problem)
        elif code in batch:
            report.duplicates_in_file += 1
        else:
            batch[code] = line
        if len(batch) >= batch_rows:
            _insert_batch(db, campaign_id, batch, newest_before, report)
            batch = {}
            if progress:
                progress(report.lines_read)
    if batch:
        _insert_batch(db, campaign_id, batch, newest_before, report)
    if progress:
        progress(report.lines_read)
    log.info("campaign %s: coupon import: %s", slug, report.summary())
    return report


def _csv_rows(reader: Any) -> Iterator[list[str]]:
    """The reader's rows; a file that is not CSV, or a quote left open (which would swallow
    every line after it into one field), stops the import with the line where it happened."""
    while True:
        started = reader.line_num + 1  # the line the next row starts on
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise CouponFileRefused(f"line {started}: not valid CSV ({error}); nothing after it was read") from None
        if any("\n" in cell or "\r" in cell for cell in row):
            raise CouponFileRefused(
                f"line {started}: a quote is left open (a field runs over several lines); nothing after it was read"
            )
        yield row


def _codes_of(source: TextIO, report: ImportReport) -> Iterator[tuple[int, str]]:
    """(line number, trimmed code) for each row that holds anything; bad rows go to the report."""
    reader = csv.reader(source)
    column: int | None = None
    headerless = False
    for row in _csv_rows(reader):
        report.lines_read = line = reader.line_num
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue  # a blank line
        if column is None:
            cells[0] = cells[0].lstrip("\ufeff").strip()  # a byte order mark, from a file not read as utf-8-sig
            column, is_header = _code_column(cells)
            headerless = not is_header
            if is_header:
                continue
        report.codes_read += 1
        if headerless and any(cells[1:]):
            report.note_bad(line, "more than one column, and no header row naming the `code` column")
            continue
        code = cells[column] if column < len(cells) else ""
        if not code:
            report.note_bad(line, "nothing in the `code` column")
            continue
        yield line, code


def _code_column(first_row: list[str]) -> tuple[int, bool]:
    """Which column holds the codes, and whether the first row is a header naming it."""
    names = [cell.lower() for cell in first_row]
    if "code" in names:
        return names.index("code"), True
    if len([name for name in names if name]) == 1 and names[0]:
        return 0, False
    raise CouponFileRefused(
        "line 1: several columns and none is named `code`: name the column of codes `code` in the "
        "first row, or upload a file with the codes alone, one a line"
    )


def _insert_batch(
    db: Database, campaign_id: int, batch: Mapping[str, int], newest_before: int, report: ImportReport
) -> None:
    now = utcnow()
    rows = [
        {"campaign_id": campaign_id, "code": code, "source": CouponSource.UPLOADED.value, "created_at": now}
        for code in batch
    ]
    with db.transaction() as session:
        inserted = set(_insert_new(session, rows))
        skipped = [code for code in batch if code not in inserted]
        if skipped:
            ids = session.scalars(select(Coupon.id).where(Coupon.campaign_id == campaign_id, Coupon.code.in_(skipped)))
            older = sum(1 for coupon_id in ids if coupon_id <= newest_before)
            report.already_there += older
            report.duplicates_in_file += len(skipped) - older
    report.imported += len(inserted)


def _coupons_table() -> Table:
    table = Coupon.__table__
    assert isinstance(table, Table)
    return table


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> list[str]:
    """Insert these coupons, skipping any whose code the campaign has already (INSERT ... ON
    CONFLICT DO NOTHING, in the database's own dialect); the codes that were new."""
    if not rows:
        return []
    table = _coupons_table()
    if session.get_bind().dialect.name == "postgresql":
        return list(session.scalars(_unnest_insert(table, rows)))
    # SQLite: one executemany, which SQLAlchemy sends as multi-row INSERTs ("insertmanyvalues")
    # from one cached statement.
    statement = (
        sqlite.insert(table).on_conflict_do_nothing(index_elements=["campaign_id", "code"]).returning(table.c.code)
    )
    return list(session.execute(statement, rows).scalars())


_INSERTED_COLUMNS = ("campaign_id", "code", "source", "forward_id", "assigned_at", "created_at")


def _unnest_insert(table: Table, rows: list[dict[str, Any]]) -> ReturningInsert[Any]:
    """PostgreSQL: one array per column, which the server unnests into rows. Six parameters
    however many rows: a VALUES list of thousands of parameters costs psycopg more to build
    and parse than PostgreSQL takes to insert them."""
    arrays = [
        bindparam(f"{name}_values", [row.get(name) for row in rows], type_=postgresql.ARRAY(table.c[name].type))
        for name in _INSERTED_COLUMNS
    ]
    unnested = func.unnest(*arrays).table_valued(*_INSERTED_COLUMNS).render_derived()
    return (
        postgresql.insert(table)
        .from_select(list(_INSERTED_COLUMNS), select(*(unnested.c[name] for name in _INSERTED_COLUMNS)))
        .on_conflict_do_nothing(index_elements=["campaign_id", "code"])
        .returning(table.c.code)
    )


# -- generating codes --------------------------------------------------------------------------


def generate_codes(
    db: Database,
    slug: str,
    count: int,
    *,
    prefix: str = "",
    on_batch: Callable[[list[str]], None] | None = None,
    batch_rows: int = IMPORT_BATCH_ROWS,
) -> int:
    """Add `count` new random codes to the campaign's pool; `on_batch` sees each batch written
    (to export them for a shop that checks codes itself). Returns how many were made.
    Raises CampaignNotFound, CouponsNotAllowed, InvalidCode (a bad prefix) or ValueError."""
    if not 1 <= count <= MAX_GENERATE:
        raise ValueError(f"the number of codes must be from 1 to {MAX_GENERATE:,}")
    check_prefix(prefix)
    with db.reading() as session:
        campaign_id = _campaign_allowing_coupons(session, slug).id
    made = 0
    while made < count:
        codes = _insert_generated(db, campaign_id, min(batch_rows, count - made), prefix)
        made += len(codes)
        if on_batch and codes:
            on_batch(codes)
    log.info("campaign %s: %d coupon codes generated", slug, made)
    return made


def _insert_generated(db: Database, campaign_id: int, wanted: int, prefix: str) -> list[str]:
    """Up to `wanted` new codes (a code already there is skipped: the caller asks again)."""
    now = utcnow()
    codes = {new_code(prefix).value for _ in range(wanted)}
    rows = [
        {"campaign_id": campaign_id, "code": code, "source": CouponSource.GENERATED.value, "created_at": now}
        for code in codes
    ]
    with db.transaction() as session:
        return _insert_new(session, rows)


# -- giving friends their codes ----------------------------------------------------------------


def assign_codes(db: Database, forwards: Iterable[Forward]) -> dict[int, str]:
    """Each forward's code (forward id -> code), handing out a code to those of campaigns with
    coupons that have none yet. `forwards` come loaded with their campaign; forwards of campaigns
    without coupons cost nothing. A forward keeps the code it has. When a pool is empty, those
    forwards get no code and one warning per campaign is logged."""
    wanting = [f for f in forwards if _gets_a_code(f)]
    if not wanting:
        return {}
    if any(f.variant_id is not None for f in wanting):
        with db.reading() as session:
            withheld = _withheld_variants(session, wanting)
        wanting = [f for f in wanting if f.variant_id not in withheld]
        if not wanting:
            return {}
    by_campaign: dict[int, list[int]] = {}
    for forward in wanting:
        by_campaign.setdefault(forward.campaign_id, []).append(forward.id)
    campaigns = {f.campaign_id: f.campaign for f in wanting}
    codes: dict[int, str] = {}
    with db.transaction() as session:
        ids = sorted({f.id for f in wanting})
        _lock_forwards(session, ids)
        codes.update(_codes_of_forwards(session, ids))
        now = utcnow()
        for campaign_id, forward_ids in by_campaign.items():
            needing = [fid for fid in dict.fromkeys(forward_ids) if fid not in codes]
            if not needing:
                continue
            given = _give_pool_codes(session, campaign_id, needing, now)
            if campaigns[campaign_id].coupon_mode == CouponMode.GENERATED:
                given |= _give_new_codes(session, campaign_id, [f for f in needing if f not in given], now)
            codes.update(given)
            if len(given) < len(needing):
                log.warning(
                    "campaign %s: the coupon pool is empty; %d friends go without a code",
                    campaigns[campaign_id].slug,
                    len(needing) - len(given),
                )
    return codes


def codes_for_sending(db: Database, forwards: Iterable[Forward]) -> dict[int, str]:
    """assign_codes for the delivery loop: a failure to hand out codes is logged and the
    messages go without one, rather than not at all."""
    try:
        return assign_codes(db, forwards)
    except SQLAlchemyError:
        log.exception("coupon codes could not be assigned; these messages go without one")
        return {}


def code_for_visitor(db: Database, forward_public_id: str) -> str | None:
    """The code of the forward a visitor arrived through (they are its friend), handing one out
    if it has none yet; None for a campaign without coupons, or an empty pool."""
    try:
        with db.reading() as session:
            forward = session.scalar(select(Forward).where(Forward.public_id == forward_public_id))
            if forward is None or not _gets_a_code(forward):
                return None
            code = session.scalar(select(Coupon.code).where(Coupon.forward_id == forward.id))
        if code is not None:
            return code
        return assign_codes(db, [forward]).get(forward.id)
    except SQLAlchemyError:
        log.exception("the coupon code of forward %s could not be read or assigned", forward_public_id)
        return None


def _lock_forwards(session: Session, forward_ids: list[int]) -> None:
    # On PostgreSQL, one assignment per forward at a time (a friend opening their link in two
    # tabs, a worker rendering their message): the second waits, then finds the first's code.
    # NO KEY UPDATE does not block rows that merely reference the forward (a click being recorded).
    # SQLite's BEGIN IMMEDIATE already runs writers one at a time.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(Forward.id).where(Forward.id.in_(forward_ids)).order_by(Forward.id).with_for_update(key_share=True)
        )


def _codes_of_forwards(session: Session, forward_ids: list[int]) -> dict[int, str]:
    rows = session.execute(select(Coupon.forward_id, Coupon.code).where(Coupon.forward_id.in_(forward_ids)))
    return {forward_id: code for forward_id, code in rows if forward_id is not None}


def _give_pool_codes(session: Session, campaign_id: int, forward_ids: list[int], now: datetime) -> dict[int, str]:
    """Free codes (oldest first) for these forwards. SKIP LOCKED: a code another worker is handing
    out right now is theirs; this one takes the next. A code redeemed before anyone got it
    (the shop gave it out itself) is not free."""
    free = session.execute(
        select(Coupon.id, Coupon.code)
        .where(
            Coupon.campaign_id == campaign_id,
            Coupon.forward_id.is_(None),
            ~exists().where(Redemption.coupon_id == Coupon.id),
        )
        .order_by(Coupon.id)
        .limit(len(forward_ids))
        .with_for_update(skip_locked=True, of=Coupon)
    ).all()
    pairs = list(zip(forward_ids, free, strict=False))
    if pairs:
        table = _coupons_table()
        session.execute(
            update(table)
            .where(table.c.id == bindparam("coupon_id"))
            .values(forward_id=bindparam("forward_id"), assigned_at=now),
            [{"coupon_id": coupon.id, "forward_id": forward_id} for forward_id, coupon in pairs],
        )
    return {forward_id: coupon.code for forward_id, coupon in pairs}


def _give_new_codes(session: Session, campaign_id: int, forward_ids: list[int], now: datetime) -> dict[int, str]:
    """A newly generated code for each of these forwards (generated mode: it never runs out)."""
    given: dict[int, str] = {}
    while len(given) < len(forward_ids):
        pending = [f for f in forward_ids if f not in given]
        wanted = {new_code().value: forward_id for forward_id in pending}
        rows = [
            {
                "campaign_id": campaign_id,
                "code": code,
                "source": CouponSource.GENERATED.value,
                "forward_id": forward_id,
                "assigned_at": now,
                "created_at": now,
            }
            for code, forward_id in wanted.items()
        ]
        # A code that exists already (one in 2**50 per code) is skipped; its forward tries again.
        for code in _insert_new(session, rows):
            given[wanted[code]] = code
    return given


# -- redemption --------------------------------------------------------------------------------


class OrderConflict(Exception):
    """The order was reported already, with another code: an order converts once."""

    def __init__(self, order_id: str, code: str) -> None:
        super().__init__(f"order {order_id!r} was redeemed already, with another code")
        self.order_id = order_id
        self.code = code


@dataclass(frozen=True)
class OrderReport:
    """The order a shop redeemed a code with."""

    order_id: str
    total: Money | None = None
    customer_ref: str | None = None
    new_customer: bool | None = None

    def __post_init__(self) -> None:
        if not self.order_id or len(self.order_id) > MAX_EXTERNAL_REF_LENGTH:
            raise ValueError(f"an order id is 1 to {MAX_EXTERNAL_REF_LENGTH} characters")
        if self.customer_ref is not None and len(self.customer_ref) > MAX_EXTERNAL_REF_LENGTH:
            raise ValueError(f"a customer reference is at most {MAX_EXTERNAL_REF_LENGTH} characters")


@dataclass(frozen=True)
class RedemptionRecord:
    id: int
    campaign: str
    code: str
    redeemed_at: datetime
    external_ref: str | None
    reported_by: str | None
    forward_public_id: str | None  # None: the code was never given to a friend
    generation: int | None
    chain: tuple[str, ...]  # the forward, then its parent, ... up to generation 1 (public ids)
    order: OrderReport | None = None
    reward: tuple[int, str] | None = None  # the referrer's reward it earned: (id, status)
    # True when this answers an order reported before: nothing new was recorded.
    replayed: bool = False

    def to_json(self) -> dict[str, Any]:
        forward = None
        if self.forward_public_id is not None:
            forward = {"id": self.forward_public_id, "generation": self.generation, "chain": list(self.chain)}
        order = None
        if self.order is not None:
            order = {
                "order_id": self.order.order_id,
                "order_total": f"{self.order.total.amount}" if self.order.total else None,
                "currency": self.order.total.currency if self.order.total else None,
                "customer_ref": self.order.customer_ref,
                "new_customer": self.order.new_customer,
            }
        return {
            "id": self.id,
            "campaign": self.campaign,
            "code": self.code,
            "redeemed_at": self.redeemed_at.isoformat(),
            "external_ref": self.external_ref,
            "reported_by": self.reported_by,
            "forward": forward,
            "order": order,
            "reward": {"id": self.reward[0], "status": self.reward[1]} if self.reward else None,
        }


def redeem(
    db: Database,
    slug: str,
    code: str,
    *,
    external_ref: str | None = None,
    reported_by: str | None = None,
    order: OrderReport | None = None,
    now: datetime | None = None,
) -> RedemptionRecord:
    """Record the redemption of a campaign's code: the conversion, credited to the forward the
    code was given to and so to the chain above it. With an order, the programme's rules see
    its total and whether the customer is new, and the same order reported again answers what
    the first report recorded (`replayed`), recording nothing. Under a policy without
    incentives (a campaign that changed policy after giving codes out) the conversion is still
    recorded, and earns nobody anything. Raises CampaignNotFound, CouponNotFound,
    AlreadyRedeemed (a code redeems once) or OrderConflict (an order once)."""
    now = now or utcnow()
    try:
        with db.transaction() as session:
            campaign = find_campaign(session, slug)
            if order is not None and (earlier_order := _redemption_of_order(session, campaign.id, order.order_id)):
                return _replay(session, campaign, earlier_order, code)
            # Locked, so that two redemptions of one code, or a redemption and the code being
            # handed out, take turns (SQLite: its writers take turns anyway).
            coupon = session.scalar(
                select(Coupon).where(Coupon.campaign_id == campaign.id, Coupon.code == code).with_for_update()
            )
            if coupon is None:
                raise CouponNotFound(f"campaign {slug} has no code {code!r}")
            earlier = session.scalar(select(Redemption).where(Redemption.coupon_id == coupon.id))
            if earlier is not None:
                if order is not None and earlier.order_id == order.order_id:
                    # The same order, reported twice at once: the other report won, this one answers alike.
                    return _replay(session, campaign, earlier, code)
                raise AlreadyRedeemed(code, earlier.created_at)
            chain = _chain(session, coupon.forward)
            redemption = Redemption(
                coupon_id=coupon.id,
                campaign_id=campaign.id,
                forward_id=coupon.forward_id,
                external_ref=external_ref,
                reported_by=reported_by,
                detail={"chain": list(chain)},
                created_at=now,
            )
            if order is not None:
                redemption.order_id = order.order_id
                redemption.order_total_minor = order.total.minor if order.total else None
                redemption.currency = order.total.currency if order.total else None
                redemption.customer_ref = order.customer_ref
                redemption.new_customer = order.new_customer
            session.add(redemption)
            session.flush()
            # The referrer's reward, if the campaign gives one: in this transaction, so that a
            # conversion is never recorded without it (or rewarded without being recorded).
            facts = Order(order.total, order.new_customer) if order else Order()
            reward = record_reward(session, campaign, redemption, facts, now)
            if coupon.forward is not None:
                converted = {
                    "campaign": campaign.slug,
                    "redemption": redemption.id,
                    "forward": coupon.forward.public_id,
                    "generation": coupon.forward.generation,
                    "chain": list(chain),
                }
                publish(session, "friend.converted", converted, now=redemption.created_at)
            record = _record(session, campaign, redemption, reward=reward)
    except IntegrityError:
        # Redeemed at the same moment by another request, which won: the same order (answered
        # alike), another order with this code, or this order with another code.
        with db.reading() as session:
            campaign = find_campaign(session, slug)
            if order is not None and (earlier_order := _redemption_of_order(session, campaign.id, order.order_id)):
                return _replay(session, campaign, earlier_order, code)
            redeemed_at = session.scalar(
                select(Redemption.created_at)
                .join(Coupon, Coupon.id == Redemption.coupon_id)
                .where(Coupon.campaign_id == campaign.id, Coupon.code == code)
            )
        if redeemed_at is None:
            raise
        raise AlreadyRedeemed(code, redeemed_at) from None
    log.info("campaign %s: code redeemed (redemption %d, forward %s)", slug, record.id, record.forward_public_id)
    return record


def _redemption_of_order(session: Session, campaign_id: int, order_id: str) -> Redemption | None:
    return session.scalar(
        select(Redemption).where(Redemption.campaign_id == campaign_id, Redemption.order_id == order_id)
    )


def _replay(session: Session, campaign: Campaign, earlier: Redemption, code: str) -> RedemptionRecord:
    if earlier.coupon.code != code:
        assert earlier.order_id is not None
        raise OrderConflict(earlier.order_id, earlier.coupon.code)
    log.info("campaign %s: order %s reported again; redemption %d stands", campaign.slug, earlier.order_id, earlier.id)
    return _record(session, campaign, earlier, replayed=True)


def _record(
    session: Session,
    campaign: Campaign,
    redemption: Redemption,
    *,
    reward: Reward | None = None,
    replayed: bool = False,
) -> RedemptionRecord:
    if reward is None:
        reward = session.scalar(select(Reward).where(Reward.redemption_id == redemption.id))
    order = None
    if redemption.order_id is not None:
        total = None
        if redemption.order_total_minor is not None and redemption.currency:
            total = Money.from_minor(redemption.order_total_minor, redemption.currency)
        order = OrderReport(redemption.order_id, total, redemption.customer_ref, redemption.new_customer)
    forward = redemption.coupon.forward
    return RedemptionRecord(
        id=redemption.id,
        campaign=campaign.slug,
        code=redemption.coupon.code,
        redeemed_at=redemption.created_at,
        external_ref=redemption.external_ref,
        reported_by=redemption.reported_by,
        forward_public_id=forward.public_id if forward else None,
        generation=forward.generation if forward else None,
        chain=tuple(redemption.detail.get("chain", [])),
        order=order,
        reward=(reward.id, reward.status) if reward else None,
        replayed=replayed,
    )


def _chain(session: Session, forward: Forward | None) -> tuple[str, ...]:
    chain: list[str] = []
    while forward is not None and len(chain) < MAX_CHAIN_LENGTH:
        chain.append(forward.public_id)
        forward = forward.parent
    return tuple(chain)
