"""The diagram kinds: each a pure function from a :class:`~.snapshot.Snapshot` to a diagram model.

Every kind redraws one figure of the source document from the running system or from its recorded traffic:

- ``hierarchy``: runtime → namespaces → components → endpoints → live instances, and who calls whom (§1, §2.1)
- ``structure``: a class diagram with the real names and derived paths (§3.1, §3.3)
- ``reference``: an endpoint reference split into namespace / component / endpoint, with instance keys (§4.2)
- ``startup``: the recorded start of one instance: Registry, NATS, then ``par`` kv_create / listen (§4.4)
- ``registry``: services, shared watchers, stats handlers, and the same counts without a registry (§5.1, §5.3)
- ``lifecycle``: the state machine with the current state marked and visited states shaded (§6.1)
- ``sequence``: the recorded life of one instance: lease, register, keep-alive loop, stop, revoke (§6.2)
- ``pubsub``: recorded subscriptions, publishes (with data) and deliveries, with their subjects (§3.4)
- ``topology``: runtimes and the etcd / NATS servers they use (a LocalCluster, or the embedded world)

Large systems stay readable: every list is cut at a limit (:class:`Limits`) and the rest is drawn as one
"+N more" node, so building a diagram costs the same for ten endpoints or ten thousand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .. import names
from ..core.lifecycle import State
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
from .snapshot import EndpointSnap, InstanceSnap, RuntimeSnap, Snapshot, TaggedRecord

__all__ = ["Limits", "KINDS", "DEFAULT_KIND", "build", "default_kind", "hex_id"]


@dataclass(frozen=True)
class Limits:
    """How much of a large system one diagram shows before collapsing the rest into "+N more"."""

    namespaces: int = 6
    components: int = 6
    endpoints: int = 4
    instances: int = 3
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


def hex_id(value: int) -> str:
    """Instance and lease ids are shown in hex, as in keys and subjects."""
    return f"{value:x}"


_STATE_STYLE = {
    "Healthy": "healthy", "Running": "starting", "Registered": "starting", "Created": "starting",
    "Stopping": "stopping", "Deregistered": "stopping",
}


def _instance_style(inst: InstanceSnap) -> str:
    if inst.killed:
        return "stopping"
    if not inst.runtime:
        return "remote"
    return _STATE_STYLE.get(inst.state, "starting")


def _instance_status(inst: InstanceSnap) -> str:
    if inst.killed:
        return f"killed · {inst.runtime} (key stays until the lease expires)"
    if inst.runtime:
        return f"{inst.state} · {inst.runtime}"
    seen = ", ".join(inst.seen_by[:2]) + (" …" if len(inst.seen_by) > 2 else "")
    return f"live in etcd · seen by {seen}" if seen else "live in etcd"


def _lease(rt: RuntimeSnap) -> str:
    return f"lease {hex_id(rt.lease_id)}" if rt.lease_alive else "no lease"


def _more(count: int, what: str, extra: str = "") -> str:
    return f"+{count} more {what}" + (f" · {extra}" if extra else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


# ------------------------------------------------------------------------------------------------ hierarchy
def hierarchy(snap: Snapshot, limits: Limits) -> Flow:
    """Seed §1/§2.1: the object tree down to live instances; namespaces side by side, calls dashed.

    When the whole tree would not fit in ``limits.nodes``, each endpoint's instances become one summary node
    and fewer components and endpoints are listed before "+N more".
    """
    flow = Flow("LR")
    budget = [limits.nodes]

    def room() -> bool:
        return budget[0] > 0

    def node(key: str, *lines: str, **kw: Any) -> str:
        budget[0] -= 1
        return flow.node(key, *lines, **kw)

    scoped = snap.scoped()
    runtime_focus = any(f.kind == "runtime" for f in snap.focus)
    size = sum(1 + len(c.endpoints) + sum(len(e.instances) for e in c.endpoints) for n in scoped for c in n.components)
    compact = size + len(scoped) > limits.nodes
    max_components = min(limits.components, 4) if compact else limits.components
    max_endpoints = min(limits.endpoints, 3) if compact else limits.endpoints
    uses: dict[str, set[str]] = {}
    for inst in snap.instances():
        for who in (inst.runtime, *inst.seen_by):
            if who:
                uses.setdefault(who, set()).add(inst.namespace)
    for client in snap.clients:
        uses.setdefault(client.runtime, set()).add(client.namespace)
    rt_keys: dict[str, str] = {}
    if runtime_focus:
        for i, rt in enumerate(snap.runtimes):
            if i >= limits.runtimes:
                node("more:rt", _more(len(snap.runtimes) - i, "runtimes"), style="more")
                break
            rt_keys[rt.name] = node(f"rt:{rt.name}", f"DistributedRuntime {rt.name}", f"{_lease(rt)} · {rt.state}",
                                    shape="stadium", style="runtime")
    ep_keys: dict[str, str] = {}
    comp_keys: dict[tuple[str, str], str] = {}
    shown_ns = 0
    for ns in scoped:
        if shown_ns >= limits.namespaces or not room():
            rest = scoped[shown_ns:]
            node("more:ns", _more(len(rest), "namespaces",
                                  _plural(sum(len(n.components) for n in rest), "component")), style="more")
            break
        shown_ns += 1
        ns_key = node(f"ns:{ns.name}", f"Namespace {ns.name}", shape="round", style="nspace")
        if not ns.components:
            flow.edge(ns_key, node(f"none:{ns.name}", "no components known yet", style="more"))
        for ci, comp in enumerate(ns.components):
            if ci >= max_components or not room():
                rest_c = ns.components[ci:]
                flow.edge(ns_key, node(f"more:c:{ns.name}", _more(len(rest_c), "components", _plural(
                    sum(len(c.endpoints) for c in rest_c), "endpoint")), style="more"))
                break
            c_key = node(f"c:{comp.path}", f"Component {comp.name}", comp.service_name, style="component")
            comp_keys[(ns.name, comp.name)] = c_key
            flow.edge(ns_key, c_key)
            for ei, ep in enumerate(comp.endpoints):
                if ei >= max_endpoints or not room():
                    rest_e = comp.endpoints[ei:]
                    flow.edge(c_key, node(f"more:e:{comp.path}", _more(len(rest_e), "endpoints", _plural(
                        sum(len(e.instances) for e in rest_e), "instance")), style="more"))
                    break
                e_key = node(f"e:{ep.reference}", f"Endpoint {ep.name}", style="endpoint")
                ep_keys[ep.reference] = e_key
                flow.edge(c_key, e_key)
                if not ep.instances:
                    flow.edge(e_key, node(f"none:{ep.reference}", "no live instance", style="more"))
                elif compact:
                    flow.edge(e_key, _instance_summary(node, ep))
                else:
                    _instances(flow, node, room, e_key, ep, limits)
    for rt_name, rt_key in rt_keys.items():
        for ns in scoped[:shown_ns]:
            if ns.name in uses.get(rt_name, ()):
                flow.edge(rt_key, f"ns:{ns.name}")
    _calls(flow, snap, ep_keys, comp_keys, limits)
    return flow


def _instances(flow: Flow, node: Callable[..., str], room: Callable[[], bool], e_key: str, ep: EndpointSnap,
               limits: Limits) -> None:
    for ii, inst in enumerate(ep.instances):
        if ii >= limits.instances or not room():
            flow.edge(e_key, node(f"more:i:{ep.reference}", _more(len(ep.instances) - ii, "instances"), style="more"))
            return
        flow.edge(e_key, node(f"i:{ep.reference}:{inst.instance_id}", f"instance {hex_id(inst.instance_id)}",
                              _instance_status(inst), shape="stadium", style=_instance_style(inst)))


def _instance_summary(node: Callable[..., str], ep: EndpointSnap) -> str:
    """One node for all of an endpoint's instances: how many, a few ids, and their states."""
    ids = " · ".join(hex_id(i.instance_id) for i in ep.instances[:3]) + (" …" if len(ep.instances) > 3 else "")
    states: dict[str, int] = {}
    for inst in ep.instances:
        label = "killed" if inst.killed else (inst.state or "live in etcd")
        states[label] = states.get(label, 0) + 1
    styles = {_instance_style(i) for i in ep.instances}
    return node(f"is:{ep.reference}", _plural(len(ep.instances), "instance"), ids,
                ", ".join(f"{n} {state}" for state, n in states.items()), shape="stadium",
                style=styles.pop() if len(styles) == 1 else "starting")


