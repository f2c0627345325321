"""The multiplexed response plane between dynamo_nb runtimes, seen from outside: one connection for many calls,
faults that end every stream on it, early close and slow consumers that touch only their own stream."""

from __future__ import annotations

import asyncio
import signal
import struct
from typing import Any, AsyncIterator

import pytest

from conftest import real_runtime
from dynamo_nb.backends.real.tcp import TcpResponsePlane
from dynamo_nb.backends.real.tcp_mux import MUX_HELLO, record
from dynamo_nb.errors import StreamIncompleteError
from dynamo_nb.transport.frames import encode_frame

from support import eventually, worker_pool

pytestmark = pytest.mark.servers
REF = "mux.Worker.generate"


async def counted(request: Any) -> AsyncIterator[Any]:
    finished = False
    try:
        for i in range(int(request.get("n", 1))):
            yield {"i": i, "tag": request.get("tag")}
            if request.get("delay"):
                await asyncio.sleep(request["delay"])
        finished = True
    finally:
        if not finished:
            STOPPED.append(request.get("tag"))  # the handler was told its caller left


STOPPED: list[Any] = []


async def _pair(cluster: Any, profile: dict[str, Any] | None = None) -> tuple[Any, Any, Any, Any]:
    worker = await real_runtime(cluster, **(profile or {}))
    caller = await real_runtime(cluster, **(profile or {}))
    served = await worker.endpoint(REF).endpoint_builder().handler(counted).start()
    client = await caller.endpoint(REF).client()
    await client.wait_for_instances(timeout=10)
    return worker, caller, client, served


@pytest.mark.timeout(60)
async def test_many_calls_share_one_response_connection(local_cluster, monkeypatch):
    worker, caller, client, served = await _pair(local_cluster)
    try:
        for k in range(20):
            assert await (await client.round_robin({"n": 3, "tag": k})).collect() == [
                {"i": i, "tag": k} for i in range(3)]
        streams = await asyncio.gather(*(client.round_robin({"n": 2, "tag": k}) for k in range(16)))
        assert [await s.collect() for s in streams] == [[{"i": 0, "tag": k}, {"i": 1, "tag": k}] for k in range(16)]
        assert caller.backend.responses.accepted == 1  # 36 streams, one connection to the caller's listener
        [shared] = worker.backend.responses.mux_connections()
        assert shared.streams_opened == 36

        shared.abort()  # the connection breaks between calls: the next call dials again
        assert await (await client.round_robin({"n": 1, "tag": "again"})).collect() == [{"i": 0, "tag": "again"}]
        await eventually(lambda: caller.backend.responses.accepted == 2)
    finally:
        await caller.shutdown()
        await worker.shutdown()

    # A caller that does not advertise the multiplexed plane gets one connection per call, as from Dynamo 1.6.1.
    monkeypatch.setenv("DYNAMO_NB_RESPONSE_MUX", "0")
    worker, caller, client, served = await _pair(local_cluster)
    try:
        for _ in range(5):
            assert len(await (await client.round_robin({"n": 2})).collect()) == 2
        assert caller.backend.responses.accepted == 5 and worker.backend.responses.mux_connections() == []
    finally:
        await caller.shutdown()
        await worker.shutdown()


@pytest.mark.timeout(60)
async def test_a_multiplexing_caller_gets_no_ack_over_nats(local_cluster, monkeypatch):
    """The stream's opening says "taken": a multiplexing caller's requests cross NATS once, not twice. A caller
    without the multiplexed plane (as every real Dynamo one) still gets its ack."""
    for mux, acks in (("1", 0), ("0", 20)):
        monkeypatch.setenv("DYNAMO_NB_RESPONSE_MUX", mux)
        worker, caller, client, served = await _pair(local_cluster)
        try:
            stats = caller.backend.messaging.client.stats
            before = stats["in_msgs"]
            for k in range(20):
                assert await (await client.round_robin({"n": 2, "tag": k})).collect() == [
                    {"i": 0, "tag": k}, {"i": 1, "tag": k}]
            assert stats["in_msgs"] - before == acks, f"DYNAMO_NB_RESPONSE_MUX={mux}"
            assert served.stats.num_requests == 20
        finally:
            await caller.shutdown()
            await worker.shutdown()


