"""``dynamo-nb stats``: the ``$SRV.STATS`` answer of every component found in etcd."""

from __future__ import annotations

import argparse

from ..common import add_server_options, attach, emit, instance_rows

__all__ = ["HELP", "add_arguments", "run"]

HELP = "ask every registered component for its NATS service stats ($SRV.STATS)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_server_options(parser)
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds to collect replies")


async def run(args: argparse.Namespace) -> int:
    runtime = await attach(args)
    try:
        components = dict.fromkeys((r["namespace"], r["component"]) for r in instance_rows(runtime))
        out = []
        lines = []
        for ns, comp in components:
            replies = await runtime.namespace(ns).component(comp).scrape_stats(timeout=args.timeout)
            out.append({"namespace": ns, "component": comp, "services": replies})
            lines.append(f"{ns}.{comp}: {len(replies)} instance(s) answered")
            for reply in replies:
                for ep in reply.get("endpoints", []):
                    lines.append(f"  {ep.get('name', '?')}: requests {ep.get('num_requests', 0)}, "
                                 f"errors {ep.get('num_errors', 0)}, data {ep.get('data')}")
        emit(args, {"components": out}, "\n".join(lines) or "nothing registered")
        return 0
    finally:
        await runtime.shutdown()
