"""Staff accounts and API keys: who may use the console and the API, and as what.

Passwords are hashed with scrypt (werkzeug) and refused when short or on a list of common
and breached passwords. Failed sign-ins (and two-factor codes) are throttled in Redis per
address and per account from that address, so that guessing is slow however many web
processes answer, while the account's owner, signing in from elsewhere, is never locked out
by someone else's guesses. Sessions carry the account's session epoch: raising it ends them
all. API keys are long random strings shown once; only their SHA-256 is stored, with the
scopes they were given.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache

import pyotp
from babel import Locale
from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from engine.caps import Limiter, Rule, network_of
from engine.db import Database, utcnow
from engine.i18n import catalog_locales
from engine.models import DEFAULT_TEAM, ROLE_SCOPES, ApiKey, Role, Scope, User
from engine.time_zones import is_time_zone

log = logging.getLogger(__name__)

PASSWORD_MIN = 12
# scrypt reads all of it: a megabyte "password" would be a cheap way to burn CPU.
PASSWORD_MAX = 256
API_KEY_PREFIX = "flk_"


# Failures (wrong passwords and wrong codes) per account from one address, and from one
# address whatever the account. An address is an IPv4 address or an IPv6 /64 (a client has a
# whole /64 and can take a new address of it for every guess). No lockout per account alone:
# it would let anyone lock the owner out by guessing from elsewhere.
FAILED_SIGN_INS_PER_ACCOUNT = 10
FAILED_SIGN_INS_PER_ADDRESS = 50
# Guesses at one account from many addresses together are slowed down instead: after this many
# failures, one try every SLOWED_SIGN_IN_INTERVAL (the owner waits that long at most).
FAILED_SIGN_INS_PER_ACCOUNT_EVERYWHERE = 100
SLOWED_SIGN_IN_INTERVAL = timedelta(seconds=10)

TOTP_ISSUER = "Fluister"
TEAM = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


class StaffError(ValueError):
    """A staff account or key that cannot be made as asked; the message says why."""


class UnknownStaff(StaffError):
    """No account with that address, or no key with that id."""


class LastAdmin(StaffError):
    """The change would leave no active admin to manage staff."""


class WrongPassword(StaffError):
    """The current password given to change it is not the account's."""


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
    team: str = DEFAULT_TEAM
    scopes: frozenset[Scope] = field(default_factory=frozenset)  # an API key's; people have none
    session_epoch: int = 0
    two_factor: bool = False  # signing in asks for a TOTP code too
    # The console's language and time zone this person chose (None: their browser's language,
    # the installation's DEFAULT_TIME_ZONE); an API key has neither.
    locale: str | None = None
    time_zone: str | None = None

    def may(self, role: Role) -> bool:
        return self.role.may_act_as(role)

    def has_scope(self, scope: Scope) -> bool:
        """A key may do only what it was made for; a signed-in person is limited by role alone."""
        return self.kind != "api-key" or scope in self.scopes

    @property
    def campaigns_of_team(self) -> str | None:
        """The team whose campaigns this member works on; None: every team's. Marketers work on
        their own team's; admins and compliance (who audit everything, and change no campaign)
        see all of them."""
        return self.team if self.role is Role.MARKETER else None

    def may_see_team(self, team: str) -> bool:
        return self.campaigns_of_team in (None, team)

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
    scopes: tuple[Scope, ...] = ()
    team: str = DEFAULT_TEAM


@dataclass(frozen=True)
class AccountView:
    """An account as an admin lists it: never its password hash or two-factor secret."""

    id: int
    email: str
    role: str
    team: str
    active: bool
    two_factor: bool
    created_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True)
class ApiKeyView:
    """A key as an admin lists it: its prefix tells keys apart; the key itself is never kept."""

    id: int
    name: str
    role: str
    team: str
    scopes: tuple[str, ...]
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class TotpEnrolment:
    """A new secret, to be typed (or scanned, as the otpauth URI) into an authenticator app;
    it counts only once a code made with it is confirmed."""

    secret: str
    uri: str


