"""When NATS itself is the trouble, calls say so: not "is a worker serving it?" nor NoInstancesError (issue 15)."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any, AsyncIterator

import pytest

from dynamo_nb import DistributedRuntime, LocalCluster
from dynamo_nb.errors import BackendTimeoutError, BackendUnavailableError, NoInstancesError

from support import eventually, freeze

pytestmark = pytest.mark.servers
REF = "outage.Worker.generate"


async def echo(request: Any) -> AsyncIterator[Any]:
    yield request


async def _pair(cluster: LocalCluster) -> tuple[DistributedRuntime, DistributedRuntime, Any]:
    worker = await DistributedRuntime.create(etcd_endpoints=cluster.etcd_endpoints, nats_server=cluster.nats_server)
    caller = await DistributedRuntime.create(etcd_endpoints=cluster.etcd_endpoints, nats_server=cluster.nats_server)
    await worker.endpoint(REF).endpoint_builder().handler(echo).start()
    client = await caller.endpoint(REF).client()
    await client.wait_for_instances(timeout=10)
    client.ACK_TIMEOUT = 1.0
    assert await (await client.generate("up")).collect() == ["up"]
    return worker, caller, client


@pytest.mark.timeout(90)
async def test_a_frozen_nats_is_reported_as_frozen():
    async with LocalCluster() as cluster:
        worker, caller, client = await _pair(cluster)
        pid = cluster.nats_pid
        await freeze(pid)
        try:
            with pytest.raises(BackendUnavailableError, match="answers nothing") as frozen:
                await client.generate("frozen?")
            assert "worker" not in str(frozen.value)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert await (await client.generate("thawed")).collect() == ["thawed"]
        await caller.shutdown()
        await worker.shutdown()


@pytest.mark.timeout(90)
async def test_calls_during_a_nats_restart_fail_as_an_outage_not_as_no_instances():
    async with LocalCluster() as cluster:
        worker, caller, client = await _pair(cluster)
        messaging = caller.backend.messaging
        restart = asyncio.get_running_loop().create_task(cluster.restart_nats(downtime=1.0))
        errors: list[BaseException] = []
        answered = 0
        try:
            await eventually(lambda: not messaging.connected, timeout=10)
            # Call through the outage and the moments after it, until calls work again (bounded).
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while (answered < 3 or not restart.done()) and loop.time() < deadline:
                try:
                    assert await (await client.generate("x")).collect() == ["x"]
                    answered += 1
                except Exception as exc:
                    errors.append(exc)
                    await asyncio.sleep(0.05)
        finally:
            await restart
        assert answered >= 3 and errors, (answered, errors)
        assert not [e for e in errors if isinstance(e, NoInstancesError)], errors
        assert all(isinstance(e, BackendUnavailableError) and "NATS" in str(e) for e in errors), errors
        assert client.instance_ids()  # the instances were registered all along
        await caller.shutdown()
        await worker.shutdown()


@pytest.mark.timeout(60)
async def test_a_flush_that_timed_out_does_not_break_the_connection_when_the_pong_comes_late():
    async with LocalCluster() as cluster:
        worker, caller, client = await _pair(cluster)
        messaging = caller.backend.messaging
        await messaging.flush(5)  # no earlier round trip still in flight: its PONG would answer the one below
        await freeze(cluster.nats_pid)
        try:
            with pytest.raises(BackendTimeoutError):
                await messaging.flush(0.2)
        finally:
            os.kill(cluster.nats_pid, signal.SIGCONT)  # the late PONG arrives now
        await messaging.flush(5)  # the connection's read loop survived it
        assert messaging.connected and messaging.disconnects == 0
        assert await (await client.generate("after")).collect() == ["after"]
        await caller.shutdown()
        await worker.shutdown()
