"""Clustered servers: a 3-member etcd and a 3-node NATS on loopback, and the runtime surviving the loss of members.

Each test starts its own ``LocalCluster(etcd_members=3, nats_nodes=3)``; members are stopped by index (their own
PIDs), every wait is bounded, and the load is bounded in callers, calls and seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import pytest

from dynamo_nb import DistributedRuntime
from dynamo_nb.backends.real.etcd import EtcdDiscovery
from dynamo_nb.cluster import LocalCluster
from dynamo_nb.errors import BackendTimeoutError, NoRespondersError
from support import eventually

pytestmark = [pytest.mark.servers, pytest.mark.timeout(120)]

REF = "clustered.backend.generate"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def http_json(url: str, body: bytes | None = None) -> dict:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=5) as r:
        return json.loads(r.read())


async def test_three_plus_three_start_answer_and_clean_up() -> None:
    async with asyncio.timeout(60):
        async with LocalCluster(etcd_members=3, nats_nodes=3) as c:
            assert c.running
            etcd_urls, nats_urls = c.etcd_endpoints.split(","), c.nats_server.split(",")
            assert len(set(etcd_urls)) == 3 and len(set(nats_urls)) == 3
            assert all(u.startswith("http://127.0.0.1:") for u in etcd_urls)
            assert all(u.startswith("nats://127.0.0.1:") for u in nats_urls)
            assert c.env() == {"ETCD_ENDPOINTS": c.etcd_endpoints, "NATS_SERVER": c.nats_server}
            pids = c.etcd_pids + c.nats_pids
            assert len(set(pids)) == 6 and all(pid_alive(p) for p in pids)

            # One etcd cluster of three: every member lists the same three members and agrees on one leader.
            members = await asyncio.to_thread(http_json, etcd_urls[1] + "/v3/cluster/member/list", b"{}")
            assert sorted(u for m in members["members"] for u in m["clientURLs"]) == sorted(etcd_urls)
            statuses = [await asyncio.to_thread(http_json, u + "/v3/maintenance/status", b"{}") for u in etcd_urls]
            assert len({s["leader"] for s in statuses}) == 1
            leader = await c.etcd_leader()
            assert statuses[leader]["header"]["member_id"] == statuses[0]["leader"]

            # One NATS cluster of three: a message published on node 2 reaches a subscriber on node 0.
            import nats

            sub_conn = await nats.connect(nats_urls[0], allow_reconnect=False)
            pub_conn = await nats.connect(nats_urls[2], allow_reconnect=False)
            try:
                sub = await sub_conn.subscribe("clustered.hello")
                await sub_conn.flush()
                for _ in range(200):  # bounded: interest crosses the route within milliseconds
                    await pub_conn.publish("clustered.hello", b"hi")
                    await pub_conn.flush()
                    try:
                        msg = await sub.next_msg(timeout=0.05)
                        break
                    except nats.errors.TimeoutError:
                        continue
                else:
                    raise AssertionError("a message never crossed from node 2 to node 0")
                assert msg.data == b"hi"
            finally:
                await sub_conn.close()
                await pub_conn.close()

            # Stop and start one member of each, by index.
            old = c.etcd_pids[2]
            await c.stop_etcd_member(2, kill=True)
            await c.stop_nats_node(1)
            assert c.etcd_pids[2] is None and c.nats_pids[1] is None and not pid_alive(old)
            assert not c.running
            # Two of three still make a quorum: member 0 is healthy again once they have (re)elected a leader.
            for _ in range(100):  # bounded: an election takes ~0.1-1 s here
                try:
                    if (await asyncio.to_thread(http_json, etcd_urls[0] + "/health"))["health"] == "true":
                        break
                except urllib.error.HTTPError:  # 503 while there is no leader
                    pass
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("two etcd members of three never became healthy")
            await c.start_etcd_member(2)
            await c.start_nats_node(1)
            assert c.running and c.etcd_pids[2] not in (None, old)
            data_dir = c.data_dir
        assert data_dir is not None and not data_dir.exists()
        assert not any(pid_alive(p) for p in c.etcd_pids + c.nats_pids if p) and not any(
            pid_alive(p) for p in pids)


async def test_etcd_endpoints_by_host_name_fail_over_between_members() -> None:
    """``localhost`` URLs for every member: calls, the lease and a watch all move on when their member dies."""
    async with asyncio.timeout(60), LocalCluster(etcd_members=3, nats_nodes=1) as c:
        by_name = ",".join(f"http://localhost:{p}" for p in c.etcd_ports)
        d = await EtcdDiscovery.connect(by_name, request_timeout=3.0)
        try:
            lease = await d.grant_lease(2)
            watch = await d.watch_prefix("hosts/", 1)
            seen: list[tuple[str, str, int]] = []

            async def read() -> None:
                async for ev in watch:
                    seen.append((ev.kind, ev.key, ev.revision))

            reader = asyncio.get_running_loop().create_task(read())
            await d.put("hosts/a", b"1", lease)
            await eventually(lambda: len(seen) == 1, 10)

            # The member the client uses first (the first listed) leads and dies: a call, the lease and the
            # watch must all move on. Then the member it moved to dies too, once the first is back.
            await c.move_etcd_leader(0)
            await c.stop_etcd_member(0, kill=True)
            await d.put("hosts/b", b"2", lease)  # fails over within the call
            assert await d.keep_alive(lease)
            await eventually(lambda: len(seen) == 2, 10)
            await c.start_etcd_member(0)
            victim = c.etcd_urls.index(d.current_url.replace("localhost", "127.0.0.1"))
            assert victim != 0
            await c.stop_etcd_member(victim, kill=True)
            for i in range(3):
                await d.put(f"hosts/c{i}", b"3", lease)
            assert await d.keep_alive(lease)
            await eventually(lambda: len(seen) == 5, 10)
            # Every event once, in revision order: the watch resumed from the revision after its last event.
            assert [k for _, k, _ in seen] == ["hosts/a", "hosts/b", "hosts/c0", "hosts/c1", "hosts/c2"]
            revisions = [r for *_, r in seen]
            assert revisions == sorted(set(revisions))
            assert d.failovers >= 1 and watch.resumes >= 1
            assert await d.lease_ttl(lease) > 0
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        finally:
            await d.close()


@dataclass
class Load:
    calls: int = 0
    completed: int = 0
    errors: list[str] = field(default_factory=list)
    longest: float = 0.0
    by_worker: dict[str, int] = field(default_factory=dict)
    unanswered: int = 0  # requests that found no responder or no ack: the client tried the other instance


async def _caller(client: Any, load: Load, stop: asyncio.Event, max_calls: int) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set() and load.calls < max_calls:
        load.calls += 1
        n = load.calls
        t0 = loop.time()
        try:
            items = [item async for item in await client.round_robin({"n": 3, "seq": n})]
            assert [i["i"] for i in items] == [0, 1, 2] and {i["seq"] for i in items} == {n}, items
            load.completed += 1
            load.by_worker[items[0]["worker"]] = load.by_worker.get(items[0]["worker"], 0) + 1
        except Exception as exc:
            load.errors.append(f"{type(exc).__name__}: {exc}")
        load.longest = max(load.longest, loop.time() - t0)
        await asyncio.sleep(0.005)


async def test_losing_the_etcd_leader_then_a_nats_node_loses_no_call_and_no_registration() -> None:
    ttl = 3.0
    async with asyncio.timeout(100), LocalCluster(etcd_members=3, nats_nodes=3) as c:
        runtimes: list[DistributedRuntime] = []
        try:
            by_name = ",".join(f"http://localhost:{p}" for p in c.etcd_ports)

            async def make(name: str) -> DistributedRuntime:
                # worker0 names the etcd members by host name, the others by IP address.
                rt = await DistributedRuntime.create(etcd_endpoints=by_name if name == "worker0" else c.etcd_endpoints,
                                                     nats_server=c.nats_server, lease_ttl=ttl, name=name)
                runtimes.append(rt)
                return rt

            workers = [await make(f"worker{i}") for i in range(2)]
            for w in workers:
                async def generate(request: Any, _name: str = w.name) -> AsyncIterator[dict]:
                    for i in range(request["n"]):
                        yield {"i": i, "seq": request["seq"], "worker": _name}

                await w.endpoint(REF).endpoint_builder().handler(generate).start()
            caller = await make("caller")
            client = await caller.endpoint(REF).client()
            await eventually(lambda: len(client.instance_ids()) == 2, 15)
            registered = sorted(w.primary_lease_id for w in workers)
            keepalives = [w.keepalives for w in workers]

            load = Load()
            messaging = caller.backend.messaging
            plain_request = messaging.request

            async def counted_request(subject: str, data: bytes, timeout: float, **options: Any) -> Any:
                try:
                    return await plain_request(subject, data, timeout, **options)
                except (NoRespondersError, BackendTimeoutError):
                    load.unanswered += 1
                    raise

            messaging.request = counted_request  # type: ignore[method-assign]
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()
            callers = [loop.create_task(_caller(client, load, stop, 20_000)) for _ in range(4)]
            listed: list[list[int]] = []

            async def watch_listing() -> None:
                while not stop.is_set():
                    listed.append(client.instance_ids())
                    await asyncio.sleep(0.05)

            lister = loop.create_task(watch_listing())
            try:
                # Phase 1: load on a healthy cluster. Phase 2: the etcd leader dies (SIGKILL).
                await eventually(lambda: load.completed >= 100, 20)
                # The leader is made the member the runtimes talk to, so that killing it also takes the member
                # their leases, the caller's watch and their calls use.
                leader = 0  # every runtime starts on the first member listed
                await c.move_etcd_leader(leader)
                await c.stop_etcd_member(leader, kill=True)
                mark = load.completed
                await eventually(lambda: load.completed >= mark + 300, 20)
                ka_after_etcd = [w.keepalives for w in workers]
                await eventually(lambda: all(w.keepalives > k for w, k in zip(workers, ka_after_etcd, strict=True)), 2 * ttl)
                # Phase 3: the NATS node worker0 is connected to dies (SIGKILL); load goes on.
                url = workers[0].backend.messaging.client.connected_url
                assert url is not None
                victim = c.nats_ports.index(url.port)
                await c.stop_nats_node(victim, kill=True)
                mark, served = load.completed, dict(load.by_worker)
                # Both workers serve again (the client's short skip of a silent instance has run out).
                await eventually(lambda: load.completed >= mark + 300
                                 and all(load.by_worker.get(w.name, 0) > served.get(w.name, 0) for w in workers), 30)
            finally:
                stop.set()
                await asyncio.gather(*callers, lister)
            await eventually(lambda: all(rt.backend.messaging.connected for rt in runtimes), 10)

            assert load.errors == [], load.errors[:5]
            assert load.completed == load.calls
            # No registration lost: both instances listed all along, under the leases they started with.
            assert listed and all(ids == registered for ids in listed), [i for i in listed if i != registered][:3]
            assert sorted(w.primary_lease_id for w in workers) == registered
            assert all(w.lease_alive for w in workers)
            etcd_failovers = sum(rt.backend.discovery.failovers for rt in runtimes)
            nats_reconnects = sum(rt.backend.messaging.reconnects for rt in runtimes)
            settling = sum(rt.backend.messaging.no_responder_retries for rt in runtimes)
            resumes = sum(w._watch.resumes for w in caller.registry.watchers.values() if w._watch is not None)
            print(f"\nclustered load, 4 callers x 2 workers, etcd leader (member {leader}) then NATS node {victim} "
                  f"killed: {load.calls} calls, {load.completed} completed, {len(load.errors)} errors, "
                  f"per worker {load.by_worker}; {load.unanswered} unanswered requests retried on the other "
                  f"instance, {settling} no-responders retried while NATS interest settled; etcd failovers "
                  f"{etcd_failovers}, watch resumes {resumes}, NATS reconnects {nats_reconnects}; longest call "
                  f"{load.longest * 1000:.0f} ms; keep-alives since the start "
                  f"{[w.keepalives - k for w, k in zip(workers, keepalives, strict=True)]}")
            assert nats_reconnects >= 1 and workers[0].backend.messaging.reconnects >= 1
            assert workers[0].backend.discovery.failovers >= 1 and etcd_failovers >= 1
            assert resumes >= 1  # the caller's watch was on the dead member too, and picked up where it was
            for w in workers:
                assert await caller.backend.discovery.lease_ttl(w.primary_lease_id) > 0
        finally:
            for rt in reversed(runtimes):
                await rt.shutdown()
