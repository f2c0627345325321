"""Lease expiry and health checks on event loops whose timers are not asyncio's own.

Pyodide's loop (the notebooks in a browser) fires ``call_at`` timers up to 0.5 ms early, and asyncio itself runs
a timer that is due within the clock's resolution. A lease whose timer fires early must wait again, or a killed
worker's key stays for ever. The loop below fires every timer 20 ms early: far more than its wake-up jitter, so
without the fix the lease would never expire.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine

import pytest

from dynamo_nb import DistributedRuntime, EmbeddedWorld
from support import eventually

pytestmark = pytest.mark.timeout(30)

EARLY = 0.02


class _EarlyLoop(asyncio.SelectorEventLoop):
    """An event loop whose timers all fire ``EARLY`` seconds before the time they were set for."""

    early_fires = 0

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:
        def fire(*a: Any) -> None:
            if self.time() < when:
                self.early_fires += 1
            callback(*a)

        return super().call_at(when - EARLY, fire, *args, context=context)


def _run_early(scenario: Callable[[], Coroutine[Any, Any, None]]) -> _EarlyLoop:
    loop = _EarlyLoop()
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
    return loop


def test_a_lease_expires_when_its_timer_fires_early() -> None:
    async def scenario() -> None:
        etcd = EmbeddedWorld().etcd
        lease = etcd.grant_lease(0.1)
        etcd.put("dynamo/components/w/gen:1", b"{}", lease)
        await eventually(lambda: etcd.keys() == [], timeout=5)
        assert etcd.leases() == {}

    assert _run_early(scenario).early_fires > 0  # the loop really did fire early


def test_a_killed_workers_key_goes_on_a_loop_that_fires_early() -> None:
    async def gen(request: Any) -> Any:
        yield request

    async def scenario() -> None:
        world = EmbeddedWorld()
        worker = await DistributedRuntime.create(world=world, lease_ttl=0.3)
        caller = await DistributedRuntime.create(world=world)
        try:
            served = await worker.endpoint("dynamo.w.gen").endpoint_builder().handler(gen).start()
            client = await caller.endpoint("dynamo.w.gen").client()
            await client.wait_for_instances(timeout=5)
            await worker.kill()
            assert world.etcd.keys() == [served.key]
            await eventually(lambda: world.etcd.keys() == [] and client.instance_ids() == [], timeout=10)
        finally:
            await caller.shutdown()

    _run_early(scenario)


class _PastRefusingLoop(asyncio.SelectorEventLoop):
    """A loop that refuses a timer for a time already past, as Pyodide's does ("Can't schedule in the past")."""

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:
        if delay < 0:
            raise ValueError("Can't schedule in the past")
        return super().call_at(self.time() + delay, callback, *args, context=context)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:
        return self.call_later(when - self.time(), callback, *args, context=context)


def test_serving_and_calling_schedule_no_timer_in_the_past() -> None:
    """Starting instances books their first health check "now": on Pyodide's loop that must not be a past time."""
    async def gen(request: Any) -> Any:
        yield request

    errors: list[Any] = []

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
        world = EmbeddedWorld()
        worker = await DistributedRuntime.create(world=world, health_check_interval=0.05)
        caller = await DistributedRuntime.create(world=world)
        try:
            for name in ("a", "b", "c"):
                await worker.endpoint(f"dynamo.w.{name}").endpoint_builder().handler(gen).start()
            client = await caller.endpoint("dynamo.w.a").client()
            await client.wait_for_instances(timeout=5)
            assert [item async for item in await client.round_robin({"x": 1})] == [{"x": 1}]
            await asyncio.sleep(0.2)  # a few sweeps of the health checks
        finally:
            await caller.shutdown()
            await worker.shutdown()

    loop = _PastRefusingLoop()
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
    assert errors == []
