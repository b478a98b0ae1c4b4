"""Typed settings for Fluister.

Values come from three layers, later ones winning: the defaults below, a `.env`
file in the project root (for an installed copy, the current directory), and the
process environment. Nothing is read at import time; `load_settings()` is called by
the app factory (or by a test that wants different values).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from dotenv import dotenv_values
from limits import parse as parse_limit
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def home_dir() -> Path:
    """Where `.env` and `instance/` are: the project root in a checkout; for a copy installed by
    `pip install .`, whose code sits in site-packages, the directory it is run from."""
    return PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").is_file() else Path.cwd()


ENVIRONMENTS = ("development", "test", "production")
EMAIL_TRANSPORTS = ("outbox", "sendgrid", "smtp")
SMS_TRANSPORTS = ("outbox", "twilio", "none")  # none: an email-only installation
# "none": no WhatsApp sender, so no campaign may enable the channel.
WHATSAPP_TRANSPORTS = ("none", "outbox", "twilio")
# The databases the app is built and tested on; PostgreSQL is driven by psycopg 3.
DATABASE_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgres", "postgresql", "postgresql+psycopg")
REDIS_SCHEMES = ("redis", "rediss", "unix")
LOG_FORMATS = ("text", "json")


PROVIDER_SETTINGS = (
    "SMTP_URL",
    "SENDGRID_API_KEY",
    "SENDGRID_API_HOST",
    "SENDGRID_WEBHOOK_PUBLIC_KEY",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_MESSAGING_SERVICE_SID",
    "TWILIO_FROM",
    "TWILIO_WHATSAPP_FROM",
    "TWILIO_API_BASE",
)


DEFAULT_SMS_HELP_REPLY = "These texts carry offers a friend sent you. Reply STOP to stop them."
# A keyword is one word: letters and digits, as people type them into a phone.
MAX_KEYWORD_LENGTH = 32
MAX_HELP_REPLY_LENGTH = 160
DEFAULT_SMS_PRICE_PER_SEGMENT = Decimal("0.0079")
# Per API key (or signed-in person) of each role, and per address without a key: a shop's
# checkout (marketer keys) redeems in bursts; nobody anonymous needs more than the spec.
DEFAULT_API_RATE_LIMITS: tuple[tuple[str, str], ...] = (
    ("admin", "1200/minute"),
    ("marketer", "600/minute"),
    ("compliance", "300/minute"),
    ("anonymous", "60/minute"),
)


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    instance_path: Path = PROJECT_ROOT / "instance"
    database_url: str = ""
    redis_url: str | None = None
    secret_keys: tuple[str, ...] = ()
    contact_hash_key: str = ""
    public_base_url: str = "http://127.0.0.1:5000"
    email_transport: str = "outbox"
    sms_transport: str = "outbox"
    # How WhatsApp messages leave: "none" (the channel cannot be enabled), "outbox" or "twilio".
    whatsapp_transport: str = "none"
    # The phone region of a campaign created without one (each campaign has its own regions).
    default_phone_region: str = "US"
    # Every translated string wrapped and accented (engine.i18n): tests set it to find text that
    # does not go through the catalogs. Never from the environment.
    pseudo_locale: bool = False
    queue_name: str = "fluister"
    # Every Redis key of this installation starts with it (RQ's queue name too, since RQ has no
    # prefix of its own), so that two installations can share one Redis.
    redis_key_prefix: str = "fluister:"
    # While Redis or the database is out, workers and the scheduler say so once, then at most
    # once per this many seconds, until it is back (engine.resilience).
    outage_log_every_seconds: float = 60.0
    # The scheduler's periodic tasks (engine.scheduler), and how long its lease lasts: a
    # standby scheduler takes over this long after the active one died.
    sweep_every_seconds: int = 60
    analytics_refresh_every_seconds: int = 900
    coupon_cleanup_every_seconds: int = 3600
    scheduler_lease_seconds: int = 30
    forward_link_max_age_days: int = 180
    # CAN-SPAM wants an opt-out to keep working for 30 days after a send; we
    # keep unsubscribe links alive far longer than that.
    unsubscribe_link_max_age_days: int = 400
    # A message left in `sending` longer than this is treated as a crash between
    # the provider call and the commit, and marked `unknown` for review.
    # A minute past the dispatch job's timeout (engine.queue.JOB_TIMEOUT_SECONDS): by then RQ has
    # stopped the job, so a row still `sending` has nobody left to send it.
    sending_stale_after_seconds: int = 960
    max_form_bytes: int = 64 * 1024
    # A send-to-friend form sent sooner than this after the page rendered is a bot's.
    min_form_seconds: int = 2
    # Messages a worker claims at once, and texts it has in flight at once.
    dispatch_batch_size: int = 500
    sms_concurrency: int = 4
    # Segments a second the sender number takes (Twilio: long code 1, toll-free 3, short code
    # 100); workers pace to it together. None: no pacing (the outbox).
    sms_segments_per_second: float | None = None
    # The email provider's rate, in messages a second, shared by every worker (None: unpaced;
    # an SMTP relay or a new sending domain may need one).
    email_messages_per_second: float | None = None
    # Embedded default only: start the in-process worker thread on the first job.
    # Tests turn it off and drain the queue themselves, so that they stay deterministic.
    inprocess_worker: bool = True
    smtp_url: str | None = None
    # A mailbox that takes unsubscribe requests by mail, offered in List-Unsubscribe beside the link.
    unsubscribe_mailto: str | None = None
    sendgrid_api_key: str | None = None
    sendgrid_api_host: str = "https://api.sendgrid.com"
    # The Signed Event Webhook's verification key (base64 DER, as SendGrid's console shows it).
    sendgrid_webhook_public_key: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_from: str | None = None
    # The WhatsApp sender (E.164, without "whatsapp:"); without it, the Messaging Service sends.
    twilio_whatsapp_from: str | None = None
    twilio_api_base: str = "https://api.twilio.com"
    # How many reverse proxies in front of the app set X-Forwarded-For/-Proto (0: trust none),
    # and their addresses (networks): the headers are believed only from these.
    trusted_proxy_count: int = 0
    trusted_proxies: tuple[str, ...] = ()
    # Texts to our number: the languages whose built-in keywords count (engine/keywords.py),
    # and the operator's own extra words, each a single word.
    sms_keyword_languages: tuple[str, ...] = ("en", "nl", "fr")
    sms_opt_out_keywords: tuple[str, ...] = ()
    sms_opt_in_keywords: tuple[str, ...] = ()
    sms_help_keywords: tuple[str, ...] = ()
    # The answer to HELP from a number no campaign has texted (there is no brand to name).
    sms_help_reply: str = DEFAULT_SMS_HELP_REPLY
    # What one text segment costs, for the estimate the console's preview shows (Twilio's US
    # list price by default; a real bill depends on the country and the carrier).
    sms_price_per_segment: Decimal = DEFAULT_SMS_PRICE_PER_SEGMENT
    sms_price_currency: str = "USD"
    # The time zone the console shows times in (and reads typed dates in) for a staff member
    # who has not chosen their own; times are stored in UTC whatever it is.
    default_time_zone: str = "UTC"
    # The only numbers a test text from the console may go to (E.164). A test e-mail goes only
    # to the signed-in person's own address; a phone number has no such proof of ownership, so
    # an operator lists the team's numbers here: the console must never become a relay.
    test_sms_numbers: tuple[str, ...] = ()
    # `text`: a line for a person; `json`: one JSON object a line, for a log collector (engine.logs).
    log_format: str = "text"
    # Where errors are reported (Sentry or a service that speaks its protocol); None: nowhere.
    sentry_dsn: str | None = None
    # Who may read GET /metrics in production (engine.web.metrics): a request with this bearer
    # token, or from one of these addresses (CIDRs, or `unix`). Neither: nobody. Development: anyone.
    metrics_token: str | None = None
    metrics_allow_from: tuple[str, ...] = ()
    # Requests a client may make to /api/v1, by who it is: an API key or a signed-in person of
    # a role, or `anonymous` (no key; counted per address). In the `limits` notation, one limit
    # each ("600/minute"). API_RATE_LIMITS names the ones that differ ("marketer=100/minute").
    api_rate_limits: tuple[tuple[str, str], ...] = DEFAULT_API_RATE_LIMITS
    # Outgoing webhooks (engine.services.webhook_delivery): how long one attempt may take, how
    # often the scheduler looks for retries that are due, and when an endpoint that keeps failing
    # is disabled (every delivery failed for this many days, or this many given up in a row).
    webhook_timeout_seconds: int = 10
    webhook_sweep_every_seconds: int = 5
    webhook_disable_after_days: int = 5
    webhook_disable_after_failures: int = 15
    # Whether webhook URLs may be http:// and point at loopback and private addresses (a receiver
    # on the developer's machine). WEBHOOKS_ALLOW_LOCAL: on by default in development only, and
    # refused in production (engine.outbound).
    webhooks_allow_local: bool = False

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def channels_without_transport(self) -> frozenset[str]:
        """Channels this installation cannot send on: no campaign may enable them."""
        return frozenset({"sms"}) if self.sms_transport == "none" else frozenset()

    @property
    def uses_outbox(self) -> bool:
        return "outbox" in (self.email_transport, self.sms_transport, self.whatsapp_transport)

    @property
    def whatsapp_enabled(self) -> bool:
        """Whether campaigns may enable WhatsApp: only with a transport that can send it."""
        return self.whatsapp_transport != "none"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def load_settings(
    environ: Mapping[str, str] | None = None,
    dotenv_path: Path | None = None,
) -> Settings:
    """Build settings from defaults, `.env` and the environment, and validate them."""
    return _settings_from(setting_values(environ, dotenv_path))


def setting_values(environ: Mapping[str, str] | None = None, dotenv_path: Path | None = None) -> dict[str, str]:
    """The raw values: `.env`, then the environment over it."""
    values: dict[str, str] = {}
    dotenv_file = dotenv_path if dotenv_path is not None else home_dir() / ".env"
    if dotenv_file.is_file():
        values.update({k: v for k, v in dotenv_values(dotenv_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    return values


def _settings_from(values: Mapping[str, str]) -> Settings:
    env = values.get("FLUISTER_ENV", "development").strip().lower()
    if env not in ENVIRONMENTS:
        raise ConfigError(f"FLUISTER_ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")

    instance_path = Path(values.get("INSTANCE_PATH") or home_dir() / "instance")
    host = values.get("HOST", "127.0.0.1")
    port = values.get("PORT", "5000")

    secret_keys = tuple(k.strip() for k in values.get("SECRET_KEYS", "").split(",") if k.strip())
    contact_hash_key = values.get("CONTACT_HASH_KEY", "").strip()
    if env == "production":
        missing = [name for name, v in (("SECRET_KEYS", secret_keys), ("CONTACT_HASH_KEY", contact_hash_key)) if not v]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} must be set in production "
                "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
    elif not secret_keys or not contact_hash_key:
        local = _local_development_keys(instance_path)
        secret_keys = secret_keys or (local["secret_key"],)
        contact_hash_key = contact_hash_key or local["contact_hash_key"]

    for name, key in [("SECRET_KEYS", k) for k in secret_keys] + [("CONTACT_HASH_KEY", contact_hash_key)]:
        if len(key) < 16:
            raise ConfigError(f"{name} entries must be at least 16 characters long")

    email_transport = values.get("EMAIL_TRANSPORT", "outbox").strip().lower()
    sms_transport = values.get("SMS_TRANSPORT", "outbox").strip().lower()
    if email_transport not in EMAIL_TRANSPORTS:
        raise ConfigError(f"EMAIL_TRANSPORT must be one of {', '.join(EMAIL_TRANSPORTS)}, not {email_transport!r}")
    if sms_transport not in SMS_TRANSPORTS:
        raise ConfigError(f"SMS_TRANSPORT must be one of {', '.join(SMS_TRANSPORTS)}, not {sms_transport!r}")
    whatsapp_transport = values.get("WHATSAPP_TRANSPORT", "none").strip().lower() or "none"
    if whatsapp_transport not in WHATSAPP_TRANSPORTS:
        raise ConfigError(
            f"WHATSAPP_TRANSPORT must be one of {', '.join(WHATSAPP_TRANSPORTS)}, not {whatsapp_transport!r}"
        )
    if env == "production" and "outbox" in (email_transport, sms_transport):
        raise ConfigError(
            "the outbox transport is for development only: set EMAIL_TRANSPORT and SMS_TRANSPORT "
            "to a real provider in production"
        )
    if env == "production" and whatsapp_transport == "outbox":
        raise ConfigError("the outbox transport is for development only: set WHATSAPP_TRANSPORT to twilio or none")

    provider = {name: values.get(name, "").strip() or None for name in PROVIDER_SETTINGS}
    _require(email_transport == "smtp", provider, ["SMTP_URL"], "EMAIL_TRANSPORT=smtp")
    _require(email_transport == "sendgrid", provider, ["SENDGRID_API_KEY"], "EMAIL_TRANSPORT=sendgrid")
    _require(sms_transport == "twilio", provider, ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"], "SMS_TRANSPORT=twilio")
    if sms_transport == "twilio" and not (provider["TWILIO_MESSAGING_SERVICE_SID"] or provider["TWILIO_FROM"]):
        raise ConfigError("SMS_TRANSPORT=twilio needs TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM")
    twilio_account = ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"]
    _require(whatsapp_transport == "twilio", provider, twilio_account, "WHATSAPP_TRANSPORT=twilio")
    whatsapp_from = _whatsapp_sender(provider["TWILIO_WHATSAPP_FROM"])
    if whatsapp_transport == "twilio" and not (whatsapp_from or provider["TWILIO_MESSAGING_SERVICE_SID"]):
        raise ConfigError("WHATSAPP_TRANSPORT=twilio needs TWILIO_WHATSAPP_FROM or TWILIO_MESSAGING_SERVICE_SID")

    keywords = _sms_keywords(values)
    trusted_proxies = _networks(values, "TRUSTED_PROXIES")
    proxy_count = _positive_int(values, "TRUSTED_PROXY_COUNT", 1 if trusted_proxies else 0, allow_zero=True)
    if proxy_count and not trusted_proxies:
        # Otherwise anyone who reaches the app directly could name any address they like.
        raise ConfigError("TRUSTED_PROXY_COUNT needs TRUSTED_PROXIES: the proxies' addresses (comma-separated CIDRs)")

    metrics_token = values.get("METRICS_TOKEN", "").strip() or None
    if metrics_token is not None and len(metrics_token) < 16:
        raise ConfigError(
            "METRICS_TOKEN must be at least 16 characters long "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )

    webhooks_allow_local = _flag(values, "WEBHOOKS_ALLOW_LOCAL", env == "development")
    if env == "production" and webhooks_allow_local:
        raise ConfigError("WEBHOOKS_ALLOW_LOCAL is for development only: webhooks go to public https:// URLs")

    database_url = _database_url(values.get("DATABASE_URL", "").strip()) or f"sqlite:///{instance_path / 'fluister.db'}"
    redis_url = _redis_url(values.get("REDIS_URL", "").strip())
    if env == "production":
        if database_url.startswith("sqlite"):
            raise ConfigError("DATABASE_URL must point at PostgreSQL in production")
        if not values.get("REDIS_URL", "").strip():
            raise ConfigError("REDIS_URL must be set in production: caps and the job queue live in Redis")
        # Every link in every message, and the address providers sign their webhooks for.
        if not values.get("PUBLIC_BASE_URL", "").strip().startswith("https://"):
            raise ConfigError("PUBLIC_BASE_URL must be set to the site's https:// address in production")

    return Settings(
        env=env,
        instance_path=instance_path,
        database_url=_normalise_database_url(database_url),
        redis_url=redis_url,
        secret_keys=secret_keys,
        contact_hash_key=contact_hash_key,
        public_base_url=(values.get("PUBLIC_BASE_URL") or f"http://{host}:{port}").rstrip("/"),
        email_transport=email_transport,
        sms_transport=sms_transport,
        whatsapp_transport=whatsapp_transport,
        default_phone_region=values.get("DEFAULT_PHONE_REGION", "US").strip().upper(),
        queue_name=values.get("QUEUE_NAME", "fluister").strip(),
        redis_key_prefix=_key_prefix(values.get("REDIS_KEY_PREFIX", "fluister:")),
        outage_log_every_seconds=float(_positive_int(values, "OUTAGE_LOG_EVERY_SECONDS", 60)),
        sweep_every_seconds=_positive_int(values, "SWEEP_EVERY_SECONDS", 60),
        analytics_refresh_every_seconds=_positive_int(values, "ANALYTICS_REFRESH_EVERY_SECONDS", 900),
        coupon_cleanup_every_seconds=_positive_int(values, "COUPON_CLEANUP_EVERY_SECONDS", 3600),
        scheduler_lease_seconds=_positive_int(values, "SCHEDULER_LEASE_SECONDS", 30),
        forward_link_max_age_days=_positive_int(values, "FORWARD_LINK_MAX_AGE_DAYS", 180),
        unsubscribe_link_max_age_days=_positive_int(values, "UNSUBSCRIBE_LINK_MAX_AGE_DAYS", 400),
        sending_stale_after_seconds=_positive_int(values, "SENDING_STALE_AFTER_SECONDS", 960),
        trusted_proxy_count=proxy_count,
        trusted_proxies=trusted_proxies,
        dispatch_batch_size=_positive_int(values, "DISPATCH_BATCH_SIZE", 500),
        min_form_seconds=_positive_int(values, "MIN_FORM_SECONDS", 2, allow_zero=True),
        sms_concurrency=_positive_int(values, "SMS_CONCURRENCY", 4),
        sms_segments_per_second=_rate(values, "SMS_SEGMENTS_PER_SECOND", 1.0 if sms_transport == "twilio" else None),
        email_messages_per_second=_rate(values, "EMAIL_MESSAGES_PER_SECOND", None),
        smtp_url=provider["SMTP_URL"],
        unsubscribe_mailto=values.get("UNSUBSCRIBE_MAILTO", "").strip() or None,
        sendgrid_api_key=provider["SENDGRID_API_KEY"],
        sendgrid_api_host=(provider["SENDGRID_API_HOST"] or "https://api.sendgrid.com").rstrip("/"),
        sendgrid_webhook_public_key=provider["SENDGRID_WEBHOOK_PUBLIC_KEY"],
        twilio_account_sid=provider["TWILIO_ACCOUNT_SID"],
        twilio_auth_token=provider["TWILIO_AUTH_TOKEN"],
        twilio_messaging_service_sid=provider["TWILIO_MESSAGING_SERVICE_SID"],
        twilio_from=provider["TWILIO_FROM"],
        twilio_whatsapp_from=whatsapp_from,
        twilio_api_base=(provider["TWILIO_API_BASE"] or "https://api.twilio.com").rstrip("/"),
        sms_keyword_languages=keywords.languages,
        sms_opt_out_keywords=keywords.opt_out,
        sms_opt_in_keywords=keywords.opt_in,
        sms_help_keywords=keywords.help,
        sms_help_reply=keywords.help_reply,
        sms_price_per_segment=_price(values, "SMS_PRICE_PER_SEGMENT", DEFAULT_SMS_PRICE_PER_SEGMENT),
        sms_price_currency=_currency(values, "SMS_PRICE_CURRENCY", "USD"),
        default_time_zone=_time_zone(values, "DEFAULT_TIME_ZONE", "UTC"),
        test_sms_numbers=_e164_list(values, "TEST_SMS_NUMBERS"),
        log_format=log_format_from(values),
        sentry_dsn=values.get("SENTRY_DSN", "").strip() or None,
        metrics_token=metrics_token,
        metrics_allow_from=_networks(values, "METRICS_ALLOW_FROM"),
        api_rate_limits=_api_rate_limits(values.get("API_RATE_LIMITS", "")),
        webhook_timeout_seconds=_positive_int(values, "WEBHOOK_TIMEOUT_SECONDS", 10),
        webhook_sweep_every_seconds=_positive_int(values, "WEBHOOK_SWEEP_EVERY_SECONDS", 5),
        webhook_disable_after_days=_positive_int(values, "WEBHOOK_DISABLE_AFTER_DAYS", 5),
        webhook_disable_after_failures=_positive_int(values, "WEBHOOK_DISABLE_AFTER_FAILURES", 15),
        webhooks_allow_local=webhooks_allow_local,
    )


def log_format_from(values: Mapping[str, str]) -> str:
    """LOG_FORMAT, checked: also read on its own by gunicorn's logger (engine.gunicorn_logs)."""
    log_format = values.get("LOG_FORMAT", "").strip().lower() or "text"
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    return log_format


