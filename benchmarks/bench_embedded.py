"""Embedded backend speed: one-item call latency and one long stream's item rate, against asyncio.Queue.

Run: ``python benchmarks/bench_embedded.py [--loop asyncio|uvloop]``. The baseline is measured in the same run,
so the ratios mean something on a shared, noisy machine; the CPU time per call (this thread's, over the whole
batch) moves less with other people's load than the wall-clock median does.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from typing import Any

from dynamo_nb import DistributedRuntime, EmbeddedWorld
from dynamo_nb.loops import loop_name


async def cpu_per_call(fn: Any, n: int) -> float:
    """This thread's CPU seconds per ``await fn()``, over ``n`` calls."""
    t0 = time.thread_time()
    for _ in range(n):
        await fn()
    return (time.thread_time() - t0) / n


async def queue_round_trip(n: int) -> list[float]:
    """Baseline: a request and a reply handed between two tasks through asyncio.Queue."""
    requests: asyncio.Queue = asyncio.Queue()
    replies: asyncio.Queue = asyncio.Queue()

    async def server():
        while True:
            item = await requests.get()
            if item is None:
                return
            replies.put_nowait(item)

    task = asyncio.create_task(server())
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        requests.put_nowait(i)
        await replies.get()
        samples.append(time.perf_counter() - t0)
    requests.put_nowait(None)
    await task
    return samples


async def queue_stream(n: int) -> float:
    """Baseline: items/s from a producer task to a consumer through asyncio.Queue."""
    q: asyncio.Queue = asyncio.Queue()

    async def producer():
        for i in range(n):
            q.put_nowait({"i": i})
            if i % 64 == 0:
                await asyncio.sleep(0)
        q.put_nowait(None)

    t0 = time.perf_counter()
    task = asyncio.create_task(producer())
    while await q.get() is not None:
        pass
    await task
    return n / (time.perf_counter() - t0)


async def dynamo_round_trip(client, n: int) -> list[float]:
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        async for _ in await client.round_robin(i):
            pass
        samples.append(time.perf_counter() - t0)
    return samples


async def dynamo_stream(client, n: int) -> float:
    t0 = time.perf_counter()
    count = 0
    async for _ in await client.round_robin({"n": n}):
        count += 1
    assert count == n
    return n / (time.perf_counter() - t0)


async def main(calls: int, items: int) -> None:
    world = EmbeddedWorld()
    worker = await DistributedRuntime.create(world=world)
    frontend = await DistributedRuntime.create(world=world)

    async def one(request):
        yield request

    async def many(request):
        for i in range(request["n"]):
            yield {"i": i}

    await worker.endpoint("bench.worker.one").endpoint_builder().handler(one).start()
    await worker.endpoint("bench.worker.many").endpoint_builder().handler(many).start()
    one_client = await frontend.endpoint("bench.worker.one").client()
    many_client = await frontend.endpoint("bench.worker.many").client()
    await one_client.wait_for_instances(timeout=5)
    await many_client.wait_for_instances(timeout=5)

    await dynamo_round_trip(one_client, 200)  # warm up
    base_rt = statistics.median(await queue_round_trip(calls))
    rt = await dynamo_round_trip(one_client, calls)
    rt_med, rt_p90 = statistics.median(rt), statistics.quantiles(rt, n=10)[-1]

    async def one_call() -> None:
        async for _ in await one_client.round_robin(1):
            pass

    async def one_queue_trip() -> None:
        requests.put_nowait(1)
        await replies.get()

    requests: asyncio.Queue = asyncio.Queue()
    replies: asyncio.Queue = asyncio.Queue()

    async def echo() -> None:
        while (item := await requests.get()) is not None:
            replies.put_nowait(item)

    server = asyncio.create_task(echo())
    cpu_pairs = [(await cpu_per_call(one_call, calls // 5), await cpu_per_call(one_queue_trip, calls // 5))
                 for _ in range(5)]
    requests.put_nowait(None)
    await server
    cpu, base_cpu = statistics.median(c for c, _ in cpu_pairs), statistics.median(q for _, q in cpu_pairs)
    cpu_ratio = statistics.median(c / q for c, q in cpu_pairs)
    base_rate = await queue_stream(items)
    rate = await dynamo_stream(many_client, items)

    print(f"{'measure':44} {'dynamo_nb':>14} {'asyncio.Queue':>14} {'ratio':>8}")
    print(f"{'one-item call, median (µs)':44} {rt_med * 1e6:14.1f} {base_rt * 1e6:14.1f} {rt_med / base_rt:8.1f}")
    print(f"{'one-item call, p90 (µs)':44} {rt_p90 * 1e6:14.1f} {'':>14} {'':>8}")
    print(f"{'one-item call, CPU per call (µs)':44} {cpu * 1e6:14.1f} {base_cpu * 1e6:14.1f} {cpu_ratio:8.1f}")
    print(f"{f'one {items}-item stream (items/s)':44} {rate:14,.0f} {base_rate:14,.0f} {base_rate / rate:8.1f}")
    print(f"loop: {loop_name()}; targets: call ≤ 25 µs median -> {'met' if rt_med <= 25e-6 else 'NOT met'}; "
          f"stream ≥ 100,000 items/s -> {'met' if rate >= 100_000 else 'NOT met'}")
    await frontend.shutdown()
    await worker.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="asyncio's own loop (a notebook kernel's) or uvloop (`dynamo-nb serve`'s)")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main(args.calls, args.items))
    else:
        asyncio.run(main(args.calls, args.items))
