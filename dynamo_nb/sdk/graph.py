"""Which services a graph serves, and in what order: from the entry along ``link``/``depends`` edges."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .decorators import ServiceSpec, spec_of

__all__ = ["GraphPlan", "plan_graph"]


@dataclass(frozen=True)
class GraphPlan:
    """The services reachable from ``entry``, dependencies before dependents (start order), and the edges."""

    entry: ServiceSpec
    services: tuple[ServiceSpec, ...]
    edges: tuple[tuple[str, str, str], ...]  # (service, attribute, dependency), all by class name

    def spec(self, name_or_cls: Any) -> ServiceSpec:
        name = name_or_cls if isinstance(name_or_cls, str) else getattr(name_or_cls, "__name__", "")
        for spec in self.services:
            if spec.name == name:
                return spec
        raise KeyError(f"{name!r} is not a service of the graph of {self.entry.name} "
                       f"(it has: {', '.join(s.name for s in self.services)})")


def plan_graph(entry: type) -> GraphPlan:
    """Walk from ``entry``; a cycle of dependencies is refused (nothing could start first)."""
    root = spec_of(entry)
    order: list[ServiceSpec] = []
    edges: list[tuple[str, str, str]] = []
    state: dict[type, str] = {}

    def visit(spec: ServiceSpec, path: list[str]) -> None:
        mark = state.get(spec.cls)
        if mark == "done":
            return
        if mark == "active":
            raise ValueError(f"dependency cycle: {' → '.join(path + [spec.name])}")
        state[spec.cls] = "active"
        served = spec.served_dependencies()
        for attr, dep in spec.dependencies.items():
            if dep.target in served:
                edges.append((spec.name, attr, dep.target.__name__))
        for target in served:
            visit(spec_of(target), path + [spec.name])
        state[spec.cls] = "done"
        order.append(spec)

    visit(root, [])
    names = [s.name for s in order]
    if len(set(names)) != len(names):
        raise ValueError(f"two services of one graph share a class name: {names}")
    return GraphPlan(root, tuple(order), tuple(edges))
