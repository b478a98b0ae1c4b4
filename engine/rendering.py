"""Render campaign templates (uploaded by marketers, so untrusted) in Jinja2's sandbox.

HTML templates are autoescaped, text templates are not; both run in an
ImmutableSandboxedEnvironment with StrictUndefined, so a template can neither
reach Python internals nor silently print nothing for a misspelt variable.
Compiled templates are cached by their source, which makes the send loop pay for
compiling a template version once, not once per message.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import css_inline
import markupsafe
from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.models.campaigns import TemplateName
from engine.sms import SegmentLimitExceeded, check_segments, smart_encode

DEFAULT_TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "campaign"
MAX_OUTPUT_CHARS = 512 * 1024
MAX_SUBJECT_CHARS = 200
# Links stay visible in a derived text part: "See the offer [https://…]" rather than a bare "See the offer".
_TEXT_FROM_HTML = ParserConfig(display_links=True)


class RenderError(ValueError):
    """A template failed to compile or render; str() says where and why."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


@cache
def default_templates() -> Mapping[str, str]:
    """The templates a campaign starts with, from `templates/campaign/` (read once per process)."""
    return MappingProxyType({name.value: (DEFAULT_TEMPLATE_DIR / name.value).read_text() for name in TemplateName})


@dataclass(frozen=True)
class EmailBatchTemplate:
    """An email rendered once, with placeholders for each recipient's own values.

    `slots` are (variable, raw placeholder, escaped placeholder): the raw one stands where
    the value was printed as text, the escaped one where HTML autoescaping printed it.
    """

    subject: str
    html: str
    text: str
    slots: tuple[tuple[str, str, str], ...]

    def substitutions(self, values: Mapping[str, Any]) -> dict[str, str]:
        """Placeholder -> this recipient's value, as the provider substitutes it in html and text."""
        result: dict[str, str] = {}
        for name, raw, escaped in self.slots:
            value = "" if values[name] is None else str(values[name])
            result[raw] = value
            result[escaped] = str(markupsafe.escape(value))
        return result

    def subject_for(self, values: Mapping[str, Any], *, cut: bool = True) -> str:
        subject = _collapse(_substitute(self.subject, self.substitutions(values)))
        return subject[:MAX_SUBJECT_CHARS] if cut else subject

    def render_for(self, values: Mapping[str, Any], *, cut_subject: bool = True) -> RenderedEmail:
        """What the provider will make of it for this recipient (tests and the proof use it)."""
        subs = self.substitutions(values)
        return RenderedEmail(
            self.subject_for(values, cut=cut_subject), _substitute(self.html, subs), _substitute(self.text, subs)
        )


def _slot_keys(slots: Mapping[str, _Slot]) -> tuple[tuple[str, str, str], ...]:
    return tuple((slot.name, slot.raw, slot.escaped) for slot in slots.values())


def _substitute(text: str, substitutions: Mapping[str, str]) -> str:
    for placeholder, value in substitutions.items():
        text = text.replace(placeholder, value)
    return text


def _collapse(text: str) -> str:
    return " ".join(text.split())


class _SlotMisuse(Exception):
    pass


