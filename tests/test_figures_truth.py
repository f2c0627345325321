"""Figures say only what happened: calls that were made, states that were reached, every item of a small group.

Each test builds a small system the way a walkthrough does and reads the figure as a user would (its nodes,
arrows and labels), through the diagram's networkx graph or its text.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import pytest

import dynamo_nb
from dynamo_nb import DistributedRuntime, State
from dynamo_nb.backends.embedded import EmbeddedWorld

OPTS = dict(lease_ttl=60, health_check_interval=3600)


@pytest.fixture
async def world() -> AsyncIterator[EmbeddedWorld]:
    yield EmbeddedWorld()


async def answer(request: Any) -> AsyncIterator[dict[str, Any]]:
    yield {"answered": request}


def forward(client: Any) -> Any:
    async def generate(request: Any) -> AsyncIterator[Any]:
        async for item in await client.round_robin(request):
            yield item
    return generate


async def deploy(world: EmbeddedWorld, namespace: str, chain: list[str]) -> DistributedRuntime:
    """Notebook 01's deployment: ``generate`` on every component, each forwarding to the next."""
    rt = await DistributedRuntime.create(world=world, name=f"{namespace}-deployment", **OPTS)
    downstream = None
    for name in reversed(chain):
        ep = rt.namespace(namespace).component(name).endpoint("generate")
        handler = answer if downstream is None else forward(await downstream.client())
        await ep.endpoint_builder().handler(handler).start()
        downstream = ep
    return rt


def label(graph: Any, node: str) -> str:
    return " ".join(graph.nodes[node]["lines"])


def calls(drawn: Any) -> list[tuple[str, str, str]]:
    """(from, to, label) of every call arrow, each end named by its node's first line and the one above it."""
    graph = drawn.graph
    out = []
    for a, b, data in graph.edges(data=True):
        if data["label"].startswith("calls"):
            out.append((label(graph, a), label(graph, b), data["label"]))
    return sorted(out)


async def test_a_chain_of_three_draws_exactly_its_two_calls_in_their_direction(world: EmbeddedWorld) -> None:
    production = await deploy(world, "production", ["Frontend", "Router", "Worker"])
    user = await DistributedRuntime.create(world=world, name="notebook", **OPTS)
    try:
        client = await user.endpoint("production.Frontend.generate").client()
        await client.wait_for_instances(timeout=5)
        assert await (await client.round_robin({"prompt": "hi"})).collect() == [{"answered": {"prompt": "hi"}}]
        drawn = dynamo_nb.diagram([user, production], "hierarchy")
        graph, clusters = drawn.graph, drawn.model.clusters

        def owner(node: str) -> str:  # the component box a node sits in
            return clusters[graph.nodes[node]["cluster"]]["label"].split()[1]

        arrows = [(a, b, d["label"]) for a, b, d in graph.edges(data=True) if d["label"].startswith("calls")]
        between_handlers = sorted((owner(a), owner(b)) for a, b, _ in arrows if not a.startswith("app:"))
        assert between_handlers == [("Frontend", "Router"), ("Router", "Worker")]
        from_app = [(label(graph, a), owner(b)) for a, b, _ in arrows if a.startswith("app:")]
        assert from_app == [("notebook (application code) DistributedRuntime · lease "
                             f"{user.primary_lease_id:x}", "Frontend")]
        assert all("×1" in text for _, _, text in arrows)
    finally:
        await user.shutdown()
        await production.shutdown()


async def test_a_client_that_made_no_call_draws_no_call(world: EmbeddedWorld) -> None:
    worker = await deploy(world, "dynamo", ["Worker"])
    idle = await DistributedRuntime.create(world=world, name="idle", **OPTS)
    try:
        client = await idle.endpoint("dynamo.Worker.generate").client()
        await client.wait_for_instances(timeout=5)
        assert calls(dynamo_nb.diagram([idle, worker], "hierarchy")) == []
        own = dynamo_nb.diagram(client)  # drawn on its own, the client shows it only watches
        assert "no call yet" in own.mermaid and "calls" not in own.mermaid
        await (await client.round_robin("x")).collect()
        assert [text for _, _, text in calls(dynamo_nb.diagram([idle, worker], "hierarchy"))] == [
            f"calls ×1\nvia client#{client.id}"]
    finally:
        await idle.shutdown()
        await worker.shutdown()