class _SmsKeywords(NamedTuple):
    languages: tuple[str, ...]
    opt_out: tuple[str, ...]
    opt_in: tuple[str, ...]
    help: tuple[str, ...]
    help_reply: str


def _sms_keywords(values: Mapping[str, str]) -> _SmsKeywords:
    keywords = _SmsKeywords(
        languages=_word_list(values, "SMS_KEYWORD_LANGUAGES", lower=True) or ("en", "nl", "fr"),
        opt_out=_word_list(values, "SMS_OPT_OUT_KEYWORDS"),
        opt_in=_word_list(values, "SMS_OPT_IN_KEYWORDS"),
        help=_word_list(values, "SMS_HELP_KEYWORDS"),
        help_reply=values.get("SMS_HELP_REPLY", "").strip() or DEFAULT_SMS_HELP_REPLY,
    )
    # Imported here, not at the top: the engine imports this package. The book refuses
    # unknown languages and a word given two meanings.
    from engine.keywords import KeywordBook

    try:
        KeywordBook.build(
            keywords.languages,
            extra_opt_out=keywords.opt_out,
            extra_opt_in=keywords.opt_in,
            extra_help=keywords.help,
        )
    except ValueError as error:
        raise ConfigError(f"SMS keywords: {error}") from None
    if len(keywords.help_reply) > MAX_HELP_REPLY_LENGTH:
        raise ConfigError(f"SMS_HELP_REPLY must fit in one text ({MAX_HELP_REPLY_LENGTH} characters)")
    return keywords


