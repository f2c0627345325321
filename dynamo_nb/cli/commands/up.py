"""``dynamo-nb up``: a LocalCluster (real etcd + nats-server) in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse

from ..common import emit, until_signal

__all__ = ["HELP", "add_arguments", "run"]

HELP = "run etcd and nats-server on free loopback ports and print the export lines to use them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the environment as one JSON line")


async def run(args: argparse.Namespace) -> int:
    from ...cluster import LocalCluster

    async with LocalCluster() as cluster:
        env = {"ETCD_ENDPOINTS": cluster.etcd_endpoints, "NATS_SERVER": cluster.nats_server}
        lines = [f"export {k}={v}" for k, v in env.items()]
        emit(args, env, "\n".join(lines + ["# servers are up; Ctrl-C stops them"]))
        await until_signal()
    return 0
