"""gunicorn's settings module (`gunicorn -c python:config.gunicorn ...`, as the Procfile runs
it): the server hooks Fluister needs. Every other setting comes from the command line.

gunicorn reads this module's names as settings, so it defines nothing else.
"""

from engine.metrics import child_exit

__all__ = ["child_exit"]
