"""Requests on the embedded bus to a subscription that accepts as it is delivered (a served instance's subject).

Such a request is answered by the callback's return value, without an inbox future; it must behave as the same
request answered through a published reply: the reply, no reply (a timeout), a failing callback, a second
subscriber on the subject, the request plane's ack.
"""

from __future__ import annotations

import asyncio

import pytest

from dynamo_nb import EmbeddedWorld
from dynamo_nb.backends.base import Accepted, Msg, RequestHandler
from dynamo_nb.errors import BackendTimeoutError, NoRespondersError, PayloadTooLargeError

pytestmark = pytest.mark.timeout(30)


class Acceptor:
    """An accepting callback that records what it took and what it started, in order."""

    def __init__(self, reply: bytes | None = b"", fail: bool = False) -> None:
        self.reply = reply
        self.fail = fail
        self.events: list[str] = []
        self.taken: list[Msg] = []

    def accept(self, msg: Msg) -> Accepted:
        if self.fail:
            raise RuntimeError("callback failed")
        self.taken.append(msg)
        self.events.append(f"took {msg.data.decode()}")
        return self.reply, lambda: self.events.append(f"started {msg.data.decode()}")


async def _served(world: EmbeddedWorld, acceptor: Acceptor, subject: str = "ns|comp.gen-1"):
    backend = world.connect()
    await backend.messaging.subscribe(subject, RequestHandler(acceptor.accept), queue="q")
    return backend


async def test_the_reply_is_the_callbacks_answer_and_its_start_runs_before_the_request_returns():
    world = EmbeddedWorld()
    acceptor = Acceptor(reply=b"ack")
    backend = await _served(world, acceptor)
    reply = await backend.messaging.request("ns|comp.gen-1", b"one", timeout=1.0, headers={"h": "v"})
    assert reply.data == b"ack" and reply.subject.startswith("_INBOX.")
    assert acceptor.events == ["took one", "started one"]
    taken = acceptor.taken[0]
    assert taken.subject == "ns|comp.gen-1" and taken.reply == reply.subject and taken.headers == {"h": "v"}
    ack = await backend.request_plane("nats").request("ns|comp.gen-1", b"two", headers=None, timeout=1.0)
    assert ack == b"ack" and acceptor.events[2:] == ["took two", "started two"]
    assert acceptor.taken[1].reply != taken.reply  # every request its own inbox
    await backend.messaging.close()


async def test_no_reply_means_a_timeout_though_the_work_was_started():
    world = EmbeddedWorld()
    acceptor = Acceptor(reply=None)
    backend = await _served(world, acceptor)
    with pytest.raises(BackendTimeoutError):
        await backend.request_plane("nats").request("ns|comp.gen-1", b"late", headers=None, timeout=0.05)
    assert acceptor.events == ["took late", "started late"]
    assert not world.nats._replies  # the inbox it waited on is gone
    await backend.messaging.close()


async def test_a_failing_callback_times_the_request_out_and_the_bus_goes_on():
    world = EmbeddedWorld()
    failing = Acceptor(fail=True)
    backend = await _served(world, failing)
    with pytest.raises(BackendTimeoutError):
        await backend.messaging.request("ns|comp.gen-1", b"x", timeout=0.05)
    working = Acceptor(reply=b"ok")
    await backend.messaging.subscribe("ns|comp.gen-2", RequestHandler(working.accept), queue="q")
    assert (await backend.messaging.request("ns|comp.gen-2", b"y", timeout=1.0)).data == b"ok"
    await backend.messaging.close()


async def test_a_second_subscriber_on_the_subject_sees_the_request_and_the_reply_still_comes():
    world = EmbeddedWorld()
    acceptor = Acceptor(reply=b"ack")
    backend = await _served(world, acceptor)
    seen: list[Msg] = []

    async def spy(msg: Msg) -> None:
        seen.append(msg)

    await backend.messaging.subscribe("ns|comp.>", spy)
    ack = await backend.request_plane("nats").request("ns|comp.gen-1", b"both", headers=None, timeout=1.0)
    assert ack == b"ack" and acceptor.events == ["took both", "started both"]
    for _ in range(3):
        await asyncio.sleep(0)
    assert [m.data for m in seen] == [b"both"] and seen[0].reply == acceptor.taken[0].reply
    await backend.messaging.close()


async def test_sizes_and_missing_listeners_are_refused_as_on_any_request():
    world = EmbeddedWorld(max_payload=16)
    acceptor = Acceptor(reply=b"a reply far too long for the bus")
    backend = await _served(world, acceptor)
    plane = backend.request_plane("nats")
    with pytest.raises(PayloadTooLargeError):
        await plane.request("ns|comp.gen-1", b"x" * 17, headers=None, timeout=1.0)
    assert acceptor.events == []  # refused before delivery
    with pytest.raises(PayloadTooLargeError):
        await plane.request("ns|comp.gen-1", b"small", headers=None, timeout=1.0)
    assert acceptor.events == ["took small", "started small"]  # its work started all the same
    with pytest.raises(NoRespondersError):
        await plane.request("ns|comp.nobody-1", b"x", headers=None, timeout=1.0)
    await backend.messaging.close()
    with pytest.raises(Exception, match="closed"):
        await plane.request("ns|comp.gen-1", b"x", headers=None, timeout=1.0)
