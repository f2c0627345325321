"""(b) Real Dynamo 1.6.1 clients call dynamo_nb workers: both request planes, both advertised codecs."""

from __future__ import annotations

import asyncio
import json

import pytest

pytestmark = pytest.mark.dynamo_interop

REF = "demo.nbworker.generate"


async def _serve(nb_runtime, plane, codec="msgpack", ref=REF):
    seen: list = []
    stopped: list = []

    async def generate(request, context):
        seen.append(request)
        for i in range(int(request.get("n", 3))):
            if context.is_stopped():
                stopped.append(i)
                return
            yield {"i": i, "echo": request.get("echo")}
            if request.get("delay"):
                await asyncio.sleep(request["delay"])
        if request.get("raise"):
            raise ValueError(request["raise"])

    from dynamo_nb.transport.dynamo import DynamoProfile

    runtime = await nb_runtime(plane) if codec is None else await nb_runtime(
        profile=DynamoProfile(plane, codec=codec))
    served = await runtime.endpoint(ref).endpoint_builder().handler(generate).start()
    return runtime, served, seen, stopped


def _outcomes(runtime):
    return [r.detail.get("outcome") for r in runtime.recorder.records if r.kind.value == "response"]


@pytest.mark.parametrize("plane,codec", [("tcp", "msgpack"), ("tcp", "json"), ("nats", "msgpack"), ("nats", "json")])
async def test_real_client_calls_nb_worker(peers, nb_runtime, plane, codec):
    runtime, served, seen, _ = await _serve(nb_runtime, plane, codec)
    peer = await peers("client.py", REF, "call", json.dumps({"n": 3, "echo": "hi"}), plane=plane)
    ready = await peer.ready()
    assert ready["instances"] == [served.instance_id]
    assert (await peer.fact("items"))["items"] == [{"i": i, "echo": "hi"} for i in range(3)]
    assert seen == [{"n": 3, "echo": "hi"}]

    peer = await peers("client.py", REF, "call", json.dumps({"n": 1, "raise": "boom from dynamo_nb"}), plane=plane)
    await peer.ready()
    error = (await peer.fact("error"))["error"]
    assert error.startswith("ValueError") and "InvalidRequest: ValueError: boom from dynamo_nb" in error


@pytest.mark.parametrize("plane", ["tcp", "nats"])
async def test_pipelined_concurrent_calls(peers, nb_runtime, plane):
    runtime, served, seen, _ = await _serve(nb_runtime, plane)
    plane_ = runtime.backend.responses
    senders: list = []
    connect = plane_.connect

    async def recording_connect(connection_info):
        senders.append(await connect(connection_info))
        return senders[-1]

    plane_.connect = recording_connect  # what kind of response stream the real caller gets
    peer = await peers("client.py", REF, "concurrent", json.dumps({"n": 2}), "6", plane=plane)
    await peer.ready()
    results = (await peer.fact("results"))["results"]
    assert results == [[{"i": 0, "echo": k}, {"i": 1, "echo": k}] for k in range(6)]
    assert sorted(r["echo"] for r in seen) == list(range(6))
    if plane == "tcp":
        assert runtime.backend.request_plane("tcp").requests_in == 6
    # A real caller does not advertise the multiplexed plane: each stream had a connection of its own, as in 1.6.1.
    assert [type(s).__name__ for s in senders] == ["TcpSender"] * 6 and plane_.mux_connections() == []


@pytest.mark.parametrize("plane", ["tcp", "nats"])
async def test_break_kills_and_stop_generating_stops(peers, nb_runtime, plane):
    runtime, served, seen, stopped = await _serve(nb_runtime, plane)
    peer = await peers("client.py", REF, "break", json.dumps({"n": 200, "delay": 0.01}), plane=plane)
    await peer.ready()
    await peer.fact("broke_after")
    async with asyncio.timeout(5):
        while "cancelled" not in _outcomes(runtime):
            await asyncio.sleep(0.02)

    peer = await peers("client.py", REF, "stop", json.dumps({"n": 200, "delay": 0.01}), plane=plane)
    await peer.ready()
    items = (await peer.fact("items"))["items"]  # the real client saw a clean end
    assert 1 <= len(items) < 200
    async with asyncio.timeout(5):
        while not stopped and "stopped" not in _outcomes(runtime):
            await asyncio.sleep(0.02)


async def test_nats_plane_answers_srv_like_dynamo(peers, nb_runtime):
    runtime, served, _, _ = await _serve(nb_runtime, "nats")
    [reply] = await runtime.endpoint(REF).component.scrape_stats(timeout=0.5)
    assert reply["name"] == "demo_nbworker" and reply["version"] == "1.6.1" and "metadata" not in reply
    [entry] = reply["endpoints"]
    assert entry["name"] == f"demo_nbworker-generate-{served.instance_id:x}" and "data" not in entry
