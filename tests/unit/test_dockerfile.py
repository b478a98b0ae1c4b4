"""The Dockerfile runs what the Procfile runs, as a user who is not root, from a wheel installed
with requirements.txt's pins and without the embedded extra. (No image is built by the tests.)"""

from __future__ import annotations

import json
import re

from engine import PROJECT_ROOT


def _final_stage() -> list[str]:
    lines = (PROJECT_ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    instructions = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    last_from = max(i for i, line in enumerate(instructions) if line.startswith("FROM "))
    return instructions[last_from:]


def _procfile(kind: str) -> str:
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{kind}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {kind} in the Procfile")


def test_the_image_runs_as_a_user_who_is_not_root() -> None:
    users = [line.split()[1] for line in _final_stage() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")


def test_the_image_serves_the_procfile_web_command() -> None:
    (command,) = [line.removeprefix("CMD ") for line in _final_stage() if line.startswith("CMD ")]
    assert json.loads(command)[-1] == _procfile("web")


def test_the_image_installs_the_wheel_with_the_pins_and_without_fakeredis() -> None:
    stage = " ".join(_final_stage())
    assert re.search(r"pip install [^&]*--constraint \S+ [^&]*\.whl", stage), stage
    assert "[embedded]" not in stage
