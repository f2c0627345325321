"""A real Dynamo 1.6.1 worker for the benchmark: yields ``request["n"]`` small items, as fast as it can."""

import asyncio
import importlib.metadata
import json
import signal
import sys

import dynamo._core
from dynamo.runtime import dynamo_worker


@dynamo_worker()
async def main(runtime):
    endpoint = runtime.endpoint(sys.argv[1])

    async def generate(request):
        for i in range(request.get("n", 1)):
            yield {"i": i}

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runtime.shutdown)
    print(json.dumps({"ready": True, "version": importlib.metadata.version("ai-dynamo-runtime"),
                      "core": dynamo._core.__file__, "connection_id": endpoint.connection_id()}), flush=True)
    await endpoint.serve_endpoint(generate)


if __name__ == "__main__":
    asyncio.run(main())
