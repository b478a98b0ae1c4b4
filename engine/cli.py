"""Flask commands: `flask --app wsgi <command>`."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import signal
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

import click
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from flask import Flask
from flask.cli import AppGroup

from engine.contacts import Contact, InvalidContact
from engine.models import DEFAULT_TEAM, CampaignStatus, Role, Scope
from engine.queue import SWEEPER_SENDS, InProcessJobQueue, QueueUnavailable
from engine.readiness import require_serviceable
from engine.resilience import dependency_of
from engine.resources import MIGRATIONS_DIR
from engine.runtime import Runtime, current_runtime
from engine.scheduler import build_scheduler
from engine.services.campaigns import ChangeRefused, change_status, seed_demo_campaign
from engine.services.coupons import (
    MAX_GENERATE,
    CouponFileRefused,
    CouponMode,
    CouponsNotAllowed,
    InvalidCode,
    generate_codes,
    import_codes,
    set_mode,
)
from engine.services.experiment_report import experiment_lines, power_lines
from engine.services.history import CLI, Actor, ActorKind
from engine.services.identities import RehashPending, rehash_contacts
from engine.services.lookups import CampaignNotFound
from engine.services.opt_out_log import verify as verify_opt_out_log
from engine.services.privacy import PrivacyService
from engine.services.reconciliation import Reconciliation, list_unknown, mark_sent, requeue
from engine.services.simulation import (
    DEFAULT_WINDOW,
    ExperimentPlan,
    SimulationPlan,
    parse_variant,
    power_analysis,
    prepare_campaign,
    run_experiment,
)
from engine.services.staff import StaffError, UnknownStaff
from engine.services.templates import MAX_UPLOAD_BYTES, upload_templates
from engine.spreadsheet import safe_row
from engine.verdict import DecisionRule

log = logging.getLogger(__name__)


def alembic_config(database_url: str, contact_hash_key: str | None = None) -> AlembicConfig:
    """Migrations of this database; with the contact hash key, the data migrations that need
    it (the rehash of old contact hashes) are done, not left owed."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if contact_hash_key:
        config.attributes["contact_hash_key"] = contact_hash_key
    return config


