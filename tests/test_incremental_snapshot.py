"""A runtime's snapshot is built incrementally (only what changed since the last one): it must always equal the
snapshot built from nothing, whatever happened in between."""

from __future__ import annotations

import asyncio
import heapq
from dataclasses import replace

from dynamo_nb import DistributedRuntime, EmbeddedWorld, diagram
from dynamo_nb.core.snapshot import RuntimeState, TaggedRecord
from dynamo_nb.display.snapshot import _LATEST, _MERGES, _tree_from_nothing, parts_of, snapshot

from support import eventually


async def gen(request):  # noqa: ANN001, ANN201 - an async generator handler
    yield {"echo": request}


def from_nothing(runtime: DistributedRuntime) -> RuntimeState:
    """The runtime's snapshot with every part it kept from earlier snapshots forgotten."""
    runtime._forget_parts()
    return runtime.snapshot()


def assert_same(*runtimes: DistributedRuntime, drawn: object = None) -> None:
    objs = [drawn, *runtimes] if drawn is not None else list(runtimes)
    merged = snapshot(objs).namespaces  # the tree kept from the last merge, rebuilt where the states changed
    for runtime in runtimes:
        kept = runtime.snapshot()  # incremental: built on what the frames taken since the last check kept
        assert replace(kept, frames=()) == replace(from_nothing(runtime), frames=()), runtime.name
    parts = parts_of(objs)
    focus = [p for p in parts if p.focus.kind != "runtime"] or parts
    states = [p.runtimes[0] for p in parts[-len(runtimes):]]
    assert merged == _tree_from_nothing(states, focus)
    streams = [[TaggedRecord(s.runtime.name, r) for r in s.records] for s in states]
    assert tuple(snapshot(objs).records) == tuple(heapq.merge(*streams, key=lambda t: t.record.ts))
    if drawn is not None:  # the figures that read records, from records merged since the last frame, and cold
        kept = [diagram(objs, kind).mermaid for kind in ("startup", "sequence", "pubsub")]
        _MERGES.clear()
        _LATEST.clear()
        assert kept == [diagram(objs, kind).mermaid for kind in ("startup", "sequence", "pubsub")]


async def test_incremental_snapshots_equal_snapshots_from_nothing_through_start_calls_stop_lease_loss_and_kill():
    world = EmbeddedWorld()
    a = await DistributedRuntime.create(world=world, name="a", lease_ttl=0.3)
    b = await DistributedRuntime.create(world=world, name="b", lease_ttl=0.3)
    front = await DistributedRuntime.create(world=world, name="front")
    try:
        served = [await a.endpoint(f"ns.W.ep{i}").endpoint_builder().handler(gen).start() for i in range(3)]
        await b.endpoint("ns.W.ep0").endpoint_builder().handler(gen).start()
        client = await front.endpoint("ns.W.ep0").client()
        await client.wait_for_instances()
        await eventually(lambda: len(client.instance_ids()) == 2)
        assert_same(a, b, front)

        for _ in range(6):  # calls to both instances, and the frames they leave (counters only)
            await (await client.round_robin({"x": 1})).collect()
        await asyncio.sleep(0.1)
        assert a.snapshot().served[0].requests + b.snapshot().served[0].requests == 6
        assert_same(a, b, front, drawn=served[0])
        for _ in range(4):  # more calls after a figure read the records: the next merge carries the last on
            await (await client.round_robin({"x": 1})).collect()
        assert_same(a, b, front, drawn=served[0])

        assert_same(a, b, front, drawn=served[2])
        await served[2].stop()
        await asyncio.sleep(0)
        assert_same(a, b, front)
        assert_same(a, b, front, drawn=served[2])  # a stopped instance is still drawn

        old = a.primary_lease_id
        await front.backend.discovery.revoke_lease(old)  # etcd loses the lease: a re-grants and registers again
        await eventually(lambda: a.primary_lease_id != old and served[0].instance_id == a.primary_lease_id
                         and served[0].instance_id in client.instance_ids())
        await asyncio.sleep(0.05)
        assert {i.instance_id for i in a.snapshot().served} == {a.primary_lease_id}
        assert_same(a, b, front, drawn=served[0])

        await b.kill()
        await asyncio.sleep(0.05)
        assert b.snapshot().served[0].killed
        assert_same(a, b, front)
    finally:
        for runtime in (front, b, a):
            await runtime.shutdown()