async def test_a_killed_instance_is_in_the_killed_state_everywhere(world: EmbeddedWorld) -> None:
    clock = dynamo_nb.ManualClock()
    world = EmbeddedWorld(clock=clock)
    worker = await DistributedRuntime.create(world=world, name="worker", lease_ttl=10, health_check_interval=3600)
    served = await worker.endpoint("dynamo.Worker.generate").endpoint_builder().handler(answer).start()
    await served.wait_for_state("Healthy", "Running")
    await worker.kill()
    assert served.state is State.KILLED
    assert [s for s, _ in served.history][-1] is State.KILLED
    assert served.lease_expires_at == pytest.approx(worker.lease_renewed_at + 10)
    life = dynamo_nb.diagram(served, "lifecycle")
    assert life.model.current == "Killed" and "Killed" in life.model.visited
    labels = {(t.src, t.dst): t.label for t in life.model.transitions}
    assert labels[(served.history[-2][0].value, "Killed")] == "process killed"
    assert labels[("Killed", "[*]")] == "lease expires: etcd deletes its keys"
    assert "killed: its key stays" in life.model.caption
    text = dynamo_nb.diagram(served, "hierarchy").text
    assert "Killed · worker · key stays until its lease expires at" in text
    assert "colour key" in text  # colour carries state: the key says what it means


async def test_components_sort_as_a_person_counts_and_four_workers_are_all_drawn(world: EmbeddedWorld) -> None:
    rt = await DistributedRuntime.create(world=world, name="pool", **OPTS)
    workers = [await DistributedRuntime.create(world=world, name=f"w{i}", **OPTS) for i in range(4)]
    try:
        for name in ("Worker10", "Worker1", "Worker0", "Worker2"):
            await rt.namespace("dynamo").component(name).endpoint("generate").endpoint_builder().handler(
                answer).start()
        for w in workers:
            await w.endpoint("dynamo.Pool.generate").endpoint_builder().handler(answer).start()
        text = dynamo_nb.diagram([rt, *workers], "hierarchy").text
        order = [line.split()[1].rstrip("]") for line in text.splitlines() if line.strip().startswith("[Component")]
        assert order == ["Pool", "Worker0", "Worker1", "Worker2", "Worker10"]
        assert text.count("└─ instance") + text.count("├─ instance") == 8  # 4 pool workers + 4 components
        assert "more instances" not in text and "more components" not in text
    finally:
        for r in (rt, *workers):
            await r.shutdown()


async def test_limits_are_a_public_setting_and_never_hide_just_one(world: EmbeddedWorld) -> None:
    assert dynamo_nb.Limits is dynamo_nb.display.kinds.Limits
    rts = [await DistributedRuntime.create(world=world, name=f"w{i}", **OPTS) for i in range(6)]
    try:
        for r in rts:
            await r.endpoint("dynamo.Pool.generate").endpoint_builder().handler(answer).start()
        assert "+2 more instances" in dynamo_nb.diagram(rts, "hierarchy", limits=dynamo_nb.Limits(instances=4)).text
        assert "more instances" not in dynamo_nb.diagram(rts, "hierarchy", limits=dynamo_nb.Limits(instances=5)).text
        try:
            dynamo_nb.set_limits(instances=3)
            assert "+3 more instances" in dynamo_nb.diagram(rts, "hierarchy").text
        finally:
            dynamo_nb.set_limits()
        assert "+2 more instances" in dynamo_nb.diagram(rts, "hierarchy").text  # the default again: 4 of 6
        with pytest.raises(ValueError, match="instances"):
            dynamo_nb.Limits(instances=0)
    finally:
        for r in rts:
            await r.shutdown()


