"""The console's contest page: a campaign's contests, set up, changed until they start,
cancelled with a reason; the standings of a running one and the final leaderboard of one that
ended, with each winner's notice (engine.services.contests).

Marketers and admins set contests up; every staff member may look. A campaign whose policy or
regions allow no contest shows why instead of the form.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, flash, get_flashed_messages, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse
from wtforms import DateTimeLocalField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional

from engine.models import Role
from engine.runtime import current_runtime
from engine.services.contests import (
    METRIC_LABELS,
    CampaignContests,
    ContestDraft,
    ContestInvalid,
    ContestLocked,
    ContestNotFound,
    ContestRefused,
    ContestView,
    campaign_contests,
    cancel_contest,
    prize_lines,
    save_contest,
)
from engine.services.lookups import CampaignNotFound
from engine.web.console.auth import current_member, staff_actor, staff_required
from engine.web.console.formats import staff_zone_name
from engine.web.errors import error_response

log = logging.getLogger(__name__)

bp = Blueprint("contests_console", __name__, url_prefix="/console/campaigns")

_DATETIME_FORMAT = "%Y-%m-%dT%H:%M"
_DONE = "contest-done"


class ContestForm(FlaskForm):
    title = StringField(lazy_gettext("Title"))
    metric = RadioField(
        lazy_gettext("What counts"),
        choices=[SelectChoice(value, label) for value, label in METRIC_LABELS.items()],
        validate_choice=False,
    )
    starts = DateTimeLocalField(lazy_gettext("Starts"), format=_DATETIME_FORMAT, validators=[Optional()])
    ends = DateTimeLocalField(lazy_gettext("Ends"), format=_DATETIME_FORMAT, validators=[Optional()])
    time_zone = StringField(lazy_gettext("Time zone of the start and end (the one participants read)"))
    prizes = TextAreaField(lazy_gettext("Prizes, one a line: the first for rank 1"))
    rules = TextAreaField(lazy_gettext("Official rules (shown in full on the contest's page)"))

    def draft(self) -> ContestDraft:
        return ContestDraft(
            title=self.title.data or "",
            rules=self.rules.data or "",
            metric=self.metric.data or "",
            starts_local=self.starts.data,
            ends_local=self.ends.data,
            time_zone=(self.time_zone.data or "").strip(),
            prizes=prize_lines(self.prizes.data or ""),
        )

    def fill(self, contest: ContestView) -> None:
        self.title.data = contest.title
        self.rules.data = contest.rules
        self.metric.data = contest.metric
        self.starts.data = contest.local_starts.replace(tzinfo=None)
        self.ends.data = contest.local_ends.replace(tzinfo=None)
        self.time_zone.data = contest.time_zone
        self.prizes.data = "\n".join(contest.prizes)


class CancelForm(FlaskForm):
    reason = TextAreaField(lazy_gettext("Why (participants may ask)"))


@bp.get("/<slug>/contests")
@staff_required()
def contests(slug: str) -> BaseResponse:
    form = ContestForm(formdata=None, metric="friends-reached", time_zone=staff_zone_name())
    return _page(slug, form)


@bp.post("/<slug>/contests")
@bp.post("/<slug>/contests/<int:contest_id>")
@staff_required(Role.MARKETER)
def save(slug: str, contest_id: int | None = None) -> BaseResponse:
    runtime = current_runtime()
    form = ContestForm()
    if not form.validate_on_submit():
        return _page(slug, form, editing=contest_id, status=422)
    try:
        contest = save_contest(runtime.db, slug, form.draft(), staff_actor(), runtime.clock.now(), contest_id)
    except ContestInvalid as invalid:
        _show(form, invalid.problems)
        return _page(slug, form, editing=contest_id, status=422)
    except (ContestRefused, ContestLocked) as refused:
        return _page(slug, form, editing=contest_id, refusal=str(refused), status=409)
    except (ContestNotFound, CampaignNotFound):
        return error_response(404, _("There is no such contest."))
    log.info("contest %s of %s saved by %s", contest.id, slug, staff_actor().name)
    flash(_("Contest saved: %(title)s.", title=contest.title), _DONE)
    return redirect(url_for("contests_console.contests", slug=slug), code=303)


@bp.get("/<slug>/contests/<int:contest_id>/edit")
@staff_required(Role.MARKETER)
def edit(slug: str, contest_id: int) -> BaseResponse:
    return _page(slug, ContestForm(formdata=None), editing=contest_id)


@bp.post("/<slug>/contests/<int:contest_id>/cancel")
@staff_required(Role.MARKETER)
def cancel(slug: str, contest_id: int) -> BaseResponse:
    runtime = current_runtime()
    form = CancelForm()
    if not form.validate_on_submit():
        return _page(
            slug, ContestForm(formdata=None), status=422, refusal=_("That request could not be read; please try again.")
        )
    try:
        cancel_contest(runtime.db, slug, contest_id, form.reason.data or "", staff_actor(), runtime.clock.now())
    except ContestInvalid as invalid:
        return _page(
            slug, ContestForm(formdata=None), status=422, cancel_problem=(contest_id, invalid.problems["reason"])
        )
    except ContestLocked as locked:
        return _page(slug, ContestForm(formdata=None), status=409, refusal=str(locked))
    except (ContestNotFound, CampaignNotFound):
        return error_response(404, _("There is no such contest."))
    log.info("contest %s of %s cancelled by %s", contest_id, slug, staff_actor().name)
    flash(_("Contest cancelled: it has left the landing page."), _DONE)
    return redirect(url_for("contests_console.contests", slug=slug), code=303)


def _page(
    slug: str,
    form: ContestForm,
    *,
    editing: int | None = None,
    refusal: str | None = None,
    cancel_problem: tuple[int, str] | None = None,
    status: int = 200,
) -> BaseResponse:
    runtime = current_runtime()
    try:
        # Whoever looks first after a contest ended makes it final (the scheduler does too).
        runtime.contests.finalise_due(slug)
        listing = campaign_contests(runtime.db, slug, runtime.clock.now())
    except CampaignNotFound:
        return error_response(404, _("There is no such campaign."))
    edited = _edited(listing, editing)
    if editing is not None and edited is None:
        return error_response(404, _("There is no such contest."))
    if edited is not None and status == 200:
        form.fill(edited)
    html = render_template(
        "pages/console/contests.html",
        member=current_member(),
        listing=listing,
        form=form,
        editing=edited,
        cancel_form=CancelForm(formdata=None),
        cancel_problem=cancel_problem,
        refusal=refusal,
        now=runtime.clock.now(),
        done=get_flashed_messages(category_filter=[_DONE]),
    )
    return Response(html, status=status)


def _edited(listing: CampaignContests, contest_id: int | None) -> ContestView | None:
    return next((c for c in listing.contests if c.id == contest_id and c.state == "upcoming"), None)


def _show(form: ContestForm, problems: dict[str, str]) -> None:
    for name, problem in problems.items():
        field = getattr(form, name, None)
        if field is not None:
            field.errors = [problem]
