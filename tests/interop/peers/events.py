"""A real Dynamo 1.6.1 event publisher or subscriber (public ``dynamo`` API only) on endpoint ``argv[2]``.

Run with ``DYN_EVENT_PLANE=nats``. ``argv[1]`` is the mode, ``argv[3]`` a count:
- ``publish``: serves the endpoint, then publishes that many ``kv_metrics`` (``WorkerMetricsPublisher``, with
  ``active_decode_blocks`` = i) and ``kv-events`` (``KvEventPublisher.publish_removed([i])``), one of each every
  0.1 s, and prints ``{"published": n}``; it serves on until SIGTERM;
- ``subscribe``: a ``FpmEventSubscriber`` on the endpoint prints each received payload as ``{"event": hex}``.
Prints ``{"ready": ...}`` first, with the wheel version and where ``dynamo._core`` was loaded from.
"""

import asyncio
import importlib.metadata
import json
import signal
import sys

import dynamo._core
from dynamo.llm import FpmEventSubscriber, KvEventPublisher, WorkerMetricsPublisher
from dynamo.runtime import dynamo_worker


def say(**fact):
    print(json.dumps(fact, default=repr), flush=True)


@dynamo_worker()
async def main(runtime):
    mode, path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    endpoint = runtime.endpoint(path)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runtime.shutdown)
    facts = {"version": importlib.metadata.version("ai-dynamo-runtime"), "core": dynamo._core.__file__}
    if mode == "subscribe":
        subscriber = FpmEventSubscriber(endpoint)
        say(ready=True, **facts)
        for _ in range(count):
            payload = await asyncio.to_thread(subscriber.recv)
            say(event=payload.hex() if payload is not None else None)
        subscriber.shutdown()
        runtime.shutdown()
        return

    async def generate(request):
        yield request

    serving = asyncio.ensure_future(endpoint.serve_endpoint(generate))
    metrics = WorkerMetricsPublisher()
    await metrics.create_endpoint(endpoint)
    kv = KvEventPublisher(endpoint, kv_block_size=4)
    say(ready=True, connection_id=endpoint.connection_id(), **facts)
    for i in range(count):
        metrics.publish(0, i, 10 + i)  # a publisher sends only changes: every value differs
        kv.publish_removed([i + 1])
        await asyncio.sleep(0.1)
    say(published=count)
    await serving


if __name__ == "__main__":
    asyncio.run(main())