def _calls(flow: Flow, snap: Snapshot, ep_keys: dict[str, str], comp_keys: dict[tuple[str, str], str],
           limits: Limits) -> None:
    """Clients as dashed "calls" edges: from the caller's served components, or from a client node."""
    focus_clients = {f.client_id for f in snap.focus if f.kind == "client"}
    served_by: dict[str, list[str]] = {}
    for inst in snap.instances():
        key = comp_keys.get((inst.namespace, inst.component))
        if inst.runtime and key and key not in served_by.setdefault(inst.runtime, []):
            served_by[inst.runtime].append(key)
    clients = [c for c in snap.clients if c.reference in ep_keys and (not focus_clients or c.id in focus_clients)]
    for i, client in enumerate(clients):
        target = ep_keys[client.reference]
        if i >= limits.clients:
            flow.node("more:clients", _more(len(clients) - i, "clients"), style="more")
            flow.edge("more:clients", target, dashed=True)
            break
        callers = [] if client.id in focus_clients else served_by.get(client.runtime, [])
        if callers:
            for caller in callers:
                if caller == comp_keys.get((client.namespace, client.component)):
                    continue
                if flow.graph.has_edge(caller, target):
                    flow.graph.edges[caller, target]["label"] += f", client#{client.id}"
                else:
                    flow.edge(caller, target, f"calls · client#{client.id}", dashed=True)
            continue
        key = flow.node(f"client:{client.id}", f"client#{client.id} · {client.runtime}",
                        f"{_plural(len(client.instance_ids), 'instance')} · {_plural(client.calls, 'call')}",
                        shape="stadium", style="client")
        flow.edge(key, target, "calls", dashed=True)


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
    for inst in snap.instances():
        for who in (inst.runtime, *inst.seen_by):
            if who and who not in users.setdefault(inst.namespace, []):
                users[inst.namespace].append(who)
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
                ["+component(name) Component", f"+event_subject(event) {names.namespace_event_subject(ns.name, '…')}"],
                "nspace"):
            break
        for rt in runtime_focus:
            if rt.name in users.get(ns.name, ()):
                model.relations.append(Relation(f"rt:{rt.name}", ns_key, "1", "*"))
        for ci, comp in enumerate(ns.components):
            c_key = f"c:{comp.path}"
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
                    more(c_key, f"more:e:{comp.path}", len(comp.endpoints) - ei, "endpoints")
                    break
                model.relations.append(Relation(c_key, e_key, "1", "*"))
                for ii, inst in enumerate(ep.instances):
                    i_key = f"i:{ep.reference}:{inst.instance_id}"
                    attrs = [f"+instance_id: {hex_id(inst.instance_id)}", f"+key: {inst.key}",
                             f"+subject: {inst.subject}"]
                    if inst.runtime:
                        attrs.append(f"+state: {'killed' if inst.killed else inst.state} on {inst.runtime}")
                    if ii >= limits.instances or not box(i_key, f"Instance {hex_id(inst.instance_id)}", attrs, [],
                                                         _instance_style(inst)):
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
    endpoints = [ep for ns in snap.scoped() for comp in ns.components for ep in comp.endpoints]
    for i, ep in enumerate(endpoints):
        if i >= limits.references:
            flow.node("more:refs", _more(len(endpoints) - i, "endpoints"), style="more")
            break
        cl = flow.cluster(f"ref:{ep.reference}", f"endpoint reference {ep.reference}", direction="LR")
        ns_key = flow.node(f"ns:{ep.reference}", f"Namespace {ep.namespace}", style="nspace", cluster=cl)
        c_key = flow.node(f"c:{ep.reference}", f"Component {ep.component}",
                          f"etcd_path {names.component_etcd_path(ep.namespace, ep.component)}",
                          f"service_name {names.component_service_name(ep.namespace, ep.component)}",
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
                              f"etcd key {inst.key}", f"NATS subject {inst.subject}",
                              style=_instance_style(inst), cluster=cl)
            flow.edge(e_key, i_key)
    if not endpoints:
        flow.node("empty", "no endpoint known yet", style="more")
    return flow


