"""Schemathesis against `/api/v1/openapi.json`: for every operation the spec describes, requests
generated from it are sent to the app (over WSGI) with a valid API key. None may answer with a
server error, and each answer must be what the spec promises: a status it lists, its content type
and, where it gives one, its schema. Invalid requests (bad slugs, bodies, types) must be refused.

Each operation is tried three ways: with values generated from the spec (an unknown campaign,
mostly), with the path of a campaign (or a reward) that exists and has a forward (so that the 200
answers are checked against their schemas), and with data that breaks the spec. Examples are bounded and
derandomized: the run is short and the same every time.

Schemathesis's own pytest plugin does not run under pytest 9 (it sets `Function._nodeid`), so
its Python API drives Hypothesis here, one test per operation and way.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from engine.models import Coupon, Forward, Reward
from engine.runtime import Runtime
from engine.services.coupons import redeem
from engine.services.rewards import ProgramSettings, set_program
from engine.web.api.openapi import openapi_document
from tests.helpers import US_CUSTOM_SMS, make_campaign, submission

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _cases() -> list[tuple[str, str]]:
    """(operationId, way) for every operation: a campaign's path only where there is a slug, and
    invalid data only where there is something to break (the spec itself takes no input)."""
    cases = []
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            takes_input = bool(item.get("parameters") or operation.get("parameters") or operation.get("requestBody"))
            ways = ["generated"]
            ways += ["existing-campaign"] if "{slug}" in path else []
            ways += ["existing-reward"] if "{reward_id}" in path else []
            ways += ["invalid"] if takes_input else []
            cases += [(operation["operationId"], way) for way in ways]
    return sorted(cases)


@pytest.fixture
def api_key(runtime: Runtime) -> str:
    """An admin key: every operation is open to it, so the answers are about the input, not the role."""
    return runtime.staff.create_api_key("schemathesis", "admin").secret


@pytest.fixture
def api_schema(app: Flask) -> schemathesis.BaseSchema:
    """The spec as the app serves it, bound to the app: requests never leave the process."""
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


@pytest.mark.parametrize(("operation_id", "way"), _cases())
def test_the_api_never_answers_a_server_error_and_keeps_to_its_spec(
    api_schema: schemathesis.BaseSchema, runtime: Runtime, api_key: str, operation_id: str, way: str
) -> None:
    operation = api_schema.find_operation_by_id(operation_id)
    fixed: dict[str, Any] = {}
    if way == "existing-campaign":
        receipt = runtime.forwarding.submit("demo", submission("bob@example.com", sender_name="Anna"))
        with runtime.db.reading() as session:
            forward = session.get(Forward, receipt.forward_ids[0])
            assert forward is not None
        known = {"slug": "demo", "public_id": forward.public_id}
        fixed = {name: value for name, value in known.items() if f"{{{name}}}" in operation.path}
    if way == "existing-reward":
        fixed = {"reward_id": held_reward(runtime)}
    mode = GenerationMode.NEGATIVE if way == "invalid" else GenerationMode.POSITIVE
    headers = {"Authorization": f"Bearer {api_key}"}

    @given(case=operation.as_strategy(mode, path_parameters=fixed or None))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def answers_as_specified(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    answers_as_specified()


def held_reward(runtime: Runtime) -> int:
    """A reward waiting for review, on a campaign whose policy allows incentives (the demo's does not)."""
    campaign = make_campaign(runtime.db, "spring", policy_settings={**US_CUSTOM_SMS, "incentives": True})
    set_program(runtime.db, "spring", ProgramSettings(True, "A voucher per friend who orders"))
    with runtime.db.transaction() as session:
        forward = Forward(
            public_id="pub-reward",
            campaign_id=campaign.id,
            generation=1,
            channel="email",
            sender_name="Ann",
            recipient_contact_hash="h-friend",
            policy_name="custom",
            policy_version=1,
        )
        session.add(forward)
        session.flush()
        session.add(Coupon(campaign_id=campaign.id, code="CODE-R", forward_id=forward.id))
    redeem(runtime.db, "spring", "CODE-R")
    with runtime.db.reading() as session:
        reward_id = session.scalar(select(Reward.id))
    assert reward_id is not None
    return reward_id


@pytest.mark.parametrize("body", ["[" * 20_000 + "]" * 20_000, '{"a":' * 10_000 + "1" + "}" * 10_000])
def test_json_nested_deeper_than_any_redemption_is_a_422(app: Flask, api_key: str, body: str) -> None:
    response = app.test_client().post(
        "/api/v1/redemptions",
        data=body,
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
