"""The fault lab on both backends: what a client sees during each fault, how long until calls succeed again
(printed, never asserted as a time), and that no call is lost or hangs.

Each test runs a caller that keeps calling through the fault; every call must come back complete or fail with a
typed error within a bound (``CALL_BOUND``), and the figures must show the fault while it lasts.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

import dynamo_nb
from dynamo_nb import DistributedRuntime, DynamoError, faults
from dynamo_nb.cluster import LocalCluster
from dynamo_nb.core.recorder import Kind
from support import eventually

REF = "lab.Worker.generate"
TTL = 1.0
CALL_BOUND = 15.0  # a call that takes longer than this has hung


async def numbered(request: dict[str, Any], context: Any) -> AsyncIterator[dict[str, Any]]:
    for i in range(int(request.get("n", 2))):
        yield {"i": i}


class Caller:
    """Calls round-robin until stopped; keeps every outcome, and when the first success after a mark came."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.ok = 0
        self.failed: list[str] = []
        self.answered_by: list[int] = []
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._stop = False

    async def one(self) -> None:
        stream = await asyncio.wait_for(self.client.round_robin({"n": 3}), CALL_BOUND)
        items = await asyncio.wait_for(stream.collect(), CALL_BOUND)
        assert items == [{"i": 0}, {"i": 1}, {"i": 2}], items  # nothing lost from a stream
        self.ok += 1
        self.answered_by.append(stream.instance_id)

    async def _run(self) -> None:
        while not self._stop:
            try:
                await self.one()
            except DynamoError as exc:  # typed, and bounded: recorded and the next call tried
                self.failed.append(type(exc).__name__)
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._stop = True
        await asyncio.wait_for(self._task, CALL_BOUND * 2)  # a hung call fails the test here


async def workers(make_runtime: Callable[..., Awaitable[DistributedRuntime]], n: int = 2) -> list[Any]:
    out = []
    for k in range(n):
        rt = await make_runtime(name=f"worker-{k + 1}", lease_ttl=TTL)
        served = await rt.endpoint(REF).endpoint_builder().handler(numbered).start()
        out.append(served)
    return out


async def client_of(make_runtime: Callable[..., Awaitable[DistributedRuntime]], count: int) -> Any:
    frontend = await make_runtime(name="frontend", lease_ttl=TTL)
    client = await frontend.endpoint(REF).client()
    await eventually(lambda: len(client.instance_ids()) == count, 10)
    return client


async def etcd_keys(runtime: DistributedRuntime) -> list[str]:
    return [kv["key"] for kv in await runtime.etcd_client().kv_get_prefix("lab/components/Worker/")]


def faults_on(runtime: DistributedRuntime) -> list[tuple[str, bool]]:
    return [(r.detail["fault"], r.detail["active"]) for r in runtime.recorder.select(Kind.FAULT)]


async def test_paused_keepalive_expires_the_lease_while_serving_and_resuming_registers_anew(make_runtime) -> None:
    paused, other = await workers(make_runtime)
    client = await client_of(make_runtime, 2)
    caller = Caller(client)
    old, old_key = paused.instance_id, paused.key
    await faults.pause_keepalive(paused.runtime)
    assert "keep-alive paused" in dynamo_nb.diagram([paused.runtime, client], "hierarchy").mermaid
    gone = await eventually(lambda: old not in client.instance_ids(), TTL + 5)
    assert old_key not in await etcd_keys(other.runtime)  # etcd dropped its key with the lease
    assert paused.state.value in ("Running", "Healthy")  # it still serves: a partition, not a crash
    assert client.instance_ids() == [other.instance_id]
    await faults.resume_keepalive(paused.runtime)
    back = await eventually(lambda: len(client.instance_ids()) == 2 and paused.instance_id != old, 10)
    mark = len(caller.answered_by)
    await eventually(lambda: paused.instance_id in caller.answered_by[mark:], 10)
    await caller.stop()
    print(f"\nkeep-alive paused: the client dropped the instance after {gone:.2f} s (TTL {TTL:g} s); "
          f"re-registered {back:.2f} s after resuming; {caller.ok} calls ok, failures {caller.failed}")
    assert caller.failed == [] and caller.ok > 0
    assert faults_on(paused.runtime) == [("keepalive", True), ("keepalive", False)]
    assert paused.runtime.recorder.select(Kind.LEASE_LOST)