class _Slot:
    """Stands in for a per-recipient value while a batch template renders.

    Printing it yields a placeholder (escaped or raw), testing it yields the truthiness
    of the recipients' values; anything else (filters that read it, comparisons,
    lookups, length) marks it misused, and the batch is rendered per recipient instead.
    """

    def __init__(self, name: str, truthy: bool, nonce: str) -> None:
        self.name = name
        self.truthy = truthy
        self.raw = f"%%fl{nonce}r{name}%%"
        self.escaped = f"%%fl{nonce}e{name}%%"
        self.raw_uses = 0
        self.escaped_uses = 0
        self.misused = False

    def __str__(self) -> str:
        self.raw_uses += 1
        return self.raw

    def __html__(self) -> str:
        self.escaped_uses += 1
        return self.escaped

    def __bool__(self) -> bool:
        return self.truthy

    def _misuse(self, *args: Any, **kwargs: Any) -> Any:
        self.misused = True
        raise _SlotMisuse(self.name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        self._misuse()

    __getitem__ = __len__ = __iter__ = __contains__ = _misuse
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _misuse  # type: ignore[assignment]
    __add__ = __radd__ = __mul__ = __rmul__ = __mod__ = __rmod__ = __format__ = _misuse  # type: ignore[assignment]
    __hash__ = object.__hash__


class TemplateRenderer:
    def __init__(self) -> None:
        common: dict[str, Any] = {"undefined": StrictUndefined, "keep_trailing_newline": False}
        self._html = ImmutableSandboxedEnvironment(autoescape=True, **common)
        self._text = ImmutableSandboxedEnvironment(autoescape=False, **common)
        self._compile = lru_cache(maxsize=256)(self._compile_uncached)
        # Remote stylesheets are never fetched: rendering must not touch the network.
        self._inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)
        # Placeholders carry a random part, so that nobody can type one into a note.
        self._nonce = secrets.token_hex(6)

    def render(self, name: str, source: str, context: Mapping[str, Any]) -> str:
        template = self._compile(name.endswith(".html"), source)
        try:
            output = template.render(context)
        except TemplateError as error:
            raise RenderError(f"{name}: {error}") from None
        except (ArithmeticError, LookupError, TypeError, ValueError) as error:
            raise RenderError(f"{name}: {type(error).__name__}: {error}") from None
        if len(output) > MAX_OUTPUT_CHARS:
            raise RenderError(f"{name}: output larger than {MAX_OUTPUT_CHARS} characters")
        return output

    def render_email(self, sources: Mapping[str, str], context: Mapping[str, Any]) -> RenderedEmail:
        """Subject, HTML with its CSS inlined (mail clients drop <style>), and a text part: the
        text template's, or derived from the HTML when there is none."""
        parts = self._email_parts(sources, context)
        return RenderedEmail(parts.subject[:MAX_SUBJECT_CHARS], self._inline(parts.html), parts.text)

    def _email_parts(self, sources: Mapping[str, str], context: Mapping[str, Any]) -> RenderedEmail:
        """The three parts before CSS inlining, the subject not yet cut to length."""
        subject = _collapse(self.render(TemplateName.SUBJECT, sources[TemplateName.SUBJECT], context))
        if not subject:
            raise RenderError("subject.txt: renders to an empty subject")
        html = self.render(TemplateName.EMAIL_HTML, sources[TemplateName.EMAIL_HTML], context)
        if TemplateName.EMAIL_TEXT in sources:
            text = self.render(TemplateName.EMAIL_TEXT, sources[TemplateName.EMAIL_TEXT], context)
        else:
            text = get_text(html, _TEXT_FROM_HTML)
        return RenderedEmail(subject, html, text.strip() + "\n")

    def _inline(self, html: str) -> str:
        try:
            return self._inliner.inline(html)
        except ValueError as error:  # css_inline's InlineError: broken CSS the inliner cannot parse
            raise RenderError(f"email.html: cannot inline its CSS: {error}") from None

    def render_sms(
        self, sources: Mapping[str, str], context: Mapping[str, Any], *, segment_limit: int, smart: bool = True
    ) -> str:
        """One line of text, within the campaign's segment limit (RenderError says why not)."""
        text = " ".join(self.render(TemplateName.SMS, sources[TemplateName.SMS], context).split())
        if smart:
            text = smart_encode(text)
        try:
            check_segments(text, segment_limit)
        except SegmentLimitExceeded as error:
            raise RenderError(f"sms.txt: {error}") from None
        return text

    def email_batch_template(
        self,
        sources: Mapping[str, str],
        shared: Mapping[str, Any],
        per_message: Mapping[str, Any],
    ) -> EmailBatchTemplate | None:
        """Render the email once for many recipients, with placeholders for what differs.

        `per_message` holds one recipient's values: they decide the truthiness of each
        placeholder (so `{% if note %}` takes the branch every recipient in this group
        takes) and are used to check the result. None when the templates do anything
        with a per-recipient value but print it (a filter, a comparison, a lookup):
        then every recipient is rendered on its own.
        """
        if TemplateName.EMAIL_TEXT not in sources:
            return None  # a text part derived from HTML decodes entities: not a substitution
        slots = {name: _Slot(name, bool(value), self._nonce) for name, value in per_message.items()}
        context = {**shared, **slots}
        try:
            subject = self.render(TemplateName.SUBJECT, sources[TemplateName.SUBJECT], context)
            html = self.render(TemplateName.EMAIL_HTML, sources[TemplateName.EMAIL_HTML], context)
            text = self.render(TemplateName.EMAIL_TEXT, sources[TemplateName.EMAIL_TEXT], context)
        except (RenderError, _SlotMisuse):
            return None
        output = subject + html + text
        for slot in slots.values():
            # Every time a value was turned into text, its placeholder must have reached the
            # output untouched; otherwise a filter changed it and substitution would be wrong.
            if (
                slot.misused
                or output.count(slot.raw) != slot.raw_uses
                or output.count(slot.escaped) != slot.escaped_uses
            ):
                return None
        probe = EmailBatchTemplate(subject=subject, html=html, text=text.strip() + "\n", slots=_slot_keys(slots))
        # The proof: this recipient's message, substituted, is what rendering them alone gives
        # (compared before CSS inlining, which re-serialises the HTML it is given).
        try:
            alone = self._email_parts(sources, {**shared, **per_message})
            inlined = self._inline(html)
        except RenderError:
            return None
        if probe.render_for(per_message, cut_subject=False) != alone:
            return None
        return replace(probe, html=inlined)

    def _compile_uncached(self, html: bool, source: str) -> Template:
        environment = self._html if html else self._text
        try:
            return environment.from_string(source)
        except TemplateError as error:
            line = getattr(error, "lineno", None)
            where = f" (line {line})" if line else ""
            raise RenderError(f"template syntax error{where}: {error}") from None
