"""Errors reported to Sentry (or a service that speaks its protocol) when `SENTRY_DSN` is set.

The web process and the workers report through sentry-sdk's Flask and RQ integrations. What
leaves the machine is kept to what a developer needs to fix an error: no personal data (what
`send_default_pii=False` meant, set through `data_collection`, the option that replaces it: no
cookies, no user, no client address in a header), no request body (a forward form lists
friends' addresses), no query string, no local variables of the stack's frames, and a
`before_send` that masks every e-mail address, phone number and IP address left in the event
with the same rules as the log lines (engine.logs.scrub).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from config import Settings
from engine.logs import current_request_id, scrub_value

if TYPE_CHECKING:
    from sentry_sdk.types import Event, Hint


def init_error_reports(settings: Settings) -> bool:
    """Start reporting errors if a DSN is set; True when it did."""
    if not settings.sentry_dsn:
        return False
    # Imported only when used: a process without a DSN loads none of it.
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration
    from sentry_sdk.integrations.rq import RqIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.env,
        integrations=[FlaskIntegration(), RqIntegration()],
        # Only these two (and the defaults: logging, threads, …), not every library sentry-sdk
        # finds installed: what is reported stays what this module says.
        auto_enabling_integrations=False,
        # What `send_default_pii=False` keeps out (the user, cookies, the client's address in
        # any header), in the form this sentry-sdk asks for, and more: no body, no query
        # string, no local variables, no query parameters of the database or the queue.
        data_collection={
            "user_info": False,
            "cookies": {"mode": "off"},
            "http_headers": {"request": {"mode": "denylist", "terms": ["forwarded", "-ip", "remote-", "via", "-user"]}},
            "http_bodies": [],
            "url_query_params": {"mode": "off"},
            "database_query_data": False,
            "queues": False,
            "stack_frame_variables": False,
        },
        max_request_body_size="never",
        before_send=scrubbed_event,
        before_send_transaction=scrubbed_event,
        # Errors only: no performance traces.
        traces_sample_rate=0.0,
    )
    return True


def scrubbed_event(event: Event, hint: Hint) -> Event:
    """The event with every contact and address masked, tagged with the request id (so that it
    can be found in the log lines, and in a report a person quotes from the answer's header)."""
    request_id = current_request_id()
    if request_id:
        event.setdefault("tags", {})["request_id"] = request_id
    scrubbed: Event = scrub_value(event)
    # Nothing about the person, whatever an integration added.
    scrubbed.pop("user", None)
    request = scrubbed.get("request")
    if isinstance(request, dict):
        for private in ("cookies", "data", "env"):
            request.pop(private, None)
    return scrubbed
