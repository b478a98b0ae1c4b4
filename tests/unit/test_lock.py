"""requirements.lock, what `make run`, `make test`, CI and operators install with `--require-hashes`,
agrees with requirements.txt: every pin there is in the lock at the same version, the lock holds
nothing that requirements.txt dropped, and every package in it carries a hash. When this fails,
run `make lock`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from engine import PROJECT_ROOT


@dataclass(frozen=True)
class Locked:
    version: str
    hashes: tuple[str, ...]
    via: tuple[str, ...]


def _pinned() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines():
        text = line.split("#")[0].strip()
        if text:
            requirement = Requirement(text)
            (version,) = [spec.version for spec in requirement.specifier if spec.operator == "=="]
            pins[canonicalize_name(requirement.name)] = version
    return pins


def _locked() -> dict[str, Locked]:
    """The lock's entries: `name==version \\` then `--hash=...` lines, then `# via` comments."""
    text = (PROJECT_ROOT / "requirements.lock").read_text()
    entries: dict[str, Locked] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = re.match(r"([A-Za-z0-9._-]+)==([^\s\\;]+)", block)
        if not head:
            continue
        vias = re.findall(r"#\s+(?:via\s+)?(-r requirements\.txt|[A-Za-z0-9._-]+)\s*$", block, re.MULTILINE)
        entries[canonicalize_name(head.group(1))] = Locked(
            head.group(2), tuple(re.findall(r"--hash=(sha256:[0-9a-f]{64})", block)), tuple(vias)
        )
    return entries


def test_every_pin_of_requirements_txt_is_in_the_lock_at_its_version() -> None:
    locked = _locked()
    disagreements = {
        name: (version, locked[name].version if name in locked else None)
        for name, version in _pinned().items()
        if name not in locked or locked[name].version != version
    }
    assert disagreements == {}, "requirements.txt and requirements.lock disagree (pin, lock): run `make lock`"


def test_the_lock_holds_no_direct_dependency_that_requirements_txt_dropped() -> None:
    pinned = _pinned()
    stale = [name for name, entry in _locked().items() if "-r requirements.txt" in entry.via and name not in pinned]
    assert stale == [], "in the lock as requirements.txt's, but not in requirements.txt: run `make lock`"


def test_every_locked_package_carries_a_hash_and_the_lock_names_no_local_path() -> None:
    locked = _locked()
    assert len(locked) > len(_pinned())  # the transitive dependencies are there too
    assert [name for name, entry in locked.items() if not entry.hashes] == []
    text = (PROJECT_ROOT / "requirements.lock").read_text()
    assert not re.search(r"^--(find-links|index-url|extra-index-url|trusted-host)", text, re.MULTILINE)


def test_make_ci_and_the_image_install_the_runtime_from_the_lock_with_hashes() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert re.search(r"pip install [^\n]*--require-hashes -r requirements\.lock", makefile)
    assert "make .venv/.runtime" in (PROJECT_ROOT / ".ci" / "run").read_text()
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    assert re.search(r"pip download [^\n]*--require-hashes [^\n]*-r requirements\.lock", dockerfile)
    assert re.search(r"pip install --no-index ", dockerfile)  # nothing but the checked files
