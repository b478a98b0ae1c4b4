"""The OpenAPI 3.1 description of `/api/v1`, written by hand and served at `/api/v1/openapi.json`.

Hand-written on purpose: it is the contract clients code against, so it says what each route
promises in words, not what a generator could guess. tests/integration/test_openapi.py fails
when a route under /api/v1 is missing here, or described here and not served.
"""

from __future__ import annotations

from typing import Any

from engine.services.coupons import MAX_CODE_LENGTH, MAX_EXTERNAL_REF_LENGTH, CouponMode

PROBLEM_JSON = "application/problem+json"
SLUG_PATTERN = "^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
CODE_PATTERN = f"^[!-~]{{1,{MAX_CODE_LENGTH}}}$"


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the document (callers may change it without changing the next one)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Fluister API",
            "version": "1.0.0",
            "summary": "Campaign figures and coupon redemptions for staff and machine clients.",
            "description": (
                "Send `Authorization: Bearer <key>` with a key made by `flask --app wsgi api-keys create NAME "
                "--role ROLE [--scope SCOPE ...] [--team TEAM]`. Reading (GET) needs the scope `metrics:read`, "
                "`POST /redemptions` the scope `redemptions`; a marketer's key reaches its own team's campaigns "
                "only. A signed-in console session may read (GET) too; anything that changes data needs a "
                "key. Errors are `application/problem+json` (RFC 9457)."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`flk_...`); its role and its scopes decide what it may do.",
                }
            },
            "parameters": {
                "slug": {
                    "name": "slug",
                    "in": "path",
                    "required": True,
                    "description": "The campaign's slug, as in `/c/<slug>`.",
                    "schema": {"type": "string", "pattern": SLUG_PATTERN},
                }
            },
            "responses": _error_responses(),
            "schemas": _schemas(),
        },
    }


def _paths() -> dict[str, Any]:
    return {
        "/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 description of /api/v1.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/campaigns/{slug}/caps": {
            "parameters": [{"$ref": "#/components/parameters/slug"}],
            "get": {
                "operationId": "getCampaignCaps",
                "summary": "Live cap usage of a campaign",
                "description": (
                    "Its budgets as the limiter counts them, the limits in force, and what the caps refused or "
                    "held back in the last 24 hours. Any staff role. Never cached."
                ),
                "responses": {
                    "200": _json("The campaign's cap usage.", "CapUsage"),
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": {"$ref": "#/components/responses/Forbidden"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "503": {"$ref": "#/components/responses/Unavailable"},
                },
            },
        },
        # The campaign's figures, served by engine/web/console/analytics.py: kept in step by hand (the
        # coverage test says when a route is added there); shapes described at their top level.
        **_analytics_paths(),
        **_referrer_paths(),
        "/campaigns/{slug}/coupons": {
            "parameters": [{"$ref": "#/components/parameters/slug"}],
            "get": {
                "operationId": "getCampaignCoupons",
                "summary": "A campaign's coupon counts",
                "description": "Codes in all, given to friends, redeemed, and still free. Role marketer (or admin).",
                "responses": {
                    "200": _json("The campaign's coupon counts.", "CouponCounts"),
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": {"$ref": "#/components/responses/Forbidden"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                },
            },
        },
        "/redemptions": {
            "post": {
                "operationId": "createRedemption",
                "summary": "Redeem a coupon code",
                "description": (
                    "A shop reports a code redeemed at its checkout: the conversion, credited to the friend the "
                    "code was given to and to the chain of forwards above them. A code redeems once. A code of "
                    "the campaign that no friend was given (the shop handed it out itself) is redeemed too, and "
                    "credited to no forward. Needs an API key of role marketer (or admin)."
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RedemptionRequest"}}},
                },
                "responses": {
                    "201": _json("Redeemed.", "Redemption"),
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": {"$ref": "#/components/responses/Forbidden"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "409": {
                        "description": "The code was redeemed before; `redeemed_at` says when.",
                        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/AlreadyRedeemedProblem"}}},
                    },
                    "413": {"$ref": "#/components/responses/TooLarge"},
                    "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
                    "422": {
                        "description": "The body is not a valid redemption; `errors` names each field.",
                        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ValidationProblem"}}},
                    },
                },
            }
        },
    }


# engine.services.analytics.CSV_FIGURES, written out: this document imports no service in flux.
METRICS_CSV_FIGURES = ["slices", "reach", "funnel", "ambassadors", "chains", "projection"]