def staff_locales() -> tuple[str, ...]:
    """The languages the console speaks (those with catalogs)."""
    return catalog_locales()


def staff_locale_choices() -> list[tuple[str, str]]:
    """(code, the language's name in that language), as a language menu offers them."""
    return [(code, (Locale.parse(code).get_display_name(code) or code).capitalize()) for code in staff_locales()]


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


def parse_team(value: str) -> str:
    team = value.strip().lower()
    if not TEAM.fullmatch(team):
        raise StaffError(f"not a team name {value!r}: 1 to 64 lower-case letters, digits and hyphens")
    return team


def parse_scopes(role: Role, values: Iterable[str] | None) -> tuple[Scope, ...]:
    """The scopes asked for (all the role allows when none are), refusing any the role does not allow."""
    allowed = ROLE_SCOPES[role]
    if not values:
        return allowed
    scopes: list[Scope] = []
    for value in values:
        try:
            scope = Scope(value.strip())
        except ValueError:
            raise StaffError(f"unknown scope {value!r}: choose from {', '.join(s.value for s in Scope)}") from None
        if scope not in allowed:
            raise StaffError(f"a {role} key cannot have the scope {scope}: it allows {', '.join(allowed)}")
        if scope not in scopes:
            scopes.append(scope)
    return tuple(scopes)


def check_password(password: str) -> None:
    """Refuses a password too short, too long or common, saying why in the language of the
    moment (the account page's; English on the command line)."""
    if len(password) < PASSWORD_MIN:
        raise StaffError(_("the password must be at least %(count)s characters long", count=PASSWORD_MIN))
    if len(password) > PASSWORD_MAX:
        raise StaffError(_("the password must be at most %(count)s characters long", count=PASSWORD_MAX))
    if is_common_password(password):
        raise StaffError(_("that password is on a list of common or breached passwords; choose another"))


def temporary_password() -> str:
    """A random password an admin hands over once (22 characters, 128 bits): its owner replaces
    it on /account."""
    return secrets.token_urlsafe(16)


def is_common_password(password: str) -> bool:
    """On the list of the 30,000 most common passwords of leaked password dumps (zxcvbn's
    `passwords` list), whatever its capitals, or one of them padded with digits and symbols
    ("Password123456!"), or one short piece repeated ("abcabcabcabc")."""
    lowered = password.lower()
    core = lowered.strip("0123456789!@#$%^&*()-_=+.?,;:'\"~ ")
    return (
        lowered in _common_passwords()
        or (len(core) >= 4 and core in _common_passwords())
        or re.fullmatch(r"(.{1,4})\1+", lowered) is not None
    )


@cache
def _common_passwords() -> frozenset[str]:
    # Imported on first use, not with this module: zxcvbn's lists are megabytes of literals.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


