"""Upload a campaign's templates: check every file, then store all of them or none.

Marketers upload `subject.txt`, `email.html`, `email.txt`, `sms.txt` and `landing.html`, one
by one or together in a zip, each also per language (`email.nl.html`, engine.template_files):
a file without a language is the campaign's default. Templates are untrusted: each one is parsed and rendered in the
renderer's own sandbox (engine.rendering), with a sample of what a real message prints,
within that sandbox's budgets. Then come the checks a person would otherwise make by eye:
only known variables, no scripts or forms in HTML, and what the campaign's consent policy
says a message must show (engine.policy.required_elements). Every reason is collected, so
one refusal lists everything to fix.
"""

from __future__ import annotations

import io
import re
import secrets
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser

from flask_babel import gettext
from jinja2 import TemplateSyntaxError, meta, nodes
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.db import Database
from engine.i18n import catalog_locales
from engine.models import Campaign, CampaignStatus, CampaignTemplate, TemplateName
from engine.policy import ConsentPolicy, PolicyError, RequiredElement, policy_for, required_elements
from engine.rendering import RenderError, TemplateRenderer, default_templates
from engine.services.composer import LANGUAGE_VALUES, locale_values
from engine.services.history import SYSTEM, Actor, EventAction, record_event
from engine.services.lookups import find_campaign
from engine.services.template_context import (
    LANDING_VALUES,
    VARIABLE_EXAMPLES,
    VARIABLE_MEANINGS,
    sample_campaign_context,
)
from engine.template_files import TemplateFile, TemplateFileNameError, file_name, resolve
from engine.video import REVEAL_AFTER_STEP, STEP_DONE_ATTRIBUTE

KiB = 1024

# -- budgets ------------------------------------------------------------------------------
MAX_TEMPLATE_BYTES: Mapping[str, int] = {
    TemplateName.SUBJECT: 1 * KiB,
    TemplateName.EMAIL_HTML: 256 * KiB,
    TemplateName.EMAIL_TEXT: 64 * KiB,
    TemplateName.SMS: 2 * KiB,
    TemplateName.LANDING: 256 * KiB,
}
# A zip holds at most one of each template: its unpacked size is at most their budgets together.
MAX_ZIP_UNCOMPRESSED_BYTES = sum(MAX_TEMPLATE_BYTES.values())
MAX_ZIP_BYTES = 1024 * KiB
MAX_ZIP_ENTRIES = 16
# What one upload may weigh in all (the console lets a request this large through, and no larger).
MAX_UPLOAD_BYTES = MAX_ZIP_BYTES + MAX_ZIP_UNCOMPRESSED_BYTES

# What a message template may print besides the campaign's values (engine.services.delivery's
# message_context), with sample values a real message could have: a longish name, a note (so
# that `{% if note %}` branches run), links as long as signed ones.
SAMPLE_MESSAGE_VALUES: Mapping[str, str] = {
    "sender_name": "Alexandra van den Berg",
    "note": "Thought of you when I saw this, see you Saturday!",
    "link": "https://offers.example.com/f/" + "x" * 64,
    "unsubscribe_link": "https://offers.example.com/u/" + "y" * 64,
    # engine.services.coupons: empty when the campaign has no coupons or its pool ran out.
    "coupon_code": "SPRING-7K3M9QX2HT",
}
# The longest values the send-to-friend form lets through (engine.text NAME_MAX, NOTE_MAX):
# a template must stay within the render budget with these too.
LONGEST_MESSAGE_VALUES: Mapping[str, str] = {
    **SAMPLE_MESSAGE_VALUES,
    "sender_name": "N" * 80,
    "note": "note " * 56,
    "coupon_code": "C" * 64,  # engine.services.coupons.MAX_CODE_LENGTH
}
MESSAGE_TEMPLATES = frozenset(
    {TemplateName.SUBJECT, TemplateName.EMAIL_HTML, TemplateName.EMAIL_TEXT, TemplateName.SMS}
)
EMAIL_PARTS = frozenset({TemplateName.SUBJECT, TemplateName.EMAIL_HTML, TemplateName.EMAIL_TEXT})

# Statements that pull in other files: a campaign template is one self-contained file.
_FORBIDDEN_STATEMENTS: Mapping[type[nodes.Node], str] = {
    nodes.Extends: "{% extends %}",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
}
# Files that operating systems add to the zips they make (Finder's resource forks, folder
# settings): not templates, not the marketer's doing, skipped rather than refused.
_OS_CLUTTER = re.compile(r"^(__MACOSX/.*|(.*/)?(\.DS_Store|Thumbs\.db|desktop\.ini))$")


