"""Web handlers stay thin: every view the app serves from engine.web fits on a screen.

A handler parses the request, calls a service and renders what it answers; the decisions
live in engine/services. A view that grows past a screen has taken on a decision: move it
into a service rather than raising the limit."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

from flask import Flask

SCREEN_LINES = 40


def _length(view: Callable[..., Any]) -> int:
    """Lines from the `def` to the end of the body (decorators not counted)."""
    function = inspect.unwrap(view)
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    definition = tree.body[0]
    assert isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef)
    assert definition.end_lineno is not None
    return definition.end_lineno - definition.lineno + 1


def _web_views(app: Flask) -> dict[str, Callable[..., Any]]:
    return {
        endpoint: view
        for endpoint, view in app.view_functions.items()
        if inspect.unwrap(view).__module__.startswith("engine.web.")
    }


def test_every_web_view_fits_on_a_screen(app: Flask) -> None:
    views = _web_views(app)
    # The pages a visitor, a marketer, a machine and a provider use are all measured.
    assert {"public.forward", "campaigns_console.edit", "api.create_redemption", "hooks.twilio_inbound"} <= set(views)
    too_long = {endpoint: _length(view) for endpoint, view in views.items() if _length(view) > SCREEN_LINES}
    assert too_long == {}, f"views over {SCREEN_LINES} lines: move their decisions into a service"


def test_a_view_is_measured_from_def_to_its_last_line() -> None:
    def short() -> None:
        return None

    def long() -> int:
        total = 0
        for n in range(3):
            total += n
        return total

    assert (_length(short), _length(long)) == (2, 5)
