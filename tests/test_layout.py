"""The package map's rules (README, "Layout"), checked on the source so they stay true.

Imports are read with ``ast`` from every module of the four product packages, wherever they
stand: at the top, inside a function, or under ``if TYPE_CHECKING`` (a type-only import is
still an edge a reader must follow, and it is how the last import loop was kept alive).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("monitor", "collectors", "detectors", "alerts")
SHELL = ("monitor.api", "monitor.cli")  # the top of the house: the HTTP app and the command
WEB = ("fastapi", "starlette")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _inside(module: str, packages: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Module name -> file, for every Python file of ``packages`` but Alembic's migration
    scripts (run by Alembic, imported by nothing)."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imported_names(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """Every dotted name ``module`` imports (``from a import b`` gives ``a.b``: b may be a
    submodule), with its line."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def import_graph(root: Path, packages: Iterable[str]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module -> modules of ``packages`` it imports, module -> outside top-level packages it imports)."""
    modules = _modules(root, packages)
    inner: dict[str, set[str]] = {m: set() for m in modules}
    outer: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for name, _ in _imported_names(module, path):
            target = name
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module:
                inner[module].add(target)
            elif not target:
                outer[module].add(name.partition(".")[0])
    return inner, outer


def broken_rules(inner: dict[str, set[str]], outer: dict[str, set[str]]) -> list[str]:
    """Every import that breaks a rule of the package map, as ``importer -> imported: rule``."""
    rules = [
        ("detectors", ("monitor", "collectors", "alerts"), "detectors is pure computation"),
        ("collectors", ("alerts", "detectors"), "collectors turn bytes into records"),
        ("collectors", SHELL, "collectors are below the app and the command"),
        ("alerts", ("monitor", "collectors"), "alerts consume results; the store implements alerts.outbox"),
    ]
    out = []
    for module, targets in sorted(inner.items()):
        for target in sorted(targets):
            for importer, forbidden, why in rules:
                if _inside(module, [importer]) and _inside(target, forbidden):
                    out.append(f"{module} -> {target}: {why}")
            core = _inside(module, ["monitor"]) and not _inside(module, SHELL)
            if core and _inside(target, [*SHELL, "collectors"]):
                out.append(f"{module} -> {target}: the core and the store never import the shell or collectors")
    for module, names in sorted(outer.items()):
        if _inside(module, ["collectors", "detectors", "alerts"]) and names & set(WEB):
            out.append(f"{module} -> {', '.join(sorted(names & set(WEB)))}: every route is in monitor/api")
    return out


def import_loops(inner: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(inner[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for v in sorted(inner):
        if v not in index:
            visit(v)
    return loops


def oversized(root: Path, packages: Iterable[str]) -> list[str]:
    out = []
    for path in _modules(root, packages).values():
        source = path.read_text()
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES:
            out.append(f"{path.relative_to(root)}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]  # set by ast.parse
                if length > MAX_FUNCTION_LINES:
                    out.append(f"{path.relative_to(root)}:{node.lineno} {node.name}: {length} lines")
    return out


def test_every_import_follows_the_package_map() -> None:
    inner, outer = import_graph(ROOT, PACKAGES)
    assert len(inner) > 100  # the walk found the product's modules
    assert "monitor.pipeline" in inner["monitor.api.service"]  # and reads their imports
    assert broken_rules(inner, outer) == []


def test_no_import_loop_anywhere() -> None:
    inner, _ = import_graph(ROOT, PACKAGES)
    assert import_loops(inner) == []


def test_no_module_over_500_lines_and_no_function_over_80() -> None:
    assert oversized(ROOT, PACKAGES) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checks_find_what_they_look_for(tmp_path: Path) -> None:
    """The checks fail where they should: a broken rule, a type-only loop through a relative
    import, a route outside the app, an oversized function."""
    body = "\n".join(f"    x = {i}" for i in range(MAX_FUNCTION_LINES))
    _write(
        tmp_path,
        {
            "detectors/__init__.py": "",
            "detectors/a.py": "from monitor.core import thing\n",
            "monitor/__init__.py": "",
            "monitor/core.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import other\n",
            "monitor/other.py": "def f():\n    from monitor import core\n",
            "monitor/cli/__init__.py": "",
            "monitor/store.py": "from monitor.cli import main\n",
            "collectors/__init__.py": "",
            "collectors/web.py": "from fastapi import APIRouter\n",
            "alerts/__init__.py": f"def long():\n{body}\n",
        },
    )
    inner, outer = import_graph(tmp_path, PACKAGES)
    assert broken_rules(inner, outer) == [
        "detectors.a -> monitor.core: detectors is pure computation",
        "monitor.store -> monitor.cli: the core and the store never import the shell or collectors",
        "collectors.web -> fastapi: every route is in monitor/api",
    ]
    assert import_loops(inner) == [["monitor.core", "monitor.other"]]
    assert oversized(tmp_path, PACKAGES) == [f"alerts/__init__.py:1 long: {MAX_FUNCTION_LINES + 1} lines"]