@dataclass(frozen=True)
class StoredTemplate:
    name: str
    version: int

    def __post_init__(self) -> None:
        TemplateFile.parse(self.name)
        if self.version < 1:
            raise ValueError("template versions start at 1")


@dataclass(frozen=True)
class UploadReport:
    """What an upload did: the versions it stored, or why it stored nothing."""

    stored: tuple[StoredTemplate, ...] = ()
    refusals: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if bool(self.stored) == bool(self.refusals):
            raise ValueError("an upload either stores its files or is refused with reasons, not both or neither")

    @property
    def accepted(self) -> bool:
        return not self.refusals


def upload_templates(
    db: Database, renderer: TemplateRenderer, slug: str, files: Mapping[str, bytes], actor: Actor = SYSTEM
) -> UploadReport:
    """Check every file (templates, or zips of them) and store each as the next version of its
    template, all in one transaction; or store nothing and say why. Raises CampaignNotFound."""
    campaign = _read_campaign(db, slug)
    templates, refusals = unpack_upload(files)
    if not templates and not refusals:
        refusals.append("no template files were given")
    refusals.extend(_foreign_languages(campaign, templates))
    checker = TemplateChecker(renderer, campaign)
    for name, source in templates.items():
        if not _foreign_languages(campaign, {name: source}):
            refusals.extend(checker.check(name, source))
    if not refusals:
        refusals.extend(checker.check_together(templates))
    if not refusals and campaign.live:
        # A live campaign keeps speaking each of its languages: the files of a new language
        # go up together (one upload, or a zip), not one at a time with friends in between.
        refusals.extend(f"{problem} (the campaign is live)" for problem in language_gaps(campaign, templates))
    if not refusals and campaign.live and campaign.reveal_form == REVEAL_AFTER_STEP:
        refusals.extend(step_hook_gaps(renderer, campaign, templates))
    if refusals:
        return UploadReport(refusals=tuple(refusals))
    return _store(db, slug, templates, actor)


def _foreign_languages(campaign: CampaignSnapshot, templates: Mapping[str, str]) -> list[str]:
    """Files for a language the campaign does not speak: nobody would ever read them."""
    problems = []
    for name in templates:
        locale = TemplateFile.parse(name).locale
        if locale is not None and locale not in campaign.locales:
            problems.append(
                f"{name}: this campaign does not speak {locale!r} (its languages: {', '.join(campaign.locales)}); "
                f"add the language to the campaign first, or name the file for one of its languages"
            )
    return problems


# -- what the console shows -------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateVersion:
    name: str  # the file's name: `email.html`, or `email.nl.html` for one language
    version: int | None  # None: the campaign uses the default template
    uploaded_at: datetime | None
    requires: tuple[str, ...]  # what the campaign's policy requires this file to print
    locale: str | None = None  # the language of a per-language file


@dataclass(frozen=True)
class CampaignTemplates:
    slug: str
    name: str
    policy_name: str
    templates: tuple[TemplateVersion, ...]
    locales: tuple[str, ...] = ("en",)  # the campaign's languages, its default first
    # Languages that lack a file the campaign's own templates need (see language_gaps).
    gaps: tuple[str, ...] = ()
    # What its templates may print (variable_reference).
    variables: tuple[TemplateVariable, ...] = ()


def campaign_templates(db: Database, slug: str) -> CampaignTemplates:
    """Each template file of a campaign, at its current version. Raises CampaignNotFound."""
    with db.reading() as session:
        campaign = find_campaign(session, slug, with_templates=True)
        try:
            policy: ConsentPolicy | None = policy_for(campaign.policy_name, campaign.policy_settings)
        except PolicyError:
            policy = None
        current = campaign.current_templates()
        # Each template's default file, then its files per language, in the campaign's order.
        locales = tuple(campaign.locales or ("en",))
        order = {locale: position for position, locale in enumerate(locales)}
        names = [name.value for name in TemplateName]
        names += sorted(
            (name for name in current if TemplateFile.parse(name).locale is not None),
            key=lambda n: (
                list(TemplateName).index(TemplateFile.parse(n).template),
                order.get(TemplateFile.parse(n).locale or "", 99),
                n,
            ),
        )
        rows = []
        for name in names:
            template = current.get(name)
            file = TemplateFile.parse(name)
            requires = tuple(e.describe() for e in required_elements(policy, file.template)) if policy else ()
            rows.append(
                TemplateVersion(
                    name=name,
                    version=template.version if template else None,
                    uploaded_at=template.created_at if template else None,
                    requires=requires,
                    locale=file.locale,
                )
            )
        gaps = tuple(language_gaps(campaign_snapshot(campaign), {}))
        variables = variable_reference(sample_campaign_context(campaign))
        return CampaignTemplates(
            campaign.slug, campaign.name, campaign.policy_name, tuple(rows), locales, gaps, variables
        )


