from pathlib import Path

import pytest

from config import ConfigError, load_settings
from engine.queue import JOB_TIMEOUT_SECONDS


def load(tmp_path: Path, **environ: str):  # type: ignore[no-untyped-def]
    return load_settings({"INSTANCE_PATH": str(tmp_path), **environ}, dotenv_path=tmp_path / "none.env")


def test_development_generates_keys_once_and_keeps_them(tmp_path: Path) -> None:
    first = load(tmp_path)
    second = load(tmp_path)
    assert first.secret_keys == second.secret_keys
    assert first.contact_hash_key == second.contact_hash_key
    assert len(first.secret_keys[0]) >= 32


def test_production_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEYS and CONTACT_HASH_KEY"):
        load(tmp_path, FLUISTER_ENV="production", DATABASE_URL="postgresql://db/x")


PRODUCTION = {
    "FLUISTER_ENV": "production",
    "DATABASE_URL": "postgresql://db/x",
    "REDIS_URL": "redis://cache:6379/0",
    "PUBLIC_BASE_URL": "https://offers.example.com",
    "SECRET_KEYS": "a" * 32,
    "CONTACT_HASH_KEY": "b" * 32,
    "EMAIL_TRANSPORT": "smtp",
    "SMTP_URL": "smtp://relay:25",
    "SMS_TRANSPORT": "twilio",
    "TWILIO_ACCOUNT_SID": "AC1",
    "TWILIO_AUTH_TOKEN": "t",
    "TWILIO_FROM": "+15005550006",
}


def test_a_complete_production_configuration_loads(tmp_path: Path) -> None:
    settings = load(tmp_path, **PRODUCTION)
    assert settings.production and not settings.uses_outbox
    assert settings.channels_without_transport == frozenset()


def test_an_email_only_production_needs_no_twilio_credentials(tmp_path: Path) -> None:
    email_only = {k: v for k, v in PRODUCTION.items() if not k.startswith("TWILIO_")}
    settings = load(tmp_path, **{**email_only, "SMS_TRANSPORT": "none"})
    assert settings.sms_transport == "none" and settings.channels_without_transport == {"sms"}
    assert settings.sms_segments_per_second is None


