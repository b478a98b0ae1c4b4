"""The language of a campaign's public pages: picked per request (engine.i18n's order), and
the switch that lets a visitor choose another of the campaign's languages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from babel import Locale
from flask import g, request, url_for

from engine.i18n import AddressForm, negotiate_campaign_locale, use_locale
from engine.services.wrappers import STEP_PARAMETERS
from engine.web.public.framing import page_arguments

# The query parameter of the language switch (`/c/demo?lang=fr`).
LANG_PARAMETER = "lang"
_OFFERED_KEY = "fluister_offered_locales"


@dataclass(frozen=True)
class LanguageLink:
    code: str
    # The language's name in that language ("Nederlands", "français"): whoever needs the
    # switch reads their own language's name, whatever the page is in now.
    name: str
    url: str
    current: bool


def speak_campaign_language(
    locales: Sequence[str], address_form: str = AddressForm.INFORMAL, explicit: str | None = None
) -> str:
    """Render the rest of this request in the campaign's language for this visitor: `explicit`
    (a form's `locale`, a forward's), else `?lang=`, else Accept-Language, else its default."""
    chosen = explicit or request.args.get(LANG_PARAMETER)
    language = negotiate_campaign_locale(locales, explicit=chosen, accept=request.accept_languages)
    use_locale(language, address_form)
    setattr(g, _OFFERED_KEY, (tuple(locales), language))
    return language


def language_links() -> list[LanguageLink]:
    """Links to this page in each of the campaign's other languages (none for a campaign that
    speaks one), for the switch at the top of its pages."""
    offered, current = g.get(_OFFERED_KEY) or ((), "")
    if len(offered) < 2 or request.endpoint is None:
        return []
    # The embedded form's pages carry the page they are on from one to the next; a landing page
    # past its quiz stays past it (the same answer, or the skip) in another language.
    arguments = dict(request.view_args or {}) | page_arguments() | _step_arguments()
    return [
        LanguageLink(
            code,
            _capitalised(Locale.parse(code).get_display_name(code) or code),
            url_for(request.endpoint, **arguments, **{LANG_PARAMETER: code}),
            code == current,
        )
        for code in offered
    ]


def _step_arguments() -> dict[str, str]:
    return {name: request.args[name] for name in sorted(STEP_PARAMETERS) if name in request.args}


def _capitalised(name: str) -> str:
    # A menu item starts with a capital in every language ("Français" in a list, as sites write it).
    return name[:1].upper() + name[1:]
