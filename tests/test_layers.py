"""The package's layers, read from its source: who may import whom, and no import cycle anywhere.

Every ``import`` counts, at module level or inside a function (a lazy import is still a dependency); only
imports under ``if TYPE_CHECKING:`` are left out, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent / "dynamo_nb"

#: the plain-data modules of the model that drawing code may read: snapshots, record kinds, lifecycle states
CORE_FOR_DISPLAY = {"dynamo_nb.core.snapshot", "dynamo_nb.core.recorder", "dynamo_nb.core.lifecycle"}
#: and of explain: what its checklist found (the report's figure draws from it, as figures draw from snapshots)
EXPLAIN_FOR_DISPLAY = {"dynamo_nb.diagnose.findings"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports (``from . import x`` resolved to the submodule when it is one)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("dynamo_nb"))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.startswith("dynamo_nb"):
                    for alias in child.names:
                        sub = f"{target}.{alias.name}"
                        found.add(sub if sub in modules else target)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(name)
    return {m for m in found if m in modules}


def _graph() -> nx.DiGraph:
    paths = sorted(ROOT.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for path in paths:
        for target in _imports(path, modules):
            graph.add_edge(_module_name(path), target)
    return graph


def _package_imports(graph: nx.DiGraph) -> list[tuple[str, str]]:
    """Edges between modules, minus an ``__init__`` importing its own submodules (that is what it is for)."""
    return [(a, b) for a, b in graph.edges if not b.startswith(a + ".")]


def test_no_import_cycle_anywhere() -> None:
    graph = _graph()
    graph.remove_edges_from([(a, b) for a, b in list(graph.edges) if b.startswith(a + ".")])
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert cycles == [], f"import cycles: {cycles}"


def test_the_model_reaches_the_drawing_layer_in_one_place() -> None:
    reach = sorted({a for a, b in _package_imports(_graph())
                    if a.startswith("dynamo_nb.core") and b.startswith("dynamo_nb.display")})
    assert reach == ["dynamo_nb.core.drawable"]


def test_drawing_reads_only_plain_data_of_the_model() -> None:
    edges = _package_imports(_graph())
    used = {b for a, b in edges if a.startswith("dynamo_nb.display") and b.startswith("dynamo_nb.core")}
    assert used <= CORE_FOR_DISPLAY, sorted(used - CORE_FOR_DISPLAY)
    # and those modules stand on their own: they import nothing else of the model, nor any backend
    below = {b for a, b in edges if a in CORE_FOR_DISPLAY}
    assert below <= CORE_FOR_DISPLAY | {"dynamo_nb.errors", "dynamo_nb.core"}, sorted(below)


def test_drawing_reads_only_the_findings_of_explain() -> None:
    edges = _package_imports(_graph())
    used = {b for a, b in edges if a.startswith("dynamo_nb.display") and b.startswith("dynamo_nb.diagnose")}
    assert used == EXPLAIN_FOR_DISPLAY, sorted(used)
    assert not [b for a, b in edges if a in EXPLAIN_FOR_DISPLAY], "the findings must be plain data"


def test_drawing_and_the_local_cluster_do_not_know_each_other() -> None:
    edges = _package_imports(_graph())
    assert not [(a, b) for a, b in edges if a.startswith("dynamo_nb.display") and b == "dynamo_nb.cluster"]
    assert not [(a, b) for a, b in edges if a == "dynamo_nb.cluster" and b.startswith("dynamo_nb.display")]


def test_the_graph_is_read_from_the_real_source() -> None:
    """Guards the tests above against reading nothing: known edges must be found."""
    graph = _graph()
    assert graph.has_edge("dynamo_nb.core.drawable", "dynamo_nb.display.hooks")
    assert graph.has_edge("dynamo_nb.display.kinds", "dynamo_nb.core.recorder")
    assert graph.has_edge("dynamo_nb.core.runtime", "dynamo_nb.core.registry")
    assert graph.number_of_nodes() > 30
