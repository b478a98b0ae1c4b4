import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.contacts import ContactHasher, InvalidContact, parse_contact


@pytest.mark.parametrize(
    ("raw", "channel", "value"),
    [
        ("anna@example.com", "email", "anna@example.com"),
        ("  Anna@Example.COM ", "email", "Anna@example.com"),
        ("06 12345678", "sms", "+31612345678"),
        ("+1 (415) 555-2671", "sms", "+14155552671"),
        ("0032 470 12 34 56", "sms", "+32470123456"),
    ],
)
def test_contacts_are_normalised(raw: str, channel: str, value: str) -> None:
    contact = parse_contact(raw, default_region="NL")
    assert contact.channel is channel
    assert contact.value == value


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "anna@", "anna", "@example.com", "anna@@example.com", "12", "+31 6 1234", "x" * 300 + "@example.com"],
)
def test_invalid_contacts_are_refused_with_a_reason(raw: str) -> None:
    with pytest.raises(InvalidContact) as error:
        parse_contact(raw, default_region="NL")
    assert str(error.value)


def test_default_region_decides_national_numbers() -> None:
    assert parse_contact("(415) 555-2671", "US").value == "+14155552671"
    with pytest.raises(InvalidContact):
        parse_contact("(415) 555-2671", "NL")


def test_hash_is_keyed_and_case_insensitive_for_email() -> None:
    hasher = ContactHasher("k" * 32)
    other = ContactHasher("x" * 32)
    lower = parse_contact("anna@example.com", "NL")
    upper = parse_contact("ANNA@EXAMPLE.COM", "NL")
    assert hasher.hash(lower) == hasher.hash(upper)
    assert hasher.hash(lower) != other.hash(lower)
    assert "anna" not in hasher.hash(lower)


def test_the_same_digits_as_email_and_phone_hash_differently() -> None:
    hasher = ContactHasher("k" * 32)
    phone = parse_contact("+31612345678", "NL")
    email = parse_contact("+31612345678@example.com", "NL")
    assert hasher.hash(phone) != hasher.hash(email)


def test_masked_contacts_hide_most_of_the_address() -> None:
    assert parse_contact("anna@example.com", "NL").masked() == "a***@example.com"
    assert parse_contact("+31612345678", "NL").masked() == "+3161****78"


def test_short_hash_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="16"):
        ContactHasher("short")


def test_disposable_mail_services_are_recognised() -> None:
    from engine.contacts import is_disposable

    assert is_disposable(parse_contact("x@mailinator.com", "NL"))
    assert is_disposable(parse_contact("x@Mailinator.COM", "NL"))
    assert not is_disposable(parse_contact("x@gmail.com", "NL"))
    assert not is_disposable(parse_contact("+31612345678", "NL"))


def test_internationalised_local_parts_are_refused_since_relays_cannot_carry_them() -> None:
    with pytest.raises(InvalidContact):
        parse_contact("jörg@example.com", "NL")
    # An internationalised domain is fine: it is kept, and travels, as punycode.
    assert parse_contact("jorg@exämple.com", "NL").value == "jorg@xn--exmple-cua.com"


def wide(text: str) -> str:
    """The full-width forms of digits, plus and parentheses that East Asian keyboards type."""
    return text.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789+()"})


# -- one person, one identity --------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "victim@gmail.com",
        "Victim@Gmail.com",
        "victim+x@gmail.com",
        "v.ictim@gmail.com",
        "v.i.c.t.i.m+offers@gmail.com",
        "victim@googlemail.com",
        "V.ictim+x@GoogleMail.com",
    ],
)
def test_every_spelling_of_a_gmail_inbox_is_one_identity(spelling: str) -> None:
    hasher = ContactHasher("k" * 32)
    victim = parse_contact("victim@gmail.com", "NL")
    contact = parse_contact(spelling, "NL")
    assert hasher.hash(contact) == hasher.hash(victim)
    # The message still goes to the address as typed.
    assert contact.value == spelling.split("@")[0] + "@" + spelling.split("@")[1].lower()


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("anna+news@outlook.com", "anna@outlook.com"),
        ("anna+news@hotmail.com", "anna@hotmail.com"),
        ("anna+news@live.com", "anna@live.com"),
        ("anna-news@yahoo.com", "anna@yahoo.com"),
        ("anna+news@fastmail.com", "anna@fastmail.com"),
        ("anna+news@icloud.com", "anna@icloud.com"),
        ("anna+news@proton.me", "anna@proton.me"),
    ],
)
def test_subaddresses_of_large_providers_are_their_inbox(one: str, other: str) -> None:
    assert parse_contact(one, "NL").identity == parse_contact(other, "NL").identity


