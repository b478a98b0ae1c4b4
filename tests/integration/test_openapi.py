"""The API's description at /api/v1/openapi.json: served to anyone, valid OpenAPI 3.1, and in
step with the routes the app really serves under /api/v1 (each way round)."""

from __future__ import annotations

import re

import pytest
from flask import Flask

PREFIX = "/api/v1"
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def served_operations(app: Flask) -> set[tuple[str, str]]:
    """(path in OpenAPI's spelling, method) for every route under /api/v1."""
    operations = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX + "/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule[len(PREFIX) :])
        operations |= {(path, method.lower()) for method in (rule.methods or set()) - IGNORED_METHODS}
    return operations


def described_operations(document: dict) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "delete", "patch"}
    return {(path, method) for path, item in document["paths"].items() for method in item if method in methods}


def test_the_description_is_served_to_anyone(app: Flask) -> None:
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document = response.json
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": "/api/v1"}]
    bearer = document["components"]["securitySchemes"]["bearer"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    assert document["security"] == [{"bearer": []}]
    assert document["paths"]["/openapi.json"]["get"]["security"] == []
    assert set(document["components"]["schemas"]["Problem"]["required"]) == {"type", "title", "status", "detail"}


def test_every_api_route_is_described_and_every_description_is_served(app: Flask) -> None:
    document = app.test_client().get("/api/v1/openapi.json").json
    served = served_operations(app)
    described = described_operations(document)
    assert served, "no routes under /api/v1?"
    assert served - described == set(), "served but not in openapi.json (engine/web/api/openapi.py)"
    assert described - served == set(), "in openapi.json but not served"


def test_error_responses_are_problem_json(app: Flask) -> None:
    document = app.test_client().get("/api/v1/openapi.json").json
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if int(status) >= 400 and "$ref" not in response:
                    assert list(response["content"]) == ["application/problem+json"], (path, method, status)


def test_the_description_is_valid_openapi_3_1(app: Flask) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(app.test_client().get("/api/v1/openapi.json").json)