def _word_list(values: Mapping[str, str], name: str, *, lower: bool = False) -> tuple[str, ...]:
    """A comma-separated list of single words (letters and digits), in upper case (or lower)."""
    words = tuple(w.strip() for w in values.get(name, "").split(",") if w.strip())
    for word in words:
        if not word.isalnum() or len(word) > MAX_KEYWORD_LENGTH:
            raise ConfigError(f"{name} takes comma-separated single words of letters and digits, not {word!r}")
    return tuple(w.lower() if lower else w.upper() for w in words)


def _require(needed: bool, values: Mapping[str, str | None], names: list[str], because: str) -> None:
    missing = [name for name in names if not values.get(name)]
    if needed and missing:
        raise ConfigError(f"{because} needs {' and '.join(missing)}")


def _rate(values: Mapping[str, str], name: str, default: float | None) -> float | None:
    raw = values.get(name, "").strip()
    if not raw:
        return default
    try:
        rate = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if rate <= 0:
        raise ConfigError(f"{name} must be positive")
    return rate


def _price(values: Mapping[str, str], name: str, default: Decimal) -> Decimal:
    raw = values.get(name, "").strip()
    if not raw:
        return default
    try:
        price = Decimal(raw)
    except InvalidOperation:
        raise ConfigError(f"{name} must be a number such as 0.0079, not {raw!r}") from None
    if not price.is_finite() or price < 0:
        raise ConfigError(f"{name} must be zero or more")
    return price