# ------------------------------------------------------------------------------------------ record helpers
def _target(snap: Snapshot) -> InstanceSnap | None:
    """The instance a sequence or lifecycle is about: the focused one, else the latest served one in focus."""
    focus = snap.first("instance")
    if focus is not None:
        ref = f"{focus.namespace}.{focus.component}.{focus.endpoint}"
        found = [i for i in snap.instances() if i.instance_id == focus.instance_id and i.reference == ref
                 and i.runtime == focus.runtime]
        if found:
            return found[0]
    served = [i for ns in snap.scoped() for c in ns.components for e in c.endpoints for i in e.instances if i.runtime]
    if served:
        return max(served, key=lambda i: i.history[0][1] if i.history else 0.0)
    return None


def _latest_ready(snap: Snapshot) -> tuple[str, dict[str, Any]] | None:
    """(runtime, detail) of the latest ``ready`` record in focus, for instances no longer served."""
    scopes = snap.scoped()
    refs = {e.reference for ns in scopes for c in ns.components for e in c.endpoints}
    # a whole runtime in focus: any instance it ever started counts, even one no longer served
    anywhere = not snap.focus or any(f.kind == "runtime" for f in snap.focus)
    for tagged in reversed(snap.records):
        rec = tagged.record
        if rec.kind == "kv.create" and rec.actor == "EndpointBuilder":
            key = str(rec.detail.get("key", ""))
            ns, marker, comp_and_rest = key.partition("/components/")
            comp, _, ep_and_lease = comp_and_rest.partition("/")
            ep = ep_and_lease.rpartition(":")[0]
            if anywhere and marker and comp and ep:
                return tagged.runtime, {"reference": f"{ns}.{comp}.{ep}", "key": key,
                                        "lease_id": rec.detail.get("lease_id", 0)}
            for ref in refs:
                ns, comp, ep = ref.split(".", 2)
                prefix = names.component_etcd_path(ns, comp) + "/" + ep + ":"
                if str(rec.detail.get("key", "")).startswith(prefix):
                    return tagged.runtime, {"reference": ref, "key": rec.detail["key"],
                                            "lease_id": rec.detail.get("lease_id", 0)}
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
        ns, comp, ep = d["reference"].split(".", 2)
        lease = int(d["lease_id"])
        return cls(runtime, d["reference"], lease, d["key"], names.endpoint_subject(ns, comp, ep, lease))

    def owns(self, tagged: TaggedRecord) -> bool:
        rec, d = tagged.record, tagged.record.detail
        if tagged.runtime != self.runtime:
            return rec.kind in ("watch.put", "watch.delete") and d.get("key") == self.key
        kind = rec.kind
        if kind == "lifecycle":
            return rec.actor == self.reference and d.get("instance_id", self.lease_id) in (self.lease_id, 0)
        if kind == "start":
            return d.get("endpoint") == self.reference
        if kind == "registry.service":
            return d.get("endpoint", self.reference) == self.reference
        if kind in ("service.endpoint", "push.endpoint", "listen", "ready", "unlisten"):
            return d.get("subject") == self.subject
        if kind in ("kv.create", "kv.delete"):
            return d.get("key") == self.key
        if kind.startswith("lease."):
            return d.get("lease_id") == self.lease_id
        if kind in ("request", "response", "stop", "kill"):
            return d.get("instance_id") == self.lease_id and self.reference in (rec.actor, rec.target)
        if kind == "drain":
            return rec.actor == self.reference
        return False


