"""The console's rewards page: a campaign's reward program and the review of held rewards.

Marketers (and admins) switch a campaign's referrer rewards on or off (refused, with the
reason, under a consent policy without incentives), and approve or reject each reward held
for review, seeing what the fraud filters flagged on it; a rejection needs a reason. Compliance
staff get 403: the page names referrers. The same from the command line: `flask --app wsgi
rewards list|approve|reject|enable|disable`.
"""

from __future__ import annotations

import logging

import click
from flask import Blueprint, Response, flash, get_flashed_messages, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf import FlaskForm

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import Length, Optional

from engine.models import Role
from engine.models.rewards import RewardFlag, RewardStatus
from engine.runtime import current_runtime
from engine.services.lookups import CampaignNotFound
from engine.services.rewards import (
    MAX_DESCRIPTION_LENGTH,
    MAX_REASON_LENGTH,
    AlreadyReviewed,
    ProgramSettings,
    ReviewDecision,
    RewardNotFound,
    RewardsNotAllowed,
    list_rewards,
    review,
    reward_program,
    set_program,
)
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


class ProgramForm(FlaskForm):
    enabled = BooleanField(lazy_gettext("Reward referrers whose friends redeem their code"))
    description = StringField(
        lazy_gettext("What a referrer earns per converted friend"),
        validators=[Optional(), Length(max=MAX_DESCRIPTION_LENGTH)],
    )


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
        settings = ProgramSettings(bool(form.enabled.data), (form.description.data or "").strip())
        set_program(current_runtime().db, slug, settings)
    except ValueError as invalid:
        form.description.errors = [_sentence(str(invalid))]
        return _page(slug, program_form=form, status=422)
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
        view = review(current_runtime().db, slug, reward_id, decision)
    except (CampaignNotFound, RewardNotFound):
        return error_response(404, _("There is no such reward."))
    except AlreadyReviewed as done:
        return _page(
            slug, refusal=_("Reward %(id)s was %(status)s already.", id=reward_id, status=done.status), status=409
        )
    flash(
        _("Reward %(id)s for %(name)s: %(status)s.", id=view.id, name=view.referrer_name, status=view.status),
        _DONE_CATEGORY,
    )
    return redirect(url_for("rewards_console.rewards", slug=slug), code=303)


def _page(
    slug: str, *, program_form: ProgramForm | None = None, refusal: str | None = None, status: int = 200
) -> BaseResponse:
    db = current_runtime().db
    settings = reward_program(db, slug)
    held = list_rewards(db, slug, RewardStatus.HELD)
    reviewed = [r for r in reversed(list_rewards(db, slug)) if r.status != RewardStatus.HELD][:RECENTLY_REVIEWED]
    if program_form is None:
        program_form = ProgramForm(formdata=None, enabled=settings.enabled, description=settings.description)
    html = render_template(
        "pages/console/rewards.html",
        member=current_member(),
        program=settings,
        program_form=program_form,
        review_form=ReviewForm(formdata=None),
        held=held,
        reviewed=reviewed,
        flag_labels=FLAG_LABELS,
        refusal=refusal,
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
        view = review(current_runtime().db, slug, reward_id, decision)
    except (CampaignNotFound, RewardNotFound, AlreadyReviewed) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"reward {view.id} ({view.referrer_name}): {view.status}")


@bp.cli.command("enable")
@click.argument("slug")
@click.option("--description", required=True, help="What a referrer earns per converted friend.")
def enable_command(slug: str, description: str) -> None:
    """Switch the campaign's referrer rewards on (refused under a policy without incentives)."""
    try:
        set_program(current_runtime().db, slug, ProgramSettings(True, description))
    except (CampaignNotFound, RewardsNotAllowed, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{slug}: rewards on")


@bp.cli.command("disable")
@click.argument("slug")
def disable_command(slug: str) -> None:
    """Switch the campaign's referrer rewards off (rewards already made stay, for review)."""
    try:
        current = reward_program(current_runtime().db, slug)
        set_program(current_runtime().db, slug, ProgramSettings(False, current.description))
    except CampaignNotFound as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{slug}: rewards off")