async def test_the_drain_after_stop_is_drawn_after_the_stop_and_before_its_outcome(world: EmbeddedWorld) -> None:
    rt = await DistributedRuntime.create(world=world, name="worker", **OPTS)
    caller = await DistributedRuntime.create(world=world, name="caller", **OPTS)
    release = asyncio.Event()

    async def slow(request: Any) -> AsyncIterator[int]:
        yield 1
        await release.wait()
        yield 2

    try:
        served = await rt.endpoint("dynamo.Slow.generate").endpoint_builder().handler(slow).start()
        client = await caller.endpoint("dynamo.Slow.generate").client()
        await client.wait_for_instances(timeout=5)
        stream = await client.round_robin({})
        assert await stream.__anext__() == 1
        stopping = asyncio.create_task(served.stop())
        await served.wait_for_state("Stopping")
        release.set()
        assert [x async for x in stream] == [2]
        await stopping
        steps = [line.strip() for line in dynamo_nb.diagram(served, "sequence").text.splitlines()]
        stop = next(i for i, s in enumerate(steps) if "stop()" in s)
        finish = next(i for i, s in enumerate(steps) if "finish 1 in-flight request (2 items streamed)" in s)
        drained = next(i for i, s in enumerate(steps) if "drained: 1 finished, 0 cancelled" in s)
        assert stop < finish < drained
        assert not any(s.startswith("loop running") for s in steps[stop:])
    finally:
        await caller.shutdown()
        await rt.shutdown()


async def test_pubsub_ends_with_the_subscriber_handling_the_event(world: EmbeddedWorld) -> None:
    a = await DistributedRuntime.create(world=world, name="a", **OPTS)
    b = await DistributedRuntime.create(world=world, name="b", **OPTS)
    try:
        events = await b.namespace("dynamo").component("a").subscribe("kv_events")
        await a.namespace("dynamo").component("a").publish("kv_events", {"blocks": 1})
        text = dynamo_nb.diagram([a, b], "pubsub").text
        assert "handle kv_events event" not in text  # delivered, not yet taken by b's code
        assert await events.get(timeout=5) == {"blocks": 1}
        steps = dynamo_nb.diagram([a, b], "pubsub").text.splitlines()
        assert "deliver kv_events" in steps[-2] and steps[-1].strip() == "b -> b: handle kv_events event"
        await events.close()
    finally:
        await a.shutdown()
        await b.shutdown()


async def test_pubsub_draws_a_publisher_it_only_heard_from(world: EmbeddedWorld) -> None:
    a = await DistributedRuntime.create(world=world, name="a", profile="dynamo", **OPTS)
    b = await DistributedRuntime.create(world=world, name="b", profile="dynamo", **OPTS)
    try:
        events = (await b.endpoint("demo.backend.generate").subscribe("kv_metrics")).events()
        await a.endpoint("demo.backend.generate").publish("kv_metrics", {"kv_used_blocks": 11})
        event = await asyncio.wait_for(anext(events), 5)
        # b's records alone: the publisher is known only from the envelope b received
        text = dynamo_nb.diagram(b, "pubsub").text
        assert f"publisher {event.publisher_id:x}" in text
        assert 'publish("kv_metrics", {"kv_used_blocks": 11}) #0' in text
        # with a's records too, a's own publish is drawn once, and no remote publisher
        both = dynamo_nb.diagram([a, b], "pubsub").text
        assert f"publisher {event.publisher_id:x}" not in both
        assert both.count('publish("kv_metrics"') == 1
    finally:
        await a.shutdown()
        await b.shutdown()


async def test_reference_says_how_each_instance_is_reached(world: EmbeddedWorld) -> None:
    rt = await DistributedRuntime.create(world=world, name="w", profile="dynamo", request_plane="tcp", **OPTS)
    try:
        async def gen(request: Any) -> Any:
            yield request

        served = await rt.endpoint("demo.backend.generate").endpoint_builder().handler(gen).start()
        text = dynamo_nb.diagram(rt, "reference").text
        assert f"TCP {served.address} · {rt.profile.codec} · cpu" in text
        assert served.address.endswith(f"/{served.instance_id:x}/demo/backend/generate")
    finally:
        await rt.shutdown()
