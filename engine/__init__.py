"""Fluister: a tell-a-friend campaign engine. `create_app()` builds everything."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from config import Settings, load_settings
from engine.clock import Clock
from engine.error_reports import init_error_reports
from engine.i18n import init_i18n
from engine.logs import configure_logging
from engine.resources import STATIC_DIR, TEMPLATE_DIR
from engine.runtime import EXTENSION_KEY, build_runtime
from engine.static_files import StaticFiles
from engine.transports import Transports
from engine.web.clients import ClientAddress

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(
    settings: Settings | None = None, *, transports: Transports | None = None, clock: Clock | None = None
) -> Flask:
    """Build the app. Tests pass their own settings (and fake transports, and a clock that
    stands still); everyone else gets the environment's, and the system's clock."""
    settings = settings or load_settings()
    app = Flask(
        __name__,
        template_folder=str(TEMPLATE_DIR),
        static_folder=str(STATIC_DIR),
        instance_path=str(settings.instance_path),
    )
    app.config.update(
        SECRET_KEY=settings.secret_keys[-1],
        # Older keys still verify sessions signed before a rotation.
        SECRET_KEY_FALLBACKS=list(settings.secret_keys[:-1]),
        MAX_CONTENT_LENGTH=settings.max_form_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_base_url.startswith("https://"),
        # A landing page may stay open in a tab for a while before the form is sent.
        WTF_CSRF_TIME_LIMIT=24 * 3600,
        WTF_CSRF_SSL_STRICT=False,
        TESTING=settings.env == "test",
    )
    app.wsgi_app = ClientAddress(app.wsgi_app, settings.trusted_proxies, settings.trusted_proxy_count)  # type: ignore[method-assign]
    _serve_static_files(app)
    # Every process builds an app (web, commands, workers): this is where their logging and error
    # reports start. A test runner's own log capture stays in place (engine.logs).
    configure_logging(settings.log_format)
    init_error_reports(settings)

    app.extensions[EXTENSION_KEY] = build_runtime(app, settings, transports, clock)
    CSRFProtect(app)
    init_i18n(app, pseudo_locale=settings.pseudo_locale)

    from engine.cli import register_commands
    from engine.startup import guard_commands
    from engine.web import register_web

    register_web(app, settings)
    register_commands(app)
    guard_commands(app.cli)
    return app


def _serve_static_files(app: Flask) -> None:
    """static/ through WhiteNoise (compressed, cached for a year at versioned addresses), in
    front of everything else; every `url_for('static', ...)` writes the versioned address."""
    static_files = StaticFiles(app.wsgi_app, STATIC_DIR)
    app.wsgi_app = static_files  # type: ignore[method-assign]

    @app.url_defaults
    def _versioned_static(endpoint: str, values: dict[str, object]) -> None:
        filename = values.get("filename")
        if endpoint == "static" and isinstance(filename, str):
            values["filename"] = static_files.manifest.url_name(filename)
