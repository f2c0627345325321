"""The event plane keeps bounds: a subscriber that stops reading drops (and counts) instead of growing, and an
event published while NATS is down raises instead of vanishing (issue 15)."""

from __future__ import annotations

import asyncio

import pytest

from dynamo_nb import DistributedRuntime, LocalCluster, diagram
from dynamo_nb.errors import BackendUnavailableError, RuntimeClosedError
from support import eventually


async def test_an_unread_subscription_is_bounded_and_its_drops_are_counted_and_drawn(make_runtime):
    publisher, subscriber = await make_runtime(), await make_runtime()
    component = subscriber.namespace("bounds").component("Router")
    sub = component.subscribe("kv_events")
    sub.max_queued = 5
    await sub
    for n in range(20):
        await publisher.namespace("bounds").component("Router").publish("kv_events", {"n": n})
    await eventually(lambda: sub.received + sub.dropped == 20, timeout=10)
    assert (sub.received, sub.dropped) == (5, 15)
    snap = subscriber.snapshot().subscriptions
    assert [(s.subject, s.queued, s.dropped) for s in snap] == [(sub.subject, 5, 15)]
    assert "15 kv_events events dropped" in diagram([publisher, subscriber], "pubsub").mermaid
    assert [await sub.get(timeout=5) for _ in range(5)] == [{"n": n} for n in range(5)]
    await sub.close()
    with pytest.raises(RuntimeClosedError):  # not StopAsyncIteration out of a plain coroutine
        await sub.get(timeout=1)


@pytest.mark.servers
@pytest.mark.timeout(90)
async def test_events_published_while_nats_is_down_raise_and_are_counted():
    async with LocalCluster() as cluster:
        publisher = await DistributedRuntime.create(etcd_endpoints=cluster.etcd_endpoints,
                                                    nats_server=cluster.nats_server)
        try:
            component = publisher.namespace("bounds").component("Router")
            await component.publish("kv_events", {"n": -1})
            restart = asyncio.get_running_loop().create_task(cluster.restart_nats(downtime=1.5))
            sent = raised = 0
            while not restart.done():
                try:
                    await component.publish("kv_events", {"n": sent + raised})
                    sent += 1
                except BackendUnavailableError as exc:
                    assert "not published" in str(exc)
                    raised += 1
                await asyncio.sleep(0.02)
            await restart
            assert raised > 0 and publisher.events_unsent == raised
            assert f"{raised} events not published" in diagram(publisher, "pubsub").mermaid
            await eventually(lambda: publisher.backend.messaging.outage() is None, timeout=20)
            await component.publish("kv_events", {"n": "after"})
        finally:
            await publisher.shutdown()
