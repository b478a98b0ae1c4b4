import pytest

from engine.text import contains_link


@pytest.mark.parametrize(
    "text",
    [
        "http://spam.example",
        "see https://x.y",
        "www.example",
        "javascript:/alert",
        "buy at cheap-pills.eu",
        "spam.ai",
        "x.io now",
        "CHEAP-PILLS.EU",
        "a.b.c.co.uk",
        "mail me at anna@example.com",
    ],
)
def test_links_and_bare_domains_are_found(text: str) -> None:
    assert contains_link(text)


@pytest.mark.parametrize(
    "text",
    ["Dinner at 8.30?", "Loved it.Great coffee", "e.g. the latte", "Mr.Smith says hi", "v1.2.3", "", "See you soon!"],
)
def test_ordinary_sentences_are_not_links(text: str) -> None:
    assert not contains_link(text)


def test_a_flood_without_dots_is_checked_in_linear_time() -> None:
    import time

    started = time.perf_counter()
    assert not contains_link("a" * 64_000)
    assert not contains_link("a-" * 32_000)
    assert time.perf_counter() - started < 1.0  # was minutes with a backtracking pattern
