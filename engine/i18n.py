"""Languages: which one a page or a message is written in, and the catalogs that say it.

Every word a person reads goes through gettext (Flask-Babel); the catalogs live in
`translations/<locale>/LC_MESSAGES/messages.po` and are compiled to `.mo` by `make translations`.

Which language:
- on a campaign's pages (the offer, the forward form, a friend's landing page, unsubscribe):
  an explicit choice (the `?lang=` switch, the form's `locale` field, a forward's stored
  locale) when the campaign offers it, else the visitor's `Accept-Language` among the
  campaign's locales, else the campaign's first locale (its default);
- elsewhere (the staff console, error pages outside a campaign): the signed-in user's own
  preference, else `Accept-Language` among the supported languages, else English.

Dutch speaks informally (je/jij) unless a campaign asks for the formal `u`: its address form
selects the catalog variant `nl@formal`, a complete catalog of its own. French uses `vous`,
the norm of French consumer copy, and English has no such choice.

Outside a request (a worker rendering a friend's message) `rendering_in()` sets the language
and time zone for a block. A pseudo-locale (the `pseudo_locale` setting, for tests) wraps and
accents every translated string, so a page with any text that did not pass through gettext
shows it plainly.
"""

from __future__ import annotations

import gettext as stdlib_gettext
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from babel import Locale, UnknownLocaleError
from flask import Flask, current_app, g, has_app_context, has_request_context, request
from flask_babel import Babel, Domain, get_locale, refresh
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from engine.resources import resource_dir

TRANSLATIONS_DIR = resource_dir("translations")
DOMAIN = "messages"
DEFAULT_LOCALE = "en"
# The languages Fluister ships complete catalogs for, in the order a menu lists them.
SUPPORTED_LOCALES: tuple[str, ...] = ("en", "nl", "fr")
# The variant (a locale modifier, as in `nl@formal`) a formal address form selects, for the
# languages whose default tone is informal.
FORMAL_MODIFIER = "formal"
FORMAL_VARIANTS: frozenset[str] = frozenset({"nl"})
# The app.config key that turns the pseudo-locale on (engine.create_app reads the setting).
PSEUDO_CONFIG_KEY = "FLUISTER_PSEUDO_LOCALE"

# Keys on flask.g: the language chosen for this request or block, and its time zone.
_LOCALE_KEY = "fluister_locale"
_TIME_ZONE_KEY = "fluister_time_zone"


class AddressForm(StrEnum):
    """How a campaign addresses consumers in languages that make the distinction (Dutch)."""

    INFORMAL = "informal"
    FORMAL = "formal"


class LocaleError(ValueError):
    """A locale nobody can render in; the message says which and what is available."""


# --- the supported set -------------------------------------------------------------------


def catalog_locales() -> tuple[str, ...]:
    """The languages that have a catalog in this copy of Fluister (variants such as
    `nl@formal` excluded): what a campaign's locales may be chosen from."""
    found = {
        path.parent.parent.name
        for path in TRANSLATIONS_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")
        if "@" not in path.parent.parent.name
    }
    found.add(DEFAULT_LOCALE)  # the source language: its strings are the msgids
    ordered = [code for code in SUPPORTED_LOCALES if code in found]
    return (*ordered, *sorted(found - set(ordered)))


def normalise_locale(value: str) -> str:
    """`nl`, `NL`, `nl-BE` and `nl_BE` as the catalog code they are written in (`nl`): a
    campaign's languages are languages, not regions (those are its phone regions)."""
    code = value.strip().replace("-", "_")
    if not re.fullmatch(r"[A-Za-z]{2,3}(_[A-Za-z0-9]{2,8})*", code):
        raise LocaleError(f"{value!r} is not a language code (such as nl, fr or en)")
    return code.split("_", 1)[0].lower()


def validate_locales(values: Iterable[str]) -> tuple[str, ...]:
    """A campaign's locales, checked: at least one, each with a catalog, none twice, in the
    order given (the first is the campaign's default)."""
    available = catalog_locales()
    result: list[str] = []
    for value in values:
        if not value.strip():
            continue
        code = normalise_locale(value)
        if code not in available:
            raise LocaleError(f"there is no translation for {value!r}; available: {', '.join(available)}")
        if code in result:
            raise LocaleError(f"{code!r} is listed twice")
        result.append(code)
    if not result:
        raise LocaleError(f"a campaign needs at least one language ({', '.join(available)})")
    return tuple(result)


