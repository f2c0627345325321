"""(c) A real Dynamo deployment seen from dynamo_nb: instances appear and leave, and our values match theirs."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest

from dynamo_nb import diagram

pytestmark = pytest.mark.dynamo_interop


@pytest.mark.parametrize("plane", ["tcp", "nats"])
async def test_appear_and_vanish_within_a_second(peers, nb_runtime, plane):
    runtime = await nb_runtime(plane)
    client = await runtime.endpoint("demo.backend.generate").client()
    loop = asyncio.get_running_loop()
    peer = await peers("worker.py", "demo.backend.generate", plane=plane, codec="json")
    ready = await peer.ready()
    await peer.fact("registered", timeout=30)  # Dynamo's own client sees the instance: the key is in etcd
    seen_at = loop.time()
    await client.wait_for_instances(timeout=1.0)
    assert loop.time() - seen_at < 1.0
    [info] = client.instances()
    assert (info.instance_id, info.plane, info.codec, info.device_type) == (
        ready["connection_id"], plane, "json", "cuda")  # a real worker says "cuda" even without a GPU
    text = diagram(runtime, "hierarchy").mermaid
    assert f"{ready['connection_id']:x}" in text
    reached = "TCP 127.0.0.1:" if plane == "tcp" else f"NATS subject demo_backend.generate-{ready['connection_id']:x}"
    assert f"{reached}" in diagram(runtime, "reference").text and " · json · cuda" in diagram(runtime, "reference").text

    peer.proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(1.0):
        while client.instance_ids():
            await client.watcher.wait_changed()
    await asyncio.wait_for(peer.proc.wait(), 5)


@pytest.mark.parametrize("plane", ["tcp", "nats"])
async def test_our_value_has_the_peer_byte_shape(peers, nb_runtime, plane):
    peer = await peers("worker.py", "demo.backend.generate", plane=plane)
    ready = await peer.ready()
    runtime = await nb_runtime(plane)

    async def ours(request):
        yield 1

    served = await runtime.endpoint("demo.nbworker.generate").endpoint_builder().handler(ours).start()
    etcd = runtime.etcd_client()
    async with asyncio.timeout(10):
        while not (theirs := await etcd.kv_get_prefix("v1/instances/demo/backend/")):
            await asyncio.sleep(0.05)
    [mine] = await etcd.kv_get_prefix("v1/instances/demo/nbworker/")
    theirs_doc, mine_doc = json.loads(theirs[0]["value"]), json.loads(mine["value"])
    assert list(theirs_doc) == list(mine_doc)  # same keys, same order
    assert list(theirs_doc["transport"]) == list(mine_doc["transport"])
    assert theirs[0]["key"] == f"v1/instances/demo/backend/generate/{ready['connection_id']:x}"
    assert mine["key"] == f"v1/instances/demo/nbworker/generate/{served.instance_id:x}"

    def normalised(doc, value):
        doc = dict(doc, component="c", instance_id=0, device_type="d")
        doc["transport"] = {k: "addr" for k in doc["transport"]}
        return json.dumps(doc, separators=(",", ":"))

    assert normalised(theirs_doc, theirs[0]["value"]) == normalised(mine_doc, mine["value"])
    assert theirs[0]["value"].decode() == json.dumps(theirs_doc, separators=(",", ":"))  # compact, like ours
    assert mine["value"].decode() == json.dumps(mine_doc, separators=(",", ":"))


async def test_attach_scans_everything_and_draws_it_live(peers, nb_runtime, local_cluster):
    import dynamo_nb
    from dynamo_nb.errors import RegistrationError

    attached = await dynamo_nb.attach(etcd_endpoints=local_cluster.etcd_endpoints,
                                      nats_server=local_cluster.nats_server, profile="dynamo")
    try:
        assert attached.read_only and not attached.lease_alive
        # "/" in an endpoint name: a real 1.6.1 NATS-plane worker registers it but answers nobody, not even a real
        # client (test_a_slash_endpoint_on_the_nats_plane_is_dynamos_own_gap), so the NATS peer uses a plain name
        tcp = await peers("worker.py", "prod.Router.chat/completions", plane="tcp")
        nats = await peers("worker.py", "demo.backend.generate", plane="nats")
        ids = {(await tcp.ready())["connection_id"], (await nats.ready())["connection_id"]}
        watcher = attached.registry.watchers["scan:v1/instances/"]
        async with asyncio.timeout(10):
            while {i.instance_id for i in watcher.instances.values()} != ids:
                await watcher.wait_changed()
        refs = sorted(ep.reference() for ep in attached.known_endpoints())
        assert refs == ["demo.backend.generate", "prod.Router.chat/completions"]
        text = diagram(attached, "hierarchy").mermaid
        assert all(f"{i:x}" in text for i in ids) and "Router" in text
        # the attached runtime calls, too, each instance on its own plane
        client = await attached.endpoint("prod.Router.chat/completions").client()
        await client.wait_for_instances(timeout=5)
        assert await (await client.generate({"n": 1})).collect() == [{"i": 0, "echo": None}]
        with pytest.raises(RegistrationError):
            async def h(request):
                yield request
            await attached.endpoint("demo.x.y").endpoint_builder().handler(h).start()

        await nats.stop()
        async with asyncio.timeout(1.0):
            while len(watcher.instances) != 1:
                await watcher.wait_changed()
    finally:
        await attached.shutdown()


async def test_a_slash_endpoint_on_the_nats_plane_is_dynamos_own_gap(peers, nb_runtime):
    """A real 1.6.1 NATS-plane worker registers ``chat/completions`` but answers nothing on its subject (nor any
    ``$SRV`` of its service), even to a real client; a dynamo_nb NATS-plane worker serves the same name to it."""
    from dynamo_nb.transport.dynamo import DynamoProfile

    real = await peers("worker.py", "slash.Router.chat/completions", plane="nats")
    await real.ready()
    caller = await peers("client.py", "slash.Router.chat/completions", "call", '{"n": 2}', plane="nats")
    await caller.ready()
    assert (await caller.fact("error"))["error"].startswith("Exception: Unavailable: NATS request to "
                                                           "slash_Router.chat/completions-")
    await real.stop()

    runtime = await nb_runtime(profile=DynamoProfile("nats", codec="msgpack"))

    async def generate(request):
        for i in range(request["n"]):
            yield {"i": i}

    await runtime.endpoint("slashnb.Router.chat/completions").endpoint_builder().handler(generate).start()
    caller = await peers("client.py", "slashnb.Router.chat/completions", "call", '{"n": 2}', plane="nats")
    await caller.ready()
    assert (await caller.fact("items"))["items"] == [{"i": 0}, {"i": 1}]
