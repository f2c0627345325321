"""Every diagram kind, drawn from a scripted system, matches its golden text; names never break a diagram.

The scenario (:func:`build_system`) takes a runtime factory, so the same system can be built on any backend.
Lease ids and client ids differ between runs; :func:`normalize` replaces each with a stable label named after
its owner before comparing. Set ``DYNAMO_NB_UPDATE_GOLDEN=1`` to rewrite the golden files.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

import dynamo_nb
from dynamo_nb import Client, DistributedRuntime, ServedEndpoint
from dynamo_nb.backends.embedded import EmbeddedWorld
from dynamo_nb.core.recorder import Record
from dynamo_nb.display import mermaid as mm
from dynamo_nb.display.diagram import Diagram
from dynamo_nb.display.kinds import KINDS, Limits
from dynamo_nb.display.snapshot import (
    ComponentSnap,
    EndpointSnap,
    Focus,
    InstanceSnap,
    NamespaceSnap,
    RuntimeSnap,
    Part,
    Snapshot,
    TaggedRecord,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("DYNAMO_NB_UPDATE_GOLDEN") == "1"

RuntimeFactory = Callable[..., Awaitable[DistributedRuntime]]


async def tokens(request: Any) -> AsyncIterator[dict[str, str]]:
    for tok in str(request.get("prompt", "")).split():
        yield {"token": tok}


@dataclass
class System:
    """A frontend, a processor and two workers in namespace "dynamo", and a "development" namespace beside it."""

    runtimes: dict[str, DistributedRuntime]
    served: dict[str, ServedEndpoint]
    clients: dict[str, Client]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def all(self) -> list[DistributedRuntime]:
        return list(self.runtimes.values())

    def labels(self) -> dict[str, str]:
        """Run-specific text → stable placeholder."""
        out = {}
        for name, rt in self.runtimes.items():
            out[f"{rt.primary_lease_id:x}"] = f"<{name}-lease>"
        for name, served in self.served.items():
            out.setdefault(f"{served.lease_id:x}", f"<{name}-lease>")
        return out

    def client_labels(self) -> dict[int, str]:
        return {client.id: name for name, client in self.clients.items()}


async def build_system(make_runtime: RuntimeFactory) -> System:
    """Serve, call, publish and stop in a fixed order; returns once every effect has been observed."""
    opts = dict(lease_ttl=60, health_check_interval=3600)  # no keep-alive or health tick during a test
    runtimes = {name: await make_runtime(name=name, **opts)
                for name in ("frontend", "processor", "worker-1", "worker-2", "dev")}
    served: dict[str, ServedEndpoint] = {}

    async def serve(key: str, runtime: str, ref: str) -> None:
        endpoint = runtimes[runtime].endpoint(ref)
        served[key] = await endpoint.endpoint_builder().handler(tokens).start()
        await served[key].wait_for_state("Healthy")

    await serve("frontend-chat", "frontend", "dynamo.Frontend.chat/completions")
    await serve("frontend-models", "frontend", "dynamo.Frontend.models")
    await serve("processor", "processor", "dynamo.Processor.generate")
    await serve("worker-1", "worker-1", "dynamo.Worker.generate")
    await serve("worker-2", "worker-2", "dynamo.Worker.generate")
    await serve("dev-frontend", "dev", "development.Frontend.chat/completions")
    await serve("dev-worker", "dev", "development.Worker.generate")

    clients = {
        "fe-to-proc": await runtimes["frontend"].endpoint("dynamo.Processor.generate").client(),
        "router": await runtimes["processor"].endpoint("dynamo.Worker.generate").client(),
        "fallback": await runtimes["processor"].endpoint("dynamo.Worker.generate").client(),
    }
    await clients["fe-to-proc"].wait_for_instances(timeout=5)
    while len(clients["router"].instance_ids()) < 2:
        await clients["router"].wait_for_instances(timeout=5)
        await asyncio.sleep(0.01)

    kv_events = await runtimes["processor"].namespace("dynamo").component("Worker").subscribe("kv_events")
    worker = runtimes["worker-1"].namespace("dynamo").component("Worker")
    await worker.publish("kv_events", {"blocks": 3, "worker": "worker-1"})
    await kv_events.get(timeout=5)

    await (await clients["fe-to-proc"].direct({"prompt": "hello world"}, served["processor"].lease_id)).collect()
    for key in ("worker-1", "worker-1", "worker-2"):
        await (await clients["router"].direct({"prompt": "a b"}, served[key].lease_id)).collect()

    await served["worker-2"].stop()
    while len(clients["router"].instance_ids()) != 1:
        await asyncio.sleep(0.005)
    return System(runtimes, served, clients, {"kv_events": kv_events})


def normalize(text: str, system: System) -> str:
    for real, label in sorted(system.labels().items(), key=lambda kv: -len(kv[0])):
        text = text.replace(real, label)
    names = system.client_labels()
    text = re.sub(r"\d+ s left at \d\d:\d\d:\d\d", "N s left at HH:MM:SS", text)  # a lease reading's when
    text = re.sub(r"\d\d:\d\d:\d\d 时剩余 \d+ 秒", "HH:MM:SS 时剩余 N 秒", text)  # the same, in Chinese
    return re.sub(r"client(#35;|#)(\d+)",
                  lambda m: f"client{m.group(1)}{names.get(int(m.group(2)), 'other')}", text)


@pytest.fixture
async def make_runtime() -> AsyncIterator[RuntimeFactory]:
    world = EmbeddedWorld()
    created: list[DistributedRuntime] = []

    async def factory(**kwargs: Any) -> DistributedRuntime:
        rt = await DistributedRuntime.create(world=world, **kwargs)
        created.append(rt)
        return rt

    yield factory
    for rt in reversed(created):
        await rt.shutdown()


@pytest.fixture
async def system(make_runtime: RuntimeFactory) -> System:
    return await build_system(make_runtime)


def target(system: System, kind: str) -> Any:
    """What each golden draws: chosen so that every instance shown is attributed to a runtime (stable order)."""
    rts = system.runtimes
    return {
        "hierarchy": system.all,
        "structure": [rts["processor"].namespace("dynamo").component("Worker"), rts["worker-1"]],
        "reference": [rts["frontend"].endpoint("dynamo.Processor.generate"), rts["processor"]],
        "startup": system.served["worker-1"],
        "registry": rts["processor"].registry,
        "lifecycle": system.served["worker-2"],
        "sequence": [system.served["worker-2"], rts["processor"]],
        "pubsub": system.all,
        "topology": system.all,
        "graph": [graph_part(system), rts["processor"], rts["worker-1"], rts["worker-2"]],
    }[kind]


def graph_part(system: System) -> Part:
    """A served service graph over the system's Processor and Worker runtimes, as serve()'s handle describes it."""
    from dynamo_nb.core.snapshot import GraphSnap, ServiceNodeSnap, WorkerSnap

    w1, w2, proc = system.served["worker-1"], system.served["worker-2"], system.served["processor"]
    workers = (WorkerSnap("Worker-0", "worker-1", w1.lease_id, str(w1.state), (0,)),
               WorkerSnap("Worker-1", "worker-2", w2.lease_id, "", (1,)))
    return Part(Focus("graph", "", "dynamo", "Processor"), graph=GraphSnap("Processor", (
        ServiceNodeSnap("Worker", "dynamo", "Worker", ("generate",), workers, 2, (("gpu", "1"),)),
        ServiceNodeSnap("Processor", "dynamo", "Processor", ("generate",),
                        (WorkerSnap("Processor-0", "processor", proc.lease_id, str(proc.state)),), 1, (),
                        (("worker", "Worker"),)))))


# ------------------------------------------------------------------------------------------- Mermaid lint
_TEXT = r'(?:[^"#;{}%<>|`\\]|#\w+;|<br/>)*'  # escaped text: hostile characters only as entity codes
_NODE = re.compile(r'^ *n\d+(\["|\("|\(\["|\(\("|\[\("|\{\{"|\[\["|>")' + _TEXT + r'("\]|"\)|"\]\)|"\)\)|"\)\]|"\}\}|"\]\]|"\])$')
_EDGE = re.compile(r'^ *n\d+ (-->|-\.->|==>)(\|"' + _TEXT + r'"\|)? n\d+$')
_STACK = re.compile(r'^  c\d+ ~~~ c\d+$')  # a layout hint: one box below another
_FLOW_OTHER = re.compile(r'^( *subgraph c\d+\["' + _TEXT + r'"\]| *direction (LR|TB)| *end| *classDef \w+ [\w:#,. -]+|'
                         r' *class [n\d,]+ \w+|flowchart (LR|TB)|---|config:|  flowchart:|    wrappingWidth: \d+)$')
_SEQ = re.compile(r'^(sequenceDiagram| *participant p\d+ as ' + _TEXT + r'| *p\d+(->>|-->>)p\d+: ' + _TEXT +
                  r'| *Note over p\d+(,p\d+)?: ' + _TEXT + r'| *(loop|par|and|else) ?' + _TEXT + r'| *end)$')
_CLASS = re.compile(r'^(classDiagram| *direction (TB|LR)| *classDef \w+ [\w:#,. -]+| *class C\d+\["' + _TEXT +
                    r'"\] \{| *[-+]' + _TEXT + r'| *\}| *C\d+( "' + _TEXT + r'")? --> ("' + _TEXT + r'" )?C\d+'
                    r'( : ' + _TEXT + r')?| *style C\d+ [\w:#,. -]+)$')
_STATE = re.compile(r'^(stateDiagram-v2| *direction (LR|TB)| *classDef \w+ [\w:#,. -]+| *state "' + _TEXT + r'" as s\d+|'
                    r' *(s\d+|\[\*\]) --> (s\d+|\[\*\])(: ' + _TEXT + r')?| *note right of s\d+| *end note| *'
                    + _TEXT + r'| *class [s\d,]+ \w+)$')


def lint_mermaid(text: str) -> None:
    """Every line is one of the statements the builders emit, with all system text escaped."""
    lines = text.rstrip("\n").split("\n")
    if lines[0] == "---":  # front matter: the renderer's own configuration, no system text
        lines = lines[lines.index("---", 1) + 1:]
    first = lines[0]
    rules = {"flowchart": [_NODE, _EDGE, _STACK, _FLOW_OTHER], "sequenceDiagram": [_SEQ], "classDiagram": [_CLASS],
             "stateDiagram-v2": [_STATE]}[first.split()[0]]
    for line in lines:
        assert any(rule.match(line) for rule in rules), f"unexpected Mermaid line: {line!r}"


# ------------------------------------------------------------------------------------------------ goldens
@pytest.mark.parametrize("kind", list(KINDS))
async def test_golden_text_of_every_kind(system: System, kind: str) -> None:
    drawn = dynamo_nb.diagram(target(system, kind), kind)
    assert drawn.kind == kind
    lint_mermaid(drawn.mermaid)
    for suffix, text in (("mmd", drawn.mermaid), ("dot", drawn.dot), ("txt", drawn.text + "\n")):
        path = GOLDEN / f"{kind}.{suffix}"
        got = normalize(text, system)
        if suffix == "dot":  # sequence layouts are pinned by coordinates that depend on the ids' lengths
            got = re.sub(r'pos="[-\d.]+,[-\d.]+!"', 'pos="…"', got)
            got = re.sub(r"\b(width|height)=[\d.]+", r"\1=…", got)
        if UPDATE:
            path.parent.mkdir(exist_ok=True)
            path.write_text(got, encoding="utf-8")
        assert got == path.read_text(encoding="utf-8"), f"{path.name} differs (DYNAMO_NB_UPDATE_GOLDEN=1 rewrites)"


async def test_goldens_show_what_the_seed_figures_show(system: System) -> None:
    """Spot checks that read like the seed's figures, independent of the golden files."""
    d = {kind: normalize(dynamo_nb.diagram(target(system, kind), kind).mermaid, system) for kind in KINDS}
    assert "Namespace: development" in d["hierarchy"] and "Namespace: dynamo" in d["hierarchy"]
    assert '"calls ×1<br/>via client#35;fe-to-proc"' in d["hierarchy"]
    assert "+etcd_path() dynamo/components/Worker" in d["structure"]
    assert "+service_name() dynamo#124;Worker" in d["structure"] and "+path() dynamo/Worker" in d["structure"]
    assert 'n0["Namespace dynamo"]' in d["reference"] and "Endpoint generate" in d["reference"]
    assert "par in parallel" in d["startup"] and "\n  and\n" in d["startup"]
    assert "kv_create(dynamo/components/Worker/generate:<worker-1-lease>)" in d["startup"]
    assert "Note over p5,p3: endpoint ready" in d["startup"]
    assert "shared by 2 clients" in d["registry"] and "without Registry: 2 watchers" in d["registry"]
    assert "with Registry: 1 watcher" in d["registry"]
    assert "class s5 current" in d["lifecycle"] and "class s0,s1,s2,s3,s4 visited" in d["lifecycle"]
    assert "loop running" in d["sequence"] and "requests ×1" in d["sequence"]
    assert "revoke lease <worker-2-lease>" in d["sequence"]
    assert "watch delete dynamo/components/Worker/generate:<worker-2-lease>" in d["sequence"]
    assert 'publish(#quot;kv_events#quot;, #123;#quot;blocks#quot;: 3' in d["pubsub"]
    assert "subscribe(#quot;namespace.dynamo.component.Worker.kv_events#quot;)" in d["pubsub"]
    assert '==>|"depends · self.worker"|' in d["graph"] and "@service Processor · entry" in d["graph"]
    assert "instance <worker-1-lease> · Healthy · GPU 0" in d["graph"] and "2 workers · gpu: 1" in d["graph"]


