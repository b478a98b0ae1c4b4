"""Staff accounts and API keys: who may use the console and the API, and as what.

Passwords are hashed with scrypt (werkzeug); failed sign-ins are throttled per account and
per address in Redis, so that guessing a password is slow however many web processes
answer. API keys are long random strings shown once; only their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from engine.caps import Limiter, Rule
from engine.db import Database, utcnow
from engine.models import ApiKey, Role, User

log = logging.getLogger(__name__)

PASSWORD_MIN = 12
# scrypt reads all of it: a megabyte "password" would be a cheap way to burn CPU.
PASSWORD_MAX = 256
API_KEY_PREFIX = "flk_"


FAILED_SIGN_INS_PER_ACCOUNT = 10
FAILED_SIGN_INS_PER_ADDRESS = 50


class StaffError(ValueError):
    """A staff account or key that cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class SignInThrottled(Exception):
    retry_after: timedelta


@dataclass(frozen=True)
class StaffMember:
    """Who is acting: a signed-in person or an API key. Shaped for Flask-Login."""

    id: int
    name: str  # the e-mail address, or the key's name
    role: Role
    kind: str = "user"  # "user" or "api-key"

    def may(self, role: Role) -> bool:
        return self.role.may_act_as(role)

    # Flask-Login's user protocol.
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)


@dataclass(frozen=True)
class NewApiKey:
    name: str
    role: Role
    secret: str  # shown once, never stored


def normalise_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise StaffError(f"not an e-mail address: {error}") from None


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise StaffError(f"unknown role {value!r}: choose one of {', '.join(r.value for r in Role)}") from None


def check_password(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise StaffError(f"the password must be at least {PASSWORD_MIN} characters long")
    if len(password) > PASSWORD_MAX:
        raise StaffError(f"the password must be at most {PASSWORD_MAX} characters long")


class StaffService:
    def __init__(self, db: Database, limiter: Limiter) -> None:
        self._db = db
        self._limiter = limiter

    # -- people ----------------------------------------------------------------------------

    def create_user(self, email: str, role: str, password: str) -> StaffMember:
        address = normalise_email(email)
        staff_role = parse_role(role)
        check_password(password)
        try:
            with self._db.transaction() as session:
                user = User(email=address, role=staff_role.value, password_hash=generate_password_hash(password))
                session.add(user)
                session.flush()
                return StaffMember(user.id, user.email, staff_role)
        except IntegrityError:
            raise StaffError(f"there is already an account for {address}") from None

    def sign_in(self, email: str, password: str, client_ip: str | None) -> StaffMember | None:
        """The member when the password is right; None when not. Raises SignInThrottled after
        too many failures for this account or from this address, right password or not."""
        rules = self._throttle_rules(email, client_ip)
        decision = self._limiter.acquire(rules, dry_run=True)
        if not decision.allowed:
            raise SignInThrottled(decision.retry_after or timedelta(minutes=15))
        member = self._check(email, password[:PASSWORD_MAX])
        if member is None:
            self._limiter.acquire(rules)  # only failures count
        return member

    def load(self, member_id: str) -> StaffMember | None:
        """The signed-in person behind a session, if their account still exists and is active."""
        if not member_id.isdigit():
            return None
        with self._db.reading() as session:
            user = session.get(User, int(member_id))
            if user is None or not user.active:
                return None
            return StaffMember(user.id, user.email, Role(user.role))

    def _check(self, email: str, password: str) -> StaffMember | None:
        try:
            address = normalise_email(email)
        except StaffError:
            address = ""
        with self._db.transaction() as session:
            user = session.scalar(select(User).where(User.email == address)) if address else None
            if user is None or not user.active:
                check_password_hash(_decoy_hash(), password)
                return None
            if not check_password_hash(user.password_hash, password):
                return None
            user.last_login_at = utcnow()
            return StaffMember(user.id, user.email, Role(user.role))

    def _throttle_rules(self, email: str, client_ip: str | None) -> list[Rule]:
        try:
            address = normalise_email(email)
        except StaffError:
            address = email.strip().lower()
        # Keyed like the account itself, so that spellings of one address share one count.
        account = hashlib.sha256(address.encode()).hexdigest()[:32]
        per_account = FAILED_SIGN_INS_PER_ACCOUNT
        rules = [Rule("failed sign-ins per account", f"signin:account:{account}", per_account, _QUARTER)]
        if client_ip:
            address = hashlib.sha256(client_ip.encode()).hexdigest()[:32]
            per_address = FAILED_SIGN_INS_PER_ADDRESS
            rules.append(Rule("failed sign-ins per address", f"signin:ip:{address}", per_address, _HOUR))
        return rules

    # -- API keys ----------------------------------------------------------------------------

    def create_api_key(self, name: str, role: str) -> NewApiKey:
        name = name.strip()
        if not name or len(name) > 100:
            raise StaffError("an API key needs a name of 1 to 100 characters")
        staff_role = parse_role(role)
        secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            with self._db.transaction() as session:
                session.add(ApiKey(name=name, role=staff_role.value, prefix=secret[:12], key_hash=_digest(secret)))
        except IntegrityError:
            raise StaffError(f"there is already an API key named {name!r}") from None
        return NewApiKey(name, staff_role, secret)

    def authenticate_key(self, secret: str) -> StaffMember | None:
        if not secret.startswith(API_KEY_PREFIX) or len(secret) > 200:
            return None
        with self._db.transaction() as session:
            key = session.scalar(select(ApiKey).where(ApiKey.key_hash == _digest(secret)))
            if key is None or key.revoked_at is not None:
                return None
            now = utcnow()
            # Once a minute is precise enough, and spares a write on every request.
            if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=1):
                key.last_used_at = now
            return StaffMember(key.id, key.name, Role(key.role), kind="api-key")


_QUARTER = timedelta(minutes=15)
_HOUR = timedelta(hours=1)


@cache
def _decoy_hash() -> str:
    """Checked against when the account does not exist, so that a wrong e-mail address takes
    as long as a wrong password and signing in does not reveal who has an account."""
    return generate_password_hash(secrets.token_hex(16))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