class StaffService:
    def __init__(self, db: Database, limiter: Limiter) -> None:
        self._db = db
        self._limiter = limiter

    # -- people ----------------------------------------------------------------------------

    def create_user(self, email: str, role: str, password: str, team: str = DEFAULT_TEAM) -> StaffMember:
        address = normalise_email(email)
        staff_role = parse_role(role)
        staff_team = parse_team(team)
        check_password(password)
        try:
            with self._db.transaction() as session:
                user = User(
                    email=address,
                    role=staff_role.value,
                    team=staff_team,
                    password_hash=generate_password_hash(password),
                )
                session.add(user)
                session.flush()
                return _member(user)
        except IntegrityError:
            raise StaffError(f"there is already an account for {address}") from None

    def sign_in(self, email: str, password: str, client_ip: str | None) -> StaffMember | None:
        """The member when the password is right; None when not. Raises SignInThrottled after
        too many failures from this address (for this account, or for any), right password or
        not, and for a while after many failures at this account from everywhere together.
        A member with `two_factor` is not signed in yet: `verify_code` comes next."""
        rules = self._throttle_rules(email, client_ip)
        self._refuse_if_throttled(rules)
        member = self._check(email, password[:PASSWORD_MAX])
        if member is None:
            self._limiter.acquire(rules)  # only failures count
        return member

    def verify_code(
        self, member_id: int, code: str, client_ip: str | None, *, at: float | None = None
    ) -> StaffMember | None:
        """The member when `code` is their authenticator's current code (or the one just before
        or after, for clocks that drift) and has not been used yet; None when not. Wrong codes
        count like wrong passwords, and are throttled the same way."""
        with self._db.reading() as session:
            user = session.get(User, member_id)
            email = user.email if user is not None else ""
        rules = self._throttle_rules(email, client_ip)
        self._refuse_if_throttled(rules)
        member = self._accept_code(member_id, code.strip().replace(" ", ""), time.time() if at is None else at)
        if member is None:
            self._limiter.acquire(rules)
        return member

    def load(self, member_id: str, session_epoch: object = None) -> StaffMember | None:
        """The signed-in person behind a session, if their account is still active and the
        session is of its current epoch (not signed out, by them or an admin, since)."""
        if not member_id.isdigit():
            return None
        with self._db.reading() as session:
            user = session.get(User, int(member_id))
            if user is None or not user.active or session_epoch != user.session_epoch:
                return None
            return _member(user)

    def end_sessions(self, member_id: int) -> int:
        """Sign the person out everywhere: every session made before now stops working. Returns
        the new epoch (a session that should go on, such as the one changing a password, takes it)."""
        with self._db.transaction() as session:
            user = session.get(User, member_id, with_for_update=True)
            if user is None:
                raise StaffError("there is no such account")
            user.session_epoch += 1
            return user.session_epoch

    def change_password(self, member_id: int, current: str, new: str) -> int:
        """A new password, given the current one; every other session ends. Returns the new epoch."""
        check_password(new)
        with self._db.transaction() as session:
            user = session.get(User, member_id, with_for_update=True)
            if user is None or not check_password_hash(user.password_hash, current[:PASSWORD_MAX]):
                raise WrongPassword(_("the current password is not right"))
            user.password_hash = generate_password_hash(new)
            user.session_epoch += 1
            return user.session_epoch

    def disable_user(self, email: str | int) -> StaffMember:
        """No more signing in, and every session of the account ends now."""
        with self._db.transaction() as session:
            user = _locked_user(session, email)
            user.active = False
            user.session_epoch += 1
            return _member(user)

    def enable_user(self, who: str | int) -> StaffMember:
        """Signing in again with the account's password (sessions ended by disabling stay ended)."""
        with self._db.transaction() as session:
            user = _locked_user(session, who)
            user.active = True
            return _member(user)

    def reset_password(self, who: str | int, password: str) -> StaffMember:
        """A new password set by an admin, under the same rules as any; every session of the
        account ends, since whoever had the old password may be signed in."""
        check_password(password)
        with self._db.transaction() as session:
            user = _locked_user(session, who)
            user.password_hash = generate_password_hash(password)
            user.session_epoch += 1
            return _member(user)

    def list_users(self) -> list[AccountView]:
        with self._db.reading() as session:
            return [
                AccountView(
                    u.id,
                    u.email,
                    u.role,
                    u.team,
                    u.active,
                    bool(u.totp_secret),
                    u.created_at,
                    u.last_login_at,
                )
                for u in session.scalars(select(User).order_by(User.email))
            ]

    def change_role(self, who: str | int, role: str) -> StaffMember:
        """A new role for the account; its sessions go on (each request reads the role afresh).
        Refused (LastAdmin) when it would leave no active admin."""
        new_role = parse_role(role)
        with self._db.transaction() as session:
            # Every admin row locked, so that two admins demoting each other at once cannot
            # both see the other one still there.
            admins = session.scalars(select(User).where(User.role == Role.ADMIN.value).with_for_update()).all()
            user = _locked_user(session, who)
            others = [a for a in admins if a.id != user.id and a.active]
            if user.role == Role.ADMIN.value and new_role is not Role.ADMIN and not others:
                raise LastAdmin("there would be no active admin left")
            user.role = new_role.value
            return _member(user)

    def reset_two_factor(self, email: str | int) -> StaffMember:
        """Two-factor sign-in off (the authenticator was lost); the account's sessions end too,
        since whoever asked for this may not be its owner."""
        with self._db.transaction() as session:
            user = _locked_user(session, email)
            user.totp_secret = None
            user.totp_last_step = None
            user.session_epoch += 1
            return _member(user)

    # -- two-factor sign-in ---------------------------------------------------------------------

    def begin_totp(self, member: StaffMember) -> TotpEnrolment:
        secret = pyotp.random_base32()
        uri = pyotp.TOTP(secret).provisioning_uri(name=member.name, issuer_name=TOTP_ISSUER)
        return TotpEnrolment(secret, uri)

    def confirm_totp(self, member_id: int, secret: str, code: str, *, at: float | None = None) -> bool:
        """Turn two-factor sign-in on with `secret`, if `code` proves the app has it."""
        step = _matching_step(secret, code.strip().replace(" ", ""), time.time() if at is None else at)
        if step is None:
            return False
        with self._db.transaction() as session:
            user = session.get(User, member_id, with_for_update=True)
            if user is None:
                return False
            user.totp_secret = secret
            user.totp_last_step = step  # the confirming code cannot sign anyone in afterwards
        return True

    def set_preferences(self, member_id: int, locale: str | None, time_zone: str | None) -> StaffMember:
        """The console's language and time zone for this person (None: the browser's language,
        the installation's default zone). Both are checked before anything is stored."""
        if locale is not None and locale not in staff_locales():
            raise StaffError(f"no console language {locale!r}: choose one of {', '.join(staff_locales())}")
        if time_zone is not None and not is_time_zone(time_zone):
            raise StaffError(f"not a time zone: {time_zone!r} (an IANA name such as Europe/Amsterdam)")
        with self._db.transaction() as session:
            user = session.get(User, member_id, with_for_update=True)
            if user is None:
                raise UnknownStaff("there is no such account")
            user.locale = locale
            user.time_zone = time_zone
            return _member(user)

    def disable_totp(self, member_id: int) -> None:
        with self._db.transaction() as session:
            session.execute(update(User).where(User.id == member_id).values(totp_secret=None, totp_last_step=None))

    def _accept_code(self, member_id: int, code: str, at: float) -> StaffMember | None:
        with self._db.transaction() as session:
            # Locked: two requests with the same code cannot both see it unused.
            user = session.get(User, member_id, with_for_update=True)
            if user is None or not user.active or not user.totp_secret:
                return None
            step = _matching_step(user.totp_secret, code, at)
            if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
                return None
            user.totp_last_step = step
            user.last_login_at = utcnow()
            return _member(user)

    # -- checks ---------------------------------------------------------------------------------

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
            if not user.totp_secret:
                user.last_login_at = utcnow()
            return _member(user)

    def _refuse_if_throttled(self, rules: list[Rule]) -> None:
        decision = self._limiter.acquire(rules, dry_run=True)
        if not decision.allowed:
            raise SignInThrottled(decision.retry_after or timedelta(minutes=15))

    def _throttle_rules(self, email: str, client_ip: str | None) -> list[Rule]:
        try:
            address = normalise_email(email)
        except StaffError:
            address = email.strip().lower()
        # Keyed like the account itself, so that spellings of one address share one count.
        account = hashlib.sha256(address.encode()).hexdigest()[:32]
        network = network_of(client_ip, ipv4_prefix=32) if client_ip else "unknown"
        origin = hashlib.sha256(network.encode()).hexdigest()[:32]
        burst = FAILED_SIGN_INS_PER_ACCOUNT_EVERYWHERE
        return [
            Rule(
                "failed sign-ins per account from one address",
                f"signin:account:{account}:ip:{origin}",
                FAILED_SIGN_INS_PER_ACCOUNT,
                _QUARTER,
            ),
            Rule("failed sign-ins per address", f"signin:ip:{origin}", FAILED_SIGN_INS_PER_ADDRESS, _HOUR),
            # GCRA: `burst` failures at once, then one each interval as the count drains.
            Rule("failed sign-ins per account", f"signin:account:{account}", burst, SLOWED_SIGN_IN_INTERVAL * burst),
        ]

    # -- API keys ----------------------------------------------------------------------------

    def create_api_key(
        self, name: str, role: str, scopes: Iterable[str] | None = None, team: str = DEFAULT_TEAM
    ) -> NewApiKey:
        name = name.strip()
        if not name or len(name) > 100:
            raise StaffError("an API key needs a name of 1 to 100 characters")
        staff_role = parse_role(role)
        key_scopes = parse_scopes(staff_role, scopes)
        key_team = parse_team(team)
        secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            with self._db.transaction() as session:
                session.add(
                    ApiKey(
                        name=name,
                        role=staff_role.value,
                        team=key_team,
                        scopes=" ".join(key_scopes),
                        prefix=secret[:12],
                        key_hash=_digest(secret),
                    )
                )
        except IntegrityError:
            raise StaffError(f"there is already an API key named {name!r}") from None
        return NewApiKey(name, staff_role, secret, key_scopes, key_team)

    def list_api_keys(self) -> list[ApiKeyView]:
        with self._db.reading() as session:
            return [_key_view(k) for k in session.scalars(select(ApiKey).order_by(ApiKey.id))]

    def revoke_api_key(self, key_id: int) -> tuple[ApiKeyView, bool]:
        """The key stops working now. Returns it, and whether it was revoked just now (False:
        it already was)."""
        with self._db.transaction() as session:
            key = session.get(ApiKey, key_id, with_for_update=True)
            if key is None:
                raise UnknownStaff(f"there is no API key {key_id}")
            fresh = key.revoked_at is None
            if fresh:
                key.revoked_at = utcnow()
            return _key_view(key), fresh

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
            scopes = frozenset(Scope(s) for s in key.scopes.split() if s in Scope.__members__.values())
            return StaffMember(key.id, key.name, Role(key.role), kind="api-key", team=key.team, scopes=scopes)


