"""Service SDK costs: ``serve()`` start until every worker is registered, for 1, 4 and 16 workers, and a call
through ``depends`` (Processor → worker) next to a direct client call to the worker, in the same run.

Run: ``python benchmarks/bench_sdk.py`` (embedded backend; ``--servers`` runs a LocalCluster instead, and also
times ``dynamo-nb serve`` with every worker its own process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from dynamo_nb import DistributedRuntime, EmbeddedWorld
from dynamo_nb.sdk import depends, dynamo_endpoint, serve, service


@service(dynamo={"namespace": "bench"})
class Worker:
    @dynamo_endpoint()
    async def generate(self, request):
        yield request


@service(dynamo={"namespace": "bench"})
class Processor:
    worker = depends(Worker)

    @dynamo_endpoint()
    async def generate(self, request):
        async for item in self.worker.generate(request):
            yield item


async def one_call(client: Any) -> float:
    began = time.perf_counter()
    async for _ in await client.round_robin({"x": 1}):
        pass
    return time.perf_counter() - began


async def serve_processes(cluster: Any, n: int) -> float:
    """``dynamo-nb serve bench_sdk:Worker`` with ``n`` workers, from start until it reports them all serving."""
    here = Path(__file__).resolve().parent
    env = dict(os.environ, ETCD_ENDPOINTS=cluster.etcd_endpoints, NATS_SERVER=cluster.nats_server,
               PYTHONPATH=os.pathsep.join([str(here.parent), str(here)]))
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dynamo_nb", "serve", "bench_sdk:Worker", "--json", f"--Worker.ServiceArgs.workers={n}",
        cwd=here, env=env, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), 120)
            if not line:
                raise RuntimeError("dynamo-nb serve ended before serving")
            if json.loads(line).get("event") == "serving":
                return time.perf_counter() - began
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 60)


async def main(calls: int, servers: bool) -> None:
    cluster = None
    if servers:
        from dynamo_nb.cluster import LocalCluster

        cluster = await LocalCluster().start()

    def options() -> dict[str, Any]:
        if cluster is not None:
            return {"etcd_endpoints": cluster.etcd_endpoints, "nats_server": cluster.nats_server}
        return {"world": world}

    print(f"backend: {'LocalCluster' if servers else 'embedded'}")
    for n in (1, 4, 16):
        world = EmbeddedWorld()
        began = time.perf_counter()
        graph = await serve(Worker, config={"Worker": {"ServiceArgs": {"workers": n}}}, **options())
        took = time.perf_counter() - began
        print(f"serve() until {n:>2} worker(s) registered: {took * 1000:8.1f} ms  ({took / n * 1000:.1f} ms a worker)")
        await graph.stop()

    if cluster is not None:
        for n in (1, 4, 16):
            took = await serve_processes(cluster, n)
            print(f"dynamo-nb serve until {n:>2} worker process(es) ready: {took * 1000:8.1f} ms")

    world = EmbeddedWorld()
    graph = await serve(Processor, **options())
    caller = await DistributedRuntime.create(**options())
    direct = await caller.endpoint("bench.Worker.generate").client()
    through = await caller.endpoint("bench.Processor.generate").client()
    await direct.wait_for_instances(timeout=10)
    await through.wait_for_instances(timeout=10)
    for client in (direct, through):  # warm up
        await one_call(client)
    a, b = [], []
    for _ in range(calls):  # interleaved, so both see the same machine
        a.append(await one_call(direct))
        b.append(await one_call(through))
    med_a, med_b = statistics.median(a) * 1e6, statistics.median(b) * 1e6
    print(f"direct client call to Worker:     median {med_a:8.1f} µs over {calls} calls")
    print(f"call through depends (Processor): median {med_b:8.1f} µs  ({med_b / med_a:.2f}x direct: one more hop)")
    await caller.shutdown()
    await graph.stop()
    if cluster is not None:
        await cluster.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--servers", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.servers))
