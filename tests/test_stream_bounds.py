"""Response streams under forgery and frozen peers: nothing mixes items, nothing waits without a bound (issue 15).

Forged connections are real sockets on loopback; frozen workers are real worker processes, SIGSTOPped (only the
PIDs these tests started are signalled). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import struct
from typing import Any, AsyncIterator, Callable

import pytest

from conftest import real_runtime
from dynamo_nb.cluster import LocalCluster
from dynamo_nb.errors import ResponseInjectionError, StreamStalledError
from dynamo_nb.transport.frames import PREFIX, encode_frame
from support import WorkerProcess, eventually, worker_pool

pytestmark = pytest.mark.servers
REF = "bounds.Worker.generate"


def forge_stream(connection_info: dict[str, Any], items: list[Any]) -> socket.socket:
    """Connect to the caller named in a request and claim its stream, as a stranger reading the subject could."""
    info = json.loads(connection_info["info"])
    host, _, port = info["address"].rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    frames = [encode_frame(json.dumps({"subject": info["subject"], "stream_type": "response"}).encode()),
              encode_frame(b'{"error":null}')]
    frames += [encode_frame(None, json.dumps({"data": item, "complete_final": False}).encode()) for item in items]
    sock.sendall(b"".join(frames))
    return sock


async def test_a_second_connection_claiming_a_stream_fails_the_call_naming_both_peers(local_cluster):
    worker = await real_runtime(local_cluster)
    caller = await real_runtime(local_cluster)
    release = asyncio.Event()
    forged: list[socket.socket] = []

    async def slow(request: Any) -> AsyncIterator[Any]:
        yield "worker-1"
        await asyncio.wait_for(release.wait(), 20)
        yield "worker-2"

    async def eavesdrop(msg: Any) -> None:  # a plain subscriber sees every request on the subject
        header = json.loads(msg.data[PREFIX.size:PREFIX.size + PREFIX.unpack_from(msg.data)[0]])
        forged.append(forge_stream(header["connection_info"], ["forged"] * 3))

    try:
        served = await worker.endpoint(REF).endpoint_builder().handler(slow).start()
        stranger = await caller.backend.connect_peer()
        await stranger.messaging.subscribe(served.subject, eavesdrop)
        await stranger.messaging.flush()
        client = await caller.endpoint(REF).client()
        await client.wait_for_instances(timeout=10)
        stream = await client.generate("hello")
        got: list[Any] = []
        with pytest.raises(ResponseInjectionError) as caught:
            async for item in stream:
                got.append(item)
                await eventually(lambda: bool(forged), timeout=10)
        release.set()
        # At most the first claimant's first item got through, and never both streams' items together.
        assert len(got) <= 1 and set(got) <= {"worker-1", "forged"}
        error = caught.value
        forger = "%s:%d" % forged[0].getsockname()[:2]
        assert forger in (error.first, error.second) and error.first != error.second
        assert error.first in str(error) and error.second in str(error)
        await eventually(lambda: not caller.backend.responses.receivers(), timeout=5)
    finally:
        release.set()
        for sock in forged:
            sock.close()
        await stranger.messaging.close()
        await stranger.discovery.close()
        await stranger.responses.close()
        await caller.shutdown()
        await worker.shutdown()


async def test_a_connection_announcing_a_large_first_frame_is_dropped_before_buffering(local_cluster):
    caller = await real_runtime(local_cluster)
    try:
        plane = caller.backend.responses
        plane.stream_connect_timeout = 60.0  # the handshake deadline must not be what drops it
        await plane.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", plane.port)
        writer.write(struct.pack(">QQQ", 200 * 1024 * 1024, 0, 0) + b"x" * 65536)
        try:
            assert await asyncio.wait_for(reader.read(1), 10) == b""  # the caller closed it at once
        except ConnectionResetError:
            pass
        writer.close()
        await eventually(lambda: not plane._inbound, timeout=5)
    finally:
        await caller.shutdown()


async def test_a_caller_that_never_reads_cannot_hold_a_handler(local_cluster):
    worker = await real_runtime(local_cluster)
    worker.backend.responses.send_drain_timeout = 0.5
    sent = 0

    async def firehose(request: Any) -> AsyncIterator[Any]:
        nonlocal sent
        for _ in range(4000):  # bounded: 4000 × 64 KiB at most
            sent += 1
            yield "x" * 65536

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted: list[socket.socket] = []
    try:
        served = await worker.endpoint(REF).endpoint_builder().handler(firehose).start()
        address = "127.0.0.1:%d" % listener.getsockname()[1]
        info = json.dumps({"address": address, "subject": "s", "context": "r", "stream_type": "response"})
        header = json.dumps({"id": "never-reads", "request_type": "single_in", "response_type": "many_out",
                             "connection_info": {"transport": "tcp_server", "info": info}}).encode()
        await worker.backend.messaging.request(served.subject, encode_frame(header, b'"go"'), timeout=5)
        listener.settimeout(5)
        accepted.append(listener.accept()[0])  # accepted, and never read
        await eventually(lambda: sent > 0, timeout=10)
        await eventually(lambda: served.inflight == 0, timeout=20)
        assert sent < 4000, "the handler ran to its end: nothing held it"
        outcomes = [r.detail["outcome"] for r in worker.recorder.select("response", request_id="never-reads")]
        assert outcomes and outcomes[0] != "complete"
    finally:
        for sock in accepted:
            sock.close()
        listener.close()
        await worker.shutdown()


# -- frozen worker processes ----------------------------------------------------------------------------------

@pytest.fixture
async def cluster() -> AsyncIterator[LocalCluster]:
    async with LocalCluster() as c:
        yield c


@pytest.fixture
async def worker_processes() -> AsyncIterator[Callable[..., Any]]:
    async with worker_pool(REF) as start:
        yield start


async def _stalled_stream(cluster: LocalCluster, worker: WorkerProcess, **plane: float) -> tuple[Any, list[Any]]:
    caller = await real_runtime(cluster)
    for name, value in plane.items():
        setattr(caller.backend.responses, name, value)
    client = await caller.endpoint(REF).client()
    await eventually(lambda: worker.instance_id in client.instance_ids(), timeout=10)
    stream = await client.direct({"n": 1000, "delay": 0.05}, worker.instance_id)
    got = []
    with pytest.raises(StreamStalledError) as caught:
        async for item in stream:
            got.append(item["i"])
            if len(got) == 3:
                worker.signal(signal.SIGSTOP)
    await caller.shutdown()
    return caught.value, got


@pytest.mark.timeout(60)
async def test_a_frozen_worker_stream_fails_after_the_idle_bound(cluster, worker_processes):
    worker = await worker_processes(cluster, 30.0)  # its key outlives the test: only the idle bound can end it
    error, got = await _stalled_stream(cluster, worker, stream_idle_timeout=1.0)
    assert got[:3] == [0, 1, 2] and "frozen or unreachable" in str(error) and REF in str(error)


@pytest.mark.timeout(60)
async def test_a_frozen_worker_stream_ends_as_soon_as_its_key_is_gone(cluster, worker_processes):
    worker = await worker_processes(cluster, 1.0)  # the lease runs out ~1 s after the freeze
    error, got = await _stalled_stream(cluster, worker, stream_idle_timeout=45.0)
    assert got[:3] == [0, 1, 2] and "its key was deleted" in str(error)
