"""The one rule every CSV export applies: no cell a spreadsheet could run as a formula."""

from __future__ import annotations

import pytest

from engine.spreadsheet import could_be_formula, safe_cell, safe_row

FORMULAS = [
    "=1+1",
    "+31612345678",
    "-2+3",
    "@SUM(A1)",
    "\t=1",
    "\r=1",
    "x;=cmd|' /C calc'!A0",  # a semicolon locale splits here
    "x,=cmd|' /C calc'!A0",
    "x\t=1",
    "x|=1",
    "x\n=1",
    'x;"=1+1"',  # a quoted field after the split
    "x; =1",  # spaces trimmed on import
    "\uff1d1+1",  # full-width, folded by some spreadsheets
    "Ann;+1",
    "Ann;-1",
    "Ann;@A1",
]
PLAIN = ["Ann", "", "2026-01-05T10:00:00+00:00", "a=b", "x+y", "mail@example.com", "1-2", "'=1", "Ann; Bo", "k-9"]


@pytest.mark.parametrize("text", FORMULAS)
def test_a_cell_that_could_start_a_formula_in_any_of_its_fields_is_prefixed(text: str) -> None:
    assert could_be_formula(text)
    assert not could_be_formula(safe_cell(text))


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("=1+1", "'=1+1"),
        ("x;=cmd|' /C calc'!A0", "x;'=cmd|' /C calc'!A0"),
        ("-1;@A1", "'-1;'@A1"),
        ('x; "=1', "x; \"'=1"),
    ],
)
def test_an_apostrophe_goes_before_each_piece_that_could_run(text: str, written: str) -> None:
    assert safe_cell(text) == written


@pytest.mark.parametrize("text", PLAIN)
def test_plain_text_is_left_alone(text: str) -> None:
    assert not could_be_formula(text)
    assert safe_cell(text) == text


def test_numbers_and_none_are_left_alone_and_rows_are_cleaned_cell_by_cell() -> None:
    assert safe_cell(-5) == -5
    assert safe_cell(0.5) == 0.5
    assert safe_cell(None) is None
    assert safe_row(["=1", -1, "Ann"]) == ["'=1", -1, "Ann"]
    assert safe_cell("x\t\t=1") == "x\t'\t'=1"