db_cli = AppGroup("db", help="Database migrations (Alembic).")


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    settings = current_runtime().settings
    alembic_command.upgrade(alembic_config(settings.database_url, settings.contact_hash_key), revision)


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Migrate the database down to REVISION (for example -1, or base)."""
    alembic_command.downgrade(alembic_config(current_runtime().settings.database_url), revision)


@db_cli.command("current")
def db_current() -> None:
    """Show the revision the database is at."""
    alembic_command.current(alembic_config(current_runtime().settings.database_url), verbose=False)


@db_cli.command("revision")
@click.option("-m", "--message", required=True)
@click.option("--autogenerate", is_flag=True, help="Compare the models with the database.")
def db_revision(message: str, autogenerate: bool) -> None:
    """Write a new migration script."""
    alembic_command.revision(
        alembic_config(current_runtime().settings.database_url), message=message, autogenerate=autogenerate
    )


@click.command("seed-demo")
def seed_demo() -> None:
    """Create the `demo` campaign if it does not exist."""
    created = seed_demo_campaign(current_runtime().db)
    click.echo("demo campaign created" if created else "demo campaign already there")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker(burst: bool) -> None:
    """Run a delivery worker. Start as many as you like, on any machine sharing Redis and the database."""
    run_worker(burst=burst)


def run_worker(*, burst: bool = False) -> None:
    """Sweep once, then work the delivery queue (inside an app context), through outages of
    Redis and the database (engine.resilience)."""
    runtime = _background_runtime("worker")
    runtime.delivery.sweep()
    runtime.queue.work(runtime.retries, burst=burst, on_reconnect=lambda: _sweep_after_outage(runtime))


def _background_runtime(what: str) -> Runtime:
    """The runtime of a worker or the scheduler, once it is fit to start."""
    runtime = current_runtime()
    if runtime.settings.production:
        # A worker on an old schema would fail on every job: refuse to start instead.
        require_serviceable(runtime.db)
    try:
        runtime.rehash.check()
    except RehashPending as pending:
        click.echo(f"Error: {what} not started: {pending}", err=True)
        sys.exit(1)
    if isinstance(runtime.queue, InProcessJobQueue):
        click.echo(
            f"REDIS_URL is not set: the embedded queue runs inside the web process and needs no {what}. "
            f"Set REDIS_URL (and DATABASE_URL) to run a separate {what}.",
            err=True,
        )
        sys.exit(2)
    return runtime


def _sweep_after_outage(runtime: Runtime) -> None:
    """Jobs asked for while Redis was away, or lost with it (a restart without persistence),
    are asked for again: the messages wait in the database."""
    try:
        runtime.delivery.sweep()
    except Exception as error:
        dependency = dependency_of(error)
        if dependency is None:
            raise
        runtime.retries.failed(dependency, error, retry_in=runtime.settings.sweep_every_seconds)


@click.command("scheduler")
def scheduler() -> None:
    """Run the periodic housekeeping (sweep, analytics refresh, coupon-import clean-up); one
    scheduler is active at a time across machines, the others stand by."""
    runtime = _background_runtime("scheduler")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    build_scheduler(runtime).run(stop)


messages_cli = AppGroup("messages", help="Delivery housekeeping.")


@messages_cli.command("sweep")
def messages_sweep() -> None:
    """Enqueue messages left `queued`; put those stuck in `sending` back in the queue (never
    handed to a provider) or mark them `unknown` (handed over); the scheduler does it every minute."""
    report = current_runtime().delivery.sweep()
    click.echo(
        f"{report.requeued} due messages dispatched, {report.released} stuck ones queued again, "
        f"{report.marked_unknown} marked unknown, {report.purged} contacts erased"
    )


@messages_cli.command("unknown")
def messages_unknown() -> None:
    """List `unknown` messages (oldest first): why their outcome is not known, whether they were
    handed to the provider, their campaign and age. No contact is shown."""
    runtime = current_runtime()
    found = list_unknown(runtime.db, runtime.clock)
    if not found:
        click.echo("no unknown messages")
        return
    click.echo("id\tcampaign\tchannel\tage\thanded over\twhy")
    for m in found:
        handed = f"yes, {m.handed_at:%Y-%m-%d %H:%M} UTC" if m.handed_at else "no"
        provider = f" (provider id {m.provider_id})" if m.provider_id else ""
        click.echo(f"{m.id}\t{m.campaign}\t{m.channel}\t{m.age_text}\t{handed}\t{m.reason}{provider}")


@messages_cli.command("requeue")
@click.argument("ids", nargs=-1, type=click.IntRange(min=1))
@click.option("--never-handed-over", is_flag=True, help="Every unknown message that never reached a provider.")
@click.option(
    "--force",
    is_flag=True,
    help="Requeue handed-over ones too: only after the provider's log shows they did not arrive.",
)
@click.option("--by", "who", default="cli", show_default=True, help="Who reconciles (kept in the campaign's history).")
def messages_requeue(ids: tuple[int, ...], never_handed_over: bool, force: bool, who: str) -> None:
    """Put unknown messages (by id, or --never-handed-over) back in the queue. One handed to the
    provider may have arrived: it is refused (exit 1) unless --force."""
    if bool(ids) == never_handed_over:
        raise click.UsageError("give message ids, or --never-handed-over (not both)")
    runtime = current_runtime()
    report = requeue(
        runtime.db, runtime.queue, runtime.clock, _cli_actor(who), ids, never_handed_over=never_handed_over, force=force
    )
    _report_reconciliation(report, "requeued")


@messages_cli.command("mark-sent")
@click.argument("ids", nargs=-1, type=click.IntRange(min=1), required=True)
@click.option("--by", "who", default="cli", show_default=True, help="Who reconciles (kept in the campaign's history).")
def messages_mark_sent(ids: tuple[int, ...], who: str) -> None:
    """Record unknown messages as sent, after finding them in the provider's log; they never go again."""
    runtime = current_runtime()
    _report_reconciliation(mark_sent(runtime.db, runtime.clock, _cli_actor(who), ids), "marked sent")


def _cli_actor(who: str) -> Actor:
    try:
        return Actor(who.strip()[:254], ActorKind.CLI)
    except ValueError:
        raise click.BadParameter("say who you are", param_hint="--by") from None


