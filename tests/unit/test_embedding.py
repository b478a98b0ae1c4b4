"""The origins a campaign may be embedded on: exact origins as a browser writes them."""

from __future__ import annotations

import pytest

from engine.embedding import MAX_EMBED_ORIGINS, InvalidOrigin, origins_problem, parse_origin


@pytest.mark.parametrize(
    ("typed", "origin"),
    [
        ("https://shop.example", "https://shop.example"),
        ("  https://Shop.Example:443/ ", "https://shop.example"),
        ("https://shop.example:8443", "https://shop.example:8443"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://127.0.0.1:80", "http://127.0.0.1"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
    ],
)
def test_an_origin_is_stored_as_a_browser_writes_it(typed: str, origin: str) -> None:
    assert parse_origin(typed) == origin


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("shop.example", "is not an origin"),
        ("https://shop.example/winkel", "is not an origin"),
        ("https://shop.example?x=1", "is not an origin"),
        ("https://user@shop.example", "is not an origin"),
        ("https://*.shop.example", "no wildcards"),
        ("*", "no wildcards"),
        ("http://shop.example", "plain http only for localhost"),
        ("ftp://shop.example", "starts with https://"),
        ("javascript://shop.example", "starts with https://"),
        ("https://shop_example.com", "is not a host name"),
        ("https://shop.example:70000", "the port must be between 1 and 65535"),
        ("https://shop.example:0", "the port must be between 1 and 65535"),
        ("", "is not an origin"),
    ],
)
def test_what_is_not_an_origin_is_refused_with_the_reason(typed: str, says: str) -> None:
    with pytest.raises(InvalidOrigin, match=says.replace("*", r"\*").replace("?", r"\?")):
        parse_origin(typed)


def test_a_list_is_refused_for_a_bad_origin_a_duplicate_or_its_length() -> None:
    assert origins_problem(["https://a.example", "http://localhost:1"]) is None
    assert origins_problem(["https://a.example", "https://A.example/"]) == "'https://a.example' is listed twice"
    assert origins_problem([f"https://s{n}.example" for n in range(MAX_EMBED_ORIGINS + 1)]) == (
        f"at most {MAX_EMBED_ORIGINS} origins"
    )
