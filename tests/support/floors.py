"""The import floors of the source tree, read from its files in the installed layout.

The repo's folders install as memento_skills.* (graph/ -> memento_skills.graph, ...), so this maps
each file to its module name and follows every import in it, lazy ones inside functions too.
Floors, top to bottom: the facade (memento_skills/*.py), evals, graph, nodes, stores.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "memento_skills"
FOLDERS = ("graph", "nodes", "stores", "evals")
"""The repo folders installed as memento_skills.<folder> (pyproject's package-dir)."""


@dataclass
class ImportGraph:
    """Module name -> its file, and module name -> the project modules it imports."""

    files: dict[str, Path] = field(default_factory=dict)
    imports: dict[str, set[str]] = field(default_factory=dict)


def _module_name(prefix: list[str], relative: Path) -> str:
    parts = [p for p in relative.with_suffix("").parts if p != "__init__"]
    return ".".join([*prefix, *parts])


def _modules(root: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            files[_module_name([PACKAGE, folder], path.relative_to(root / folder))] = path
    for path in sorted((root / PACKAGE).rglob("*.py")):
        files[_module_name([PACKAGE], path.relative_to(root / PACKAGE))] = path
    return files


def _imported_names(tree: ast.AST, package: str) -> list[str]:
    """Every name an import statement anywhere in the tree may load (module, or module.attr)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.append(base)
            names.extend(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(root: Path) -> ImportGraph:
    """The file-level import graph of the project modules under `root`."""
    graph = ImportGraph(files=_modules(root))

    def resolve(name: str) -> str | None:
        while name and name not in graph.files:
            name = name.rpartition(".")[0]
        return name or None

    for module, path in graph.files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = {resolve(name) for name in _imported_names(tree, package)}
        graph.imports[module] = {t for t in targets if t is not None and t != module}
    return graph


def cycles(graph: ImportGraph) -> list[list[str]]:
    """The import cycles: strongly connected components of more than one module (Tarjan's)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:
        # iterative, so a long import chain cannot hit the recursion limit
        work = [(start, iter(sorted(graph.imports[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, pending = work[-1]
            child = next(pending, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.imports[child]))))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for module in sorted(graph.imports):
        if module not in index:
            visit(module)
    return sorted(found)


def floor(module: str) -> str:
    """The floor a module lives on: one of FOLDERS, or "facade" for memento_skills/*.py."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FOLDERS else "facade"


def back_arrows(graph: ImportGraph) -> list[str]:
    """Imports that run back up: stores -> anything above it; nodes or graph -> evals or facade."""
    arrows: list[str] = []
    for source, targets in graph.imports.items():
        for target in targets:
            here, there = floor(source), floor(target)
            upward = (here == "stores" and there != "stores") or (
                here in ("nodes", "graph") and there in ("evals", "facade")
            )
            if upward:
                arrows.append(f"{source} -> {target}")
    return sorted(arrows)