def _window(snap: Snapshot, who: _Who) -> list[TaggedRecord]:
    """This instance's records, from its ``Created`` (or the lease grant just before it) to its end."""
    mine = [t for t in snap.records if who.owns(t)]
    anchor = next((i for i, t in enumerate(mine) if t.record.kind == "kv.create" and t.runtime == who.runtime), None)
    if anchor is None:
        return mine
    start = anchor
    while start > 0 and not (mine[start].record.kind == "lifecycle" and mine[start].record.detail.get("state") ==
                             State.CREATED.value):
        start -= 1
    if start > 0 and mine[start - 1].record.kind == "lease.grant":
        start -= 1
    # a later instance of the same endpoint in this runtime starts with its own Created: stop before it
    end = len(mine)
    for i in range(anchor + 1, len(mine)):
        rec = mine[i].record
        if rec.kind == "lifecycle" and rec.detail.get("state") == State.CREATED.value:
            end = i
            break
    return mine[start:end]


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
    recs = [t.record for t in _window(snap, who) if t.runtime == who.runtime]
    by_kind: dict[str, Any] = {}
    for rec in recs:
        by_kind.setdefault(rec.kind, rec)
    if "kv.create" not in by_kind:
        m.steps.append(Note(("App", "Handler"), f"the start of {who.reference} is no longer in the record buffer"))
        return m
    start = by_kind.get("start")
    m.steps.append(Message("App", "EB", f"start() {start.detail.get('endpoint') if start else who.reference}"))
    svc = by_kind.get("registry.service")
    if svc is not None:
        how = "created" if svc.detail.get("created") else "shared, already there"
        m.steps.append(Message("EB", "Reg", f"get service group {svc.detail.get('service')} ({how})"))
    se = by_kind.get("service.endpoint")
    if se is not None:
        m.steps.append(Message("EB", "NATS", f"create service endpoint {se.detail.get('endpoint')}"))
    if "push.endpoint" in by_kind:
        m.steps.append(Message("EB", "Handler", "create PushEndpoint"))
    kv = by_kind["kv.create"]
    ok = "" if kv.detail.get("ok", True) else " → key exists, start fails"
    arms: list[tuple[str, list[Step]]] = [
        ("in parallel", [Message("EB", "etcd", f"kv_create({kv.detail.get('key')}) under lease "
                                               f"{hex_id(int(kv.detail.get('lease_id') or 0))}{ok}")])]
    listen = by_kind.get("listen")
    if listen is not None:
        arms.append(("", [Message("Handler", "NATS", f"listen on {listen.detail.get('subject')} "
                                                     f"(queue {listen.detail.get('queue', 'q')})")]))
    m.steps.append(Block("par", arms))
    if "ready" in by_kind:
        m.steps.append(Note(("Handler", "NATS"), f"endpoint ready: instance {hex_id(who.lease_id)} takes requests"))
    return m


