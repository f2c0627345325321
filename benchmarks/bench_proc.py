"""The processes of ``bench_cluster.py``: a dynamo_nb worker, a caller, and a raw nats-py server to compare with.

Run as ``python bench_proc.py ROLE ETCD NATS``. Each reads one JSON command per line on stdin and answers with one
JSON line on stdout, so the orchestrator can sequence phases across processes and no two measurements overlap.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any, AsyncIterator, Awaitable, Callable

__all__ = ["main"]

ECHO_SUBJECT = "bench.raw.echo"
BURST_SUBJECT = "bench.raw.burst"
ITEM = b'{"data":{"i":1234},"complete_final":false}'  # the size of one streamed item on the wire


def vm_hwm_kib() -> int:
    """Peak resident set size of this process (``VmHWM``), in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- roles ----------------------------------------------------------------------------------------------------

async def worker(etcd: str, nats_url: str) -> dict[str, Callable[..., Awaitable[Any]]]:
    from dynamo_nb import DistributedRuntime

    runtime = await DistributedRuntime.create(etcd_endpoints=etcd, nats_server=nats_url)

    async def generate(request: dict[str, Any]) -> AsyncIterator[Any]:
        yield {"token": request["prompt"]}

    async def stream(request: dict[str, Any]) -> AsyncIterator[Any]:
        for i in range(request["n"]):
            yield {"i": i}

    await runtime.endpoint("bench.worker.generate").endpoint_builder().handler(generate).start()
    await runtime.endpoint("bench.worker.stream").endpoint_builder().handler(stream).start()
    started: dict[int, Any] = {}

    async def start(i: int) -> dict[str, Any]:
        called = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process on the machine
        served = await runtime.endpoint(f"bench.disc{i}.generate").endpoint_builder().handler(generate).start()
        returned = time.monotonic()
        started[i] = served
        return {"called": called, "returned": returned}

    async def stop(i: int) -> dict[str, Any]:
        await started.pop(i).stop()
        return {}

    async def rss() -> dict[str, Any]:
        return {"vm_hwm_kib": vm_hwm_kib(), "modules": sorted(m for m in ("IPython", "ipywidgets") if m in sys.modules)}

    async def quit() -> dict[str, Any]:
        await runtime.shutdown()
        return {}

    return {"start": start, "stop": stop, "rss": rss, "quit": quit}


async def raw_server(etcd: str, nats_url: str) -> dict[str, Callable[..., Awaitable[Any]]]:
    import nats

    nc = await nats.connect(nats_url)

    async def echo(msg: Any) -> None:
        await msg.respond(b'{"token":"hello"}')

    async def burst(msg: Any) -> None:  # publish n items to the reply subject, as fast as nats-py goes
        n = int(msg.data)
        for _ in range(n):
            await nc.publish(msg.reply, ITEM)
        await nc.flush()

    await nc.subscribe(ECHO_SUBJECT, cb=echo)
    await nc.subscribe(BURST_SUBJECT, cb=burst)
    await nc.flush()

    async def quit() -> dict[str, Any]:
        await nc.close()
        return {}

    return {"quit": quit}


