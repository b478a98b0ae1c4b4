"""The console's campaign pages: create and edit a campaign, move it through its states, roll a
template back, and read its history.

Who may do what: marketers and admins create, edit, change the status and roll back; every
staff role (compliance included) may read a campaign's overview and history, since an
auditor needs to see who changed what, but not change it. Setting a custom consent policy
is for admins only (engine.services.history.Actor.may_set_custom_policy).

The forms parse what was typed (numbers, JSON, dates); what the values may be is the
service's business (engine.services.campaigns.CampaignDraft), and its reasons come back
as field errors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, flash, get_flashed_messages, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf import FlaskForm

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    Field,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from engine.caps import CapsUnavailable
from engine.channels import MessageChannel, SettingsField, registered
from engine.channels import names as channel_names
from engine.models import CampaignStatus, Role
from engine.policy import POLICY_NAMES
from engine.queue import SWEEPER_SENDS
from engine.runtime import current_runtime
from engine.services.campaign_guides import CAP_GUIDES, built_in_explanations, default_hint
from engine.services.campaign_status import set_status
from engine.services.campaigns import (
    COUPON_MODES,
    CampaignDraft,
    CampaignOverview,
    CampaignSettings,
    CapRemovalRefused,
    ChangeRefused,
    DraftInvalid,
    activation_problems,
    campaign_overview,
    create_campaign,
    edit_campaign,
)
from engine.services.cap_usage import cap_rows, cap_usage
from engine.services.templates import rollback_template
from engine.video import REVEAL_AFTER_STEP, REVEAL_AFTER_VIDEO, REVEAL_ALWAYS, VIDEO_SETTINGS
from engine.web.console.auth import current_member, staff_actor, staff_required
from engine.web.console.campaign_fields import (
    cap_fields,
    cap_removal_refused,
    fill_caps,
    fill_policy,
    json_object,
    json_refused,
    retention_choices,
    rule_field,
    rule_fields,
    same_policy,
    typed_caps,
    typed_policy,
)
from engine.web.console.formats import staff_zone, staff_zone_name
from engine.web.errors import error_response
from engine.web.outages import outage_log

log = logging.getLogger(__name__)

bp = Blueprint("campaigns_console", __name__, url_prefix="/console/campaigns")

_DONE_CATEGORY = "campaign-done"
_DATETIME_FORMAT = "%Y-%m-%dT%H:%M"
_NOT_FOUND = lazy_gettext("There is no campaign with that name.")
_POLICY_NUMBERS = ("policy_version", "policy_retention_days", "policy_sms_from", "policy_sms_until")


def _listed(text: str | None) -> tuple[str, ...]:
    """`nl, en` (or one a line) as ("nl", "en")."""
    return tuple(part.strip() for part in (text or "").replace("\n", ",").split(",") if part.strip())


class _Checkboxes(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class CampaignForm(FlaskForm):
    slug = StringField(
        lazy_gettext("Slug (the address: /c/<slug>)"), validators=[InputRequired(lazy_gettext("Required."))]
    )
    name = StringField(lazy_gettext("Name (staff only)"))
    offer_title = StringField(lazy_gettext("Offer title"))
    offer_description = TextAreaField(lazy_gettext("Offer description"))
    brand_name = StringField(lazy_gettext("Brand name (the sender of every message)"))
    sender_email = StringField(lazy_gettext("Sender email address"))
    postal_address = TextAreaField(lazy_gettext("Postal address"))
    support_contact = StringField(lazy_gettext("Support contact (an email address or a phone number)"))
    channels = _Checkboxes(lazy_gettext("Channels"), choices=[SelectChoice(name, name) for name in channel_names()])
    policy_name = RadioField(
        lazy_gettext("Consent policy"), choices=[SelectChoice(name, name) for name in POLICY_NAMES], default="us"
    )
    # The custom policy's rules, one field each (a channel's rule: campaign_fields.rule_fields).
    policy_version = StringField(lazy_gettext("Rules version"), default="1")
    policy_incentives = BooleanField(lazy_gettext("Incentives allowed (coupons, rewards, contests)"))
    # Not checked against the choices here: only a custom policy reads them, and it judges them itself.
    policy_retention = SelectField(
        lazy_gettext("A friend's contact is"), choices=retention_choices(), validate_choice=False
    )
    policy_retention_days = StringField(lazy_gettext("Days it is kept after the send"), default="0")
    policy_sms_from = StringField(lazy_gettext("Texts from (hour, the friend's own time)"), default="8")
    policy_sms_until = StringField(lazy_gettext("Texts until (hour)"), default="21")
    policy_preview_required = BooleanField(lazy_gettext("The sender previews the whole message before it goes"))
    policy_justification = TextAreaField(lazy_gettext("Why these rules (custom policy only; 20 characters or more)"))
    # For admins only: the custom rules and the cap overrides as JSON, used instead of the fields.
    policy_rules = TextAreaField(lazy_gettext("Custom policy rules as JSON"))
    caps = TextAreaField(lazy_gettext("Cap overrides as JSON"))
    max_friends_per_submission = IntegerField(
        lazy_gettext("Friends per submission"), validators=[InputRequired(lazy_gettext("Required."))]
    )
    sms_segment_limit = IntegerField(
        lazy_gettext("SMS segment limit"), validators=[InputRequired(lazy_gettext("Required."))]
    )
    sms_smart_encoding = BooleanField(
        lazy_gettext("Replace curly quotes and dashes in texts (keeps 160 characters a segment)")
    )
    coupon_mode = SelectField(lazy_gettext("Coupons"), choices=[SelectChoice(mode, mode) for mode in COUPON_MODES])
    # Typed in the staff member's time zone (named in the label), stored in UTC.
    starts_at = DateTimeLocalField(lazy_gettext("Starts (optional)"), format=_DATETIME_FORMAT, validators=[Optional()])
    ends_at = DateTimeLocalField(lazy_gettext("Ends (optional)"), format=_DATETIME_FORMAT, validators=[Optional()])
    reason = TextAreaField(
        lazy_gettext("Why (kept in the history; needed when an admin removes a cap)"), validators=[Length(max=2000)]
    )
    # Defaults for a form posted without them (a client of before languages): English, informal.
    locales = StringField(lazy_gettext("Languages (codes, the default first: nl, en)"), default="en")
    address_form = SelectField(
        lazy_gettext("How Dutch addresses consumers"),
        choices=[
            SelectChoice("informal", lazy_gettext("informal (je/jij)")),
            SelectChoice("formal", lazy_gettext("formal (u)")),
        ],
        default="informal",
    )
    phone_region = StringField(lazy_gettext("Phone region (where numbers without a country code are from: NL)"))
    extra_phone_regions = StringField(lazy_gettext("Other phone regions it accepts (BE, DE; optional)"))
    embed_origins = TextAreaField(lazy_gettext("Sites that may embed the send-to-friend button (one origin a line)"))
    media_hosts = TextAreaField(lazy_gettext("Media hosts"))
    video_url = StringField(lazy_gettext("Video address"))
    video_poster = StringField(lazy_gettext("Poster image address"))
    video_caption = StringField(lazy_gettext("Video title"))
    video_captions = StringField(lazy_gettext("Captions file address"))
    video_reveal_form = SelectField(
        lazy_gettext("When the send-to-friend form shows"),
        choices=[
            SelectChoice(REVEAL_ALWAYS, lazy_gettext("always")),
            SelectChoice(REVEAL_AFTER_VIDEO, lazy_gettext("after the video")),
            SelectChoice(REVEAL_AFTER_STEP, lazy_gettext("after a step of the landing page")),
        ],
        default=REVEAL_ALWAYS,
    )

    # Where a service problem about a setting is shown (a channel's settings: at its first field).
    FIELD_OF_SETTING = {"policy_settings": "policy_rules"}
    # Whether the JSON fields are offered (and taken): admins only; set by _campaign_form.
    json_allowed = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only the channels this installation can send on are offered (SMS_TRANSPORT=none).
        unavailable = current_runtime().settings.channels_without_transport
        self.channels.choices = [c for c in self.channels.choices if c.value not in unavailable]
        self.starts_at.label.text = _("Starts (%(zone)s, optional)", zone=staff_zone_name())
        self.ends_at.label.text = _("Ends (%(zone)s, optional)", zone=staff_zone_name())

    def fill(self, settings: CampaignSettings) -> None:
        """The form as it shows a stored campaign."""
        for name in ("slug", "name", "offer_title", "offer_description", "brand_name", "sender_email"):
            getattr(self, name).data = getattr(settings, name)
        self.postal_address.data = settings.postal_address
        self.support_contact.data = settings.support_contact
        self.channels.data = list(settings.channels)
        self.policy_name.data = settings.policy_name
        fill_policy(self, settings.policy_name, settings.policy_settings)
        self.policy_justification.data = str(settings.policy_settings.get("justification", ""))
        # The JSON fields start empty: typed in, they replace the fields (the stored values are in them).
        self.policy_rules.data = ""
        self.caps.data = ""
        fill_caps(self, settings.caps)
        self.max_friends_per_submission.data = settings.max_friends_per_submission
        self.sms_segment_limit.data = settings.sms_segment_limit
        self.sms_smart_encoding.data = settings.sms_smart_encoding
        self.coupon_mode.data = settings.coupon_mode
        self.starts_at.data = _local(settings.starts_at)
        self.ends_at.data = _local(settings.ends_at)
        self.locales.data = ", ".join(settings.locales)
        self.address_form.data = settings.address_form
        self.phone_region.data = settings.phone_region or ""
        self.extra_phone_regions.data = ", ".join(settings.extra_phone_regions)
        self.embed_origins.data = "\n".join(settings.embed_origins)
        self.media_hosts.data = "\n".join(settings.media_hosts)
        for key in VIDEO_SETTINGS:
            self[f"video_{key}"].data = settings.landing_video.get(key, "")
        for channel in _channels_with_settings():
            stored = settings.channel_settings.get(channel.name) or {}
            for setting in channel.settings_fields:
                self[_field_name(channel, setting)].data = setting.format(stored.get(setting.key))

    def draft(self, stored_policy: Mapping[str, Any] | None = None) -> CampaignDraft:
        """The settings typed in; raises DraftInvalid with every problem, by setting, or
        ChangeRefused for JSON posted by someone who may not type it. `stored_policy`: the
        campaign's custom rules as stored, kept as they are when the fields say the same."""
        if not self.json_allowed and ((self.caps.data or "").strip() or (self.policy_rules.data or "").strip()):
            raise ChangeRefused([json_refused()])
        problems: dict[str, str] = {}
        policy_settings = self._policy_settings(stored_policy or {})
        caps = self._json("caps") if (self.caps.data or "").strip() else typed_caps(self)
        try:
            draft = CampaignDraft(
                slug=(self.slug.data or "").strip(),
                name=(self.name.data or "").strip(),
                offer_title=(self.offer_title.data or "").strip(),
                offer_description=(self.offer_description.data or "").strip(),
                brand_name=(self.brand_name.data or "").strip(),
                sender_email=(self.sender_email.data or "").strip(),
                postal_address=(self.postal_address.data or "").strip(),
                support_contact=(self.support_contact.data or "").strip(),
                channels=tuple(self.channels.data or ()),
                policy_name=self.policy_name.data or "",
                policy_settings=policy_settings,
                channel_settings=self._channel_settings(problems),
                caps=caps,
                max_friends_per_submission=self.max_friends_per_submission.data or 0,
                sms_segment_limit=self.sms_segment_limit.data or 0,
                sms_smart_encoding=bool(self.sms_smart_encoding.data),
                coupon_mode=self.coupon_mode.data or "",
                starts_at=_utc(self.starts_at.data),
                ends_at=_utc(self.ends_at.data),
                locales=_listed(self.locales.data),
                address_form=self.address_form.data or "",
                phone_region=(self.phone_region.data or "").strip().upper() or None,
                extra_phone_regions=tuple(r.upper() for r in _listed(self.extra_phone_regions.data)),
                embed_origins=_listed(self.embed_origins.data),
                media_hosts=_listed(self.media_hosts.data),
                landing_video={key: self[f"video_{key}"].data or "" for key in VIDEO_SETTINGS},
            )
        except DraftInvalid as invalid:
            raise DraftInvalid({**invalid.problems, **problems}) from None
        if problems or self._field_errors():
            raise DraftInvalid(problems)
        return draft

    def _field_errors(self) -> bool:
        """Whether a field took a problem of its own while being read (a cap that is no number)."""
        return any(field.errors for field in self)

    def _json(self, name: str) -> dict[str, Any]:
        """The JSON object typed in a field; its parser error beside it, in words."""
        value, problem = json_object(self[name].data or "")
        if problem:
            self[name].errors = [*self[name].errors, problem]
        return value or {}

    def _policy_settings(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """The custom rules, from the JSON when an admin typed it, else from the fields."""
        if self.policy_name.data != "custom":
            return {}
        if (self.policy_rules.data or "").strip():
            settings = self._json("policy_rules")
        else:
            settings = typed_policy(self)
            if same_policy(settings, stored):
                settings = {k: v for k, v in stored.items() if k != "justification"}
        return {**settings, "justification": (self.policy_justification.data or "").strip()}

    def _channel_settings(self, problems: dict[str, str]) -> dict[str, Any]:
        """Each channel's own settings, when anything of them was typed (kept while the channel is off)."""
        settings: dict[str, Any] = {}
        for channel in _channels_with_settings():
            typed = {setting: self[_field_name(channel, setting)].data or "" for setting in channel.settings_fields}
            if not any(text.strip() for text in typed.values()):
                continue
            settings[channel.name] = {}
            for setting, text in typed.items():
                if setting.optional and not text.strip():
                    continue
                try:
                    settings[channel.name][setting.key] = setting.parse(text)
                except ValueError as error:
                    problems[_field_name(channel, setting)] = str(error)
        return settings

    def show_problems(self, problems: dict[str, str]) -> None:
        for setting, problem in problems.items():
            name = self.FIELD_OF_SETTING.get(setting, setting)
            if setting in ("caps", "policy_settings") and not (self[name].data or "").strip():
                if setting == "policy_settings" and any(self[n].errors for n in _POLICY_NUMBERS):
                    continue  # a rule that is no number, already said beside it
                # Not typed as JSON: said beside the group of fields (caps: above them).
                name = "policy_name" if setting == "policy_settings" else "caps"
            if setting == "channel_settings":
                name = next((_field_name(c, c.settings_fields[0]) for c in _channels_with_settings()), setting)
            if setting == "policy_settings" and "justification" in problem:
                name = "policy_justification"
            field: Field | None = getattr(self, name, None)
            if field is None:
                self.form_errors.append(f"{setting}: {problem}")  # the service's words
            else:
                field.errors = [*field.errors, _sentence(problem)]

    def show_refusal(self, refused: ChangeRefused) -> bool:
        """A refusal about one field (a cap removed) beside it; False when it is the form's."""
        if not isinstance(refused, CapRemovalRefused) or (self.caps.data or "").strip():
            return False
        cap_removal_refused(self, refused.caps, needs_reason=refused.needs_reason)
        return True


class StatusForm(FlaskForm):
    status = StringField(lazy_gettext("Status"), validators=[InputRequired()])
    reason = TextAreaField(lazy_gettext("Reason (kept in the history)"), validators=[Length(max=2000)])
    # Ending is irreversible: it is asked for in a form of its own, by typing the campaign's
    # slug (as GitHub asks before deleting a repository) and saying why.
    confirm = StringField(lazy_gettext("Type the campaign's slug to confirm"), validators=[Length(max=64)])

    def ending_confirmed(self, slug: str) -> bool:
        """For an end: the slug typed and a reason given, else each field says what is missing."""
        if (self.confirm.data or "").strip() != slug:
            self.confirm.errors = [*self.confirm.errors, _("Type %(slug)s exactly to end the campaign.", slug=slug)]
        if not (self.reason.data or "").strip():
            self.reason.errors = [*self.reason.errors, _("Say why the campaign ends: the history keeps it.")]
        return not (self.confirm.errors or self.reason.errors)


class RollbackForm(FlaskForm):
    version = IntegerField(lazy_gettext("Version"), validators=[InputRequired()])


# -- create and edit ------------------------------------------------------------------------------


@bp.route("/new", methods=["GET", "POST"])
@staff_required(Role.MARKETER)
def new() -> BaseResponse:
    form = _campaign_form()
    if request.method == "GET":
        form.fill(CampaignSettings(slug="", name="", offer_title="", brand_name=""))
        return _form_page(form, None)
    if not form.validate_on_submit():
        return _form_page(form, None, status=422)
    try:
        draft = form.draft()
        create_campaign(
            current_runtime().db,
            draft,
            staff_actor(),
            (form.reason.data or "").strip(),
            channels_without_transport=current_runtime().settings.channels_without_transport,
        )
    except DraftInvalid as invalid:
        form.show_problems(invalid.problems)
        return _form_page(form, None, status=422)
    except ChangeRefused as refused:
        return _form_page(form, None, refusals=() if form.show_refusal(refused) else refused.reasons, status=422)
    log.info("campaign %s created by %s", draft.slug, staff_actor().name)
    flash(_("Campaign %(slug)s created, in draft.", slug=draft.slug), _DONE_CATEGORY)
    return redirect(url_for("campaigns_console.overview", slug=draft.slug), code=303)


@bp.route("/<slug>/edit", methods=["GET", "POST"])
@staff_required(Role.MARKETER)
def edit(slug: str) -> BaseResponse:
    runtime = current_runtime()
    overview = campaign_overview(runtime.db, slug)
    form = _campaign_form()
    if request.method == "GET":
        form.fill(overview.settings)
        return _form_page(form, overview)
    if not form.validate_on_submit():
        return _form_page(form, overview, status=422)
    try:
        changes = edit_campaign(
            runtime.db,
            slug,
            form.draft(overview.settings.policy_settings if overview.settings.policy_name == "custom" else None),
            staff_actor(),
            renderer=runtime.renderer,
            reason=(form.reason.data or "").strip(),
            now=runtime.clock.now(),
            channels_without_transport=runtime.settings.channels_without_transport,
        )
    except DraftInvalid as invalid:
        form.show_problems(invalid.problems)
        return _form_page(form, overview, status=422)
    except ChangeRefused as refused:
        refusals = () if form.show_refusal(refused) else refused.reasons
        return _form_page(form, overview, refusals=refusals, status=422)
    log.info("campaign %s edited by %s: %s", slug, staff_actor().name, ", ".join(changes) or "nothing changed")
    flash(_("Saved: %(changes)s.", changes=", ".join(changes)) if changes else _("Nothing changed."), _DONE_CATEGORY)
    return redirect(url_for("campaigns_console.overview", slug=slug), code=303)


def _channels_with_settings() -> list[MessageChannel]:
    return [channel for channel in registered() if channel.settings_fields]


def _field_name(channel: MessageChannel, setting: SettingsField) -> str:
    return f"{channel.name}_{setting.key}"


def _campaign_form() -> CampaignForm:
    """The form, offering only the channels this installation can send on (WHATSAPP_TRANSPORT=none:
    no WhatsApp transport, so no campaign may enable it), with each channel's own settings."""
    fields: dict[str, Any] = {
        _field_name(channel, setting): (TextAreaField if setting.multiline else StringField)(setting.label)
        for channel in _channels_with_settings()
        for setting in channel.settings_fields
    }
    member = current_member()
    fields.update({**cap_fields(), **rule_fields()}, json_allowed=member is not None and member.role is Role.ADMIN)
    form = type("CampaignForm", (CampaignForm,), fields)()
    transports = current_runtime().transports
    form.channels.choices = [SelectChoice(name, name) for name in channel_names() if name in transports]
    return form


def _form_page(
    form: CampaignForm, overview: CampaignOverview | None, *, refusals: tuple[str, ...] = (), status: int = 200
) -> BaseResponse:
    html = render_template(
        "pages/console/campaign_form.html",
        member=current_member(),
        form=form,
        overview=overview,
        slug_fixed=overview is not None and overview.status != CampaignStatus.DRAFT,
        refusals=refusals,
        settings_channels=_channels_with_settings(),
        cap_guides=CAP_GUIDES,
        default_hint=default_hint,
        policies=built_in_explanations(),
        rule_channels=[(channel, rule_field(channel)) for channel in registered()],
    )
    return Response(html, status=status)


# -- the overview, states and rollbacks --------------------------------------------------------------


@bp.get("/<slug>")
@staff_required()
def overview(slug: str) -> BaseResponse:
    return _overview_page(slug)


@bp.post("/<slug>/status")
@staff_required(Role.MARKETER)
def status(slug: str) -> BaseResponse:
    form = StatusForm()
    if not form.validate_on_submit():
        return _overview_page(slug, status_form=form, status=422)
    try:
        wanted = CampaignStatus(form.status.data)
    except ValueError:
        return _overview_page(slug, status_form=form, refusals=(_("Choose one of the buttons."),), status=422)
    if wanted is CampaignStatus.ENDED and not form.ending_confirmed(slug):
        return _overview_page(slug, status_form=form, status=422)
    reason = (form.reason.data or "").strip()
    try:
        changed = set_status(current_runtime(), slug, wanted, staff_actor(), reason)
    except ChangeRefused as refused:
        return _overview_page(slug, status_form=form, refusals=refused.reasons, status=422)
    log.info("campaign %s set to %s by %s", slug, wanted.value, staff_actor().name)
    done = _("The campaign is %(status)s now.", status=wanted.value)
    flash(f"{done} {SWEEPER_SENDS}" if changed.left_to_sweeper else done, _DONE_CATEGORY)
    return redirect(url_for("campaigns_console.overview", slug=slug), code=303)


@bp.post("/<slug>/templates/<name>/rollback")
@staff_required(Role.MARKETER)
def rollback(slug: str, name: str) -> BaseResponse:
    form = RollbackForm()
    if not form.validate_on_submit():
        return _overview_page(slug, refusals=(_("Choose a version to roll back to."),), status=422)
    runtime = current_runtime()
    version = form.version.data or 0
    try:
        report = rollback_template(runtime.db, runtime.renderer, slug, name, version, staff_actor())
    except LookupError:  # the templates service's CampaignNotFound
        return error_response(404, str(_NOT_FOUND))
    if not report.accepted:
        return _overview_page(slug, refusals=report.refusals, status=422)
    stored = report.stored[0]
    log.info("campaign %s: %s v%s rolled back to v%s by %s", slug, name, stored.version, version, staff_actor().name)
    flash(
        _(
            "%(name)s: version %(number)s stored, a copy of version %(old)s.",
            name=name,
            number=stored.version,
            old=version,
        ),
        _DONE_CATEGORY,
    )
    return redirect(url_for("campaigns_console.overview", slug=slug), code=303)


@bp.get("/<slug>/usage")
@staff_required()
def usage(slug: str) -> BaseResponse:
    """Each cap of the campaign: its limit, what is used of it now, and when that frees up."""
    runtime = current_runtime()
    try:
        report = cap_usage(runtime.db, runtime.limiter, slug, runtime.clock.now())
    except CapsUnavailable as error:
        outage_log().failed("Redis", error)
        return error_response(503, _("The cap counters cannot be read right now (Redis is unreachable)."))
    html = render_template(
        "pages/console/campaign_usage.html", member=current_member(), report=report, rows=cap_rows(report)
    )
    return Response(html)


def _overview_page(
    slug: str, *, status_form: StatusForm | None = None, refusals: tuple[str, ...] = (), status: int = 200
) -> BaseResponse:
    runtime = current_runtime()
    overview = campaign_overview(runtime.db, slug)
    # What activation would refuse, shown before anyone presses the button.
    blockers = (
        activation_problems(runtime.db, runtime.renderer, slug, runtime.clock.now())
        if CampaignStatus.ACTIVE in overview.next_statuses
        else []
    )
    html = render_template(
        "pages/console/campaign.html",
        member=current_member(),
        campaign=overview,
        settings=overview.settings,
        status_form=status_form or StatusForm(formdata=None),
        rollback_form=RollbackForm(formdata=None),
        blockers=blockers,
        refusals=refusals,
        done=get_flashed_messages(category_filter=[_DONE_CATEGORY]),
    )
    return Response(html, status=status)


# -- helpers ---------------------------------------------------------------------------------------


def _utc(value: datetime | None) -> datetime | None:
    """A time typed on the staff member's clock, as the UTC instant it is. A time that clocks
    skip or show twice when they change is read as the first of the two (fold 0)."""
    return value.replace(tzinfo=staff_zone()).astimezone(UTC) if value is not None else None


def _local(value: datetime | None) -> datetime | None:
    return value.astimezone(staff_zone()).replace(tzinfo=None) if value is not None else None


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