# -- what a template may print ----------------------------------------------------------------


def template_variables(template: str, campaign_values: Mapping[str, object]) -> frozenset[str]:
    """The values a template (`email.html`, ...) of a campaign with these values may print: the
    campaign's, its language's; a message's also its sender, note, code and links; the landing
    page's also its video. What the checks allow, and what the templates page documents."""
    names = set(campaign_values) | set(LANGUAGE_VALUES)
    if template in MESSAGE_TEMPLATES:
        names |= set(SAMPLE_MESSAGE_VALUES)
    if template == TemplateName.LANDING:
        names |= set(LANDING_VALUES)
    return frozenset(names)


@dataclass(frozen=True)
class TemplateVariable:
    name: str
    meaning: str
    example: str
    templates: tuple[str, ...]  # the template files that may print it


def variable_reference(campaign_values: Mapping[str, str]) -> tuple[TemplateVariable, ...]:
    """Every value a template of this campaign may print, with what it holds, an example (the
    campaign's own value, a sample, or how it is used) and the templates it exists in; in the
    order: the campaign's values, the message's, the language's, the landing page's. Raises
    KeyError for a value VARIABLE_MEANINGS does not explain (a test sees that first)."""
    in_templates = {template: template_variables(template, campaign_values) for template in TemplateName}
    order = [*campaign_values, *SAMPLE_MESSAGE_VALUES, *LANGUAGE_VALUES, *LANDING_VALUES]
    return tuple(
        TemplateVariable(
            name=name,
            meaning=str(VARIABLE_MEANINGS[name]),
            example=_example(name, campaign_values),
            templates=tuple(t.value for t in TemplateName if name in in_templates[t]),
        )
        for name in dict.fromkeys(order)
    )


def _example(name: str, campaign_values: Mapping[str, str]) -> str:
    if name in VARIABLE_EXAMPLES:
        return VARIABLE_EXAMPLES[name]
    value = str(campaign_values.get(name) or SAMPLE_MESSAGE_VALUES.get(name) or "")
    return value if len(value) <= 80 else value[:79] + "…"


