"""A refused console form's error summary (templates/pages/console/_error_summary.html): every
field error, each a link to the field it is about, by the id the field is rendered with."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from flask import Flask
from wtforms import Field, Form
from wtforms.widgets import ListWidget

# A field's error as the summary lists it: the id of the element it links to, and the error.
Problem = tuple[str, str]


def form_problems(form: Form, ids: Mapping[str, str] | None = None) -> list[Problem]:
    """Each error of each of the form's fields, in the order of the fields, with the id to link
    to: `ids` names it for a field the page shows under another id (by the field's name; "": the
    error is listed without a link, for a field with no input of its own, such as the value of a
    button). The CSRF token has its own message on each page, and is left out."""
    problems: list[Problem] = []
    for field in form:
        if field.type == "CSRFTokenField":
            continue
        target = ids[field.name] if ids and field.name in ids else _first_input(field)
        problems.extend((target, str(error)) for error in _messages(field.errors))
    return problems


def _first_input(field: Field) -> str:
    # Radio buttons and checkboxes are each an input of their own (`<id>-0`, `<id>-1`, …).
    if field.type == "HiddenField":
        return ""
    if isinstance(field.widget, ListWidget):
        first = next(iter(field), None)
        if first is not None:
            return str(first.id)
    return str(field.id)


def _messages(errors: object) -> Iterable[object]:
    if isinstance(errors, dict):  # a form within the form: its fields' errors
        for nested in errors.values():
            yield from _messages(nested)
    elif isinstance(errors, list | tuple):
        for error in errors:
            yield from _messages(error)
    elif errors:
        yield errors


def register(app: Flask) -> None:
    app.jinja_env.globals.update(form_problems=form_problems)
