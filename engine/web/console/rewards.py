"""The console's rewards page: a campaign's reward programme and the review of its rewards.

Marketers (and admins) switch a campaign's referrer rewards on or off (refused, with the
reason, under a consent policy without incentives) and set the programme's rules (single or
tiered, minimum order, new customers only, cap per referrer, hold period, payout method);
approve or reject each reward held for review, seeing what the fraud filters flagged on it (a
rejection needs a reason), or every held reward a filter finds at once; follow each reward's
payout and history; and export the rewards a filter finds as CSV. Compliance staff get 403:
the page names referrers. The same from the command line: `flask --app wsgi rewards
list|approve|reject|enable|disable|load-codes`.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from flask import (
    Blueprint,
    Response,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext, ngettext
from flask_wtf import FlaskForm

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, NumberRange, Optional

from engine.models import Role
from engine.models.rewards import PayoutMethod, PayoutState, RewardFlag, RewardStatus
from engine.queue import QueueUnavailable
from engine.runtime import current_runtime
from engine.services.lookups import CampaignNotFound
from engine.services.payouts import add_payout_codes
from engine.services.reward_history import Step
from engine.services.reward_rules import MAX_HOLD_DAYS, Milestone, Money, ProgrammeKind, RewardRules
from engine.services.rewards import (
    CSV_HEADER,
    MAX_BULK,
    MAX_DESCRIPTION_LENGTH,
    MAX_REASON_LENGTH,
    AlreadyReviewed,
    ProgramSettings,
    ReviewDecision,
    RewardFilter,
    RewardNotFound,
    RewardsNotAllowed,
    csv_row,
    histories,
    list_rewards,
    review,
    review_many,
    reward_program,
    set_program,
)
from engine.spreadsheet import safe_row
from engine.web.console.auth import current_member, staff_required
from engine.web.errors import error_response

log = logging.getLogger(__name__)

bp = Blueprint("rewards_console", __name__, url_prefix="/console/campaigns", cli_group="rewards")

_DONE_CATEGORY = "rewards-done"
RECENTLY_REVIEWED = 50

# What each flag means, for the person deciding.
FLAG_LABELS = {
    RewardFlag.SELF_REFERRAL.value: lazy_gettext("Self-referral: a contact of the referrer is also the friend's"),
    RewardFlag.SAME_IP.value: lazy_gettext("Same address: the friend clicked from where the referrer forwarded"),
    RewardFlag.REPEATED_DEVICE.value: lazy_gettext(
        "Repeated device: one browser behind several converting friends of this referrer"
    ),
    RewardFlag.DISPOSABLE_ADDRESS.value: lazy_gettext(
        "Disposable address: the friend's address is at a throwaway mail service"
    ),
}


# Where a coupon payout is, for the person following it.
PAYOUT_LABELS = {
    PayoutState.WAITING_HOLD.value: lazy_gettext("Approved; paid out when its hold period is over"),
    PayoutState.WAITING_CONTACT.value: lazy_gettext(
        "Waiting: the referrer has confirmed no address or number to send the code to"
    ),
    PayoutState.QUEUED.value: lazy_gettext("Code about to be sent"),
    PayoutState.SENDING.value: lazy_gettext("Code being sent"),
    PayoutState.SENT.value: lazy_gettext("Code sent"),
    PayoutState.SUPPRESSED.value: lazy_gettext("Not sent: the referrer's contact opted out"),
    PayoutState.CAPPED.value: lazy_gettext("Held back by the recipient cap; tried again later"),
    PayoutState.FAILED.value: lazy_gettext("Not sent: the provider refused it"),
    PayoutState.UNKNOWN.value: lazy_gettext("May have been sent (the provider did not answer); not sent again"),
    PayoutState.WAITING_SHOP.value: lazy_gettext("The shop has been told; waiting for its confirmation"),
}
# The steps of a reward's history, as the page names them.
STEP_LABELS = {
    Step.EARNED.value: lazy_gettext("earned"),
    Step.APPROVED.value: lazy_gettext("approved"),
    Step.REJECTED.value: lazy_gettext("rejected"),
    Step.HOLD_OVER.value: lazy_gettext("hold over"),
    Step.CODE_ASSIGNED.value: lazy_gettext("code assigned"),
    Step.WAITING_CONTACT.value: lazy_gettext("waiting for a contact"),
    Step.QUEUED.value: lazy_gettext("notice queued"),
    Step.SENT.value: lazy_gettext("notice sent"),
    Step.NOT_SENT.value: lazy_gettext("notice not sent"),
    Step.SHOP_TOLD.value: lazy_gettext("shop told"),
    Step.PAID.value: lazy_gettext("paid"),
}
STATUS_LABELS = {
    RewardStatus.HELD.value: lazy_gettext("held"),
    RewardStatus.APPROVED.value: lazy_gettext("approved"),
    RewardStatus.PAID.value: lazy_gettext("paid"),
    RewardStatus.REJECTED.value: lazy_gettext("rejected"),
}
EXPORT_LIMIT = 100_000


class ProgramForm(FlaskForm):
    enabled = BooleanField(lazy_gettext("Reward referrers whose friends redeem their code"))
    description = StringField(
        lazy_gettext("What a referrer earns per converted friend"),
        validators=[Optional(), Length(max=MAX_DESCRIPTION_LENGTH)],
    )
    kind = SelectField(
        lazy_gettext("Kind of programme"),
        choices=[
            SelectChoice(ProgrammeKind.SINGLE.value, lazy_gettext("A reward per converted friend")),
            SelectChoice(ProgrammeKind.TIERED.value, lazy_gettext("Milestones (tiered)")),
        ],
        default=ProgrammeKind.SINGLE.value,
    )
    milestones = TextAreaField(
        lazy_gettext("Milestones, one a line: friends, a colon, the reward (3: a coffee)"),
        validators=[Optional(), Length(max=5000)],
    )
    min_order = StringField(lazy_gettext("Minimum order value (empty: none)"), validators=[Optional(), Length(max=20)])
    currency = StringField(lazy_gettext("Currency of the minimum order (EUR)"), validators=[Optional(), Length(max=3)])
    new_customers_only = BooleanField(lazy_gettext("New customers only"))
    cap_per_referrer = IntegerField(
        lazy_gettext("Cap: rewards per referrer (empty: no cap)"),
        validators=[Optional(), NumberRange(min=1, max=100_000)],
    )
    hold_days = IntegerField(
        lazy_gettext("Hold period before payout (days)"),
        default=0,
        validators=[Optional(), NumberRange(min=0, max=MAX_HOLD_DAYS)],
    )
    payout = SelectField(
        lazy_gettext("Payout method"),
        choices=[
            SelectChoice(
                PayoutMethod.WEBHOOK.value,
                lazy_gettext("The shop pays out (told by webhook, confirms through the API)"),
            ),
            SelectChoice(
                PayoutMethod.COUPON.value, lazy_gettext("A code sent to the referrer's confirmed address or number")
            ),
        ],
        default=PayoutMethod.WEBHOOK.value,
    )
    auto_approve = BooleanField(lazy_gettext("Approve rewards no fraud filter flagged once their hold period is over"))
    code_prefix = StringField(lazy_gettext("Prefix of generated payout codes"), validators=[Optional(), Length(max=20)])

    def rules(self) -> RewardRules:
        """The rules the form says. Raises ValueError, saying what is wrong."""
        minimum = None
        if (self.min_order.data or "").strip():
            minimum = Money.parse(self.min_order.data or "", self.currency.data or "")
        elif (self.currency.data or "").strip():
            raise ValueError(_("A currency without a minimum order: give both, or neither."))
        return RewardRules(
            kind=ProgrammeKind(self.kind.data),
            milestones=_milestones(self.milestones.data or "") if self.kind.data == ProgrammeKind.TIERED else (),
            min_order=minimum,
            new_customers_only=bool(self.new_customers_only.data),
            cap_per_referrer=self.cap_per_referrer.data,
            hold_days=self.hold_days.data or 0,
            payout=PayoutMethod(self.payout.data),
            auto_approve=bool(self.auto_approve.data),
            code_prefix=(self.code_prefix.data or "").strip(),
        )

    @classmethod
    def showing(cls, enabled: bool, description: str, rules: RewardRules) -> ProgramForm:
        return cls(
            formdata=None,
            enabled=enabled,
            description=description,
            kind=rules.kind.value,
            milestones="\n".join(f"{m.friends}: {m.description}" for m in rules.milestones),
            min_order=f"{rules.min_order.amount}" if rules.min_order else "",
            currency=rules.min_order.currency if rules.min_order else "",
            new_customers_only=rules.new_customers_only,
            cap_per_referrer=rules.cap_per_referrer,
            hold_days=rules.hold_days,
            payout=rules.payout.value,
            auto_approve=rules.auto_approve,
            code_prefix=rules.code_prefix,
        )


def _milestones(text: str) -> tuple[Milestone, ...]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        friends, colon, reward = line.partition(":")
        if not colon or not friends.strip().isdigit():
            raise ValueError(_('Milestone line %(number)d is not "friends: reward" (3: a coffee).', number=number))
        found.append(Milestone(int(friends.strip()), reward.strip()))
    return tuple(found)


class ReviewForm(FlaskForm):
    reason = TextAreaField(
        lazy_gettext("Reason (needed to reject)"), validators=[Optional(), Length(max=MAX_REASON_LENGTH)]
    )


@bp.get("/<slug>/rewards")
@staff_required(Role.MARKETER)
def rewards(slug: str) -> BaseResponse:
    return _page(slug)


@bp.post("/<slug>/rewards/program")
@staff_required(Role.MARKETER)
def program(slug: str) -> BaseResponse:
    form = ProgramForm()
    if not form.validate_on_submit():
        return _page(slug, program_form=form, status=422)
    try:
        settings = ProgramSettings(bool(form.enabled.data), (form.description.data or "").strip(), form.rules())
        set_program(current_runtime().db, slug, settings)
    except ValueError as invalid:
        return _page(slug, program_form=form, rules_error=_sentence(str(invalid)), status=422)
    except RewardsNotAllowed as refused:
        return _page(slug, program_form=form, refusal=f"{_('Rewards stay off.')} {refused}", status=422)
    log.info("rewards of %s switched %s by %s", slug, "on" if settings.enabled else "off", _who())
    flash(_("Rewards on.") if settings.enabled else _("Rewards off."), _DONE_CATEGORY)
    return redirect(url_for("rewards_console.rewards", slug=slug), code=303)


@bp.post("/<slug>/rewards/<int:reward_id>")
@staff_required(Role.MARKETER)
def decide(slug: str, reward_id: int) -> BaseResponse:
    form = ReviewForm()
    decision_name = request.form.get("decision")
    if not form.validate_on_submit() or decision_name not in ("approve", "reject"):
        return _page(slug, refusal=_("That review could not be read; please try again."), status=422)
    try:
        decision = ReviewDecision(decision_name == "approve", _who(), form.reason.data)
    except ValueError as invalid:
        held = _("Reward %(id)s is still held.", id=reward_id)
        return _page(slug, refusal=f"{held} {_sentence(str(invalid))}", status=422)
    try:
        view = review(current_runtime().db, slug, reward_id, decision, current_runtime().clock.now())
    except (CampaignNotFound, RewardNotFound):
        return error_response(404, _("There is no such reward."))
    except AlreadyReviewed as done:
        return _page(
            slug, refusal=_("Reward %(id)s was %(status)s already.", id=reward_id, status=done.status), status=409
        )
    _request_payouts()
    flash(
        _("Reward %(id)s for %(name)s: %(status)s.", id=view.id, name=view.referrer_name, status=view.status),
        _DONE_CATEGORY,
    )
    return redirect(url_for("rewards_console.rewards", slug=slug), code=303)


@bp.post("/<slug>/rewards/bulk")
@staff_required(Role.MARKETER)
def decide_many(slug: str) -> BaseResponse:
    """Approve or reject every held reward the filter (sent along with the decision) finds."""
    form = ReviewForm()
    decision_name = request.form.get("decision")
    if not form.validate_on_submit() or decision_name not in ("approve", "reject"):
        return _page(slug, refusal="That review could not be read; please try again.", status=422)
    try:
        where = _filter(request.form)
        decision = ReviewDecision(decision_name == "approve", _who(), form.reason.data)
    except ValueError as invalid:
        return _page(slug, refusal=_("Nothing was reviewed. %(why)s", why=_sentence(str(invalid))), status=422)
    done = review_many(current_runtime().db, slug, where, decision, current_runtime().clock.now())
    _request_payouts()
    if decision.approve:
        flash(ngettext("%(num)d reward approved.", "%(num)d rewards approved.", len(done.decided)), _DONE_CATEGORY)
    else:
        flash(ngettext("%(num)d reward rejected.", "%(num)d rewards rejected.", len(done.decided)), _DONE_CATEGORY)
    if done.skipped:
        flash(
            ngettext(
                "%(num)d was not held any more and stays as it was.",
                "%(num)d were not held any more and stay as they were.",
                done.skipped,
            ),
            _DONE_CATEGORY,
        )
    back: dict[str, Any] = {"slug": slug, **_filter_args(request.form)}
    return redirect(url_for("rewards_console.rewards", **back), code=303)


@bp.get("/<slug>/rewards.csv")
@staff_required(Role.MARKETER)
def rewards_csv(slug: str) -> BaseResponse:
    """The rewards the filter finds, as CSV; cells that a spreadsheet would run are made inert."""
    try:
        where = _filter(request.args)
    except ValueError as invalid:
        return error_response(400, _sentence(str(invalid)))
    views = list_rewards(current_runtime().db, slug, limit=EXPORT_LIMIT, where=where)
    log.info("rewards of %s exported by %s (%d rows)", slug, _who(), len(views))

    # Built whole (the rows are read already): a streamed body would hold the request open
    # until a client that stopped reading is gone.
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(safe_row(csv_row(view)) for view in views)
    response = Response(buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="rewards-{slug}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


FILTER_FIELDS = ("status", "flagged", "from", "to", "referrer")


def _filter(values: Mapping[str, str]) -> RewardFilter:
    """The filter of a query string or a form. Raises ValueError, saying which field is wrong."""
    status = values.get("status", "").strip()
    if status and status not in {s.value for s in RewardStatus}:
        raise ValueError(_("There is no status %(status)s.", status=repr(status)))
    flagged = values.get("flagged", "").strip()
    if flagged not in ("", "yes", "no"):
        raise ValueError(_("Flagged is yes, no or empty."))
    return RewardFilter(
        status=RewardStatus(status) if status else None,
        flagged=None if not flagged else flagged == "yes",
        created_from=_day(values.get("from", ""), "from"),
        created_to=_day(values.get("to", ""), "to", end=True),
        referrer=values.get("referrer", "").strip(),
    )


def _day(text: str, name: str, *, end: bool = False) -> datetime | None:
    if not text.strip():
        return None
    try:
        day = datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(_("“%(field)s” is a date as YYYY-MM-DD.", field=name)) from None
    # `to` names the last day shown: the range ends when that day does.
    return day + timedelta(days=1) if end else day


def _filter_args(values: Mapping[str, str]) -> dict[str, str]:
    return {name: values[name] for name in FILTER_FIELDS if values.get(name)}


def _request_payouts() -> None:
    """Approved rewards past their hold are paid out by a job now, not at the next scheduled pass."""
    try:
        current_runtime().payouts.request_pass()
    except QueueUnavailable as error:
        log.warning("the payout pass could not be queued (%s); the scheduled pass will do it", error)


def _page(
    slug: str,
    *,
    program_form: ProgramForm | None = None,
    refusal: str | None = None,
    rules_error: str | None = None,
    status: int = 200,
) -> BaseResponse:
    db = current_runtime().db
    settings = reward_program(db, slug)
    held = list_rewards(db, slug, RewardStatus.HELD)
    reviewed = [r for r in reversed(list_rewards(db, slug)) if r.status != RewardStatus.HELD][:RECENTLY_REVIEWED]
    if program_form is None:
        program_form = ProgramForm.showing(settings.enabled, settings.description, settings.rules)
    filter_error = None
    try:
        where = _filter(request.args)
    except ValueError as invalid:
        filter_error, where, status = _sentence(str(invalid)), RewardFilter(), 400
    found = list_rewards(db, slug, limit=MAX_BULK, where=where)
    html = render_template(
        "pages/console/rewards.html",
        member=current_member(),
        program=settings,
        program_form=program_form,
        review_form=ReviewForm(formdata=None),
        held=held,
        reviewed=reviewed,
        flag_labels=FLAG_LABELS,
        payout_labels=PAYOUT_LABELS,
        step_labels=STEP_LABELS,
        status_labels=STATUS_LABELS,
        refusal=refusal,
        rules_error=rules_error,
        found=found,
        found_held=sum(1 for r in found if r.status == RewardStatus.HELD),
        steps=histories(db, [r.id for r in found]),
        filters=_filter_args(request.args),
        filter_error=filter_error,
        statuses=[s.value for s in RewardStatus],
        max_found=MAX_BULK,
        done=get_flashed_messages(category_filter=[_DONE_CATEGORY]),
    )
    return Response(html, status=status)


def _who() -> str:
    member = current_member()
    return member.name if member else "unknown"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


# -- CLI: flask --app wsgi rewards ... --------------------------------------------------------------


@bp.cli.command("list")
@click.argument("slug")
@click.option("--status", type=click.Choice([s.value for s in RewardStatus]), default=RewardStatus.HELD.value)
def list_command(slug: str, status: str) -> None:
    """The campaign's rewards of a status (default: held for review), oldest first."""
    try:
        found = list_rewards(current_runtime().db, slug, RewardStatus(status))
    except CampaignNotFound as error:
        raise click.ClickException(str(error)) from None
    for r in found:
        flags = ",".join(r.flags) or "-"
        click.echo(f"{r.id}\t{r.redeemed_at:%Y-%m-%d %H:%M}\t{r.referrer_name}\t{r.code}\t{r.status}\tflags: {flags}")