async def test_default_kind_of_each_object(system: System) -> None:
    rts = system.runtimes
    cases = [
        (rts["frontend"], "hierarchy"),
        (rts["frontend"].namespace("dynamo"), "hierarchy"),
        (rts["processor"].namespace("dynamo").component("Processor"), "structure"),
        (rts["frontend"].endpoint("dynamo.Processor.generate"), "reference"),
        (system.served["worker-1"], "lifecycle"),
        (system.clients["router"], "hierarchy"),
        (rts["processor"].registry, "registry"),
        (dynamo_nb.LocalCluster(), "topology"),
        (system.all, "hierarchy"),
    ]
    for obj, kind in cases:
        drawn = dynamo_nb.diagram(obj)
        assert drawn.kind == kind, obj
        lint_mermaid(drawn.mermaid)
        assert drawn.text.strip()


async def test_client_hierarchy_shows_its_instances_and_the_client(system: System) -> None:
    text = dynamo_nb.diagram(system.clients["router"]).mermaid
    assert f"instance {system.served['worker-1'].lease_id:x}" in text
    assert f"{system.served['worker-2'].lease_id:x}" not in text  # stopped: gone from the watcher
    assert "processor (application code)" in text  # who made the calls
    assert f"calls ×2<br/>via client#35;{system.clients['router'].id}\"" in text  # to worker-1, live
    assert f"calls ×1<br/>via client#35;{system.clients['router'].id}<br/>to 1 instance no longer live" in text
    assert "Component Frontend" not in text


