"""The service modules form no import cycle: each can be read, changed and tested from the
modules it names at its top down to the shared basics (look-ups, history, template context),
never round in a circle. Imports are read from the source with `ast`, wherever they stand
(top level, under `if TYPE_CHECKING`, inside a function), so that a cycle cannot hide behind
a deferred import; and an import of another service inside a function is refused outright,
since the only reason to write one is to dodge a cycle (or to hide a dependency)."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine import PROJECT_ROOT

PACKAGE = "engine.services"


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool

    def __str__(self) -> str:
        where = "inside a function" if self.in_function else "at module level"
        return f"{self.importer} imports {self.imported} ({where}, line {self.line})"


def modules_under(root: Path, package: str) -> dict[str, Path]:
    """Every module of `package` (the folder `root`, subpackages included) by its dotted name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_among(modules: Mapping[str, Path]) -> list[Import]:
    """Each import of one of `modules` by another (or by itself), wherever it is written."""
    return [found for name, path in modules.items() for found in _imports_in(name, path, modules)]


def _imports_in(name: str, path: Path, modules: Mapping[str, Path]) -> Iterator[Import]:
    is_package = path.name == "__init__.py"
    for node, in_function in _walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, name, is_package)
            # `from package import module` names a module; `from module import name` the module.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in dict.fromkeys(targets):
            if target in modules:
                yield Import(name, target, node.lineno, in_function)


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _walk(tree: ast.AST, in_function: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(tree):
        yield child, in_function
        inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield from _walk(child, inside)


def cycles(imports: list[Import]) -> list[list[Import]]:
    """One cycle through each group of modules that import one another round in a circle."""
    graph: dict[str, list[Import]] = {}
    for found in imports:
        graph.setdefault(found.importer, []).append(found)
    found_cycles: list[list[Import]] = []
    settled: set[str] = set()
    for start in sorted(graph):
        cycle = _cycle_from(start, graph, settled)
        if cycle and not any({i.importer for i in cycle} == {i.importer for i in c} for c in found_cycles):
            found_cycles.append(cycle)
    return found_cycles


def _cycle_from(start: str, graph: Mapping[str, list[Import]], settled: set[str]) -> list[Import] | None:
    """A path of imports from `start` back to a module already on the path (depth first)."""
    path: list[Import] = []
    on_path = {start: 0}

    def visit(module: str) -> list[Import] | None:
        for edge in graph.get(module, []):
            if edge.imported in on_path:
                return [*path[on_path[edge.imported] :], edge]
            if edge.imported in settled:
                continue
            path.append(edge)
            on_path[edge.imported] = len(path)
            cycle = visit(edge.imported)
            if cycle:
                return cycle
            path.pop()
            del on_path[edge.imported]
            settled.add(edge.imported)
        return None

    cycle = visit(start)
    if cycle is None:
        settled.add(start)
    return cycle


def _described(cycle: list[Import]) -> str:
    return "; ".join(str(edge) for edge in cycle)


# -- the project's services ------------------------------------------------------------------------


def _service_imports() -> list[Import]:
    modules = modules_under(PROJECT_ROOT / "engine" / "services", PACKAGE)
    assert f"{PACKAGE}.campaigns" in modules and len(modules) > 10, sorted(modules)
    return imports_among(modules)


def test_the_service_modules_import_one_another_without_a_cycle() -> None:
    imports = _service_imports()
    assert imports, "the services import one another: the reading found no import at all"
    assert [_described(cycle) for cycle in cycles(imports)] == []


def test_no_service_imports_another_inside_a_function() -> None:
    deferred = [str(found) for found in _service_imports() if found.in_function]
    assert deferred == [], "import it at the top of the module; if that makes a cycle, move what both need apart"


# -- the reading itself, on a package made for the test ----------------------------------------------


def _package(root: Path, files: Mapping[str, str]) -> dict[str, Path]:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return modules_under(root, "pkg")


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path: Path) -> None:
    modules = _package(
        tmp_path,
        {
            "__init__.py": "",
            "orders.py": "from pkg.coupons import redeem\n",
            "coupons.py": "from pkg import lookups\n",
            "lookups.py": "def find():\n    from pkg.orders import Order\n",
            "unrelated.py": "import pkg.lookups\n",
        },
    )
    imports = imports_among(modules)
    found = cycles(imports)
    assert len(found) == 1
    assert {edge.importer for edge in found[0]} == {"pkg.orders", "pkg.coupons", "pkg.lookups"}
    assert [str(i) for i in imports if i.in_function] == ["pkg.lookups imports pkg.orders (inside a function, line 2)"]


def test_relative_imports_and_subpackages_are_read(tmp_path: Path) -> None:
    modules = _package(
        tmp_path,
        {
            "__init__.py": "",
            "figures/__init__.py": "from .rollups import refresh\n",
            "figures/rollups.py": "from ..campaigns import SLUG\nfrom . import formulas\n",
            "figures/formulas.py": "",
            "campaigns.py": "import typing\nif typing.TYPE_CHECKING:\n    from pkg.figures import refresh\n",
        },
    )
    imports = imports_among(modules)
    assert {(i.importer, i.imported) for i in imports} == {
        ("pkg.figures", "pkg.figures.rollups"),
        ("pkg.figures.rollups", "pkg.campaigns"),
        ("pkg.figures.rollups", "pkg.figures.formulas"),
        ("pkg.campaigns", "pkg.figures"),
    }
    assert len(cycles(imports)) == 1
