"""Plain, immutable snapshots of running objects: the only thing the drawing layer ever sees.

Each object of the model describes itself here (``runtime.snapshot()``, ``served.snapshot()``,
``client.snapshot()``, ``registry.snapshot()``, ``cluster.snapshot()``) and what it contributes to a drawing
(``obj._part()``, a :class:`Part`). Every name a diagram shows — keys, subjects, service names, paths — is
computed by the object's runtime through its naming profile and carried here as data, so a drawing never
derives a name itself and draws the same on any profile. This module imports nothing but the record type.

Time travel is here too, as plain data: a runtime's state carries its earlier *frames* (the states it went
through, see :class:`~dynamo_nb.core.recorder.Recorder`), and :meth:`Part.at` turns any part into the part
it was at a past wall-clock time, so every diagram kind can draw any moment without knowing about time.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field, replace
from typing import Iterator, NamedTuple, Sequence

from .recorder import Record

__all__ = [
    "LeaseSnap",
    "SubscriptionSnap",
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
    "WorkerSnap",
    "ServiceNodeSnap",
    "GraphSnap",
    "RuntimeState",
    "TaggedRecord",
    "Focus",
    "FOCUS_KINDS",
    "Part",
    "Snapshot",
]


@dataclass(frozen=True)
class LeaseSnap:
    """An instance key's lease as etcd said at ``read_at`` (wall clock): never extrapolated, only read.

    ``lease_id`` 0 is a key with no lease (it never expires); ``time_left`` None a lease etcd no longer has.
    ``unanswered_at`` is when a call to the instance went unanswered while its key was there: the key outlived
    its process, and stays until the lease runs out.
    """

    instance_id: int
    endpoint: str
    lease_id: int
    time_left: float | None
    read_at: float
    unanswered_at: float = 0.0

    @property
    def dead(self) -> bool:
        """The key is there but its process did not answer (a call to it fails until the lease expires)."""
        return bool(self.unanswered_at)


@dataclass(frozen=True)
class InstanceSnap:
    """One live (or just stopped, or killed) endpoint instance; ``runtime`` is set when a drawn runtime serves it.

    ``lease_expires_at`` (wall-clock seconds) is when a killed instance's key will vanish with its lease;
    ``lease`` what etcd last said about that lease. ``faults`` names the faults caused on purpose that are active
    on it (``dynamo_nb.faults``).
    """

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
    lease_expires_at: float = 0.0
    faults: tuple[str, ...] = ()
    lease: LeaseSnap | None = None  # the key's lease as last read from etcd (None: not read yet)
    plane: str = ""  # the request plane that reaches it: "nats" or "tcp"
    address: str = ""  # what its etcd value tells callers: the NATS subject, or "host:port/path" on TCP
    codec: str = ""  # the body codec it advertises
    device_type: str = ""  # what a Dynamo value says it runs on ("" when the value does not say)

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
    """A component with the names its runtime's profile derives for it (seed §3.3)."""

    namespace: str
    name: str
    endpoints: tuple[EndpointSnap, ...] = ()
    etcd_path: str = ""
    service_name: str = ""
    path: str = ""


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
class SubscriptionSnap:
    """One event subscription: what it received, what waits unread, and what its full queue dropped."""

    runtime: str
    subject: str
    scope: str
    event: str
    received: int = 0
    queued: int = 0
    dropped: int = 0


@dataclass(frozen=True)
class ClientSnap:
    id: int
    runtime: str
    namespace: str
    component: str
    endpoint: str
    instance_ids: tuple[int, ...] = ()
    calls: int = 0
    silent: tuple[int, ...] = ()  # registered instances that did not answer its last call to them

    @property
    def reference(self) -> str:
        return f"{self.namespace}.{self.component}.{self.endpoint}"


@dataclass(frozen=True)
class CallSnap:
    """Calls that were made: ``count`` requests sent by one client to one instance, from one caller.

    ``caller`` is the reference of the served endpoint whose handler made the calls (``caller_instance`` its
    instance id), or empty when application code outside any handler called.
    """

    runtime: str
    client_id: int
    callee: str
    callee_instance: int
    count: int
    caller: str = ""
    caller_instance: int = 0
    last: float = 0.0


