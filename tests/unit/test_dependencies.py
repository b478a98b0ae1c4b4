"""`pip install .` brings everything Fluister imports: every third-party module the code imports
is declared in pyproject.toml, requirements.txt pins exactly that set (each pin allowed by the
declaration), and fakeredis, only needed for the embedded mode, is the `embedded` extra."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from engine import PROJECT_ROOT

CODE = ("engine", "workers", "config", "migrations")


def _project() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]


def _declared() -> dict[str, Requirement]:
    requirements = [Requirement(line) for line in _project()["dependencies"]]
    return {canonicalize_name(r.name): r for r in requirements}


def _extra(name: str) -> dict[str, Requirement]:
    requirements = [Requirement(line) for line in _project()["optional-dependencies"][name]]
    return {canonicalize_name(r.name): r for r in requirements}


def _pinned() -> dict[str, Requirement]:
    lines = (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
    requirements = [Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip()]
    return {canonicalize_name(r.name): r for r in requirements}


def _imported_modules() -> set[str]:
    modules: set[str] = set()
    for package in CODE:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m not in CODE}


def test_every_imported_module_is_declared() -> None:
    distributions = packages_distributions()
    declared = set(_declared()) | set(_extra("embedded"))
    undeclared = {
        module: distributions.get(module)
        for module in _imported_modules()
        if not {canonicalize_name(d) for d in distributions.get(module, [])} & declared
    }
    assert undeclared == {}


def test_fakeredis_is_only_the_embedded_extra() -> None:
    assert "fakeredis" not in _declared()
    assert "lupa" not in _declared()
    assert _extra("embedded")["fakeredis"].extras == {"lua"}


def test_requirements_pin_exactly_the_declared_set() -> None:
    declared = {**_declared(), **_extra("embedded")}
    pinned = _pinned()
    # lupa is how fakeredis[lua] runs Lua: pinned, declared through the extra.
    assert set(pinned) - {"lupa"} == set(declared)
    for name, requirement in pinned.items():
        (version,) = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        if name in declared:
            assert declared[name].specifier.contains(version), (name, version, str(declared[name].specifier))


def test_without_the_embedded_extra_the_app_runs_on_redis_and_says_what_to_install_without_it(tmp_path: Path) -> None:
    probe = (
        "import sys; sys.modules['fakeredis'] = None\n"  # as if it was never installed
        "from config import ConfigError\n"
        "from engine import create_app\n"
        "create_app()\n"
        "try:\n"
        "    create_app(__import__('config').load_settings({'REDIS_URL': ''}))\n"
        "except ConfigError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PROJECT_ROOT,
        env={"REDIS_URL": "redis://127.0.0.1:1/0", "INSTANCE_PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "fluister[embedded]" in result.stdout
    assert "REDIS_URL" in result.stdout
