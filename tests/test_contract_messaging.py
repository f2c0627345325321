"""Messaging contract: NATS semantics the runtime relies on, identical on every backend."""

from __future__ import annotations

import asyncio

import pytest

from dynamo_nb.backends.base import Msg
from dynamo_nb.errors import BackendTimeoutError, NoRespondersError, PayloadTooLargeError

pytestmark = pytest.mark.timeout(30)


class Inbox:
    """Collects messages delivered to a subscription callback."""

    def __init__(self) -> None:
        self.msgs: list[Msg] = []
        self._event = asyncio.Event()

    async def __call__(self, msg: Msg) -> None:
        self.msgs.append(msg)
        self._event.set()

    async def wait(self, n: int, timeout: float = 5.0) -> list[Msg]:
        async def until():
            while len(self.msgs) < n:
                self._event.clear()
                await self._event.wait()
        await asyncio.wait_for(until(), timeout)
        return self.msgs


async def settle(m) -> None:
    await m.flush()
    await asyncio.sleep(0.05)


async def test_publish_reaches_exact_and_wildcard_subscribers(connect):
    m = (await connect()).messaging
    exact, star, tail, other = Inbox(), Inbox(), Inbox(), Inbox()
    await m.subscribe("namespace.dynamo.component.a.kv", exact)
    await m.subscribe("namespace.dynamo.component.*.kv", star)
    await m.subscribe("namespace.dynamo.>", tail)
    await m.subscribe("namespace.other.>", other)
    await m.flush()
    await m.publish("namespace.dynamo.component.a.kv", b"1")
    await m.publish("namespace.dynamo.x", b"2")
    await exact.wait(1)
    await star.wait(1)
    await tail.wait(2)
    await settle(m)
    assert [x.data for x in exact.msgs] == [b"1"]
    assert [x.data for x in star.msgs] == [b"1"]
    assert sorted(x.data for x in tail.msgs) == [b"1", b"2"]
    assert other.msgs == []


async def test_star_matches_exactly_one_token_and_tail_needs_one(connect):
    m = (await connect()).messaging
    star, tail = Inbox(), Inbox()
    await m.subscribe("a.*", star)
    await m.subscribe("a.>", tail)
    await m.flush()
    await m.publish("a", b"none")
    await m.publish("a.b.c", b"deep")
    await tail.wait(1)
    await settle(m)
    assert star.msgs == []
    assert [x.data for x in tail.msgs] == [b"deep"]


async def test_queue_group_delivers_each_message_to_one_member(connect):
    m1 = (await connect()).messaging
    m2 = (await connect()).messaging
    g1, g2, plain = Inbox(), Inbox(), Inbox()
    await m1.subscribe("work.items", g1, queue="q")
    await m2.subscribe("work.items", g2, queue="q")
    await m2.subscribe("work.items", plain)
    await m1.flush()
    await m2.flush()
    for i in range(40):
        await m1.publish("work.items", str(i).encode())
    await plain.wait(40)
    await settle(m1)
    got = sorted(int(x.data) for x in g1.msgs + g2.msgs)
    assert got == list(range(40))
    assert g1.msgs and g2.msgs, "both members of the queue group should get a share"


async def test_request_reply_and_order(connect):
    server = (await connect()).messaging
    client = (await connect()).messaging

    async def echo(msg: Msg) -> None:
        await msg.respond(b"re:" + msg.data)

    await server.subscribe("svc.echo", echo)
    await server.flush()
    replies = [await client.request("svc.echo", str(i).encode(), timeout=5) for i in range(5)]
    assert [r.data for r in replies] == [f"re:{i}".encode() for i in range(5)]


async def test_no_responders_is_immediate(connect):
    m = (await connect()).messaging
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(NoRespondersError) as info:
        await m.request("nobody.here", b"x", timeout=10)
    assert loop.time() - start < 5
    assert "nobody.here" in str(info.value)


async def test_a_request_nobody_answers_times_out_as_a_package_error(connect):
    m = (await connect()).messaging
    silent = Inbox()
    await m.subscribe("svc.silent", silent)
    await m.flush()
    with pytest.raises(BackendTimeoutError, match="svc.silent") as info:
        await m.request("svc.silent", b"x", timeout=0.2)
    assert isinstance(info.value, TimeoutError)  # callers catching the builtin keep working
    assert len(silent.msgs) == 1


async def test_unsubscribe_stops_delivery(connect):
    m = (await connect()).messaging
    inbox = Inbox()
    sub = await m.subscribe("u.s", inbox)
    await m.flush()
    await m.publish("u.s", b"1")
    await inbox.wait(1)
    await sub.unsubscribe()
    await m.flush()
    await m.publish("u.s", b"2")
    await settle(m)
    assert [x.data for x in inbox.msgs] == [b"1"]


async def test_closed_connection_drops_its_subscriptions(connect):
    worker = (await connect()).messaging
    caller = (await connect()).messaging

    async def echo(msg: Msg) -> None:
        await msg.respond(b"ok")

    await worker.subscribe("svc.gone", echo, queue="q")
    await worker.flush()
    assert (await caller.request("svc.gone", b"", timeout=5)).data == b"ok"
    await worker.close()
    await asyncio.sleep(0.1)
    with pytest.raises(NoRespondersError):
        await caller.request("svc.gone", b"", timeout=5)


async def test_payload_over_max_is_refused(connect):
    m = (await connect()).messaging
    assert m.max_payload > 0
    with pytest.raises(PayloadTooLargeError):
        await m.publish("big.one", b"x" * (m.max_payload + 1))


async def test_publish_with_reply_subject_scatter_gather(connect):
    a = (await connect()).messaging
    b = (await connect()).messaging
    gathered = Inbox()

    async def answer(msg: Msg) -> None:
        await msg.respond(b"here")

    await a.subscribe("scatter.ping", answer)
    await b.subscribe("scatter.ping", answer)
    await a.subscribe("gather.inbox", gathered)
    await a.flush()
    await b.flush()
    await a.publish("scatter.ping", b"", reply="gather.inbox")
    await gathered.wait(2)
    assert [x.data for x in gathered.msgs] == [b"here", b"here"]


async def test_subscription_is_in_place_once_flushed(connect):
    """After subscribe + flush, a publish from another connection must arrive (no race with the SUB)."""
    subscriber = (await connect()).messaging
    publisher = (await connect()).messaging
    lost = []
    for i in range(150):
        inbox = Inbox()
        sub = await subscriber.subscribe(f"race.t{i}", inbox)
        await subscriber.flush()
        await publisher.publish(f"race.t{i}", b"x")
        try:
            await inbox.wait(1, timeout=2)
        except asyncio.TimeoutError:
            lost.append(i)
        await sub.unsubscribe()
    assert lost == []