async def test_namespace_hierarchy_is_isolated(system: System) -> None:
    dev = dynamo_nb.diagram(system.runtimes["dev"].namespace("development")).mermaid
    assert "Namespace: development" in dev and "dynamo" not in dev
    empty = dynamo_nb.diagram(system.runtimes["frontend"].namespace("staging")).mermaid
    assert "Namespace: staging" in empty and "no components known yet" in empty


async def test_sequence_merges_the_records_of_several_runtimes(system: System) -> None:
    alone = dynamo_nb.diagram(system.served["worker-2"], "sequence").mermaid
    merged = dynamo_nb.diagram([system.served["worker-2"], system.runtimes["processor"]], "sequence").mermaid
    assert "processor (watcher)" not in alone
    assert "participant p4 as processor<br/>(watcher)" in merged
    put, delete = merged.index("watch put"), merged.index("watch delete")
    assert merged.index("register dynamo/components") < put < merged.index("loop running") < delete
    assert merged.index("revoke lease") < delete


async def test_diagram_is_a_snapshot_not_a_live_view(system: System) -> None:
    before = dynamo_nb.diagram(system.runtimes["processor"], "pubsub")
    await system.runtimes["worker-1"].namespace("dynamo").component("Worker").publish("kv_events", {"n": 2})
    await system.extra["kv_events"].get(timeout=5)
    after = dynamo_nb.diagram(system.runtimes["processor"], "pubsub")
    assert before.mermaid.count("deliver kv_events") == 1
    assert after.mermaid.count("deliver kv_events") == 2


