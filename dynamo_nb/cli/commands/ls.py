"""``dynamo-nb ls [--json] [--watch]``: namespaces → components → endpoints → instances, found by scanning etcd."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ..common import add_server_options, attach, emit, instance_rows, until_signal

__all__ = ["HELP", "add_arguments", "run", "render"]

HELP = "list everything registered (no names needed); --watch redraws on every change"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_server_options(parser)
    parser.add_argument("--watch", action="store_true", help="redraw whenever an instance comes or goes")


def render(rows: list[dict[str, Any]]) -> str:
    """The tree as text: one line per namespace, component, endpoint and instance."""
    if not rows:
        return "nothing registered"
    out: list[str] = []
    last: tuple[str, ...] = ()
    for r in rows:
        path = (r["namespace"], r["component"], r["endpoint"])
        for depth in range(3):
            if last[: depth + 1] != path[: depth + 1]:
                out.append("  " * depth + path[depth] + ("/" if depth < 2 else ""))
        out.append(f"      {r['instance_id']:x}  {r['plane']} {r['address']}")
        last = path
    return "\n".join(out)


async def run(args: argparse.Namespace) -> int:
    runtime = await attach(args)
    try:
        watcher = await runtime.registry.scan()

        async def redraw() -> None:
            while True:
                rows = instance_rows(runtime)
                if args.watch and not args.json and sys.stdout.isatty():
                    print("\033[2J\033[H", end="")
                emit(args, {"instances": rows}, render(rows))
                if not args.watch:
                    return
                await watcher.wait_changed()
                await asyncio.sleep(0.1)  # coalesce a burst of changes into one redraw

        if not args.watch:
            await redraw()
            return 0
        drawing, stop = asyncio.ensure_future(redraw()), asyncio.ensure_future(until_signal())
        await asyncio.wait({drawing, stop}, return_when=asyncio.FIRST_COMPLETED)
        drawing.cancel()
        stop.cancel()
        return 0
    finally:
        await runtime.shutdown()