def catalog_locale(language: str, address_form: str = AddressForm.INFORMAL) -> str:
    """The catalog a language and a campaign's address form render with: `nl@formal` for
    formal Dutch, the language itself otherwise."""
    if address_form == AddressForm.FORMAL and language in FORMAL_VARIANTS:
        return f"{language}@{FORMAL_MODIFIER}"
    return language


# --- negotiation ---------------------------------------------------------------------------


def accepted_languages(header: str | None) -> LanguageAccept:
    """An `Accept-Language` header, parsed (an unreadable one accepts nothing)."""
    return parse_accept_header(header or "", LanguageAccept)


def _best_accepted(accept: LanguageAccept, offered: Sequence[str]) -> str | None:
    """The most preferred language of `accept` that is offered, `nl-NL` counting as `nl`
    (Werkzeug's best_match would take an exact `en;q=0.5` over `nl-NL;q=1`)."""
    for value, quality in accept:  # highest quality first
        if quality <= 0 or value == "*":
            continue
        chosen = _offered(value, offered)
        if chosen is not None:
            return chosen
    return None


def _offered(code: str | None, offered: Sequence[str]) -> str | None:
    if not code:
        return None
    try:
        normalised = normalise_locale(code)
    except LocaleError:
        return None
    return normalised if normalised in offered else None


def negotiate_campaign_locale(
    campaign_locales: Sequence[str], *, explicit: str | None = None, accept: LanguageAccept | None = None
) -> str:
    """The language a campaign page speaks: an explicit choice the campaign offers, else the
    best of `Accept-Language` among its locales (`nl-BE` counts for `nl`), else its first."""
    if not campaign_locales:
        return DEFAULT_LOCALE
    chosen = _offered(explicit, campaign_locales)
    if chosen is not None:
        return chosen
    if accept is not None:
        best = _best_accepted(accept, campaign_locales)
        if best is not None:
            return best
    return campaign_locales[0]


def negotiate_staff_locale(preference: str | None, accept: LanguageAccept | None = None) -> str:
    """The language of a page outside a campaign: the person's own preference, else the best
    of `Accept-Language` among the supported languages, else English."""
    available = catalog_locales()
    chosen = _offered(preference, available)
    if chosen is not None:
        return chosen
    if accept is not None:
        best = _best_accepted(accept, available)
        if best is not None:
            return best
    return DEFAULT_LOCALE


# --- in a request, and outside one ------------------------------------------------------


def use_locale(language: str, address_form: str = AddressForm.INFORMAL) -> None:
    """Render the rest of this request in `language` (a campaign view calls this once it
    knows the campaign and the visitor's choice); strings translated before are not redone."""
    setattr(g, _LOCALE_KEY, catalog_locale(language, address_form))
    refresh()


@contextmanager
def rendering_in(locale: str, time_zone: str | None = None) -> Iterator[None]:
    """Translate and format in `locale` (a catalog code: `nl`, `nl@formal`, see
    catalog_locale) and `time_zone` (an IANA name; UTC when None) inside the block. Needs an
    app context: without one gettext would quietly answer in English."""
    if not has_app_context():
        raise RuntimeError("rendering_in() needs an app context")
    try:
        Locale.parse(locale)
    except (ValueError, UnknownLocaleError) as error:
        raise LocaleError(f"cannot render in {locale!r}: {error}") from None
    previous = (g.get(_LOCALE_KEY), g.get(_TIME_ZONE_KEY))
    setattr(g, _LOCALE_KEY, locale)
    setattr(g, _TIME_ZONE_KEY, time_zone or "UTC")
    refresh()
    try:
        yield
    finally:
        setattr(g, _LOCALE_KEY, previous[0])
        setattr(g, _TIME_ZONE_KEY, previous[1])
        refresh()


def current_language() -> str:
    """The language being rendered, without its variant: what `<html lang>` and
    `Content-Language` say (`nl` for formal Dutch too)."""
    locale = get_locale()
    return locale.language if locale is not None else DEFAULT_LOCALE


