"""``dynamo-nb serve module:Entry -f config.yaml [--gpus N] [--Service.key=value]``: every worker a process."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from typing import Any

from ..common import emit, stderr

__all__ = ["HELP", "TAKES_EXTRA", "add_arguments", "run"]

HELP = "serve a @service graph, each worker its own process (on $ETCD_ENDPOINTS/$NATS_SERVER, or a LocalCluster)"
TAKES_EXTRA = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="module:Entry", help="the entry service class")
    parser.add_argument("-f", "--file", dest="config", help="YAML config (seed §7.3)")
    parser.add_argument("--gpus", type=int, default=None, help="how many GPUs exist, when none can be detected")
    parser.add_argument("--json", action="store_true", help="report events as JSON lines")


def _text(event: dict[str, Any]) -> str:
    what = event["event"]
    if what == "ready":
        return f"{event['worker']}: ready, pid {event['pid']}, instance {event['instance_id']:x}"
    if what == "crashed":
        return (f"{event['worker']}: pid {event['pid']} exited with {event['code']}; restarting in "
                f"{event['restart_in']:g} s (restart {event['restart']})")
    if what == "started":
        gpus = f", CUDA_VISIBLE_DEVICES={','.join(map(str, event['gpus']))}" if event["gpus"] else ""
        return f"{event['worker']}: started, pid {event['pid']}{gpus}"
    return f"{event['worker']}: {what} (pid {event.get('pid')})"


async def run(args: argparse.Namespace) -> int:
    from ...sdk.child import load_target
    from ...sdk.serve import prepare
    from ...sdk.supervisor import Supervisor

    bad = [a for a in args.extra if not (a.startswith("--") and "." in a.partition("=")[0])]
    if bad:
        raise ValueError(f"unrecognized arguments: {' '.join(bad)} (overrides look like --Service.key=value)")
    entry = load_target(args.target)
    plan, settings, assignment, _ = prepare(entry, args.config, args.extra, args.gpus)  # all checks first

    def report(event: dict[str, Any]) -> None:
        emit(args, event, _text(event))

    env = dict(os.environ)
    env.setdefault("PYTHONPATH", os.getcwd())
    cluster = None
    if not (env.get("ETCD_ENDPOINTS") and env.get("NATS_SERVER")):
        from ...cluster import LocalCluster

        cluster = await LocalCluster().start()
        env.update(ETCD_ENDPOINTS=cluster.etcd_endpoints, NATS_SERVER=cluster.nats_server)
        emit(args, {"event": "cluster", "ETCD_ENDPOINTS": cluster.etcd_endpoints,
                    "NATS_SERVER": cluster.nats_server},
             f"started a LocalCluster:\nexport ETCD_ENDPOINTS={cluster.etcd_endpoints}\n"
             f"export NATS_SERVER={cluster.nats_server}")
    supervisor = Supervisor(args.target, plan, settings, assignment, env, report)
    loop = asyncio.get_running_loop()
    signals: asyncio.Queue[int] = asyncio.Queue()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, signals.put_nowait, sig)
    try:
        starting = asyncio.ensure_future(supervisor.start())
        first = asyncio.ensure_future(signals.get())
        await asyncio.wait({starting, first}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done() and not first.done():
            starting.result()
            emit(args, {"event": "serving", "workers": len(supervisor.workers)},
                 f"serving {plan.entry.name}: {len(supervisor.workers)} worker(s); Ctrl-C stops them gracefully")
            await first
        began = time.monotonic()
        stderr("stopping every worker gracefully (a second Ctrl-C kills them)")
        stopping = asyncio.ensure_future(supervisor.stop())
        second = asyncio.ensure_future(signals.get())
        await asyncio.wait({stopping, second}, return_when=asyncio.FIRST_COMPLETED)
        if not stopping.done():
            await supervisor.kill()
            stopping.cancel()
        else:
            second.cancel()
        starting.cancel()
        emit(args, {"event": "exit", "seconds": round(time.monotonic() - began, 3)},
             f"all workers stopped in {time.monotonic() - began:.2f} s")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if cluster is not None:
            await cluster.close()
    return 0
