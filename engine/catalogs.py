"""Compile the gettext catalogs (`translations/*/LC_MESSAGES/messages.po` to `.mo`).

`python -m engine.catalogs` is what `make translations` and each Procfile process run before
starting: offline, and safe when several processes start at once. A catalog is compiled only
when its `.mo` is missing or older than its `.po` (and may be written), into a temporary file that then replaces
the old one in one step, so a process never reads a half-written catalog. A catalog with an
error (a broken placeholder, a syntax error) stops the compile with its message.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po


class CatalogError(RuntimeError):
    """A catalog that does not compile; the message names it and says why."""


def compile_catalogs(directory: Path, *, domain: str = "messages", force: bool = False) -> list[Path]:
    """Compile every catalog under `directory` that needs it; the `.mo` files written."""
    written: list[Path] = []
    for po_path in sorted(directory.glob(f"*/LC_MESSAGES/{domain}.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.is_file() and not force:
            if mo_path.stat().st_mtime >= po_path.stat().st_mtime:
                continue
            # An installed copy that its user may not change (the container image: compiled
            # into the wheel, installed by root) keeps the catalogs it was built with.
            if not os.access(mo_path.parent, os.W_OK):
                continue
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=po_path.parent.parent.name)
        problems = [f"{po_path}: {message.id!r}: {error}" for message, errors in catalog.check() for error in errors]
        if problems:
            raise CatalogError("\n".join(problems))
        handle, temporary = tempfile.mkstemp(dir=mo_path.parent, prefix=f".{domain}.", suffix=".mo")
        try:
            with os.fdopen(handle, "wb") as mo_file:
                # Fuzzy entries are guesses nobody checked: never shown (tests refuse them anyway).
                write_mo(mo_file, catalog, use_fuzzy=False)
            os.replace(temporary, mo_path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        written.append(mo_path)
    return written


def main(argv: list[str]) -> int:
    from engine.resources import resource_dir

    try:
        written = compile_catalogs(resource_dir("translations"), force="--force" in argv)
    except CatalogError as error:
        print(f"translations: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(f"translations: compiled {path.parent.parent.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