def starter_kit() -> bytes:
    """A zip of the default templates (templates/campaign/), at its top level as the upload wants
    them: what a marketer starts their own templates from, and may upload back as it is."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, source in default_templates().items():
            archive.writestr(name, source)
    return buffer.getvalue()


# -- the campaign, as the checks need it ----------------------------------------------------


@dataclass(frozen=True)
class CampaignSnapshot:
    """What the checks read from a campaign, loaded once and used outside any transaction."""

    slug: str
    policy_name: str
    policy: ConsentPolicy | None
    policy_problem: str | None
    context: Mapping[str, str]
    own_sources: Mapping[str, str]  # by file name: `email.html`, `email.nl.html`
    sms_segment_limit: int
    sms_smart_encoding: bool
    locales: tuple[str, ...] = ("en",)  # its default first
    address_form: str = "informal"
    live: bool = False  # active or paused: friends may be getting its messages
    reveal_form: str = ""  # what its landing page's form waits for (engine.video REVEAL_*)

    def sources_with(self, uploaded: Mapping[str, str], locale: str | None = None) -> dict[str, str]:
        """The templates messages in `locale` (None: its default files) would render with once
        `uploaded` is stored (as Campaign.template_sources: the language's file, else the
        default file, else the built-in one; an own HTML email without a text part as specific
        gets one derived from the HTML)."""
        return dict(resolve({**self.own_sources, **uploaded}, default_templates(), locale).sources)

    def language_values(self, locale: str | None) -> dict[str, object]:
        """`locale`, `gettext`, `ngettext` of a message in that language (None: the default)."""
        return locale_values(self.locales, self.address_form, locale)


def _read_campaign(db: Database, slug: str) -> CampaignSnapshot:
    with db.reading() as session:
        return campaign_snapshot(find_campaign(session, slug, with_templates=True))


def campaign_snapshot(campaign: Campaign) -> CampaignSnapshot:
    """What the checks read from this campaign (its templates loaded)."""
    try:
        policy, problem = policy_for(campaign.policy_name, campaign.policy_settings), None
    except PolicyError as error:
        policy, problem = None, str(error)
    return CampaignSnapshot(
        slug=campaign.slug,
        policy_name=campaign.policy_name,
        policy=policy,
        policy_problem=problem,
        # Rendered with a sample logo: a template's `{% if logo_url %}` is checked without one.
        context=sample_campaign_context(campaign),
        own_sources={name: template.body for name, template in campaign.current_templates().items()},
        sms_segment_limit=campaign.sms_segment_limit,
        sms_smart_encoding=campaign.sms_smart_encoding,
        locales=tuple(campaign.locales or ("en",)),
        address_form=campaign.address_form,
        live=campaign.status in (CampaignStatus.ACTIVE, CampaignStatus.PAUSED),
        reveal_form=str((campaign.landing_video or {}).get("reveal_form", "")),
    )


def current_template_problems(renderer: TemplateRenderer, campaign: Campaign) -> list[str]:
    """Every reason the templates this campaign sends with now (its own newest versions in each
    language, the defaults for the rest) would be refused if they were uploaded today: its
    policy, sender, segment limit or languages may have changed since they were stored; and
    each language a template of its own lacks (language_gaps)."""
    snapshot = campaign_snapshot(campaign)
    checker = TemplateChecker(renderer, snapshot)
    files = {name: source for name, source in default_templates().items() if name not in snapshot.own_sources}
    files |= snapshot.own_sources
    problems = [problem for name, source in files.items() for problem in checker.check(name, source)]
    problems += language_gaps(snapshot, {})
    if problems:
        return problems
    return [problem for locale in snapshot.locales for problem in checker.check_sending(locale)]


def language_gaps(campaign: CampaignSnapshot, uploaded: Mapping[str, str]) -> list[str]:
    """The languages of the campaign that lack a template file of their own, once `uploaded`
    is stored. A template the campaign has no file of speaks every language (the built-in
    default, translated); once it has its own file of it, in any language, each of its
    languages needs one: the file without a language counts for its first (default)
    language, `NAME.LOCALE.EXT` for each of the others, and a file that is the built-in
    default unchanged (as the demo stores them) for all. The text part of an e-mail is not
    needed where that language has its own HTML part (its text is derived from it). Without
    this, friends who speak another language would get the campaign's own words in the
    default language, or one part of an e-mail in one language and the rest in another."""
    own = {**campaign.own_sources, **uploaded}
    defaults = default_templates()
    by_template: dict[str, set[str | None]] = {}
    for name in own:
        file = TemplateFile.parse(name)
        by_template.setdefault(file.template, set()).add(file.locale)
    gaps = []
    for template in TemplateName:
        has = by_template.get(template)
        if not has or own.get(template) == defaults.get(template):
            continue
        for position, locale in enumerate(campaign.locales):
            if locale in has or (position == 0 and None in has):
                continue
            if template == TemplateName.EMAIL_TEXT and locale in by_template.get(TemplateName.EMAIL_HTML, set()):
                continue
            covered = f"{template} (for {campaign.locales[0]}) or " if position == 0 else ""
            gaps.append(
                f"{template} has no {locale} version: upload {covered}{file_name(template, locale)} "
                f"(the campaign has its own {template}, and speaks {', '.join(campaign.locales)})"
            )
    return gaps


def step_hook_gaps(renderer: TemplateRenderer, campaign: CampaignSnapshot, uploaded: Mapping[str, str]) -> list[str]:
    """The languages whose landing page, once `uploaded` is stored, has no step that reveals
    the send-to-friend form (a button or link carrying STEP_DONE_ATTRIBUTE, as rendered with
    sample values), for a campaign whose form waits for one (REVEAL_AFTER_STEP)."""
    checker = TemplateChecker(renderer, campaign)
    gaps = []
    for position, locale in enumerate(campaign.locales):
        name = file_name(TemplateName.LANDING, None if position == 0 else locale)
        source = campaign.sources_with(uploaded, locale)[TemplateName.LANDING]
        try:
            rendered = renderer.render(name, source, checker.sample_context(name, locale=locale))
        except RenderError:
            continue  # refused for that reason already, by the template checks
        if not has_step_hook(rendered):
            gaps.append(
                gettext(
                    "the landing page in %(locale)s has no step that shows the send-to-friend form, which is set "
                    "to wait for one: give a button or link of the landing template the attribute %(attribute)s "
                    "(docs/landing-video.md), or let the form show always",
                    locale=locale,
                    attribute=STEP_DONE_ATTRIBUTE,
                )
            )
    return gaps


class _StepHookFinder(HTMLParser):
    """Whether a button, or a link with an address, carries STEP_DONE_ATTRIBUTE: something a
    visitor can reach and press with the keyboard as well as the mouse."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {attribute for attribute, _ in attrs}
        if STEP_DONE_ATTRIBUTE in names and (tag == "button" or (tag == "a" and "href" in names)):
            self.found = True


def has_step_hook(html: str) -> bool:
    finder = _StepHookFinder()
    finder.feed(html)
    finder.close()
    return finder.found


