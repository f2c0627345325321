"""One worker as an OS process: ``python -m dynamo_nb.sdk.child module:Entry Service INDEX``.

The supervisor (:mod:`dynamo_nb.sdk.supervisor`) passes the service's settings in ``DYNAMO_NB_WORKER``
(JSON) and its GPUs in ``CUDA_VISIBLE_DEVICES``; the servers come from ``ETCD_ENDPOINTS`` / ``NATS_SERVER``.
SIGINT/SIGTERM stop the worker gracefully (deregistered at once, not at lease expiry); a second one ends the
process on the spot. A worker whose supervisor is gone stops too, so no orphan stays registered.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
from typing import Any

from .. import loops
from ..core.signals import graceful_signals, restore_signals
from .config import ServiceSettings
from .graph import plan_graph
from .worker import Worker

__all__ = ["load_target", "main", "SETTINGS_ENV"]

SETTINGS_ENV = "DYNAMO_NB_WORKER"


def load_target(target: str) -> type:
    """``module:Entry`` → the class (the current directory is importable, as for ``python -m``)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected module:Class, got {target!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise TypeError(f"{target} is not a class")
    return obj


async def _run(target: str, service_name: str, index: int) -> int:
    entry = load_target(target)
    spec = plan_graph(entry).spec(service_name)
    raw = json.loads(os.environ.get(SETTINGS_ENV, "{}"))
    settings = ServiceSettings(raw.get("config", {}), int(raw.get("workers", 1)), raw.get("resources", {}))
    gpus = [int(g) for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip().isdigit()]
    worker = Worker(spec, index, settings, gpus if settings.gpus else [])
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    taken = graceful_signals(loop, stop)
    parent = os.getppid()
    from ..core.runtime import DistributedRuntime

    async def make_runtime(name: str) -> DistributedRuntime:
        return await DistributedRuntime.create(name=name)

    await worker.start(make_runtime)
    print(json.dumps({"event": "ready", "worker": worker.name, "pid": os.getpid(),
                      "instance_id": worker.instance_id, "loop": loops.loop_name()}), flush=True)
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                if os.getppid() != parent:  # the supervisor died: do not stay registered on our own
                    break
    finally:
        await worker.stop()
        restore_signals(loop, taken)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m dynamo_nb.sdk.child module:Entry Service INDEX", file=sys.stderr)
        return 2
    return loops.run(_run(args[0], args[1], int(args[2])))


if __name__ == "__main__":
    sys.exit(main())