def _analytics_paths() -> dict[str, Any]:
    figure = {
        "name": "figure",
        "in": "query",
        "required": False,
        "description": "Which figure the CSV holds.",
        "schema": {"type": "string", "enum": METRICS_CSV_FIGURES, "default": "slices"},
    }
    errors = {
        "400": _problem_response("An unknown `format` or `figure`."),
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "403": {"$ref": "#/components/responses/Forbidden"},
        "404": {"$ref": "#/components/responses/NotFound"},
    }
    csv = {"description": "One figure as CSV.", "content": {"text/csv": {"schema": {"type": "string"}}}}
    return {
        "/campaigns/{slug}/metrics": {
            "parameters": [{"$ref": "#/components/parameters/slug"}],
            "get": {
                "operationId": "getCampaignMetrics",
                "summary": "A campaign's figures",
                "description": (
                    "Reach, share rate, click-through, conversions and K-factor, overall and by generation and "
                    "channel; the funnel; reach over time; top ambassadors; chains; a projection. With "
                    "`format=csv` one figure as CSV, as `/metrics.csv`. Role marketer (or admin)."
                ),
                "parameters": [
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["json", "csv"], "default": "json"},
                    },
                    figure,
                ],
                "responses": {
                    "200": {
                        "description": "The campaign's figures (or, with `format=csv`, one of them as CSV).",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/CampaignMetrics"}},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    **errors,
                },
            },
        },
        "/campaigns/{slug}/metrics.csv": {
            "parameters": [{"$ref": "#/components/parameters/slug"}],
            "get": {
                "operationId": "getCampaignMetricsCsv",
                "summary": "One of a campaign's figures as CSV",
                "parameters": [figure],
                "responses": {"200": csv, **errors},
            },
        },
        "/campaigns/{slug}/leaderboard": {
            "parameters": [{"$ref": "#/components/parameters/slug"}],
            "get": {
                "operationId": "getCampaignLeaderboard",
                "summary": "The referral contest: top referrers by converted friends",
                "description": (
                    "Up to 20 referrers, ranked by their friends who redeemed their code (ties: who got there first), "
                    "each named by the sender name they typed. Counted: rewards approved in review, and rewards "
                    "still held that no fraud filter flagged; rejected ones never. Empty for a campaign without "
                    "rewards (a policy without incentives never has any). Role marketer (or admin). Never cached."
                ),
                "responses": {
                    "200": _json("The campaign's leaderboard.", "Leaderboard"),
                    **{k: v for k, v in errors.items() if k != "400"},
                },
            },
        },
        "/campaigns/{slug}/forwards/{public_id}/tree": {
            "parameters": [
                {"$ref": "#/components/parameters/slug"},
                {
                    "name": "public_id",
                    "in": "path",
                    "required": True,
                    "description": "A forward's public id.",
                    "schema": {"type": "string"},
                },
            ],
            "get": {
                "operationId": "getForwardTree",
                "summary": "A forward, the chain above it, and the forwards below it",
                "description": "Up to 500 forwards below it. Role marketer (or admin).",
                "responses": {
                    "200": {
                        "description": "The forward's tree.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **{k: v for k, v in errors.items() if k != "400"},
                },
            },
        },
    }


# -- referrers ----------------------------------------------------------------------------------


def _referrer_paths() -> dict[str, Any]:
    errors = {
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "403": {"$ref": "#/components/responses/Forbidden"},
        "404": _problem_response("No such campaign (or another team's), or no such referrer in it."),
    }
    described = (
        "Counts only, never who: `reached` (friends invited, and people who opened the referrer's personal "
        "link), `clicked`, `converted` (their friends' redeemed codes). `rewards` by status, or null with "
        "`rewards_refusal` saying why when the campaign's policy allows no incentives. Never a contact. "
        "Role marketer (or admin), scope `metrics:read`. Never cached."
    )
    return {
        "/campaigns/{slug}/referrers/{referrer_key}": {
            "parameters": [
                {"$ref": "#/components/parameters/slug"},
                {
                    "name": "referrer_key",
                    "in": "path",
                    "required": True,
                    "description": "The referrer's key, as rewards carry it (`c:…`, `p:…` or `a:…`).",
                    "schema": {"type": "string", "maxLength": 160},
                },
            ],
            "get": {
                "operationId": "getReferrer",
                "summary": "A referrer's counts and rewards, by their key",
                "description": described,
                "responses": {"200": _json("The referrer.", "Referrer"), **errors},
            },
        },
        "/campaigns/{slug}/referrers": {
            "parameters": [{"$ref": "#/components/parameters/slug"}],
            "get": {
                "operationId": "getReferrerByContact",
                "summary": "The referrer who confirmed a contact",
                "description": (
                    "Looks up the one referrer of the campaign who confirmed this e-mail address or phone "
                    "number (by its keyed hash; a revoked or purged confirmation is not found). Never lists. "
                    + described
                ),
                "parameters": [
                    {
                        "name": "contact",
                        "in": "query",
                        "required": True,
                        "description": "An e-mail address or a phone number, as the brand holds it.",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 254},
                    }
                ],
                "responses": {
                    "200": _json("The referrer.", "Referrer"),
                    "400": _problem_response("No `contact`, or one that is neither an address nor a number."),
                    **errors,
                },
            },
        },
    }