async def test_unknown_kind_and_unknown_object_are_clear_errors(system: System) -> None:
    with pytest.raises(ValueError, match="unknown diagram kind 'flow'.*hierarchy"):
        dynamo_nb.diagram(system.runtimes["frontend"], "flow")
    with pytest.raises(TypeError, match="cannot draw a int"):
        dynamo_nb.diagram(42)
    with pytest.raises(ValueError, match="nothing to draw"):
        dynamo_nb.diagram([])


async def test_a_killed_worker_is_drawn_until_its_lease_expires() -> None:
    clock = dynamo_nb.ManualClock()
    world = EmbeddedWorld(clock=clock)
    opts = dict(world=world, lease_ttl=10, health_check_interval=3600)
    worker = await DistributedRuntime.create(name="worker", **opts)
    caller = await DistributedRuntime.create(name="caller", **opts)
    try:
        served = await worker.endpoint("dynamo.Worker.generate").endpoint_builder().handler(tokens).start()
        await served.wait_for_state("Healthy")
        client = await caller.endpoint("dynamo.Worker.generate").client()
        await client.wait_for_instances(timeout=5)
        await worker.kill()
        hierarchy = dynamo_nb.diagram(worker).mermaid
        assert "Killed · worker · key stays until its lease expires at " in hierarchy
        assert served.state == dynamo_nb.State.KILLED and served.history[-1][0] == dynamo_nb.State.KILLED
        assert client.instance_ids() == [served.lease_id]  # still in etcd
        clock.advance(10.5)
        while client.instance_ids():
            await asyncio.sleep(0.005)
        text = dynamo_nb.diagram([served, caller], "sequence").mermaid
        lint_mermaid(text)
        killed = text.index("process killed (Killed): key stays until lease")
        expired = text.index(f"lease {served.lease_id:x} expired: etcd deletes its keys")
        assert killed < expired < text.index("watch delete dynamo/components/Worker/generate:")
        assert "revoke lease" not in text
    finally:
        await caller.shutdown()


