"""At most once: a request read after its ack deadline is dropped, not run, because its caller has failed over.

A frozen worker (SIGSTOP) keeps its NATS subscription: requests published to it wait in its socket while the
callers time out on the ack and try another instance. When it thaws it reads them all; running them would run
each of those handlers twice.
"""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any, AsyncIterator, Callable

import pytest

from conftest import real_runtime
from dynamo_nb.cluster import LocalCluster
from dynamo_nb.core.recorder import Kind
from dynamo_nb.errors import BackendTimeoutError
from dynamo_nb.transport.frames import encode_frame
from dynamo_nb.transport.profile import ACK_DEADLINE_HEADER, SEND_TS_HEADER
from support import eventually, worker_pool

REF = "once.Worker.generate"


async def echo(request: Any) -> AsyncIterator[Any]:
    yield request


async def test_a_request_past_its_ack_deadline_is_dropped_and_recorded(make_runtime):
    worker = await make_runtime()
    served = await worker.endpoint(REF).endpoint_builder().handler(echo).start()
    caller = await make_runtime()
    receiver = await caller.backend.responses.open_receiver("late")
    header = json.dumps({"id": "late", "request_type": "single_in", "response_type": "many_out",
                         "connection_info": receiver.connection_info}).encode()
    stale = {"request-id": "late", SEND_TS_HEADER: "1000", ACK_DEADLINE_HEADER: "2000"}  # long past
    with pytest.raises(BackendTimeoutError):  # no ack: its caller stopped waiting long ago
        await caller.backend.messaging.request(served.subject, encode_frame(header, b'"x"'), timeout=0.5,
                                               headers=stale)
    await receiver.close()
    drops = worker.recorder.select(Kind.REQUEST_DROP, request_id="late")
    assert len(drops) == 1 and drops[0].detail["late_s"] > 0 and served.dropped_late == 1
    assert not worker.recorder.select(Kind.REQUEST, request_id="late") and served.stats.num_requests == 0
    # A request inside its deadline (every client call carries one) still runs.
    client = await caller.endpoint(REF).client()
    await client.wait_for_instances(timeout=10)
    assert await (await client.generate("on time")).collect() == ["on time"]


@pytest.fixture
async def cluster() -> AsyncIterator[LocalCluster]:
    async with LocalCluster() as c:
        yield c


@pytest.fixture
async def worker_processes() -> AsyncIterator[Callable[..., Any]]:
    async with worker_pool(REF) as start:
        yield start


@pytest.mark.servers
@pytest.mark.timeout(90)
async def test_a_thawed_worker_does_not_run_the_requests_its_callers_gave_up_on(cluster, worker_processes):
    frozen, live = await worker_processes(cluster, 30.0), await worker_processes(cluster, 30.0)
    caller = await real_runtime(cluster)
    try:
        client = await caller.endpoint(REF).client()
        client.ACK_TIMEOUT = 1.0
        await eventually(lambda: set(client.instance_ids()) == {frozen.instance_id, live.instance_id}, 10)
        frozen.signal(signal.SIGSTOP)

        async def call(tag: str) -> list[Any]:
            return await (await client.round_robin({"tag": tag, "n": 2})).collect()

        tags = [f"t{n}" for n in range(12)]
        results = await asyncio.wait_for(asyncio.gather(*(call(tag) for tag in tags)), 30)
        assert all([item["pid"] for item in items] == [live.pid] * 2 for items in results)
        assert sorted(live.ran) == sorted(tags)
        # Some calls were published to the frozen worker and failed over after the ack timeout.
        assert client._down.get(frozen.instance_id), "no call went to the frozen worker"

        frozen.signal(signal.SIGCONT)
        # Its backlog is read in order before a new request: once a fresh call to it completes, it has seen all.
        after = await asyncio.wait_for(client.direct({"tag": "after-thaw", "n": 1}, frozen.instance_id), 10)
        assert [item["pid"] for item in await after.collect()] == [frozen.pid]
        await eventually(lambda: "after-thaw" in frozen.ran, timeout=10)
        assert frozen.ran == ["after-thaw"], f"the thawed worker ran stale requests: {frozen.ran}"
        runs = frozen.ran + live.ran
        assert all(runs.count(tag) == 1 for tag in tags), "a handler ran twice"
    finally:
        await caller.shutdown()


async def test_a_lost_ack_with_the_stream_already_flowing_is_not_sent_to_another_instance() -> None:
    """The worker got the request and streams back, but its ack is lost (a NATS reconnect): the caller takes that
    stream; failing over would run the handler a second time elsewhere."""
    from dynamo_nb import DistributedRuntime
    from dynamo_nb.backends.embedded import EmbeddedWorld
    from dynamo_nb.errors import BackendTimeoutError

    world = EmbeddedWorld()
    opts: dict[str, Any] = dict(world=world, lease_ttl=60, health_check_interval=3600)
    ran: list[str] = []

    async def handler(request: dict[str, Any]) -> Any:
        ran.append(request["tag"])
        for i in range(3):
            yield i

    workers = [await DistributedRuntime.create(name=f"w{i}", **opts) for i in range(2)]
    caller = await DistributedRuntime.create(name="caller", **opts)
    try:
        for w in workers:
            await w.endpoint(REF).endpoint_builder().handler(handler).start()
        client = await caller.endpoint(REF).client()
        await eventually(lambda: len(client.instance_ids()) == 2)
        plane = caller.backend.request_plane("nats")
        delivered = plane.request

        async def ack_lost(*args: Any, **kwargs: Any) -> Any:
            await delivered(*args, **kwargs)  # the worker has the request and starts streaming back
            await asyncio.sleep(0.05)
            raise BackendTimeoutError("no ack: lost across a reconnect")

        plane.request = ack_lost  # type: ignore[method-assign]
        assert await (await client.round_robin({"tag": "t1"})).collect() == [0, 1, 2]
        assert ran == ["t1"]  # once: the other instance never saw it
    finally:
        for rt in (caller, *workers):
            await rt.shutdown()
