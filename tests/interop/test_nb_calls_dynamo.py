"""(a) dynamo_nb calls real Dynamo 1.6.1 workers: both request planes, both advertised codecs."""

from __future__ import annotations

import asyncio
import signal

import pytest

from dynamo_nb.errors import NoInstancesError, RemoteError, StreamIncompleteError

pytestmark = pytest.mark.dynamo_interop

MATRIX = [("tcp", "msgpack"), ("tcp", "json"), ("nats", "msgpack"), ("nats", "json")]


async def _worker(peers, nb_runtime, plane, codec, ref="demo.backend.generate"):
    peer = await peers("worker.py", ref, plane=plane, codec=codec)
    ready = await peer.ready()
    runtime = await nb_runtime(plane)
    client = await runtime.endpoint(ref).client()
    await client.wait_for_instances(timeout=10)
    return peer, ready, runtime, client


@pytest.mark.parametrize("plane,codec", MATRIX)
async def test_items_errors_direct_and_concurrency(peers, nb_runtime, plane, codec):
    peer, ready, runtime, client = await _worker(peers, nb_runtime, plane, codec)
    [info] = client.instances()
    assert (info.plane, info.codec, info.instance_id) == (plane, codec, ready["connection_id"])

    items = await (await client.generate({"n": 3, "echo": "hello", "big": 2**63 + 5})).collect()
    assert items == [{"i": i, "echo": "hello"} for i in range(3)]
    assert (await peer.fact("received"))["received"] == {"n": 3, "echo": "hello", "big": 2**63 + 5}

    direct = await (await client.direct({"n": 1, "echo": 7}, ready["connection_id"])).collect()
    assert direct == [{"i": 0, "echo": 7}]

    streams = await asyncio.gather(*(client.generate({"n": 2, "echo": k}) for k in range(8)))
    results = await asyncio.gather(*(s.collect() for s in streams))
    assert results == [[{"i": 0, "echo": k}, {"i": 1, "echo": k}] for k in range(8)]
    # dynamo_nb advertised the multiplexed plane in every request; the real worker ignored the field and called
    # back once per stream (10 streams so far), with the per-stream handshake the listener still accepts.
    probe = await runtime.backend.responses.open_receiver("probe")
    assert '"response_mux":2' in probe.connection_info["info"]
    await probe.close()
    assert runtime.backend.responses.accepted == 10

    with pytest.raises(RemoteError) as caught:
        await (await client.generate({"n": 1, "raise": "ValueError:boom from handler"})).collect()
    assert (caught.value.remote_type, caught.value.remote_message) == ("ValueError", "boom from handler")
    assert caught.value.error_class == "InvalidRequest"
    assert caught.value.details["error_type"] == {"Backend": "InvalidArgument"}
    with pytest.raises(RemoteError) as caught:
        await (await client.generate({"n": 0, "raise": "RuntimeError:rt err"})).collect()
    assert (caught.value.remote_type, caught.value.error_class) == ("RuntimeError", "Internal")


@pytest.mark.parametrize("plane", ["tcp", "nats"])
async def test_early_close_sends_kill_and_stop_ends_cleanly(peers, nb_runtime, plane):
    peer, _, _, client = await _worker(peers, nb_runtime, plane, None)
    stream = await client.generate({"n": 50, "delay": 0.02})
    assert await stream.__anext__() == {"i": 0, "echo": None}
    await stream.aclose()
    stopped = await peer.fact("stopped_at")
    assert 0 < stopped["stopped_at"] < 50

    stream = await client.generate({"n": 50, "delay": 0.02})
    first = await stream.__anext__()
    await stream.stop()
    rest = [item async for item in stream]  # ends cleanly: no StreamIncompleteError
    assert first == {"i": 0, "echo": None} and len(rest) < 49
    assert 0 < (await peer.fact("stopped_at"))["stopped_at"] < 50


@pytest.mark.parametrize("plane", ["tcp", "nats"])
async def test_sigkilled_worker_never_hangs(peers, nb_runtime, plane):
    peer, _, _, client = await _worker(peers, nb_runtime, plane, None)
    stream = await client.generate({"n": 1000, "delay": 0.01})
    await stream.__anext__()
    peer.proc.send_signal(signal.SIGKILL)
    with pytest.raises(StreamIncompleteError):
        async with asyncio.timeout(2):
            async for _ in stream:
                pass
    await asyncio.wait_for(peer.proc.wait(), 5)
    # the key stays until its 30 s lease runs out; calling fails over to nothing, at once
    with pytest.raises(NoInstancesError):
        async with asyncio.timeout(2):
            await client.generate({"n": 1})


async def test_scrape_stats_of_a_real_nats_plane_worker(peers, nb_runtime):
    peer, ready, runtime, client = await _worker(peers, nb_runtime, "nats", None)
    await (await client.generate({"n": 1})).collect()
    replies = await runtime.endpoint("demo.backend.generate").component.scrape_stats(timeout=0.5)
    [reply] = replies
    assert (reply["name"], reply["version"]) == ("demo_backend", "1.6.1")
    [entry] = reply["endpoints"]
    assert entry["name"] == f"demo_backend-generate-{ready['connection_id']:x}" and entry["num_requests"] >= 1
