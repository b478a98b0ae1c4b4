"""Cells for CSV files that people open in a spreadsheet: none may run as a formula.

A spreadsheet treats a cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return
before one) as a formula, and depending on the locale and the import dialog it splits a line
not only at commas but at semicolons, tabs or pipes too, and trims spaces and quotes: then
`x;=cmd|...` becomes two cells, the second a formula. So the rule is: in a text cell, an
apostrophe (which makes the rest plain text) goes before the cell when it starts with one of
those characters (or their full-width forms), and before every piece of it that does so after
a `,` `;` tab `|` CR or LF (and any spaces or double quotes): `=1+1` is written `'=1+1`, and
`x;=cmd` is written `x;'=cmd`. Numbers are written as they are. Every CSV export writes its
rows through `safe_row`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")

# The full-width forms (U+FF1D, U+FF0B, U+FF0D, U+FF20) are folded to these by some spreadsheets.
FORMULA_STARTERS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
# Where a spreadsheet may split a line into cells, whatever separator the file was written with.
SPLITS = "[,;\t|\r\n]"
# A split, spaces or a quote a spreadsheet would trim, then a formula starter (looked at, not taken).
PIECE_STARTING_A_FORMULA = re.compile(f'({SPLITS}[ "]*)(?=[{re.escape("".join(sorted(FORMULA_STARTERS)))}])')


def could_be_formula(text: str) -> bool:
    return text[:1] in FORMULA_STARTERS or PIECE_STARTING_A_FORMULA.search(text) is not None


def safe_cell(value: T) -> T | str:
    """The value as a spreadsheet should show it: an apostrophe before whatever could run."""
    if not isinstance(value, str) or not could_be_formula(value):
        return value
    text = PIECE_STARTING_A_FORMULA.sub(r"\1'", value)
    return "'" + text if text[:1] in FORMULA_STARTERS else text


def safe_row(row: Iterable[object]) -> list[object]:
    return [safe_cell(value) for value in row]