def _currency(values: Mapping[str, str], name: str, default: str) -> str:
    # Babel's list of ISO 4217 codes: the console formats amounts in it, per locale.
    from babel.numbers import is_currency

    code = values.get(name, "").strip().upper() or default
    if len(code) != 3 or not code.isascii() or not code.isalpha() or not is_currency(code):
        raise ConfigError(f"{name} must be a three-letter currency code (ISO 4217), such as USD or EUR, not {code!r}")
    return code


def _time_zone(values: Mapping[str, str], name: str, default: str) -> str:
    from engine.time_zones import is_time_zone

    zone = values.get(name, "").strip() or default
    if not is_time_zone(zone):
        raise ConfigError(f"{name} must be an IANA time zone name, such as Europe/Amsterdam or UTC, not {zone!r}")
    return zone


def _e164_list(values: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated phone numbers in E.164 (+ and the country code), each checked and normalised."""
    # Imported here, not at the top: the engine imports this package.
    from engine.channels.sms import parse_phone
    from engine.contacts import InvalidContact

    numbers: list[str] = []
    for raw in (n.strip() for n in values.get(name, "").split(",")):
        if not raw:
            continue
        if not raw.startswith("+"):
            raise ConfigError(f"{name} takes numbers in E.164 form, with + and the country code, not {raw!r}")
        try:
            numbers.append(parse_phone(raw, "ZZ").value)
        except InvalidContact as error:
            raise ConfigError(f"{name}: {error}") from None
    return tuple(dict.fromkeys(numbers))


def _whatsapp_sender(raw: str | None) -> str | None:
    """TWILIO_WHATSAPP_FROM as E.164; the "whatsapp:" prefix Twilio's console shows is accepted."""
    if raw is None:
        return None
    number = raw.removeprefix("whatsapp:").strip()
    if not number.startswith("+"):
        raise ConfigError(f"TWILIO_WHATSAPP_FROM takes a number in E.164 form, with + and country code, not {raw!r}")
    return _e164_list({"TWILIO_WHATSAPP_FROM": number}, "TWILIO_WHATSAPP_FROM")[0]


def _networks(values: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated addresses or networks (CIDR), each checked and normalised (`10.0.0.0/8`),
    or `unix`."""
    networks: list[str] = []
    for raw in (n.strip() for n in values.get(name, "").split(",")):
        if not raw:
            continue
        if raw.lower() == "unix":  # a proxy on this machine, connecting over a unix socket
            networks.append("unix")
            continue
        try:
            networks.append(str(ipaddress.ip_network(raw, strict=False)))
        except ValueError:
            raise ConfigError(f"{name} takes addresses or networks such as 10.0.0.0/8, not {raw!r}") from None
    return tuple(dict.fromkeys(networks))


def _api_rate_limits(raw: str) -> tuple[tuple[str, str], ...]:
    chosen = dict(DEFAULT_API_RATE_LIMITS)
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        who, _, limit = (piece.strip() for piece in entry.partition("="))
        if who not in chosen:
            raise ConfigError(f"API_RATE_LIMITS names {', '.join(chosen)}, not {who!r} (as in marketer=600/minute)")
        try:
            parsed = parse_limit(limit)
        except ValueError:
            parsed = None
        if parsed is None or parsed.amount < 1:
            raise ConfigError(f"API_RATE_LIMITS: {entry!r} is not a limit such as {who}=600/minute")
        chosen[who] = limit
    return tuple(chosen.items())


def _flag(values: Mapping[str, str], name: str, default: bool) -> bool:
    raw = values.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true or false), not {raw!r}")


def _positive_int(values: Mapping[str, str], name: str, default: int, *, allow_zero: bool = False) -> int:
    raw = values.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        number = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if number < 0 or (number == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'zero or more' if allow_zero else 'positive'}, not {number}")
    return number


def _key_prefix(prefix: str) -> str:
    prefix = prefix.strip()
    if not prefix or any(c.isspace() or c in "*?[]" for c in prefix):
        # A pattern character would make the prefix match other installations' keys in a SCAN.
        raise ConfigError(f"REDIS_KEY_PREFIX must be a non-empty word without spaces or * ? [ ], not {prefix!r}")
    return prefix


def _database_url(url: str) -> str:
    """The URL if it names a database we drive; a ConfigError naming the fault (never the password) if not."""
    if not url:
        return url
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            "DATABASE_URL is not a database URL: expected postgresql://user:password@host:5432/name or sqlite:///path"
        ) from None
    if parsed.drivername not in DATABASE_DRIVERS:
        raise ConfigError(
            f"DATABASE_URL must point at PostgreSQL (postgresql://…) or SQLite (sqlite:///…), not {parsed.drivername}://"
        )
    return url


def _redis_url(url: str) -> str | None:
    if not url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks it is a number in range
    except ValueError:
        raise ConfigError("REDIS_URL is not a URL: expected redis://host:6379/0") from None
    if parts.scheme not in REDIS_SCHEMES:
        shown = f"{parts.scheme}://" if parts.scheme else "a URL without a scheme"
        raise ConfigError(f"REDIS_URL must be a redis://, rediss:// or unix:// URL, not {shown}")
    return url


def _normalise_database_url(url: str) -> str:
    # Operators paste `postgres://` or `postgresql://` URLs; we drive PostgreSQL through psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _local_development_keys(instance_path: Path) -> dict[str, str]:
    """Generate keys once per checkout and keep them, so links survive a restart."""
    path = instance_path / "dev-keys.json"
    if path.is_file():
        keys = json.loads(path.read_text())
        if {"secret_key", "contact_hash_key"} <= keys.keys():
            return keys
    keys = {"secret_key": secrets.token_urlsafe(32), "contact_hash_key": secrets.token_urlsafe(32)}
    instance_path.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(keys))
    path.chmod(0o600)
    return keys
