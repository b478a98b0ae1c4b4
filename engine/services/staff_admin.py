"""What an admin does to staff accounts and API keys from the console: invite a member, change
their role, disable, enable, reset their password or their two-factor sign-in; make an API key.

The command line does the same through StaffService directly; the console adds one rule of
its own: an admin acts on other accounts, not their own (their password changes on /account,
and another admin disables them or changes their role), so that no admin locks themselves out
by a click. The fields of the forms are checked here, each refusal in words for the field it
is about. Every action is logged: who did what to which account or key, never a password or key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from flask_babel import gettext as _

from engine.models import DEFAULT_TEAM, ROLE_SCOPES, Role
from engine.services.staff import (
    TEAM,
    NewApiKey,
    StaffError,
    StaffMember,
    StaffService,
    normalise_email,
    temporary_password,
)

log = logging.getLogger(__name__)


class AccountAction(StrEnum):
    DISABLE = "disable"
    ENABLE = "enable"
    RESET = "reset-password"  # a new random password
    RESET_TWO_FACTOR = "reset-two-factor"  # the authenticator was lost: two-factor off
    INVITE = "invite"  # a new account, with a random first password


class OwnAccount(StaffError):
    """An admin asked to disable their own account, reset its password or two-factor, or change its role."""


class InvalidFields(StaffError):
    """A form's fields that cannot be used as typed: field name -> why, in words for people."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {why}" for name, why in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class AccountActed:
    member: StaffMember
    action: AccountAction
    # Set only by a reset: the random password, to be shown once to the admin and kept nowhere.
    new_password: str | None = None


def act_on_account(staff: StaffService, admin: StaffMember, user_id: int, action: AccountAction) -> AccountActed:
    """Raises OwnAccount, or UnknownStaff when there is no such account. Every action is logged
    (who did what to which account; never the password)."""
    if user_id == admin.id and action is not AccountAction.ENABLE:
        raise OwnAccount("Not your own account")
    if action is AccountAction.DISABLE:
        acted = AccountActed(staff.disable_user(user_id), action)
    elif action is AccountAction.ENABLE:
        acted = AccountActed(staff.enable_user(user_id), action)
    elif action is AccountAction.RESET_TWO_FACTOR:
        acted = AccountActed(staff.reset_two_factor(user_id), action)
        log.warning("two-factor sign-in of staff account %s turned off by %s", acted.member.id, admin.name)
        return acted
    else:
        password = temporary_password()
        acted = AccountActed(staff.reset_password(user_id, password), action, new_password=password)
        log.warning("password of staff account %s reset by %s", acted.member.id, admin.name)
        return acted
    log.warning("staff account %s %sd by %s", acted.member.id, action.value, admin.name)
    return acted


@dataclass(frozen=True)
class MemberFields:
    """The invitation form, as typed."""

    email: str = ""
    role: str = ""
    team: str = ""


def invite_member(staff: StaffService, admin: StaffMember, fields: MemberFields) -> AccountActed:
    """A new account with a random first password, shown once to the admin (its owner chooses
    their own on /account). Raises InvalidFields."""
    errors: dict[str, str] = {}
    email = _email_of(fields.email, errors)
    role = _role_of(fields.role, errors)
    team = _team_of(fields.team, errors)
    if errors or email is None or role is None:
        raise InvalidFields(errors)
    password = temporary_password()
    try:
        member = staff.create_user(email, role.value, password, team=team)
    except StaffError:
        # The only refusal left once the fields are checked: the address has an account.
        raise InvalidFields({"email": _("There is already an account for this address.")}) from None
    log.warning("staff account %s (%s, team %s) created by %s", member.id, member.role, member.team, admin.name)
    return AccountActed(member, AccountAction.INVITE, new_password=password)


def change_role(staff: StaffService, admin: StaffMember, user_id: int, role: str) -> StaffMember:
    """Raises OwnAccount, InvalidFields (no such role), LastAdmin or UnknownStaff."""
    if user_id == admin.id:
        raise OwnAccount("Not your own account")
    errors: dict[str, str] = {}
    new_role = _role_of(role, errors)
    if new_role is None:
        raise InvalidFields(errors)
    member = staff.change_role(user_id, new_role.value)
    log.warning("role of staff account %s changed to %s by %s", member.id, member.role, admin.name)
    return member


@dataclass(frozen=True)
class KeyFields:
    """The new-key form, as typed."""

    name: str = ""
    role: str = ""
    team: str = ""
    scopes: tuple[str, ...] = ()


def create_key(staff: StaffService, admin: StaffMember, fields: KeyFields) -> NewApiKey:
    """A new key, whose secret the admin sees once. Raises InvalidFields."""
    errors: dict[str, str] = {}
    name = fields.name.strip()
    if not 0 < len(name) <= 100:
        errors["name"] = _("Give the key a name of 1 to 100 characters, such as the client that will use it.")
    role = _role_of(fields.role, errors)
    team = _team_of(fields.team, errors)
    if role is not None:
        allowed = [scope.value for scope in ROLE_SCOPES[role]]
        if not set(fields.scopes) <= set(allowed):
            errors["scopes"] = _(
                "A key of this role may have only these scopes: %(scopes)s.", scopes=", ".join(allowed)
            )
    if errors or role is None:
        raise InvalidFields(errors)
    try:
        key = staff.create_api_key(name, role.value, fields.scopes or None, team=team)
    except StaffError:
        raise InvalidFields({"name": _("There is already a key with this name.")}) from None
    log.warning("API key %r (%s…, %s) created by %s", key.name, key.secret[:12], key.role, admin.name)
    return key


def _email_of(typed: str, errors: dict[str, str]) -> str | None:
    try:
        return normalise_email(typed)
    except StaffError:
        errors["email"] = _("Type an e-mail address, such as name@example.com.")
        return None


def _role_of(typed: str, errors: dict[str, str]) -> Role | None:
    try:
        return Role(typed)
    except ValueError:
        errors["role"] = _("Choose a role from the list.")
        return None


def _team_of(typed: str, errors: dict[str, str]) -> str:
    team = typed.strip().lower() or DEFAULT_TEAM
    if not TEAM.fullmatch(team):
        errors["team"] = _("A team name is 1 to 64 lower-case letters, digits and hyphens.")
    return team
