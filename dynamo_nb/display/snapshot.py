"""Plain-data snapshots of running objects: what every diagram is drawn from.

:func:`snapshot` reads only state the runtime already holds (served instances, the registry's services and
watchers, clients, the recorder's ring buffer); it does no I/O and keeps no reference to a live object, so a
diagram is a pure function of its snapshot, and tests can build snapshots by hand.

Several objects (for instance a frontend runtime and its worker runtimes) can be snapshotted together: their
namespaces merge by name, an instance served by one runtime and watched by another appears once, and their
records are merged in time order.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterable, Iterator, NamedTuple, Sequence

from .. import names

if TYPE_CHECKING:
    from ..core.recorder import Record

__all__ = [
    "InstanceSnap",
    "EndpointSnap",
    "ComponentSnap",
    "NamespaceSnap",
    "RuntimeSnap",
    "ClientSnap",
    "ServiceSnap",
    "WatcherSnap",
    "RegistrySnap",
    "ClusterSnap",
    "TaggedRecord",
    "Focus",
    "Snapshot",
    "snapshot",
    "runtimes_of",
]


@dataclass(frozen=True)
class InstanceSnap:
    """One live (or just stopped) endpoint instance; ``runtime`` is set when a snapshotted runtime serves it."""

    namespace: str
    component: str
    endpoint: str
    instance_id: int
    key: str = ""
    subject: str = ""
    runtime: str = ""
    state: str = ""
    history: tuple[tuple[str, float], ...] = ()
    inflight: int = 0
    requests: int = 0
    errors: int = 0
    killed: bool = False
    seen_by: tuple[str, ...] = ()

    @property
    def reference(self) -> str:
        return f"{self.namespace}.{self.component}.{self.endpoint}"


@dataclass(frozen=True)
class EndpointSnap:
    namespace: str
    component: str
    name: str
    instances: tuple[InstanceSnap, ...] = ()

    @property
    def reference(self) -> str:
        return f"{self.namespace}.{self.component}.{self.name}"


@dataclass(frozen=True)
class ComponentSnap:
    namespace: str
    name: str
    endpoints: tuple[EndpointSnap, ...] = ()

    @property
    def etcd_path(self) -> str:
        return names.component_etcd_path(self.namespace, self.name)

    @property
    def service_name(self) -> str:
        return names.component_service_name(self.namespace, self.name)

    @property
    def path(self) -> str:
        return names.component_path(self.namespace, self.name)


@dataclass(frozen=True)
class NamespaceSnap:
    name: str
    components: tuple[ComponentSnap, ...] = ()


@dataclass(frozen=True)
class RuntimeSnap:
    name: str
    backend: str = "embedded"
    lease_id: int = 0
    lease_ttl: float = 10.0
    lease_alive: bool = True
    state: str = "running"
    keepalives: int = 0


@dataclass(frozen=True)
class ClientSnap:
    id: int
    runtime: str
    namespace: str
    component: str
    endpoint: str
    instance_ids: tuple[int, ...] = ()
    calls: int = 0

    @property
    def reference(self) -> str:
        return f"{self.namespace}.{self.component}.{self.endpoint}"


@dataclass(frozen=True)
class ServiceSnap:
    """One component's NATS service and the endpoints (and stats handlers) it carries."""

    name: str
    slug: str
    endpoints: tuple[str, ...] = ()
    stats_handlers: tuple[str, ...] = ()


@dataclass(frozen=True)
class WatcherSnap:
    """One shared etcd prefix watch and who shares it."""

    prefix: str
    sharers: tuple[tuple[int, str], ...] = ()
    instances: int = 0


@dataclass(frozen=True)
class RegistrySnap:
    runtime: str
    services: tuple[ServiceSnap, ...] = ()
    watchers: tuple[WatcherSnap, ...] = ()


@dataclass(frozen=True)
class ClusterSnap:
    state: str
    nats: str = ""
    etcd: str = ""
    nats_pid: int | None = None
    etcd_pid: int | None = None


class TaggedRecord(NamedTuple):
    """A recorder entry with the name of the runtime that recorded it."""

    runtime: str
    record: "Record"


@dataclass(frozen=True)
class Focus:
    """What was asked to be drawn: ``runtime``, ``namespace``, ``component``, ``endpoint``, ``instance``,
    ``client``, ``registry`` or ``cluster``, with the names that identify it."""

    kind: str
    runtime: str = ""
    namespace: str = ""
    component: str = ""
    endpoint: str = ""
    instance_id: int = 0
    client_id: int = 0

    def covers(self, namespace: str, component: str | None = None, endpoint: str | None = None) -> bool:
        """Whether this focus includes the given namespace / component / endpoint."""
        if self.kind in ("runtime", "registry", "cluster"):
            return True
        if self.namespace != namespace:
            return False
        if self.kind == "namespace" or component is None:
            return True
        if self.component != component:
            return False
        return self.kind == "component" or endpoint is None or self.endpoint == endpoint


