"""How the embedded backend's costs grow with the number of endpoints: flat is the aim.

For each n (default 100, 1,000 and 10,000 endpoints served by one runtime, over 10 components, with the default
health checks running), prints: the mean ``start()`` of the first and the last 100 endpoints and their ratio, the
whole start (wall clock and this process's CPU time), a component event ``publish()`` and a one-item call
(medians, a client in a second runtime), the worker's ``snapshot()`` built from nothing (every part and instance
snapshot forgotten first) and built incrementally after one call, and for each diagram kind:

- *cold*: its Mermaid drawn as a new figure, with nothing kept from earlier figures (the display's merges of
  snapshots and records forgotten first); the runtime's snapshot is what its recorder keeps up to date as it runs;
- *redraw*: the kernel time of one redraw of a live view of that kind (``dynamo_nb.live``) after one small
  change — one call answered by one instance — on the event loop: snapshot, merge, model and Mermaid (SVG is laid
  out off the loop, by dot, and is not counted).

A last column does the same for a system of 1,000 endpoints × 3 instances (three worker runtimes serving the
same endpoints, drawn together). Then memory per endpoint (traced allocations, measured apart at 1,000 endpoints).
Timings are medians on a shared machine: compare a column with itself across n, not with another run.

    python benchmarks/bench_scale.py [--sizes 100 1000 10000] [--calls 500] [--runs 5] [--no-system]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
import importlib
import tracemalloc
from typing import Any, Awaitable, Callable

from dynamo_nb import DistributedRuntime, EmbeddedWorld, diagram
from dynamo_nb.display.live import LiveView

_kept = importlib.import_module("dynamo_nb.display.snapshot")  # what it keeps between figures

__all__ = ["main", "start_endpoints", "start_endpoints_from", "memory_per_endpoint", "draw_costs"]

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
        t0, c0 = time.perf_counter(), time.process_time()
        served = await start_endpoints(worker, n)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        head = [t for _, t in served[:100]]
        tail = [t for _, t in served[-100:]]
        out: dict[str, float] = {
            "start first-100 (ms)": statistics.mean(head) * 1e3,
            "start last-100 (ms)": statistics.mean(tail) * 1e3,
            "start last/first": statistics.mean(tail) / statistics.mean(head),
            "start all (s)": total,
            "start all, CPU (s)": cpu,  # moves less than the wall clock with other people's load
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
        out.update(await draw_costs([worker], served[0][0], call, runs))
        return out
    finally:
        await frontend.shutdown()
        await worker.shutdown()


def _forget(workers: list[DistributedRuntime]) -> None:
    """Nothing kept from earlier snapshots: the next is built from nothing, every instance's snapshot too."""
    for worker in workers:
        forget = getattr(worker, "_forget_parts", None)
        if forget is not None:
            forget()
        else:  # a version that keeps only each instance's own snapshot (for a baseline run of an older tree)
            for served in worker.served_endpoints():
                served._snap = served._leased = None
    _forget_figures()


def _forget_figures() -> None:
    """Nothing kept from earlier figures (merges of snapshots, their records, sorted names)."""
    for name in ("_LAYOUTS", "_MERGES", "_LATEST"):
        kept = getattr(_kept, name, None)
        if kept is not None:
            kept.clear()
    clear = getattr(_kept.natural_key, "cache_clear", None)
    if clear is not None:
        clear()


