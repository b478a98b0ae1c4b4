"""docs/architecture.md's *Commands* names every command the app registers (`flask --app wsgi
--help` and its groups), so that a new command cannot go undocumented."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from config import load_settings
from engine import PROJECT_ROOT, create_app

# Flask's own commands, beside the app's: `run` is documented, `shell` and `routes` are Flask's.
FLASK_BUILTINS = {"shell", "routes"}


def _commands(group: click.Group, prefix: str = "") -> set[str]:
    names: set[str] = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            names |= _commands(command, f"{prefix}{name} ")
        else:
            names.add(f"{prefix}{name}")
    return names


def _documented() -> set[str]:
    text = (PROJECT_ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([a-z][a-z-]*(?: [a-z][a-z-]*)?)`", section))


def test_every_registered_command_is_in_the_architecture_doc(tmp_path: Path) -> None:
    app = create_app(load_settings({"INSTANCE_PATH": str(tmp_path)}, dotenv_path=tmp_path / "no.env"))
    registered = _commands(app.cli) - FLASK_BUILTINS
    assert "users disable" in registered  # the walk goes into the groups
    assert registered - _documented() == set()


@pytest.mark.parametrize("name", ["rewards approve", "analytics refresh", "simulate", "worker"])
def test_the_commands_the_doc_once_missed_are_there(name: str) -> None:
    assert name in _documented()