@dataclass(frozen=True)
class Snapshot:
    """Everything a diagram may draw, as plain data."""

    runtimes: tuple[RuntimeSnap, ...] = ()
    namespaces: tuple[NamespaceSnap, ...] = ()
    clients: tuple[ClientSnap, ...] = ()
    registries: tuple[RegistrySnap, ...] = ()
    clusters: tuple[ClusterSnap, ...] = ()
    records: tuple[TaggedRecord, ...] = ()
    focus: tuple[Focus, ...] = ()
    dropped: dict[str, int] = field(default_factory=dict)

    def first(self, *kinds: str) -> Focus | None:
        return next((f for f in self.focus if f.kind in kinds), None)

    def scoped(self) -> tuple[NamespaceSnap, ...]:
        """The namespace tree pruned to what the focus asks for (everything for a runtime focus)."""
        if not self.focus:
            return self.namespaces
        out = []
        for ns in self.namespaces:
            if not any(f.covers(ns.name) for f in self.focus):
                continue
            comps = []
            for comp in ns.components:
                if not any(f.covers(ns.name, comp.name) for f in self.focus):
                    continue
                eps = tuple(ep for ep in comp.endpoints
                            if any(f.covers(ns.name, comp.name, ep.name) for f in self.focus))
                comps.append(ComponentSnap(comp.namespace, comp.name, eps))
            out.append(NamespaceSnap(ns.name, tuple(comps)))
        return tuple(out)

    def instances(self) -> Iterator[InstanceSnap]:
        for ns in self.namespaces:
            for comp in ns.components:
                for ep in comp.endpoints:
                    yield from ep.instances

    def instance(self, instance_id: int, reference: str | None = None) -> InstanceSnap | None:
        for inst in self.instances():
            if inst.instance_id == instance_id and (reference is None or inst.reference == reference):
                return inst
        return None

    def runtime(self, name: str) -> RuntimeSnap | None:
        return next((r for r in self.runtimes if r.name == name), None)


# --------------------------------------------------------------------------------------------- building
def runtimes_of(objs: Iterable[Any]) -> list[Any]:
    """The distinct runtimes behind the given objects, in order."""
    seen: dict[int, Any] = {}
    for obj in objs:
        rt = _runtime_of(obj)
        if rt is not None:
            seen.setdefault(id(rt), rt)
    return list(seen.values())


def _runtime_of(obj: Any) -> Any:
    from ..core.runtime import DistributedRuntime

    if isinstance(obj, DistributedRuntime):
        return obj
    rt = getattr(obj, "runtime", None)
    return rt if isinstance(rt, DistributedRuntime) else None


def _focus_of(obj: Any) -> Focus:
    from ..cluster import LocalCluster
    from ..core.client import Client
    from ..core.model import Component, Endpoint, Namespace
    from ..core.registry import Registry
    from ..core.runtime import DistributedRuntime
    from ..core.served import ServedEndpoint

    if isinstance(obj, DistributedRuntime):
        return Focus("runtime", runtime=obj.name)
    if isinstance(obj, Namespace):
        return Focus("namespace", obj.runtime.name, obj.name)
    if isinstance(obj, Component):
        return Focus("component", obj.runtime.name, obj.namespace.name, obj.name)
    if isinstance(obj, Endpoint):
        return Focus("endpoint", obj.runtime.name, obj.namespace.name, obj.component.name, obj.name)
    if isinstance(obj, ServedEndpoint):
        ep = obj.endpoint
        return Focus("instance", obj.runtime.name, ep.namespace.name, ep.component.name, ep.name, obj.lease_id)
    if isinstance(obj, Client):
        ep = obj.endpoint
        return Focus("client", obj.runtime.name, ep.namespace.name, ep.component.name, ep.name, client_id=obj.id)
    if isinstance(obj, Registry):
        return Focus("registry", obj.runtime.name)
    if isinstance(obj, LocalCluster):
        return Focus("cluster")
    raise TypeError(f"cannot draw a {type(obj).__name__}: pass a runtime, namespace, component, endpoint, "
                    "served endpoint, client, registry or LocalCluster (or a list of them)")


def _runtime_state(rt: Any) -> str:
    return "killed" if rt.killed else ("shut down" if rt.closed else "running")


def _served_snap(served: Any) -> InstanceSnap:
    ep = served.endpoint
    stats = served.stats
    return InstanceSnap(
        ep.namespace.name, ep.component.name, ep.name, served.lease_id, served.key, served.subject,
        runtime=served.runtime.name, state=served.state.value,
        history=tuple((s.value, ts) for s, ts in served.lifecycle.history),
        inflight=served.inflight, requests=stats.num_requests if stats else 0,
        errors=stats.num_errors if stats else 0, killed=served.killed,
    )


