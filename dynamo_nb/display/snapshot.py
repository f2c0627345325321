"""Merging snapshots into one picture: what every diagram is drawn from.

Each object to draw hands over a :class:`~dynamo_nb.core.snapshot.Part` (plain, immutable data it made of itself,
with no reference to a live object); :func:`snapshot` merges them. So a diagram is a pure function of its
snapshot, this layer knows no class of the object model, and tests can build parts and snapshots by hand.

Several objects (for instance a frontend runtime and its worker runtimes) can be drawn together: their
namespaces merge by name, an instance served by one runtime and watched by another appears once, and their
records are merged in time order.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import replace
from typing import Any, Sequence

from ..core.snapshot import (
    CallSnap,
    ClientSnap,
    ClusterSnap,
    ComponentSnap,
    EndpointSnap,
    Focus,
    InstanceSnap,
    NamespaceSnap,
    Part,
    RegistrySnap,
    RuntimeSnap,
    RuntimeState,
    ServiceSnap,
    Snapshot,
    TaggedRecord,
    WatcherSnap,
)

__all__ = [
    "InstanceSnap",
    "EndpointSnap",
    "ComponentSnap",
    "NamespaceSnap",
    "RuntimeSnap",
    "ClientSnap",
    "CallSnap",
    "ServiceSnap",
    "WatcherSnap",
    "RegistrySnap",
    "ClusterSnap",
    "RuntimeState",
    "TaggedRecord",
    "Focus",
    "Part",
    "Snapshot",
    "snapshot",
    "part_of",
    "parts_of",
    "merge",
    "natural_key",
]

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders ``Worker2`` before ``Worker10``, as a person would.

    >>> sorted(["Worker10", "Worker1", "Worker2", "Worker0"], key=natural_key)
    ['Worker0', 'Worker1', 'Worker2', 'Worker10']
    """
    return tuple((0, int(p), p) if p.isdigit() else (1, p.lower(), p) for p in _DIGITS.split(name) if p)


# --------------------------------------------------------------------------------------------- building
def part_of(obj: Any) -> Part:
    """The :class:`Part` an object contributes: it makes its own (``obj._part()``), or it is one already."""
    if isinstance(obj, Part):
        return obj
    make = getattr(obj, "_part", None)
    if not callable(make):
        raise TypeError(f"cannot draw a {type(obj).__name__}: pass a runtime, namespace, component, endpoint, "
                        "served endpoint, client, registry or LocalCluster (or a list of them)")
    return make()


class _Tree:
    """Mutable accumulator: namespace → component → endpoint → instance id → InstanceSnap."""

    def __init__(self) -> None:
        self.ns: dict[str, dict[str, dict[str, dict[int, InstanceSnap]]]] = {}
        self.names: dict[tuple[str, str], ComponentSnap] = {}

    def endpoint(self, ns: str, comp: str, ep: str) -> dict[int, InstanceSnap]:
        return self.ns.setdefault(ns, {}).setdefault(comp, {}).setdefault(ep, {})

    def component(self, ns: str, comp: str) -> None:
        self.ns.setdefault(ns, {}).setdefault(comp, {})

    def namespace(self, ns: str) -> None:
        self.ns.setdefault(ns, {})

    def add(self, inst: InstanceSnap) -> None:
        slot = self.endpoint(inst.namespace, inst.component, inst.endpoint)
        old = slot.get(inst.instance_id)
        if old is None:
            slot[inst.instance_id] = inst
            return
        seen = tuple(dict.fromkeys(old.seen_by + inst.seen_by))
        base = inst if inst.runtime and not old.runtime else old
        readings = [r for r in (old.lease, inst.lease) if r is not None]
        lease = max(readings, key=lambda r: (r.read_at, r.unanswered_at)) if readings else None
        if lease is not None and not lease.dead and any(r.dead for r in readings):  # one runtime saw it fail
            lease = replace(lease, unanswered_at=max(r.unanswered_at for r in readings))
        slot[inst.instance_id] = replace(base, seen_by=seen, lease=lease)

    def freeze(self) -> tuple[NamespaceSnap, ...]:
        out = []
        for ns_name in sorted(self.ns, key=natural_key):
            comps = []
            for comp_name in sorted(self.ns[ns_name], key=natural_key):
                eps = []
                for ep_name in sorted(self.ns[ns_name][comp_name], key=natural_key):
                    insts = self.ns[ns_name][comp_name][ep_name].values()
                    ordered = sorted(insts, key=lambda i: (i.runtime == "", natural_key(i.runtime), i.instance_id))
                    eps.append(EndpointSnap(ns_name, comp_name, ep_name, tuple(ordered)))
                named = self.names.get((ns_name, comp_name))
                comps.append(ComponentSnap(ns_name, comp_name, tuple(eps), *(
                    (named.etcd_path, named.service_name, named.path) if named else ())))
            out.append(NamespaceSnap(ns_name, tuple(comps)))
        return tuple(out)


