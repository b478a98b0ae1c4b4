"""Template file names: `NAME.EXT` (the default) and `NAME.LOCALE.EXT` (one language).

A campaign's templates are the files `subject.txt`, `email.html`, `email.txt`, `sms.txt` and
`landing.html` (engine.models.TemplateName). Each may also be given for one of the campaign's
languages, with the locale between the name and the extension: `email.nl.html`,
`sms.fr.txt`. A campaign's languages are languages, not regions (engine.i18n), so a locale
here is a language code (`nl`, not `nl-BE`). A file without a locale is the campaign's
default, in its first language.

Which file a message in a language is rendered from, most specific first (`resolve`): the
campaign's file for that locale (`email.nl.html`), the campaign's default file
(`email.html`), the built-in default (which speaks every language with a catalogue). The
text part of an e-mail comes from the same level as its HTML part or is derived from that
HTML: a Dutch HTML part never travels with the default file's English text part.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum


class TemplateName(StrEnum):
    """The files a campaign's templates are made of; the uploaded file's name says which
    (engine.models exports it too)."""

    SUBJECT = "subject.txt"
    EMAIL_HTML = "email.html"
    EMAIL_TEXT = "email.txt"
    SMS = "sms.txt"
    LANDING = "landing.html"


# A locale as campaigns name theirs: a language code, letters only (so that a file name can
# never hold a path); capitals are taken and stored in lower case.
_LOCALE = re.compile(r"^[A-Za-z]{2,3}$")

# How specific a resolved file is: the higher, the closer to the message's language.
BUILT_IN, CAMPAIGN_DEFAULT, CAMPAIGN_LOCALE = 0, 1, 2


class TemplateFileNameError(ValueError):
    """A file name that is no template file; str() says why, naming the file."""


@dataclass(frozen=True)
class TemplateFile:
    """One template file: which template it is, and for which locale (None: the default)."""

    template: TemplateName
    locale: str | None = None

    @property
    def file_name(self) -> str:
        """As uploaded and as stored (`campaign_templates.name`)."""
        if self.locale is None:
            return self.template.value
        stem, _, extension = self.template.value.rpartition(".")
        return f"{stem}.{self.locale}.{extension}"

    @classmethod
    def parse(cls, file_name: str, known_locales: Collection[str] | None = None) -> TemplateFile:
        """The template file this name says, or TemplateFileNameError. With `known_locales`, a
        locale outside them is refused too (a language nobody can read it in)."""
        try:
            return cls(TemplateName(file_name))
        except ValueError:
            pass
        stem, dot, rest = file_name.partition(".")
        locale, dot2, extension = rest.rpartition(".")
        base = f"{stem}.{extension}"
        if not (dot and dot2 and locale) or base not in TemplateName.__members__.values():
            raise TemplateFileNameError(
                f"{file_name!r} is not a template file name; the file's name says which template it is: "
                f"{', '.join(TemplateName)}, or one of them for a language, such as email.nl.html (or a .zip of them)"
            )
        if not _LOCALE.match(locale):
            raise TemplateFileNameError(f"{file_name!r}: {locale!r} is not a language code such as nl or fr")
        if known_locales is not None and locale.lower() not in known_locales:
            known = ", ".join(sorted(known_locales))
            raise TemplateFileNameError(f"{file_name!r}: {locale!r} is not a language Fluister speaks ({known})")
        return cls(TemplateName(base), locale.lower())


def file_name(template: str, locale: str | None = None) -> str:
    """The file of `template` for `locale` (None: its default file)."""
    return TemplateFile(TemplateName(template), locale.lower() if locale else None).file_name


@dataclass(frozen=True)
class ResolvedSources:
    """The source of each template a message in one language renders with, and where each came
    from (BUILT_IN, CAMPAIGN_DEFAULT, CAMPAIGN_LOCALE), by template name."""

    sources: Mapping[str, str]
    levels: Mapping[str, int]
    # The campaign's own files used, by stored file name: what a message records as its versions.
    files: tuple[str, ...]


def resolve(own: Mapping[str, str], defaults: Mapping[str, str], locale: str | None) -> ResolvedSources:
    """The sources for a message in `locale` (None: the campaign's default files), from the
    campaign's own files by stored file name (`own`) and the built-in `defaults`: the locale's
    file, else the default file, else the built-in one. An e-mail whose HTML part is more
    specific than its text part gets its text derived from that HTML (the text is left out)."""
    sources: dict[str, str] = {}
    levels: dict[str, int] = {}
    files: list[str] = []
    for template in TemplateName:
        candidates = [(CAMPAIGN_DEFAULT, template.value)]
        if locale:
            candidates.insert(0, (CAMPAIGN_LOCALE, file_name(template, locale)))
        for level, name in candidates:
            if name in own:
                sources[template], levels[template] = own[name], level
                files.append(name)
                break
        else:
            if template in defaults:
                sources[template], levels[template] = defaults[template], BUILT_IN
    html, text = TemplateName.EMAIL_HTML, TemplateName.EMAIL_TEXT
    if levels.get(html, BUILT_IN) > levels.get(text, BUILT_IN):
        sources.pop(text, None)
        levels.pop(text, None)
        files = [name for name in files if TemplateFile.parse(name).template != text]
    return ResolvedSources(sources, levels, tuple(files))