@pytest.mark.timeout(60)
async def test_a_killed_worker_fails_every_stream_on_its_connection(local_cluster):
    caller = await real_runtime(local_cluster)
    try:
        async with worker_pool(REF) as start:
            worker = await start(local_cluster, 5.0)
            client = await caller.endpoint(REF).client()
            await client.wait_for_instances(timeout=10)
            streams = await asyncio.gather(*(client.round_robin({"n": 1000, "delay": 0.01}) for _ in range(4)))
            for stream in streams:
                assert (await stream.__anext__())["i"] == 0
            assert caller.backend.responses.accepted == 1
            worker.signal(signal.SIGKILL)
            await asyncio.wait_for(worker.proc.wait(), 5)
            for stream in streams:
                with pytest.raises(StreamIncompleteError, match="Stream ended before generation completed"):
                    async with asyncio.timeout(5):
                        async for _ in stream:
                            pass
    finally:
        await caller.shutdown()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("profile", [{}, {"profile": "dynamo", "request_plane": "tcp"}], ids=["seed", "dynamo"])
async def test_early_close_stops_only_its_own_stream(local_cluster, profile):
    STOPPED.clear()
    worker, caller, client, served = await _pair(local_cluster, profile)
    try:
        streams = await asyncio.gather(*(client.round_robin({"n": 30, "delay": 0.005, "tag": k}) for k in range(3)))
        for stream in streams:
            assert (await stream.__anext__())["i"] == 0
        await streams[1].aclose()
        rest = [await streams[k].collect() for k in (0, 2)]
        assert rest == [[{"i": i, "tag": k} for i in range(1, 30)] for k in (0, 2)]
        await eventually(lambda: STOPPED == [1])
        assert caller.backend.responses.accepted == 1
        [shared] = worker.backend.responses.mux_connections()
        await eventually(lambda: not shared._streams)  # nothing left behind on the worker

        if profile:  # Dynamo's "stop" control frame, on one stream of two: that one ends early and cleanly
            streams = await asyncio.gather(*(client.round_robin({"n": 60, "delay": 0.005, "tag": k})
                                             for k in range(2)))
            assert (await streams[0].__anext__())["i"] == 0
            await streams[0].stop()
            stopped, whole = await streams[0].collect(), await streams[1].collect()
            assert len(stopped) < 59 and len(whole) == 60 and caller.backend.responses.accepted == 1

        # A caller that shuts down mid-stream leaves neither the connection nor a running handler behind.
        STOPPED.clear()
        stream = await client.round_robin({"n": 1000, "delay": 0.005, "tag": "left"})
        assert (await stream.__anext__())["i"] == 0
        await caller.shutdown()
        await eventually(lambda: STOPPED == ["left"] and not worker.backend.responses.mux_connections())
        assert not served._inflight
    finally:
        await caller.shutdown()
        await worker.shutdown()


async def test_a_slow_consumer_holds_only_its_own_stream() -> None:
    caller, worker = TcpResponsePlane(), TcpResponsePlane()
    try:
        slow, fast = await caller.open_receiver("slow"), await caller.open_receiver("fast")
        held, other = await worker.connect(slow.connection_info), await worker.connect(fast.connection_info)
        n = 20_000

        async def produce() -> None:
            for i in range(n):
                await held.send(None, i.to_bytes(4, "big") + b"x" * 1000)  # 20 MB: more than sockets hold
            await held.close()

        producer = asyncio.get_running_loop().create_task(produce())
        await eventually(lambda: len(slow._frames) >= 4096)  # its consumer reads nothing: the worker is told to hold
        for i in range(100):
            await other.send(None, i.to_bytes(4, "big"))
        await other.close()
        assert [int.from_bytes(body, "big") async for _, body in fast] == list(range(100))
        assert not producer.done()
        count = 0
        async for _, body in slow:
            assert int.from_bytes(body[:4], "big") == count
            count += 1
        await asyncio.wait_for(producer, 10)
        assert count == n and caller.accepted == 1
    finally:
        await caller.close()
        await worker.close()