def test_the_redis_key_prefix_is_a_setting_without_pattern_characters(tmp_path: Path) -> None:
    assert load(tmp_path).redis_key_prefix == "fluister:"
    assert load(tmp_path, REDIS_KEY_PREFIX="shop-two:").redis_key_prefix == "shop-two:"
    with pytest.raises(ConfigError, match="REDIS_KEY_PREFIX"):
        load(tmp_path, REDIS_KEY_PREFIX="shop*")


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"EMAIL_TRANSPORT": "outbox"}, "outbox"),
        ({"DATABASE_URL": "sqlite:////tmp/x.db"}, "PostgreSQL"),
        ({"REDIS_URL": ""}, "REDIS_URL"),
        ({"PUBLIC_BASE_URL": ""}, "PUBLIC_BASE_URL"),
        ({"PUBLIC_BASE_URL": "http://offers.example.com"}, "https"),
    ],
)
def test_production_refuses_what_would_break_it(tmp_path: Path, changes: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load(tmp_path, **{**PRODUCTION, **changes})


def test_secret_keys_are_a_list_oldest_first(tmp_path: Path) -> None:
    settings = load(tmp_path, SECRET_KEYS=f"{'o' * 20}, {'n' * 20}", CONTACT_HASH_KEY="h" * 20)
    assert settings.secret_keys == ("o" * 20, "n" * 20)


def test_dotenv_is_below_the_environment(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("DEFAULT_PHONE_REGION=BE\nQUEUE_NAME=from-dotenv\n")
    settings = load_settings({"INSTANCE_PATH": str(tmp_path), "QUEUE_NAME": "from-env"}, dotenv_path=dotenv)
    assert settings.default_phone_region == "BE"
    assert settings.queue_name == "from-env"


def test_postgres_urls_use_psycopg(tmp_path: Path) -> None:
    assert load(tmp_path, DATABASE_URL="postgres://u@h/db").database_url == "postgresql+psycopg://u@h/db"


def test_public_base_url_follows_host_and_port(tmp_path: Path) -> None:
    assert load(tmp_path, HOST="fluister.local", PORT="8080").public_base_url == "http://fluister.local:8080"


@pytest.mark.parametrize(
    ("name", "value"), [("FLUISTER_ENV", "staging"), ("EMAIL_TRANSPORT", "pigeon"), ("FORWARD_LINK_MAX_AGE_DAYS", "x")]
)
def test_bad_values_are_named(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load(tmp_path, **{name: value})


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"EMAIL_TRANSPORT": "smtp"}, "SMTP_URL"),
        ({"EMAIL_TRANSPORT": "sendgrid"}, "SENDGRID_API_KEY"),
        ({"SMS_TRANSPORT": "twilio"}, "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"),
        ({"SMS_TRANSPORT": "twilio", "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"}, "TWILIO_FROM"),
    ],
)
def test_a_transport_without_its_settings_is_refused(tmp_path: Path, environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load(tmp_path, **environ)


def test_provider_hosts_can_point_elsewhere(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        EMAIL_TRANSPORT="sendgrid",
        SENDGRID_API_KEY="SG.x",
        SENDGRID_API_HOST="http://127.0.0.1:9000/",
        SMS_TRANSPORT="twilio",
        TWILIO_ACCOUNT_SID="AC1",
        TWILIO_AUTH_TOKEN="t",
        TWILIO_FROM="+15005550006",
        TWILIO_API_BASE="http://127.0.0.1:9001",
    )
    assert settings.sendgrid_api_host == "http://127.0.0.1:9000"
    assert settings.twilio_api_base == "http://127.0.0.1:9001"
    assert settings.twilio_from == "+15005550006"


def test_twilio_texts_are_paced_to_a_long_codes_rate_unless_told_otherwise(tmp_path: Path) -> None:
    twilio = {
        "SMS_TRANSPORT": "twilio",
        "TWILIO_ACCOUNT_SID": "AC1",
        "TWILIO_AUTH_TOKEN": "t",
        "TWILIO_FROM": "+15005550006",
    }
    assert load(tmp_path, **twilio).sms_segments_per_second == 1.0
    assert load(tmp_path, **twilio, SMS_SEGMENTS_PER_SECOND="100").sms_segments_per_second == 100.0
    assert load(tmp_path).sms_segments_per_second is None  # the outbox is not paced
    with pytest.raises(ConfigError, match="SMS_SEGMENTS_PER_SECOND"):
        load(tmp_path, SMS_SEGMENTS_PER_SECOND="fast")


def test_a_proxy_count_without_the_proxies_addresses_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        load(tmp_path, TRUSTED_PROXY_COUNT="1")
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        load(tmp_path, TRUSTED_PROXIES="10.0.0.0/8, not-a-network")
    settings = load(tmp_path, TRUSTED_PROXIES="10.0.0.1/8, fd00::/8, unix")
    assert settings.trusted_proxies == ("10.0.0.0/8", "fd00::/8", "unix")
    assert settings.trusted_proxy_count == 1


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (
            "mysql://shop:hunter2-secret@db/fluister",
            "must point at PostgreSQL (postgresql://…) or SQLite (sqlite:///…), not mysql://",
        ),
        ("postgresql+psycopg2://shop:hunter2-secret@db/fluister", "not postgresql+psycopg2://"),
        ("db.example.org/fluister", "DATABASE_URL is not a database URL"),
    ],
)
def test_a_database_url_we_cannot_drive_is_refused_without_its_password(tmp_path: Path, url: str, said: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, DATABASE_URL=url)
    assert said in str(refused.value)
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://:hunter2-secret@cache:6379/0", "REDIS_URL must be a redis://, rediss:// or unix:// URL, not http://"),
        ("cache:6379", "REDIS_URL must be a redis://, rediss:// or unix:// URL"),
        ("redis://:hunter2-secret@cache:port/0", "REDIS_URL is not a URL"),
    ],
)
def test_a_redis_url_we_cannot_use_is_refused_without_its_password(tmp_path: Path, url: str, said: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, REDIS_URL=url)
    assert said in str(refused.value)
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("url", ["redis://cache:6379/0", "rediss://:pw@cache:6380/1", "unix:///run/redis.sock?db=2"])
def test_redis_urls_of_each_kind_load(tmp_path: Path, url: str) -> None:
    assert load(tmp_path, REDIS_URL=url).redis_url == url


def test_a_send_counts_as_stale_only_after_its_job_can_no_longer_be_running(tmp_path: Path) -> None:
    # Earlier, the sweeper could settle a row a live job was still sending; much later, a crashed
    # worker's messages would wait half an hour for nothing.
    stale = load(tmp_path).sending_stale_after_seconds
    assert JOB_TIMEOUT_SECONDS < stale <= JOB_TIMEOUT_SECONDS + 120


def test_who_may_read_the_metrics_is_checked_as_it_loads(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="METRICS_TOKEN must be at least 16 characters"):
        load(tmp_path, METRICS_TOKEN="short")
    with pytest.raises(ConfigError, match="METRICS_ALLOW_FROM"):
        load(tmp_path, METRICS_ALLOW_FROM="10.0.0.0/8, intranet")
    settings = load(tmp_path, METRICS_TOKEN=" a-token-of-sixteen-or-more ", METRICS_ALLOW_FROM="10.1.2.3/8, ::1, unix")
    assert settings.metrics_token == "a-token-of-sixteen-or-more"
    assert settings.metrics_allow_from == ("10.0.0.0/8", "::1/128", "unix")
    assert load(tmp_path).metrics_token is None


def test_api_rate_limits_change_only_the_roles_named(tmp_path: Path) -> None:
    defaults = dict(load(tmp_path).api_rate_limits)
    assert defaults == {
        "admin": "1200/minute",
        "marketer": "600/minute",
        "compliance": "300/minute",
        "anonymous": "60/minute",
    }
    changed = dict(load(tmp_path, API_RATE_LIMITS=" marketer=100/minute , anonymous=10 per second").api_rate_limits)
    assert changed == {**defaults, "marketer": "100/minute", "anonymous": "10 per second"}


@pytest.mark.parametrize("value", ["shop=10/minute", "marketer=lots", "marketer=0/minute", "marketer"])
def test_a_bad_api_rate_limit_is_named(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="API_RATE_LIMITS"):
        load(tmp_path, API_RATE_LIMITS=value)