@dataclass(frozen=True)
class ServiceSnap:
    """One component's NATS service and the endpoints (and stats handlers) it carries."""

    name: str
    slug: str
    endpoints: tuple[str, ...] = ()
    stats_handlers: tuple[str, ...] = ()
    component: str = ""


@dataclass(frozen=True)
class WatcherSnap:
    """One shared etcd prefix watch and who shares it."""

    prefix: str
    sharers: tuple[tuple[int, str], ...] = ()
    instances: int = 0
    component: str = ""
    leases: tuple[LeaseSnap, ...] = ()  # each watched instance's lease, as last read from etcd


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


@dataclass(frozen=True)
class WorkerSnap:
    """One worker of a served service graph: its runtime, instance id (its lease), state and GPUs."""

    name: str
    runtime: str
    instance_id: int = 0
    state: str = ""
    gpus: tuple[int, ...] = ()


@dataclass(frozen=True)
class ServiceNodeSnap:
    """One ``@service`` class of a graph: where it registers, its endpoints, workers, resources and edges."""

    name: str
    namespace: str
    component: str
    endpoints: tuple[str, ...] = ()
    workers: tuple[WorkerSnap, ...] = ()
    wanted: int = 0  # workers asked for (config or scale())
    resources: tuple[tuple[str, str], ...] = ()
    depends: tuple[tuple[str, str], ...] = ()  # (attribute, service name) for each served dependency


@dataclass(frozen=True)
class GraphSnap:
    """A service graph served from ``entry``: its services in start order (dependencies first)."""

    entry: str
    services: tuple[ServiceNodeSnap, ...] = ()
    state: str = "running"


@dataclass(frozen=True)
class RuntimeState:
    """Everything one runtime knows at one moment: what it serves, watches and calls, and what it recorded."""

    runtime: RuntimeSnap
    served: tuple[InstanceSnap, ...] = ()
    watched: tuple[InstanceSnap, ...] = ()
    components: tuple[ComponentSnap, ...] = ()
    endpoints: tuple[tuple[str, str, str], ...] = ()
    clients: tuple[ClientSnap, ...] = ()
    calls: tuple[CallSnap, ...] = ()
    registry: RegistrySnap | None = None
    records: tuple[Record, ...] = ()
    dropped: int = 0
    subscriptions: tuple[SubscriptionSnap, ...] = ()
    events_unsent: int = 0  # events this runtime could not publish (NATS was down), each raised to its caller
    #: ``(wall-clock time, state)`` for every state this runtime went through (each without records or frames)
    frames: tuple[tuple[float, "RuntimeState"], ...] = ()

    def at(self, t: float) -> "RuntimeState | None":
        """This runtime as it was at wall-clock time ``t``: its last frame by then, with the records up to ``t``;
        None when it had no frame yet (it did not exist)."""
        cut = bisect_right(self.records, t, key=lambda r: r.ts)
        records = self.records[:cut]
        if not self.frames:
            then = replace(self, records=records)
        else:
            i = bisect_right(self.frames, t, key=lambda f: f[0])
            if i == 0:
                return None
            then = replace(self.frames[i - 1][1], records=records, dropped=self.dropped)
        object.__setattr__(then, "_cut_from", (self.records, cut))  # see records_source()
        return then

    def records_source(self) -> tuple[tuple[Record, ...], int]:
        """The records these were cut from by :meth:`at`, and how many were kept (themselves, all, otherwise).

        Drawing the same recording at many times merges and indexes its records once, then cuts."""
        cut = self.__dict__.get("_cut_from")
        return cut if cut is not None else (self.records, len(self.records))

    def instance_at(self, inst: InstanceSnap, t: float) -> InstanceSnap | None:
        """``inst`` (one of this runtime's, now) as it was at ``t``: its counters from the last frame that served
        it, its state from its own history; None before it was created."""
        history = tuple(h for h in inst.history if h[1] <= t)
        if inst.history and not history:
            return None
        then = inst
        for ts, frame in reversed(self.frames):
            if ts > t:
                continue
            found = next((s for s in frame.served if s.instance_id == inst.instance_id
                          and s.reference == inst.reference), None)
            if found is not None:
                then = found
                break
        if not history:
            return then
        state = history[-1][0]
        return replace(then, state=state, history=history, killed=state == "Killed")