@pytest.mark.parametrize("garbage", [
    lambda subject: record(1, 99),  # an unknown kind
    lambda subject: encode_frame(b"\x00\x01", b""),  # a record without its tag
    lambda subject: record(1, 1, subject) + record(1, 1, subject),  # one stream number opened twice
    lambda subject: struct.pack(">QQQ", 2**40, 0, 0),  # a length past any limit
    lambda subject: struct.pack(">QQQ", 10**6, 0, 0) + bytes(8192),  # a large frame while no stream is claimed
], ids=["kind", "untagged", "reopened", "length", "unclaimed"])
async def test_a_garbled_multiplexed_connection_is_dropped_and_the_listener_lives_on(garbage: Any) -> None:
    caller, worker = TcpResponsePlane(), TcpResponsePlane()
    try:
        decoy, receiver = await caller.open_receiver("d"), await caller.open_receiver("r")
        reader, writer = await asyncio.open_connection("127.0.0.1", caller.port)
        writer.write(encode_frame(MUX_HELLO) + garbage(decoy.subject.encode()))
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the caller
        writer.close()
        sender = await worker.connect(receiver.connection_info)
        await sender.send(None, b"still served")
        await sender.close()
        assert [body async for _, body in receiver] == [b"still served"]
    finally:
        await caller.close()
        await worker.close()


def test_the_advert_is_one_field_of_the_info_string() -> None:
    plane = TcpResponsePlane()
    plane.port = 5555
    info = plane.profile.connection_info(plane.address, "s", "r", mux=True)["info"]
    assert info == ('{"address":"127.0.0.1:5555","subject":"s","context":"r","stream_type":"response",'
                    '"response_mux":2}')


@pytest.mark.parametrize("advert", [1, 2])
async def test_each_caller_gets_the_version_it_reads(advert: int) -> None:
    """A caller that reads only version 1 (an older dynamo_nb) still gets every frame; one that reads version 2
    gets the stream without the prologue and sentinel its OPEN and END stand for, and reads the same items."""
    caller, worker = TcpResponsePlane(), TcpResponsePlane()
    try:
        receiver = await caller.open_receiver("r")
        info = receiver.connection_info["info"].replace('"response_mux":2', f'"response_mux":{advert}')
        sender = await worker.connect({**receiver.connection_info, "info": info})
        assert sender.frames_implied is (advert == 2)
        frames = [(b'{"error":null}', b"")] if advert == 1 else []
        frames += [(b"", b'{"data":1,"complete_final":false}'), (b"", b'{"complete_final":true}')]
        frames += [(b'"sentinel"', b"")] if advert == 1 else []
        for header, body in frames:
            await sender.send(header or None, body or None)
        await sender.close()
        assert [frame async for frame in receiver] == frames
        assert receiver.frames_implied is (advert == 2)
        [conn] = worker.mux_connections()
        assert conn.version == advert
    finally:
        await caller.close()
        await worker.close()


@pytest.mark.timeout(60)
async def test_runtimes_speak_version_2_and_streams_end_complete(local_cluster):
    worker, caller, client, served = await _pair(local_cluster)
    try:
        assert await (await client.round_robin({"n": 1, "tag": "x"})).collect() == [{"i": 0, "tag": "x"}]
        [shared] = worker.backend.responses.mux_connections()
        assert shared.version == 2
        stream = await client.round_robin({"n": 3, "tag": "y"})
        assert await stream.collect() == [{"i": i, "tag": "y"} for i in range(3)]
        assert stream.complete and stream.items == 3
    finally:
        await caller.shutdown()
        await worker.shutdown()


async def test_an_idle_shared_connection_is_closed_and_dialled_again(monkeypatch) -> None:
    from dynamo_nb.backends.real import tcp_mux

    monkeypatch.setattr(tcp_mux, "MUX_IDLE", 0.05)
    caller, worker = TcpResponsePlane(), TcpResponsePlane()
    try:
        for k in range(2):
            receiver = await caller.open_receiver(f"r{k}")
            sender = await worker.connect(receiver.connection_info)
            await sender.send(None, b"item")
            await sender.close()
            assert [body async for _, body in receiver] == [b"item"]
            await eventually(lambda: not worker.mux_connections() and not caller._inbound)  # closed by the worker
        assert caller.accepted == 2
    finally:
        await caller.close()
        await worker.close()
