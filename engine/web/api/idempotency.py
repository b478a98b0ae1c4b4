"""`Idempotency-Key` on every POST under /api/v1 (engine.services.idempotency).

A POST sent by an API key with the header is handled once: sent again with the same key and
the same body (within 24 hours) it is answered with the stored answer (status, body and type,
plus `Idempotent-Replayed: true`) and nothing is done again; with another body or path it is a
422 problem; while the first is still being handled, a 409 problem. A request that ended in a
server error (5xx) or was throttled (429) is not kept: the client may send it again. Without
the header a POST is handled as it comes. Keys are a client's own: they are counted per API key,
so requests without a key (refused with 401 anyway) are not looked up.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g, request

from engine.runtime import current_runtime
from engine.services.idempotency import (
    BadKey,
    IdempotencyStore,
    KeyInUse,
    KeyReused,
    Replay,
    fingerprint,
    parse_key,
)
from engine.web.api.problems import IDEMPOTENCY_KEY_IN_USE, IDEMPOTENCY_KEY_REUSED, problem
from engine.web.console.auth import current_member
from engine.web.errors import error_response

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"
HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Answers never kept: the request may be sent again as it was.
NOT_KEPT = frozenset({429})


def _store() -> IdempotencyStore:
    return current_runtime().idempotency


def _replay(replay: Replay) -> Response:
    response = Response(replay.body, status=replay.status, content_type=replay.content_type)
    response.headers[REPLAYED_HEADER] = "true"
    return response


def register(app: Flask) -> None:
    @app.before_request
    def claim_idempotency_key() -> Response | None:
        if request.method != "POST" or not request.path.startswith(API_PREFIX):
            return None
        header = request.headers.get(HEADER)
        if header is None:
            return None
        member = current_member()
        if member is None or member.kind != "api-key":
            return None  # the view refuses it (401): there is no client to keep the key for
        try:
            key = parse_key(header)
        except BadKey as error:
            return error_response(400, f"The {HEADER} header is not valid: {error}.", "Bad idempotency key")
        body = request.get_data(cache=True)
        path = request.full_path.rstrip("?")
        try:
            outcome = _store().begin(member.id, key, request.method, path, fingerprint(request.method, path, body))
        except KeyReused:
            return problem(
                422,
                "Idempotency key reused",
                f"This {HEADER} was used with another request (another path or body) in the last 24 hours. "
                "Use a new key for a new request.",
                type_=IDEMPOTENCY_KEY_REUSED,
            )
        except KeyInUse:
            response = problem(
                409,
                "Request in progress",
                f"A request with this {HEADER} is still being handled. Wait for its answer, then send it again.",
                type_=IDEMPOTENCY_KEY_IN_USE,
            )
            response.headers["Retry-After"] = "1"
            return response
        if isinstance(outcome, Replay):
            log.info("api-key %s: %s %s answered again for its idempotency key", member.id, request.method, path)
            return _replay(outcome)
        g.idempotency_record = outcome.record_id
        return None

    @app.after_request
    def keep_idempotent_answer(response: Response) -> Response:
        record_id: int | None = g.pop("idempotency_record", None)
        if record_id is None:
            return response
        try:
            if response.status_code >= 500 or response.status_code in NOT_KEPT:
                _store().abandon(record_id)
            else:
                _store().finish(record_id, response.status_code, response.content_type or "", response.get_data())
        except Exception:
            # The request itself was done: its answer goes out. The key stays "in progress" until
            # ABANDONED_AFTER, and a retry then is handled afresh.
            log.exception("could not keep the answer for idempotency record %s", record_id)
        return response

    @app.teardown_request
    def release_idempotency_key(error: BaseException | None) -> None:
        # Only when no answer was made at all (after_request never ran): the key must not stay
        # "in progress" until it is given up on.
        record_id: int | None = g.pop("idempotency_record", None)
        if record_id is not None:
            try:
                _store().abandon(record_id)
            except Exception:
                log.exception("could not release idempotency record %s", record_id)