# ------------------------------------------------------------------------------------------------- sequence
def sequence(snap: Snapshot, limits: Limits) -> SequenceModel:
    """Seed §6.2: one instance's recorded life — lease, register, service, keep-alive/requests loop, stop, revoke."""
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
    if snap.dropped.get(who.runtime) and (not window or window[0].record.kind not in ("lease.grant", "lifecycle")):
        m.steps.append(Note(("App", "C"), "earlier records were dropped from the ring buffer"))
    loop = _Loop()
    states: list[str] = []
    steps = m.steps

    def flush_states() -> None:
        if states:
            steps.append(Note(("C",), " → ".join(states)))
            states.clear()

    def add(step: Step) -> None:
        flush_states()
        steps.append(step)

    running = killed = expired = False
    for tagged in window:
        rec, d = tagged.record, tagged.record.detail
        if tagged.runtime != who.runtime:
            watcher = m.participant(f"w:{tagged.runtime}", f"{tagged.runtime} (watcher)")
            loop.close(add)
            if killed and not expired and rec.kind == "watch.delete":
                expired = True  # nobody revoked it: the deletes come from the lease running out
                add(Note(("etcd",), f"lease {hex_id(who.lease_id)} expired: etcd deletes its keys"))
            add(Message("etcd", watcher, f"watch {rec.kind.split('.')[1]} {d.get('key')}", reply=True))
            continue
        kind = rec.kind
        if kind == "lifecycle":
            state = d.get("state", "")
            if running and state in ("Running", "Healthy"):
                loop.flap(state)
                continue
            loop.close(add)
            if state == State.CREATED.value:
                add(Message("App", "C", "create endpoint (Created)"))
                continue
            states.append(state)
            if state == State.HEALTHY.value:
                running = True
            continue
        if kind == "lease.grant":
            add(Message("C", "etcd", f"grant lease (TTL {d.get('ttl', 0):g} s)"))
            add(Message("etcd", "C", f"lease id {hex_id(int(d.get('lease_id', 0)))}", reply=True))
        elif kind == "start":
            add(Message("App", "C", "start()"))
        elif kind == "registry.service":
            add(Message("C", "NATS", f"{'create' if d.get('created') else 'join'} service {d.get('service')}"))
        elif kind == "kv.create":
            add(Message("C", "etcd", f"register {d.get('key')}" + ("" if d.get("ok", True) else " (key exists)")))
        elif kind == "listen":
            add(Message("C", "NATS", f"listen {d.get('subject')}"))
        elif kind in ("lease.keepalive", "request", "response"):
            loop.count(rec)
        elif kind == "lease.lost":
            loop.close(add)
            add(Note(("etcd",), f"lease {hex_id(int(d.get('lease_id', 0)))} lost: re-grant and re-register"))
        elif kind == "stop":
            loop.close(add)
            running = False
            stopping = bool(states) and states[-1] == State.STOPPING.value
            if stopping:
                states.pop()
            add(Note(("App",), "stop signal"))
            add(Message("App", "C", "stop()" + (" → Stopping" if stopping else "")))
        elif kind == "unlisten":
            add(Message("C", "NATS", "stop receiving requests"))
        elif kind == "drain":
            add(Note(("C",), f"drained {d.get('drained', 0)} in-flight, cancelled {d.get('cancelled', 0)}"))
        elif kind == "lease.revoke":
            loop.close(add)
            add(Message("C", "etcd", f"revoke lease {hex_id(int(d.get('lease_id', 0)))}"))
            keys = d.get("keys") or [who.key]
            add(Note(("etcd",), "deletes every key on the lease: " + ", ".join(map(str, keys))))
        elif kind == "kv.delete":
            add(Message("C", "etcd", f"delete {d.get('key')} (lease still held by other endpoints)"))
        elif kind == "kill":
            loop.close(add)
            running, killed = False, True
            add(Note(("C",), f"process killed: key stays until lease {hex_id(who.lease_id)} expires"))
    loop.close(add)
    flush_states()
    if len(m.steps) > limits.steps:
        cut = len(m.steps) - limits.steps
        m.steps[:] = [Note(("App", "C"), f"{cut} earlier steps not shown")] + m.steps[cut:]
    return m