def rollback_template(
    db: Database, renderer: TemplateRenderer, slug: str, name: str, version: int, actor: Actor = SYSTEM
) -> UploadReport:
    """Store an earlier version's body as the template's next version (versions never change,
    so a rollback is a new version), checked as an upload would be. Raises CampaignNotFound."""
    with db.reading() as session:
        campaign = find_campaign(session, slug, with_templates=True)
        snapshot = campaign_snapshot(campaign)
        wanted = next((t for t in campaign.templates if t.name == name and t.version == version), None)
        current = campaign.current_templates().get(name)
        body = wanted.body if wanted else ""
    if wanted is None:
        return UploadReport(refusals=(f"{slug} has no version {version} of {name}",))
    if current is not None and current.version == version:
        return UploadReport(refusals=(f"version {version} of {name} is already the current one",))
    checker = TemplateChecker(renderer, snapshot)
    refusals = checker.check(name, body) or checker.check_together({name: body})
    if not refusals and snapshot.live and snapshot.reveal_form == REVEAL_AFTER_STEP:
        refusals = step_hook_gaps(renderer, snapshot, {name: body})
    if refusals:
        return UploadReport(refusals=tuple(refusals))
    reason = f"{name} rolled back to the body of version {version}"
    return _store(db, slug, {name: body}, actor, action=EventAction.TEMPLATE_ROLLED_BACK, reason=reason)


def add_template_versions(session: Session, campaign: Campaign, files: Mapping[str, str]) -> list[CampaignTemplate]:
    """Store each file as the next version of its template (per language: `email.nl.html` is a
    template of its own); earlier versions stay as they were."""
    current = campaign.current_templates()
    added = []
    for name, body in files.items():
        TemplateFile.parse(name)  # refuses a name that is not one of ours
        version = current[name].version + 1 if name in current else 1
        template = CampaignTemplate(campaign=campaign, name=name, version=version, body=body)
        session.add(template)
        added.append(template)
    return added


def _store(
    db: Database,
    slug: str,
    templates: Mapping[str, str],
    actor: Actor,
    *,
    action: EventAction = EventAction.TEMPLATES_UPLOADED,
    reason: str = "",
) -> UploadReport:
    try:
        with db.transaction() as session:
            # Locked, so that two uploads at once number their versions one after the other.
            campaign = find_campaign(session, slug, with_templates=True, for_update=True)
            before = {name: template.version for name, template in campaign.current_templates().items()}
            added = add_template_versions(session, campaign, templates)
            stored = tuple(StoredTemplate(t.name, t.version) for t in added)
            # The history names versions, not bodies: the bodies stay in campaign_templates.
            changes = {t.name: [before.get(t.name), t.version] for t in added}
            record_event(session, campaign.id, actor, action, changes, reason)
    except IntegrityError:
        return UploadReport(refusals=("another upload to this campaign happened at the same moment; try again",))
    return UploadReport(stored=stored)


# -- files and zips ---------------------------------------------------------------------------


def unpack_upload(files: Mapping[str, bytes]) -> tuple[dict[str, str], list[str]]:
    """The templates in these files (zips unpacked), as text by template name; and the reasons
    any file cannot be one."""
    templates: dict[str, str] = {}
    refusals: list[str] = []
    for upload_name, data in files.items():
        if upload_name.lower().endswith(".zip"):
            entries, problems = _unzip(upload_name, data)
            refusals.extend(problems)
        else:
            entries = [_Entry("", upload_name, data)]
        for entry in entries:
            problem = (
                _name_problem(entry.name)
                or _size_problem(entry.name, len(entry.content))
                or (f"{entry.name} is given twice" if _stored_name(entry.name) in templates else None)
            )
            text = ""
            if problem is None:
                text, problem = _decode(entry.name, entry.content)
            if problem is None:
                templates[_stored_name(entry.name)] = text
            else:
                refusals.append(f"{entry.origin}: {problem}" if entry.origin else problem)
    return templates, refusals


@dataclass(frozen=True)
class _Entry:
    origin: str  # the zip it came from; empty for a file uploaded on its own
    name: str
    content: bytes


def _name_problem(name: str) -> str | None:
    """Why this is no template file name: not one of ours, or for a language nobody translated."""
    try:
        TemplateFile.parse(name, catalog_locales())
    except TemplateFileNameError as error:
        return str(error)
    return None


def _stored_name(name: str) -> str:
    """A file's name as stored: its language in lower case (`email.NL.html` is `email.nl.html`)."""
    return TemplateFile.parse(name).file_name


def _budget(name: str) -> int:
    """A file's size budget: its template's, in any language."""
    return MAX_TEMPLATE_BYTES[TemplateFile.parse(name).template]


def _size_problem(name: str, size: int) -> str | None:
    if size > _budget(name):
        return f"{name} is {size:,} bytes; it may be at most {_budget(name):,}"
    return None


