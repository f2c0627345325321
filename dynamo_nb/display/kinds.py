"""The diagram kinds: each a pure function from a :class:`~.snapshot.Snapshot` to a diagram model.

Every kind redraws one figure of the source document from the running system or from its recorded traffic:

- ``hierarchy``: namespaces as boxes holding their components, endpoints and live instances, and the calls that
  were really made between instances (§1, §2.1)
- ``structure``: a class diagram with the real names and derived paths (§3.1, §3.3)
- ``reference``: an endpoint reference split into namespace / component / endpoint, with instance keys (§4.2)
- ``startup``: the recorded start of one instance: Registry, NATS, then ``par`` kv_create / listen (§4.4)
- ``registry``: services, shared watchers, stats handlers, and the same counts without a registry (§5.1, §5.3)
- ``lifecycle``: the state machine with the current state marked and visited states shaded (§6.1)
- ``sequence``: the recorded life of one instance: lease, register, keep-alive loop, stop, revoke (§6.2)
- ``pubsub``: recorded subscriptions, publishes (with data), deliveries and handling, with subjects (§3.4)
- ``topology``: runtimes and the etcd / NATS servers they use (a LocalCluster, or the embedded world)
- ``graph``: a served ``@service`` graph: services, ``depends`` edges, workers, resources, endpoints (§7.2, §7.3)

A figure draws only what the snapshot says happened: call arrows come from recorded calls, lifecycle edges from
the state machine itself, names from what the runtime's profile derived. Large systems stay readable: every list
is cut at a limit (:class:`Limits`, settable per figure or process-wide with :func:`set_limits`) and the rest is
drawn as one "+N more" node (never for a single item), so a figure costs the same for ten endpoints or ten
thousand.
"""

from __future__ import annotations

import json
import time
import weakref
from bisect import bisect_left, bisect_right
from itertools import accumulate, compress, repeat
from operator import attrgetter, eq, not_
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, NamedTuple, Sequence

from ..core.lifecycle import LABELS, SEED_EDGES, TRANSITIONS, State
from ..core.recorder import Kind
from .model import (
    START,
    Block,
    ClassBox,
    ClassModel,
    Flow,
    Message,
    Model,
    Note,
    Relation,
    SequenceModel,
    StateModel,
    Step,
    Transition,
)
from ..core.snapshot import LeaseSnap
from .snapshot import (Columns, ComponentSnap, EndpointSnap, InstanceSnap, RuntimeSnap, Snapshot, TaggedRecord,
                       derived, matching, of_kinds)

__all__ = ["Limits", "set_limits", "default_limits", "KINDS", "DEFAULT_KIND", "build", "default_kind", "hex_id",
           "shown"]


@dataclass(frozen=True)
class Limits:
    """How much of a large system one figure shows before collapsing the rest into "+N more".

    Each field caps one list: ``namespaces`` per figure, ``components`` per namespace, ``endpoints`` per
    component, ``instances`` per endpoint, ``clients`` (callers drawn), ``nodes`` (a flowchart's whole budget:
    past it, instances are summarised per endpoint), ``classes`` (class-diagram boxes), ``references``
    (endpoints in a reference figure), ``steps`` (sequence steps), ``messages`` (pub/sub messages),
    ``comparisons`` (rows of the without/with-registry comparison), ``registries``, ``services`` and
    ``runtimes``. A list one item over its cap is drawn whole: "+1 more" would hide what it saves room for.
    """

    namespaces: int = 6
    components: int = 8
    endpoints: int = 4
    instances: int = 4
    clients: int = 6
    nodes: int = 60
    classes: int = 20
    references: int = 4
    steps: int = 40
    messages: int = 24
    comparisons: int = 3
    registries: int = 4
    services: int = 5
    runtimes: int = 8

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Limits.{f.name} must be a positive int, got {value!r}")


_default_limits = Limits()


def default_limits() -> Limits:
    """The limits figures use when none are given (see :func:`set_limits`)."""
    return _default_limits


def set_limits(limits: Limits | None = None, **changes: int) -> Limits:
    """Set the process-wide default limits: ``set_limits(instances=10)``, or ``set_limits(Limits(...))``;
    ``set_limits()`` restores the defaults. Returns the limits now in force."""
    global _default_limits
    base = limits if limits is not None else (Limits() if not changes else _default_limits)
    _default_limits = replace(base, **changes) if changes else base
    return _default_limits


def shown(count: int, limit: int) -> int:
    """How many of ``count`` items to draw under ``limit``: all of them when only one would be left over.

    >>> shown(4, 3), shown(5, 3), shown(2, 3)
    (4, 3, 2)
    """
    return count if count <= limit + 1 else limit


def hex_id(value: int) -> str:
    """Instance and lease ids are shown in hex, as in keys and subjects."""
    return f"{value:x}"


#: lifecycle state → node style; the colour key of every figure that colours instances by state
STATE_STYLE = {
    State.CREATED.value: "starting", State.REGISTERED.value: "starting", State.RUNNING.value: "starting",
    State.HEALTHY.value: "healthy", State.STOPPING.value: "stopping", State.DEREGISTERED.value: "stopping",
    State.KILLED.value: "killed",
}

#: what each instance colour means, for the key drawn beside figures that use them
STYLE_MEANING = {
    "starting": "starting or not yet healthy",
    "healthy": "Healthy",
    "stopping": "stopping or stopped",
    "killed": "killed: key stays until its lease expires",
    "fault": "a fault caused on purpose, or etcd lists it and it does not answer",
    "remote": "seen in etcd (served elsewhere)",
}


def _instance_style(inst: InstanceSnap, silent: frozenset[int] = frozenset()) -> str:
    if inst.killed or (inst.lease is not None and inst.lease.dead):
        return "killed"
    if inst.faults or inst.instance_id in silent:
        return "fault"
    if not inst.runtime:
        return "remote"
    return STATE_STYLE.get(inst.state, "starting")


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def _instance_status(inst: InstanceSnap, silent: frozenset[int] = frozenset()) -> str:
    lease = f"\n{lease_line(inst.lease)}" if inst.lease is not None else ""
    if inst.killed:
        until = f" at {_clock(inst.lease_expires_at)}" if inst.lease_expires_at else ""
        return f"Killed · {inst.runtime} · key stays until its lease expires{until}{lease}"
    faults = "".join(f"\n⚠ {fault}" for fault in inst.faults)
    if "keep-alive paused" in inst.faults and inst.lease_expires_at:
        faults += f": lease ends {_clock(inst.lease_expires_at)}"
    if inst.instance_id in silent:
        faults += "\n⚠ in etcd, but did not answer a client"
    if inst.runtime:
        seen = "" if not inst.faults else (" · in etcd" if inst.seen_by else " · not in etcd")
        return f"{inst.state} · {inst.runtime}{seen}{lease}{faults}"
    seen = ", ".join(inst.seen_by[:2]) + (" …" if len(inst.seen_by) > 2 else "")
    return (f"live in etcd · seen by {seen}" if seen else "live in etcd") + lease + faults


def lease_line(lease: LeaseSnap) -> str:
    """An instance's lease as etcd last said it, with when: a reading, never a guess."""
    if not lease.lease_id:
        text = "no lease: the key never expires"
    else:
        # an instance id is its lease id on a runtime's primary lease: name the lease only when it differs
        which = "lease" if lease.lease_id == lease.instance_id else f"lease {hex_id(lease.lease_id)}"
        text = f"{which} gone" if lease.time_left is None else (
            f"{which}: {lease.time_left:.0f} s left at {_clock(lease.read_at)}")
    if lease.dead:
        text += f"\nno answer at {_clock(lease.unanswered_at)}: key outlived its process"
    return text


def _lease(rt: RuntimeSnap) -> str:
    return f"lease {hex_id(rt.lease_id)}" if rt.lease_alive else "no lease"