def _causal(window: list[TaggedRecord], who: _Who) -> list[TaggedRecord]:
    """Watchers' deletes after the revoke that caused them.

    A runtime records its revoke when etcd has answered, and a real etcd may deliver the watch events to other
    runtimes before that answer arrives; the picture should still show cause before effect.
    """
    cause = next((i for i, t in enumerate(window) if t.runtime == who.runtime
                  and t.record.kind in ("lease.revoke", "kv.delete")), None)
    if cause is None:
        return window
    early = [t for t in window[:cause] if t.runtime != who.runtime and t.record.kind == "watch.delete"]
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
        if rec.kind == "lease.keepalive":
            self.keepalives += 1
        elif rec.kind == "request":
            self.requests += 1
        else:
            self.responses += 1
            self.items += int(rec.detail.get("items") or 0)
            if rec.detail.get("outcome") not in (None, "ok", "complete"):
                self.errors += 1

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


# ------------------------------------------------------------------------------------------------ lifecycle
_SEED_TRANSITIONS = [
    (START, State.CREATED.value, "create"),
    (State.CREATED.value, State.REGISTERED.value, "register in etcd"),
    (State.REGISTERED.value, State.RUNNING.value, "start serving"),
    (State.RUNNING.value, State.HEALTHY.value, "health check passed"),
    (State.HEALTHY.value, State.RUNNING.value, "check pending or failed"),
    (State.RUNNING.value, State.STOPPING.value, "stop signal"),
    (State.HEALTHY.value, State.STOPPING.value, "stop signal"),
    (State.STOPPING.value, State.DEREGISTERED.value, "deregister from etcd"),
    (State.DEREGISTERED.value, START, ""),
]
_FAILED_START = [
    (State.CREATED.value, State.STOPPING.value, "start failed"),
    (State.REGISTERED.value, State.STOPPING.value, "start failed"),
]


