"""A real Dynamo 1.6.1 worker (public ``dynamo.runtime`` API only) serving ``argv[1]`` ("ns.comp.ep").

Planes and codec come from Dynamo's own variables (DYN_REQUEST_PLANE, DYN_REQUEST_PLANE_CODEC, ...). Prints one
JSON line per fact: ready (with the wheel version and where ``dynamo._core`` was loaded from), each request
received, where a stopped stream stopped, and registered once Dynamo's own client sees this worker's instance. Request fields: n items, delay between items, raise (a class name and
message raised after the items), echo.
"""

import asyncio
import importlib.metadata
import json
import signal
import sys

import dynamo._core
from dynamo.runtime import dynamo_worker

ERRORS = {"ValueError": ValueError, "RuntimeError": RuntimeError, "KeyError": KeyError,
          "ConnectionError": ConnectionError}


def say(**fact):
    print(json.dumps(fact, default=repr), flush=True)


@dynamo_worker()
async def main(runtime):
    endpoint = runtime.endpoint(sys.argv[1])

    async def generate(request, context):
        say(received=request)
        request = request if isinstance(request, dict) else {"n": 1, "echo": request}
        for i in range(int(request.get("n", 3))):
            if context.is_stopped():
                say(stopped_at=i)
                return
            yield {"i": i, "echo": request.get("echo")}
            if request.get("delay"):
                await asyncio.sleep(float(request["delay"]))
        if context.is_stopped():
            say(stopped_at=int(request.get("n", 3)))
            return
        if request.get("raise"):
            kind, _, message = str(request["raise"]).partition(":")
            raise ERRORS[kind](message)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # as Dynamo's own workers do: deregister, then exit
        loop.add_signal_handler(sig, runtime.shutdown)
    async def registered():  # serve_endpoint() puts the instance's key and then serves until shutdown
        client = await endpoint.client()
        await client.wait_for_instances()
        say(registered=True)

    say(ready=True, version=importlib.metadata.version("ai-dynamo-runtime"), core=dynamo._core.__file__,
        connection_id=endpoint.connection_id())
    seen = asyncio.ensure_future(registered())
    await endpoint.serve_endpoint(generate)
    seen.cancel()


if __name__ == "__main__":
    asyncio.run(main())