def parts_of(objs: Any) -> list[Part]:
    """The parts of one object or a list of objects (a recording may hold several)."""
    items: Sequence[Any] = list(objs) if isinstance(objs, (list, tuple, set, frozenset)) else [objs]
    if not items:
        raise ValueError("nothing to draw: pass at least one object")
    parts: list[Part] = []
    for obj in items:
        many = getattr(obj, "_parts", None)
        parts.extend(many() if callable(many) else [part_of(obj)])
    return parts


def snapshot(objs: Any, at: float | None = None) -> Snapshot:
    """A snapshot of one object or a list of objects (their runtimes' state and records, merged); with ``at``,
    as they were at that wall-clock time (from the frames and records their runtimes kept).

    In a list, runtimes next to other objects only contribute what they know: ``snapshot([endpoint, worker_rt])``
    draws the endpoint, with the instances ``worker_rt`` serves shown as its own.
    """
    parts = parts_of(objs)
    return merge(parts if at is None else [p.at(at) for p in parts])


def merge(parts: Sequence[Part]) -> Snapshot:
    """One snapshot from several parts (see :func:`snapshot`)."""
    # Runtimes listed beside other objects are context (where the data comes from), not what is drawn.
    drawn = [p for p in parts if p.focus.kind != "runtime"] or parts
    states: dict[str, RuntimeState] = {}
    for part in parts:
        for state in part.runtimes:
            states.setdefault(state.runtime.name, state)
    tree = _Tree()
    clients: list[ClientSnap] = []
    calls: list[CallSnap] = []
    registries: list[RegistrySnap] = []
    for state in states.values():
        for comp in state.components:
            tree.names.setdefault((comp.namespace, comp.name), comp)
        for inst in state.served:
            tree.add(inst)
        for inst in state.watched:
            tree.add(inst)
        for ns_name, comp_name, ep_name in state.endpoints:
            tree.endpoint(ns_name, comp_name, ep_name)
        clients.extend(state.clients)
        calls.extend(state.calls)
        if state.registry is not None:
            registries.append(state.registry)
    for part in drawn:
        f = part.focus
        if part.instance is not None:
            tree.add(part.instance)  # also when already stopped (no longer in the runtime's list)
        elif f.kind == "namespace":
            tree.namespace(f.namespace)
        elif f.kind == "component":
            tree.component(f.namespace, f.component)
        elif f.kind in ("endpoint", "client"):
            tree.endpoint(f.namespace, f.component, f.endpoint)
    records, dropped = _merge_records(list(states.values()))
    return Snapshot(
        runtimes=tuple(s.runtime for s in states.values()),
        namespaces=tree.freeze(),
        clients=tuple(sorted(clients, key=lambda c: (natural_key(c.runtime), c.id))),
        registries=tuple(registries),
        clusters=tuple(p.cluster for p in parts if p.cluster is not None),
        records=records,
        focus=tuple(p.focus for p in drawn),
        dropped=dropped,
        calls=tuple(calls),
        subscriptions=tuple(sub for s in states.values() for sub in s.subscriptions),
        events_unsent={s.runtime.name: s.events_unsent for s in states.values() if s.events_unsent},
        graphs=tuple(p.graph for p in parts if p.graph is not None),
    )


def _merge_records(states: Sequence[RuntimeState]) -> tuple[tuple[TaggedRecord, ...], dict[str, int]]:
    """Every runtime's records in time order (each runtime's own order kept), and how many each ring dropped."""
    streams = [[TaggedRecord(s.runtime.name, rec) for rec in s.records] for s in states]
    dropped = {s.runtime.name: s.dropped for s in states if s.dropped}
    if len(streams) == 1:
        return tuple(streams[0]), dropped
    return tuple(heapq.merge(*streams, key=lambda t: t.record.ts)), dropped