def _report_reconciliation(report: Reconciliation, done: str) -> None:
    if report.missing:
        raise click.UsageError(f"no message {', '.join(map(str, report.missing))}; nothing changed")
    if report.done:
        click.echo(f"{len(report.done)} {done}: {' '.join(map(str, report.done))}")
    elif not report.refused:
        click.echo(f"nothing {done}: no such unknown message")
    for message_id, status in report.not_unknown.items():
        click.echo(f"message {message_id} is {status}, not unknown: left as it is", err=True)
    if report.handed_over:
        click.echo(
            f"refused {' '.join(map(str, report.handed_over))}: handed to the provider, so they may have arrived. "
            "Check the provider's log, then mark them sent, or requeue them with --force.",
            err=True,
        )
    if report.refused:
        sys.exit(1)


campaigns_cli = AppGroup("campaigns", help="Pause and resume campaigns.")


@campaigns_cli.command("pause")
@click.argument("slug")
@click.option("--reason", default="paused by hand", show_default=True)
def campaigns_pause(slug: str, reason: str) -> None:
    """Stop sending for a campaign; its queued messages wait."""
    _change_status(slug, CampaignStatus.PAUSED, reason)


@campaigns_cli.command("resume")
@click.argument("slug")
def campaigns_resume(slug: str) -> None:
    """Make a paused campaign active again and send what waited."""
    _change_status(slug, CampaignStatus.ACTIVE, "")
    try:
        current_runtime().queue.request_dispatch(extra=True)
    except QueueUnavailable as error:
        # The resume is committed; the waiting messages stay queued and the sweeper sends them.
        click.echo(f"{slug}: {SWEEPER_SENDS} ({error})", err=True)


def _change_status(slug: str, status: CampaignStatus, reason: str) -> None:
    runtime = current_runtime()
    try:
        change_status(runtime.db, slug, status, CLI, reason, renderer=runtime.renderer, now=runtime.clock.now())
    except LookupError as error:
        raise click.UsageError(str(error)) from None
    except ChangeRefused as refused:
        raise click.ClickException(f"{slug} stays as it is: " + "; ".join(refused.reasons)) from None
    click.echo(f"{slug}: {status}")


templates_cli = AppGroup("templates", help="A campaign's email, SMS and landing page templates.")


@templates_cli.command("upload")
@click.argument("slug")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def templates_upload(slug: str, files: tuple[Path, ...]) -> None:
    """Check and store templates for the campaign SLUG: subject.txt, email.html, email.txt, sms.txt,
    landing.html (the file's name says which), or zips of them. All are stored, or none: when any
    is refused, the reasons are printed and the exit code is 1."""
    contents: dict[str, bytes] = {}
    for path in files:
        if path.name in contents:
            raise click.UsageError(f"two files are named {path.name}; each template may be given once")
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            raise click.UsageError(f"{path} is larger than an upload may be ({MAX_UPLOAD_BYTES:,} bytes)")
        contents[path.name] = path.read_bytes()
    runtime = current_runtime()
    try:
        report = upload_templates(runtime.db, runtime.renderer, slug, contents, CLI)
    except CampaignNotFound as error:
        raise click.UsageError(str(error)) from None
    if not report.accepted:
        click.echo(f"{slug}: nothing stored; refused because:", err=True)
        for reason in report.refusals:
            click.echo(f"  - {reason}", err=True)
        sys.exit(1)
    for stored in report.stored:
        click.echo(f"{slug}: {stored.name} stored as version {stored.version}")


users_cli = AppGroup("users", help="Staff accounts for the console.")