def _locked_user(session: Session, who: str | int) -> User:
    """The account by its address (the command line) or its id (the console), locked."""
    if isinstance(who, int):
        user = session.get(User, who, with_for_update=True)
        if user is None:
            raise UnknownStaff(f"there is no account {who}")
        return user
    try:
        address = normalise_email(who)
    except StaffError as error:
        raise UnknownStaff(f"there is no account for {who!r}: {error}") from None
    user = session.scalar(select(User).where(User.email == address).with_for_update())
    if user is None:
        raise UnknownStaff(f"there is no account for {address}")
    return user


def _key_view(key: ApiKey) -> ApiKeyView:
    return ApiKeyView(
        key.id,
        key.name,
        key.role,
        key.team,
        tuple(key.scopes.split()),
        key.prefix,
        key.created_at,
        key.last_used_at,
        key.revoked_at,
    )


def _member(user: User) -> StaffMember:
    return StaffMember(
        user.id,
        user.email,
        Role(user.role),
        team=user.team,
        session_epoch=user.session_epoch,
        two_factor=bool(user.totp_secret),
        locale=user.locale,
        time_zone=user.time_zone,
    )


def _matching_step(secret: str, code: str, at: float) -> int | None:
    """The time step (of 30 s) whose code `code` is, among the current one and its neighbours."""
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    step = int(at) // totp.interval
    for candidate in (step, step - 1, step + 1):
        if secrets.compare_digest(totp.at(candidate * totp.interval), code):
            return candidate
    return None


_QUARTER = timedelta(minutes=15)
_HOUR = timedelta(hours=1)


@cache
def _decoy_hash() -> str:
    """Checked against when the account does not exist, so that a wrong e-mail address takes
    as long as a wrong password and signing in does not reveal who has an account."""
    return generate_password_hash(secrets.token_hex(16))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