def _user_attribute(name: str) -> str | None:
    """The signed-in staff member's own setting, if anyone is signed in."""
    if not has_request_context():
        return None
    try:
        from flask_login import current_user
    except ImportError:  # pragma: no cover - flask_login is a dependency
        return None
    user = current_user
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    value = getattr(user, name, None)
    return value if isinstance(value, str) and value else None


def _select_locale() -> str:
    chosen = g.get(_LOCALE_KEY)
    if chosen:
        return str(chosen)
    if not has_request_context():
        return DEFAULT_LOCALE
    return negotiate_staff_locale(_user_attribute("locale"), request.accept_languages)


def _select_time_zone() -> str:
    chosen = g.get(_TIME_ZONE_KEY)
    if chosen:
        return str(chosen)
    return _user_attribute("time_zone") or "UTC"


# --- the pseudo-locale ---------------------------------------------------------------------

_ACCENTED = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "àƀçđéƒĝĥîĵķĺɱñöþǫŕšţûṽŵẋýžÀƁÇĐÉƑĜĤÎĴĶĹṀÑÖÞǪŔŠŢÛṼŴẊÝŽ",
)
# What must survive untouched: %-placeholders (named or not), {braces} and HTML tags.
_PROTECTED = re.compile(
    r"%\([^)]*\)[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]"  # %(name)s
    r"|%[-#0 +]*\d*(?:\.\d+)?[a-zA-Z%]"  # %s, %%
    r"|\{[^}]*\}|<[^>]*>|&\w+;"  # {braces}, <tags>, &entities;
)
PSEUDO_OPEN = "⟦"
PSEUDO_CLOSE = "⟧"


def pseudo(text: str) -> str:
    """`Send to %(name)s` as `⟦Šéñđ ţö %(name)s⟧`: wrapped, so that untranslated text next to
    it stands out, and accented, so that it is visibly not the source."""
    if not text:
        return text
    parts: list[str] = []
    last = 0
    for match in _PROTECTED.finditer(text):
        parts.append(text[last : match.start()].translate(_ACCENTED))
        parts.append(match.group(0))
        last = match.end()
    parts.append(text[last:].translate(_ACCENTED))
    return f"{PSEUDO_OPEN}{''.join(parts)}{PSEUDO_CLOSE}"


class PseudoTranslations(stdlib_gettext.NullTranslations):
    """Every message in its pseudo form (the English plural rule picks the form)."""

    def gettext(self, message: str) -> str:
        return pseudo(message)

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        return pseudo(msgid1 if n == 1 else msgid2)

    def pgettext(self, context: str, message: str) -> str:
        return pseudo(message)

    def npgettext(self, context: str, msgid1: str, msgid2: str, n: int) -> str:
        return pseudo(msgid1 if n == 1 else msgid2)

    # The names Flask-Babel and Jinja's i18n extension call.
    ugettext = gettext
    ungettext = ngettext
    upgettext = pgettext
    unpgettext = npgettext


class _FluisterDomain(Domain):
    """The catalogs, or the pseudo-locale when the app renders in it."""

    _pseudo = PseudoTranslations()

    def get_translations(self) -> Any:
        if has_app_context() and current_app.config.get(PSEUDO_CONFIG_KEY):
            return self._pseudo
        return super().get_translations()


class _FluisterBabel(Babel):
    @property
    def domain_instance(self) -> Domain:
        # One per app (Flask-Babel caches loaded catalogs on it).
        domain = self.__dict__.get("_fluister_domain")
        if domain is None:
            domain = self.__dict__["_fluister_domain"] = _FluisterDomain(domain=self.domain)
        return domain


def init_i18n(app: Flask, *, pseudo_locale: bool = False) -> None:
    """Flask-Babel on `app`: gettext in templates (`_()`, `ngettext`, `{% trans %}`), the
    selectors above, the compiled catalogs, `html_lang()` for templates."""
    app.config.update(
        BABEL_DEFAULT_LOCALE=DEFAULT_LOCALE,
        BABEL_DEFAULT_TIMEZONE="UTC",
        BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS_DIR),
        BABEL_DOMAIN=DOMAIN,
    )
    app.config[PSEUDO_CONFIG_KEY] = pseudo_locale
    _FluisterBabel(app, locale_selector=_select_locale, timezone_selector=_select_time_zone)
    app.jinja_env.globals["html_lang"] = current_language
