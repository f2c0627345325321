"""How the embedded backend's costs grow with the number of endpoints: flat is the aim.

For each n (default 100, 1,000 and 10,000 endpoints served by one runtime, over 10 components, with the default
health checks running), prints: the mean ``start()`` of the first and the last 100 endpoints and their ratio, the
whole start, a component event ``publish()`` and a one-item call (medians, a client in a second runtime), the
worker's ``snapshot()`` and each diagram kind's Mermaid of it (cold: a fresh snapshot each run), and memory per
endpoint (traced allocations, measured apart at 1,000 endpoints). Timings are medians on a shared machine:
compare a column with itself across n, not with another run.

    python benchmarks/bench_scale.py [--sizes 100 1000 10000] [--calls 500] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
import tracemalloc
from typing import Any, Awaitable, Callable

from dynamo_nb import DistributedRuntime, EmbeddedWorld, diagram

__all__ = ["main", "start_endpoints", "start_endpoints_from", "memory_per_endpoint"]

COMPONENTS = 10
KINDS = ("hierarchy", "structure", "reference", "startup", "registry", "lifecycle", "sequence", "pubsub",
         "topology")


async def _echo(request: Any):  # noqa: ANN201 - an async generator handler
    yield request


async def start_endpoints(runtime: DistributedRuntime, n: int) -> list[Any]:
    """Serve ``n`` endpoints over :data:`COMPONENTS` components; returns the served instances with their times."""
    served = []
    for i in range(n):
        t0 = time.perf_counter()
        s = await runtime.namespace("scale").component(f"Worker{i % COMPONENTS}").endpoint(f"ep{i}") \
            .endpoint_builder().handler(_echo).start()
        served.append((s, time.perf_counter() - t0))
    return served


async def _median_us(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def _median_ms(fn: Callable[[], Any], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


async def one_size(n: int, calls: int, runs: int) -> dict[str, float]:
    world = EmbeddedWorld()
    worker = await DistributedRuntime.create(world=world, name="worker")
    frontend = await DistributedRuntime.create(world=world, name="frontend")
    try:
        t0 = time.perf_counter()
        served = await start_endpoints(worker, n)
        total = time.perf_counter() - t0
        head = [t for _, t in served[:100]]
        tail = [t for _, t in served[-100:]]
        out: dict[str, float] = {
            "start first-100 (ms)": statistics.mean(head) * 1e3,
            "start last-100 (ms)": statistics.mean(tail) * 1e3,
            "start last/first": statistics.mean(tail) / statistics.mean(head),
            "start all (s)": total,
        }
        component = worker.namespace("scale").component("Worker0")
        sub = frontend.namespace("scale").component("Worker0").subscribe("kv")
        out["publish (µs)"] = await _median_us(lambda: component.publish("kv", {"blocks": 1}), calls)
        await sub.close()
        client = await frontend.namespace("scale").component("Worker0").endpoint("ep0").client()
        await client.wait_for_instances(timeout=5)

        async def call() -> None:
            async for _ in await client.round_robin({"x": 1}):
                pass

        for _ in range(50):
            await call()
        out["call (µs)"] = await _median_us(call, calls)
        out["snapshot (ms)"] = _median_ms(worker.snapshot, runs)
        objects = {"reference": worker.namespace("scale").component("Worker0").endpoint("ep0"),
                   "startup": served[0][0], "lifecycle": served[0][0], "sequence": served[0][0]}
        for kind in KINDS:
            obj = objects.get(kind, worker)
            out[f"{kind} (ms)"] = _median_ms(lambda obj=obj, kind=kind: diagram(obj, kind).mermaid, runs)
        return out
    finally:
        await frontend.shutdown()
        await worker.shutdown()


async def memory_per_endpoint(n: int = 1000) -> float:
    """Bytes allocated per served endpoint (runtime, registry, etcd key, subscription, recorder share)."""
    world = EmbeddedWorld()
    worker = await DistributedRuntime.create(world=world, name="worker")
    try:
        await start_endpoints(worker, 10)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        await start_endpoints_from(worker, 10, n)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return (after - before) / n
    finally:
        await worker.shutdown()


async def start_endpoints_from(runtime: DistributedRuntime, first: int, n: int) -> None:
    for i in range(first, first + n):
        await runtime.namespace("scale").component(f"Worker{i % COMPONENTS}").endpoint(f"ep{i}") \
            .endpoint_builder().handler(_echo).start()


async def amain(sizes: list[int], calls: int, runs: int) -> None:
    rows: dict[int, dict[str, float]] = {}
    for n in sizes:
        rows[n] = await one_size(n, calls, runs)
    keys = list(rows[sizes[0]])
    print(f"{'measure':28}" + "".join(f"{f'n={n:,}':>12}" for n in sizes))
    for key in keys:
        print(f"{key:28}" + "".join(f"{rows[n][key]:12.3f}" for n in sizes))
    print(f"{'memory per endpoint (KiB)':28}{await memory_per_endpoint() / 1024:12.1f}   (traced, at 1,000)")
    last = rows[sizes[-1]]
    print(f"targets: start last/first ≤ 1.3 -> {'met' if last['start last/first'] <= 1.3 else 'NOT met'}; "
          f"{sizes[-1]:,} endpoints start in ≤ 5 s -> {'met' if last['start all (s)'] <= 5 else 'NOT met'}; "
          f"call ≤ 25 µs -> {'met' if last['call (µs)'] <= 25 else 'NOT met'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10_000])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    asyncio.run(amain(args.sizes, args.calls, args.runs))


if __name__ == "__main__":
    main()
