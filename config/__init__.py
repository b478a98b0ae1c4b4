"""Settings: defaults < .env < environment, validated once when the app is built."""

from config.settings import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
