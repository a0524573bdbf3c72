"""The package's import graph: no circles, and no production module leans on a benchmark.

Every ``import`` statement of every module counts, at the top of a file or inside a function (an
import moved into a function to dodge a circle is still a circle: the two modules still need each
other, only later); only imports under ``if TYPE_CHECKING:`` do not, since they never run (a type
named in an annotation). The circles by design are the registries' lazy
loading: ``reid.registry`` imports ``reid.variants`` on first use so that every variant module
registers itself, and each variant module imports ``register_variant`` from it (docs/design.md §7);
the loss registry (``reid.losses.base``) loads ``reid.losses`` the same way. Those two edges are
taken out of the graph, and what remains must have no circle.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "reidpipe"
BENCH = "reidpipe.pipeline.bench"
# a registry -> the package whose modules register themselves when it is imported
REGISTRY_LOADS = [
    ("reidpipe.reid.registry", "reidpipe.reid.variants"),
    ("reidpipe.reid.losses.base", "reidpipe.reid.losses"),
]


def _modules() -> dict[str, Path]:
    """Module name -> file, for every module under ``reidpipe/`` (the links to the top-level folders followed)."""
    found = {}
    for folder, dirs, files in os.walk(PACKAGE, followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                path = Path(folder) / name
                found[_name(path)] = path
    return found


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.AST, module: str, is_package: bool, known: dict[str, Path]) -> set[str]:
    """The reidpipe modules one import statement names (``from pkg import mod`` names ``pkg.mod``)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    if not isinstance(node, ast.ImportFrom):
        return set()
    base = node.module or ""
    if node.level:
        anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
        base = ".".join([*anchor, base] if base else anchor)
    names = set()
    for alias in node.names:
        child = f"{base}.{alias.name}"
        if child in known:
            names.add(child)
        elif base in known:
            names.add(base)
    return names


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _run_time_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (its ``else:`` runs)."""
    found: list[ast.AST] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        found.append(node)
        for child in ast.iter_child_nodes(node):
            todo.extend(child.orelse if isinstance(child, ast.If) and _type_checking(child) else [child])
    return found


def _graph() -> nx.DiGraph:
    known = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _run_time_nodes(tree):
            for target in _imported(node, module, path.name == "__init__.py", known):
                if target != module:
                    graph.add_edge(module, target)
    return graph


def test_the_package_has_no_import_circle_but_the_model_registry():
    graph = _graph()
    assert graph.number_of_edges() > 100, "the import graph was not read"
    for registry, package in REGISTRY_LOADS:
        graph.remove_edge(registry, package)  # raises if the registry stopped loading lazily: update the list
    circles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    shown = ["; ".join(" -> ".join(cycle) for cycle in nx.simple_cycles(graph.subgraph(c))) for c in circles]
    assert not circles, "import circles:\n" + "\n".join(shown)


def test_no_production_module_imports_a_benchmark():
    graph = _graph()
    leaning = sorted(
        (module, target)
        for module, target in graph.edges
        if target.startswith(BENCH)
        and not module.startswith(BENCH)
        and not module.startswith("reidpipe.commands.bench")
    )
    assert not leaning, f"production modules importing benchmark code: {leaning}"
