"""What the subcommands share: which servers to use, a read-only view of them, output, and waiting on signals."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

from ..core.runtime import DistributedRuntime
from ..errors import ConfigurationError

__all__ = ["add_server_options", "servers", "attach", "emit", "until_signal", "instance_rows"]


def add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--etcd", metavar="URLS", help="etcd endpoints (default: $ETCD_ENDPOINTS)")
    parser.add_argument("--nats", metavar="URL", help="NATS server (default: $NATS_SERVER)")
    parser.add_argument("--profile", choices=["seed", "dynamo"], default=None,
                        help="naming and codec profile (default: $DYNAMO_NB_PROFILE, else seed)")
    parser.add_argument("--json", action="store_true", help="machine-readable output, one JSON document a line")


def servers(args: argparse.Namespace) -> tuple[str, str]:
    etcd = args.etcd or os.environ.get("ETCD_ENDPOINTS", "")
    nats = args.nats or os.environ.get("NATS_SERVER", "")
    if not etcd or not nats:
        raise ConfigurationError("no servers: set ETCD_ENDPOINTS and NATS_SERVER (or pass --etcd/--nats); "
                                 "`dynamo-nb up` starts a local pair and prints the export lines")
    return etcd, nats


async def attach(args: argparse.Namespace) -> DistributedRuntime:
    """A read-only runtime on the configured servers, already watching everything registered."""
    etcd, nats = servers(args)
    return await DistributedRuntime.attach(etcd_endpoints=etcd, nats_server=nats, profile=args.profile,
                                           name="dynamo-nb")


def emit(args: argparse.Namespace, doc: Any, text: str | None = None) -> None:
    """One JSON line with ``--json``, else ``text`` (or the JSON, indented, when there is no text form)."""
    if getattr(args, "json", False) or text is None:
        print(json.dumps(doc, default=str), flush=True)
    else:
        print(text, flush=True)


async def until_signal() -> int:
    """Wait for SIGINT or SIGTERM; returns the signal's number."""
    loop = asyncio.get_running_loop()
    got: asyncio.Future[int] = loop.create_future()

    def on_signal(sig: int) -> None:
        if not got.done():
            got.set_result(sig)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await got
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def instance_rows(runtime: DistributedRuntime) -> list[dict[str, Any]]:
    """Every instance the runtime's scan sees, sorted: namespace, component, endpoint, id, key, address."""
    rows = []
    for watcher in runtime.registry.watchers.values():
        for key, info in watcher.instances.items():
            rows.append({"namespace": info.namespace, "component": info.component, "endpoint": info.endpoint,
                         "instance_id": info.instance_id, "key": key, "plane": info.plane,
                         "address": info.subject})
    rows.sort(key=lambda r: (r["namespace"], r["component"], r["endpoint"], r["instance_id"]))
    return rows


def stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
