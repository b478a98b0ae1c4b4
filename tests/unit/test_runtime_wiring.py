"""The runtime (engine.runtime) is the one place where services, counters and Redis clients
are made: the web, the CLI and the workers take theirs from it. Two things would break that,
and each is looked for in the source:

- a module of theirs calls the constructor of a service, that is of a class the runtime
  holds, or of a class that needs one of the runtime's parts (its database, Redis, clock,
  hasher, tokens, limiter, renderer, queue, transports, settings) to be made;
- a module anywhere in the engine keeps something of its own in `app.extensions`, beside the
  runtime (a cache there is a second, hidden runtime).

Calls are read with `ast` and resolved against the module as imported, so that an alias or
an attribute path (`redis.Redis.from_url`) is seen for what it is.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import redis

from engine import PROJECT_ROOT
from engine.runtime import Runtime
from engine.services.history import Actor, ActorKind
from engine.services.privacy import PrivacyService

# What takes its services from the runtime: the web, the CLI, the process entry points.
CALLERS = ("engine.web", "engine.cli", "engine.startup", "engine.console", "workers")
# The app factory puts the runtime in place.
RUNTIME_KEEPER = "engine"


def runtime_parts() -> frozenset[type]:
    """The classes of what the runtime holds, and the Redis client (the queue's connection)."""
    hints = typing.get_type_hints(Runtime)
    return frozenset({hint for hint in hints.values() if inspect.isclass(hint)} | {redis.Redis})


def is_wired(cls: type, parts: frozenset[type]) -> bool:
    """A class the runtime holds, or one made from a part of the runtime. A caller's own
    helper (a coupon upload's progress writer, handed the runtime's Redis client) is its own
    business: what is looked for is what the engine offers to be wired."""
    if _is_part(cls, parts):
        return True
    if _is_a_callers(cls.__module__):
        return False
    # Only a constructor written in the engine is read (a library's may name what it never imports).
    if not getattr(cls.__init__, "__module__", "").startswith("engine."):
        return False
    hints = typing.get_type_hints(cls.__init__)  # an engine constructor's hints must resolve
    return any(_is_part(each, parts) for hint in hints.values() for each in _classes_in(hint))


def _is_a_callers(module: str) -> bool:
    return any(module == name or module.startswith(f"{name}.") for name in CALLERS)


def _is_part(cls: type, parts: frozenset[type]) -> bool:
    # By inheritance as written: some parts are protocols (Clock), which issubclass refuses.
    return any(part in inspect.getmro(cls) for part in parts)


def _classes_in(hint: Any) -> Iterator[type]:
    """The classes a hint names: `Database`, `Clock | None`, `Optional[Limiter]`."""
    if inspect.isclass(hint):
        yield hint
    for argument in typing.get_args(hint):
        yield from _classes_in(argument)


def constructions(source: str, namespace: Mapping[str, Any], parts: frozenset[type]) -> list[str]:
    """Each call in `source` that makes a wired class (by its constructor or a class method such
    as `from_url`), as `line: what`, resolving names in the module's `namespace`."""
    tree = ast.parse(source)
    # Names imported inside a function are not the module's: they are read from the imports.
    namespace = {**_imported_names(tree), **namespace}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        called = _resolved(node.func, namespace)
        made = called if inspect.isclass(called) else _class_of_constructor(called)
        if made is not None and is_wired(made, parts):
            found.append(f"{node.lineno}: {ast.unparse(node.func)}")
    return found


def _imported_names(tree: ast.AST) -> dict[str, Any]:
    names: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            module = importlib.import_module(node.module)
            names.update({a.asname or a.name: getattr(module, a.name, None) for a in node.names})
        elif isinstance(node, ast.Import):
            for alias in node.names:
                module = importlib.import_module(alias.name)
                # `import a.b` binds `a`; `import a.b as c` binds the module itself.
                names[alias.asname or alias.name.split(".")[0]] = (
                    module if alias.asname else sys.modules[alias.name.split(".")[0]]
                )
    return names


def _resolved(expression: ast.expr, namespace: Mapping[str, Any]) -> Any:
    """What a name or a dotted path names in the module, or None (a local, a call's result)."""
    if isinstance(expression, ast.Name):
        return namespace.get(expression.id)
    if isinstance(expression, ast.Attribute):
        # Through modules and classes only: `request.form` would need a request to read.
        owner = _resolved(expression.value, namespace)
        return getattr(owner, expression.attr, None) if inspect.ismodule(owner) or inspect.isclass(owner) else None
    return None


def _class_of_constructor(called: Any) -> type | None:
    """The class a class method belongs to (`redis.Redis.from_url`), else None."""
    owner = getattr(called, "__self__", None)
    return owner if inspect.ismethod(called) and inspect.isclass(owner) else None


def _modules(*packages: str) -> Iterator[tuple[str, Path]]:
    """Each module of these packages (or the modules themselves), by name, with its file."""
    for package in packages:
        folder = PROJECT_ROOT.joinpath(*package.split("."))
        for file in sorted(folder.rglob("*.py")) if folder.is_dir() else [folder.with_suffix(".py")]:
            relative = file.relative_to(PROJECT_ROOT).with_suffix("")
            parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
            yield ".".join(parts), file


def test_the_web_the_cli_and_the_workers_build_no_service_of_their_own() -> None:
    parts = runtime_parts()
    assert len(parts) > 15, sorted(p.__name__ for p in parts)
    built = {}
    scanned = 0
    for name, path in _modules(*CALLERS):
        module = importlib.import_module(name)
        scanned += 1
        found = constructions(path.read_text(encoding="utf-8"), vars(module), parts)
        if found:
            built[name] = found
    assert scanned > 20
    assert built == {}, "take it from the runtime (engine.runtime.build_runtime makes it)"


def test_nothing_but_the_runtime_is_kept_in_the_apps_extensions() -> None:
    kept = []
    for name, path in _modules("engine", "workers"):
        if name == RUNTIME_KEEPER:
            continue
        kept.extend(f"{name}:{line}" for line in _extension_writes(path.read_text(encoding="utf-8")))
    assert kept == [], "keep it on the runtime (engine.runtime.Runtime) instead"


def _extension_writes(source: str) -> Iterator[int]:
    """Lines that store into an `….extensions` mapping (an item assigned, or `setdefault`)."""
    for node in ast.walk(ast.parse(source)):
        targets = node.targets if isinstance(node, ast.Assign) else []
        for target in targets:
            if isinstance(target, ast.Subscript) and _is_extensions(target.value):
                yield node.lineno
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("setdefault", "update")
            and _is_extensions(node.func.value)
        ):
            yield node.lineno