def _decode(name: str, content: bytes) -> tuple[str, str | None]:
    try:
        text = content.decode("utf-8-sig")  # a byte-order mark, as Windows editors write, is dropped
    except UnicodeDecodeError as error:
        return "", f"{name} is not UTF-8 text (byte {content[error.start]:#04x} at position {error.start})"
    if "\x00" in text:
        return "", f"{name} contains NUL characters: it is not a text file"
    return text, None


def _unzip(zip_name: str, data: bytes) -> tuple[list[_Entry], list[str]]:
    """The files in the zip, and what is wrong with it.
    Sizes are checked from the zip's headers before anything is unpacked, and reading is
    capped as well, since headers can lie: a zip bomb unpacks no further than the budget."""
    if len(data) > MAX_ZIP_BYTES:
        return [], [f"{zip_name} is {len(data):,} bytes; a zip may be at most {MAX_ZIP_BYTES:,}"]
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError):
        return [], [f"{zip_name} is not a readable zip file"]
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            return [], [f"{zip_name} holds {len(infos)} entries; a zip may hold at most {MAX_ZIP_ENTRIES}"]
        problems = list(_zip_layout_problems(zip_name, infos))
        if problems:
            return [], problems
        return _read_entries(zip_name, archive, [i for i in infos if not _OS_CLUTTER.match(i.filename)])


def _zip_layout_problems(zip_name: str, infos: Iterable[zipfile.ZipInfo]) -> Iterator[str]:
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        if _OS_CLUTTER.match(name):
            continue
        if info.is_dir():
            yield f"{zip_name}: {name!r} is a folder; put the template files at the top of the zip, with no folders"
        elif "/" in name or "\\" in name or ".." in name or ":" in name:
            yield f"{zip_name}: {name!r} has a path; put the template files at the top of the zip, with no folders"
        elif name in seen or (not _name_problem(name) and _stored_name(name) in seen):
            yield f"{zip_name}: {name} is in the zip twice"
        elif info.flag_bits & 0x1:
            yield f"{zip_name}: {name} is encrypted"
        else:
            problem = _name_problem(name) or _size_problem(name, info.file_size)
            if problem:
                yield f"{zip_name}: {problem}"
        seen.add(_stored_name(name) if not _name_problem(name) else name)
        total += info.file_size
    if total > MAX_ZIP_UNCOMPRESSED_BYTES:
        yield f"{zip_name} unpacks to {total:,} bytes; a zip may unpack to at most {MAX_ZIP_UNCOMPRESSED_BYTES:,}"


def _read_entries(
    zip_name: str, archive: zipfile.ZipFile, infos: Iterable[zipfile.ZipInfo]
) -> tuple[list[_Entry], list[str]]:
    entries: list[_Entry] = []
    problems: list[str] = []
    for info in infos:
        budget = _budget(info.filename)
        try:
            with archive.open(info) as member:
                content = member.read(budget + 1)  # one byte more than allowed tells a lying header
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, EOFError, OSError) as error:
            problems.append(f"{zip_name}: {info.filename} cannot be unpacked ({error})")
            continue
        if len(content) > budget:
            problems.append(f"{zip_name}: {info.filename} unpacks to more than {budget:,} bytes")
            continue
        entries.append(_Entry(zip_name, info.filename, content))
    return entries, problems


# -- the checks -----------------------------------------------------------------------------


