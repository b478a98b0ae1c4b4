"""Hypothesis over the public side: whatever a client sends to the landing page, the form, the
share buttons or an unsubscribe link (random or malformed fields, files where text belongs,
repeated keys, bodies that are not UTF-8, strange content types and charsets), the answer is
never a server error. The form's own tokens (CSRF, render stamp) are mixed in, so that most
requests get past the CSRF check and reach the form's fields.

Examples are bounded and derandomized: the run is short and the same every time.
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import forward_form

MAX_EXAMPLES = 120
ROUTES = [
    "/c/demo/forward",
    "/c/demo/forward",
    "/c/demo/share",
    "/c/demo",
    "/u/not-a-token",
    "/c/no-such-campaign/forward",
]
FIELD_NAMES = [
    "csrf_token",
    "rendered",
    "ref",
    "website",
    "sender_name",
    "sender_contact",
    "friend",
    "note",
    "altcha",
    "preview_token",
    "edit",
    "channel",
    "List-Unsubscribe",
]
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-www-form-urlencoded; charset=no-such-charset",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "application/json",
    "text/plain; charset=utf-16",
    "",
]

TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.sampled_from(["bob@example.com", "+31612345678", "06 12345678", "=cmd|' /C calc'!A0", "\x00", "a" * 300]),
)
RAW = st.binary(max_size=200)
MOSTLY = st.sampled_from([True, True, True, False])
NAME = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=12))


@st.composite
def requests_(draw: st.DrawFn, page_fields: dict[str, Any]) -> dict[str, Any]:
    """One request as keyword arguments for the test client."""
    route = draw(st.sampled_from(ROUTES))
    fields: list[tuple[str, Any]] = []
    # The page's own tokens, most of the time, so that the fields behind CSRF are reached.
    fields += [(name, page_fields[name]) for name in ("csrf_token", "rendered") if draw(MOSTLY)]
    fields += draw(st.lists(st.tuples(NAME, TEXT), max_size=8))
    shape = draw(st.sampled_from(["form"] * 4 + ["multipart-files", "raw-urlencoded", "raw-body", "query"]))
    if shape == "form":
        encoding = draw(st.sampled_from(["application/x-www-form-urlencoded", "multipart/form-data"]))
        return {"path": route, "method": "POST", "data": _multidict(fields), "content_type": encoding}
    if shape == "multipart-files":
        files = draw(st.lists(st.tuples(NAME, RAW, st.text(max_size=12)), min_size=1, max_size=3))
        data = _multidict(fields)
        for name, content, filename in files:
            data.setdefault(name, []).append((_Upload(content), filename))
        return {"path": route, "method": "POST", "data": data, "content_type": "multipart/form-data"}
    if shape == "raw-urlencoded":
        # Names and values as raw bytes, percent-encoded: invalid UTF-8 included.
        pairs = draw(st.lists(st.tuples(RAW, RAW), max_size=8))
        body = "&".join(f"{quote_from_bytes(k)}={quote_from_bytes(v)}" for k, v in pairs)
        if fields and draw(st.booleans()):
            body += "&" + "&".join(
                f"{quote_from_bytes(k.encode())}={quote_from_bytes(str(v).encode())}" for k, v in fields
            )
        content_type = draw(st.sampled_from(CONTENT_TYPES))
        return {"path": route, "method": "POST", "data": body.encode(), "content_type": content_type}
    if shape == "raw-body":
        content_type = draw(st.sampled_from(CONTENT_TYPES))
        return {"path": route, "method": "POST", "data": draw(RAW), "content_type": content_type}
    query = "&".join(
        f"{quote_from_bytes(k)}={quote_from_bytes(v)}" for k, v in draw(st.lists(st.tuples(RAW, RAW), max_size=4))
    )
    return {"path": f"{route}?{query}", "method": draw(st.sampled_from(["GET", "HEAD"]))}


class _Upload(bytes):
    """A file part's content (the test client wants a stream: made fresh for each request)."""


def _multidict(fields: list[tuple[str, Any]]) -> dict[str, list[Any]]:
    data: dict[str, list[Any]] = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    return data


def _send(client: FlaskClient, request: dict[str, Any]) -> int:
    data = request.get("data")
    if isinstance(data, dict):
        data = {
            name: [
                (io.BytesIO(v[0]), v[1]) if isinstance(v, tuple) and isinstance(v[0], _Upload) else v for v in values
            ]
            for name, values in data.items()
        }
        request = {**request, "data": data}
    return client.open(**request).status_code


@pytest.fixture
def page_fields(client: FlaskClient) -> dict[str, Any]:
    return forward_form(client.get("/c/demo").text)


def test_nothing_a_client_sends_to_the_public_side_is_a_server_error(
    app: Flask, client: FlaskClient, page_fields: dict[str, Any]
) -> None:
    failures: list[tuple[int, dict[str, Any]]] = []
    seen: list[tuple[str, int]] = []

    @given(request=requests_(page_fields))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    def never_a_server_error(request: dict[str, Any]) -> None:
        status = _send(client, request)
        seen.append((request["path"], status))
        if status >= 500:
            failures.append((status, request))
        assert status < 500, request

    never_a_server_error()
    assert failures == []
    # Many requests got past the CSRF check to the form's own checks (refused, or sent).
    assert sum(1 for path, status in seen if path.startswith("/c/demo/forward") and status in (303, 422)) >= 10
