"""How long a diagram takes at scale: 1,000 endpoints × 3 instances (SPEC §9: readable, and fast enough to redraw live).

Prints, for each kind, the median time to build the Mermaid text from a snapshot of that size (the budget is
20 ms), the size of the text, and how many nodes it draws (it collapses to "+N more" past its limits). With
``--live`` it also serves the same topology on the embedded backend and times ``snapshot()`` of it, which a
live view pays on every redraw.

    python benchmarks/bench_diagrams.py [--endpoints 1000] [--instances 3] [--components 10] [--runs 25] [--live]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Callable

from dynamo_nb import names
from dynamo_nb.display.diagram import Diagram
from dynamo_nb.display.snapshot import (
    ClientSnap,
    ComponentSnap,
    EndpointSnap,
    Focus,
    InstanceSnap,
    NamespaceSnap,
    RegistrySnap,
    RuntimeSnap,
    ServiceSnap,
    Snapshot,
    WatcherSnap,
)

__all__ = ["big_snapshot", "median_ms", "main"]

BUDGET_MS = 20.0


def big_snapshot(endpoints: int = 1000, instances: int = 3, components: int = 10) -> Snapshot:
    """A snapshot of ``endpoints`` endpoints spread over ``components`` components, ``instances`` instances each."""
    per_component = max(1, endpoints // components)
    runtimes = tuple(RuntimeSnap(f"worker-{i}", lease_id=0x1000 + i) for i in range(instances))
    comps = []
    for c in range(components):
        comp = f"Worker{c}"
        eps = []
        for e in range(per_component):
            ep = f"generate{e}"
            insts = tuple(
                InstanceSnap("dynamo", comp, ep, rt.lease_id, names.instance_key("dynamo", comp, ep, rt.lease_id),
                             names.endpoint_subject("dynamo", comp, ep, rt.lease_id), runtime=rt.name,
                             state="Healthy", history=(("Created", 0.0), ("Registered", 0.1), ("Running", 0.2),
                                                       ("Healthy", 0.3)))
                for rt in runtimes)
            eps.append(EndpointSnap("dynamo", comp, ep, insts))
        comps.append(ComponentSnap("dynamo", comp, tuple(eps)))
    registries = tuple(
        RegistrySnap(rt.name, tuple(ServiceSnap(names.component_service_name("dynamo", c.name),
                                                names.service_slug("dynamo", c.name),
                                                tuple(e.name for e in c.endpoints)) for c in comps),
                     (WatcherSnap("dynamo/components/Worker0", ((i, f"client#{i}"),), len(comps[0].endpoints)),))
        for i, rt in enumerate(runtimes))
    clients = tuple(ClientSnap(i, rt.name, "dynamo", "Worker0", "generate0", (rt.lease_id,)) for i, rt in
                    enumerate(runtimes))
    focus = tuple(Focus("runtime", rt.name) for rt in runtimes)
    return Snapshot(runtimes, (NamespaceSnap("dynamo", tuple(comps)),), clients, registries, (), (), focus)


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


async def _live_snapshot_ms(endpoints: int, instances: int, runs: int) -> tuple[float, int]:
    from dynamo_nb import DistributedRuntime, EmbeddedWorld
    from dynamo_nb.display.snapshot import snapshot

    async def handler(request: object):  # noqa: ANN202 - an async generator handler
        yield request

    world = EmbeddedWorld()
    rts = [await DistributedRuntime.create(world=world, name=f"worker-{i}", lease_ttl=600,
                                           health_check_interval=3600) for i in range(instances)]
    try:
        for e in range(endpoints):
            for rt in rts:
                await rt.namespace("dynamo").component(f"Worker{e % 10}").endpoint(f"generate{e}") \
                    .endpoint_builder().handler(handler).start()
        snap = snapshot(rts)
        return median_ms(lambda: snapshot(rts), runs), sum(1 for _ in snap.instances())
    finally:
        for rt in rts:
            await rt.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--components", type=int, default=10)
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--live", action="store_true", help="also time snapshot() of a served embedded system")
    args = parser.parse_args(argv)

    snap = big_snapshot(args.endpoints, args.instances, args.components)
    total = sum(1 for _ in snap.instances())
    _ = Diagram(snap, "hierarchy").mermaid  # warm up: imports networkx once
    print(f"snapshot: {args.endpoints} endpoints × {args.instances} instances = {total} instances "
          f"in {args.components} components; median of {args.runs} runs; budget {BUDGET_MS:g} ms")
    worst = 0.0
    for kind in ("hierarchy", "structure", "reference", "registry", "lifecycle", "topology"):
        ms = median_ms(lambda kind=kind: Diagram(snap, kind).mermaid, args.runs)
        d = Diagram(snap, kind)
        model = d.model
        nodes = (d.graph.number_of_nodes() if d.graph is not None
                 else len(getattr(model, "classes", None) or getattr(model, "states", None) or ()))
        more = d.mermaid.count("more ")
        worst = max(worst, ms)
        print(f"  {kind:<10} {ms:7.2f} ms   {len(d.mermaid):6d} chars   {nodes:4d} nodes   {more} '+N more' nodes")
    print(f"slowest kind: {worst:.2f} ms ({'within' if worst <= BUDGET_MS else 'OVER'} the {BUDGET_MS:g} ms budget)")
    if args.live:
        ms, n = asyncio.run(_live_snapshot_ms(args.endpoints, args.instances, max(5, args.runs // 5)))
        print(f"snapshot() of a served embedded system with {n} instances: {ms:.2f} ms")


if __name__ == "__main__":
    main()