# ---------------------------------------------------------------------------------------------- escaping
HOSTILE = 'say "hi" | <b>x</b> # 1; %%{init}%% `code` {a} style:#1; \\ end'


async def test_awkward_names_and_hostile_text_never_break_a_diagram(make_runtime: RuntimeFactory) -> None:
    rt = await make_runtime(name=HOSTILE, lease_ttl=60, health_check_interval=3600)
    endpoint = rt.namespace("dynamo").component("a-b_C").endpoint("chat/completions")
    served = await endpoint.endpoint_builder().handler(tokens).start()
    await served.wait_for_state("Healthy")
    client = await endpoint.client()
    await client.wait_for_instances(timeout=5)
    await (await client.generate({"prompt": "x"})).collect()
    sub = await rt.namespace("dynamo").component("a-b_C").subscribe("kv_events")
    await rt.namespace("dynamo").component("a-b_C").publish("kv_events", {"text": HOSTILE[:40]})
    await sub.get(timeout=5)
    for kind in KINDS:
        drawn = dynamo_nb.diagram([served, rt] if kind in ("sequence", "startup", "lifecycle") else rt, kind)
        lint_mermaid(drawn.mermaid)
        assert "%%{" not in drawn.mermaid and '"hi"' not in drawn.mermaid
        assert "<b>" not in drawn.mermaid
        dot = drawn.dot
        assert HOSTILE not in dot  # only ever inside an escaped string
        assert "a-b_C" in drawn.text or kind in ("topology", "pubsub", "lifecycle", "registry", "graph")
    hierarchy = dynamo_nb.diagram(rt).mermaid
    assert mm.escape(HOSTILE) in hierarchy
    assert "Component a-b_C" in hierarchy and "Endpoint chat/completions" in hierarchy
    assert "dynamo#124;a-b_C" in dynamo_nb.diagram(rt, "structure").mermaid  # the service name, escaped
    pubsub = dynamo_nb.diagram(rt, "pubsub")
    assert "#quot;text#quot;" in pubsub.mermaid and HOSTILE[:20] in pubsub.text.replace('\\"', '"')


