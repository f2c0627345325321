"""``dynamo-nb call ns.Comp.ep '{json}'``: stream the items as they arrive; Ctrl-C cancels the remote handler."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from ..common import add_server_options, attach, emit, stderr

__all__ = ["HELP", "add_arguments", "run"]

HELP = "call an endpoint and print each streamed item (Ctrl-C stops the remote handler)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_server_options(parser)
    parser.add_argument("ref", metavar="ns.Comp.ep", help="the endpoint, in the seed's reference form")
    parser.add_argument("request", nargs="?", default="{}", help="the request, as JSON (default {})")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an instance")


async def run(args: argparse.Namespace) -> int:
    try:
        request = json.loads(args.request)
    except ValueError as exc:
        raise ValueError(f"the request is not JSON: {exc}") from None
    runtime = await attach(args)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGINT, task.cancel)
    try:
        client = await runtime.endpoint(args.ref).client()
        await client.wait_for_instances(timeout=args.timeout)
        stream = await client.round_robin(request)
        try:
            async for item in stream:
                emit(args, item, json.dumps(item, ensure_ascii=False))
        except asyncio.CancelledError:
            await stream.aclose()  # the worker is told to stop generating
            stderr("cancelled")
            return 130
        return 0
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        await runtime.shutdown()
