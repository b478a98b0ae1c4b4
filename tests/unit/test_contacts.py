import pytest

from engine.contacts import Channel, ContactHasher, InvalidContact, parse_contact


@pytest.mark.parametrize(
    ("raw", "channel", "value"),
    [
        ("anna@example.com", Channel.EMAIL, "anna@example.com"),
        ("  Anna@Example.COM ", Channel.EMAIL, "Anna@example.com"),
        ("06 12345678", Channel.SMS, "+31612345678"),
        ("+1 (415) 555-2671", Channel.SMS, "+14155552671"),
        ("0032 470 12 34 56", Channel.SMS, "+32470123456"),
    ],
)
def test_contacts_are_normalised(raw: str, channel: Channel, value: str) -> None:
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