async def test_cut_off_instance_stays_in_etcd_calls_fail_over_and_the_figure_shows_the_mismatch(make_runtime) -> None:
    cut, other = await workers(make_runtime)
    client = await client_of(make_runtime, 2)
    await faults.cut_off(cut)
    caller = Caller(client)
    await eventually(lambda: caller.ok >= 6, 20)
    assert cut.key in await etcd_keys(cut.runtime)  # etcd still lists it …
    assert cut.instance_id in client.instance_ids()  # … so the client does too
    assert client.silent_ids() == [cut.instance_id]  # but it did not answer
    figure = dynamo_nb.diagram([cut.runtime, client.runtime], "hierarchy").mermaid
    assert "cut off from NATS" in figure and "in etcd, but did not answer a client" in figure
    assert set(caller.answered_by) == {other.instance_id}
    await faults.reconnect(cut)
    mark = len(caller.answered_by)
    started = time.monotonic()
    await eventually(lambda: cut.instance_id in caller.answered_by[mark:], client.DOWN_FOR + 10)
    again = time.monotonic() - started
    await caller.stop()
    print(f"\ncut off from NATS: {caller.ok} calls ok, failures {caller.failed}; "
          f"answering again {again:.2f} s after reconnecting (the client skips a silent instance "
          f"for {client.DOWN_FOR:g} s)")
    assert caller.failed == []
    assert faults_on(cut.runtime) == [("cut_off", True), ("cut_off", False)]
    assert "cut off" not in dynamo_nb.diagram([cut.runtime, client.runtime], "hierarchy").mermaid


async def test_slow_handler_streams_everything_late_and_other_instances_are_not_held_up(make_runtime) -> None:
    slow, fast = await workers(make_runtime)
    client = await client_of(make_runtime, 2)
    faults.slow_down(slow, 0.2)
    assert "slow: +0.2 s per item" in dynamo_nb.diagram(slow, "hierarchy").text
    started = time.monotonic()
    slow_call = asyncio.ensure_future((await client.direct({"n": 3}, slow.instance_id)).collect())
    fast_items = await asyncio.wait_for((await client.direct({"n": 3}, fast.instance_id)).collect(), CALL_BOUND)
    fast_done = time.monotonic() - started
    assert not slow_call.done()  # the fast instance answered while the slow one was still streaming
    assert await asyncio.wait_for(slow_call, CALL_BOUND) == fast_items == [{"i": 0}, {"i": 1}, {"i": 2}]
    print(f"\nslow handler (+0.2 s per item): 3 items in {time.monotonic() - started:.2f} s; "
          f"the other instance answered in {fast_done:.3f} s")
    faults.slow_down(slow, 0)
    assert slow.snapshot().faults == ()
    assert faults_on(slow.runtime) == [("slow", True), ("slow", False)]
    assert "handler slowed" in dynamo_nb.diagram([slow, slow.runtime], "sequence").mermaid


async def test_faults_are_refused_or_harmless_where_they_make_no_sense(make_runtime) -> None:
    (served,) = await workers(make_runtime, 1)
    with pytest.raises(ValueError, match="delay"):
        faults.slow_down(served, -1)
    await faults.reconnect(served)  # not cut off: nothing to do, nothing recorded
    await faults.resume_keepalive(served.runtime)
    assert faults_on(served.runtime) == []


@pytest.fixture
async def own_cluster() -> AsyncIterator[LocalCluster]:
    async with LocalCluster() as cluster:
        yield cluster


@pytest.mark.servers
@pytest.mark.timeout(120)
@pytest.mark.parametrize("server", ["etcd", "NATS"])
async def test_restarting_a_server_is_recorded_and_calls_succeed_again(own_cluster: LocalCluster, server: str) -> None:
    runtimes = [await DistributedRuntime.create(etcd_endpoints=own_cluster.etcd_endpoints, name=name,
                                                nats_server=own_cluster.nats_server, lease_ttl=3.0,
                                                health_check_interval=0.2) for name in ("worker", "frontend")]
    try:
        served = await runtimes[0].endpoint(REF).endpoint_builder().handler(numbered).start()
        client = await runtimes[1].endpoint(REF).client()
        await client.wait_for_instances(timeout=10)
        caller = Caller(client)
        await eventually(lambda: caller.ok >= 3, 10)
        restart = faults.restart_etcd if server == "etcd" else faults.restart_nats
        await restart(own_cluster, record_in=runtimes, downtime=0.5)
        started, mark = time.monotonic(), caller.ok
        await eventually(lambda: caller.ok >= mark + 3, 30)
        again = time.monotonic() - started
        await caller.stop()
        print(f"\n{server} restarted (0.5 s down): calls succeed again {again:.2f} s after it is back; "
              f"{caller.ok} ok, failures during the outage {caller.failed}")
        assert client.instance_ids() == [served.instance_id]
        for rt in runtimes:
            assert faults_on(rt) == [("restart", True), ("restart", False)]
        notes = dynamo_nb.diagram([served, runtimes[0]], "sequence").mermaid
        assert f"{server} restarting" in notes and f"{server} restarted" in notes
    finally:
        for rt in reversed(runtimes):
            await asyncio.wait_for(rt.shutdown(), 10)
