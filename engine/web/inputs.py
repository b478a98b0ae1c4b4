"""What a request may carry before any view sees it: malformed input is a 4xx, never a 500.

- A multipart part without a readable name is refused.
- A file part is taken only by a view that asks for files, and only under the names it asks
  for (`accepts_files`). Anywhere else a browser never sends one, and a form field that gets a
  file instead of text would break the checks that expect text.
- JSON nested deeper than Python's recursion limit is refused like any other bad JSON (a
  ValueError, so `get_json(silent=True)` answers None), instead of a RecursionError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, request
from flask.json.provider import DefaultJSONProvider
from flask_babel import gettext

from engine.web.errors import error_response

View = TypeVar("View", bound=Callable[..., Any])

_FILE_FIELDS = "fluister_file_fields"


def accepts_files(*names: str) -> Callable[[View], View]:
    """Let a view take file parts named `names` (and only those)."""

    def mark(view: View) -> View:
        setattr(view, _FILE_FIELDS, frozenset(names))
        return view

    return mark


class BoundedJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def register(app: Flask) -> None:
    app.json = BoundedJSONProvider(app)
    # First of all, before the CSRF check reads the form.
    app.before_request_funcs.setdefault(None, []).insert(0, _refuse_malformed_multipart)


def _refuse_malformed_multipart() -> Response | None:
    # Only a multipart body can carry files or unnamed parts; other bodies are parsed as they are.
    if request.mimetype != "multipart/form-data":
        return None
    view = current_app.view_functions.get(request.endpoint or "")
    allowed: frozenset[str] = getattr(view, _FILE_FIELDS, frozenset())
    if set(request.files) - allowed:
        return error_response(400, gettext("This form takes text, not files."))
    if None in request.form or None in request.files:  # a part whose name could not be read
        return error_response(400, gettext("A part of this form has no name."))
    return None