def lifecycle(snap: Snapshot, limits: Limits) -> StateModel:
    """Seed §6.1: the instance state machine; the current state marked, visited ones shaded, taken ones counted."""
    inst = _target(snap)
    path = [state for state, _ in inst.history] if inst else []
    taken: dict[tuple[str, str], int] = {}
    if path:
        taken[(START, path[0])] = 1
        for a, b in zip(path, path[1:]):
            taken[(a, b)] = taken.get((a, b), 0) + 1
        if path[-1] == State.DEREGISTERED.value:
            taken[(State.DEREGISTERED.value, START)] = 1
    model = StateModel(states=[s.value for s in State])
    for src, dst, label in _SEED_TRANSITIONS + [t for t in _FAILED_START if (t[0], t[1]) in taken]:
        model.transitions.append(Transition(src, dst, label, taken.get((src, dst), 0)))
    if inst is not None:
        model.current = inst.state
        model.visited = set(path)
        status = "killed, key waits for lease expiry" if inst.killed else f"now {inst.state}"
        model.caption = f"instance {hex_id(inst.instance_id)}\non {inst.runtime}\n{status}"
    return model


# --------------------------------------------------------------------------------------------------- pubsub
def pubsub(snap: Snapshot, limits: Limits) -> SequenceModel:
    """Seed §3.4: recorded subscriptions, publishes (with their data) and deliveries, between runtimes."""
    m = SequenceModel()
    wanted = _event_filter(snap)
    events = [t for t in snap.records if t.record.kind in ("event.subscribe", "event.publish", "event.deliver")
              and wanted(t.record.detail.get("subject", ""), t.record.detail.get("scope", ""))]
    serving: dict[str, list[str]] = {}
    for inst in snap.instances():
        if inst.runtime:
            path = names.component_path(inst.namespace, inst.component)
            if path not in serving.setdefault(inst.runtime, []):
                serving[inst.runtime].append(path)

    def subscriber(runtime: str) -> str:
        comps = serving.get(runtime, [])
        label = runtime + (f"\n({', '.join(comps[:2])})" if comps else "")
        return m.participant(f"sub:{runtime}", label)

    shown = events[-limits.messages:]
    for t in shown:  # publishers first, then NATS, then subscribers, as in the seed figure
        if t.record.kind == "event.publish":
            scope = t.record.detail.get("scope")
            m.participant(f"pub:{scope}:{t.runtime}", f"{scope}\n({t.runtime})")
    m.participant("NATS", "NATS")
    if not events:
        m.steps.append(Note(("NATS",), "no events recorded yet"))
        return m
    if len(events) > len(shown):
        m.steps.append(Note(("NATS",), f"{len(events) - len(shown)} earlier messages not shown"))
    for t in shown:
        rec, d = t.record, t.record.detail
        if rec.kind == "event.subscribe":
            m.steps.append(Message(subscriber(t.runtime), "NATS", f'subscribe("{d.get("subject")}")'))
        elif rec.kind == "event.publish":
            data = f", {_short_json(d['payload'])}" if "payload" in d else ""
            m.steps.append(Message(f"pub:{d.get('scope')}:{t.runtime}", "NATS", f'publish("{d.get("event")}"{data})'))
        else:
            m.steps.append(Message("NATS", subscriber(t.runtime), f"{d.get('event')} on {d.get('subject')}"))
    return m


def _event_filter(snap: Snapshot) -> Callable[[str, str], bool]:
    scopes: list[tuple[str, str]] = []
    for f in snap.focus:
        if f.kind in ("runtime", "registry", "cluster"):
            return lambda subject, scope: True
        if f.kind == "namespace" or not f.component:
            scopes.append((f"namespace.{f.namespace}.", f.namespace))
        else:
            scopes.append((f"namespace.{f.namespace}.component.{f.component}.",
                           names.component_path(f.namespace, f.component)))
    return lambda subject, scope: any(subject.startswith(p) or scope == s or scope.startswith(s + "/")
                                      for p, s in scopes)


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
        w_key = flow.node(f"w:{reg.runtime}:{w.prefix}", f"Shared Watcher {w.prefix}",
                          f"shared by {_plural(len(w.sharers), 'client')} · {_plural(w.instances, 'instance')}",
                          shape="cylinder", style="watcher", cluster=cl)
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
    for inst in snap.instances():
        if inst.runtime:
            instances[inst.runtime] = instances.get(inst.runtime, 0) + 1
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
    for rt, target in zip(snap.runtimes, targets):
        flow.edge(f"rt:{rt.name}", f"etcd:{target}")
        flow.edge(f"rt:{rt.name}", f"nats:{target}")
    if not snap.clusters and not snap.runtimes:
        flow.node("empty", "nothing to draw", style="more")
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
    return builder(snap, limits or Limits())
