"""Cursor pagination for the API's lists: `?limit=` (1 to 200, 50 by default) and `?cursor=`.

A list answers `{"data": [...], "next_cursor": ..., "next": ...}` and, when there is more, a
`Link: <…>; rel="next"` header. The cursor is opaque to clients: the id the next page starts
after, with what the list is of (its campaign and filters), signed with the app's secret key.
A cursor that was changed, made for another list or other filters, or signed with a key the app
no longer holds is a 400 problem, never a wrong page.

Use: `page = page_request("rewards:demo:status=held")`, ask the service for the slice after
`page.after` of `page.limit` rows (engine.services.paging), then `page_response(page, items,
slice.next_after)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Response, jsonify, request
from itsdangerous import BadSignature, URLSafeSerializer
from werkzeug.exceptions import BadRequest

from engine.runtime import current_runtime

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_LENGTH = 512
CURSOR_SALT = "fluister.api-cursor"


@dataclass(frozen=True)
class PageRequest:
    scope: str  # what the list is of: a cursor is good for this list only
    limit: int
    after: int | None


def cursor_serializer() -> URLSafeSerializer:
    # Oldest key first, as the app's settings give them: the newest signs, all verify.
    return URLSafeSerializer(list(current_runtime().settings.secret_keys), salt=CURSOR_SALT)


def encode_cursor(scope: str, after: int) -> str:
    return str(cursor_serializer().dumps([scope, after]))


def decode_cursor(scope: str, cursor: str) -> int:
    """The id a cursor continues after. Raises BadRequest (400) for anything but a genuine cursor of this list."""
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise BadRequest("The cursor is not one this list gave out.")
    try:
        payload = cursor_serializer().loads(cursor)
    except BadSignature:
        raise BadRequest("The cursor is not one this list gave out (changed, or from an older key).") from None
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not isinstance(payload[1], int)
        or isinstance(payload[1], bool)
    ):
        raise BadRequest("The cursor is not one this list gave out.")
    if payload[0] != scope:
        raise BadRequest("The cursor belongs to another list, or to other filters: start again without it.")
    return payload[1]


def only_query(*names: str) -> None:
    """Refuse (400) a query parameter the route does not take: a misspelt filter must not
    silently list everything."""
    unknown = sorted(set(request.args) - {*names, "limit", "cursor"})
    if unknown:
        raise BadRequest(f"This list takes no parameter {', '.join(repr(name) for name in unknown)}.")


def page_request(scope: str) -> PageRequest:
    """The page asked for by `limit` and `cursor`. Raises BadRequest (400) for bad values."""
    raw_limit = request.args.get("limit")
    limit = DEFAULT_LIMIT
    if raw_limit is not None:
        if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise BadRequest(f"`limit` is a whole number from 1 to {MAX_LIMIT}.")
        limit = int(raw_limit)
    cursor = request.args.get("cursor")
    return PageRequest(scope, limit, None if cursor is None else decode_cursor(scope, cursor))


def page_response(page: PageRequest, items: list[dict[str, Any]], next_after: int | None, **extra: Any) -> Response:
    next_cursor = None if next_after is None else encode_cursor(page.scope, next_after)
    next_url = None
    if next_cursor is not None:
        args = [(name, value) for name, value in request.args.items(multi=True) if name != "cursor"]
        next_url = f"{request.base_url}?{urlencode([*args, ('cursor', next_cursor)])}"
    response = jsonify({"data": items, "next_cursor": next_cursor, "next": next_url, **extra})
    response.headers["Cache-Control"] = "no-store"
    if next_url is not None:
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response
