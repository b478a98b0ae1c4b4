"""The channel registry, and consent policies keeping one rule per channel."""

from __future__ import annotations

import ast
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.channels import ChannelRule, UnknownChannel, by_template, channel, names, recognising
from engine.contacts import InvalidContact, parse_contact
from engine.policy import BUILT_IN, PolicyError, policy_for

OLD_CUSTOM = {
    "version": 2,
    "server_email": True,
    "server_sms": "with_consent",
    "incentives": False,
    "retention": "days_after_send",
    "retention_days": 14,
    "justification": "Signed off by compliance on 2026-11-01, ticket 42.",
}


def test_the_registry_lists_the_built_in_channels_and_finds_each_by_name() -> None:
    assert names()[:2] == ("email", "sms")
    assert channel("sms").label == "text message"
    with pytest.raises(UnknownChannel):
        channel("carrier-pigeon")


def test_a_typed_contact_goes_to_the_first_enabled_channel_that_recognises_it() -> None:
    assert recognising("anna@example.com") is channel("email")
    assert recognising("06 12345678") is channel("sms")
    assert recognising("06 12345678", enabled=["email"]) is None
    # Not one of the campaign's: still read as what it is, for the refusal to name it.
    assert parse_contact("06 12345678", "NL", enabled=["email"]).channel == "sms"
    with pytest.raises(InvalidContact):
        parse_contact("06 1234", "NL", enabled=["email"])


def test_each_template_belongs_to_its_channel() -> None:
    assert by_template("email.html") is channel("email")
    assert by_template("sms.txt") is channel("sms")
    assert by_template("landing.html") is None


def test_built_in_policies_take_each_channels_own_rule() -> None:
    assert dict(BUILT_IN["us"].rules) == {
        "email": ChannelRule.ALLOWED,
        "sms": ChannelRule.WITH_CONSENT,
        "whatsapp": ChannelRule.WITH_CONSENT,
    }
    assert dict(BUILT_IN["eu-strict"].rules) == {"email": ChannelRule.ALLOWED}
    assert dict(BUILT_IN["share-only"].rules) == {}
    # A channel a policy does not name is never sent on.
    assert BUILT_IN["eu-strict"].rule("sms") is ChannelRule.NEVER


def test_a_custom_policy_stored_with_the_old_keys_loads_as_the_same_rules() -> None:
    old = policy_for("custom", OLD_CUSTOM)
    settings = {k: v for k, v in OLD_CUSTOM.items() if k not in ("server_email", "server_sms")}
    new = policy_for("custom", {**settings, "channels": {"email": "allowed", "sms": "with_consent"}})

    assert old == new
    assert old.server_sends("email") and not old.server_sends("sms")
    assert old.server_sends("sms", has_consent=True) and old.needs_consent("sms")


def test_an_old_custom_policy_without_email_sends_none() -> None:
    policy = policy_for("custom", {**OLD_CUSTOM, "server_email": False, "server_sms": "never"})
    assert not policy.may_offer("email") and not policy.may_offer("sms")


def test_a_custom_policy_with_an_unknown_rule_is_refused() -> None:
    with pytest.raises(PolicyError, match="invalid"):
        policy_for("custom", {**OLD_CUSTOM, "channels": {"email": "sometimes"}})


def test_no_code_outside_the_channel_modules_names_a_channels_rule_or_kind() -> None:
    """Adding a channel touches its own module: nothing else in the engine decides by a
    channel's name (configuration aside)."""
    engine = Path(__file__).resolve().parents[2] / "engine"
    found = subprocess.run(
        ["grep", "-rn", "--include=*.py", r"Channel.SMS\|server_sms\|server_email", str(engine)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    outside = [line for line in found if not line.startswith(str(engine / "channels"))]
    assert outside == []


ENGINE = Path(__file__).resolve().parents[2] / "engine"
# Modules outside engine/channels/ that may name a channel, and why: configuration, which by
# its nature says which channel gets what.
MAY_NAME_CHANNELS = {
    "runtime.py": "the wiring: which transport and which pacer each channel gets",
    "cli.py": "the command line: the channel choices an operator types",
    "services/simulation.py": "the simulation's seed campaigns enable channels by name",
}


def _naming_a_channel(tree: ast.AST, channel_names: set[str]) -> Iterator[tuple[int, str]]:
    """Where a module imports a channel's module by name or compares with a channel's name."""

    def is_name(node: ast.expr) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in channel_names
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(is_name(element) for element in node.elts)
        return False

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            if any(module in {f"engine.channels.{name}" for name in channel_names} for module in modules):
                yield node.lineno, f"from {node.module} import ..."
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[:3] in [["engine", "channels", name] for name in channel_names]:
                    yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.Compare) and any(map(is_name, [node.left, *node.comparators])):
            yield node.lineno, ast.unparse(node)
        elif isinstance(node, ast.MatchValue) and is_name(node.value):
            yield node.value.lineno, f"case {ast.unparse(node.value)}"


def test_no_module_outside_the_channels_decides_by_a_channels_name() -> None:
    """Nothing outside a channel's module names a channel, except configuration (and the
    templates): no import of a channel's module by name, no comparison with a channel's name."""
    channel_names = set(names())
    found = []
    for path in sorted(ENGINE.rglob("*.py")):
        relative = path.relative_to(ENGINE).as_posix()
        if relative.startswith("channels/") or relative in MAY_NAME_CHANNELS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found += [f"engine/{relative}:{line}: {what}" for line, what in _naming_a_channel(tree, channel_names)]
    assert found == []


def test_the_channel_name_check_finds_an_import_and_a_comparison() -> None:
    # The check above is only worth something if it can fail.
    source = (
        "from engine.channels.sms import NAME\n"
        "from engine.channels import whatsapp\n"
        "import engine.channels.email\n"
        "if contact.channel == 'email' or name in ('pager', 'sms'):\n"
        "    pass\n"
    )
    lines = sorted(line for line, _ in _naming_a_channel(ast.parse(source), {"email", "sms", "whatsapp"}))
    assert lines == [1, 2, 3, 4, 4]


def test_every_module_allowed_to_name_channels_exists() -> None:
    # An exception for a module that is gone (or moved) would silently cover its successor's name.
    assert all((ENGINE / relative).is_file() for relative in MAY_NAME_CHANNELS)
