"""What only the embedded backend offers: one shared world per loop, and a clock tests can move."""

from __future__ import annotations

import asyncio

import pytest

from dynamo_nb import DistributedRuntime, EmbeddedWorld, ManualClock, NoInstancesError, StreamIncompleteError
from dynamo_nb.backends.embedded import subject_matches
from support import embedded_client, eventually

pytestmark = pytest.mark.timeout(30)


async def gen(request):
    yield request


async def test_runtimes_on_one_loop_share_the_default_world():
    worker = await DistributedRuntime.create()
    frontend = await DistributedRuntime.create()
    try:
        assert worker.backend.kind == "embedded"
        await worker.endpoint("dynamo.backend.generate").endpoint_builder().handler(gen).start()
        client = await frontend.endpoint("dynamo.backend.generate").client()
        await client.wait_for_instances(timeout=2)
        assert await (await client.generate("hello")).collect() == ["hello"]
    finally:
        await worker.shutdown()
        await frontend.shutdown()


async def test_separate_worlds_do_not_see_each_other():
    a = await DistributedRuntime.create(world=EmbeddedWorld())
    b = await DistributedRuntime.create(world=EmbeddedWorld())
    try:
        await a.endpoint("dynamo.backend.generate").endpoint_builder().handler(gen).start()
        client = await b.endpoint("dynamo.backend.generate").client()
        await asyncio.sleep(0.05)
        assert client.instance_ids() == []
    finally:
        await a.shutdown()
        await b.shutdown()


async def test_lease_expiry_follows_the_manual_clock():
    clock = ManualClock()
    world = EmbeddedWorld(clock=clock)
    worker = await DistributedRuntime.create(world=world, lease_ttl=10)
    caller = await DistributedRuntime.create(world=world)
    try:
        served = await worker.endpoint("dynamo.w.gen").endpoint_builder().handler(gen).start()
        client = await caller.endpoint("dynamo.w.gen").client()
        await client.wait_for_instances(timeout=2)
        await worker.kill()
        assert world.etcd.lease_ttl_remaining(served.lease_id) == pytest.approx(10)
        clock.advance(9.9)
        await asyncio.sleep(0.05)
        assert client.instance_ids() == [served.instance_id]
        assert world.etcd.keys() == [served.key]
        clock.advance(0.2)
        await asyncio.sleep(0.05)
        assert client.instance_ids() == []
        assert world.etcd.keys() == []
    finally:
        await caller.shutdown()


async def test_the_no_instances_error_follows_the_lease_not_the_worker():
    clock = ManualClock()
    world = EmbeddedWorld(clock=clock)
    worker = await DistributedRuntime.create(world=world, lease_ttl=10)
    caller = await DistributedRuntime.create(world=world)
    try:
        served = await worker.endpoint("dynamo.w.gen").endpoint_builder().handler(gen).start()
        client = await caller.endpoint("dynamo.w.gen").client()
        await client.wait_for_instances(timeout=2)
        await worker.kill()
        with pytest.raises(NoInstancesError) as killed:
            await client.generate({})
        assert killed.value.registered == client.instance_ids() == [served.instance_id]
        assert killed.value.tried == [served.instance_id]
        clock.advance(10.1)  # the lease expires: etcd deletes the key, the watcher drops the instance
        await eventually(lambda: client.instance_ids() == [])
        with pytest.raises(NoInstancesError, match="none is registered") as expired:
            await client.generate({})
        assert expired.value.registered == expired.value.tried == []
    finally:
        await caller.shutdown()


async def test_keepalive_refreshes_against_the_manual_clock():
    clock = ManualClock()
    world = EmbeddedWorld(clock=clock)
    worker = await DistributedRuntime.create(world=world, lease_ttl=0.3)
    try:
        served = await worker.endpoint("dynamo.w.gen").endpoint_builder().handler(gen).start()
        await asyncio.sleep(0.25)  # real time: the keep-alive loop runs every ttl/3
        assert worker.keepalives >= 1
        clock.advance(0.25)
        await asyncio.sleep(0.15)
        clock.advance(0.25)
        assert world.etcd.keys() == [served.key]
    finally:
        await worker.shutdown()


