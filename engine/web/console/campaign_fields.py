"""The campaign form's caps and custom-policy fields: one field per cap and per rule instead of
raw JSON, and the JSON itself (for admins only) with its parser errors said in words.

These parse what was typed into the values the service takes; whether they may be saved stays
the service's call (engine.services.campaigns): a cap's value is checked by the same
`CapSettings.from_overrides` the service uses, a custom policy by `policy_for`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext
from wtforms import BooleanField, Field, SelectField, StringField
from wtforms.fields.choices import SelectChoice

from engine.caps import CapSettings
from engine.channels import ChannelRule, MessageChannel, registered
from engine.policy import BUILT_IN, PolicyError, Retention, policy_for
from engine.services.campaign_guides import CAP_GUIDES, PLURAL_NOUNS, CapGuide

# -- JSON, in words -------------------------------------------------------------------------------

# The json module's messages (CPython's decoder), each as a reader would say it.
_JSON_PROBLEMS: tuple[tuple[str, Any], ...] = (
    ("Expecting ',' delimiter", lazy_gettext("expected a comma")),
    ("Expecting ':' delimiter", lazy_gettext("expected a colon after the name")),
    ("Expecting property name enclosed in double quotes", lazy_gettext("expected a name in double quotes")),
    ("Expecting value", lazy_gettext("expected a value (a number, text in double quotes, true, false or null)")),
    ("Unterminated string", lazy_gettext("a text in quotes is not closed")),
    ("Invalid control character", lazy_gettext("a line break or tab inside quotes")),
    ("Invalid \\escape", lazy_gettext("a backslash that starts no known escape")),
    ("Invalid \\uXXXX escape", lazy_gettext("a backslash that starts no known escape")),
    ("Extra data", lazy_gettext("more text after the end of the object")),
    ("Illegal trailing comma", lazy_gettext("a comma before the closing brace")),
)


def json_object(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The object typed, or why it is not one: "Line 3, column 5: expected a comma."."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        problem = next((str(words) for start, words in _JSON_PROBLEMS if error.msg.startswith(start)), None)
        return None, _(
            "Line %(line)s, column %(column)s: %(problem)s.",
            line=error.lineno,
            column=error.colno,
            problem=problem or _("this is not valid JSON"),
        )
    if not isinstance(value, dict):
        return None, _("Type a JSON object, in braces: %(example)s.", example='{"name": value}')
    return value, None


def json_refused() -> str:
    return _("Only an admin may type these settings as JSON; use the fields instead. Nothing was saved.")


# -- caps -----------------------------------------------------------------------------------------


def cap_field(guide: CapGuide) -> str:
    return f"cap_{guide.name}"


def no_cap_field(guide: CapGuide) -> str:
    return f"cap_{guide.name}_none"


def cap_fields() -> dict[str, Field]:
    """Two fields a cap: its number (empty: the default) and "no cap"."""
    fields: dict[str, Any] = {}
    for guide in CAP_GUIDES:
        fields[cap_field(guide)] = StringField(guide.label)
        fields[no_cap_field(guide)] = BooleanField(lazy_gettext("No cap (an admin only, with a reason)"))
    return fields


def fill_caps(form: Any, caps: Mapping[str, int | None]) -> None:
    for guide in CAP_GUIDES:
        value = caps.get(guide.name, "")
        form[no_cap_field(guide)].data = guide.name in caps and value is None
        form[cap_field(guide)].data = "" if value is None else str(value)


def typed_caps(form: Any) -> dict[str, int | None]:
    """The overrides typed, each problem beside its field (the form then shows them)."""
    caps: dict[str, int | None] = {}
    for guide in CAP_GUIDES:
        number, none = form[cap_field(guide)], form[no_cap_field(guide)]
        text = (number.data or "").strip().replace(" ", "")
        if none.data and text:
            number.errors = [*number.errors, _("Either a number or no cap, not both.")]
        elif none.data:
            caps[guide.name] = None
        elif text:
            value = _whole_number(text)
            problem = _cap_problem(guide, value)
            if problem:
                number.errors = [*number.errors, problem]
            else:
                caps[guide.name] = value
    return caps


def _whole_number(text: str) -> int | None:
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else None


def _cap_problem(guide: CapGuide, value: int | None) -> str | None:
    if value is None:
        return _("Not a number: type a whole number such as 20, or leave it empty for the default.")
    try:
        CapSettings.from_overrides({guide.name: value})
    except ValueError:
        return _(
            "%(value)s is too low: a cap is a whole number of at least 1. Leave it empty for the default.",
            value=value,
        )
    return None


def cap_removal_refused(form: Any, caps: tuple[str, ...], *, needs_reason: bool) -> None:
    """The service's refusal to remove caps, beside each cap (and the reason) it is about."""
    for guide in CAP_GUIDES:
        if guide.name not in caps:
            continue
        field = form[no_cap_field(guide)]
        if needs_reason:
            field.errors = [*field.errors, _("Removing a cap needs a reason: say why below, the history keeps it.")]
        else:
            field.errors = [*field.errors, _("Only an admin may remove a cap; type a number instead.")]
    if needs_reason:
        form.reason.errors = [*form.reason.errors, _("Say why the cap is removed.")]