def _referrer_schemas() -> dict[str, Any]:
    count = {"type": "integer", "minimum": 0}
    return {
        "Referrer": {
            "type": "object",
            "required": [
                "campaign",
                "referrer_key",
                "name",
                "confirmed",
                "confirmed_channel",
                "counts",
                "rewards",
                "rewards_refusal",
            ],
            "properties": {
                "campaign": {"type": "string"},
                "referrer_key": {"type": "string"},
                "name": {"type": "string", "description": "The sender name they typed."},
                "confirmed": {"type": "boolean", "description": "They confirmed a contact to follow their rewards."},
                "confirmed_channel": {"type": ["string", "null"], "enum": ["email", "sms", None]},
                "counts": {
                    "type": "object",
                    "required": ["reached", "clicked", "converted"],
                    "properties": {"reached": count, "clicked": count, "converted": count},
                },
                "rewards": {
                    "type": ["object", "null"],
                    "required": ["earned", "pending", "approved", "paid", "rejected"],
                    "properties": {
                        "earned": count,
                        "pending": count,
                        "approved": count,
                        "paid": count,
                        "rejected": count,
                    },
                },
                "rewards_refusal": {"type": ["string", "null"]},
            },
        }
    }


def _json(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _error_responses() -> dict[str, Any]:
    unauthorized = _problem_response("No API key (or signed-in session), or one that is not valid.")
    unauthorized["headers"] = {
        "WWW-Authenticate": {"description": 'Bearer realm="fluister"', "schema": {"type": "string"}}
    }
    return {
        "Unauthorized": unauthorized,
        "Forbidden": _problem_response("The key's role or scopes do not allow this."),
        "NotFound": _problem_response("No such campaign (or code), or another team's."),
        "TooLarge": _problem_response("The body is larger than 64 KiB."),
        "UnsupportedMediaType": _problem_response("The body is not JSON."),
        "Unavailable": _problem_response("A service this needs (Redis) cannot be reached; try again shortly."),
    }


def _schemas() -> dict[str, Any]:
    count = {"type": "integer", "minimum": 0}
    timestamp = {"type": "string", "format": "date-time"}
    return {
        **_referrer_schemas(),
        "Problem": {
            "type": "object",
            "description": "Problem details (RFC 9457).",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string", "format": "uri-reference", "examples": ["about:blank"]},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string", "description": "What went wrong, for a person to read."},
            },
        },
        "ValidationProblem": {
            "allOf": [
                {"$ref": "#/components/schemas/Problem"},
                {
                    "type": "object",
                    "required": ["errors"],
                    "properties": {
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["field", "pointer", "detail"],
                                "properties": {
                                    "field": {"type": "string", "description": "The field; empty for the body."},
                                    "pointer": {"type": "string", "description": "A JSON pointer to it (`#/code`)."},
                                    "detail": {"type": "string"},
                                },
                            },
                        }
                    },
                },
            ]
        },
        "AlreadyRedeemedProblem": {
            "allOf": [
                {"$ref": "#/components/schemas/Problem"},
                {"type": "object", "required": ["redeemed_at"], "properties": {"redeemed_at": timestamp}},
            ]
        },
        "BudgetUsage": {
            "type": "object",
            "required": ["name", "limit", "period_seconds", "used", "remaining"],
            "properties": {
                "name": {"type": "string"},
                "limit": count,
                "period_seconds": {"type": ["integer", "null"], "description": "null: a total, for ever."},
                "used": count,
                "remaining": count,
            },
        },
        "CapUsage": {
            "type": "object",
            "required": [
                "campaign",
                "status",
                "status_reason",
                "as_of",
                "budgets",
                "limits",
                "refused_last_24h",
                "messages_last_24h",
            ],
            "properties": {
                "campaign": {"type": "string"},
                "status": {"type": "string", "enum": ["draft", "active", "paused", "ended"]},
                "status_reason": {"type": ["string", "null"]},
                "as_of": timestamp,
                "budgets": {"type": "array", "items": {"$ref": "#/components/schemas/BudgetUsage"}},
                "limits": {
                    "type": "object",
                    "description": "Each cap's limit by name; null for a cap that is off.",
                    "additionalProperties": {"type": ["integer", "null"]},
                },
                "refused_last_24h": {"type": "object", "additionalProperties": count},
                "messages_last_24h": {"type": "object", "additionalProperties": count},
            },
        },
        "Leaderboard": {
            "type": "object",
            "description": "engine.services.rewards.Leaderboard.",
            "required": ["campaign", "as_of", "rewards_enabled", "referrers"],
            "properties": {
                "campaign": {"type": "string"},
                "as_of": timestamp,
                "rewards_enabled": {"type": "boolean"},
                "referrers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["rank", "sender_name", "converted_friends", "approved"],
                        "properties": {
                            "rank": {"type": "integer", "minimum": 1},
                            "sender_name": {"type": "string"},
                            "converted_friends": {"type": "integer", "minimum": 1},
                            "approved": {**count, "description": "Of the converted friends, rewards approved."},
                        },
                    },
                },
            },
        },
        "CampaignMetrics": {
            "type": "object",
            "description": "engine.services.analytics.CampaignMetrics; each part an object or a list of objects.",
            "required": [
                "campaign",
                "name",
                "as_of",
                "refreshed_at",
                "overall",
                "generations",
                "channels",
                "funnel",
                "reach_over_time",
                "ambassadors",
                "chains",
                "projection",
            ],
            "properties": {
                "campaign": {"type": "string"},
                "name": {"type": "string"},
                "as_of": timestamp,
                "refreshed_at": timestamp,
                "overall": {"type": "object"},
                "generations": {"type": "array", "items": {"type": "object"}},
                "channels": {"type": "array", "items": {"type": "object"}},
                "funnel": {"type": "array", "items": {"type": "object"}},
                "reach_over_time": {"type": "array", "items": {"type": "object"}},
                "ambassadors": {"type": "object"},
                "chains": {"type": "array", "items": {"type": "object"}},
                "projection": {"type": ["object", "null"]},
            },
        },
        "CouponCounts": {
            "type": "object",
            "required": ["campaign", "mode", "total", "assigned", "redeemed", "available", "coupons_allowed"],
            "properties": {
                "campaign": {"type": "string"},
                "mode": {"type": "string", "enum": [mode.value for mode in CouponMode]},
                "total": count,
                "assigned": {**count, "description": "Given to a friend."},
                "redeemed": count,
                "available": {**count, "description": "Neither given out nor redeemed."},
                "coupons_allowed": {
                    "type": "boolean",
                    "description": "false when the campaign's consent policy allows no incentives (eu-strict).",
                },
            },
        },
        "RedemptionRequest": {
            "type": "object",
            "required": ["campaign", "code"],
            "additionalProperties": False,
            "properties": {
                "campaign": {"type": "string", "pattern": SLUG_PATTERN},
                "code": {
                    "type": "string",
                    "pattern": CODE_PATTERN,
                    "description": "As given to the friend: printable ASCII without spaces, case as issued.",
                },
                "external_ref": {
                    "type": "string",
                    "maxLength": MAX_EXTERNAL_REF_LENGTH,
                    "description": "The shop's own reference, such as an order number.",
                },
            },
        },
        "Redemption": {
            "type": "object",
            "required": ["id", "campaign", "code", "redeemed_at", "external_ref", "reported_by", "forward"],
            "properties": {
                "id": {"type": "integer"},
                "campaign": {"type": "string"},
                "code": {"type": "string"},
                "redeemed_at": timestamp,
                "external_ref": {"type": ["string", "null"]},
                "reported_by": {"type": ["string", "null"], "description": "The name of the API key."},
                "forward": {
                    "description": "The friend's forward the code was given to; null when it was given to nobody.",
                    "oneOf": [
                        {"type": "null"},
                        {
                            "type": "object",
                            "required": ["id", "generation", "chain"],
                            "properties": {
                                "id": {"type": "string", "description": "The forward's public id."},
                                "generation": {"type": "integer", "minimum": 1},
                                "chain": {
                                    "type": "array",
                                    "items": {"type": "string"},
                                    "description": "Public ids: this forward, its parent, ... up to generation 1.",
                                },
                            },
                        },
                    ],
                },
            },
        },
    }
