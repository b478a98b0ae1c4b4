"""Where the app's own files are: its page templates, static files and migrations.

In a checkout they sit beside the packages (`templates/`, `static/`, `migrations/`); an
installed copy (`pip install .`) carries them inside the engine package, as pyproject.toml
maps them. Either way the app finds them without being run from any particular directory.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT_DIR = PACKAGE_DIR.parent


def resource_dir(name: str) -> Path:
    """The directory `name` (templates, static or migrations) of this copy of Fluister."""
    installed = PACKAGE_DIR / name
    return installed if installed.is_dir() else CHECKOUT_DIR / name


TEMPLATE_DIR = resource_dir("templates")
STATIC_DIR = resource_dir("static")
MIGRATIONS_DIR = resource_dir("migrations")