@bp.cli.command("approve")
@click.argument("slug")
@click.argument("reward_id", type=int)
@click.option("--reviewer", default="command line", help="Who approves it (recorded).")
def approve_command(slug: str, reward_id: int, reviewer: str) -> None:
    """Approve a held reward."""
    _review_from_cli(slug, reward_id, ReviewDecision(True, reviewer))


@bp.cli.command("reject")
@click.argument("slug")
@click.argument("reward_id", type=int)
@click.option("--reason", required=True, help="Why (recorded, and shown in the console).")
@click.option("--reviewer", default="command line", help="Who rejects it (recorded).")
def reject_command(slug: str, reward_id: int, reason: str, reviewer: str) -> None:
    """Reject a held reward, with a reason."""
    try:
        decision = ReviewDecision(False, reviewer, reason)
    except ValueError as invalid:
        raise click.ClickException(str(invalid)) from None
    _review_from_cli(slug, reward_id, decision)


def _review_from_cli(slug: str, reward_id: int, decision: ReviewDecision) -> None:
    try:
        view = review(current_runtime().db, slug, reward_id, decision, current_runtime().clock.now())
    except (CampaignNotFound, RewardNotFound, AlreadyReviewed) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"reward {view.id} ({view.referrer_name}): {view.status}")


@bp.cli.command("enable")
@click.argument("slug")
@click.option("--description", required=True, help="What a referrer earns per converted friend.")
def enable_command(slug: str, description: str) -> None:
    """Switch the campaign's referrer rewards on (refused under a policy without incentives)."""
    try:
        current = reward_program(current_runtime().db, slug)
        set_program(current_runtime().db, slug, ProgramSettings(True, description, current.rules))
    except (CampaignNotFound, RewardsNotAllowed, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{slug}: rewards on")


@bp.cli.command("disable")
@click.argument("slug")
def disable_command(slug: str) -> None:
    """Switch the campaign's referrer rewards off (rewards already made stay, for review)."""
    try:
        current = reward_program(current_runtime().db, slug)
        set_program(current_runtime().db, slug, ProgramSettings(False, current.description, current.rules))
    except CampaignNotFound as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{slug}: rewards off")


@bp.cli.command("load-codes")
@click.argument("slug")
@click.argument("file", type=click.File("r", encoding="utf-8"))
def load_codes_command(slug: str, file: io.TextIOBase) -> None:
    """Load codes to pay referrers with (one a line) into the campaign's payout pool."""
    try:
        added = add_payout_codes(current_runtime().db, slug, file.read().splitlines())
    except (CampaignNotFound, RewardsNotAllowed, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{slug}: {added} payout codes added")
