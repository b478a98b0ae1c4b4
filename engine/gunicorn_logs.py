"""gunicorn's lines in the app's format: `gunicorn --logger-class engine.gunicorn_logs.GunicornLogger`.

gunicorn logs through its own two loggers (`gunicorn.error`, its own news; `gunicorn.access`,
a line per request with `--access-logfile`), which do not propagate to the root logger the app
configures. This class gives their handlers the app's formatter for `LOG_FORMAT` and the same
filters (engine.logs): the request id, and no contact and no raw IP, in gunicorn's lines too
(a bad request's error line names the client's address).

An access line has the method, the path without its query string (a query may carry a token
or an address), the status, the duration, the client as `loggable_ip` writes it and the request
id. The app leaves the last two in the WSGI environ (engine.web.request_ids): once the app has
answered, gunicorn has neither the request context nor the key of the hash.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gunicorn import glogging

from config.settings import log_format_from, setting_values
from engine.logs import prepare_handler
from engine.web.request_ids import LOGGABLE_CLIENT_KEY, REQUEST_ID_KEY

# A request the app never saw (gunicorn refused it first) has no hashed client.
UNKNOWN_CLIENT = "ip:-"


class GunicornLogger(glogging.Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # The same layers as the app's settings (.env, then the environment), read on their own:
        # gunicorn sets its logging up before it loads the app.
        log_format = log_format_from(setting_values())
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                prepare_handler(handler, log_format)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        if not self.access_log_enabled:
            return
        line = access_fields(resp, environ, request_time)
        self.access_log.info(
            "%s %s %s %sms %s",
            line["method"],
            line["path"],
            line["status"],
            line["duration_ms"],
            line["client"],
            extra=line,
        )


def access_fields(resp: Any, environ: dict[str, Any], request_time: timedelta) -> dict[str, Any]:
    """What an access line says about one request."""
    return {
        "method": environ.get("REQUEST_METHOD", "-"),
        # PATH_INFO never holds the query string.
        "path": (environ.get("SCRIPT_NAME") or "") + (environ.get("PATH_INFO") or "/"),
        "status": resp.status_code,
        "duration_ms": round(request_time.total_seconds() * 1000, 1),
        "client": environ.get(LOGGABLE_CLIENT_KEY) or UNKNOWN_CLIENT,
        "request_id": environ.get(REQUEST_ID_KEY),
    }
