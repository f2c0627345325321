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


async def test_ten_thousand_subscriptions_match_as_the_linear_matcher_says(connect):
    """10,000 subscriptions (literal, ``*``, ``>``, repeated patterns, two queue groups spanning patterns): every
    plain subscription gets exactly the probes the linear matcher (``subject_matches``, the oracle) says it
    matches, and each queue group exactly one copy of each probe some member matches, delivered to such a member.
    Subscriptions are dropped and re-made half way, so matching must also follow removals."""
    import random

    from dynamo_nb.backends.embedded import subject_matches

    rng = random.Random(11)
    tokens = ("a", "b", "c", "d")

    def pattern() -> str:
        parts = [rng.choice(tokens + ("*",)) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.2:
            parts.append(">")
        return ".".join(parts)

    m = (await connect()).messaging
    got: dict[int, list[str]] = {}
    subs: list[tuple[int, str, str]] = []  # (index, pattern, queue)
    handles = {}

    def collector(i: int):
        async def cb(msg: Msg) -> None:
            got[i].append(msg.subject)
        return cb

    async def add(i: int) -> None:
        patt, queue = pattern(), rng.choice(("", "", "", "", "q1", "q2"))
        got[i] = []
        subs.append((i, patt, queue))
        handles[i] = await m.subscribe(patt, collector(i), queue=queue)

    for i in range(10_000):
        await add(i)
    for i, _, _ in rng.sample(subs, 500):  # churn: drop some, then add as many new ones
        await handles.pop(i).unsubscribe()
    subs = [s for s in subs if s[0] in handles]
    for i in range(10_000, 10_500):
        await add(i)
    await m.flush()

    probes = sorted({".".join(rng.choice(tokens) for _ in range(rng.randint(1, 5))) for _ in range(80)})
    expected: dict[int, set[str]] = {i: set() for i, _, _ in subs}
    groups: dict[tuple[str, str], set[int]] = {}  # (probe, queue) -> the members it may go to
    for probe in probes:
        for i, patt, queue in subs:
            if subject_matches(patt, probe):
                if queue:
                    groups.setdefault((probe, queue), set()).add(i)
                else:
                    expected[i].add(probe)
    total = sum(len(v) for v in expected.values()) + len(groups)
    assert total > 10_000, "the probes should reach many subscriptions"
    for probe in probes:
        await m.publish(probe, b"")
    await m.flush()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while sum(len(v) for v in got.values()) < total and loop.time() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)  # and nothing more arrives

    queues = {i: queue for i, _, queue in subs}
    patterns = {i: patt for i, patt, _ in subs}
    for i, received in got.items():
        if i not in handles:
            assert received == [], f"subscription {i} was dropped but got {received}"
        elif not queues[i]:
            assert sorted(received) == sorted(expected[i]), f"subscription {i} on {patterns[i]!r}"
    delivered: dict[tuple[str, str], list[int]] = {}
    for i, received in got.items():
        if i in handles and queues[i]:
            for probe in received:
                delivered.setdefault((probe, queues[i]), []).append(i)
    assert set(delivered) == set(groups)
    for key, members in delivered.items():
        assert len(members) == 1 and members[0] in groups[key], f"{key}: delivered to {members}"