async def caller(etcd: str, nats_url: str) -> dict[str, Callable[..., Awaitable[Any]]]:
    import nats

    from dynamo_nb import DistributedRuntime

    runtime = await DistributedRuntime.create(etcd_endpoints=etcd, nats_server=nats_url)
    nc = await nats.connect(nats_url)
    generate = await runtime.endpoint("bench.worker.generate").client()
    stream = await runtime.endpoint("bench.worker.stream").client()
    await generate.wait_for_instances(timeout=10)
    await stream.wait_for_instances(timeout=10)
    await runtime.backend.responses.start()
    seen: dict[int, asyncio.Future[float]] = {}

    async def one_call() -> None:
        items = [item async for item in await generate.generate({"prompt": "hello"})]
        assert items == [{"token": "hello"}], items

    async def latency(n: int) -> dict[str, Any]:
        for _ in range(min(200, n)):
            await one_call()
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            await one_call()
            samples.append(time.perf_counter() - t0)
        return {"median": percentile(samples, 0.5), "p90": percentile(samples, 0.9)}

    async def raw_latency(n: int) -> dict[str, Any]:
        for _ in range(min(200, n)):
            await nc.request(ECHO_SUBJECT, b'{"prompt":"hello"}', timeout=5)
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            await nc.request(ECHO_SUBJECT, b'{"prompt":"hello"}', timeout=5)
            samples.append(time.perf_counter() - t0)
        return {"median": percentile(samples, 0.5), "p90": percentile(samples, 0.9)}

    async def stream_rate(n: int, repeat: int) -> dict[str, Any]:
        rates = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            count = 0
            item: Any = None
            async for item in await stream.generate({"n": n}):  # noqa: B007  # the last one is checked below
                count += 1
            elapsed = time.perf_counter() - t0
            assert count == n and item == {"i": n - 1}
            rates.append(n / elapsed)
        return {"median": percentile(rates, 0.5), "best": max(rates)}

    async def raw_stream_rate(n: int, repeat: int) -> dict[str, Any]:
        rates = []
        for _ in range(repeat):
            inbox = nc.new_inbox()
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            count = 0

            async def on_item(msg: Any, done: asyncio.Future[None] = done) -> None:
                nonlocal count
                count += 1
                if count == n and not done.done():
                    done.set_result(None)

            sub = await nc.subscribe(inbox, cb=on_item)
            await nc.flush()
            t0 = time.perf_counter()
            await nc.publish(BURST_SUBJECT, str(n).encode(), reply=inbox)
            await asyncio.wait_for(done, 30)
            rates.append(n / (time.perf_counter() - t0))
            await sub.unsubscribe()
        return {"median": percentile(rates, 0.5), "best": max(rates)}

    async def concurrent(callers: int, seconds: float, raw: bool = False) -> dict[str, Any]:
        stop_at = time.perf_counter() + seconds
        counts = [0] * callers

        async def loop(k: int) -> None:
            while time.perf_counter() < stop_at:
                if raw:
                    await nc.request(ECHO_SUBJECT, b'{"prompt":"hello"}', timeout=10)
                else:
                    await one_call()
                counts[k] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(loop(k) for k in range(callers)))
        return {"calls_per_s": sum(counts) / (time.perf_counter() - t0), "calls": sum(counts)}

    async def watch(i: int) -> dict[str, Any]:
        client = await runtime.endpoint(f"bench.disc{i}.generate").client()
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        seen[i] = future

        def on_change(kind: str, info: Any) -> None:
            if kind == "put" and info.endpoint == "generate" and not future.done():
                future.set_result(time.monotonic())

        client.watcher.subscribe(on_change)
        return {}

    async def wait_seen(i: int) -> dict[str, Any]:
        return {"seen": await asyncio.wait_for(seen.pop(i), 10)}

    async def quit() -> dict[str, Any]:
        await nc.close()
        await runtime.shutdown()
        return {}

    return {"latency": latency, "raw_latency": raw_latency, "stream_rate": stream_rate,
            "raw_stream_rate": raw_stream_rate, "concurrent": concurrent, "watch": watch, "wait_seen": wait_seen,
            "quit": quit}


ROLES = {"worker": worker, "caller": caller, "raw-server": raw_server}


def profiling() -> dict[str, Callable[..., Awaitable[Any]]]:
    """``profile_start`` / ``profile_stop path``: cProfile one phase of this process (``bench_cluster --profile``)."""
    import cProfile

    profiler: list[Any] = []

    async def profile_start() -> dict[str, Any]:
        profiler[:] = [cProfile.Profile()]
        profiler[0].enable()
        return {}

    async def profile_stop(path: str) -> dict[str, Any]:
        profiler[0].disable()
        profiler[0].dump_stats(path)
        return {}

    async def cpu() -> dict[str, Any]:
        times = os.times()
        return {"cpu": times.user + times.system, "sys": times.system}

    return {"profile_start": profile_start, "profile_stop": profile_stop, "cpu": cpu}


async def main(role: str, etcd: str, nats_url: str) -> None:
    from dynamo_nb.loops import loop_name

    commands = {**await ROLES[role](etcd, nats_url), **profiling()}
    loop = asyncio.get_running_loop()
    print(json.dumps({"ready": role, "pid": os.getpid(), "loop": loop_name()}), flush=True)
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        request = json.loads(line)
        name = request.pop("cmd")
        try:
            answer = await commands[name](**request)
        except Exception as exc:  # report, do not die: the orchestrator prints it
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)
        if name == "quit":
            return


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from dynamo_nb.loops import run

    run(main(sys.argv[1], sys.argv[2], sys.argv[3]))  # uvloop when installed, unless DYNAMO_NB_LOOP=asyncio