def test_escape_covers_every_character_that_ends_a_label() -> None:
    out = mm.escape('a"b|c<d>e#f;g`h{i}j%k\\l\nm')
    bare = re.sub(r"#\w+;", "", out)
    for ch in '"|<>;#`{}%\\\n':
        assert ch not in bare
    assert out == "a#quot;b#124;c#lt;d#gt;e#35;f#59;g#96;h#123;i#125;j#37;k#92;l m"
    assert mm.escape("chat/completions (v1): ok") == "chat/completions (v1): ok"
    assert mm.escape("style:#1;") == "st#8203;yle:#35;1#59;"


# ------------------------------------------------------------------------------- hand-built snapshots
def _rec(seq: int, kind: str, actor: str, target: str, **detail: Any) -> TaggedRecord:
    return TaggedRecord("w", Record(seq, 1000.0 + seq, kind, actor, target, detail))


def test_sequence_folds_keepalives_requests_and_health_flaps_into_one_loop() -> None:
    ref, lease, key, subject = "ns.C.gen", 0xAB, "ns/components/C/gen:ab", "ns|C.gen-ab"
    records = [
        _rec(1, "lease.grant", "w", "etcd", lease_id=lease, ttl=3.0),
        _rec(2, "lifecycle", ref, ref, state="Created"),
        _rec(3, "start", "App", "EndpointBuilder", endpoint=ref),
        _rec(4, "registry.service", "EndpointBuilder", "Registry", service="ns|C", created=True, endpoint=ref),
        _rec(5, "kv.create", "EndpointBuilder", "etcd", key=key, lease_id=lease, ok=True),
        _rec(6, "listen", "Handler", "NATS", subject=subject, queue="q"),
        _rec(7, "lifecycle", ref, ref, state="Registered", instance_id=lease),
        _rec(8, "lifecycle", ref, ref, state="Running", instance_id=lease),
        _rec(9, "lifecycle", ref, ref, state="Healthy", instance_id=lease),
        *[_rec(10 + i, "lease.keepalive", "w", "etcd", lease_id=lease) for i in range(5)],
        _rec(20, "request", "Client", ref, request_id="r1", instance_id=lease),
        _rec(21, "response", ref, "Client", request_id="r1", items=3, outcome="ok", instance_id=lease),
        _rec(22, "lifecycle", ref, ref, state="Running", instance_id=lease),
        _rec(23, "lifecycle", ref, ref, state="Healthy", instance_id=lease),
        _rec(24, "kill", "App", ref, instance_id=lease),
        _rec(25, "lease.keepalive", "other", "etcd", lease_id=0xCD),
    ]
    inst = InstanceSnap("ns", "C", "gen", lease, key, subject, runtime="w", state="Healthy", killed=True,
                        history=(("Created", 1.0), ("Registered", 2.0), ("Running", 3.0), ("Healthy", 4.0)))
    snap = Snapshot((RuntimeSnap("w", lease_id=lease),),
                    (NamespaceSnap("ns", (ComponentSnap("ns", "C", (EndpointSnap("ns", "C", "gen", (inst,)),)),)),),
                    records=tuple(records), focus=(Focus("instance", "w", "ns", "C", "gen", lease),))
    text = Diagram(snap, "sequence").mermaid
    lint_mermaid(text)
    assert "loop running" in text and "Keep-Alive ×5" in text and "requests ×1" in text
    assert "3 items streamed back" in text and "health Running ⇄ Healthy ×2" in text
    assert "process killed (Killed): key stays until lease ab expires" in text
    assert text.count("loop running") == 1
    life = Diagram(snap, "lifecycle").mermaid
    assert "class s3 current" in life and "killed" in life


