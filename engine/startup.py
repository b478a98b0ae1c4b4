"""Starting a process, and failing to, in one line an operator can act on.

Exit statuses, the same for every `flask --app wsgi` command, the worker and a WSGI server:
0 done, 1 refused (bad configuration, a service that cannot be reached, a schema behind this
release, or a command's own refusal), 2 usage or unknown object (click's own usage errors).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click
from flask import Flask, current_app, has_app_context

from config import ConfigError
from engine import create_app
from engine.readiness import StartupRefused, database_problems, first_line, require_serviceable, safe_url
from engine.runtime import EXTENSION_KEY, Runtime
from engine.services.lookups import CampaignNotFound
from engine.web.outages import DATABASE_DOWN, REDIS_DOWN

EXIT_REFUSED = 1
EXIT_USAGE = 2

_GUARDED = "_fluister_one_line_errors"


def fail(message: str, status: int = EXIT_REFUSED) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    raise SystemExit(status)


def serving_app(*, serving: bool) -> Flask:
    """The app from the environment's settings, or exit with one line. When `serving` (a WSGI
    server imports it) in production, it must find the database at this release's schema."""
    with one_line_errors(None):
        app = create_app()
        runtime: Runtime = app.extensions[EXTENSION_KEY]
        if serving and runtime.settings.production:
            require_serviceable(runtime.db)
            # The check's connection must not be shared by the processes a server forks (--preload).
            runtime.db.dispose()
    return app


def wsgi_app() -> Flask:
    """What a WSGI server serves once installed (`gunicorn --preload "engine.startup:wsgi_app()"`),
    where no `wsgi.py` is at hand: the app as `wsgi:app` gives it to a server."""
    return serving_app(serving=True)


@contextmanager
def one_line_errors(runtime: Runtime | None) -> Iterator[None]:
    """Turn what an operator must fix (configuration, services, the schema) into one line and exit 1.

    Without a `runtime`, that of the app in context, if any, names the database and Redis."""
    try:
        yield
    except (ConfigError, StartupRefused) as error:
        fail(str(error))
    except CampaignNotFound as error:
        fail(str(error), EXIT_USAGE)
    except DATABASE_DOWN as error:
        fail(_database_failure(runtime or _runtime_in_context(), error))
    except REDIS_DOWN as error:
        runtime = runtime or _runtime_in_context()
        where = f" at {safe_url(runtime.settings.redis_url)}" if runtime and runtime.settings.redis_url else ""
        fail(f"Redis{where} cannot be reached: {first_line(error)}")


def guard_commands(command: click.Command) -> None:
    """Give every command under `command` one-line errors (idempotent: the commands are module
    objects shared by every app this process builds)."""
    if isinstance(command, click.Group):
        for child in command.commands.values():
            guard_commands(child)
    callback = command.callback
    if callback is None or getattr(callback, _GUARDED, False):
        return

    @functools.wraps(callback)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        # The app context is pushed inside the callback (Flask's with_appcontext): the runtime
        # is looked up when something fails.
        with one_line_errors(None):
            return callback(*args, **kwargs)

    setattr(guarded, _GUARDED, True)
    command.callback = guarded


def _runtime_in_context() -> Runtime | None:
    return current_app.extensions.get(EXTENSION_KEY) if has_app_context() else None


def _database_failure(runtime: Runtime | None, error: BaseException) -> str:
    if runtime is None:
        return f"the database failed: {first_line(error)}"
    # Ask again what is wrong: "cannot be reached" and "schema behind: run db upgrade" say what
    # to do, where a driver's message (no such table, …) does not.
    try:
        problems = database_problems(runtime.db)
    except Exception:  # the error in hand is what we report; this was only a better wording
        problems = []
    for problem in problems:
        if problem.part == "database":
            return problem.detail
    failed = f"the database at {safe_url(runtime.db.url)} failed: {first_line(error)}"
    return f"{failed} ({problems[0].detail})" if problems else failed
