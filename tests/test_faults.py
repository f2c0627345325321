"""Faults against real servers: dead worker processes, broken streams, restarted NATS and etcd, oversize and garbage.

Each test starts its own LocalCluster (loopback ports, its own temp dir), so restarting or abusing a server never
disturbs another test; worker processes are started here and only their PIDs are ever signalled.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import nats
import pytest

from dynamo_nb import DistributedRuntime
from dynamo_nb.cluster import LocalCluster
from dynamo_nb.errors import PayloadTooLargeError, RemoteError, StreamIncompleteError
from dynamo_nb.transport.frames import encode_frame
from support import WorkerProcess, eventually, start_worker

pytestmark = pytest.mark.servers

REF = "faults.backend.generate"


@pytest.fixture
async def workers() -> AsyncIterator[Callable[..., Awaitable[WorkerProcess]]]:
    started: list[WorkerProcess] = []

    async def start(cluster: LocalCluster, lease_ttl: float = 1.0, reference: str = REF) -> WorkerProcess:
        worker = await start_worker(cluster, lease_ttl, reference, started)
        await worker.wait_instance()
        return worker

    yield start
    for worker in started:
        await worker.reap()


@pytest.fixture
async def cluster() -> AsyncIterator[LocalCluster]:
    async with LocalCluster() as c:
        yield c


@pytest.fixture
async def runtimes() -> AsyncIterator[Callable[..., Awaitable[DistributedRuntime]]]:
    created: list[DistributedRuntime] = []

    async def make(cluster: LocalCluster, **kwargs: Any) -> DistributedRuntime:
        kwargs.setdefault("health_check_interval", 0.2)
        runtime = await DistributedRuntime.create(etcd_endpoints=cluster.etcd_endpoints,
                                                  nats_server=cluster.nats_server, **kwargs)
        created.append(runtime)
        return runtime

    yield make
    for runtime in reversed(created):
        try:
            await asyncio.wait_for(runtime.shutdown(), 10)
        except Exception:
            pass


async def call(client: Any, request: Any) -> list[Any]:
    return await (await client.round_robin(request)).collect()


# -- (a) a worker process killed with SIGKILL -------------------------------------------------------------

@pytest.mark.timeout(90)
async def test_killed_worker_disappears_when_its_lease_expires_and_calls_fail_over(cluster, workers, runtimes):
    ttl = 1.0
    a, b = await workers(cluster, ttl), await workers(cluster, ttl)
    client = await (await runtimes(cluster)).endpoint(REF).client()
    await eventually(lambda: set(client.instance_ids()) == {a.instance_id, b.instance_id}, 10)
    pids = {item["pid"] for _ in range(4) for item in await call(client, {"n": 1})}
    assert pids == {a.pid, b.pid}, "round-robin should reach both workers"

    a.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    # A request published in the very instant the process dies is lost with it (NATS has no delivery receipt;
    # the caller would wait for the ack timeout): start calling once the process is gone.
    await asyncio.wait_for(a.proc.wait(), 5)
    calls_while_listed = 0
    while a.instance_id in client.instance_ids():
        items = await call(client, {"n": 2})
        assert [i["i"] for i in items] == [0, 1] and {i["pid"] for i in items} == {b.pid}
        if a.instance_id in client.instance_ids():
            calls_while_listed += 1
        assert time.monotonic() - killed_at < ttl + 5, "the dead instance never went away"
    # It went because its lease expired (nobody deregistered it): the lease is gone from etcd too.
    assert await client.runtime.backend.discovery.lease_time_left(a.instance_id) is None
    assert calls_while_listed > 0, "no call was made while the dead instance was still listed"
    assert client.instance_ids() == [b.instance_id]
    assert [i["pid"] for i in await call(client, {"n": 1})] == [b.pid]


# -- (b) a worker dying mid-stream --------------------------------------------------------------------------

@pytest.mark.timeout(60)
async def test_worker_exiting_mid_stream_gives_stream_incomplete(cluster, workers, runtimes):
    worker = await workers(cluster)
    client = await (await runtimes(cluster)).endpoint(REF).client()
    await client.wait_for_instances(timeout=10)
    stream = await client.round_robin({"n": 100, "exit_after": 3})
    got = []
    started = time.monotonic()
    with pytest.raises(StreamIncompleteError, match="before generation completed"):
        async for item in stream:
            got.append(item["i"])
    assert got == [0, 1, 2]
    assert time.monotonic() - started < 5
    assert await asyncio.wait_for(worker.proc.wait(), 10) == 3


@pytest.mark.timeout(60)
async def test_worker_killed_while_streaming_gives_stream_incomplete(cluster, workers, runtimes):
    worker, spare = await workers(cluster), await workers(cluster)
    client = await (await runtimes(cluster)).endpoint(REF).client()
    await eventually(lambda: len(client.instance_ids()) == 2, 10)
    stream = await client.direct({"n": 10_000, "delay": 0.01}, worker.instance_id)
    got = []
    with pytest.raises(StreamIncompleteError):
        async for item in stream:
            got.append(item)
            if len(got) == 5:
                worker.signal(signal.SIGKILL)
    assert 5 <= len(got) < 10_000 and {i["pid"] for i in got} == {worker.pid}
    # The caller is not stuck with the corpse: calls go to the live worker while the dead one is still listed.
    await asyncio.wait_for(worker.proc.wait(), 5)
    assert worker.instance_id in client.instance_ids()
    for _ in range(3):
        assert [i["pid"] for i in await call(client, {"n": 1})] == [spare.pid]


# -- (c) nats-server restarted on the same port -------------------------------------------------------------

async def _until_call_works(client: Any, request: Any, timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            return await asyncio.wait_for(call(client, request), 2)
        except Exception as exc:  # no responders / timeouts while reconnecting
            last = exc
            await asyncio.sleep(0.1)
    raise AssertionError(f"calls did not resume within {timeout} s (last error: {last!r})")


@pytest.mark.timeout(90)
async def test_nats_restart_clients_and_workers_reconnect(cluster, workers, runtimes):
    worker = await workers(cluster)
    inproc_worker = await runtimes(cluster)

    async def local(request: Any) -> AsyncIterator[str]:
        yield "local"

    await inproc_worker.endpoint("faults.local.generate").endpoint_builder().handler(local).start()
    caller = await runtimes(cluster)
    remote = await caller.endpoint(REF).client()
    nearby = await caller.endpoint("faults.local.generate").client()
    await remote.wait_for_instances(timeout=10)
    await nearby.wait_for_instances(timeout=10)
    events = caller.namespace("faults").component("backend").subscribe("kv_events")
    await events
    publisher = inproc_worker.namespace("faults").component("backend")
    await publisher.publish("kv_events", {"seq": 0})
    assert await events.get(timeout=5) == {"seq": 0}

    await cluster.restart_nats(downtime=0.5)

    assert [i["pid"] for i in await _until_call_works(remote, {"n": 1}, 15)] == [worker.pid]
    assert await _until_call_works(nearby, "x", 15) == ["local"]
    messaging = caller.backend.messaging
    await eventually(lambda: messaging.connected and inproc_worker.backend.messaging.connected, 10)
    assert messaging.reconnects >= 1 and inproc_worker.backend.messaging.reconnects >= 1
    await inproc_worker.backend.messaging.flush()
    await caller.backend.messaging.flush()
    await publisher.publish("kv_events", {"seq": 1})
    assert await events.get(timeout=5) == {"seq": 1}
    # Discovery never noticed: the same instances, nothing re-registered.
    assert remote.instance_ids() == [worker.instance_id] and worker.instances == [worker.instance_id]
    await events.close()


# -- (d) etcd restarted with the same data dir, and a lease lost behind the runtime's back ------------------

@pytest.mark.timeout(120)
async def test_etcd_restart_clients_converge_to_the_live_instances(cluster, workers, runtimes):
    ttl = 1.0
    survivor, victim = await workers(cluster, ttl), await workers(cluster, ttl)
    caller = await runtimes(cluster)
    client = await caller.endpoint(REF).client()
    await eventually(lambda: len(client.instance_ids()) == 2, 10)
    watcher = client.watcher
    resyncs = watcher.resyncs

    restart = asyncio.get_running_loop().create_task(cluster.restart_etcd(downtime=2.5))
    await eventually(lambda: cluster.etcd_pid is None, 10)
    victim.signal(signal.SIGKILL)  # dies while etcd is down: nobody revokes its lease
    await restart

    # etcd renews every lease when it comes back; the victim's then expires, the survivor keeps its own (or,
    # if its keep-alive came too late, re-registers under a new one). Either way clients converge on it.
    await eventually(lambda: len(client.instance_ids()) == 1 and client.instance_ids()[0] == survivor.instance_id,
                     ttl + 10)
    assert watcher.resyncs > resyncs, "the broken watch should have been re-read"
    assert [i["pid"] for i in await _until_call_works(client, {"n": 1}, 10)] == [survivor.pid]
    _, kvs = await caller.backend.discovery.get_prefix("faults/components/backend/")
    assert [kv.key for kv in kvs] == [f"faults/components/backend/generate:{survivor.instance_id:x}"]


@pytest.mark.timeout(90)
async def test_lost_lease_is_regranted_and_the_instance_registered_again(cluster, workers, runtimes):
    worker = await workers(cluster, 1.0)
    caller = await runtimes(cluster)
    client = await caller.endpoint(REF).client()
    await eventually(lambda: client.instance_ids() == [worker.instance_id], 10)
    old = worker.instance_id

    await caller.backend.discovery.revoke_lease(old)  # as if it had expired
    new = await worker.wait_instance(timeout=10, other_than=old)
    await eventually(lambda: client.instance_ids() == [new], 10)
    assert [i["pid"] for i in await call(client, {"n": 2})] == [worker.pid] * 2
    _, kvs = await caller.backend.discovery.get_prefix("faults/components/backend/")
    assert [(kv.key, kv.lease) for kv in kvs] == [(f"faults/components/backend/generate:{new:x}", new)]
    value = json.loads(kvs[0].value)
    assert value["lease_id"] == new and value["transport"]["nats_tcp"] == f"faults|backend.generate-{new:x}"


@pytest.mark.timeout(90)
async def test_paused_worker_loses_its_lease_and_comes_back_under_a_new_one(cluster, workers, runtimes):
    ttl = 1.0
    paused, other = await workers(cluster, ttl), await workers(cluster, ttl)
    client = await (await runtimes(cluster)).endpoint(REF).client()
    await eventually(lambda: len(client.instance_ids()) == 2, 10)
    old = paused.instance_id
    paused.signal(signal.SIGSTOP)
    try:
        await eventually(lambda: client.instance_ids() == [other.instance_id], ttl + 3)
        for _ in range(3):  # nothing is routed to the frozen process
            assert [i["pid"] for i in await call(client, {"n": 1})] == [other.pid]
    finally:
        paused.signal(signal.SIGCONT)
    new = await paused.wait_instance(timeout=10, other_than=old)
    await eventually(lambda: set(client.instance_ids()) == {new, other.instance_id}, 10)
    pids = {i["pid"] for _ in range(4) for i in await call(client, {"n": 1})}
    assert pids == {paused.pid, other.pid}


# -- (e) payloads over the server's max_payload --------------------------------------------------------------

@pytest.fixture
async def small_cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    conf = tmp_path / "nats.conf"
    conf.write_text("max_payload: 4096\n")
    async with LocalCluster(nats_args=["-c", str(conf)]) as c:
        yield c


@pytest.mark.timeout(60)
async def test_oversize_request_and_item_fail_at_the_caller_and_the_worker_keeps_serving(small_cluster, runtimes):
    worker = await runtimes(small_cluster)

    async def echo(request: dict[str, Any]) -> AsyncIterator[Any]:
        yield {"len": len(request["blob"])}
        if request.get("big_item"):
            yield "y" * 10_000

    served = await worker.endpoint(REF).endpoint_builder().handler(echo).start()
    caller = await runtimes(small_cluster)
    assert caller.backend.messaging.max_payload == 4096
    client = await caller.endpoint(REF).client()
    await client.wait_for_instances(timeout=10)

    with pytest.raises(PayloadTooLargeError, match="4096"):
        await client.round_robin({"blob": "x" * 5000})
    with pytest.raises(RemoteError) as info:
        await call(client, {"blob": "small", "big_item": True})
    assert info.value.remote_type == "PayloadTooLargeError" and "item" in info.value.remote_message
    assert await call(client, {"blob": "x" * 3000}) == [{"len": 3000}]
    assert served.stats is not None and served.stats.num_errors == 1


# -- (f) garbage on the endpoint subject and on the response port ---------------------------------------------

@pytest.mark.timeout(60)
async def test_garbage_is_answered_or_dropped_and_the_worker_keeps_serving(cluster, runtimes):
    worker = await runtimes(cluster)

    async def hello(request: Any) -> AsyncIterator[str]:
        yield f"hello {request}"

    served = await worker.endpoint(REF).endpoint_builder().handler(hello).start()
    caller = await runtimes(cluster)
    client = await caller.endpoint(REF).client()
    await client.wait_for_instances(timeout=10)
    assert await call(client, "a") == ["hello a"]

    nc = await nats.connect(cluster.nats_server)
    try:
        garbage = [
            b"",                                                        # not even a frame prefix
            b"\xff" * 40,                                               # lengths that lie
            encode_frame(b"not json", b"{}"),                           # a frame whose header is not a header
            encode_frame(b'{"id": 1}', b"{}"),                          # a header without connection_info
            encode_frame(b'{"id": "r", "connection_info": {"transport": "tcp_server", "info": "{}"}}', b"\x80"),
        ]
        for payload in garbage:
            reply = await nc.request(served.subject, payload, timeout=5)
            assert b"malformed request" in reply.data
        for payload in garbage:  # no reply subject: dropped (and logged)
            await nc.publish(served.subject, payload)
        # A well-formed request whose caller cannot be reached: acked, then the stream fails on the worker only.
        info = {"transport": "tcp_server",
                "info": json.dumps({"address": "127.0.0.1:1", "subject": "x", "context": "r",
                                    "stream_type": "response"})}
        header = json.dumps({"id": "r", "request_type": "single_in", "response_type": "many_out",
                             "connection_info": info}).encode()
        assert (await nc.request(served.subject, encode_frame(header, b'"b"'), timeout=5)).data == b""
        await nc.flush()
    finally:
        await nc.close()

    # Garbage on the caller's response port is dropped without disturbing the caller.
    host, port = caller.backend.responses.address.rsplit(":", 1)
    for junk in (b"\x00" * 24 + b"x", b"GET / HTTP/1.0\r\n\r\n", encode_frame(b'{"subject": "nobody"}', None)):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(junk)
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the listener hangs up
        writer.close()

    await eventually(lambda: served.stats is not None and served.stats.num_errors >= 2 * len(garbage) + 1, 5)
    assert await call(client, "again") == ["hello again"]
