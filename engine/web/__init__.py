"""Blueprints: thin handlers that parse a request, call a service and render."""

from __future__ import annotations

from flask import Flask

from config import Settings


def register_web(app: Flask, settings: Settings) -> None:
    from engine.web import errors, inputs, metrics, outages, request_ids, security

    # campaigns and rewards add routes to v1's blueprint: imported before it is registered.
    from engine.web.api import campaigns as api_campaigns  # noqa: F401
    from engine.web.api import idempotency, rate_limits, v1
    from engine.web.api import referrers as api_referrers
    from engine.web.api import rewards as api_rewards  # noqa: F401
    from engine.web.api import webhooks as api_webhooks
    from engine.web.console import (
        admin,
        analytics,
        auth,
        campaign_actions,
        campaigns,
        compliance,
        coupons,
        error_summary,
        formats,
        home,
        logo,
        preview,
        record_words,
        rewards,
        share_card,
        templates,
        variants,
        webhooks,
    )
    from engine.web.console import contests as console_contests
    from engine.web.hooks import providers
    from engine.web.public import cards, embed, pages, plays, referrers, unsubscribe

    # The contest page is one of the public blueprint's pages (engine.web.public.pages.bp).
    from engine.web.public import contests as public_contests  # noqa: F401

    request_ids.register(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(embed.bp)
    app.register_blueprint(cards.bp)
    app.register_blueprint(unsubscribe.bp)
    app.register_blueprint(referrers.bp)
    app.register_blueprint(providers.bp)
    app.register_blueprint(metrics.bp)
    auth.register(app)
    # Every /api/v1 request is counted first, then a POST's Idempotency-Key is looked up.
    rate_limits.register(app)
    idempotency.register(app)
    formats.register(app)
    record_words.register(app)
    error_summary.register(app)
    app.register_blueprint(home.bp)
    app.register_blueprint(campaigns.bp)
    app.register_blueprint(campaign_actions.bp)
    app.register_blueprint(templates.bp)
    app.register_blueprint(share_card.bp)
    app.register_blueprint(console_contests.bp)
    app.register_blueprint(logo.bp)
    app.register_blueprint(variants.bp)
    app.register_blueprint(coupons.bp)
    app.register_blueprint(preview.bp)
    app.register_blueprint(v1.bp)
    app.register_blueprint(api_referrers.bp)
    app.register_blueprint(compliance.bp)
    app.register_blueprint(analytics.bp)
    app.register_blueprint(rewards.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(api_webhooks.bp)
    # The signed token is the capability, and one-click POSTs come without cookies;
    # providers sign their webhooks instead.
    app.extensions["csrf"].exempt(unsubscribe.bp)
    app.extensions["csrf"].exempt(plays.play)
    app.extensions["csrf"].exempt(providers.bp)
    # A referrer's one-click stop of their rewards messages, for the same reason as unsubscribe.
    app.extensions["csrf"].exempt(referrers.stop)
    # The API takes keys, not cookies, for anything that changes data (engine.web.console.auth).
    app.extensions["csrf"].exempt(v1.bp)
    app.extensions["csrf"].exempt(api_referrers.bp)
    app.extensions["csrf"].exempt(api_webhooks.bp)
    # The embedded form is in a frame on another site, where no cookie reaches it: it carries
    # a signed, campaign-bound stamp instead of the session's CSRF token (engine.services.embeds).
    app.extensions["csrf"].exempt(embed.forward)
    app.extensions["csrf"].exempt(embed.share)
    errors.register(app)
    inputs.register(app)
    outages.register(app)
    security.register(app, settings)
    # The outbox shows every message in full: only while it is the transport, never in production.
    if settings.uses_outbox and not settings.production:
        from engine.web.public import dev

        app.register_blueprint(dev.bp)