class TemplateChecker:
    """Checks templates for one campaign, in the renderer's own sandbox."""

    def __init__(self, renderer: TemplateRenderer, campaign: CampaignSnapshot) -> None:
        self._renderer = renderer
        self._campaign = campaign

    def allowed_variables(self, name: str) -> frozenset[str]:
        """What a template may print: the landing page knows the campaign; messages also know
        their sender, note and links. Both know their language (its `locale`, and `gettext`
        and `ngettext`, which {% trans %} calls). Plus the sandbox's globals (range, _...)."""
        names = template_variables(TemplateFile.parse(name).template, self._campaign.context)
        return frozenset(names | set(self._renderer.environment(name).globals))

    def sample_context(
        self, name: str, values: Mapping[str, str] = SAMPLE_MESSAGE_VALUES, locale: str | None = None
    ) -> dict[str, object]:
        """What a message in `locale` (the file's own language, else the campaign's default)
        would give the template to print, with sample values."""
        file = TemplateFile.parse(name)
        context: dict[str, object] = dict(self._campaign.context)
        context.update(self._campaign.language_values(locale or file.locale))
        if file.template in MESSAGE_TEMPLATES:
            context.update(values)
        if file.template == TemplateName.LANDING:
            context.update(LANDING_VALUES)
        return context

    def check(self, name: str, source: str) -> list[str]:
        """Every reason this one template file cannot be stored (empty: it can)."""
        try:
            tree = self._renderer.parse(name, source)
        except TemplateSyntaxError as error:
            return [f"{name}, line {error.lineno}: syntax error: {error.message}"]
        problems = list(_forbidden_statements(name, tree))
        try:
            used = meta.find_undeclared_variables(tree)
        except TemplateSyntaxError as error:  # found while compiling: a filter or test that does not exist
            return [*problems, f"{name}, line {error.lineno}: syntax error: {error.message}"]
        unknown = sorted(used - self.allowed_variables(name))
        if unknown:
            problems.append(
                f"{name}: unknown variables {', '.join(unknown)}; a template may use "
                f"{', '.join(sorted(self.allowed_variables(name) - set(self._renderer.environment(name).globals)))}"
            )
        if problems:
            return problems  # rendering would only fail on the same things
        try:
            rendered = self._renderer.render(name, source, self.sample_context(name))
            self._renderer.render(name, source, self.sample_context(name, LONGEST_MESSAGE_VALUES))
        except RenderError as error:
            return [str(error) if str(error).startswith(name) else f"{name}: {error}"]
        if name.endswith(".html"):
            problems.extend(_html_problems(name, _static_text(self._renderer, name, source), rendered))
        problems.extend(self._missing_elements(name, source, rendered))
        return problems

    def check_together(self, templates: Mapping[str, str]) -> list[str]:
        """The message as it will go out in each language these files are for, once they are
        stored: subject, HTML (its CSS inlined) and text together, and the text message within
        the campaign's segment limit."""
        groups: dict[str | None, set[str]] = {}
        for name in templates:
            file = TemplateFile.parse(name)
            groups.setdefault(file.locale, set()).add(file.template)
        return [
            problem for locale, changed in groups.items() for problem in self._check_message(locale, templates, changed)
        ]

    def check_sending(self, locale: str) -> list[str]:
        """The campaign's messages in `locale` as they would go out now."""
        return self._check_message(locale, {}, set(TemplateName))

    def _check_message(self, locale: str | None, uploaded: Mapping[str, str], changed: set[str]) -> list[str]:
        sources = self._campaign.sources_with(uploaded, locale)
        context = self.sample_context(TemplateName.EMAIL_HTML, locale=locale)
        in_locale = locale if locale and len(self._campaign.locales) > 1 else None
        try:
            if EMAIL_PARTS & changed:
                self._renderer.render_email(sources, context)
            if TemplateName.SMS in changed:
                self._renderer.render_sms(
                    sources,
                    context,
                    segment_limit=self._campaign.sms_segment_limit,
                    smart=self._campaign.sms_smart_encoding,
                )
        except RenderError as error:
            if in_locale:
                return [gettext("%(error)s (with sample values in %(locale)s)", error=error, locale=in_locale)]
            return [gettext("%(error)s (with sample values)", error=error)]
        return []

    def _missing_elements(self, name: str, source: str, rendered: str) -> list[str]:
        """What the campaign's policy requires that this template does not print. Each required
        variable is given a unique marker and looked for in the output (for HTML: in its text
        and attributes, not its comments), so a variable in a comment or in a branch that is
        never taken does not count."""
        if self._campaign.policy is None:
            return [f"{name}: the campaign's consent policy is invalid ({self._campaign.policy_problem})"]
        required = required_elements(self._campaign.policy, TemplateFile.parse(name).template)
        if not required:
            return []
        markers = {v: f"flmark{secrets.token_hex(6)}{v.replace('_', '')}" for e in required for v in e.variables}
        try:
            marked = self._renderer.render(name, source, {**self.sample_context(name), **markers})
        except RenderError as error:
            return [f"{name}: {error}"]
        shown = _shown_text(marked) if name.endswith(".html") else marked
        said = _shown_text(rendered) if name.endswith(".html") else rendered
        missing = [e for e in required if not _satisfied(e, shown, said, markers)]
        if not missing:
            return []
        return [
            f"{name} lacks what the campaign's {self._campaign.policy_name} policy requires: "
            + "; ".join(e.describe() for e in missing)
        ]


def _satisfied(element: RequiredElement, shown: str, said: str, markers: Mapping[str, str]) -> bool:
    if any(markers[variable] in shown for variable in element.variables):
        return True
    return any(re.search(rf"\b{_phrase(word)}\b", said) for word in element.words)


def _phrase(words: str) -> str:
    """A pattern for these words as written, with any whitespace between them (a template's
    line breaks and double spaces, which the SMS renderer collapses)."""
    return r"\s+".join(re.escape(word) for word in words.split())


def _forbidden_statements(name: str, tree: nodes.Template) -> Iterator[str]:
    for kind, statement in _FORBIDDEN_STATEMENTS.items():
        for node in tree.find_all(kind):
            yield f"{name}, line {node.lineno}: {statement} is not allowed; a template is one self-contained file"


