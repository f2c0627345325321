"""The NATS adapter's short paths (``_Client``): the same bytes, headers and guarantees as nats-py's own paths.

A request handler's subscription is served by the read loop itself and replies skip nats-py's per-message
machinery; these tests hold both to what nats-py does, against a real nats-server.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import nats.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.protocol.parser import Parser as NatsParser

from dynamo_nb.backends.base import Msg, RequestHandler
from dynamo_nb.backends.real.nats import _RESPONSES, NatsMessaging, _Client, _header_lines, _Parser, _Timeouts
from dynamo_nb.cluster import LocalCluster
from dynamo_nb.errors import BackendTimeoutError, NoRespondersError, PayloadTooLargeError, RuntimeClosedError

from support import eventually

HEADERS = {"request-id": "0f3a9c2e-1b2c", "x-send-ts": "1764674400123456789", "x-ack-deadline": "1764674405123"}

# -- the same bytes as nats-py (no server) -------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"request-id: abc\r\nx-send-ts: 17\r\n\r\n",
    b"Name:Value\r\nOther:\tspaced \t\r\n\r\n",
    b"dup: 1\r\ndup: 2\r\n\r\n",
    b"no colon here\r\nok: yes\r\n\r\n",
    b"bad name: x\r\n bad2 :y\r\n  padded  : z \r\n\r\n",
    b"caf\xc3\xa9: non-ascii name\r\nv: caf\xc3\xa9 \xff broken\r\n\r\n",
    b": empty name\r\na: b: c\r\nlone\rcr: v\r\nx: \x1f sep \x1f\r\n\r\n",
    b"\r\n",
    b"",
])
def test_headers_are_read_as_nats_py_reads_them(raw: bytes) -> None:
    expected = NatsClient._parse_header_lines(raw)
    assert _header_lines(raw) == expected
    assert _header_lines(raw) == expected  # again, with the names known


@pytest.mark.parametrize("subject,reply,payload,headers", [
    ("a.b", "", b"data", None),
    ("a.b", "_INBOX.x.1", b"", None),
    ("a.b", "_INBOX.x.1", b"data", HEADERS),
    ("a.b", "", b"\x00\xff", {" padded ": "  value  ", "nl": "one\r\ntwo\nthree\r", "": "skipped"}),
    ("caf\u00e9", "r", b"x", {"name": "caf\u00e9 \u2603"}),
    ("a", "", b"x", {}),
])
async def test_commands_are_the_bytes_nats_py_writes(subject: str, reply: str, payload: bytes,
                                                     headers: dict[str, str] | None) -> None:
    reference = NatsClient()  # not connected: _send_publish leaves the command in its pending buffer
    await reference._send_publish(subject, reply, payload, len(payload), headers)
    client = _Client()
    assert client._command(subject, reply, payload, headers) == b"".join(reference._pending)
    assert client._command(subject, reply, payload, headers) == b"".join(reference._pending)  # names known


async def test_a_bad_header_name_is_refused_as_nats_py_refuses_it() -> None:
    with pytest.raises(nats.errors.BadHeaderError):
        await NatsClient()._send_publish("a", "", b"", 0, {"bad name": "v"})
    with pytest.raises(nats.errors.BadHeaderError):
        _Client()._command("a", "", b"", {"ok": "v", "bad\r\nname": "v"})


class Recording:
    """What a parser hands a client, in order (``_deliver`` returns something to await for every third message)."""

    _fast = True

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def _deliver(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> Any:
        self.events.append(("msg", sid, bytes(subject), bytes(reply), data, headers))
        return asyncio.sleep(0) if len(self.events) % 3 == 0 else None

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        self.events.append(("msg", sid, bytes(subject), bytes(reply), data, headers))

    async def _process_ping(self) -> None:
        self.events.append(("ping",))

    async def _process_pong(self) -> None:
        self.events.append(("pong",))

    async def _process_info(self, info: dict[str, Any]) -> None:
        self.events.append(("info", info))

    async def _process_err(self, err: str) -> None:
        self.events.append(("err", err))


def _hmsg(subject: bytes, sid: int, reply: bytes, headers: bytes, payload: bytes) -> bytes:
    line = b" ".join(p for p in (b"HMSG", subject, b"%d" % sid, reply, b"%d" % len(headers),
                                   b"%d" % (len(headers) + len(payload))) if p)
    return line + b"\r\n" + headers + payload + b"\r\n"


STREAM = (b"INFO {\"server_id\":\"x\",\"max_payload\":1048576}\r\n"
          b"MSG a.b 1 5\r\nhello\r\n"
          + _hmsg(b"a.b", 2, b"_INBOX.abc.1", b"NATS/1.0\r\nrequest-id: 7\r\nx: yz\r\n\r\n", b"world")
          + b"MSG a.b 3 reply.to 0\r\n\r\n"
          b"PING\r\n+OK\r\nPONG\r\n"
          + _hmsg(b"_INBOX.abc.2", 4, b"", b"NATS/1.0 503\r\n\r\n", b"")
          + b"MSG a.b\t5  \t6\r\nspaced\r\n"
          b"MSG bin 6 4\r\n\r\n\r\n\r\n"
          b"-ERR 'permissions violation for subscription to \"x\"'\r\n"
          + b"".join(_hmsg(b"w.%d" % i, i, b"_INBOX.r.%d" % i, b"NATS/1.0\r\nk: %03d\r\n\r\n" % i, b"%03d" % i)
                     for i in range(7, 40)))


async def _parse_all(parser_class: type, chunks: list[bytes]) -> list[tuple[Any, ...]]:
    nc = Recording()
    parser = parser_class(nc)
    for chunk in chunks:
        await parser.parse(chunk)
    assert not parser.buf
    return nc.events


@pytest.mark.parametrize("size", [len(STREAM), 1, 2, 3, 7, 16, 33, 100, 257])
async def test_the_parser_reads_what_nats_py_reads(size: int) -> None:
    chunks = [STREAM[i:i + size] for i in range(0, len(STREAM), size)]
    expected = await _parse_all(NatsParser, chunks)
    assert len([e for e in expected if e[0] == "msg"]) == 39
    assert await _parse_all(_Parser, chunks) == expected


async def test_the_parser_refuses_what_nats_py_refuses() -> None:
    for garbage in (b"MSG a.b x 5\r\nhello\r\n", b"HMSG a.b 1 x 5\r\nhello\r\n", b"BOGUS\r\n"):
        for parser_class in (NatsParser, _Parser):
            with pytest.raises(nats.errors.ProtocolError):
                await parser_class(Recording()).parse(b"MSG ok 1 2\r\nok\r\n" + garbage)


# -- against a real nats-server ------------------------------------------------------------------------------


@pytest.fixture
async def pair(local_cluster: LocalCluster) -> Any:
    worker = await NatsMessaging.connect(local_cluster.nats_server)
    caller = await NatsMessaging.connect(local_cluster.nats_server)
    yield worker, caller
    await caller.close()
    await worker.close()


class Recorder:
    """A request handler that acks ``b"ack:" + data`` and records what it saw, and what it started, in order."""

    def __init__(self, fail_on: bytes = b"") -> None:
        self.seen: list[Msg] = []
        self.started: list[bytes] = []
        self.fail_on = fail_on
        self.handler = RequestHandler(self.accept)

    def accept(self, msg: Msg) -> tuple[bytes | None, Any]:
        if msg.data == self.fail_on:
            raise RuntimeError("refused on purpose")
        self.seen.append(msg)
        return b"ack:" + msg.data, lambda: self.started.append(msg.data)


def _routed(messaging: NatsMessaging, handle: Any) -> bool:
    return handle._sub._id in messaging.client._routes  # type: ignore[attr-defined]


async def test_a_request_handler_is_served_by_the_read_loop_in_order(pair: Any) -> None:
    worker, caller = pair
    rec = Recorder()
    handle = await worker.subscribe("fast.inorder", rec.handler, queue="q")
    await worker.flush()
    assert _routed(worker, handle)
    replies = await asyncio.gather(*(caller.request("fast.inorder", str(i).encode(), 5.0, HEADERS)
                                     for i in range(200)))
    assert [r.data for r in replies] == [b"ack:%d" % i for i in range(200)]
    # one connection publishes in order and NATS keeps it: the handler saw them in that order, and started each
    assert [m.data for m in rec.seen] == [b"%d" % i for i in range(200)]
    assert rec.started == [m.data for m in rec.seen]
    first = rec.seen[0]
    assert first.subject == "fast.inorder" and first.headers == HEADERS and first.reply.startswith("_INBOX.")
    # the caller's replies came through its response subscription, routed as well
    assert _RESPONSES in caller.client._routes.values()  # type: ignore[attr-defined]
    await handle.unsubscribe()
    await worker.flush()  # the server has it
    assert not _routed(worker, handle)
    with pytest.raises(NoRespondersError):
        await caller.request("fast.inorder", b"gone", 2.0)


async def test_the_message_can_still_be_answered_by_respond(pair: Any) -> None:
    worker, caller = pair
    later: list[Msg] = []

    def accept(msg: Msg) -> tuple[bytes | None, Any]:
        later.append(msg)
        return None, None  # no reply now: answered by respond() below

    await worker.subscribe("fast.respond", RequestHandler(accept))
    await worker.flush()
    waiting = asyncio.ensure_future(caller.request("fast.respond", b"q", 5.0))
    await eventually(lambda: bool(later))
    await later[0].respond(b"answered")
    assert (await waiting).data == b"answered"


async def test_a_failing_handler_is_logged_and_the_subscription_goes_on(pair: Any,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    worker, caller = pair
    rec = Recorder(fail_on=b"bad")
    await worker.subscribe("fast.fails", rec.handler)
    await worker.flush()
    with caplog.at_level(logging.WARNING, logger="dynamo_nb.backends.real.nats"):
        with pytest.raises(BackendTimeoutError):
            await caller.request("fast.fails", b"bad", 0.3)
    assert "subscription callback on 'fast.fails' failed: RuntimeError: refused on purpose" in caplog.text
    assert (await caller.request("fast.fails", b"good", 5.0)).data == b"ack:good"


async def test_a_failing_start_is_logged_after_the_reply(pair: Any, caplog: pytest.LogCaptureFixture) -> None:
    worker, caller = pair

    def boom() -> None:
        raise ValueError("start failed")

    await worker.subscribe("fast.start", RequestHandler(lambda msg: (b"ok", boom)))
    await worker.flush()
    with caplog.at_level(logging.WARNING, logger="dynamo_nb.backends.real.nats"):
        assert (await caller.request("fast.start", b"x", 5.0)).data == b"ok"
        assert (await caller.request("fast.start", b"y", 5.0)).data == b"ok"
    assert "ValueError: start failed" in caplog.text


async def test_an_oversized_reply_is_refused_and_logged(pair: Any, caplog: pytest.LogCaptureFixture) -> None:
    worker, caller = pair
    big = b"x" * (worker.max_payload + 1)
    await worker.subscribe("fast.big", RequestHandler(lambda msg: (big if msg.data == b"big" else b"small", None)))
    await worker.flush()
    with caplog.at_level(logging.WARNING, logger="dynamo_nb.backends.real.nats"):
        with pytest.raises(BackendTimeoutError):
            await caller.request("fast.big", b"big", 0.3)
    assert "PayloadTooLargeError" in caplog.text
    assert (await caller.request("fast.big", b"s", 5.0)).data == b"small"
    with pytest.raises(PayloadTooLargeError):
        await caller.publish("fast.big", big)
    with pytest.raises(PayloadTooLargeError):
        await caller.request("fast.big", big, 1.0, HEADERS)


async def test_an_auto_unsubscribe_limit_holds(pair: Any) -> None:
    worker, caller = pair
    rec = Recorder()
    handle = await worker.subscribe("fast.limit", rec.handler)
    await worker.flush()
    await handle._sub.unsubscribe(limit=2)  # nats-py's own auto-unsubscribe
    await worker.flush()
    assert (await caller.request("fast.limit", b"1", 5.0)).data == b"ack:1"
    assert (await caller.request("fast.limit", b"2", 5.0)).data == b"ack:2"
    with pytest.raises(NoRespondersError):
        await caller.request("fast.limit", b"3", 2.0)
    assert [m.data for m in rec.seen] == [b"1", b"2"] and not _routed(worker, handle)


async def test_a_drained_subscription_takes_what_came_before_and_nothing_after(pair: Any) -> None:
    worker, caller = pair
    rec = Recorder()
    handle = await worker.subscribe("fast.drain", rec.handler)
    await worker.flush()
    for i in range(50):
        await caller.publish("fast.drain", b"%d" % i)
    await caller.flush()
    await handle._sub.drain()
    assert [m.data for m in rec.seen] == [b"%d" % i for i in range(50)]
    await worker.flush()  # nats-py's drain may see its PONG before its UNSUB is written: the server has it now
    with pytest.raises(NoRespondersError):
        await caller.request("fast.drain", b"after", 2.0)


async def test_other_callbacks_keep_nats_py_path(pair: Any) -> None:
    worker, caller = pair
    got: list[Msg] = []

    async def cb(msg: Msg) -> None:
        await asyncio.sleep(0)  # a callback that waits: one at a time, in order, in the subscription's task
        got.append(msg)
        if msg.reply:
            await msg.respond(b"plain:" + msg.data)

    handle = await worker.subscribe("fast.plain", cb)
    await worker.flush()
    assert not _routed(worker, handle)
    replies = await asyncio.gather(*(caller.request("fast.plain", b"%d" % i, 5.0, HEADERS) for i in range(50)))
    assert [r.data for r in replies] == [b"plain:%d" % i for i in range(50)]
    assert [m.data for m in got] == [b"%d" % i for i in range(50)] and got[0].headers == HEADERS


async def test_without_the_short_paths_everything_goes_through_nats_py(local_cluster: LocalCluster) -> None:
    worker = await NatsMessaging.connect(local_cluster.nats_server)
    caller = await NatsMessaging.connect(local_cluster.nats_server)
    worker.client._fast = False  # type: ignore[attr-defined]  # as with a nats-py whose internals differ
    caller.client._fast = False  # type: ignore[attr-defined]
    try:
        rec = Recorder()
        handle = await worker.subscribe("fast.off", rec.handler)
        await worker.flush()
        assert not _routed(worker, handle)
        replies = await asyncio.gather(*(caller.request("fast.off", b"%d" % i, 5.0, HEADERS) for i in range(20)))
        assert [r.data for r in replies] == [b"ack:%d" % i for i in range(20)]
        assert rec.seen[0].headers == HEADERS
        assert not caller.client._routes  # type: ignore[attr-defined]
        with pytest.raises(NoRespondersError):
            await caller.request("fast.nobody", b"", 2.0)
    finally:
        await caller.close()
        await worker.close()


async def test_bad_subjects_and_a_closed_connection_fail_as_before(pair: Any) -> None:
    worker, caller = pair
    with pytest.raises(nats.errors.BadSubjectError):
        await caller.publish("bad subject", b"")
    with pytest.raises(nats.errors.BadSubjectError):
        await caller.publish("", b"")
    with pytest.raises(NoRespondersError):
        await caller.request("fast.nobody.home", b"", 2.0, HEADERS)
    await caller.close()
    with pytest.raises(RuntimeClosedError):
        await caller.publish("fast.closed", b"")
    assert caller.client._publish_now("fast.closed", b"") is False  # type: ignore[attr-defined]


@pytest.mark.timeout(90)
async def test_routed_subscriptions_come_back_after_a_nats_restart() -> None:
    async with LocalCluster() as cluster:
        worker = await NatsMessaging.connect(cluster.nats_server)
        caller = await NatsMessaging.connect(cluster.nats_server)
        try:
            rec = Recorder()
            handle = await worker.subscribe("fast.restart", rec.handler, queue="q")
            await worker.flush()
            assert (await caller.request("fast.restart", b"before", 5.0, HEADERS)).data == b"ack:before"
            await cluster.restart_nats(downtime=0.3)
            await eventually(lambda: worker.reconnects >= 1 and caller.reconnects >= 1, timeout=20)
            await worker.flush()
            answer = None
            for _ in range(100):  # the worker's subscription is re-sent on reconnect: it answers soon
                try:
                    answer = await caller.request("fast.restart", b"after", 2.0, HEADERS)
                    break
                except Exception:
                    await asyncio.sleep(0.05)
            assert answer is not None and answer.data == b"ack:after"
            assert _routed(worker, handle) and rec.seen[-1].headers == HEADERS
        finally:
            await caller.close()
            await worker.close()


async def test_connected_again_before_nats_py_says_reconnected_is_still_an_outage(pair: Any) -> None:
    # nats-py is connected again a round trip before its reconnected callback runs; a reply read meanwhile (a
    # "no responders" from a server the workers have not re-subscribed to yet) reaches its request first
    worker, caller = pair
    assert caller._outage() is None
    caller.disconnects += 1
    outage = caller._outage()
    assert outage is not None and "came back 0.0 s ago" in str(outage)
    caller.reconnects += 1
    caller.reconnected_at = asyncio.get_running_loop().time() - 10
    assert caller._outage() is None


async def test_a_request_timeout_fires_once_due_and_not_for_an_answered_request() -> None:
    loop = asyncio.get_running_loop()
    timeouts = _Timeouts(loop)
    late, answered = loop.create_future(), loop.create_future()
    timeouts.add(late, 0.05)
    timeouts.add(answered, 0.05).discard(answered)
    with pytest.raises(nats.errors.TimeoutError):
        await late
    await asyncio.sleep(0.1)  # past every slot either could be in
    assert not answered.done()


async def test_a_turn_of_many_publishes_is_written_as_it_goes_and_in_order(pair: Any) -> None:
    worker, caller = pair
    got: list[bytes] = []
    everything = asyncio.get_running_loop().create_future()

    async def cb(msg: Msg) -> None:
        got.append(msg.data)
        if len(got) == 300 and not everything.done():
            everything.set_result(None)

    await worker.subscribe("fast.many", cb)
    await worker.flush()
    nc = caller.client
    for i in range(300):  # about 300 KiB in one loop turn: publishing never waits here
        await caller.publish("fast.many", b"%04d" % i + b"." * 1000)
    assert nc._pending_data_size < 300 * 1000  # type: ignore[attr-defined]  # written ahead of the flusher
    await asyncio.wait_for(everything, 10)
    assert [d[:4] for d in got] == [b"%04d" % i for i in range(300)]
