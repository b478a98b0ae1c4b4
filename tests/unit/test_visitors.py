"""engine.visitors against real user agents: every known link preview, crawler and mail scanner
is a prefetch, and no person's browser (in-app browsers included) is taken for one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.visitors import RULES, is_prefetch, prefetch_reason

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "user_agents.txt"


def _agents(kind: str) -> list[str]:
    lines = (line.rstrip("\n") for line in FIXTURE.read_text(encoding="utf-8").splitlines())
    pairs = [line.split("\t", 1) for line in lines if line and not line.startswith("#")]
    assert all(k in ("prefetch", "person") for k, _ in pairs), "a line is neither prefetch nor person"
    return [agent for k, agent in pairs if k == kind]


MACHINES = _agents("prefetch")
PEOPLE = _agents("person")


def test_the_fixture_holds_both_kinds() -> None:
    assert len(MACHINES) >= 40 and len(PEOPLE) >= 30


@pytest.mark.parametrize("user_agent", MACHINES)
def test_a_machine_is_a_prefetch(user_agent: str) -> None:
    assert prefetch_reason(user_agent), user_agent


@pytest.mark.parametrize("user_agent", PEOPLE)
def test_a_person_is_no_prefetch(user_agent: str) -> None:
    assert prefetch_reason(user_agent) is None, f"{user_agent} taken for a machine: {prefetch_reason(user_agent)}"


def test_a_head_request_is_a_prefetch_even_from_a_browser() -> None:
    assert is_prefetch(PEOPLE[0], "HEAD") and is_prefetch(PEOPLE[0], "head")
    assert not is_prefetch(PEOPLE[0], "GET")


@pytest.mark.parametrize("user_agent", ["", "   ", None])
def test_no_user_agent_is_a_prefetch(user_agent: str | None) -> None:
    assert is_prefetch(user_agent)


def test_the_reason_names_the_service() -> None:
    assert "WhatsApp" in str(prefetch_reason("WhatsApp/2.23.20.0 A"))
    assert "Slack" in str(prefetch_reason("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"))


def test_every_rule_has_a_reason_and_catches_a_fixture_agent() -> None:
    # A rule nothing in the fixture exercises is a rule nobody checked against real traffic.
    for rule in RULES:
        assert rule.reason
        pattern = re.compile(rule.pattern, re.IGNORECASE)
        assert any(pattern.search(agent) for agent in MACHINES), rule.pattern
        assert not any(pattern.search(agent) for agent in PEOPLE), rule.pattern
