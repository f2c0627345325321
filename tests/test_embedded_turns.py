"""A caller whose embedded streams are complete before it reads them still lets everything else run.

Such a caller never waits for its worker, so the stream's close lets the event loop turn when that matters: what
is ready to run runs before the call returns, a timer that comes due fires, and I/O is polled, all in the middle
of a burst of calls that never waits otherwise.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Callable

import pytest

from dynamo_nb import DistributedRuntime, EmbeddedWorld
from dynamo_nb.core.client import Client
from support import embedded_client

pytestmark = pytest.mark.timeout(30)

MAX_CALLS = 200_000  # a burst long enough for anything due to have come due many times over


async def echo(request):
    yield request


async def _calls_until(client: Client, done: Callable[[], bool]) -> int:
    """Call until ``done()``; how many calls that took (MAX_CALLS + 1 if it never was)."""
    for n in range(1, MAX_CALLS + 1):
        assert await (await client.generate(n)).collect() == [n]
        if done():
            return n
    return MAX_CALLS + 1


async def test_what_was_ready_before_a_call_has_run_when_it_returns():
    async with embedded_client(echo) as client:
        ran: list[int] = []

        async def mark(i: int) -> None:
            ran.append(i)

        for i in range(50):
            task = asyncio.get_running_loop().create_task(mark(i))
            assert await (await client.generate(i)).collect() == [i]
            assert ran[-1:] == [i] and task.done()


async def test_a_task_a_handler_starts_has_run_when_its_call_returns():
    started: list[str] = []

    async def note(request: str) -> None:
        started.append(request)

    async def handler(request):
        asyncio.get_running_loop().create_task(note(request))
        yield request

    world = EmbeddedWorld()
    worker = await DistributedRuntime.create(world=world)
    try:
        await worker.endpoint("dynamo.w.gen").endpoint_builder().handler(handler).start()
        client = await worker.endpoint("dynamo.w.gen").client()
        await client.wait_for_instances(timeout=2)
        for request in ("a", "b", "c"):
            assert await (await client.generate(request)).collect() == [request]
            assert started[-1] == request
    finally:
        await worker.shutdown()


async def test_a_timer_that_comes_due_fires_in_the_middle_of_a_burst_of_calls():
    async with embedded_client(echo) as client:
        fired = asyncio.Event()
        asyncio.get_running_loop().call_later(0.005, fired.set)
        calls = await _calls_until(client, fired.is_set)
        assert calls <= MAX_CALLS and fired.is_set()


async def test_io_is_polled_in_the_middle_of_a_burst_of_calls():
    loop = asyncio.get_running_loop()
    reader, writer = socket.socketpair()
    got: list[bytes] = []
    try:
        reader.setblocking(False)
        loop.add_reader(reader, lambda: got.append(reader.recv(16)))
        async with embedded_client(echo) as client:
            await (await client.generate(0)).collect()  # a first turn before the data is there
            writer.send(b"ping")
            calls = await _calls_until(client, lambda: bool(got))
            assert calls <= MAX_CALLS and got == [b"ping"]
    finally:
        loop.remove_reader(reader)
        reader.close()
        writer.close()
