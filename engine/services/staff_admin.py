"""What an admin does to a staff account from the console: disable, enable, reset its password.

The command line does the same through StaffService directly; the console adds one rule of
its own: an admin acts on other accounts, not their own (their password changes on /account,
and another admin disables them), so that no admin locks themselves out by a click.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from engine.services.staff import StaffError, StaffMember, StaffService, temporary_password

log = logging.getLogger(__name__)


class AccountAction(StrEnum):
    DISABLE = "disable"
    ENABLE = "enable"
    RESET = "reset-password"  # a new random password


class OwnAccount(StaffError):
    """An admin asked to disable their own account or reset its password."""


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
    else:
        password = temporary_password()
        acted = AccountActed(staff.reset_password(user_id, password), action, new_password=password)
        log.warning("password of staff account %s reset by %s", acted.member.id, admin.name)
        return acted
    log.warning("staff account %s %sd by %s", acted.member.id, action.value, admin.name)
    return acted
