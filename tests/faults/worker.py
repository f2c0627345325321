"""A worker *process* for the fault tests: serves one endpoint against real servers until told to stop.

Run as ``python worker.py ETCD NATS REFERENCE LEASE_TTL``. It prints ``READY <instance id in hex>`` once serving
(and ``INSTANCE <hex>`` again after every re-registration), stops gracefully on SIGTERM, and can be SIGKILLed or
SIGSTOPped by the test that started it.

The handler streams ``request["n"]`` items ``{"i": i, "pid": pid}`` with ``request["delay"]`` seconds between
them; with ``request["exit_after"] = k`` the process dies (``os._exit``) after sending k items, mid-stream. A
request with a ``"tag"`` prints ``RAN <tag>`` when its handler starts, so a test can count handler runs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any, AsyncIterator

from dynamo_nb import DistributedRuntime


async def generate(request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    if "tag" in request:
        print(f"RAN {request['tag']}", flush=True)
    delay = float(request.get("delay", 0.0))
    exit_after = request.get("exit_after")
    for i in range(int(request.get("n", 1))):
        if exit_after is not None and i == int(exit_after):
            await asyncio.sleep(0.05)  # let the items already yielded reach the caller
            os._exit(3)
        yield {"i": i, "pid": os.getpid()}
        if delay:
            await asyncio.sleep(delay)


async def main(etcd: str, nats: str, reference: str, lease_ttl: float) -> None:
    runtime = await DistributedRuntime.create(etcd_endpoints=etcd, nats_server=nats, lease_ttl=lease_ttl,
                                              health_check_interval=0.2)
    served = await runtime.endpoint(reference).endpoint_builder().handler(generate).start()
    print(f"READY {served.instance_id:x}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    last = served.instance_id
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 0.05)
        except asyncio.TimeoutError:
            pass
        if served.instance_id != last:  # re-registered under a new lease
            last = served.instance_id
            print(f"INSTANCE {last:x}", flush=True)
    await runtime.shutdown()
    print("STOPPED", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
