"""The rules a staff password and an API key's scopes must keep, without a database."""

from __future__ import annotations

import pytest

from engine.models import Role, Scope
from engine.services.staff import StaffError, StaffMember, check_password, is_common_password, parse_scopes


@pytest.mark.parametrize(
    "password",
    ["password", "Password", "1q2w3e4r5t6y", "letmein123456", "!!dragon2024!!", "xyxyxyxyxyxy", "zzzzzzzzzzzz"],
)
def test_common_and_trivial_passwords_are_common(password: str) -> None:
    assert is_common_password(password)


@pytest.mark.parametrize("password", ["correct horse battery staple", "plum-Saddle-93-orbit", "Wq8#nR2!vL0pZ"])
def test_long_unusual_passwords_are_not(password: str) -> None:
    assert not is_common_password(password)
    check_password(password)


def test_the_refusal_says_why() -> None:
    with pytest.raises(StaffError, match="common or breached"):
        check_password("qwertyuiop123")


def test_a_key_without_scopes_given_gets_what_its_role_allows() -> None:
    assert parse_scopes(Role.MARKETER, None) == (
        Scope.REDEMPTIONS,
        Scope.METRICS_READ,
        Scope.REWARDS,
        Scope.WEBHOOKS,
    )
    assert parse_scopes(Role.COMPLIANCE, ()) == (Scope.METRICS_READ,)
    assert parse_scopes(Role.ADMIN, ["metrics:read", "metrics:read"]) == (Scope.METRICS_READ,)


def test_keys_are_held_to_their_scopes_and_people_to_their_role() -> None:
    key = StaffMember(1, "shop", Role.ADMIN, kind="api-key", scopes=frozenset({Scope.REDEMPTIONS}))
    assert key.has_scope(Scope.REDEMPTIONS) and not key.has_scope(Scope.METRICS_READ)
    person = StaffMember(1, "m@example.com", Role.MARKETER, team="blue")
    assert person.has_scope(Scope.METRICS_READ)
    assert person.may_see_team("blue") and not person.may_see_team("default")
    assert StaffMember(2, "a@example.com", Role.ADMIN, team="blue").may_see_team("default")