def _more(count: int, what: str, extra: str = "") -> str:
    return f"+{count} more {what}" + (f" · {extra}" if extra else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


class _Facts(NamedTuple):
    """What figures count over one component's instances, worked out once per component snapshot: a merge keeps
    the snapshots of components where nothing changed, so a redraw counts again only where something did."""

    size: int  # the component, its endpoints and their instances: nodes a full hierarchy would draw
    users: tuple[str, ...]  # runtimes serving or seeing its instances, in the order they first appear
    served: tuple[tuple[str, int], ...]  # instances each runtime serves, by runtime in order of appearance


#: component snapshot id → (a weak reference to it, its facts): kept while the snapshot lives (a figure or a
#: merge holds it), forgotten with it
_FACTS: dict[int, tuple["weakref.ref[ComponentSnap]", _Facts]] = {}


def _facts(comp: ComponentSnap) -> _Facts:
    kept = _FACTS.get(id(comp))
    if kept is not None and kept[0]() is comp:
        return kept[1]
    users: dict[str, None] = {}
    served: dict[str, int] = {}
    size = 1 + len(comp.endpoints)
    for ep in comp.endpoints:
        size += len(ep.instances)
        for inst in ep.instances:
            if inst.runtime:
                users[inst.runtime] = None
                served[inst.runtime] = served.get(inst.runtime, 0) + 1
            for who in inst.seen_by:
                if who:
                    users[who] = None
    facts = _Facts(size, tuple(users), tuple(served.items()))
    key = id(comp)
    # the callback runs before the snapshot's memory (and so its id) can be used again
    _FACTS[key] = (weakref.ref(comp, lambda _: _FACTS.pop(key, None)), facts)
    return facts


def _component_names(snap: Snapshot, comp: ComponentSnap) -> ComponentSnap:
    """The component with its derived names (a snapshot built by hand may leave them out)."""
    if comp.service_name:
        return comp
    found = snap.component(comp.namespace, comp.name)
    return found if found is not None and found.service_name else comp


def _legend(flow: Flow, styles: set[str], cluster: str | None = None) -> None:
    """A colour key for the instance states a figure uses (only when colour carries state)."""
    used = [s for s in STYLE_MEANING if s in styles]
    if not used:
        return
    key = flow.cluster("legend", "colour key", parent=cluster)
    for style in used:
        flow.node(f"legend:{style}", STYLE_MEANING[style], shape="stadium", style=style, cluster=key)


# ------------------------------------------------------------------------------------------------ hierarchy
#: boxes laid side by side before the next one starts a new row (a notebook column holds about three)
_SIDE_BY_SIDE = 3


def hierarchy(snap: Snapshot, limits: Limits) -> Flow:
    """Seed §1/§2.1: each namespace a box holding its components; in each component its endpoints and their live
    instances; dashed arrows only for calls that were made (from the recorded calls), with their counts.

    When the whole tree would not fit in ``limits.nodes``, each endpoint's instances become one summary node
    and fewer components and endpoints are listed before "+N more".
    """
    flow = Flow("TB", fit=False)  # it fits by stacking the namespace boxes
    budget = [limits.nodes]

    def room() -> bool:
        return budget[0] > 0

    def node(key: str, *lines: str, **kw: Any) -> str:
        budget[0] -= 1
        return flow.node(key, *lines, **kw)

    scoped = snap.scoped()
    size = sum(_facts(c).size for n in scoped for c in n.components)
    compact = size + len(scoped) > limits.nodes
    max_components = min(limits.components, 4) if compact else limits.components
    max_endpoints = min(limits.endpoints, 3) if compact else limits.endpoints
    handles_only = bool(snap.focus) and all(f.kind in ("namespace", "component", "endpoint") for f in snap.focus)
    places: dict[tuple[str, int], str] = {}  # (endpoint reference, instance id) → node drawing it
    ep_keys: dict[str, str] = {}
    silent = frozenset(i for client in snap.clients for i in client.silent)  # listed by etcd, did not answer
    styles: set[str] = set()
    n_ns = shown(len(scoped), limits.namespaces)
    boxes: list[str] = []
    for ns in scoped[:n_ns]:
        if not room():
            break
        # A handle drawn on its own is the seed's §1 figure: say what the boxes mean ("contains many"). As in the
        # seed's §2.1, namespaces stand side by side and a chain of calls runs top to bottom inside each.
        # (said explicitly: Mermaid turns a box with no link to the outside sideways unless told its direction)
        ns_cl = flow.cluster(f"ns:{ns.name}", f"Namespace: {ns.name}"
                             + (" · contains many components" if handles_only else ""), direction="TB")
        if len(boxes) >= _SIDE_BY_SIDE:
            flow.stack(boxes[-_SIDE_BY_SIDE], ns_cl)  # a new row of namespaces below the first ones
        boxes.append(ns_cl)
        comp_boxes: list[str] = []
        if not ns.components:
            node(f"none:{ns.name}", "no components known yet", style="more", cluster=ns_cl)
        n_comp = shown(len(ns.components), max_components)
        for comp in ns.components[:n_comp]:
            if not room():
                break
            comp = _component_names(snap, comp)
            c_cl = flow.cluster(f"c:{ns.name}/{comp.name}", f"Component {comp.name}"
                                + (" · contains many endpoints" if handles_only else ""), parent=ns_cl,
                                direction="TB")
            if len(comp_boxes) >= _SIDE_BY_SIDE:
                flow.stack(comp_boxes[-_SIDE_BY_SIDE], c_cl)  # components that do not call each other: rows
            comp_boxes.append(c_cl)
            if not comp.endpoints:
                node(f"none:{ns.name}/{comp.name}", "no endpoint known yet", style="more", cluster=c_cl)
            n_ep = shown(len(comp.endpoints), max_endpoints)
            for ep in comp.endpoints[:n_ep]:
                e_key = node(f"e:{ep.reference}", f"Endpoint {ep.name}", style="endpoint", cluster=c_cl)
                ep_keys[ep.reference] = e_key
                if not ep.instances:
                    flow.edge(e_key, node(f"none:{ep.reference}", "no live instance", style="more", cluster=c_cl))
                elif compact:
                    key = _instance_summary(node, ep, c_cl)
                    flow.edge(e_key, key)
                    places.update({(ep.reference, i.instance_id): key for i in ep.instances})
                    styles.update(_instance_style(i) for i in ep.instances)
                else:
                    _instances(flow, node, e_key, ep, limits, c_cl, places, styles, silent)
            if n_ep < len(comp.endpoints):
                rest_e = comp.endpoints[n_ep:]
                node(f"more:e:{ns.name}/{comp.name}", _more(len(rest_e), "endpoints", _plural(
                    sum(len(e.instances) for e in rest_e), "instance")), style="more", cluster=c_cl)
        if n_comp < len(ns.components):
            rest_c = ns.components[n_comp:]
            node(f"more:c:{ns.name}", _more(len(rest_c), "components", _plural(
                sum(len(c.endpoints) for c in rest_c), "endpoint")), style="more", cluster=ns_cl)
    if n_ns < len(scoped):
        rest = scoped[n_ns:]
        node("more:ns", _more(len(rest), "namespaces", _plural(sum(len(n.components) for n in rest), "component")),
             style="more")
    _calls(flow, snap, places, ep_keys, limits)
    if not scoped and not flow.graph.number_of_nodes():
        for rt in snap.runtimes[: limits.runtimes]:
            flow.node(f"rt:{rt.name}", f"DistributedRuntime {rt.name}", f"{_lease(rt)} · {rt.state}",
                      "nothing served, watched or called yet", shape="stadium", style="runtime")
        if not snap.runtimes:
            flow.node("empty", "nothing to draw yet", style="more")
    _legend(flow, styles)
    return flow


def _instances(flow: Flow, node: Callable[..., str], e_key: str, ep: EndpointSnap, limits: Limits, cluster: str,
               places: dict[tuple[str, int], str], styles: set[str], silent: frozenset[int] = frozenset()) -> None:
    n = shown(len(ep.instances), limits.instances)
    for inst in ep.instances[:n]:
        key = node(f"i:{ep.reference}:{inst.instance_id}", f"instance {hex_id(inst.instance_id)}",
                   _instance_status(inst, silent), shape="stadium", style=_instance_style(inst, silent),
                   cluster=cluster)
        flow.edge(e_key, key)
        places[(ep.reference, inst.instance_id)] = key
        styles.add(_instance_style(inst, silent))
    if n < len(ep.instances):
        more = node(f"more:i:{ep.reference}", _more(len(ep.instances) - n, "instances"), style="more", cluster=cluster)
        flow.edge(e_key, more)
        for inst in ep.instances[n:]:
            places[(ep.reference, inst.instance_id)] = more
            styles.add(_instance_style(inst))


def _instance_summary(node: Callable[..., str], ep: EndpointSnap, cluster: str) -> str:
    """One node for all of an endpoint's instances: how many, a few ids, and their states."""
    ids = " · ".join(hex_id(i.instance_id) for i in ep.instances[:3]) + (" …" if len(ep.instances) > 3 else "")
    states: dict[str, int] = {}
    for inst in ep.instances:
        label = State.KILLED.value if inst.killed else (inst.state or "live in etcd")
        states[label] = states.get(label, 0) + 1
    styles = {_instance_style(i) for i in ep.instances}
    return node(f"is:{ep.reference}", _plural(len(ep.instances), "instance"), ids,
                ", ".join(f"{n} {state}" for state, n in states.items()), shape="stadium",
                style=styles.pop() if len(styles) == 1 else "starting", cluster=cluster)


def _calls(flow: Flow, snap: Snapshot, places: dict[tuple[str, int], str], ep_keys: dict[str, str],
           limits: Limits) -> None:
    """Dashed arrows for the calls that were made: from the calling instance (a handler that called), or from the
    runtime whose application code called, to the instance that answered; one arrow per pair, with the count."""
    focus_clients = {f.client_id for f in snap.focus if f.kind == "client"}
    arrows: dict[tuple[str, str], list[Any]] = {}
    callers: dict[str, str] = {}
    for call in snap.calls:
        if focus_clients and call.client_id not in focus_clients:
            continue
        target = places.get((call.callee, call.callee_instance))
        gone = target is None  # the instance that answered is no longer live: point at its endpoint
        target = target or ep_keys.get(call.callee)
        if target is None:
            continue
        if call.caller:
            source = places.get((call.caller, call.caller_instance)) or ep_keys.get(call.caller)
            if source is None:
                continue
        else:
            source = callers.get(call.runtime)
            if source is None:
                if len(callers) >= limits.clients:
                    continue
                rt = snap.runtime(call.runtime)
                source = callers[call.runtime] = flow.node(
                    f"app:{call.runtime}", f"{call.runtime} (application code)",
                    f"DistributedRuntime · {_lease(rt)}" if rt else "DistributedRuntime", shape="stadium",
                    style="client")
        slot = arrows.setdefault((source, target), [0, set(), set()])
        slot[0] += call.count
        slot[1].add(call.client_id)
        if gone:
            slot[2].add(call.callee_instance)
    for (source, target), (count, clients, gone_ids) in arrows.items():
        via = ", ".join(f"client#{c}" for c in sorted(clients)[:3]) + (" …" if len(clients) > 3 else "")
        past = f"\nto {_plural(len(gone_ids), 'instance')} no longer live" if gone_ids else ""
        flow.edge(source, target, f"calls ×{count}\nvia {via}{past}", dashed=True)
    for client in snap.clients:
        if client.id in focus_clients and client.calls == 0 and client.reference in ep_keys:
            key = flow.node(f"client:{client.id}", f"client#{client.id} · {client.runtime}",
                            f"watches {_plural(len(client.instance_ids), 'instance')} · no call yet",
                            shape="stadium", style="client")
            flow.edge(key, ep_keys[client.reference], "watches", dashed=True)


# ------------------------------------------------------------------------------------------------ structure
def structure(snap: Snapshot, limits: Limits) -> ClassModel:
    """Seed §3.1/§3.3: the object model as a class diagram, with real names and derived paths."""
    model = ClassModel(direction="TB")
    count = [0]

    def box(key: str, title: str, attributes: list[str], methods: list[str], style: str) -> bool:
        if count[0] >= limits.classes:
            return False
        count[0] += 1
        model.classes.append(ClassBox(key, title, attributes, methods, style))
        return True

    def more(parent: str, key: str, n: int, what: str) -> None:
        model.classes.append(ClassBox(key, _more(n, what), [], [], "more"))
        model.relations.append(Relation(parent, key, "1", "*"))

    scoped = snap.scoped()
    runtime_focus = [rt for rt in snap.runtimes if any(f.kind == "runtime" for f in snap.focus)]
    users: dict[str, list[str]] = {}
    for ns in snap.namespaces:
        for comp in ns.components:
            seen = users.setdefault(ns.name, [])
            seen.extend(who for who in _facts(comp).users if who not in seen)
    for client in snap.clients:
        if client.runtime not in users.setdefault(client.namespace, []):
            users[client.namespace].append(client.runtime)
    for rt in runtime_focus:
        box(f"rt:{rt.name}", f"DistributedRuntime {rt.name}",
            [f"-backend: {rt.backend}", f"-primary_lease: {hex_id(rt.lease_id)} (TTL {rt.lease_ttl:g} s)"],
            ["+namespace(name) Namespace", "+endpoint(reference) Endpoint"], "runtime")
    for ni, ns in enumerate(scoped):
        ns_key = f"ns:{ns.name}"
        if ni >= limits.namespaces or not box(ns_key, f"Namespace {ns.name}", [
                f"-runtime: {', '.join(users.get(ns.name, [])) or '-'}", f"-name: {ns.name}"],
                ["+component(name) Component", "+event_subject(event) String"],
                "nspace"):
            break
        for rt in runtime_focus:
            if rt.name in users.get(ns.name, ()):
                model.relations.append(Relation(f"rt:{rt.name}", ns_key, "1", "*"))
        for ci, comp in enumerate(ns.components):
            comp = _component_names(snap, comp)
            c_key = f"c:{ns.name}/{comp.name}"
            if ci >= limits.components or not box(c_key, f"Component {comp.name}",
                                                  [f"-namespace: {ns.name}", f"-name: {comp.name}"],
                                                  ["+endpoint(name) Endpoint", f"+etcd_path() {comp.etcd_path}",
                                                   f"+service_name() {comp.service_name}", f"+path() {comp.path}"],
                                                  "component"):
                more(ns_key, f"more:c:{ns.name}", len(ns.components) - ci, "components")
                break
            model.relations.append(Relation(ns_key, c_key, "1", "*"))
            for ei, ep in enumerate(comp.endpoints):
                e_key = f"e:{ep.reference}"
                if ei >= limits.endpoints or not box(e_key, f"Endpoint {ep.name}",
                                                     [f"-component: {comp.name}", f"-name: {ep.name}"],
                                                     [f"+reference() {ep.reference}", "+client() Client",
                                                      "+endpoint_builder() EndpointBuilder"], "endpoint"):
                    more(c_key, f"more:e:{ns.name}/{comp.name}", len(comp.endpoints) - ei, "endpoints")
                    break
                model.relations.append(Relation(c_key, e_key, "1", "*"))
                for ii, inst in enumerate(ep.instances):
                    i_key = f"i:{ep.reference}:{inst.instance_id}"
                    # key and subject are long and a class box cannot wrap them: the reference figure shows them
                    attrs = [f"+instance_id: {hex_id(inst.instance_id)}"]
                    if inst.runtime:
                        # the state in words, beside the colour that shows it (a class diagram has no room for a key)
                        attrs.append(f"+state: {inst.state} on {inst.runtime}")
                    title = f"Instance {hex_id(inst.instance_id)} of {ep.name}"  # endpoints of one runtime share it
                    if ii >= limits.instances or not box(i_key, title, attrs, [], _instance_style(inst)):
                        more(e_key, f"more:i:{ep.reference}", len(ep.instances) - ii, "instances")
                        break
                    model.relations.append(Relation(e_key, i_key, "1", "*"))
    if not model.classes:
        model.classes.append(ClassBox("empty", "nothing known yet", [], [], "more"))
    return model


# ------------------------------------------------------------------------------------------------ reference
def reference(snap: Snapshot, limits: Limits) -> Flow:
    """Seed §4.2: ``namespace.Component.endpoint`` split into its parts, with each live instance's key/subject."""
    flow = Flow("LR")
    endpoints = [(_component_names(snap, comp), ep) for ns in snap.scoped() for comp in ns.components
                 for ep in comp.endpoints]
    for i, (comp, ep) in enumerate(endpoints):
        if i >= limits.references:
            flow.node("more:refs", _more(len(endpoints) - i, "endpoints"), style="more")
            break
        cl = flow.cluster(f"ref:{ep.reference}", f"endpoint reference {ep.reference}", direction="LR")
        ns_key = flow.node(f"ns:{ep.reference}", f"Namespace {ep.namespace}", style="nspace", cluster=cl)
        c_key = flow.node(f"c:{ep.reference}", f"Component {ep.component}",
                          f"etcd_path {comp.etcd_path}", f"service_name {comp.service_name}",
                          style="component", cluster=cl)
        e_key = flow.node(f"e:{ep.reference}", f"Endpoint {ep.name}", style="endpoint", cluster=cl)
        flow.edge(ns_key, c_key)
        flow.edge(c_key, e_key)
        for ii, inst in enumerate(ep.instances):
            if ii >= limits.instances:
                flow.edge(e_key, flow.node(f"more:i:{ep.reference}", _more(len(ep.instances) - ii, "instances"),
                                           style="more", cluster=cl))
                break
            i_key = flow.node(f"i:{ep.reference}:{inst.instance_id}",
                              f"instance {hex_id(inst.instance_id)} · {_instance_status(inst)}",
                              f"etcd key {inst.key}", _reached_by(inst),
                              style=_instance_style(inst), cluster=cl)
            flow.edge(e_key, i_key)
    if not endpoints:
        flow.node("empty", "no endpoint known yet", style="more")
    return flow


def _reached_by(inst: InstanceSnap) -> str:
    """How callers reach an instance, as its etcd value says: plane and address, body codec, device."""
    plane = "TCP" if inst.plane == "tcp" else "NATS subject"
    extra = "".join(f" · {x}" for x in (inst.codec, inst.device_type) if x)
    return f"{plane} {inst.address or inst.subject}{extra}"


# ------------------------------------------------------------------------------------------ record helpers
def _target(snap: Snapshot) -> InstanceSnap | None:
    """The instance a sequence or lifecycle is about: the focused one, else the latest served one in focus."""
    focus = snap.first("instance")
    if focus is not None:
        ref = f"{focus.namespace}.{focus.component}.{focus.endpoint}"
        comp = snap.component(focus.namespace, focus.component)
        eps = [e for e in comp.endpoints if e.name == focus.endpoint] if comp is not None else []
        found = [i for e in eps for i in e.instances if i.instance_id == focus.instance_id and i.reference == ref
                 and i.runtime == focus.runtime]
        if found:
            return found[0]
    served = [i for ns in snap.scoped() for c in ns.components for e in c.endpoints for i in e.instances if i.runtime]
    if served:
        return max(served, key=lambda i: i.history[0][1] if i.history else 0.0)
    return None


def _latest_ready(snap: Snapshot) -> tuple[str, dict[str, Any]] | None:
    """(runtime, detail) of the latest registration in focus, for instances no longer served."""
    scopes = snap.scoped()
    refs = {e.reference for ns in scopes for c in ns.components for e in c.endpoints}
    # a whole runtime in focus: any instance it ever started counts, even one no longer served
    anywhere = not snap.focus or any(f.kind == "runtime" for f in snap.focus)
    for tagged in reversed(snap.records):
        rec, d = tagged.record, tagged.record.detail
        if rec.kind == Kind.KV_CREATE and rec.actor == "EndpointBuilder" and "endpoint" in d:
            ref = f"{d['namespace']}.{d['component']}.{d['endpoint']}"
            if anywhere or ref in refs:
                return tagged.runtime, {"reference": ref, "key": d.get("key", ""), "subject": d.get("subject", ""),
                                        "lease_id": d.get("lease_id", 0)}
    return None


@dataclass(frozen=True)
class _Who:
    """Which records belong to one instance: its runtime, endpoint reference, lease, key and subject."""

    runtime: str
    reference: str
    lease_id: int
    key: str
    subject: str

    @classmethod
    def of(cls, snap: Snapshot) -> "_Who | None":
        inst = _target(snap)
        if inst is not None:
            return cls(inst.runtime, inst.reference, inst.instance_id, inst.key, inst.subject)
        found = _latest_ready(snap)
        if found is None:
            return None
        runtime, d = found
        return cls(runtime, d["reference"], int(d["lease_id"]), d["key"], d["subject"])

    def positions(self, records: Sequence[TaggedRecord], groups: Sequence[list[int]] | None) -> list[int]:
        """Where :meth:`owns` is true. From the records' groups when they were grouped ahead (see
        :func:`~.snapshot.groups_of`): of another runtime, only watch records can be this instance's; keep-alives,
        requests and responses (nearly every record of a busy instance) are by what their group shares, so its first
        record answers for all of it; the rest are asked one by one. Else in one pass: requests and responses
        matched inline, the rest asked of :meth:`owns`."""
        runtime, owns, found = self.runtime, self.owns, []
        if groups is None:
            lease_id, reference = self.lease_id, self.reference
            request, response = Kind.REQUEST, Kind.RESPONSE
            return [i for i, t in enumerate(records)
                    if (owns(t) if (r := t.record).kind is not request and r.kind is not response
                        else r.detail.get("instance_id") == lease_id and t.runtime == runtime
                        and (r.actor == reference or r.target == reference))]
        for where in groups:
            first = records[where[0]]
            kind = first.record.kind
            if kind in _COUNTED or (first.runtime != runtime and kind not in _WATCHED):
                if owns(first):
                    found.extend(where)
            else:
                found.extend(compress(where, map(owns, map(records.__getitem__, where))))
        found.sort()
        return found

    def owns(self, tagged: TaggedRecord) -> bool:
        rec, d = tagged.record, tagged.record.detail
        if tagged.runtime != self.runtime:
            return rec.kind in (Kind.WATCH_PUT, Kind.WATCH_DELETE) and d.get("key") == self.key
        kind = rec.kind
        if kind is Kind.REQUEST or kind is Kind.RESPONSE:  # most records of a busy instance: asked first
            return d.get("instance_id") == self.lease_id and self.reference in (rec.actor, rec.target)
        if kind == Kind.LIFECYCLE:
            return rec.actor == self.reference and d.get("instance_id", self.lease_id) in (self.lease_id, 0)
        if kind == Kind.START:
            return d.get("endpoint") == self.reference
        if kind == Kind.REGISTRY_SERVICE:
            return d.get("endpoint", self.reference) == self.reference
        if kind in (Kind.SERVICE_ENDPOINT, Kind.PUSH_ENDPOINT, Kind.LISTEN, Kind.READY, Kind.UNLISTEN):
            return d.get("subject") == self.subject
        if kind in (Kind.KV_CREATE, Kind.KV_DELETE):
            return d.get("key") == self.key
        if kind in (Kind.LEASE_GRANT, Kind.LEASE_KEEPALIVE, Kind.LEASE_REVOKE, Kind.LEASE_LOST):
            return d.get("lease_id") == self.lease_id
        if kind in (Kind.REQUEST, Kind.RESPONSE, Kind.STOP, Kind.KILL):
            return d.get("instance_id") == self.lease_id and self.reference in (rec.actor, rec.target)
        if kind == Kind.DRAIN:
            return rec.actor == self.reference and d.get("instance_id", self.lease_id) == self.lease_id
        if kind == Kind.FAULT:  # on this instance, on its lease, or on a server everything uses
            return self.lease_id in (d.get("instance_id"), d.get("lease_id")) or "server" in d
        return False


_COUNTED = frozenset({Kind.LEASE_KEEPALIVE, Kind.REQUEST, Kind.RESPONSE})
_UNCOUNTED = frozenset(Kind) - _COUNTED
_WATCHED = frozenset({Kind.WATCH_PUT, Kind.WATCH_DELETE})
_KIND, _DETAIL = attrgetter("record.kind"), attrgetter("record.detail")
_FINE = frozenset({None, "ok", "complete"})  # outcomes that are not errors


def _answered(items: list[Any], outcomes: list[Any]) -> tuple[Sequence[int], Sequence[int | bool]]:
    """The items and the errors (0 or 1) of each response, from the ``items`` and ``outcome`` each carries: worked
    out in C when they are plain ints and strings (always, as recorded), else one by one."""
    if not set(map(type, items)) <= {int}:
        items = [int(n or 0) for n in items]
    if set(map(type, outcomes)) <= {str, type(None)}:
        return items, list(map(not_, map(_FINE.__contains__, outcomes)))  # bools: summed as 0 and 1
    return items, [int(o not in (None, "ok", "complete")) for o in outcomes]  # any value, hashable or not


class _Run(NamedTuple):
    """Consecutive keep-alives, requests and responses of one instance, summed: a busy instance makes thousands,
    and a figure draws them as counts."""

    keepalives: int
    requests: int
    responses: int
    items: int
    errors: int


class _Owned:
    """One instance's records (``_Who.owns``), with what drawing any stretch of them needs worked out ahead: where
    the runs of counted records break, where each keep-alive, request and response is (a run's counts are then two
    bisects each), running sums of the responses' items and errors, where each ``Created`` and registration is.
    Built once per merge of records (see :func:`~.snapshot.derived`), so drawing a recording at any time cuts it;
    carried to a live system's next merge by :meth:`advance` (the oldest records dropped, new ones appended).

    Indexes are absolute (``origin`` is where the records still held start), so dropping costs nothing."""

    def __init__(self, who: _Who) -> None:
        self.who = who
        self.origin = 0
        self.mine: list[TaggedRecord] = []
        self.breaks: list[int] = []  # records that are not counted: where each run ends
        self.at: tuple[list[int], list[int], list[int]] = ([], [], [])  # keep-alives, requests, responses
        self.answered: tuple[list[int], list[int]] = ([0], [0])  # items and errors, summed over the responses
        self.created: list[int] = []
        self.registered: list[int] = []

    @classmethod
    def of(cls, who: _Who, mine: Sequence[TaggedRecord]) -> "_Owned":
        owned = cls(who)
        owned._extend(mine)
        return owned

    @classmethod
    def of_held(cls, who: _Who, mine: list[TaggedRecord], found: list[int], merge: Columns) -> "_Owned":
        """:meth:`of`, reading kinds, items and outcomes from a loaded recording's columns (``found``: where
        ``mine`` are in it) rather than from each record."""
        owned = cls(who)
        kinds = list(map(merge.kinds().__getitem__, found))
        responses = list(compress(found, map(eq, kinds, repeat(Kind.RESPONSE))))
        items, outcomes = merge.detail("items"), merge.detail("outcome")
        owned._index(mine, kinds, list(map(items.__getitem__, responses)), list(map(outcomes.__getitem__, responses)))
        return owned

    def _extend(self, records: Sequence[TaggedRecord]) -> None:
        kinds = list(map(_KIND, records))
        details = list(map(_DETAIL, compress(records, map(eq, kinds, repeat(Kind.RESPONSE)))))
        self._index(records, kinds, [d.get("items") for d in details], [d.get("outcome") for d in details])

    def _index(self, records: Sequence[TaggedRecord], kinds: list[Kind], items: list[Any], outcomes: list[Any]
               ) -> None:
        """Append ``records`` (of these kinds; ``items`` and ``outcomes``: those of their responses)."""
        # In whole-list passes that run in C (map, compress) rather than one loop with branches per record: a
        # recording's first figure indexes thousands of records, nearly all of them requests and responses.
        # Another runtime's records here are watch records (see _Who.owns): never counted, whatever their kind.
        created = State.CREATED.value
        base = len(self.mine)
        every = range(base, base + len(records))
        breaks = list(compress(every, map(_UNCOUNTED.__contains__, kinds)))
        for i in breaks:
            rec = records[i - base].record
            if rec.kind == Kind.LIFECYCLE and rec.detail.get("state") == created:
                self.created.append(i)
            elif rec.kind == Kind.KV_CREATE:
                self.registered.append(i)
        self.breaks.extend(breaks)
        for where, counted in zip(self.at, (Kind.LEASE_KEEPALIVE, Kind.REQUEST, Kind.RESPONSE), strict=True):
            if counted in kinds:
                where.extend(compress(every, map(eq, kinds, repeat(counted))))
        for column, share in zip(self.answered, _answered(items, outcomes), strict=True):
            column.extend(accumulate(share, initial=column[-1]))
            del column[-len(share) - 1]  # accumulate repeats the start, already there
        self.mine.extend(records)

    def advance(self, dropped: int, added: Sequence[TaggedRecord]) -> "_Owned":
        """A copy with the oldest ``dropped`` records gone and ``added`` appended."""
        new = _Owned(self.who)
        new.origin = self.origin + dropped
        if new.origin > len(self.mine) // 2:  # rebase, so what was dropped does not pile up
            cut = new.origin
            new.origin = 0
            new.mine = self.mine[cut:]
            keepalives, requests, responses = ([i - cut for i in xs[bisect_left(xs, cut):]] for xs in self.at)
            gone = bisect_left(self.at[2], cut)  # responses dropped: their sums stay below what is held
            new.at = (keepalives, requests, responses)
            new.answered = (self.answered[0][gone:], self.answered[1][gone:])
            new.breaks, new.created, new.registered = ([i - cut for i in xs[bisect_left(xs, cut):]]
                                                       for xs in (self.breaks, self.created, self.registered))
        else:
            new.mine = self.mine.copy()
            new.at = (self.at[0].copy(), self.at[1].copy(), self.at[2].copy())
            new.answered = (self.answered[0].copy(), self.answered[1].copy())
            new.breaks, new.created, new.registered = self.breaks.copy(), self.created.copy(), self.registered.copy()
        new._extend(added)
        return new

    def count(self) -> int:
        return len(self.mine) - self.origin

    def first_registered(self, limit: int) -> int | None:
        """The first registration among the first ``limit`` records (indexes relative to the records held)."""
        i = bisect_left(self.registered, self.origin)
        k = self.registered[i] - self.origin if i < len(self.registered) else None
        return k if k is not None and k < limit else None

    def created_around(self, anchor: int, limit: int) -> tuple[int, int]:
        """The last ``Created`` at or before ``anchor`` (0 if none), and the first after it (``limit`` if none)."""
        o, created = self.origin, self.created
        j = bisect_right(created, anchor + o)  # the first Created after the anchor
        start = created[j - 1] - o if j > 0 and created[j - 1] >= o else 0
        end = created[j] - o if j < len(created) and created[j] - o < limit else limit
        return start, end

    def record(self, k: int) -> TaggedRecord:
        return self.mine[k + self.origin]

    def items(self, lo: int, hi: int) -> "list[TaggedRecord | _Run]":
        out: list[TaggedRecord | _Run] = []
        o = self.origin
        mine, breaks = self.mine, self.breaks
        (keepalives, requests, responses), (items, errors) = self.at, self.answered
        k, stop = lo + o, hi + o
        while k < stop:
            i = bisect_left(breaks, k)
            if i < len(breaks) and breaks[i] == k:  # not counted: itself
                out.append(mine[k])
                k += 1
                continue
            end = min(breaks[i] if i < len(breaks) else len(mine), stop)
            first, last = bisect_left(responses, k), bisect_left(responses, end)
            out.append(_Run(bisect_left(keepalives, end) - bisect_left(keepalives, k),
                            bisect_left(requests, end) - bisect_left(requests, k),
                            last - first, items[last] - items[first], errors[last] - errors[first]))
            k = end
        return out


def _window(snap: Snapshot, who: _Who) -> "list[TaggedRecord | _Run]":
    """This instance's records, from its ``Created`` (or the lease grant just before it) to its end, each run of
    keep-alives, requests and responses summed into one :class:`_Run`."""
    owned, limit = derived(snap.records, who, who.owns, lambda mine: _Owned.of(who, mine), who.positions,
                           lambda mine, found, merge: _Owned.of_held(who, mine, found, merge))
    anchor = owned.first_registered(limit)
    if anchor is None:
        return owned.items(0, limit)
    start, end = owned.created_around(anchor, limit)
    if start > 0 and owned.record(start - 1).record.kind == Kind.LEASE_GRANT:
        start -= 1
    # a later instance of the same endpoint in this runtime starts with its own Created: stop before it
    return owned.items(start, end)


def _short_json(payload: Any, limit: int = 48) -> str:
    if isinstance(payload, (bytes, bytearray)):
        text = bytes(payload).decode("utf-8", "replace")
    else:
        text = json.dumps(payload, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -------------------------------------------------------------------------------------------------- startup
def startup(snap: Snapshot, limits: Limits) -> SequenceModel:
    """Seed §4.4: the recorded start of one served instance, with the parallel kv_create and listen."""
    m = SequenceModel()
    for key, label in (("App", "App"), ("EB", "EndpointBuilder"), ("Reg", "Registry"), ("NATS", "NATS"),
                       ("etcd", "etcd"), ("Handler", "Handler")):
        m.participant(key, label)
    who = _Who.of(snap)
    if who is None:
        m.steps.append(Note(("App", "Handler"), "no endpoint start recorded yet"))
        return m
    recs = [t.record for t in _window(snap, who) if isinstance(t, TaggedRecord) and t.runtime == who.runtime]
    by_kind: dict[Kind, Any] = {}
    for rec in recs:
        by_kind.setdefault(rec.kind, rec)
    if Kind.KV_CREATE not in by_kind:
        m.steps.append(Note(("App", "Handler"), f"the start of {who.reference} is no longer in the record buffer"))
        return m
    start = by_kind.get(Kind.START)
    m.steps.append(Message("App", "EB", f"start() {start.detail.get('endpoint') if start else who.reference}"))
    svc = by_kind.get(Kind.REGISTRY_SERVICE)
    if svc is not None:
        how = "created" if svc.detail.get("created") else "shared, already there"
        m.steps.append(Message("EB", "Reg", f"get service group {svc.detail.get('service')} ({how})"))
    se = by_kind.get(Kind.SERVICE_ENDPOINT)
    if se is not None:
        m.steps.append(Message("EB", "NATS", f"create service endpoint {se.detail.get('endpoint')}"))
    if Kind.PUSH_ENDPOINT in by_kind:
        m.steps.append(Message("EB", "Handler", "create PushEndpoint"))
    kv = by_kind[Kind.KV_CREATE]
    ok = "" if kv.detail.get("ok", True) else "\n→ key exists, start fails"
    arms: list[tuple[str, list[Step]]] = [
        ("in parallel", [Message("EB", "etcd", f"kv_create({kv.detail.get('key')})\nunder lease "
                                               f"{hex_id(int(kv.detail.get('lease_id') or 0))}{ok}")])]
    listen = by_kind.get(Kind.LISTEN)
    if listen is not None:
        queue = listen.detail.get("queue", "q")
        arms.append(("", [Message("Handler", "NATS", f"listen on {listen.detail.get('subject')}\nin queue group "
                                                     f'"{queue}": each request goes to one listener')]))
    m.steps.append(Block("par", arms))
    if Kind.READY in by_kind:
        m.steps.append(Note(("Handler", "NATS"), f"endpoint ready: instance {hex_id(who.lease_id)} takes requests"))
    return m


# ------------------------------------------------------------------------------------------------- sequence
def sequence(snap: Snapshot, limits: Limits) -> SequenceModel:
    """Seed §6.2: one instance's recorded life — lease, register, service, keep-alive/requests loop, stop,
    draining the requests still in flight, revoke."""
    m = SequenceModel()
    who = _Who.of(snap)
    m.participant("App", "App")
    if who is None:
        m.participant("C", "Component")
        m.steps.append(Note(("App", "C"), "no served instance recorded yet"))
        return m
    m.participant("C", f"{who.reference}\non {who.runtime}")
    m.participant("etcd", "etcd")
    m.participant("NATS", "NATS")
    window = _causal(_window(snap, who), who)
    first = window[0] if window else None
    if snap.dropped.get(who.runtime) and (not isinstance(first, TaggedRecord)
                                          or first.record.kind not in (Kind.LEASE_GRANT, Kind.LIFECYCLE)):
        m.steps.append(Note(("App", "C"), "earlier records were dropped from the ring buffer"))
    loop = _Loop()
    draining = _Drain()
    states: list[str] = []
    steps = m.steps

    def flush_states() -> None:
        if states:
            steps.append(Note(("C",), " → ".join(states)))
            states.clear()

    def add(step: Step) -> None:
        flush_states()
        steps.append(step)

    running = killed = expired = stopped = False
    for tagged in window:
        if isinstance(tagged, _Run):  # keep-alives, requests and responses: counts in the loop (or the drain)
            loop.keepalives += tagged.keepalives
            if stopped:
                draining.finished += tagged.responses
                draining.items += tagged.items
            else:
                loop.add(tagged)
            continue
        rec, d = tagged.record, tagged.record.detail
        if tagged.runtime != who.runtime:
            watcher = m.participant(f"w:{tagged.runtime}", f"{tagged.runtime} (watcher)")
            loop.close(add)
            if killed and not expired and rec.kind == Kind.WATCH_DELETE:
                expired = True  # nobody revoked it: the deletes come from the lease running out
                add(Note(("etcd",), f"lease {hex_id(who.lease_id)} expired: etcd deletes its keys"))
            what = "put" if rec.kind == Kind.WATCH_PUT else "delete"
            add(Message("etcd", watcher, f"watch {what} {d.get('key')}", reply=True))
            continue
        kind = rec.kind
        if kind == Kind.LIFECYCLE:
            state = d.get("state", "")
            if running and state in (State.RUNNING.value, State.HEALTHY.value):
                loop.flap(state)
                continue
            loop.close(add)
            if state == State.CREATED.value:
                add(Message("App", "C", "create endpoint (Created)"))
                continue
            if state == State.KILLED.value:
                continue  # the kill record says it, with the lease's end
            states.append(state)
            if state == State.HEALTHY.value:
                running = True
            continue
        if kind == Kind.LEASE_GRANT:
            add(Message("C", "etcd", f"grant lease (TTL {d.get('ttl', 0):g} s)"))
            add(Message("etcd", "C", f"lease id {hex_id(int(d.get('lease_id', 0)))}", reply=True))
        elif kind == Kind.START:
            add(Message("App", "C", "start()"))
        elif kind == Kind.REGISTRY_SERVICE:
            add(Message("C", "NATS", f"{'create' if d.get('created') else 'join'} service {d.get('service')}"))
        elif kind == Kind.KV_CREATE:
            add(Message("C", "etcd", f"register {d.get('key')}" + ("" if d.get("ok", True) else " (key exists)")))
        elif kind == Kind.LISTEN:
            add(Message("C", "NATS", f"listen {d.get('subject')}"))
        elif kind in (Kind.REQUEST, Kind.RESPONSE) and stopped:
            draining.count(rec)  # requests that were in flight when the stop came, finishing now
        elif kind in (Kind.LEASE_KEEPALIVE, Kind.REQUEST, Kind.RESPONSE):
            loop.count(rec)
        elif kind == Kind.LEASE_LOST:
            loop.close(add)
            add(Note(("etcd",), f"lease {hex_id(int(d.get('lease_id', 0)))} lost: re-grant and re-register"))
        elif kind == Kind.STOP:
            loop.close(add)
            running, stopped = False, True
            stopping = bool(states) and states[-1] == State.STOPPING.value
            if stopping:
                states.pop()
            add(Note(("App",), "stop signal"))
            add(Message("App", "C", "stop()" + (" → Stopping" if stopping else "")))
        elif kind == Kind.UNLISTEN:
            add(Message("C", "NATS", "stop receiving requests"))
        elif kind == Kind.DRAIN:
            draining.close(add, d)
        elif kind == Kind.LEASE_REVOKE:
            loop.close(add)
            add(Message("C", "etcd", f"revoke lease {hex_id(int(d.get('lease_id', 0)))}"))
            keys = d.get("keys") or [who.key]
            add(Note(("etcd",), "deletes every key on the lease: " + ", ".join(map(str, keys))))
        elif kind == Kind.KV_DELETE:
            add(Message("C", "etcd", f"delete {d.get('key')} (lease still held by other endpoints)"))
        elif kind == Kind.FAULT:
            loop.close(add)
            add(_fault_note(d))
        elif kind == Kind.KILL:
            loop.close(add)
            running, killed = False, True
            until = d.get("lease_expires_at")
            at = f" (at {_clock(until)})" if until else ""
            add(Note(("C",), f"process killed (Killed): key stays until lease {hex_id(who.lease_id)} expires{at}"))
    loop.close(add)
    flush_states()
    if len(m.steps) > limits.steps:
        cut = len(m.steps) - limits.steps
        m.steps[:] = [Note(("App", "C"), f"{cut} earlier steps not shown")] + m.steps[cut:]
    return m


def _fault_note(d: dict[str, Any]) -> Note:
    """A fault caused on purpose, as a note over what it cuts off."""
    fault, on = d.get("fault"), bool(d.get("active"))
    if fault == "keepalive":
        lease = hex_id(int(d.get("lease_id", 0)))
        return Note(("C", "etcd"), f"⚠ fault: keep-alive paused, lease {lease} runs out while serving" if on
                    else "fault ends: keep-alive resumed")
    if fault == "cut_off":
        return Note(("C", "NATS"), "⚠ fault: cut off from NATS, its key stays in etcd" if on
                    else "fault ends: reconnected to NATS")
    if fault == "slow":
        return Note(("C",), f"⚠ fault: handler slowed, +{d.get('delay', 0):g} s per item" if on
                    else "fault ends: handler at full speed")
    server = str(d.get("server", "server"))
    return Note((server if server in ("etcd", "NATS") else "C",),
                f"⚠ fault: {server} restarting" if on else f"{server} restarted")


def _causal(window: "list[TaggedRecord | _Run]", who: _Who) -> "list[TaggedRecord | _Run]":
    """Watchers' deletes after the revoke that caused them.

    A runtime records its revoke when etcd has answered, and a real etcd may deliver the watch events to other
    runtimes before that answer arrives; the picture should still show cause before effect.
    """
    cause = next((i for i, t in enumerate(window) if isinstance(t, TaggedRecord) and t.runtime == who.runtime
                  and t.record.kind in (Kind.LEASE_REVOKE, Kind.KV_DELETE)), None)
    if cause is None:
        return window
    early = [t for t in window[:cause] if isinstance(t, TaggedRecord) and t.runtime != who.runtime
             and t.record.kind == Kind.WATCH_DELETE]
    if not early:
        return window
    moved = {id(t) for t in early}
    rest = [t for t in window if id(t) not in moved]
    at = rest.index(window[cause]) + 1
    return rest[:at] + early + rest[at:]


class _Loop:
    """Folds the steady state (keep-alives, requests, health flaps) into one ``loop`` block with counts."""

    def __init__(self) -> None:
        self.keepalives = 0
        self.requests = 0
        self.responses = 0
        self.items = 0
        self.errors = 0
        self.flaps = 0

    def count(self, rec: Any) -> None:
        if rec.kind == Kind.LEASE_KEEPALIVE:
            self.keepalives += 1
        elif rec.kind == Kind.REQUEST:
            self.requests += 1
        else:
            self.responses += 1
            self.items += int(rec.detail.get("items") or 0)
            if rec.detail.get("outcome") not in (None, "ok", "complete"):
                self.errors += 1

    def add(self, run: _Run) -> None:
        """Requests and responses counted ahead (keep-alives are added by the caller)."""
        self.requests += run.requests
        self.responses += run.responses
        self.items += run.items
        self.errors += run.errors

    def flap(self, state: str) -> None:
        self.flaps += 1

    def close(self, add: Callable[[Step], None]) -> None:
        if not (self.keepalives or self.requests or self.responses or self.flaps):
            return
        arm: list[Step] = []
        if self.keepalives:
            arm.append(Message("C", "etcd", f"Keep-Alive ×{self.keepalives}"))
        if self.requests or self.responses:
            extra = f", {self.errors} failed" if self.errors else ""
            arm.append(Message("NATS", "C", f"requests ×{self.requests}"))
            arm.append(Note(("C",), f"{_plural(self.items, 'item')} streamed back over TCP{extra}"))
        if self.flaps:
            arm.append(Note(("C",), f"health Running ⇄ Healthy ×{self.flaps}"))
        add(Block("loop", [("running", arm)]))
        self.__init__()  # type: ignore[misc]


class _Drain:
    """The requests still in flight when the stop came: drawn where they finish, before the drain's outcome."""

    def __init__(self) -> None:
        self.finished = 0
        self.items = 0

    def count(self, rec: Any) -> None:
        if rec.kind == Kind.RESPONSE:
            self.finished += 1
            self.items += int(rec.detail.get("items") or 0)

    def close(self, add: Callable[[Step], None], detail: dict[str, Any]) -> None:
        drained, cancelled = int(detail.get("drained", 0)), int(detail.get("cancelled", 0))
        if self.finished:
            add(Message("C", "C", f"finish {_plural(self.finished, 'in-flight request')} "
                                  f"({_plural(self.items, 'item')} streamed)"))
        add(Note(("C",), f"drained: {drained} finished, {cancelled} cancelled at the drain timeout"))


# ------------------------------------------------------------------------------------------------ lifecycle
def _edges() -> list[tuple[str, str]]:
    """Every edge of the state machine, from :data:`TRANSITIONS`, with ``[*]`` at both ends, in state order."""
    out = [(START, State.CREATED.value)]
    for src in State:
        out += [(src.value, dst.value) for dst in State if dst in TRANSITIONS[src]]
        if not TRANSITIONS[src]:
            out.append((src.value, START))
    return out


_SEED = {(START if a is None else a.value, START if b is None else b.value) for a, b in SEED_EDGES}
_LABELS = {(START if a is None else a.value, START if b is None else b.value): words[0]
           for (a, b), words in LABELS.items()}


def lifecycle(snap: Snapshot, limits: Limits) -> StateModel:
    """Seed §6.1: the instance state machine; the current state marked, visited ones shaded, taken ones counted.

    Derived from the state machine itself: the seed's edges always, the others (a failed start, a kill) once an
    instance takes them, each with the seed's words.
    """
    inst = _target(snap)
    path = [state for state, _ in inst.history] if inst else []
    taken: dict[tuple[str, str], int] = {}
    if path:
        taken[(START, path[0])] = 1
        for a, b in zip(path, path[1:], strict=False):  # consecutive pairs
            taken[(a, b)] = taken.get((a, b), 0) + 1
        if not TRANSITIONS[State(path[-1])]:
            taken[(path[-1], START)] = 1
    edges = [e for e in _edges() if e in _SEED or e in taken]
    drawn = {s for e in edges for s in e}
    model = StateModel(states=[s.value for s in State if s.value in drawn])
    for src, dst in edges:
        model.transitions.append(Transition(src, dst, _LABELS.get((src, dst), ""), taken.get((src, dst), 0)))
    if inst is not None:
        model.current = inst.state
        model.visited = set(path)
        if inst.killed:
            until = f" at {_clock(inst.lease_expires_at)}" if inst.lease_expires_at else ""
            status = f"killed: its key stays\nuntil the lease expires{until}"
        else:
            status = f"now {inst.state}"
        model.caption = f"instance {hex_id(inst.instance_id)}\non {inst.runtime}\n{status}"
    return model


# --------------------------------------------------------------------------------------------------- pubsub
_EVENT_KINDS = (Kind.EVENT_SUBSCRIBE, Kind.EVENT_PUBLISH, Kind.EVENT_DELIVER, Kind.EVENT_HANDLE)


def _is_event(tagged: TaggedRecord) -> bool:
    return tagged.record.kind in _EVENT_KINDS


def pubsub(snap: Snapshot, limits: Limits) -> SequenceModel:
    """Seed §3.4: recorded subscriptions, publishes (with their data), deliveries, and the subscriber handling each
    event, between runtimes."""
    m = SequenceModel()
    wanted = _event_filter(snap)
    events = [t for t in matching(snap.records, _EVENT_KINDS, _is_event, of_kinds(_EVENT_KINDS))
              if wanted(t.record.detail.get("scope", ""))]
    serving: dict[str, list[str]] = {}
    for ns in snap.namespaces:
        for comp in ns.components:
            for runtime, _ in _facts(comp).served:
                serving.setdefault(runtime, []).append(f"{ns.name}/{comp.name}")

    def subscriber(runtime: str) -> str:
        comps = serving.get(runtime, [])
        label = runtime + (f"\n({', '.join(comps[:2])})" if comps else "")
        return m.participant(f"sub:{runtime}", label)

    shown_events = events[-limits.messages:]
    # a delivery from a publisher no recorded publish names was sent elsewhere (a real Dynamo worker, say)
    ours = {t.record.detail.get("publisher") for t in events if t.record.kind == Kind.EVENT_PUBLISH}
    remote_sent: set[tuple[Any, Any]] = set()

    def remote(d: dict[str, Any]) -> str | None:
        pid = d.get("publisher")
        return None if pid is None or pid in ours else f"remote:{pid}"

    for t in shown_events:  # publishers first, then NATS, then subscribers, as in the seed figure
        d = t.record.detail
        if t.record.kind == Kind.EVENT_PUBLISH:
            scope = d.get("scope")
            m.participant(f"pub:{scope}:{t.runtime}", f"{scope}\n({t.runtime})")
        elif t.record.kind == Kind.EVENT_DELIVER and remote(d):
            m.participant(f"remote:{d['publisher']}", f"{d.get('scope')}\n(publisher {hex_id(d['publisher'])})")
    m.participant("NATS", "NATS")
    if not events:
        m.steps.append(Note(("NATS",), "no events recorded yet"))
        return m
    if len(events) > len(shown_events):
        m.steps.append(Note(("NATS",), f"{len(events) - len(shown_events)} earlier messages not shown"))
    for sub in snap.subscriptions:
        if sub.dropped and wanted(sub.scope):
            m.steps.append(Note((subscriber(sub.runtime),), f"{sub.dropped} {sub.event} events dropped:\n"
                                                            f"{sub.queued} wait unread (queue full)"))
    for runtime, unsent in snap.events_unsent.items():
        m.steps.append(Note(("NATS",), f"{runtime}: {unsent} events not published (NATS was down)"))
    for t in shown_events:
        rec, d = t.record, t.record.detail
        if rec.kind == Kind.EVENT_SUBSCRIBE:
            m.steps.append(Message(subscriber(t.runtime), "NATS", f'subscribe("{d.get("subject")}")'))
        elif rec.kind == Kind.EVENT_PUBLISH:
            data = f", {_short_json(d['payload'])}" if "payload" in d else ""
            m.steps.append(Message(f"pub:{d.get('scope')}:{t.runtime}", "NATS", f'publish("{d.get("event")}"{data})'))
        elif rec.kind == Kind.EVENT_DELIVER:
            sender = remote(d)
            if sender and (d["publisher"], d.get("sequence")) not in remote_sent:
                remote_sent.add((d["publisher"], d.get("sequence")))
                data = f", {_short_json(d['payload'])}" if "payload" in d else ""
                m.steps.append(Message(sender, "NATS", f'publish("{d.get("event")}"{data}) #{d.get("sequence")}'))
            m.steps.append(Message("NATS", subscriber(t.runtime), f"deliver {d.get('event')}\non {d.get('subject')}"))
        else:
            who = subscriber(t.runtime)
            m.steps.append(Message(who, who, f"handle {d.get('event')} event"))
    return m


def _event_filter(snap: Snapshot) -> Callable[[str], bool]:
    """Which event scopes the focus covers: a namespace's own events and its components', or one component's."""
    scopes: list[tuple[str, bool]] = []
    for f in snap.focus:
        if f.kind in ("runtime", "registry", "cluster"):
            return lambda scope: True
        if f.kind == "namespace" or not f.component:
            scopes.append((f.namespace, True))
        else:
            scopes.append((f.scope or f"{f.namespace}/{f.component}", True))  # its endpoints' events too
    return lambda scope: any(scope == s or (below and scope.startswith(s + "/")) for s, below in scopes)


# ------------------------------------------------------------------------------------------------- registry
def registry(snap: Snapshot, limits: Limits) -> Flow:
    """Seed §5.1/§5.3: each runtime's registry, who shares what, and the same counts without a registry.

    One node per map (services, stats handlers) and every box laid out left to right, its rows stacked, so the
    figure grows down, not across: two registries of two components each fit a 1,000 px column. Watchers stay
    one node each, because clients point at the one they share.
    """
    flow = Flow("LR")
    focus = {f.runtime for f in snap.focus if f.kind in ("registry", "runtime")}
    regs = [r for r in snap.registries if not focus or r.runtime in focus] or list(snap.registries)
    if not regs:
        flow.node("empty", "no registry", style="more")
        return flow
    totals = {
        "services": sum(len(r.services) for r in regs),
        "endpoints": sum(len(s.endpoints) for r in regs for s in r.services),
        "watchers": sum(len(r.watchers) for r in regs),
        "sharers": sum(len(w.sharers) for r in regs for w in r.watchers),
    }
    for reg in regs[: limits.registries]:
        _one_registry(flow, reg, limits)
    if len(regs) > limits.registries:
        flow.node("more:reg", _more(len(regs) - limits.registries, "registries"), style="more")
    _comparison(flow, regs, totals, limits)
    return flow


def _one_registry(flow: Flow, reg: Any, limits: Limits) -> None:
    cl = flow.cluster(f"reg:{reg.runtime}", f"Component Registry of {reg.runtime}", direction="LR")
    reg_key = flow.node(f"reg:{reg.runtime}", "Registry", f"{_plural(len(reg.services), 'service')} · "
                        f"{_plural(len(reg.watchers), 'watcher')}", shape="hexagon", style="runtime", cluster=cl)
    shown = reg.services[: limits.services]
    rest = len(reg.services) - len(shown)
    services = [f"{svc.name}: {', '.join(svc.endpoints) or 'no endpoint'}" for svc in shown]
    handlers = [f"{svc.name.split('|', 1)[-1]}: {', '.join(svc.stats_handlers) or 'none'}" for svc in shown]
    if rest:
        services.append(_more(rest, "services"))
        handlers.append(_more(rest, "components"))
    flow.edge(reg_key, flow.node(f"svc:{reg.runtime}", "Services Map",
                                 *(services or ["no service (serves nothing)"]), style="service", cluster=cl))
    flow.edge(reg_key, flow.node(f"stats:{reg.runtime}", "Stats Handlers Map",
                                 *(handlers or ["no stats handler"]), style="handler", cluster=cl))
    for i, w in enumerate(reg.watchers):
        if i >= limits.services:
            flow.edge(reg_key, flow.node(f"more:w:{reg.runtime}", _more(len(reg.watchers) - i, "watchers"),
                                         style="more", cluster=cl))
            break
        leases = [f"{lease.endpoint} {hex_id(lease.instance_id)}: {lease_line(lease)}"
                  for lease in w.leases[: limits.instances]]
        if len(w.leases) > limits.instances:
            leases.append(_more(len(w.leases) - limits.instances, "instances"))
        w_key = flow.node(f"w:{reg.runtime}:{w.prefix}", f"Shared Watcher {w.prefix}",
                          f"shared by {_plural(len(w.sharers), 'client')} · {_plural(w.instances, 'instance')}",
                          *leases, shape="cylinder", style="watcher", cluster=cl)
        flow.edge(reg_key, w_key)
        for j, (client_id, label) in enumerate(w.sharers):
            if j >= limits.clients:
                k = flow.node(f"more:sh:{reg.runtime}:{w.prefix}", _more(len(w.sharers) - j, "clients"),
                              style="more", cluster=cl)
                flow.edge(k, w_key, "shares", dashed=True)
                break
            c_key = flow.node(f"client:{client_id}", label, shape="stadium", style="client", cluster=cl)
            flow.edge(c_key, w_key, "shares", dashed=True)
    if not reg.watchers:
        flow.edge(reg_key, flow.node(f"now:{reg.runtime}", "no watcher (no client)", style="more", cluster=cl))


def _comparison(flow: Flow, regs: Sequence[Any], totals: dict[str, int], limits: Limits) -> None:
    """Seed §5.3, from the real counts: one watcher per client and one service per endpoint without a registry."""
    watchers = sorted(((reg.runtime, w) for reg in regs for w in reg.watchers if len(w.sharers) > 1),
                      key=lambda rw: -len(rw[1].sharers))[: limits.comparisons]
    services = sorted(((reg.runtime, s) for reg in regs for s in reg.services if len(s.endpoints) > 1),
                      key=lambda rs: -len(rs[1].endpoints))[: limits.comparisons]
    if not watchers and not services:
        flow.node("cmp:none", "without vs with Registry: nothing shared yet",
                  f"{_plural(totals['sharers'], 'client')} on {_plural(totals['watchers'], 'watcher')}, "
                  f"{_plural(totals['endpoints'], 'endpoint')} on {_plural(totals['services'], 'service')}",
                  style="more")
        return
    root = flow.cluster("cmp", "without vs with Registry (real counts)", direction="LR")
    wo = flow.cluster("cmp:without", f"without Registry: {_plural(totals['sharers'], 'watcher')}, "
                                     f"{_plural(totals['endpoints'], 'service')}", parent=root, direction="LR")
    wi = flow.cluster("cmp:with", f"with Registry: {_plural(totals['watchers'], 'watcher')}, "
                                  f"{_plural(totals['services'], 'service')}", parent=root, direction="LR")
    for runtime, w in watchers:
        comp = w.prefix.rsplit("/", 1)[-1]
        shared = flow.node(f"cmp:w:{runtime}:{w.prefix}", f"one shared watcher for {comp}", shape="cylinder",
                           style="watcher", cluster=wi)
        for client_id, _ in w.sharers[: limits.clients]:
            a = flow.node(f"cmp:wo:c:{client_id}", f"client#{client_id} to {comp}", style="client", cluster=wo)
            b = flow.node(f"cmp:wo:w:{client_id}", f"own watcher of client#{client_id}", shape="cylinder",
                          style="stopping", cluster=wo)
            flow.edge(a, b)
            flow.edge(flow.node(f"cmp:wi:c:{client_id}", f"client#{client_id} to {comp}", style="client",
                                cluster=wi), shared)
    for runtime, svc in services:
        one = flow.node(f"cmp:s:{runtime}:{svc.name}", f"one service {svc.name}", style="service", cluster=wi)
        for ep in svc.endpoints[: limits.endpoints]:
            a = flow.node(f"cmp:wo:e:{runtime}:{svc.name}:{ep}", f"endpoint {ep}", style="endpoint", cluster=wo)
            b = flow.node(f"cmp:wo:s:{runtime}:{svc.name}:{ep}", f"own service for {ep}", style="stopping",
                          cluster=wo)
            flow.edge(a, b)
            flow.edge(flow.node(f"cmp:wi:e:{runtime}:{svc.name}:{ep}", f"endpoint {ep}", style="endpoint",
                                cluster=wi), one)


# ------------------------------------------------------------------------------------------------- topology
def topology(snap: Snapshot, limits: Limits) -> Flow:
    """Runtimes and the servers they talk to: a LocalCluster's nats-server and etcd, or the embedded world."""
    flow = Flow("TB")
    instances: dict[str, int] = {}
    for ns in snap.namespaces:
        for comp in ns.components:
            for runtime, count in _facts(comp).served:
                instances[runtime] = instances.get(runtime, 0) + count
    watchers = {r.runtime: len(r.watchers) for r in snap.registries}
    targets: list[str] = []
    for i, rt in enumerate(snap.runtimes):
        if i >= limits.runtimes:
            flow.node("more:rt", _more(len(snap.runtimes) - i, "runtimes"), style="more")
            break
        flow.node(f"rt:{rt.name}", f"DistributedRuntime {rt.name}", f"{_lease(rt)} · {rt.state}",
                  f"{_plural(instances.get(rt.name, 0), 'instance')} · {_plural(watchers.get(rt.name, 0), 'watcher')}",
                  shape="stadium", style="runtime")
        target = "embedded" if rt.backend == "embedded" else ("0" if snap.clusters else "real")
        targets.append(target)
    for i, cluster in enumerate(snap.clusters):
        cl = flow.cluster(f"cluster:{i}", f"LocalCluster · {cluster.state}")
        flow.node(f"nats:{i}", "nats-server", cluster.nats or "not started",
                  f"pid {cluster.nats_pid}" if cluster.nats_pid else "not running", shape="hexagon", style="server",
                  cluster=cl)
        flow.node(f"etcd:{i}", "etcd", cluster.etcd or "not started",
                  f"pid {cluster.etcd_pid}" if cluster.etcd_pid else "not running", shape="cylinder", style="server",
                  cluster=cl)
    if "embedded" in targets:
        cl = flow.cluster("world", "embedded world (in this process)")
        flow.node("nats:embedded", "NATS", "requests · events", shape="hexagon", style="server", cluster=cl)
        flow.node("etcd:embedded", "etcd", "leases · keys · watches", shape="cylinder", style="server", cluster=cl)
    if "real" in targets:
        flow.node("nats:real", "NATS", "requests · events", shape="hexagon", style="server")
        flow.node("etcd:real", "etcd", "leases · keys · watches", shape="cylinder", style="server")
    for rt, target in zip(snap.runtimes, targets, strict=False):  # targets stop at the runtimes limit
        flow.edge(f"rt:{rt.name}", f"etcd:{target}")
        flow.edge(f"rt:{rt.name}", f"nats:{target}")
    if not snap.clusters and not snap.runtimes:
        flow.node("empty", "nothing to draw", style="more")
    return flow


# ------------------------------------------------------------------------------------------------ graph
def graph(snap: Snapshot, limits: Limits) -> Flow:
    """Seed §7.2/§7.3: each service a box (its namespace and component, endpoints, resources) holding its workers
    (instance id, state, GPUs); a thick arrow for every ``depends`` edge the graph serves, labelled by the attribute."""
    flow = Flow("TB", fit=False)
    styles: set[str] = set()
    for g_i, g in enumerate(snap.graphs):
        prefix = f"g{g_i}:"
        for svc in reversed(g.services):  # the entry first: requests flow down the figure
            title = f"@service {svc.name}" + (" · entry" if svc.name == g.entry else "")
            box = flow.cluster(f"{prefix}svc:{svc.name}", title, direction="LR")
            resources = ", ".join(f"{k}: {v}" for k, v in svc.resources)
            workers = f"{len(svc.workers)} of {svc.wanted} workers" if svc.wanted != len(svc.workers) else \
                _plural(len(svc.workers), "worker")
            lines = [f"{svc.namespace}.{svc.component}", "endpoints: " + (", ".join(svc.endpoints) or "none"),
                     workers + (f" · {resources}" if resources else "")]
            flow.node(f"{prefix}s:{svc.name}", *lines, style="component", cluster=box)
            n = shown(len(svc.workers), limits.instances)
            for w in svc.workers[:n]:
                style = STATE_STYLE.get(w.state, "stopping" if not w.state else "starting")
                styles.add(style)
                gpus = f" · GPU {','.join(map(str, w.gpus))}" if w.gpus else ""
                key = flow.node(f"{prefix}w:{w.name}", f"worker {w.name}",
                                f"instance {hex_id(w.instance_id)} · {w.state or 'stopped'}{gpus}",
                                shape="stadium", style=style, cluster=box)
                flow.edge(f"{prefix}s:{svc.name}", key)
            if n < len(svc.workers):
                flow.node(f"{prefix}more:{svc.name}", _more(len(svc.workers) - n, "workers"), style="more",
                          cluster=box)
        for svc in g.services:
            for attr, target in svc.depends:
                flow.edge(f"{prefix}s:{svc.name}", f"{prefix}s:{target}", f"depends · self.{attr}", thick=True)
    if not snap.graphs:
        flow.node("empty", "no service graph here: draw the handle serve() returned", style="more")
    _legend(flow, styles)
    return flow


# ------------------------------------------------------------------------------------------------ the table
Builder = Callable[[Snapshot, Limits], Model]

#: kind name → (builder, one-line description)
KINDS: dict[str, tuple[Builder, str]] = {
    "hierarchy": (hierarchy, "runtime → namespaces → components → endpoints → live instances (seed §1, §2.1)"),
    "structure": (structure, "class diagram with real names and derived paths (seed §3.1, §3.3)"),
    "reference": (reference, "an endpoint reference split into its parts, with instance keys (seed §4.2)"),
    "startup": (startup, "the recorded start of a served instance (seed §4.4)"),
    "registry": (registry, "services, shared watchers, stats handlers; without vs with registry (seed §5)"),
    "lifecycle": (lifecycle, "the state machine with the current state marked (seed §6.1)"),
    "sequence": (sequence, "the recorded full lifecycle of an instance (seed §6.2)"),
    "pubsub": (pubsub, "recorded event subscriptions, publishes and deliveries (seed §3.4)"),
    "topology": (topology, "runtimes and the etcd / NATS servers they use"),
    "graph": (graph, "a served @service graph: services, depends edges, workers, resources (seed §7.2, §7.3)"),
}

#: what each kind of object draws when no kind is given
DEFAULT_KIND: dict[str, str] = {
    "runtime": "hierarchy",
    "namespace": "hierarchy",
    "component": "structure",
    "endpoint": "reference",
    "instance": "lifecycle",
    "client": "hierarchy",
    "registry": "registry",
    "cluster": "topology",
    "graph": "graph",
}


def default_kind(snap: Snapshot) -> str:
    kinds = {f.kind for f in snap.focus}
    if "cluster" in kinds:
        return "topology"
    return DEFAULT_KIND[snap.focus[0].kind] if snap.focus else "hierarchy"


def build(snap: Snapshot, kind: str, limits: Limits | None = None) -> Model:
    """The diagram model of ``kind`` for ``snap``."""
    try:
        builder = KINDS[kind][0]
    except KeyError:
        raise ValueError(f"unknown diagram kind {kind!r}; choose one of: {', '.join(KINDS)}") from None
    return builder(snap, limits or default_limits())
