"""The compliance pages' words for what the logs store: a source, an action, a scope, a consent
policy, a request detail, as a person says them ("STOP by text message", "Address of the device
(hashed)") in the reader's language.

The stored values themselves stay as they are, a click away under each entry ("Raw record"),
and in the exports, whose field names are a contract (docs/contracts.md). A value this module
has no words for (one a newer version stores) is shown as it is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask_babel import LazyString, lazy_gettext

from engine.models import ConsentSource, MessageStatus, OptOutAction, SuppressionScope, SuppressionSource

SOURCES: Mapping[str, LazyString] = {
    SuppressionSource.LINK: lazy_gettext("Unsubscribe link in a message"),
    SuppressionSource.ONE_CLICK: lazy_gettext("One-click unsubscribe (the mail program's button)"),
    SuppressionSource.STOP: lazy_gettext("STOP sent by text message"),
    SuppressionSource.BOUNCE: lazy_gettext("Address bounced"),
    SuppressionSource.SPAM_REPORT: lazy_gettext("Reported as spam"),
    SuppressionSource.MANUAL: lazy_gettext("Recorded by staff"),
    SuppressionSource.ERASE_REQUEST: lazy_gettext("Request to erase their data"),
    SuppressionSource.START: lazy_gettext("START, UNSTOP or YES sent by text message"),
    SuppressionSource.UNDO: lazy_gettext("Undone on the unsubscribe page"),
    ConsentSource.IMPORT: lazy_gettext("Imported by the brand, with its evidence"),
    ConsentSource.KEYWORD: lazy_gettext("Keyword sent by text message"),
    ConsentSource.CONFIRMED: lazy_gettext("Confirmed by the referrer themselves"),
}
ACTIONS: Mapping[str, LazyString] = {
    OptOutAction.OPT_OUT: lazy_gettext("Opted out"),
    OptOutAction.OPT_IN: lazy_gettext("Opted in again"),
}
SCOPES: Mapping[str, LazyString] = {
    SuppressionScope.GLOBAL: lazy_gettext("Nothing from this brand"),
    SuppressionScope.FRIENDS: lazy_gettext("Nothing sent through friends, in any campaign"),
    SuppressionScope.CAMPAIGN: lazy_gettext("Nothing from this campaign"),
}
POLICIES: Mapping[str, LazyString] = {
    "us": lazy_gettext("United States rules (incentives allowed)"),
    "eu-strict": lazy_gettext("Strict EU rules (no incentives, preview before sending)"),
    "share-only": lazy_gettext("Share only (nothing sent by Fluister, nothing kept)"),
    "custom": lazy_gettext("Custom rules set by an admin"),
}
STATUSES: Mapping[str, LazyString] = {
    MessageStatus.QUEUED: lazy_gettext("waiting to be sent"),
    MessageStatus.SENDING: lazy_gettext("being sent"),
    MessageStatus.SENT: lazy_gettext("sent"),
    MessageStatus.DELIVERED: lazy_gettext("delivered"),
    MessageStatus.BOUNCED: lazy_gettext("bounced"),
    MessageStatus.FAILED: lazy_gettext("failed"),
    MessageStatus.SUPPRESSED: lazy_gettext("not sent: opted out"),
    MessageStatus.CAPPED: lazy_gettext("not sent: over a limit"),
    MessageStatus.DEFERRED: lazy_gettext("held back for later"),
}
# What the opt-out log keeps of the request or provider event behind an entry.
DETAILS: Mapping[str, LazyString] = {
    "client_ip_hash": lazy_gettext("Address of the device (hashed)"),
    "user_agent": lazy_gettext("Browser"),
    "provider": lazy_gettext("Provider"),
    "keyword": lazy_gettext("Word they sent"),
    "message_sid": lazy_gettext("Provider's message reference"),
    "event": lazy_gettext("Provider's event"),
    "event_id": lazy_gettext("Provider's event reference"),
    "error_code": lazy_gettext("Provider's error code"),
    "lifted": lazy_gettext("Opt-outs lifted"),
}


def _words(table: Mapping[str, LazyString], value: object) -> str:
    return str(table[str(value)]) if str(value) in table else str(value)


def source_words(value: str) -> str:
    return _words(SOURCES, value)


def action_words(value: str) -> str:
    return _words(ACTIONS, value)


def scope_words(value: str) -> str:
    return _words(SCOPES, value)


def status_words(value: str) -> str:
    return _words(STATUSES, value)


def policy_words(name: str, version: int) -> str:
    return str(lazy_gettext("%(policy)s, version %(version)s", policy=_words(POLICIES, name), version=version))


def detail_label(key: str) -> str:
    return _words(DETAILS, key)


def raw_value(value: Any) -> str:
    """A stored value as the raw record shows it: a time in UTC ISO-8601, nothing as `null`."""
    if value is None:
        return "null"
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def register(app: Flask) -> None:
    app.jinja_env.globals.update(
        source_words=source_words,
        action_words=action_words,
        scope_words=scope_words,
        status_words=status_words,
        policy_words=policy_words,
        detail_label=detail_label,
    )
    app.jinja_env.filters.update(raw=raw_value)