@users_cli.command("create")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]), help="What the account may do.")
@click.option(
    "--team",
    default=DEFAULT_TEAM,
    show_default=True,
    help="Whose campaigns a marketer sees and changes (and whose a campaign they create is).",
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (its first line) instead of asking for it.",
)
def users_create(email: str, role: str, team: str, password_stdin: bool) -> None:
    """Create a staff account that signs in at /login."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        member = current_runtime().staff.create_user(email, role, password, team=team)
    except StaffError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{member.name}: {member.role} account created (team {member.team})")


@users_cli.command("disable")
@click.argument("email")
def users_disable(email: str) -> None:
    """Stop an account from signing in, and end every session it has now."""
    try:
        member = current_runtime().staff.disable_user(email)
    except StaffError as error:
        raise click.UsageError(str(error)) from None
    log.warning("staff account %s disabled from the command line", member.id)
    click.echo(f"{member.name}: disabled, and signed out everywhere")


@users_cli.command("enable")
@click.argument("email")
def users_enable(email: str) -> None:
    """Let a disabled account sign in again (with its password)."""
    try:
        member = current_runtime().staff.enable_user(email)
    except StaffError as error:
        raise click.UsageError(str(error)) from None
    log.warning("staff account %s enabled from the command line", member.id)
    click.echo(f"{member.name}: enabled; they sign in with their password")


@users_cli.command("reset-password")
@click.argument("email")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the new password from standard input (its first line) instead of asking for it.",
)
def users_reset_password(email: str, password_stdin: bool) -> None:
    """Set a new password for an account (same rules as any), and end every session it has now."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    try:
        member = current_runtime().staff.reset_password(email, password)
    except UnknownStaff as error:
        raise click.UsageError(str(error)) from None
    except StaffError as error:
        raise click.ClickException(str(error)) from None
    log.warning("password of staff account %s reset from the command line", member.id)
    click.echo(f"{member.name}: new password set, and signed out everywhere")


@users_cli.command("set-role")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]), help="What the account may do.")
def users_set_role(email: str, role: str) -> None:
    """Give an account another role, from its next request on (refused for the last active admin)."""
    try:
        member = current_runtime().staff.change_role(email, role)
    except UnknownStaff as error:
        raise click.UsageError(str(error)) from None
    except StaffError as error:
        raise click.ClickException(str(error)) from None
    log.warning("role of staff account %s changed to %s from the command line", member.id, member.role)
    click.echo(f"{member.name}: now {member.role}")


@users_cli.command("list")
def users_list() -> None:
    """Every staff account: address, role, team, whether it may sign in, two-factor, last sign-in."""
    accounts = current_runtime().staff.list_users()
    if not accounts:
        click.echo("no accounts: make one with `users create`")
        return
    click.echo("email\trole\tteam\tstatus\ttwo-factor\tcreated\tlast sign-in")
    for a in accounts:
        click.echo(
            f"{a.email}\t{a.role}\t{a.team}\t{'active' if a.active else 'disabled'}\t"
            f"{'on' if a.two_factor else 'off'}\t{_when(a.created_at)}\t{_when(a.last_login_at)}"
        )


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


@users_cli.command("reset-two-factor")
@click.argument("email")
def users_reset_two_factor(email: str) -> None:
    """Turn two-factor sign-in off for someone who lost their authenticator (ends their sessions)."""
    try:
        member = current_runtime().staff.reset_two_factor(email)
    except StaffError as error:
        raise click.UsageError(str(error)) from None
    log.warning("two-factor sign-in of staff account %s turned off from the command line", member.id)
    click.echo(f"{member.name}: two-factor sign-in off, and signed out everywhere; they can turn it on again")


api_keys_cli = AppGroup("api-keys", help="Keys for machine clients of /api/v1.")


@api_keys_cli.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]), help="What the key may do.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help=f"What the key may do on /api/v1 ({', '.join(s.value for s in Scope)}); repeat for more. "
    "Default: every scope the role allows.",
)
@click.option("--team", default=DEFAULT_TEAM, show_default=True, help="Whose campaigns a marketer's key reaches.")
def api_keys_create(name: str, role: str, scopes: tuple[str, ...], team: str) -> None:
    """Make an API key and print it. It is shown this once: only its hash is kept."""
    try:
        key = current_runtime().staff.create_api_key(name, role, scopes, team=team)
    except StaffError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"API key {key.name!r} ({key.role}, team {key.team}, scopes {' '.join(key.scopes)}) created. "
        "Keep it now; it cannot be shown again:",
        err=True,
    )
    click.echo(key.secret)


@api_keys_cli.command("list")
def api_keys_list() -> None:
    """Every API key: id, name, role, scopes, team, prefix, when made and last used, revoked. Never the key."""
    keys = current_runtime().staff.list_api_keys()
    if not keys:
        click.echo("no API keys")
        return
    click.echo("id\tname\trole\tscopes\tteam\tprefix\tcreated\tlast used\trevoked")
    for k in keys:
        revoked = "no" if k.revoked_at is None else _when(k.revoked_at)
        click.echo(
            f"{k.id}\t{k.name}\t{k.role}\t{' '.join(k.scopes) or '-'}\t{k.team}\t{k.prefix}…\t"
            f"{_when(k.created_at)}\t{_when(k.last_used_at)}\t{revoked}"
        )