@pytest.mark.parametrize(
    ("one", "other"),
    [
        # Elsewhere a dot or a tag may be another person's mailbox: the plain address decides.
        ("a.nna@example.com", "anna@example.com"),
        ("anna+news@example.com", "anna@example.com"),
        # Only Gmail ignores dots; Outlook's and Yahoo's are real characters.
        ("a.nna@outlook.com", "anna@outlook.com"),
        ("a.nna@yahoo.com", "anna@yahoo.com"),
        # Yahoo's separator is the dash; a plus there is not a tag.
        ("anna+news@yahoo.com", "anna@yahoo.com"),
        # Hotmail and Outlook are separate mailboxes, only Googlemail is an alias of Gmail.
        ("anna@hotmail.com", "anna@outlook.com"),
    ],
)
def test_other_spellings_stay_other_people(one: str, other: str) -> None:
    assert parse_contact(one, "NL").identity != parse_contact(other, "NL").identity


def test_the_hash_older_versions_kept_is_known_for_a_non_canonical_spelling() -> None:
    hasher = ContactHasher("k" * 32)
    assert hasher.legacy_hash(parse_contact("anna@example.com", "NL")) is None
    assert hasher.legacy_hash(parse_contact("+31612345678", "NL")) is None
    tagged = parse_contact("V.ictim+x@gmail.com", "NL")
    assert hasher.legacy_hash(tagged) == hasher.hash_text("email:v.ictim+x@gmail.com")


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("+31612345678", "US"),
        ("+31 6 12345678", "US"),
        ("+31.6.12.34.56.78", "US"),
        ("+31-6-1234-5678", "US"),
        ("+31 (0)6 12345678", "US"),
        ("0031 6 12345678", "US"),
        ("0031612345678", "NL"),
        ("06 12345678", "NL"),
        ("(06) 12-34-56-78", "NL"),
        (wide("+31 6 12345678"), "US"),
        (wide("0612345678"), "NL"),
        ("tel:+31-6-12345678", "US"),
        ("+31 6 12345678 ext. 12", "US"),
        ("tel:+31612345678;ext=12", "US"),
    ],
)
def test_every_way_of_typing_a_number_is_one_e164_number(raw: str, region: str) -> None:
    assert parse_contact(raw, region).value == "+31612345678"


_SEPARATORS = st.sampled_from([" ", "-", ".", "", "  "])


@given(
    national=st.sampled_from(["4155552671", "2025550143", "6175550199"]),
    first=_SEPARATORS,
    second=_SEPARATORS,
    prefix=st.sampled_from(["", "+1 ", "+1", "1 ", "001 ", wide("+1 ")]),
    parentheses=st.booleans(),
    full_width=st.booleans(),
    extension=st.sampled_from(["", " ext. 7", " x12", ", ext 3"]),
)
def test_a_us_number_is_one_identity_however_it_is_typed(
    national: str, first: str, second: str, prefix: str, parentheses: bool, full_width: bool, extension: str
) -> None:
    area, exchange, line = national[:3], national[3:6], national[6:]
    typed = prefix + (f"({area})" if parentheses else area) + first + exchange + second + line + extension
    if full_width:
        typed = wide(typed)
    assert parse_contact(typed, "US").value == "+1" + national
    assert parse_contact(f"tel:+1-{area}-{exchange}-{line}", "NL").value == "+1" + national


_LOCAL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)


@given(
    local=_LOCAL,
    dots=st.sets(st.integers(min_value=1, max_value=11)),
    tag=st.one_of(st.just(""), _LOCAL),
    domain=st.sampled_from(["gmail.com", "googlemail.com", "GMail.com"]),
    upper=st.booleans(),
)
def test_any_dotting_tagging_or_casing_of_a_gmail_address_is_its_inbox(
    local: str, dots: set[int], tag: str, domain: str, upper: bool
) -> None:
    dotted = "".join(("." if i in dots and 0 < i < len(local) else "") + ch for i, ch in enumerate(local))
    typed = f"{dotted}{'+' + tag if tag else ''}@{domain}"
    typed = typed.upper() if upper else typed
    assert parse_contact(typed, "NL").identity == f"email:{local}@gmail.com"
