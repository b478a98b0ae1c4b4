"""`pip install .`: the wheel holds the code and the files the app reads (page templates, static
files, migrations), and once installed the `fluister` command works from any directory, with
nothing of the checkout on its path: it migrates a database, lists its routes and serves pages.

The wheel is built offline from a copy of the checkout (a build writes into its source tree)
without build isolation, and installed without dependencies into a venv that borrows this
one's packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import PROJECT_ROOT

SOURCES = (
    "pyproject.toml",
    "README.md",
    "engine",
    "config",
    "workers",
    "templates",
    "static",
    "migrations",
    "translations",
)
DATA = ("templates", "static", "migrations", "translations")
TIMEOUT = 120


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, f"{command} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def _checkout_files(top: str) -> set[str]:
    root = PROJECT_ROOT / top
    return {
        path.relative_to(PROJECT_ROOT).as_posix()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        origin = PROJECT_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, source / name)
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(source)], cwd=source)
    (built,) = out.glob("fluister-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv with the wheel installed; this venv's packages are its dependencies."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=venv)
    python = venv / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=venv)
    # Borrowed after its own site-packages, so the installed engine is the one imported.
    Path(purelib.stdout.strip(), "borrowed.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(python)]
    _run([*pip, "install", "--no-deps", "--no-index", str(wheel)], cwd=venv)
    yield venv


def _environment(venv: Path) -> dict[str, str]:
    """A development environment, and nothing that points into the checkout."""
    keep = {"HOME", "LANG", "LC_ALL", "TMPDIR"}
    env = {name: value for name, value in os.environ.items() if name in keep}
    return {**env, "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "FLUISTER_ENV": "development"}


def test_the_wheel_holds_the_code_templates_static_files_and_migrations(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    code = {f for top in ("engine", "config", "workers") for f in _checkout_files(top) if f.endswith(".py")}
    assert code - names == set()
    data = {f"engine/{f}" for top in DATA for f in _checkout_files(top)}
    assert data - names == set()
    assert "engine/templates/pages/base.html" in names
    assert "engine/migrations/env.py" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "templates/", "static/", "migrations/"))]
    assert "fluister = engine.console:main" in entry_points
    requires = [
        line.removeprefix("Requires-Dist: ") for line in metadata.splitlines() if line.startswith("Requires-Dist:")
    ]
    assert any(r.startswith(("requests", "Requests")) for r in requires)
    assert any(r.startswith("urllib3") for r in requires)
    (fakeredis,) = [r for r in requires if r.startswith("fakeredis")]
    assert 'extra == "embedded"' in fakeredis


def test_the_installed_command_migrates_lists_routes_and_serves_pages_from_anywhere(
    installed: Path, tmp_path: Path
) -> None:
    here = tmp_path / "elsewhere"
    here.mkdir()
    env = _environment(installed)
    fluister = str(installed / "bin" / "fluister")

    where = _run([str(installed / "bin" / "python"), "-c", "import engine; print(engine.__file__)"], here, env)
    assert where.stdout.startswith(str(installed)), where.stdout

    usage = _run([fluister, "--help"], here, env).stdout
    for command in ("db", "worker", "seed-demo", "routes", "run"):
        assert f"  {command} " in usage, usage

    _run([fluister, "db", "upgrade"], here, env)
    assert (here / "instance" / "fluister.db").is_file()  # beside the operator, not in site-packages
    assert "demo campaign created" in _run([fluister, "seed-demo"], here, env).stdout

    routes = _run([fluister, "routes"], here, env).stdout
    assert "/healthz" in routes
    assert "/static/<path:filename>" in routes

    probe = (
        "from engine import create_app\n"
        "client = create_app().test_client()\n"
        "page = client.get('/c/demo')\n"
        "print(page.status_code, client.get('/static/fluister.css').status_code, 'forward' in page.text.lower())\n"
        "dutch = client.get('/c/demo', headers={'Accept-Language': 'nl'}).text\n"
        "print('lang=\"nl\"' in dutch, 'vriend' in dutch)\n"
    )
    served = _run([str(installed / "bin" / "python"), "-c", probe], here, env).stdout.split()
    # The catalogs came with the wheel: the demo speaks Dutch to a Dutch browser.
    assert served[-5:] == ["200", "200", "True", "True", "True"]