@api_keys_cli.command("revoke")
@click.argument("key_id", type=int)
def api_keys_revoke(key_id: int) -> None:
    """Stop the key KEY_ID (from `api-keys list`) from working, now and for good."""
    try:
        key, fresh = current_runtime().staff.revoke_api_key(key_id)
    except UnknownStaff as error:
        raise click.UsageError(str(error)) from None
    if fresh:
        log.warning("API key %s (%s…) revoked from the command line", key.id, key.prefix)
    click.echo(f"API key {key.id} {key.name!r} ({key.prefix}…): revoked" + ("" if fresh else " already"))


audit_cli = AppGroup("audit", help="Checks on the compliance records.")


@audit_cli.command("verify")
def audit_verify() -> None:
    """Recompute the opt-out log's hash chain; exit 1 and name the first broken entry if any."""
    with current_runtime().db.reading() as session:
        report = verify_opt_out_log(session)
    if not report.intact:
        click.echo(f"opt-out log BROKEN at entry {report.broken_seq}: {report.problem}", err=True)
        click.echo(f"({report.checked} entries read before it)", err=True)
        sys.exit(1)
    click.echo(f"opt-out log intact: {report.checked} entries, head {report.head_seq} {report.head_hash}")


contacts_cli = AppGroup("contacts", help="Contacts' identities.")


@contacts_cli.command("rehash")
def contacts_rehash() -> None:
    """Rehash the email identities kept before canonical identities, where the address is still held."""
    runtime = current_runtime()
    report = rehash_contacts(runtime.db, runtime.hasher)
    click.echo(report.summary())


privacy_cli = AppGroup("privacy", help="Data-subject requests: export or erase what is held about a person.")


def _parsed(service: PrivacyService, contact: str) -> Contact:
    """The contact, or a clean exit: the reason goes to the operator, not to a log."""
    try:
        return service.parse(contact)
    except InvalidContact as error:
        raise click.ClickException(f"not an e-mail address or a phone number: {error}") from None


@privacy_cli.command("export")
@click.argument("contact")
@click.option(
    "--output", type=click.Path(dir_okay=False, writable=True), help="Write the JSON to this file instead of stdout."
)
def privacy_export(contact: str, output: str | None) -> None:
    """Print everything held about CONTACT (an e-mail address or a phone number) as JSON."""
    service = current_runtime().privacy
    _parsed(service, contact)
    document = json.dumps(service.export(contact), indent=2, ensure_ascii=False)
    if output is None:
        click.echo(document)
        return
    Path(output).write_text(document + "\n", encoding="utf-8")
    click.echo(f"export written to {output}", err=True)


@privacy_cli.command("erase")
@click.argument("contact")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def privacy_erase(contact: str, yes: bool) -> None:
    """Erase CONTACT's plaintext and what they wrote, and suppress them for good (the hash stays)."""
    service = current_runtime().privacy
    parsed = _parsed(service, contact)
    if not yes:
        click.confirm(
            f"Erase what Fluister holds about {parsed.masked()} and never message them again on {parsed.channel}?",
            abort=True,
        )
    report = service.erase(contact)
    click.echo(f"erased {parsed.masked()} ({report.channel}, hash {report.contact_hash[:12]}…)")
    for name, value in report.as_dict().items():
        if name not in ("contact_hash", "channel"):
            click.echo(f"  {name.replace('_', ' ')}: {str(value).lower() if isinstance(value, bool) else value}")
    if report.changes == 0:
        click.echo("nothing left to erase: an earlier erasure already did it")


consents_cli = AppGroup("consents", help="People's own consent to be messaged (texts under the us policy).")


