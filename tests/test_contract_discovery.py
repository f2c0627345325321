"""Discovery contract: etcd semantics the runtime relies on, identical on every backend."""

from __future__ import annotations

import asyncio

import pytest

from dynamo_nb.errors import LeaseExpiredError

pytestmark = pytest.mark.timeout(30)


async def next_events(watch, n: int, timeout: float = 5.0) -> list:
    events = []
    iterator = watch.__aiter__()
    for _ in range(n):
        events.append(await asyncio.wait_for(iterator.__anext__(), timeout))
    return events


async def test_put_get_prefix_and_revisions(connect):
    d = (await connect()).discovery
    r1 = await d.put("t/a/1", b"one")
    r2 = await d.put("t/a/2", b"two")
    await d.put("t/b/1", b"other")
    assert r2 > r1
    rev, kvs = await d.get_prefix("t/a/")
    assert [(kv.key, kv.value) for kv in kvs] == [("t/a/1", b"one"), ("t/a/2", b"two")]
    assert rev >= r2
    assert kvs[0].create_revision == r1 and kvs[0].version == 1
    r3 = await d.put("t/a/1", b"uno")
    _, kvs = await d.get_prefix("t/a/1")
    assert kvs[0].value == b"uno" and kvs[0].version == 2 and kvs[0].mod_revision == r3
    assert kvs[0].create_revision == r1


async def test_create_is_create_only(connect):
    d = (await connect()).discovery
    assert await d.create("t/c", b"first") is True
    assert await d.create("t/c", b"second") is False
    _, kvs = await d.get_prefix("t/c")
    assert kvs[0].value == b"first"


async def test_delete(connect):
    d = (await connect()).discovery
    await d.put("t/d", b"x")
    assert await d.delete("t/d") == 1
    assert await d.delete("t/d") == 0
    assert (await d.get_prefix("t/d"))[1] == []


async def test_lease_revoke_deletes_its_keys_and_watchers_see_it(connect):
    d = (await connect()).discovery
    lease = await d.grant_lease(10)
    await d.put("t/l/1", b"a", lease)
    await d.put("t/l/2", b"b", lease)
    await d.put("t/l/3", b"c")
    rev, kvs = await d.get_prefix("t/l/")
    assert {kv.key: kv.lease for kv in kvs} == {"t/l/1": lease, "t/l/2": lease, "t/l/3": 0}
    watch = await d.watch_prefix("t/l/", rev + 1)
    await d.revoke_lease(lease)
    events = await next_events(watch, 2)
    assert sorted((e.kind, e.key) for e in events) == [("delete", "t/l/1"), ("delete", "t/l/2")]
    assert [kv.key for kv in (await d.get_prefix("t/l/"))[1]] == ["t/l/3"]
    assert await d.keep_alive(lease) is False
    await watch.cancel()


async def test_put_on_a_missing_lease_fails(connect):
    d = (await connect()).discovery
    lease = await d.grant_lease(10)
    await d.revoke_lease(lease)
    with pytest.raises(LeaseExpiredError):
        await d.put("t/x", b"x", lease)


async def test_lease_expires_without_keepalive_and_watch_sees_delete(connect):
    d = (await connect()).discovery
    lease = await d.grant_lease(1)
    await d.put("t/e/k", b"v", lease)
    rev, _ = await d.get_prefix("t/e/")
    watch = await d.watch_prefix("t/e/", rev + 1)
    [event] = await next_events(watch, 1, timeout=5.0)
    assert (event.kind, event.key) == ("delete", "t/e/k")
    assert await d.keep_alive(lease) is False
    await watch.cancel()


async def test_keepalive_keeps_a_lease(connect):
    d = (await connect()).discovery
    lease = await d.grant_lease(1)
    await d.put("t/k/k", b"v", lease)
    for _ in range(6):
        await asyncio.sleep(0.3)
        assert await d.keep_alive(lease) is True
    assert [kv.key for kv in (await d.get_prefix("t/k/"))[1]] == ["t/k/k"]


async def test_watch_from_revision_replays_and_follows(connect):
    a = (await connect()).discovery
    b = (await connect()).discovery
    r1 = await a.put("t/w/1", b"1")
    await a.put("t/w/2", b"2")
    watch = await b.watch_prefix("t/w/", r1)
    await a.delete("t/w/1")
    await a.put("t/other", b"not under the prefix")
    await a.put("t/w/3", b"3")
    events = await next_events(watch, 4)
    assert [(e.kind, e.key, e.value) for e in events] == [
        ("put", "t/w/1", b"1"), ("put", "t/w/2", b"2"), ("delete", "t/w/1", b""), ("put", "t/w/3", b"3")]
    assert [e.revision for e in events] == sorted(e.revision for e in events)
    await watch.cancel()


async def test_cancelled_watch_ends_iteration(connect):
    d = (await connect()).discovery
    rev, _ = await d.get_prefix("t/z/")
    watch = await d.watch_prefix("t/z/", rev + 1)

    async def drain():
        return [e async for e in watch]

    task = asyncio.create_task(drain())
    await asyncio.sleep(0.05)
    await watch.cancel()
    assert await asyncio.wait_for(task, 5) == []


async def test_connections_share_one_store(connect):
    a = (await connect()).discovery
    b = (await connect()).discovery
    await a.put("t/s", b"from a")
    assert (await b.get_prefix("t/s"))[1][0].value == b"from a"


async def test_lease_time_left_counts_down_from_the_ttl_and_is_none_once_gone(connect):
    a = (await connect()).discovery
    b = (await connect()).discovery
    lease = await a.grant_lease(10)
    left = await b.lease_time_left(lease)  # another connection sees the same lease
    assert left is not None and 8 <= left <= 10
    assert await a.keep_alive(lease) is True
    left = await a.lease_time_left(lease)
    assert left is not None and 8 <= left <= 10
    await a.revoke_lease(lease)
    assert await a.lease_time_left(lease) is None
    assert await b.lease_time_left(lease) is None


async def test_lease_time_left_of_an_expired_lease_is_none(connect):
    d = (await connect()).discovery
    lease = await d.grant_lease(1)
    await d.put("t/left/k", b"v", lease)
    rev, _ = await d.get_prefix("t/left/")
    watch = await d.watch_prefix("t/left/", rev + 1)
    [event] = await next_events(watch, 1, timeout=5.0)  # the lease ran out and took its key
    assert event.kind == "delete"
    assert await d.lease_time_left(lease) is None
    await watch.cancel()
