"""Blueprints: thin handlers that parse a request, call a service and render."""

from __future__ import annotations

from flask import Flask

from config import Settings


def register_web(app: Flask, settings: Settings) -> None:
    from engine.web import (
        admin_console,
        analytics,
        api,
        auth,
        campaigns_console,
        compliance,
        console,
        coupons_console,
        errors,
        hooks,
        inputs,
        outages,
        preview_console,
        public,
        rewards_console,
        security,
        templates_console,
        unsubscribe,
    )

    app.register_blueprint(public.bp)
    app.register_blueprint(unsubscribe.bp)
    app.register_blueprint(hooks.bp)
    auth.register(app)
    app.register_blueprint(console.bp)
    app.register_blueprint(campaigns_console.bp)
    app.register_blueprint(templates_console.bp)
    app.register_blueprint(coupons_console.bp)
    app.register_blueprint(preview_console.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(compliance.bp)
    app.register_blueprint(analytics.bp)
    app.register_blueprint(rewards_console.bp)
    app.register_blueprint(admin_console.bp)
    # The signed token is the capability, and one-click POSTs come without cookies;
    # providers sign their webhooks instead.
    app.extensions["csrf"].exempt(unsubscribe.bp)
    app.extensions["csrf"].exempt(hooks.bp)
    # The API takes keys, not cookies, for anything that changes data (engine.web.auth).
    app.extensions["csrf"].exempt(api.bp)
    errors.register(app)
    inputs.register(app)
    outages.register(app)
    security.register(app, settings)
    # The outbox shows every message in full: only while it is the transport, never in production.
    if settings.uses_outbox and not settings.production:
        from engine.web import dev

        app.register_blueprint(dev.bp)
