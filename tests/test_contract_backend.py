"""Backend contract: one more peer on the same world or servers, identical on every backend."""

from __future__ import annotations

import asyncio

import pytest

from dynamo_nb.backends.base import Backend, Msg
from dynamo_nb.errors import BackendError, RuntimeClosedError

pytestmark = pytest.mark.timeout(30)


async def close(backend: Backend) -> None:
    for part in (backend.messaging, backend.discovery, backend.responses):
        await part.close()


async def test_a_peer_shares_the_store_and_the_bus_but_not_the_connections(connect):
    first = await connect()
    peer = await first.connect_peer()
    try:
        assert peer.kind == first.kind
        assert peer.discovery is not first.discovery and peer.messaging is not first.messaging
        # The store: a lease and a key made by the peer are seen by the first connection, and the other way.
        lease = await peer.discovery.grant_lease(10)
        await peer.discovery.put("t/peer/a", b"from the peer", lease)
        _, kvs = await first.discovery.get_prefix("t/peer/")
        assert [(kv.key, kv.value, kv.lease) for kv in kvs] == [("t/peer/a", b"from the peer", lease)]
        assert await first.discovery.lease_time_left(lease) is not None
        # The bus: a request from the first connection is answered by the peer.
        async def answer(msg: Msg) -> None:
            await msg.respond(b"pong:" + msg.data)

        await peer.messaging.subscribe("t.peer.ping", answer, queue="q")
        await peer.messaging.flush()
        reply = await first.messaging.request("t.peer.ping", b"1", timeout=5)
        assert reply.data == b"pong:1"
    finally:
        await close(peer)
    # Closing the peer ends its connections only: its subscription is gone, the first connection still works.
    await first.discovery.put("t/peer/b", b"still here")
    assert [kv.key for kv in (await first.discovery.get_prefix("t/peer/b"))[1]] == ["t/peer/b"]
    with pytest.raises(RuntimeClosedError):
        await peer.discovery.put("t/peer/c", b"closed")


async def test_a_peer_of_a_peer_reaches_the_same_world(connect):
    first = await connect()
    second = await first.connect_peer()
    third = await second.connect_peer()
    try:
        await third.discovery.put("t/chain", b"3")
        assert (await first.discovery.get_prefix("t/chain"))[1][0].value == b"3"
        got: asyncio.Queue[bytes] = asyncio.Queue()

        async def collect(msg: Msg) -> None:
            got.put_nowait(msg.data)

        await first.messaging.subscribe("t.chain", collect)
        await first.messaging.flush()
        await third.messaging.publish("t.chain", b"hello")
        await third.messaging.flush()
        assert await asyncio.wait_for(got.get(), 5) == b"hello"
    finally:
        await close(third)
        await close(second)


async def test_a_backend_built_without_an_opener_says_so(connect):
    made = await connect()
    bare = Backend(kind=made.kind, discovery=made.discovery, messaging=made.messaging, responses=made.responses)
    with pytest.raises(BackendError, match="does not know how to connect another peer"):
        await bare.connect_peer()