class _Tree:
    """Mutable accumulator: namespace → component → endpoint → instance id → InstanceSnap."""

    def __init__(self) -> None:
        self.ns: dict[str, dict[str, dict[str, dict[int, InstanceSnap]]]] = {}

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
        slot[inst.instance_id] = replace(base, seen_by=seen)

    def freeze(self) -> tuple[NamespaceSnap, ...]:
        out = []
        for ns_name in sorted(self.ns):
            comps = []
            for comp_name in sorted(self.ns[ns_name]):
                eps = []
                for ep_name in sorted(self.ns[ns_name][comp_name]):
                    insts = self.ns[ns_name][comp_name][ep_name].values()
                    ordered = sorted(insts, key=lambda i: (i.runtime == "", i.runtime, i.instance_id))
                    eps.append(EndpointSnap(ns_name, comp_name, ep_name, tuple(ordered)))
                comps.append(ComponentSnap(ns_name, comp_name, tuple(eps)))
            out.append(NamespaceSnap(ns_name, tuple(comps)))
        return tuple(out)


def snapshot(objs: Any) -> Snapshot:
    """A snapshot of one object or a list of objects (their runtimes' state and records, merged).

    In a list, runtimes next to other objects only contribute what they know: ``snapshot([endpoint, worker_rt])``
    draws the endpoint, with the instances ``worker_rt`` serves shown as its own.
    """
    from ..cluster import LocalCluster
    from ..core.served import ServedEndpoint

    items: Sequence[Any] = list(objs) if isinstance(objs, (list, tuple, set, frozenset)) else [objs]
    if not items:
        raise ValueError("nothing to draw: pass at least one object")
    # Runtimes listed beside other objects are context (where the data comes from), not what is drawn.
    from ..core.runtime import DistributedRuntime

    drawn = [obj for obj in items if not isinstance(obj, DistributedRuntime)] or items
    focus = tuple(_focus_of(obj) for obj in drawn)
    runtimes = runtimes_of(items)
    tree = _Tree()
    clients: list[ClientSnap] = []
    registries: list[RegistrySnap] = []
    for rt in runtimes:
        for served in rt.served_endpoints():
            tree.add(_served_snap(served))
        for prefix, watcher in rt.registry.watchers.items():
            for info in watcher.instances.values():
                key = rt.profile.instance_key(info.namespace, info.component, info.endpoint, info.instance_id)
                tree.add(InstanceSnap(info.namespace, info.component, info.endpoint, info.instance_id, key,
                                      info.subject, seen_by=(rt.name,)))
        for ep in rt.known_endpoints():
            tree.endpoint(ep.namespace.name, ep.component.name, ep.name)
        for client in rt.clients():
            ep = client.endpoint
            clients.append(ClientSnap(client.id, rt.name, ep.namespace.name, ep.component.name, ep.name,
                                      tuple(client.instance_ids()), client.calls))
        reg = rt.registry
        registries.append(RegistrySnap(
            rt.name,
            tuple(ServiceSnap(name, svc.slug, tuple(svc.endpoints), tuple(sorted(reg.stats_handlers.get(name, {}))))
                  for name, svc in sorted(reg.services.items())),
            tuple(WatcherSnap(prefix, tuple(sorted(w.sharers.items())), len(w.instances))
                  for prefix, w in sorted(reg.watchers.items())),
        ))
    for obj, f in zip(drawn, focus):
        if isinstance(obj, ServedEndpoint):
            tree.add(_served_snap(obj))  # also when already stopped (no longer in the runtime's list)
        elif f.kind == "namespace":
            tree.namespace(f.namespace)
        elif f.kind == "component":
            tree.component(f.namespace, f.component)
        elif f.kind in ("endpoint", "client"):
            tree.endpoint(f.namespace, f.component, f.endpoint)
    clusters = tuple(
        ClusterSnap(obj.state, obj.nats_server if obj.nats_port else "", obj.etcd_endpoints if obj.etcd_port else "",
                    obj.nats_pid, obj.etcd_pid)
        for obj in items if isinstance(obj, LocalCluster)
    )
    rt_snaps = tuple(
        RuntimeSnap(rt.name, rt.backend.kind, rt.primary_lease_id, rt.lease_ttl, rt.lease_alive, _runtime_state(rt),
                    rt.keepalives)
        for rt in runtimes
    )
    records, dropped = _merge_records(runtimes)
    return Snapshot(rt_snaps, tree.freeze(), tuple(sorted(clients, key=lambda c: (c.runtime, c.id))),
                    tuple(registries), clusters, records, focus, dropped)


def _merge_records(runtimes: Sequence[Any]) -> tuple[tuple[TaggedRecord, ...], dict[str, int]]:
    """Every runtime's records in time order (each runtime's own order kept), and how many each ring dropped."""
    streams = []
    dropped: dict[str, int] = {}
    for rt in runtimes:
        recs = tuple(rt.recorder.records)
        if recs and recs[0].seq > 1:
            dropped[rt.name] = recs[0].seq - 1
        streams.append([TaggedRecord(rt.name, rec) for rec in recs])
    if len(streams) == 1:
        return tuple(streams[0]), dropped
    return tuple(heapq.merge(*streams, key=lambda t: t.record.ts)), dropped
