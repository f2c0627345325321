"""(d) The event plane with ``DYN_EVENT_PLANE=nats``: a real worker's metrics and KV events reach dynamo_nb, and a
real Dynamo subscriber receives what dynamo_nb publishes, in Dynamo's msgpack envelope."""

from __future__ import annotations

import asyncio
import json

import msgpack
import pytest

from dynamo_nb import diagram

pytestmark = pytest.mark.dynamo_interop

EVENTS = {"DYN_EVENT_PLANE": "nats"}
CHANNELS = "v1/event_channels/namespace/demo/component/{comp}/endpoint/generate/topic/{topic}/"


async def _next(events):
    return await asyncio.wait_for(anext(events), 15)


async def test_a_real_workers_metrics_and_kv_events_reach_us(peers, nb_runtime):
    runtime = await nb_runtime("tcp")
    endpoint = runtime.endpoint("demo.backend.generate")
    metrics = (await endpoint.subscribe("kv_metrics")).events()
    kv = (await endpoint.subscribe("kv-events")).events()
    peer = await peers("events.py", "publish", "demo.backend.generate", "50", env=EVENTS)
    worker = (await peer.ready())["connection_id"]

    first, second = await _next(metrics), await _next(metrics)
    assert first.topic == "kv_metrics" and first.subject == endpoint.event_subject("kv_metrics")
    assert first.data["worker_id"] == worker and first.data["dp_rank"] == 0
    assert first.data["kv_used_blocks"] == 10 + first.data["active_decode_blocks"]
    assert (second.publisher_id, second.sequence) == (first.publisher_id, first.sequence + 1)
    removed = await _next(kv)
    [stored] = removed.data
    assert stored["worker_id"] == worker
    assert stored["event"]["data"]["removed"]["block_hashes"][0] >= 1

    # the envelope's publisher is the one the peer announced in etcd, on its lease
    etcd = runtime.etcd_client()
    [channel] = await etcd.kv_get_prefix(CHANNELS.format(comp="backend", topic="kv_metrics"))
    assert channel["key"].endswith(f"/{first.publisher_id:x}")
    theirs = json.loads(channel["value"])
    assert theirs["instance_id"] == first.publisher_id

    # our own channel record has the same shape, key for key
    await runtime.endpoint("demo.nbworker.generate").publish("kv_metrics", {"worker_id": 1})
    [mine] = await etcd.kv_get_prefix(CHANNELS.format(comp="nbworker", topic="kv_metrics"))
    ours = json.loads(mine["value"])
    assert json.dumps(ours).replace("nbworker", "backend").replace(str(ours["instance_id"]), "ID") == \
        json.dumps(theirs).replace(str(theirs["instance_id"]), "ID")

    # the pub/sub figure draws the real publisher from the recorded deliveries
    text = diagram(runtime, "pubsub").mermaid
    assert f"publisher<br/>{first.publisher_id:x}" in text  # the participant, its name wrapped to its box
    assert "deliver kv_metrics" in text and "deliver kv-events" in text


async def test_a_real_subscriber_receives_our_events(peers, nb_runtime):
    runtime = await nb_runtime("nats")
    endpoint = runtime.endpoint("demo.backend.generate")
    peer = await peers("events.py", "subscribe", "demo.backend.generate", "1", env=EVENTS)
    await peer.ready()
    metrics = {"version": 1, "worker_id": "nb-1", "dp_rank": 0, "counter_id": 7, "wall_time": 0.25}

    async def publish_until_heard() -> None:  # the peer subscribes on its first recv(), after "ready"
        while True:
            await endpoint.publish("forward-pass-metrics", metrics)
            await asyncio.sleep(0.1)

    publishing = asyncio.create_task(publish_until_heard())
    try:
        fact = await peer.fact("event", timeout=15)
    finally:
        publishing.cancel()
    assert msgpack.unpackb(bytes.fromhex(fact["event"])) == metrics

    [channel] = await runtime.etcd_client().kv_get_prefix(
        CHANNELS.format(comp="backend", topic="forward-pass-metrics"))
    doc = json.loads(channel["value"])
    assert doc["type"] == "EventChannel" and channel["key"].endswith(f"/{doc['instance_id']:x}")
    assert doc["transport"] == {"kind": "Nats", "config": {
        "subject_prefix": "namespace.demo.component.backend.endpoint.generate"}}
