"""Page-level behaviour that every public response shares."""

from __future__ import annotations

from flask import Flask


def test_pages_carry_security_headers(app: Flask, campaign) -> None:  # type: ignore[no-untyped-def]
    for path in ("/c/spring", "/c/nope", "/healthz"):
        response = app.test_client().get(path)
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"


def test_outbox_exists_only_with_the_outbox_transport_outside_production(
    app: Flask, settings_for, database_url: str
) -> None:  # type: ignore[no-untyped-def]
    from engine import create_app
    from tests.helpers import runtime_of

    assert app.test_client().get("/dev/outbox.json").status_code == 200
    # The test settings are not production; the same app built as production has no outbox route.
    production = settings_for(database_url, env="production")
    prod_app = create_app(production)
    assert prod_app.test_client().get("/dev/outbox.json").status_code == 404
    assert prod_app.test_client().get("/dev/outbox").status_code == 404
    runtime_of(prod_app).db.dispose()
