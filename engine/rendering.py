"""Render campaign templates (uploaded by marketers, so untrusted) in Jinja2's sandbox.

HTML templates are autoescaped, text templates are not; both run in an
ImmutableSandboxedEnvironment with StrictUndefined, so a template can neither
reach Python internals nor silently print nothing for a misspelt variable.
Compiled templates are cached by their source, which makes the send loop pay for
compiling a template version once, not once per message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import css_inline
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


class TemplateRenderer:
    def __init__(self) -> None:
        common: dict[str, Any] = {"undefined": StrictUndefined, "keep_trailing_newline": False}
        self._html = ImmutableSandboxedEnvironment(autoescape=True, **common)
        self._text = ImmutableSandboxedEnvironment(autoescape=False, **common)
        self._compile = lru_cache(maxsize=256)(self._compile_uncached)
        # Remote stylesheets are never fetched: rendering must not touch the network.
        self._inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)

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
        subject = " ".join(self.render(TemplateName.SUBJECT, sources[TemplateName.SUBJECT], context).split())
        if not subject:
            raise RenderError("subject.txt: renders to an empty subject")
        html = self.render(TemplateName.EMAIL_HTML, sources[TemplateName.EMAIL_HTML], context)
        if TemplateName.EMAIL_TEXT in sources:
            text = self.render(TemplateName.EMAIL_TEXT, sources[TemplateName.EMAIL_TEXT], context)
        else:
            text = get_text(html, _TEXT_FROM_HTML)
        try:
            inlined = self._inliner.inline(html)
        except ValueError as error:  # css_inline's InlineError: broken CSS the inliner cannot parse
            raise RenderError(f"email.html: cannot inline its CSS: {error}") from None
        return RenderedEmail(subject=subject[:MAX_SUBJECT_CHARS], html=inlined, text=text.strip() + "\n")

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

    def _compile_uncached(self, html: bool, source: str) -> Template:
        environment = self._html if html else self._text
        try:
            return environment.from_string(source)
        except TemplateError as error:
            line = getattr(error, "lineno", None)
            where = f" (line {line})" if line else ""
            raise RenderError(f"template syntax error{where}: {error}") from None
