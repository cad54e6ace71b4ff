"""The package's shape: modules that import each other in one direction only,
and every exception a user can catch importable by a public name."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import micropie

PACKAGE = Path(micropie.__file__).parent


def _imports(path: Path) -> set[str]:
    """The micropie modules *path* imports, at its top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("micropie"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("micropie"))
    return found


def _module_graph() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.glob("*.py"):
        name = "micropie" if path.stem == "__init__" else f"micropie.{path.stem}"
        # The package only re-exports: everything may be reached through it.
        graph[name] = _imports(path) - {name, "micropie"}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles = []
    for start in sorted(graph):
        stack = [(start, [start])]
        while stack:
            here, path = stack.pop()
            for there in sorted(graph.get(here, ())):
                if there == start:
                    cycles.append([*path, start])
                elif there not in path:
                    stack.append((there, [*path, there]))
    return cycles


def test_no_module_of_micropie_imports_one_that_imports_it_back() -> None:
    graph = _module_graph()
    assert "micropie.websocket" in graph and graph["micropie.app"], graph
    assert _cycles(graph) == []


def test_a_cycle_would_be_found() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c", "a"],
        ["b", "c", "a", "b"],
        ["c", "a", "b", "c"],
    ]


def test_the_package_only_reexports() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    kinds = {type(node).__name__ for node in tree.body}
    assert kinds <= {"Expr", "ImportFrom", "Assign"}, kinds


def test_every_exception_users_can_catch_has_a_public_name() -> None:
    public = set()
    for info in pkgutil.iter_modules([str(PACKAGE)]):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"micropie.{info.name}")
        public.update(getattr(module, name) for name in getattr(module, "__all__", ()))
    public.update(getattr(micropie, name) for name in micropie.__all__)
    raised = set()
    for info in pkgutil.iter_modules([str(PACKAGE)]):
        module = importlib.import_module(f"micropie.{info.name}")
        for _, value in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(value, Exception)
                and value.__module__.startswith("micropie")
                and not value.__name__.startswith("_")
            ):
                raised.add(value)
    # Internal signals that never reach a user's code stay private by name.
    assert raised, "no exceptions found: the scan is broken"
    missing = sorted(cls.__qualname__ for cls in raised - public)
    assert missing == [], f"exceptions without a public name in an __all__: {missing}"
