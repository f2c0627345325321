"""Response-plane contract: the call-home stream a worker uses to send responses back to its caller."""

from __future__ import annotations

import asyncio
import json

import pytest

from dynamo_nb.cluster import free_port
from dynamo_nb.errors import ResponseStreamError, StreamClosedError, StreamRefusedError

pytestmark = pytest.mark.timeout(30)


async def test_frames_arrive_in_order_and_end_on_close(connect):
    caller = await connect()
    worker = await connect()
    receiver = await caller.responses.open_receiver("req-1")
    info = json.loads(receiver.connection_info["info"])
    assert receiver.connection_info["transport"] == "tcp_server"
    assert info["context"] == "req-1" and info["stream_type"] == "response" and info["subject"]
    sender = await worker.responses.connect(receiver.connection_info)
    await sender.send(b'{"error":null}', None)
    for i in range(100):
        await sender.send(None, str(i).encode())
    await sender.close()
    frames = [f async for f in receiver]
    assert frames[0] == (b'{"error":null}', b"")
    assert [int(body) for _, body in frames[1:]] == list(range(100))
    await receiver.close()


async def test_caller_closing_tells_the_worker(connect):
    caller = await connect()
    worker = await connect()
    receiver = await caller.responses.open_receiver("req-2")
    sender = await worker.responses.connect(receiver.connection_info)
    told = asyncio.Event()
    sender.on_peer_closed(told.set)
    await sender.send(None, b"first")
    await receiver.close()
    await asyncio.wait_for(told.wait(), 5)
    assert sender.closed_by_peer()
    with pytest.raises(StreamClosedError):
        for _ in range(100):  # a TCP peer may need a few writes before the reset shows
            await sender.send(None, b"more")
            await asyncio.sleep(0.01)
    await sender.close()


async def test_connect_to_unknown_stream_is_refused(connect):
    caller = await connect()
    worker = await connect()
    receiver = await caller.responses.open_receiver("req-3")
    info = json.loads(receiver.connection_info["info"])
    info["subject"] = "no-such-stream"
    bogus = {"transport": "tcp_server", "info": json.dumps(info)}
    with pytest.raises(ResponseStreamError):
        sender = await worker.responses.connect(bogus)
        await sender.send(None, b"x")
        await asyncio.sleep(0.1)
        await sender.send(None, b"x")
    await receiver.close()


async def test_nobody_listening_at_the_address_is_a_refusal(connect):
    caller = await connect()
    worker = await connect()
    receiver = await caller.responses.open_receiver("req-4")
    info = json.loads(receiver.connection_info["info"])
    info["address"] = f"127.0.0.1:{free_port()}"  # a port nobody listens on
    bogus = {"transport": "tcp_server", "info": json.dumps(info)}
    with pytest.raises(StreamRefusedError) as refused:
        await worker.responses.connect(bogus)
    assert isinstance(refused.value, ConnectionRefusedError)
    await receiver.close()