def _static_text(renderer: TemplateRenderer, name: str, source: str) -> str:
    """The template's own text with its tags taken out, lines kept where they were: the HTML
    written into the template, including branches the sample does not take."""
    parts = []
    for _, kind, value in renderer.environment(name).lex(source):
        parts.append(value if kind == "data" else "\n" * value.count("\n"))
    return "".join(parts)


# -- HTML -----------------------------------------------------------------------------------

# Mail clients strip these or mark the message as dangerous; on the landing page they would
# run (or post) on our own site, beside the send-to-friend form. <base> would move every
# relative link of the page, ours included, to another site.
_FORBIDDEN_TAGS = frozenset({"script", "iframe", "frame", "frameset", "form", "object", "embed", "applet", "base"})
_URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "background", "poster", "xlink:href", "data"})
_SCRIPT_SCHEMES = ("javascript:", "vbscript:", "data:text/html")
# Attributes that attach a button or field to a form elsewhere on the page (the landing page's
# own send-to-friend form) or send that form somewhere else: `form`, `formaction`, `formmethod`...
_FORM_OWNER_ATTRIBUTE = re.compile(r"^form")
# SVG animations that rewrite a link once the page has been checked: <animate>/<set> of href.
_ANIMATION_TAGS = frozenset({"animate", "set"})
_LINK_ATTRIBUTES = frozenset({"href", "xlink:href"})


@dataclass
class _HtmlFinding:
    line: int
    problem: str


class _HtmlInspector(HTMLParser):
    """Finds scripts, frames, forms, redirects, inline event handlers and javascript: links.
    (The parser gives tag and attribute names in lower case and attribute values unescaped.)"""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.findings: list[_HtmlFinding] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        line = self.getpos()[0]
        if tag in _FORBIDDEN_TAGS:
            self.findings.append(_HtmlFinding(line, f"<{tag}> is not allowed"))
        values = {attribute: (value or "").strip().lower() for attribute, value in attrs}
        if tag == "meta" and values.get("http-equiv") == "refresh":
            self.findings.append(_HtmlFinding(line, "<meta http-equiv=refresh>: redirects are not allowed"))
        if tag in _ANIMATION_TAGS and values.get("attributename") in _LINK_ATTRIBUTES:
            target = values["attributename"]
            self.findings.append(_HtmlFinding(line, f"<{tag} attributename={target}>: animating links is not allowed"))
        for attribute, value in attrs:
            if _FORM_OWNER_ATTRIBUTE.match(attribute):
                self.findings.append(_HtmlFinding(line, f"<{tag} {attribute}>: form attributes are not allowed"))
            elif attribute.startswith("on"):
                self.findings.append(_HtmlFinding(line, f"<{tag} {attribute}>: inline event handlers are not allowed"))
            elif attribute in _URL_ATTRIBUTES and _is_script_url(value or ""):
                self.findings.append(_HtmlFinding(line, f"<{tag} {attribute}>: script links are not allowed"))
            elif attribute == "style" and "javascript:" in (value or "").lower():
                self.findings.append(_HtmlFinding(line, f"<{tag} style>: script links are not allowed"))


def _is_script_url(value: str) -> bool:
    # Browsers ignore control characters and spaces inside a scheme ("java\tscript:").
    compact = "".join(ch for ch in value if ch > " ").lower()
    return compact.startswith(_SCRIPT_SCHEMES)


def _inspect(html: str) -> list[_HtmlFinding]:
    inspector = _HtmlInspector()
    inspector.feed(html)
    inspector.close()
    return inspector.findings


def _html_problems(name: str, static_html: str, rendered_html: str) -> list[str]:
    """Forbidden HTML in the template's own markup (with its line), and in what it renders to
    (which catches markup a template builds from strings)."""
    landing = TemplateFile.parse(name).template == TemplateName.LANDING
    why = "it would run on our site" if landing else "mail clients strip it or flag the message"
    in_source = _inspect(static_html)
    problems = {f"{name}, line {finding.line}: {finding.problem} ({why})": None for finding in in_source}
    seen = {finding.problem for finding in in_source}
    for finding in _inspect(rendered_html):
        if finding.problem not in seen:
            problems[f"{name}, in what it renders: {finding.problem} ({why})"] = None
    return list(problems)


class _ShownText(HTMLParser):
    """The text and attribute values of an HTML document, without comments, scripts and styles:
    where a reader (or a click) can find a link or an address."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden_depth += 1
        self.parts.extend(value for _, value in attrs if value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._hidden_depth:
            self._hidden_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.parts.append(data)


def _shown_text(html: str) -> str:
    parser = _ShownText()
    parser.feed(html)
    parser.close()
    return "\n".join(parser.parts)
