"""``dynamo-nb diagram KIND [ref] -o file.svg|.mmd|.dot|.txt``: a figure of what is registered now."""

from __future__ import annotations

import argparse
from typing import Any

from ..common import add_server_options, attach, emit

__all__ = ["HELP", "add_arguments", "run"]

HELP = "draw the running system (hierarchy, reference, structure, registry, topology, …) to a file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_server_options(parser)
    parser.add_argument("kind", help="the diagram kind")
    parser.add_argument("ref", nargs="?", help="ns, ns.Comp or ns.Comp.ep (default: everything)")
    parser.add_argument("-o", "--output", required=True, help="file; the suffix picks .svg, .mmd, .dot or .txt")


async def run(args: argparse.Namespace) -> int:
    from ...display.diagram import diagram

    runtime = await attach(args)
    try:
        target: Any = runtime
        if args.ref:
            parts = args.ref.split(".", 2)
            target = runtime.namespace(parts[0])
            if len(parts) > 1:
                target = target.component(parts[1])
            if len(parts) > 2:
                target = [target.endpoint(parts[2]), runtime]
            else:
                target = [target, runtime]
        path = diagram(target, args.kind).save(args.output)
        emit(args, {"kind": args.kind, "path": str(path)}, f"wrote {path}")
        return 0
    finally:
        await runtime.shutdown()
