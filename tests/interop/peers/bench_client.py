"""A real Dynamo 1.6.1 client measuring ``argv[1]``: one-item call latency, a long stream, concurrent calls.

Prints one JSON line: ``{"ready"...}`` then ``{"bench": {"p50_ms", "p90_ms", "items_per_s", "calls_per_s"}}``.
``argv[2..4]``: latency calls, stream length, concurrent callers (each makes ``argv[5]`` calls).
"""

import asyncio
import importlib.metadata
import json
import statistics
import sys
import time

import dynamo._core
from dynamo.runtime import dynamo_worker


def say(**fact):
    print(json.dumps(fact), flush=True)


@dynamo_worker()
async def main(runtime):
    path = sys.argv[1]
    calls, stream_n, callers, per_caller = (int(a) for a in sys.argv[2:6])
    client = await runtime.endpoint(path).client()
    await asyncio.wait_for(client.wait_for_instances(), 10)
    say(ready=True, version=importlib.metadata.version("ai-dynamo-runtime"), core=dynamo._core.__file__)

    async def one(request):
        return [item async for item in await client.generate(request)]

    for _ in range(20):
        await one({"n": 1})
    lat = []
    for _ in range(calls):
        t = time.perf_counter()
        await one({"n": 1})
        lat.append(time.perf_counter() - t)
    t = time.perf_counter()
    got = len(await one({"n": stream_n}))
    items_per_s = got / (time.perf_counter() - t)

    async def caller():
        for _ in range(per_caller):
            await one({"n": 1})

    t = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    calls_per_s = callers * per_caller / (time.perf_counter() - t)
    q = statistics.quantiles(lat, n=10)
    say(bench={"p50_ms": statistics.median(lat) * 1e3, "p90_ms": q[8] * 1e3, "items_per_s": items_per_s,
               "calls_per_s": calls_per_s})
    runtime.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
