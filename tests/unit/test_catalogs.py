"""The catalogs in the repository: complete (no untranslated or fuzzy entry in any language
but English, the source), consistent (placeholders the same as the source's), and up to date
with the code (the strings `make messages` would extract now are exactly the catalogs')."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from engine import PROJECT_ROOT
from engine.catalogs import CatalogError, compile_catalogs
from engine.i18n import TRANSLATIONS_DIR

TRANSLATED = ("nl", "nl@formal", "fr")
ALL = ("en", *TRANSLATED)


def _catalog(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as file:
        return read_po(file, locale=locale)


def _po(locale: str) -> Path:
    return TRANSLATIONS_DIR / locale / "LC_MESSAGES" / "messages.po"


def _keys(catalog: Catalog) -> set[tuple[str, str | None]]:
    return {
        (message.id if isinstance(message.id, str) else message.id[0], message.context)
        for message in catalog
        if message.id
    }


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """What `make messages` extracts from the sources now, with the Makefile's own keywords."""
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    keywords = re.search(r"^BABEL_KEYWORDS := (.*)$", makefile, re.MULTILINE)
    assert keywords is not None, "the Makefile names the extra gettext keywords in BABEL_KEYWORDS"
    output = tmp_path_factory.mktemp("extract") / "messages.pot"
    pybabel = Path(sys.executable).parent / "pybabel"
    subprocess.run(
        [str(pybabel), "--quiet", "extract", "-F", "babel.cfg", *keywords.group(1).split(), "-o", str(output), "."],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    )
    return _catalog(output)


def test_every_shipped_language_has_a_catalog() -> None:
    for locale in ALL:
        assert _po(locale).is_file(), f"translations/{locale} has no messages.po"


@pytest.mark.parametrize("locale", ALL)
def test_the_catalog_holds_exactly_the_strings_the_code_marks(locale: str, extracted: Catalog) -> None:
    catalog = _catalog(_po(locale), locale)
    missing = _keys(extracted) - _keys(catalog)
    stale = _keys(catalog) - _keys(extracted)
    assert not missing, f"{locale}: strings not in the catalog, run `make messages` and translate: {sorted(missing)}"
    assert not stale, f"{locale}: strings the code no longer has, run `make messages`: {sorted(stale)}"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_string_is_translated_and_none_is_fuzzy(locale: str) -> None:
    catalog = _catalog(_po(locale), locale)
    untranslated = [
        message.id
        for message in catalog
        if message.id and (not message.string or (isinstance(message.string, tuple) and not all(message.string)))
    ]
    fuzzy = [message.id for message in catalog if message.id and message.fuzzy]
    assert not untranslated, f"{locale}: untranslated: {untranslated}"
    assert not fuzzy, f"{locale}: fuzzy (a guess nobody checked): {fuzzy}"


@pytest.mark.parametrize("locale", ALL)
def test_translations_keep_the_source_placeholders(locale: str) -> None:
    catalog = _catalog(_po(locale), locale)
    problems = [f"{message.id!r}: {errors}" for message, errors in catalog.check() if errors]
    assert not problems, f"{locale}: {problems}"
    for message in catalog:
        if not message.id or not message.string:
            continue
        sources = message.id if isinstance(message.id, tuple) else (message.id,)
        translations = message.string if isinstance(message.string, tuple) else (message.string,)
        named = set(re.findall(r"%\((\w+)\)", sources[-1]))
        for translation in translations:
            # A singular may leave the count out ("één vriend"), every other name stays.
            assert set(re.findall(r"%\((\w+)\)", translation)) <= named, f"{locale}: {message.id!r}"
            assert named - {"num", "count"} <= set(re.findall(r"%\((\w+)\)", translation)), (
                f"{locale}: {message.id!r} drops a variable"
            )


def test_the_catalogs_compile_and_a_broken_one_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "translations"
    shutil.copytree(TRANSLATIONS_DIR, copy, ignore=shutil.ignore_patterns("*.mo"))
    written = compile_catalogs(copy)
    assert {path.parent.parent.name for path in written} == set(ALL)
    # Up to date: nothing compiles again.
    assert compile_catalogs(copy) == []

    broken = copy / "fr" / "LC_MESSAGES" / "messages.po"
    # A translator's slip: the variable's name translated too.
    text = broken.read_text()
    broken.write_text(text.replace('msgstr "Propulsé par %(product)s"', 'msgstr "Propulsé par %(produit)s"'))
    with pytest.raises(CatalogError, match="produit"):
        compile_catalogs(copy, force=True)
