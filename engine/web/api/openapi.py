"""The OpenAPI 3.1 description of `/api/v1`, written by hand and served at `/api/v1/openapi.json`.

Hand-written on purpose: it is the contract clients code against, so it says what each route
promises in words, not what a generator could guess. tests/integration/test_openapi.py fails
when a route under /api/v1 is missing here, or described here and not served.
"""

from __future__ import annotations

from typing import Any

from engine.services.coupons import MAX_CODE_LENGTH, MAX_EXTERNAL_REF_LENGTH, CouponMode
from engine.services.webhooks import EVENT_TYPES, MAX_DESCRIPTION_LENGTH
from engine.web.api.pagination import DEFAULT_LIMIT as DEFAULT_PAGE_LIMIT
from engine.web.api.pagination import MAX_LIMIT as MAX_PAGE_LIMIT

PROBLEM_JSON = "application/problem+json"
SLUG_PATTERN = "^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
CODE_PATTERN = f"^[!-~]{{1,{MAX_CODE_LENGTH}}}$"
CAMPAIGN_STATUSES = ["draft", "active", "paused", "ended"]
REWARD_STATUSES = ["held", "approved", "rejected"]
MAX_REASON_LENGTH = 500  # engine.services.rewards.MAX_REASON_LENGTH, written out like the figures below


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the document (callers may change it without changing the next one)."""
    return _api_wide(_document())


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Fluister API",
            "version": "1.0.0",
            "summary": "Campaigns, their figures, rewards and coupon redemptions for staff and machine clients.",
            "description": (
                "Send `Authorization: Bearer <key>` with a key made by `flask --app wsgi api-keys create NAME "
                "--role ROLE [--scope SCOPE ...] [--team TEAM]`. Reading (GET) needs the scope `metrics:read`, "
                "`POST /redemptions` the scope `redemptions`; a marketer's key reaches its own team's campaigns "
                "only. A signed-in console session may read (GET) too; anything that changes data needs a "
                "key. Errors are `application/problem+json` (RFC 9457).\n\n"
                "Lists are paged with cursors: `limit` (1 to 200) and the `cursor` of the previous page's "
                '`next_cursor` (or follow `next`, or the `Link: <...>; rel="next"` header).\n\n'
                "Every answer carries `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds) and "
                "`RateLimit-Policy` (`600;w=60`): each key is counted on its own against its role's limit; past "
                "it, 429 with `Retry-After`.\n\n"
                "Every POST takes an `Idempotency-Key` header: sent again with the same key and body within 24 "
                "hours, the first answer is given again (with `Idempotent-Replayed: true`) and nothing is done "
                "twice; the same key with another body is a 422, and while the first is being handled a 409."
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
                },
                **_paging_parameters(),
            },
            "headers": _rate_limit_headers(),
            "responses": _error_responses(),
            "schemas": {**_schemas(), **_webhook_schemas()},
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
        # -- campaigns and rewards (engine/web/api/campaigns.py, engine/web/api/rewards.py) --
        **_campaign_and_reward_paths(),
        # The campaign's figures, served by engine/web/console/analytics.py: kept in step by hand (the
        # coverage test says when a route is added there); shapes described at their top level.
        **_analytics_paths(),
        **_programme_paths(),
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
        **_webhook_paths(),
    }


# -- the reward programme: orders on redemptions, payouts confirmed by the shop ----------------------

MAX_PAYOUT_REFERENCE_LENGTH = 200
AMOUNT_PATTERN = r"^\d{1,12}(\.\d{1,3})?$"


def _programme_paths() -> dict[str, Any]:
    return {
        "/rewards/{reward_id}/paid": {
            "post": {
                "operationId": "markRewardPaid",
                "summary": "Confirm a reward paid out",
                "description": (
                    "For campaigns whose referrer rewards are paid out by the shop (payout method `webhook`): "
                    "once an approved reward's hold period is over the shop is told (`reward.approved`), pays it "
                    "out, and confirms it here with its own optional reference. The same confirmation again "
                    "answers alike and changes nothing; another reference for a reward paid already is a 409. "
                    "Needs a key of role marketer (or admin) with the scope `redemptions`. Refused with 403 "
                    "under a consent policy that allows no incentives (eu-strict)."
                ),
                "parameters": [
                    {
                        "name": "reward_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                    }
                ],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PayoutConfirmation"}}},
                },
                "responses": {
                    "200": _json("Paid (now, or before with the same reference).", "ProgrammeReward"),
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": _problem_response("The key may not do this, or the campaign's policy allows no incentives."),
                    "404": _problem_response("No such reward, or another team's."),
                    "409": _problem_response(
                        "Not payable (held, rejected, paid by code, in its hold period) or paid already with "
                        "another reference."
                    ),
                    "413": {"$ref": "#/components/responses/TooLarge"},
                    "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
                    "422": {
                        "description": "The body is not a valid confirmation.",
                        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                    },
                },
            }
        }
    }


def _order_request_properties() -> dict[str, Any]:
    return {
        "order_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_EXTERNAL_REF_LENGTH,
            "description": (
                "The shop's order: an order converts once. Reporting the same order again (with the same code) "
                "answers what the first report recorded, and records nothing."
            ),
        },
        "order_total": {
            "type": "string",
            "pattern": AMOUNT_PATTERN,
            "description": "The order's total as a decimal string (`42.50`), given with `currency`.",
        },
        "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$", "description": "ISO 4217, such as EUR."},
        "customer_ref": {"type": "string", "maxLength": MAX_EXTERNAL_REF_LENGTH},
        "new_customer": {"type": "boolean", "description": "Whether the customer had never ordered before."},
    }


def _order_response_properties() -> dict[str, Any]:
    return {
        "order": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["order_id", "order_total", "currency", "customer_ref", "new_customer"],
                    "properties": {
                        "order_id": {"type": "string"},
                        "order_total": {"type": ["string", "null"]},
                        "currency": {"type": ["string", "null"]},
                        "customer_ref": {"type": ["string", "null"]},
                        "new_customer": {"type": ["boolean", "null"]},
                    },
                },
            ]
        },
        "reward": {
            "description": "The referrer's reward this conversion earned, if any.",
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["id", "status"],
                    "properties": {"id": {"type": "integer"}, "status": {"type": "string"}},
                },
            ],
        },
    }


def _programme_schemas() -> dict[str, Any]:
    maybe_time = {"type": ["string", "null"], "format": "date-time"}
    return {
        "PayoutConfirmation": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "reference": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_PAYOUT_REFERENCE_LENGTH,
                    "description": "The shop's reference for the payout (a voucher number, a transfer id).",
                }
            },
        },
        "ProgrammeReward": {
            "type": "object",
            "required": ["id", "referrer_name", "status", "description", "payout"],
            "properties": {
                "id": {"type": "integer"},
                "referrer_name": {"type": "string"},
                "status": {"type": "string", "enum": ["held", "approved", "paid", "rejected"]},
                "description": {"type": "string"},
                "milestone": {"type": ["integer", "null"]},
                "order_id": {"type": ["string", "null"]},
                "order_total": {"type": ["string", "null"], "description": "`42.50 EUR`"},
                "payable_at": maybe_time,
                "payout": {
                    "type": "object",
                    "properties": {
                        "method": {"type": "string", "enum": ["coupon", "webhook"]},
                        "state": {"type": ["string", "null"]},
                        "reference": {"type": ["string", "null"]},
                        "paid_by": {"type": ["string", "null"]},
                        "paid_at": maybe_time,
                    },
                },
            },
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
        "/campaigns/{slug}/variants": {
            "parameters": [{"$ref": "#/components/parameters/slug"}],
            "get": {
                "operationId": "getCampaignVariants",
                "summary": "A campaign's A/B variants and each one's figures",
                "description": (
                    "Each variant (key, name, wrapper, weight, stopped) with its visitors, views, senders, "
                    "forwards, invites, clicks and conversions so far, and the campaign's inheritance mode "
                    "(`inherit` or `fresh`). Empty `variants` for a campaign without. With two variants or "
                    "more, `experiment`: the verdict on the metric the campaign compares them on (`outcome` "
                    "not_enough_data, undecided, winner or equivalent; `winner`), the maturity window, and per "
                    "variant its chains, every metric as an estimate with a credible interval, its chance of "
                    "being best, its expected loss and the share of new visitors the autopilot would give it; "
                    "null otherwise. docs/analytics.md: Variants; docs/experiments.md: The verdict. "
                    "Role marketer (or admin). Never cached."
                ),
                "responses": {
                    "200": {
                        "description": "The campaign's variants and their figures.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **{k: v for k, v in errors.items() if k != "400"},
                },
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
        "BadRequest": _problem_response(
            "A bad query: an unknown filter value, a `limit` out of range, or a cursor that is not this list's."
        ),
        "TooManyRequests": {
            **_problem_response("This key (or address) made more requests than its limit allows."),
            "headers": {
                "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer", "minimum": 1}},
                **{name: {"$ref": f"#/components/headers/{name}"} for name in _rate_limit_headers()},
            },
        },
        "NoIncentives": _problem_response(
            "The campaign's consent policy allows no incentives (eu-strict): it has no rewards. `type` is "
            "`urn:fluister:problem:incentives-not-allowed`."
        ),
    }


def _schemas() -> dict[str, Any]:
    count = {"type": "integer", "minimum": 0}
    timestamp = {"type": "string", "format": "date-time"}
    return {
        **_referrer_schemas(),
        **_campaign_and_reward_schemas(),
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
                "overall": {"$ref": "#/components/schemas/MetricsSlice"},
                "generations": {"type": "array", "items": {"$ref": "#/components/schemas/MetricsSlice"}},
                "channels": {"type": "array", "items": {"$ref": "#/components/schemas/MetricsSlice"}},
                "funnel": {
                    "type": "array",
                    "description": "The funnel's stages in order, from visitors and video plays to conversions.",
                    "items": {
                        "type": "object",
                        "required": ["stage", "count"],
                        "properties": {
                            "stage": {
                                "type": "string",
                                "enum": [
                                    "visitors",
                                    "plays",
                                    "senders",
                                    "invites",
                                    "delivered",
                                    "clicked",
                                    "became senders",
                                    "conversions",
                                ],
                            },
                            "count": {"type": "integer", "minimum": 0},
                        },
                    },
                },
                "reach_over_time": {"type": "array", "items": {"type": "object"}},
                "ambassadors": {"type": "object"},
                "chains": {"type": "array", "items": {"type": "object"}},
                "projection": {"type": ["object", "null"]},
                "revenue": {
                    "type": ["object", "null"],
                    "description": (
                        "Order totals shops reported, per currency (decimal strings): `totals`, `by_generation` "
                        "(the generation of the redeemed forward) and `by_ambassador` (every sender up the "
                        "order's chain, once per order)."
                    ),
                },
            },
        },
        "MetricsSlice": {
            "type": "object",
            "description": "The figures of the whole campaign, a generation or an arrival channel.",
            "required": ["generation", "channel", "visitors", "plays", "senders", "invites"],
            "properties": {
                "generation": {"type": ["integer", "null"]},
                "channel": {"type": ["string", "null"]},
                "visitors": {"type": "integer", "minimum": 0, "description": "Landing page views."},
                "plays": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Plays of the landing page's video: at most one per landing page view.",
                },
                "senders": {"type": "integer", "minimum": 0},
                "invites": {"type": "integer", "minimum": 0},
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
                **_order_request_properties(),
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
                **_order_response_properties(),
            },
        },
        **_programme_schemas(),
    }


# -- API-wide parts: paging, rate limits, idempotency --------------------------------------------------


def _paging_parameters() -> dict[str, Any]:
    return {
        "limit": {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": "How many items a page holds.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_LIMIT, "default": DEFAULT_PAGE_LIMIT},
        },
        "cursor": {
            "name": "cursor",
            "in": "query",
            "required": False,
            "description": "The previous page's `next_cursor`: opaque, signed, good for this list and filters only.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 512},
        },
        "idempotencyKey": {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": (
                "A key of the client's choosing (1 to 255 printable ASCII characters, bare or quoted), new for "
                "each request: the same request sent again with it within 24 hours is answered as the first."
            ),
            "schema": {"type": "string", "pattern": '^(?:[!#-~]{1,255}|"[!#-~]{1,255}")$'},
        },
    }


def _rate_limit_headers() -> dict[str, Any]:
    seconds = {"type": "integer", "minimum": 0}
    return {
        "RateLimit-Limit": {"description": "Requests allowed in the window.", "schema": seconds},
        "RateLimit-Remaining": {"description": "Requests left in the window.", "schema": seconds},
        "RateLimit-Reset": {"description": "Seconds until a request leaves the window.", "schema": seconds},
        "RateLimit-Policy": {"description": "`<limit>;w=<window seconds>`.", "schema": {"type": "string"}},
    }


def _api_wide(document: dict[str, Any]) -> dict[str, Any]:
    """What every operation shares, added to each (routes added later get it too): a 429 past the
    rate limit; on POSTs, the Idempotency-Key header and the problems it may bring (409, 422)."""
    for item in document["paths"].values():
        for method, operation in item.items():
            if method == "parameters":
                continue
            responses = operation["responses"]
            if operation.get("security") != []:
                responses.setdefault("429", {"$ref": "#/components/responses/TooManyRequests"})
            if method != "post":
                continue
            operation.setdefault("parameters", []).append({"$ref": "#/components/parameters/idempotencyKey"})
            responses.setdefault("400", _problem_response("The Idempotency-Key header is not a valid key."))
            for status, why in (
                ("409", "A request with this key is still being handled."),
                ("422", "This key was used with another request."),
            ):
                if status not in responses:
                    responses[status] = _problem_response(why)
                    continue
                schema = responses[status].get("content", {}).get(PROBLEM_JSON, {}).get("schema")
                if schema is not None and schema != {"$ref": "#/components/schemas/Problem"}:
                    # The operation's own problem, or the idempotency key's.
                    responses[status]["content"][PROBLEM_JSON]["schema"] = {
                        "anyOf": [schema, {"$ref": "#/components/schemas/Problem"}]
                    }
                    responses[status]["description"] += " Or: the Idempotency-Key's problem."
    return document


# -- campaigns and rewards ---------------------------------------------------------------------------


def _campaign_and_reward_paths() -> dict[str, Any]:
    unauthorized = {"$ref": "#/components/responses/Unauthorized"}
    forbidden = {"$ref": "#/components/responses/Forbidden"}
    not_found = {"$ref": "#/components/responses/NotFound"}
    bad_request = {"$ref": "#/components/responses/BadRequest"}
    no_incentives = {"$ref": "#/components/responses/NoIncentives"}
    paging = [{"$ref": "#/components/parameters/limit"}, {"$ref": "#/components/parameters/cursor"}]
    reward_id = {
        "name": "reward_id",
        "in": "path",
        "required": True,
        "description": "The reward's id.",
        "schema": {"type": "integer", "minimum": 0, "description": "Any other integer is a 404 too."},
    }
    review_errors = {
        "401": unauthorized,
        "403": forbidden,
        "404": not_found,
        "409": {
            "description": (
                "Reviewed already (`type` `urn:fluister:problem:already-reviewed`, `reward_status` says how), or "
                "the campaign's policy allows no incentives (`urn:fluister:problem:incentives-not-allowed`)."
            ),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        },
        "413": {"$ref": "#/components/responses/TooLarge"},
        "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
        "422": {
            "description": "The body is not a valid review; `errors` names each field.",
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ValidationProblem"}}},
        },
    }
    return {
        "/campaigns": {
            "get": {
                "operationId": "listCampaigns",
                "summary": "The campaigns this key may see",
                "description": "Oldest first, a page at a time; a marketer's key sees its own team's. Any staff role.",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": CAMPAIGN_STATUSES},
                    },
                    *paging,
                ],
                "responses": {
                    "200": _json("A page of campaigns.", "CampaignPage"),
                    "400": bad_request,
                    "401": unauthorized,
                    "403": forbidden,
                },
            }
        },
        "/campaigns/{slug}": {
            "parameters": [{"$ref": "#/components/parameters/slug"}],
            "get": {
                "operationId": "getCampaign",
                "summary": "A campaign: its state, policy and links to its figures",
                "description": "Any staff role.",
                "responses": {
                    "200": _json("The campaign.", "Campaign"),
                    "401": unauthorized,
                    "403": forbidden,
                    "404": not_found,
                },
            },
        },
        "/campaigns/{slug}/rewards": {
            "parameters": [{"$ref": "#/components/parameters/slug"}],
            "get": {
                "operationId": "listCampaignRewards",
                "summary": "The referrers' rewards of a campaign",
                "description": "Oldest first (the order they wait for review in), a page at a time. Role marketer "
                "(or admin).",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": REWARD_STATUSES},
                    },
                    {
                        "name": "flagged",
                        "in": "query",
                        "required": False,
                        "description": "Only rewards a fraud filter flagged (`true`) or none flagged (`false`).",
                        "schema": {"type": "string", "enum": ["true", "false"]},
                    },
                    *paging,
                ],
                "responses": {
                    "200": _json("A page of rewards.", "RewardPage"),
                    "400": bad_request,
                    "401": unauthorized,
                    "403": forbidden,
                    "404": not_found,
                    "409": no_incentives,
                },
            },
        },
        "/rewards/{reward_id}": {
            "parameters": [reward_id],
            "get": {
                "operationId": "getReward",
                "summary": "One reward",
                "description": "Role marketer (or admin).",
                "responses": {
                    "200": _json("The reward.", "Reward"),
                    "401": unauthorized,
                    "403": forbidden,
                    "404": not_found,
                    "409": no_incentives,
                },
            },
        },
        "/rewards/{reward_id}/approve": {
            "parameters": [reward_id],
            "post": {
                "operationId": "approveReward",
                "summary": "Approve a held reward",
                "description": "Once: a reviewed reward is not reviewed again. A key of role marketer (or admin) "
                "with the `rewards` scope. No body, or `{}`.",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApproveRequest"}}},
                },
                "responses": {"200": _json("Approved.", "Reward"), **review_errors},
            },
        },
        "/rewards/{reward_id}/reject": {
            "parameters": [reward_id],
            "post": {
                "operationId": "rejectReward",
                "summary": "Reject a held reward, saying why",
                "description": "Once: a reviewed reward is not reviewed again. A key of role marketer (or admin) "
                "with the `rewards` scope.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RejectRequest"}}},
                },
                "responses": {"200": _json("Rejected.", "Reward"), **review_errors},
            },
        },
    }


def _page_of(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["data", "next_cursor", "next"],
        "properties": {
            "data": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
            "next_cursor": {"type": ["string", "null"], "description": "null on the last page."},
            "next": {"type": ["string", "null"], "description": "The next page's URL; null on the last page."},
        },
    }


def _campaign_and_reward_schemas() -> dict[str, Any]:
    timestamp = {"type": "string", "format": "date-time"}
    maybe_timestamp = {"type": ["string", "null"], "format": "date-time"}
    reason = {"type": "string", "maxLength": MAX_REASON_LENGTH}
    return {
        "Campaign": {
            "type": "object",
            "required": [
                "slug",
                "name",
                "team",
                "brand_name",
                "offer_title",
                "status",
                "status_reason",
                "policy",
                "incentives_allowed",
                "rewards_enabled",
                "channels",
                "locales",
                "phone_region",
                "coupon_mode",
                "starts_at",
                "ends_at",
                "created_at",
                "updated_at",
                "archived",
                "archived_at",
                "links",
            ],
            "properties": {
                "slug": {"type": "string"},
                "name": {"type": "string"},
                "team": {"type": "string"},
                "brand_name": {"type": "string"},
                "offer_title": {"type": "string"},
                "status": {"type": "string", "enum": CAMPAIGN_STATUSES},
                "status_reason": {"type": ["string", "null"]},
                "policy": {"type": "string", "description": "The consent policy: us, eu-strict, share-only, custom."},
                "incentives_allowed": {"type": "boolean", "description": "false: no coupons or rewards (eu-strict)."},
                "rewards_enabled": {"type": "boolean", "description": "Referrers earn rewards when friends convert."},
                "channels": {"type": "array", "items": {"type": "string"}},
                "locales": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "The languages its pages and messages speak (`nl`, `fr`...), the first its default.",
                },
                "phone_region": {
                    "type": ["string", "null"],
                    "description": "The region (ISO 3166 alpha-2) a number without a country code is read in.",
                },
                "coupon_mode": {"type": "string", "enum": [mode.value for mode in CouponMode]},
                "starts_at": maybe_timestamp,
                "ends_at": maybe_timestamp,
                "created_at": timestamp,
                "updated_at": timestamp,
                "archived": {
                    "type": "boolean",
                    "description": "Archived in the console: out of its list, and not activated until taken out.",
                },
                "archived_at": maybe_timestamp,
                "links": {
                    "type": "object",
                    "description": "Paths of this campaign's resources: self, metrics, caps, coupons, leaderboard, "
                    "rewards.",
                    "additionalProperties": {"type": "string"},
                },
            },
        },
        "CampaignPage": _page_of("Campaign"),
        "Reward": {
            "type": "object",
            "description": "engine.services.rewards.RewardView, with its campaign.",
            "required": [
                "id",
                "campaign",
                "referrer_name",
                "forward",
                "generation",
                "code",
                "redeemed_at",
                "status",
                "flags",
                "reason",
                "reviewed_by",
                "reviewed_at",
            ],
            "properties": {
                "id": {"type": "integer"},
                "campaign": {"type": "string"},
                "referrer_name": {"type": "string", "description": "The name the referrer typed."},
                "forward": {"type": "string", "description": "The public id of the invitation that converted."},
                "generation": {"type": "integer", "minimum": 1},
                "code": {"type": "string", "description": "The code the friend redeemed."},
                "redeemed_at": timestamp,
                "status": {"type": "string", "enum": REWARD_STATUSES},
                "flags": {"type": "array", "items": {"type": "string"}, "description": "What fraud filters found."},
                "reason": {"type": ["string", "null"], "description": "Why it was rejected."},
                "reviewed_by": {"type": ["string", "null"]},
                "reviewed_at": maybe_timestamp,
            },
        },
        "RewardPage": _page_of("Reward"),
        "ApproveRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"reason": {**reason, "description": "A note; not kept on an approval."}},
        },
        "RejectRequest": {
            "type": "object",
            "required": ["reason"],
            "additionalProperties": False,
            "properties": {"reason": {**reason, "pattern": "\\S", "description": "Why: kept with the reward."}},
        },
    }


# -- outgoing webhooks (engine/web/api/webhooks.py) -------------------------------------------------


def _webhook_paths() -> dict[str, Any]:
    invalid = {
        "description": "The body is not a valid endpoint (a URL that is not https, or points at a private "
        "address, an unknown event type...); `errors` names each field.",
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ValidationProblem"}}},
    }
    denied = {
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "403": {"$ref": "#/components/responses/Forbidden"},
    }
    endpoint_id = {
        "name": "endpoint_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    }
    body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookEndpointRequest"}}},
    }
    return {
        "/webhooks": {
            "get": {
                "operationId": "listWebhookEndpoints",
                "summary": "The team's webhook endpoints",
                "description": "Scope `webhooks`, role marketer (an admin's key sees every team's). Never the secret.",
                "responses": {"200": _json("The endpoints, oldest first.", "WebhookEndpointList"), **denied},
            },
            "post": {
                "operationId": "createWebhookEndpoint",
                "summary": "Register a webhook endpoint",
                "description": (
                    "The URL must be https and resolve to public addresses only (checked now and at every "
                    "delivery). The answer carries the signing secret (`whsec_...`), this once."
                ),
                "requestBody": body,
                "responses": {
                    "201": _json("Registered; `secret` is shown only here.", "WebhookEndpointCreated"),
                    **denied,
                    "413": {"$ref": "#/components/responses/TooLarge"},
                    "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
                    "422": invalid,
                },
            },
        },
        "/webhooks/{endpoint_id}": {
            "parameters": [endpoint_id],
            "get": {
                "operationId": "getWebhookEndpoint",
                "summary": "One webhook endpoint",
                "responses": {
                    "200": _json("The endpoint (never its secret).", "WebhookEndpoint"),
                    **denied,
                    "404": {"$ref": "#/components/responses/NotFound"},
                },
            },
            "patch": {
                "operationId": "updateWebhookEndpoint",
                "summary": "Change a webhook endpoint",
                "description": (
                    "Any of `url`, `events`, `description`, `enabled`. Enabling an endpoint that was disabled "
                    "(by a person, or for failing) clears its failures."
                ),
                "requestBody": body,
                "responses": {
                    "200": _json("The endpoint as changed.", "WebhookEndpoint"),
                    **denied,
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "413": {"$ref": "#/components/responses/TooLarge"},
                    "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
                    "422": invalid,
                },
            },
            "delete": {
                "operationId": "deleteWebhookEndpoint",
                "summary": "Delete a webhook endpoint, with its delivery log",
                "responses": {
                    "204": {"description": "Deleted."},
                    **denied,
                    "404": {"$ref": "#/components/responses/NotFound"},
                },
            },
        },
        "/webhooks/{endpoint_id}/deliveries": {
            "parameters": [endpoint_id],
            "get": {
                "operationId": "listWebhookDeliveries",
                "summary": "An endpoint's delivery log, newest first",
                "parameters": [
                    {
                        "name": "before",
                        "in": "query",
                        "description": "Only deliveries older than this one (the previous page's `next_before`).",
                        "schema": {"type": "integer"},
                    },
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                ],
                "responses": {
                    "200": _json("A page of the log.", "WebhookDeliveryList"),
                    **denied,
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "422": _problem_response("`limit` is not a number from 1 to 100, or `before` not a whole number."),
                },
            },
        },
        "/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry": {
            "parameters": [
                endpoint_id,
                {
                    "name": "delivery_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                },
            ],
            "post": {
                "operationId": "retryWebhookDelivery",
                "summary": "Send a delivery's event again",
                "description": "A new delivery of the same event (same `webhook-id`), sent at once.",
                "responses": {
                    "202": _json("The new delivery, pending.", "WebhookDelivery"),
                    **denied,
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "409": _problem_response("The endpoint is disabled: enable it first."),
                },
            },
        },
    }


def _webhook_schemas() -> dict[str, Any]:
    timestamp = {"type": "string", "format": "date-time"}
    maybe_timestamp = {"type": ["string", "null"], "format": "date-time"}
    events = {"type": "array", "items": {"type": "string", "enum": list(EVENT_TYPES)}, "minItems": 1}
    endpoint = {
        "type": "object",
        "required": ["id", "url", "description", "events", "enabled", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "url": {"type": "string"},
            "description": {"type": "string"},
            "events": events,
            "enabled": {"type": "boolean"},
            "disabled_reason": {"type": ["string", "null"]},
            "disabled_automatically": {"type": "boolean", "description": "Disabled by Fluister for failing."},
            "disabled_at": maybe_timestamp,
            "failing_since": maybe_timestamp,
            "created_at": timestamp,
        },
    }
    delivery = {
        "type": "object",
        "required": ["id", "event_id", "event_type", "status", "attempts"],
        "properties": {
            "id": {"type": "integer"},
            "event_id": {"type": "string", "description": "The `webhook-id` header of every attempt."},
            "event_type": {"type": "string", "enum": list(EVENT_TYPES)},
            "status": {"type": "string", "enum": ["pending", "sending", "succeeded", "failed"]},
            "attempts": {"type": "integer", "minimum": 0},
            "response_status": {"type": ["integer", "null"]},
            "response_ms": {"type": ["integer", "null"]},
            "last_error": {"type": ["string", "null"]},
            "last_attempt_at": maybe_timestamp,
            "next_attempt_at": maybe_timestamp,
            "created_at": timestamp,
        },
    }
    return {
        "WebhookEndpointRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "url": {"type": "string", "maxLength": 2000, "description": "https://, to a public address."},
                "events": events,
                "description": {"type": "string", "maxLength": MAX_DESCRIPTION_LENGTH},
                "enabled": {"type": "boolean"},
            },
        },
        "WebhookEndpoint": endpoint,
        "WebhookEndpointCreated": {
            "allOf": [
                {"$ref": "#/components/schemas/WebhookEndpoint"},
                {
                    "type": "object",
                    "required": ["secret"],
                    "properties": {"secret": {"type": "string", "pattern": "^whsec_[A-Za-z0-9+/=]{32,}$"}},
                },
            ]
        },
        "WebhookEndpointList": {
            "type": "object",
            "required": ["data", "event_types"],
            "properties": {
                "data": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookEndpoint"}},
                "event_types": {"type": "array", "items": {"type": "string"}},
            },
        },
        "WebhookDelivery": delivery,
        "WebhookDeliveryList": {
            "type": "object",
            "required": ["data", "next_before"],
            "properties": {
                "data": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookDelivery"}},
                "next_before": {"type": ["integer", "null"]},
            },
        },
    }