def test_subject_matching_rules():
    assert subject_matches("a.b", "a.b")
    assert subject_matches("a.*.c", "a.x.c")
    assert not subject_matches("a.*.c", "a.x.y.c")
    assert subject_matches("a.>", "a.b.c.d")
    assert not subject_matches("a.>", "a")
    assert subject_matches("*", "a") and not subject_matches("*", "a.b")


async def test_invalid_subjects_are_rejected():
    world = EmbeddedWorld()
    m = world.connect().messaging
    for bad in ("", "a..b", "has space", "a.>.b"):
        with pytest.raises(ValueError):
            async def cb(msg):
                pass
            await m.subscribe(bad, cb)
    with pytest.raises(ValueError, match="wildcard"):
        await m.publish("a.*", b"")


async def test_a_handler_started_with_its_request_still_runs_as_in_a_task_of_its_own():
    """The embedded worker runs a stream's first step as it takes the request: the handler must still see its
    own task (timeouts, cancelling), keep its context variables to itself, and go on in that task after a wait."""
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="caller")
    seen: dict[str, object] = {}

    async def handler(request):
        seen["task"] = asyncio.current_task()
        var.set("handler")
        yield "first"
        if request == "wait":
            try:
                await asyncio.wait_for(asyncio.sleep(1), 0.01)  # times out in the handler's task, not the caller's
            except asyncio.TimeoutError:
                seen["timed out"] = True
            seen["after"] = (asyncio.current_task(), var.get())
            yield "second"

    async with embedded_client(handler) as client:
        me = asyncio.current_task()
        assert await (await client.generate("now")).collect() == ["first"]
        assert seen["task"] is not me and var.get() == "caller"
        await asyncio.sleep(0)
        assert seen["task"].done(), "the handler's task outlived its stream"  # cancelling it later does nothing
        assert await (await client.generate("wait")).collect() == ["first", "second"]
        assert seen["timed out"] and seen["after"] == (seen["task"], "handler") and seen["task"] is not me
        assert var.get() == "caller"


async def test_a_handler_that_calls_another_endpoint_gets_its_answer():
    """A call made from inside a handler started with its request (the stream of a chain of workers)."""
    world = EmbeddedWorld()
    first, second, caller = [await DistributedRuntime.create(world=world) for _ in range(3)]
    try:
        await second.endpoint("dynamo.second.gen").endpoint_builder().handler(gen).start()
        inner = await first.endpoint("dynamo.second.gen").client()
        await inner.wait_for_instances(timeout=2)

        async def relay(request):
            async for item in await inner.generate(request):
                yield {"relayed": item}

        await first.endpoint("dynamo.first.gen").endpoint_builder().handler(relay).start()
        client = await caller.endpoint("dynamo.first.gen").client()
        await client.wait_for_instances(timeout=2)
        for i in range(3):
            assert await (await client.generate(i)).collect() == [{"relayed": i}]
    finally:
        for runtime in (caller, first, second):
            await runtime.shutdown()


async def test_a_handler_that_cancels_and_keeps_its_own_task_ends_its_stream_alone():
    """A handler may cancel its own task (as with ``asyncio.current_task().cancel()``) and keep it: only its own
    stream ends, the caller and later calls are untouched."""
    kept = []

    async def handler(request):
        if request == "cancel":
            task = asyncio.current_task()
            kept.append(task)
            task.cancel()
            await asyncio.sleep(0)  # the cancellation lands here, in the handler's task
        yield request

    async with embedded_client(handler) as client:
        with pytest.raises(StreamIncompleteError, match="before generation completed"):  # it ends unfinished
            await (await client.generate("cancel")).collect()
        assert kept and kept[0] is not asyncio.current_task()
        assert await (await client.generate("next")).collect() == ["next"]
        kept[0].cancel()  # cancelling it again, later, touches nobody
        assert await (await client.generate("after")).collect() == ["after"]
