"""The built-in e-mail as a friend's phone shows it: one fluid column (nothing wider than a
375 px screen), a hidden preheader, light and dark colour schemes, and a footer that names the
brand with its postal address, or without one and without a dangling comma. Rendered the way
the eu-strict sender's preview renders it, in each language the catalogs speak."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from engine.runtime import Runtime
from tests.helpers import make_campaign, submission

PHONE_WIDTH = 375
LANGUAGES = ["en", "nl", "fr"]


class _Elements(HTMLParser):
    """Each element's tag, attributes and whether it sits inside a hidden preheader."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.preheader = ""
        self.body_text: list[str] = []
        self._depth = 0
        self._in_preheader = 0
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.elements.append((tag, attributes))
        if tag in ("style", "title"):
            self._skip += 1
        if self._in_preheader:
            self._in_preheader += 1
        elif "fl-preheader" in attributes.get("class", "").split():
            self._in_preheader = 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self._skip -= 1
        if self._in_preheader:
            self._in_preheader -= 1

    def handle_data(self, data: str) -> None:
        if self._in_preheader:
            self.preheader += data
        elif not self._skip:
            self.body_text.append(data)


def _parsed(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    return parser


def _styles(style: str) -> dict[str, str]:
    pairs = (part.split(":", 1) for part in style.split(";") if ":" in part)
    return {name.strip().lower(): value.strip().lower() for name, value in pairs}


def _fixed_widths(elements: list[tuple[str, dict[str, str]]]) -> list[str]:
    """Every width over a phone's: a `width` attribute or a `width`/`min-width` style in px."""
    wide = []
    for tag, attributes in elements:
        if attributes.get("width", "").isdigit() and int(attributes["width"]) > PHONE_WIDTH:
            wide.append(f"<{tag} width={attributes['width']}>")
        styles = _styles(attributes.get("style", ""))
        for name in ("width", "min-width"):
            pixels = re.fullmatch(r"(\d+)px", styles.get(name, ""))
            if pixels and int(pixels.group(1)) > PHONE_WIDTH:
                wide.append(f"<{tag} style={name}:{styles[name]}>")
    return wide


def _previewed(runtime: Runtime, slug: str, locale: str) -> tuple[str, str]:
    shown = runtime.forwarding.preview(slug, submission("bob@example.com", locale=locale, note="Lekker"))
    return shown.html, shown.text


@pytest.mark.parametrize("locale", LANGUAGES)
@pytest.mark.parametrize("address", ["1 Main St, Springfield", "", "   "], ids=["address", "none", "blank"])
def test_the_built_in_email_fits_a_phone_and_ends_with_a_clean_footer(
    runtime: Runtime, locale: str, address: str
) -> None:
    make_campaign(
        runtime.db,
        "stil",
        policy_name="eu-strict",
        policy_settings={},
        channels=["email"],
        locales=LANGUAGES,
        postal_address=address,
    )
    html, text = _previewed(runtime, "stil", locale)
    page = _parsed(html)

    assert _fixed_widths(page.elements) == []
    card = next(a for _, a in page.elements if "fl-card" in a.get("class", "").split())
    assert _styles(card["style"])["max-width"] == "560px" and _styles(card["style"])["width"] == "100%"
    assert all("max-width:100%" in a.get("style", "").replace(" ", "") for t, a in page.elements if t == "img")

    # The preheader: what an inbox shows beside the subject, never the message's own text.
    preheader = next(a for _, a in page.elements if "fl-preheader" in a.get("class", "").split())
    hidden = _styles(preheader["style"])
    assert (hidden["display"], hidden["mso-hide"], hidden["max-height"]) == ("none", "all", "0")
    assert "Anna" in page.preheader and "Ten percent off" in page.preheader
    assert page.preheader.strip() not in " ".join(page.body_text)

    metas = {a.get("name"): a.get("content") for t, a in page.elements if t == "meta"}
    assert metas["color-scheme"] == "light dark" and metas["supported-color-schemes"] == "light dark"
    assert f'lang="{locale}"' in html

    footer_lines = [line.strip() for line in " ".join(page.body_text).split("\n") if line.strip()]
    text_lines = [line.strip() for line in text.splitlines() if line.strip()]
    for lines in (footer_lines, text_lines):
        assert lines[-1] == ("Acme, 1 Main St, Springfield" if address.strip() else "Acme")
    for part in (" ".join(page.body_text), text):
        assert not re.search(r",\s*,", part)