@consents_cli.command("import")
@click.argument("csv_file", type=click.File("rb"))
@click.option("--channel", type=click.Choice(["sms", "whatsapp", "email"]), default="sms", show_default=True)
@click.option("--campaign", "campaign_slug", help="Consent to this campaign only (default: the brand's campaigns).")
@click.option("--note", default="", help="Where the consents come from, kept as evidence with each one.")
def consents_import(csv_file: IO[bytes], channel: str, campaign_slug: str | None, note: str) -> None:
    """Import consents from CSV_FILE: columns contact, given_at (optional), evidence (optional).
    Only the contacts' hashes are stored."""
    try:
        report = current_runtime().consents.import_csv(csv_file, channel, campaign_slug, note)
    except LookupError as error:
        raise click.UsageError(str(error)) from None
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{report.rows} rows: {report.imported} consents recorded, {report.already_on_record} already on record")
    if report.problem_count:
        click.echo(f"{report.problem_count} rows refused:", err=True)
        for problem in report.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(1)


coupons_cli = AppGroup("coupons", help="A campaign's coupon codes: import them from a CSV, or generate them.")


@coupons_cli.command("import")
@click.argument("slug")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def coupons_import(slug: str, file: Path) -> None:
    """Load codes from FILE (CSV: a column named `code`, or the codes alone, one a line) into
    the campaign SLUG's pool. Bad rows and codes already there are skipped and counted; the
    exit code is 1 when the campaign may not have coupons or the file cannot be read as codes."""
    runtime = current_runtime()
    lines = _count_lines(file)
    try:
        with (
            file.open(encoding="utf-8-sig", errors="replace", newline="") as source,
            click.progressbar(length=lines, label=f"{slug}: importing", file=sys.stderr) as bar,
        ):
            done = 0

            def advance(lines_read: int) -> None:
                nonlocal done
                bar.update(lines_read - done)
                done = lines_read

            report = import_codes(runtime.db, slug, source, progress=advance)
    except CampaignNotFound as error:
        raise click.UsageError(str(error)) from None
    except (CouponsNotAllowed, CouponFileRefused) as error:
        click.echo(f"{slug}: nothing imported: {error}", err=True)
        sys.exit(1)
    click.echo(f"{slug}: {report.summary()}")
    for bad in report.bad_rows:
        click.echo(f"  - {bad}", err=True)
    if report.bad > len(report.bad_rows):
        more = report.bad - len(report.bad_rows)
        click.echo(f"  ... and {more:,} more bad {'row' if more == 1 else 'rows'}", err=True)


@coupons_cli.command("generate")
@click.argument("slug")
@click.argument("count", type=click.IntRange(1, MAX_GENERATE))
@click.option("--prefix", default="", help="Put this before each code, say SPRING- (at most 54 characters).")
@click.option(
    "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path), help="Write the new codes to this CSV."
)
def coupons_generate(slug: str, count: int, prefix: str, output: Path | None) -> None:
    """Add COUNT new random codes to the campaign SLUG's pool (and to --output, for a shop that
    checks codes itself). Exit code 1 when the campaign may not have coupons."""
    runtime = current_runtime()
    try:
        with contextlib.ExitStack() as stack:
            export = None
            if output is not None:
                writer = csv.writer(stack.enter_context(output.open("w", encoding="utf-8", newline="")))
                writer.writerow(["code"])

                def export(codes: list[str]) -> None:
                    writer.writerows(safe_row([code]) for code in codes)

            made = generate_codes(runtime.db, slug, count, prefix=prefix, on_batch=export)
    except CampaignNotFound as error:
        raise click.UsageError(str(error)) from None
    except InvalidCode as error:
        raise click.BadParameter(str(error), param_hint="--prefix") from None
    except CouponsNotAllowed as error:
        click.echo(f"{slug}: nothing generated: {error}", err=True)
        sys.exit(1)
    click.echo(f"{slug}: {made:,} codes generated" + (f", written to {output}" if output else ""))


@coupons_cli.command("mode")
@click.argument("slug")
@click.argument("mode", type=click.Choice([m.value for m in CouponMode]))
def coupons_mode(slug: str, mode: str) -> None:
    """Switch the campaign SLUG's coupons: none, pool (uploaded codes) or generated."""
    try:
        set_mode(current_runtime().db, slug, CouponMode(mode), CLI)
    except CampaignNotFound as error:
        raise click.UsageError(str(error)) from None
    except CouponsNotAllowed as error:
        click.echo(f"{slug}: {error}", err=True)
        sys.exit(1)
    click.echo(f"{slug}: coupons {mode}")


def _count_lines(path: Path) -> int:
    """Lines in the file, read in chunks: the length of the progress bar."""
    lines = 0
    last = b"\n"
    with path.open("rb") as binary:
        while chunk := binary.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


