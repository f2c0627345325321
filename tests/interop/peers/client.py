"""A real Dynamo 1.6.1 client (public ``dynamo.runtime`` API only) calling ``argv[1]`` ("ns.comp.ep").

``argv[2]`` is the mode, ``argv[3]`` the JSON request, ``argv[4]`` a count:
- ``call``: one call, prints ``{"items": [...]}`` or ``{"error": "Type: text"}``;
- ``concurrent``: that many calls at once, prints ``{"results": [[...], ...]}``;
- ``break``: reads one item and breaks out (Dynamo sends "kill"), prints ``{"broke_after": 1}``;
- ``stop``: after one item calls ``context.stop_generating()`` and reads on, prints ``{"items": [...]}``;
- ``loop``: that many sequential calls, prints ``{"calls": n}`` (for the benchmark).
Prints ``{"ready": ...}`` first, with the wheel version and where ``dynamo._core`` was loaded from.
"""

import asyncio
import importlib.metadata
import json
import sys
import time

import dynamo._core
from dynamo.runtime import Context, dynamo_worker


def say(**fact):
    print(json.dumps(fact, default=repr), flush=True)


def value(item):
    return item.data() if hasattr(item, "data") and callable(item.data) else item


async def collect(stream):
    return [value(item) async for item in stream]


@dynamo_worker()
async def main(runtime):
    path, mode = sys.argv[1], sys.argv[2]
    request = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    client = await runtime.endpoint(path).client()
    ids = await asyncio.wait_for(client.wait_for_instances(), 10)
    say(ready=True, version=importlib.metadata.version("ai-dynamo-runtime"), core=dynamo._core.__file__,
        instances=ids)
    try:
        if mode == "call":
            say(items=await collect(await client.generate(request)))
        elif mode == "concurrent":
            streams = await asyncio.gather(*(client.generate(dict(request, echo=k)) for k in range(count)))
            say(results=await asyncio.gather(*(collect(s) for s in streams)))
        elif mode == "break":
            async for _ in await client.generate(request):
                break
            say(broke_after=1)
            await asyncio.sleep(0.5)  # let the kill frame leave before the runtime goes
        elif mode == "stop":
            context = Context()
            items = []
            async for item in await client.generate(request, context=context):
                items.append(value(item))
                if len(items) == 1:
                    context.stop_generating()
            say(items=items)
        elif mode == "loop":
            started = time.perf_counter()
            for _ in range(count):
                await collect(await client.generate(request))
            say(calls=count, seconds=time.perf_counter() - started)
    except Exception as exc:  # what the real client raises is the fact under test
        say(error=f"{type(exc).__name__}: {exc}")
    runtime.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
