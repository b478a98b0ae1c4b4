"""The app: `gunicorn wsgi:app` serves it, and `flask --app wsgi <command>` runs commands on it.

Imported by a server in production, it refuses to serve unless the database answers at this
release's schema: one line on stderr, and exit status 1. A flask command loads this module
from inside its click context and skips that check, since `db upgrade` is how an old schema
is brought up to date; the commands that serve (`worker`) check for themselves.
"""

import click

from engine.startup import serving_app

app = serving_app(serving=click.get_current_context(silent=True) is None)
