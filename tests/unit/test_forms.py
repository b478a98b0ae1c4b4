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


# -- typed text: what a reader would see, not what the bytes say ---------------------------

from engine.text import normalised, text_problem  # noqa: E402


@pytest.mark.parametrize(
    ("note", "fragment"),
    [
        ("cheap-pills\u3002eu", "links"),  # ideographic full stop
        ("cheap-pills\uff0eeu", "links"),  # full-width full stop
        ("cheap-pills\uff61eu", "links"),  # half-width ideographic full stop
        ("\uff57\uff57\uff57\uff0e\uff53\uff50\uff41\uff4d", "links"),  # full-width www.spam
        ("go to 192.168.1.1/deals now", "links"),
        ("203.0.113.9", "links"),
        ("203\u30020\u3002113\u30029", "links"),  # an address with ideographic full stops
        ("go to 192\u3002168\u30021\u30021/deals", "links"),
        ("0x7f000001/deals", "links"),  # hexadecimal IPv4 as a host
        ("2130706433/deals", "links"),  # decimal IPv4 as a host
        ("017700000001/deals", "links"),  # octal IPv4 as a host
        ("http 3232235777/x", "links"),
        ("[::1]/x", "links"),  # bracketed IPv6
        ("see [2001:db8::1] now", "links"),
        ("ca\u200bll me", "invisible"),  # zero-width space
        ("ca\u2060ll me", "invisible"),  # word joiner
        ("soft\u00adhyphen", "invisible"),
        ("\ufeffhidden", "invisible"),  # zero-width no-break space
        ("price \u202e001$", "invisible"),  # right-to-left override
        ("\u2066isolated\u2069", "invisible"),
        ("tags\U000e0068\U000e0069", "invisible"),  # tag characters
        ("c1\u0085control", "invisible"),  # next line, a C1 control
        ("call me on 06 12345678", "phone numbers"),
        ("text +1 (415) 555-2671 now", "phone numbers"),
        ("bell\x07", "control characters"),
    ],
)
def test_notes_are_checked_as_a_reader_sees_them(note: str, fragment: str) -> None:
    problem = text_problem("The note", note, allow_newlines=True, region="NL")
    assert problem is not None and fragment in problem


@pytest.mark.parametrize(
    "note",
    [
        "Dinner at 8.30?",
        "Thought of you!\r\nSee you Saturday",
        "We loved it \U0001f468\u200d\U0001f469\u200d\U0001f467 see you in 2 weeks",  # a family emoji
        "Tot zaterdag, 10 uur",
        "We saved 2130706433 points",  # a big number on its own is no host
        "Room 12/3, ask for 0x1F",
        "the list [a, b] and 3.14",
        "\u6211\u5f88\u559c\u6b22\u3002\u4e0b\u5468\u89c1",  # a Chinese sentence and its full stop
    ],
)
def test_ordinary_notes_pass(note: str) -> None:
    assert text_problem("The note", note, allow_newlines=True, region="NL") is None


@pytest.mark.parametrize(
    "name", ["Anna", "Anna-Marie O\u2019Neil", "J. R. Smith", "\u738b\u5c0f\u660e", "Zo\u00eb", "Ben & Jerry"]
)
def test_names_of_people_pass_as_subject_text(name: str) -> None:
    assert text_problem("Your name", name, allow_newlines=False, in_subject=True) is None


@pytest.mark.parametrize("name", ["WIN $1000", "Anna: open now", "Anna \U0001f381", "Anna!!!", "Anna\u202e"])
def test_a_name_in_a_subject_is_letters_spaces_and_ordinary_punctuation(name: str) -> None:
    assert text_problem("Your name", name, allow_newlines=False, in_subject=True) is not None


def test_full_width_letters_are_kept_as_the_letters_they_are() -> None:
    assert normalised("\uff21\uff4e\uff4e\uff41") == "Anna"


@pytest.mark.parametrize(
    ("typed", "contacts"),
    [
        ("bob@example.com", ["bob@example.com"]),
        ("bob@example.com, carol@example.com", ["bob@example.com", "carol@example.com"]),
        (
            "bob@example.com;carol@example.com\r\ndave@example.com",
            ["bob@example.com", "carol@example.com", "dave@example.com"],
        ),
        ("bob@example.com carol@example.com", ["bob@example.com", "carol@example.com"]),
        # A number written with spaces is one number; a `+` starts the next.
        ("06 1234 5678", ["06 1234 5678"]),
        ("+31 6 1234 5678 +32 470 12 34 56", ["+31 6 1234 5678", "+32 470 12 34 56"]),
        ("06 1234 5678, 06 8765 4321", ["06 1234 5678", "06 8765 4321"]),
        ("bob@example.com 06 1234 5678 carol@example.com", ["bob@example.com", "06 1234 5678", "carol@example.com"]),
        (" ,; \n ", []),
        ("", []),
    ],
)
def test_contacts_pasted_into_one_field_are_split(typed: str, contacts: list[str]) -> None:
    from engine.web.public.forms import split_contacts

    assert split_contacts(typed) == contacts


def test_splitting_a_flood_is_linear() -> None:
    import time

    from engine.web.public.forms import split_contacts

    started = time.perf_counter()
    assert len(split_contacts("a@b.c, " * 20_000)) == 20_000
    assert len(split_contacts("1 " * 40_000)) == 1
    assert time.perf_counter() - started < 1.0