# -- the custom policy's rules --------------------------------------------------------------------

_RULE_CHOICES = (
    (ChannelRule.NEVER, lazy_gettext("never: the sender shares a link from their own device")),
    (ChannelRule.WITH_CONSENT, lazy_gettext("only to a friend whose own consent is on record")),
    (ChannelRule.ALLOWED, lazy_gettext("to any friend the sender names")),
)
_RETENTION_CHOICES = (
    (Retention.NOTHING, lazy_gettext("never stored")),
    (Retention.PURGE_AFTER_SEND, lazy_gettext("erased once the message has gone (a hash is kept)")),
    (Retention.DAYS_AFTER_SEND, lazy_gettext("kept for some days after the send")),
)


def rule_field(channel: MessageChannel) -> str:
    return f"policy_channel_{channel.name}"


def rule_fields() -> dict[str, Field]:
    """A rule a channel: what the server may send on it under the custom policy."""
    return {
        rule_field(channel): SelectField(
            lazy_gettext(
                "%(messages)s from the server", messages=PLURAL_NOUNS.get(channel.message_noun, channel.message_noun)
            ),
            choices=[SelectChoice(rule.value, label) for rule, label in _RULE_CHOICES],
            validate_choice=False,  # only a custom policy reads it, and judges it itself
        )
        for channel in registered()
    }


def retention_choices() -> list[SelectChoice]:
    return [SelectChoice(retention.value, label) for retention, label in _RETENTION_CHOICES]


def fill_policy(form: Any, name: str, settings: Mapping[str, Any]) -> None:
    """The custom rules as stored; for another policy, those of `us` as a starting point."""
    try:
        policy = policy_for("custom", settings) if name == "custom" else BUILT_IN["us"]
    except PolicyError:
        policy = BUILT_IN["us"]  # stored unreadable: the fields start afresh, the JSON shows it
    form.policy_version.data = str(policy.version)
    for channel in registered():
        form[rule_field(channel)].data = policy.rule(channel.name).value
    form.policy_incentives.data = policy.incentives
    form.policy_retention.data = policy.retention.value
    form.policy_retention_days.data = str(policy.retention_days)
    form.policy_sms_from.data = str(policy.sms_window.start.hour)
    end = policy.sms_window.end
    form.policy_sms_until.data = str(24 if end.minute == 59 else end.hour)
    form.policy_preview_required.data = policy.preview_required


def typed_policy(form: Any) -> dict[str, Any]:
    """The custom rules typed, in the form the policy reads (docs/policies.md); a number that
    is not one is refused beside its field."""
    numbers = {}
    for name in ("policy_version", "policy_retention_days", "policy_sms_from", "policy_sms_until"):
        field = form[name]
        numbers[name] = _whole_number((field.data or "").strip())
        if numbers[name] is None:
            field.errors = [*field.errors, _("Not a number: type a whole number.")]
    return {
        "version": numbers["policy_version"],
        # A rule not posted is `never`, as a channel a policy does not name.
        "channels": {c.name: form[rule_field(c)].data or ChannelRule.NEVER.value for c in registered()},
        "incentives": bool(form.policy_incentives.data),
        "retention": form.policy_retention.data,
        "retention_days": numbers["policy_retention_days"],
        "sms_hours": [numbers["policy_sms_from"], numbers["policy_sms_until"]],
        "preview_required": bool(form.policy_preview_required.data),
    }


def same_policy(typed: Mapping[str, Any], stored: Mapping[str, Any]) -> bool:
    """Whether the rules typed are the stored ones, written otherwise (older keys, an omitted
    default): then the stored ones are kept as they are, and the history shows no change."""
    justification = {"justification": "x" * 20}
    try:
        policies = [policy_for("custom", {**rules, **justification}) for rules in (typed, stored)]
    except (PolicyError, ValueError, TypeError):
        return False
    # A channel a policy does not name is `never`: named so or not, the rule is the same.
    every_rule = [{c.name: p.rule(c.name) for c in registered()} for p in policies]
    return every_rule[0] == every_rule[1] and replace(policies[0], rules={}) == replace(policies[1], rules={})