async def draw_costs(workers: list[DistributedRuntime], first: Any, change: Callable[[], Awaitable[Any]],
                     runs: int) -> dict[str, float]:
    """Snapshot from nothing and after one change; each kind's cold draw and live redraw after one change."""
    out: dict[str, float] = {}
    worker = workers[0]

    def cold_snapshot() -> None:
        _forget(workers)
        worker.snapshot()

    out["snapshot from nothing (ms)"] = _median_ms(cold_snapshot, runs)
    samples = []
    for _ in range(runs):
        await change()
        t0 = time.perf_counter()
        worker.snapshot()
        samples.append(time.perf_counter() - t0)
    out["snapshot after a call (ms)"] = statistics.median(samples) * 1e3
    context = workers if len(workers) > 1 else []
    objects = {"reference": worker.namespace("scale").component("Worker0").endpoint("ep0"),
               "startup": first, "lifecycle": first, "sequence": first}
    for kind in KINDS:
        obj: Any = objects.get(kind, worker)
        obj = [obj, *[w for w in context if w is not obj]] if context else obj

        def cold(obj: Any = obj, kind: str = kind) -> None:
            _forget_figures()
            _ = diagram(obj, kind).mermaid

        out[f"{kind} cold (ms)"] = _median_ms(cold, runs)
        view = LiveView(obj, kind, interval=3600)  # its own task never redraws here: each redraw is timed below
        try:
            await change()
            view._rebuild()
            samples = []
            for _ in range(runs):
                await change()
                t0 = time.perf_counter()
                view._rebuild()
                samples.append(time.perf_counter() - t0)
            out[f"{kind} redraw (ms)"] = statistics.median(samples) * 1e3
        finally:
            view.stop()
    colds = [out[f"{k} cold (ms)"] for k in KINDS]
    redraws = [out[f"{k} redraw (ms)"] for k in KINDS]
    out["cold, fastest kind (ms)"], out["cold, slowest kind (ms)"] = min(colds), max(colds)
    out["redraw, fastest kind (ms)"], out["redraw, slowest kind (ms)"] = min(redraws), max(redraws)
    return out


async def system(n: int, instances: int, runs: int) -> dict[str, float]:
    """``instances`` worker runtimes serving the same ``n`` endpoints, drawn together; a frontend calls one."""
    world = EmbeddedWorld()
    workers = [await DistributedRuntime.create(world=world, name=f"worker{i}") for i in range(instances)]
    frontend = await DistributedRuntime.create(world=world, name="frontend")
    try:
        served = []
        for worker in workers:
            served.append(await start_endpoints(worker, n))
        client = await frontend.namespace("scale").component("Worker0").endpoint("ep0").client()
        await client.wait_for_instances(timeout=5)

        async def call() -> None:
            async for _ in await client.round_robin({"x": 1}):
                pass

        for _ in range(20):
            await call()
        return await draw_costs(workers, served[0][0][0], call, runs)
    finally:
        await frontend.shutdown()
        for worker in workers:
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


async def amain(sizes: list[int], calls: int, runs: int, with_system: bool = True) -> None:
    rows: dict[str, dict[str, float]] = {}
    for n in sizes:
        rows[f"n={n:,}"] = await one_size(n, calls, runs)
    if with_system:
        rows["1,000 × 3"] = await system(1000, 3, runs)
    columns = list(rows)
    keys = list(dict.fromkeys(k for row in rows.values() for k in row))
    print(f"{'measure':30}" + "".join(f"{c:>12}" for c in columns))
    for key in keys:
        print(f"{key:30}" + "".join(f"{rows[c][key]:12.3f}" if key in rows[c] else f"{'':12}" for c in columns))
    print(f"{'memory per endpoint (KiB)':30}{await memory_per_endpoint() / 1024:12.1f}   (traced, at 1,000)")
    last = rows[columns[len(sizes) - 1]] if sizes else {}
    if last:
        print(f"targets: start last/first ≤ 1.3 -> {'met' if last['start last/first'] <= 1.3 else 'NOT met'}; "
              f"{sizes[-1]:,} endpoints start in ≤ 5 s -> {'met' if last['start all (s)'] <= 5 else 'NOT met'}; "
              f"call ≤ 25 µs -> {'met' if last['call (µs)'] <= 25 else 'NOT met'}")
    if with_system:
        big = rows["1,000 × 3"]
        print(f"targets, 1,000 endpoints × 3 instances: live redraw ≤ 5 ms per frame -> "
              f"{'met' if big['redraw, slowest kind (ms)'] <= 5 else 'NOT met'} "
              f"(slowest kind {big['redraw, slowest kind (ms)']:.2f} ms); every kind cold ≤ 50 ms -> "
              f"{'met' if big['cold, slowest kind (ms)'] <= 50 else 'NOT met'} "
              f"(slowest kind {big['cold, slowest kind (ms)']:.2f} ms)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10_000])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-system", action="store_true", help="skip the 1,000 endpoints × 3 instances system")
    args = parser.parse_args(argv)
    asyncio.run(amain(args.sizes, args.calls, args.runs, not args.no_system))


if __name__ == "__main__":
    main()