@click.command("simulate")
@click.option("--campaign", "slug", help="The campaign to fill (made if missing). Not with --variant.")
@click.option("--people", type=click.IntRange(min=1), help="How many people to reach at most. Not with --variant.")
@click.option("--k", type=float, help="The viral coefficient to aim for. Not with --variant.")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=14.0, show_default=True)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="The same seed gives the same campaign (or experiment)."
)
@click.option(
    "--variant",
    "variants",
    multiple=True,
    metavar="NAME:share=RATE[,click=RATE][,convert=RATE]",
    help="A variant of an A/B test, with its true rates (twice or more): runs the experiment in memory "
    "and prints its verdict instead of filling a campaign.",
)
@click.option(
    "--chains",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="With --variant: seed visitors per variant.",
)
@click.option(
    "--window",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_WINDOW / timedelta(hours=1),
    show_default=True,
    help="With --variant: hours a sender's friends get to forward before the sender counts in K.",
)
@click.option(
    "--power-runs",
    type=click.IntRange(min=0),
    default=40,
    show_default=True,
    help="With --variant: simulated experiments per size in the power analysis (0: none).",
)
def simulate(
    slug: str | None,
    people: int | None,
    k: float | None,
    days: float,
    seed: int,
    variants: tuple[str, ...],
    chains: int,
    window: float,
    power_runs: int,
) -> None:
    """Drive a synthetic viral campaign through the real services (forwards, clicks, coupons),
    spread over DAYS simulated days that end now, to watch its dashboard fill. Nothing is sent.

    With --variant, an A/B test of the same model instead, in memory (nothing is written): the
    verdict on K per variant, and how many visitors it takes to tell a 10% difference in K."""
    if variants:
        if slug is not None or people is not None or k is not None:
            raise click.UsageError("--variant runs an experiment in memory: --campaign, --people and --k do not apply")
        try:
            plan = ExperimentPlan(tuple(map(parse_variant, variants)), chains, days, timedelta(hours=window), seed)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
        _simulate_experiment(plan, power_runs)
        return
    if slug is None or people is None or k is None:
        given = (("--campaign", slug), ("--people", people), ("--k", k))
        missing = ", ".join(f"'{option}'" for option, value in given if value is None)
        raise click.UsageError(f"Missing option {missing} (or give --variant for an experiment).")
    _simulate_campaign(slug, people, k, days, seed)


def _simulate_campaign(slug: str, people: int, k: float, days: float, seed: int) -> None:
    runtime = current_runtime()
    if runtime.settings.production:
        raise click.ClickException("simulate writes synthetic people into the database: not in production")
    try:
        plan = SimulationPlan(slug=slug, people=people, k=k, days=days, seed=seed)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    prepare_campaign(runtime.db, slug)
    with click.progressbar(length=people, label=f"simulating {slug}", show_pos=True) as bar:
        report = runtime.simulator(plan, progress=bar.update).run()
    measured = "n/a" if report.measured_k is None else f"{report.measured_k:.2f}"
    click.echo(
        f"{slug}: {report.people} people, {report.submissions} submissions, {report.forwards} forwards, "
        f"{report.clicks} clicks, {report.conversions} conversions; K asked {k:.2f}, measured {measured}"
    )


def _simulate_experiment(plan: ExperimentPlan, power_runs: int) -> None:
    rule = DecisionRule()
    verdict = run_experiment(plan, rule)
    for line in experiment_lines(plan, verdict):
        click.echo(line)
    if power_runs:
        click.echo("")
        click.echo(f"Power: {power_runs} simulated experiments per size …")
        baseline = plan.variants[0]
        estimate = power_analysis(baseline, rule, days=plan.days, window=plan.window, seed=plan.seed, runs=power_runs)
        for line in power_lines(baseline, estimate):
            click.echo(line)


def register_commands(app: Flask) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(seed_demo)
    app.cli.add_command(worker)
    app.cli.add_command(scheduler)
    app.cli.add_command(messages_cli)
    app.cli.add_command(campaigns_cli)
    app.cli.add_command(templates_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(api_keys_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(consents_cli)
    app.cli.add_command(privacy_cli)
    app.cli.add_command(contacts_cli)
    app.cli.add_command(simulate)
    app.cli.add_command(coupons_cli)
