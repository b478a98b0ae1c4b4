"""Every request has an id: the one a proxy or a client sent in `X-Request-ID`, if it is sane
(engine.logs.accepted_request_id), or a new one. It is on every log line of the request, in
the jobs the request enqueues, and in the answer's `X-Request-ID`, so that a person who
reports an error can quote it.

The WSGI environ also keeps the id and the client as a log line may show it (`loggable_ip`),
for the access line gunicorn writes once the app is done (engine.gunicorn_logs), where neither
the request nor the keyed hash is at hand.
"""

from __future__ import annotations

from flask import Flask, Response, g, request

from engine.logs import REQUEST_ID_HEADER, accepted_request_id, bind_request_id, new_request_id, unbind_request_id
from engine.web.clients import loggable_ip

LOGGABLE_CLIENT_KEY = "fluister.loggable_client"
REQUEST_ID_KEY = "fluister.request_id"


def register(app: Flask) -> None:
    # First of all: a check that refuses the request early (CSRF) logs with the id too.
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)
    app.after_request(_answer)
    app.teardown_request(_end)


def _begin() -> None:
    request_id = accepted_request_id(request.headers.get(REQUEST_ID_HEADER)) or new_request_id()
    request.environ[REQUEST_ID_KEY] = request_id
    request.environ[LOGGABLE_CLIENT_KEY] = loggable_ip()
    g.request_id_token = bind_request_id(request_id)


def _answer(response: Response) -> Response:
    request_id = request.environ.get(REQUEST_ID_KEY)
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


def _end(error: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        unbind_request_id(token)