def _is_extensions(expression: ast.expr) -> bool:
    return isinstance(expression, ast.Attribute) and expression.attr == "extensions"


# -- the reading itself ---------------------------------------------------------------------------


def test_a_service_or_a_redis_client_built_in_place_is_found_and_a_value_object_is_not() -> None:
    source = (
        "def export(runtime, raw):\n"
        "    actor = Actor('cli', ActorKind.CLI)\n"
        "    service = PrivacyService(runtime.db, runtime.hasher, 'NL', runtime.clock)\n"
        "    client = redis.Redis.from_url('redis://127.0.0.1:6379/0')\n"
        "    return runtime.privacy.export(raw)\n"
    )
    namespace = {"Actor": Actor, "ActorKind": ActorKind, "PrivacyService": PrivacyService, "redis": redis}
    assert constructions(source, namespace, runtime_parts()) == ["3: PrivacyService", "4: redis.Redis.from_url"]


def test_a_value_kept_in_the_apps_extensions_is_found() -> None:
    source = (
        "def counter(app):\n"
        "    app.extensions['csrf'].exempt(bp)\n"
        "    current_app.extensions['counter'] = Counter()\n"
        "    app.extensions.setdefault('threads', {})\n"
        "    return app.extensions.get('counter')\n"
    )
    assert list(_extension_writes(source)) == [3, 4]