def test_watchers_see_a_delete_after_the_revoke_that_caused_it() -> None:
    """A real etcd may deliver the watch event before the revoking runtime records its answer."""
    ref, lease, key = "ns.C.gen", 0xAB, "ns/components/C/gen:ab"
    records = [
        _rec(1, "lifecycle", ref, ref, state="Created"),
        _rec(2, "kv.create", "EndpointBuilder", "etcd", key=key, lease_id=lease, ok=True),
        _rec(3, "stop", "App", ref, instance_id=lease),
        TaggedRecord("frontend", Record(4, 1004.0, "watch.delete", "frontend", "etcd", {"key": key})),
        _rec(5, "lease.revoke", ref, "etcd", lease_id=lease, keys=[key]),
    ]
    inst = InstanceSnap("ns", "C", "gen", lease, key, "ns|C.gen-ab", runtime="w", state="Deregistered")
    snap = Snapshot((RuntimeSnap("w", lease_id=lease),),
                    (NamespaceSnap("ns", (ComponentSnap("ns", "C", (EndpointSnap("ns", "C", "gen", (inst,)),)),)),),
                    records=tuple(records), focus=(Focus("instance", "w", "ns", "C", "gen", lease),))
    text = Diagram(snap, "sequence").mermaid
    assert text.index("revoke lease ab") < text.index("deletes every key") < text.index("watch delete " + key)


def test_startup_reports_records_that_fell_out_of_the_ring_buffer() -> None:
    inst = InstanceSnap("ns", "C", "gen", 1, "ns/components/C/gen:1", "ns|C.gen-1", runtime="w", state="Healthy")
    snap = Snapshot((RuntimeSnap("w", lease_id=1),),
                    (NamespaceSnap("ns", (ComponentSnap("ns", "C", (EndpointSnap("ns", "C", "gen", (inst,)),)),)),),
                    focus=(Focus("instance", "w", "ns", "C", "gen", 1),), dropped={"w": 5000})
    assert "no longer in the record buffer" in Diagram(snap, "startup").mermaid
    assert "earlier records were dropped" in Diagram(snap, "sequence").mermaid


# ------------------------------------------------------------------------------------------------ scale
def big_snapshot(endpoints: int = 1000, instances: int = 3) -> Snapshot:
    runtimes = tuple(RuntimeSnap(f"worker-{i}", lease_id=0x100 + i) for i in range(instances))
    eps = tuple(EndpointSnap("dynamo", "Worker", f"gen{e}", tuple(
        InstanceSnap("dynamo", "Worker", f"gen{e}", rt.lease_id, runtime=rt.name, state="Healthy")
        for rt in runtimes)) for e in range(endpoints))
    return Snapshot(runtimes, (NamespaceSnap("dynamo", (ComponentSnap("dynamo", "Worker", eps),)),),
                    focus=tuple(Focus("runtime", rt.name) for rt in runtimes))


@pytest.mark.parametrize("kind", ["hierarchy", "structure", "reference"])
def test_a_thousand_endpoints_collapse_to_a_readable_diagram(kind: str) -> None:
    snap = big_snapshot()
    drawn = Diagram(snap, kind)
    lint_mermaid(drawn.mermaid)
    assert drawn.mermaid.count("\n") < 200
    assert re.search(r"\+99\d more endpoints", drawn.mermaid), drawn.mermaid
    if drawn.graph is not None:
        assert drawn.graph.number_of_nodes() <= Limits().nodes + 10


def test_a_figure_of_a_large_system_does_not_grow_with_it() -> None:
    """Speed is measured by benchmarks/bench_diagrams.py; here: the figure stays the same size as the system grows."""
    sizes = {n: Diagram(big_snapshot(n), "hierarchy").graph.number_of_nodes() for n in (1000, 5000)}
    assert sizes[1000] == sizes[5000] <= Limits().nodes + 10


async def test_runtime_sequence_still_draws_an_instance_that_has_stopped():
    from dynamo_nb import DistributedRuntime, EmbeddedWorld, diagram

    rt = await DistributedRuntime.create(world=EmbeddedWorld())

    async def handler(request):
        yield request

    served = await rt.endpoint("dynamo.w.gen").endpoint_builder().handler(handler).start()
    await served.stop()
    text = diagram(rt, "sequence").mermaid
    assert "no served instance recorded yet" not in text
    assert f"revoke lease {served.lease_id:x}" in text
    await rt.shutdown()