class TaggedRecord(NamedTuple):
    """A recorder entry with the name of the runtime that recorded it."""

    runtime: str
    record: Record


#: What can be asked to be drawn.
FOCUS_KINDS = ("runtime", "namespace", "component", "endpoint", "instance", "client", "registry", "cluster", "graph")


@dataclass(frozen=True)
class Focus:
    """What was asked to be drawn (one of :data:`FOCUS_KINDS`), with the names that identify it.

    ``scope`` is the event scope of a namespace or component focus (its name, or its component path).
    """

    kind: str
    runtime: str = ""
    namespace: str = ""
    component: str = ""
    endpoint: str = ""
    instance_id: int = 0
    client_id: int = 0
    scope: str = ""

    def covers(self, namespace: str, component: str | None = None, endpoint: str | None = None) -> bool:
        """Whether this focus includes the given namespace / component / endpoint."""
        if self.kind in ("runtime", "registry", "cluster", "graph"):
            return True
        if self.namespace != namespace:
            return False
        if self.kind == "namespace" or component is None:
            return True
        if self.component != component:
            return False
        return self.kind == "component" or endpoint is None or self.endpoint == endpoint


@dataclass(frozen=True)
class Part:
    """What one object contributes to a drawing: what it is (``focus``) and the state it draws from.

    ``instance`` is a served instance to draw even when its runtime no longer serves it (stopped or killed);
    ``cluster`` a LocalCluster's servers; ``graph`` a served service graph; ``poll`` says the object records
    nothing, so a live view must look again from time to time rather than wait to be told.
    """

    focus: Focus
    runtimes: tuple[RuntimeState, ...] = ()
    instance: InstanceSnap | None = None
    cluster: ClusterSnap | None = None
    graph: GraphSnap | None = None
    poll: bool = False

    def at(self, t: float) -> "Part":
        """This part as it was at wall-clock time ``t`` (runtimes that did not exist yet are left out)."""
        states = {s.runtime.name: s for s in self.runtimes}
        inst = self.instance
        if inst is not None:
            owner = states.get(inst.runtime)
            inst = owner.instance_at(inst, t) if owner is not None else inst
        then = tuple(s for s in (state.at(t) for state in self.runtimes) if s is not None)
        return replace(self, runtimes=then, instance=inst)

    def times(self) -> tuple[float, ...]:
        """When each recorded event happened, in order, across this part's runtimes."""
        return tuple(sorted(r.ts for s in self.runtimes for r in s.records))


@dataclass(frozen=True)
class Snapshot:
    """Everything a diagram may draw, as plain data: several parts merged into one picture."""

    runtimes: tuple[RuntimeSnap, ...] = ()
    namespaces: tuple[NamespaceSnap, ...] = ()
    clients: tuple[ClientSnap, ...] = ()
    registries: tuple[RegistrySnap, ...] = ()
    clusters: tuple[ClusterSnap, ...] = ()
    records: Sequence[TaggedRecord] = ()  # a tuple, or merged by the drawing side on first use
    focus: tuple[Focus, ...] = ()
    dropped: dict[str, int] = field(default_factory=dict)
    calls: tuple[CallSnap, ...] = ()
    subscriptions: tuple[SubscriptionSnap, ...] = ()
    events_unsent: dict[str, int] = field(default_factory=dict)  # by runtime name
    graphs: tuple[GraphSnap, ...] = ()

    def first(self, *kinds: str) -> Focus | None:
        return next((f for f in self.focus if f.kind in kinds), None)

    def scoped(self) -> tuple[NamespaceSnap, ...]:
        """The namespace tree pruned to what the focus asks for (everything for a runtime focus)."""
        if not self.focus or any(f.kind in ("runtime", "registry", "cluster", "graph") for f in self.focus):
            return self.namespaces  # everything is covered: the tree as it is (its parts shared between frames)
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
                comps.append(ComponentSnap(comp.namespace, comp.name, eps, comp.etcd_path, comp.service_name,
                                           comp.path))
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

    def component(self, namespace: str, name: str) -> ComponentSnap | None:
        for ns in self.namespaces:
            if ns.name == namespace:
                return next((c for c in ns.components if c.name == name), None)
        return None

    def runtime(self, name: str) -> RuntimeSnap | None:
        return next((r for r in self.runtimes if r.name == name), None)
