"""One bad value, one forged message or a burst of garbage cannot break discovery or a worker (issue 15).

Each scenario runs on both backends (embedded and real servers), through the runtime's own interfaces, with the
bad bytes written the way a careless operator or an adversary would: straight into etcd, straight onto NATS.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, AsyncIterator

from dynamo_nb import ratelog
from dynamo_nb.transport.frames import encode_frame

from support import eventually

NS, COMP, EP = "hardening", "Worker", "generate"
REF = f"{NS}.{COMP}.{EP}"


async def echo(request: Any) -> AsyncIterator[Any]:
    yield {"echo": request}


async def serve_and_call(make_runtime: Any) -> tuple[Any, Any, Any]:
    worker = await make_runtime()
    served = await worker.endpoint(REF).endpoint_builder().handler(echo).start()
    caller = await make_runtime()
    return worker, served, caller


def request_header(address: str = "127.0.0.1:1") -> bytes:
    info = json.dumps({"address": address, "subject": "x", "context": "r", "stream_type": "response"})
    return json.dumps({"id": "r", "request_type": "single_in", "response_type": "many_out",
                       "connection_info": {"transport": "tcp_server", "info": info}}).encode()


def bad_instance_values(prefix: str, live_id: int) -> dict[str, bytes]:
    """Keys and values that must each be skipped, never raised, never allowed to hide the live instance."""

    def value(lease: Any, subject: Any = "hardening|Worker.generate-1", endpoint: str = EP) -> bytes:
        doc = {"component": COMP, "endpoint": endpoint, "namespace": NS, "lease_id": lease,
               "transport": {"nats_tcp": subject}}
        return json.dumps(doc).encode()

    deep = b'{"lease_id": 7, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    return {
        f"{prefix}/{EP}:1": value(float("inf")),                            # "lease_id": Infinity
        f"{prefix}/{EP}:7": deep,                                           # nesting past the recursion limit
        f"{prefix}/{EP}:abc": value(live_id, "nobody.listens.here"),        # a stale key claiming the live id
        f"{prefix}/{EP}:{live_id:X}": value(live_id, "nobody.listens.2"),  # the live id, in upper-case hex
        f"{prefix}/{EP}:3": value(3, "has a space"),
        f"{prefix}/{EP}:4": value(4, 12345),
        f"{prefix}/{EP}:5": value(5, "$SRV.PING"),
        f"{prefix}/{EP}:6": value(6, "hardening.*"),
        f"{prefix}/{EP}:8": value(8, "a..b"),
        f"{prefix}/{EP}:9": value(True),
        f"{prefix}/{EP}:a": value(2**64),
        f"{prefix}/{EP}:b": b"\xff\xfe not json",
        f"{prefix}/{EP}:c": b"[1, 2]",
        f"{prefix}/other:d": value(0xd),                                    # value names another endpoint
    }


async def test_bad_instance_values_are_skipped_and_never_hide_the_live_instance(make_runtime):
    worker, served, caller = await serve_and_call(make_runtime)
    prefix = worker.endpoint(REF).component.etcd_path()
    bad = bad_instance_values(prefix, served.lease_id)
    kv = caller.etcd_client()
    items = list(bad.items())
    for key, value in items[: len(items) // 2]:  # some already there when the client starts ...
        await kv.kv_put(key, value)
    client = await caller.endpoint(REF).client()  # ... which must not raise
    for key, value in items[len(items) // 2:]:  # ... and some arriving through the watch
        await kv.kv_put(key, value)
    await eventually(lambda: client.watcher.rejected >= len(bad), timeout=10)
    assert client.instance_ids() == [served.lease_id]
    for n in range(6):
        assert await (await client.round_robin(n)).collect() == [{"echo": n}]
    # A second client of the same component, started after every bad value is in place.
    other = await (await make_runtime()).endpoint(REF).client()
    assert other.instance_ids() == [served.lease_id]
    assert other.watcher.rejected == len(bad)


async def test_a_valid_key_overwritten_with_garbage_drops_that_instance(make_runtime):
    caller = await make_runtime()
    endpoint = caller.endpoint(REF)
    key = endpoint.instance_key(0xabc)  # written by hand: no worker restores it
    kv = caller.etcd_client()
    await kv.kv_put(key, caller.profile.instance_value(NS, COMP, EP, 0xabc))
    client = await endpoint.client()
    await client.wait_for_instances(timeout=10)
    assert client.instance_ids() == [0xabc]
    await kv.kv_put(key, b'{"lease_id": Infinity}')
    await eventually(lambda: client.instance_ids() == [], timeout=10)
    assert client.watcher.rejected == 1


async def test_a_deeply_nested_request_is_refused_with_an_answer(make_runtime):
    worker, served, caller = await serve_and_call(make_runtime)
    messaging = caller.backend.messaging
    for payload in (encode_frame(request_header(), b"[" * 100_000),
                    encode_frame(b'{"id": ' + b"[" * 100_000, b"{}")):
        reply = await messaging.request(served.subject, payload, timeout=5)
        assert b"malformed request" in reply.data and b"deep" in reply.data
    client = await caller.endpoint(REF).client()
    await client.wait_for_instances(timeout=10)
    assert await (await client.generate("still here")).collect() == [{"echo": "still here"}]


async def test_repeated_garbage_logs_one_line_per_interval_with_a_count(make_runtime, caplog):
    ratelog.reset()
    worker, served, caller = await serve_and_call(make_runtime)
    messaging = caller.backend.messaging
    burst = 300
    with caplog.at_level(logging.WARNING, logger="dynamo_nb"):
        for n in range(burst):
            await messaging.publish(served.subject, b"garbage %d" % n)
        await eventually(lambda: served.stats.num_errors >= burst, timeout=20)
    lines = [r for r in caplog.records if "malformed request" in r.getMessage()]
    assert 1 <= len(lines) <= 2, [r.getMessage() for r in lines]
    assert ratelog.counts("dynamo_nb.core.served") == {f"malformed:{served.subject}": burst}
    client = await caller.endpoint(REF).client()
    await client.wait_for_instances(timeout=10)
    assert await (await client.generate("after")).collect() == [{"echo": "after"}]


def test_the_rate_limited_logger_reports_what_it_held_back(caplog):
    ratelog.reset()
    log = logging.getLogger("dynamo_nb.test_ratelog")
    now = [0.0]
    with caplog.at_level(logging.WARNING, logger="dynamo_nb.test_ratelog"):
        logged = [ratelog.warn_limited(log, "k", "bad %d", n, interval=10, clock=lambda: now[0]) for n in range(50)]
        now[0] = 10.0
        logged.append(ratelog.warn_limited(log, "k", "bad %d", 50, interval=10, clock=lambda: now[0]))
    assert logged.count(True) == 2 and logged[0] and logged[-1]
    assert [r.getMessage() for r in caplog.records] == ["bad 0", "bad 50 (49 more like this in the last 10 s)"]
    assert ratelog.counts("dynamo_nb.test_ratelog") == {"k": 51}


async def test_a_worker_whose_key_vanished_registers_again_and_is_never_healthy_unreachable(make_runtime):
    from dynamo_nb import State
    from dynamo_nb.errors import BackendUnavailableError

    worker, served, caller = await serve_and_call(make_runtime)
    await served.wait_for_state(State.HEALTHY, timeout=10)
    client = await caller.endpoint(REF).client()
    await client.wait_for_instances(timeout=10)

    # Deleted while the lease lives: the health check puts it back.
    await caller.etcd_client().kv_delete(served.key)
    await eventually(lambda: caller.recorder.select("watch.delete", key=served.key), timeout=10)
    # the next health check puts it back (waiting on the client alone could pass before it saw the delete)
    await eventually(lambda: worker.recorder.select("kv.create", replaces=served.key), timeout=10)
    await eventually(lambda: client.instance_ids() == [served.lease_id], timeout=10)
    assert await (await client.generate("back")).collect() == [{"echo": "back"}]

    # Deleted, and putting it back fails (etcd refuses writes): the worker leaves Healthy and says why.
    discovery = worker.backend.discovery
    real_put = discovery.put

    async def refused(*args: Any, **kwargs: Any) -> int:
        raise BackendUnavailableError("etcd", "test://", "writes refused")

    discovery.put = refused
    try:
        await caller.etcd_client().kv_delete(served.key)
        await served.wait_for_state(State.RUNNING, timeout=10)
        assert "instance key" in served.health_reason and "writes refused" in served.health_reason
        reasons = [r.detail.get("reason") for r in worker.recorder.select("lifecycle")]
        assert any(reason and "writes refused" in reason for reason in reasons)
        assert client.instance_ids() == []
        for _ in range(5):  # it stays out of Healthy while it cannot be reached
            await served.wait_for_state(State.RUNNING, timeout=10)
            assert served.state is State.RUNNING
            await asyncio.sleep(worker.health_check_interval)
    finally:
        discovery.put = real_put
    await served.wait_for_state(State.HEALTHY, timeout=10)
    await eventually(lambda: client.instance_ids() == [served.lease_id], timeout=10)


async def test_a_start_whose_subscribe_fails_leaves_no_instance_key(make_runtime):
    worker = await make_runtime()
    plane = worker.backend.request_plane(worker.profile.serve_plane)

    async def refuse(route: str, cb: Any) -> Any:
        await asyncio.sleep(0.05)  # after the key was written, in parallel
        raise RuntimeError("subscribe refused")

    plane.serve = refuse  # type: ignore[method-assign]
    endpoint = worker.endpoint(REF)
    try:
        await endpoint.endpoint_builder().handler(echo).start()
    except RuntimeError as exc:
        assert "subscribe refused" in str(exc)
    else:
        raise AssertionError("start should have failed")
    kvs = await worker.etcd_client().kv_get_prefix(endpoint.component.etcd_path())
    assert kvs == [], "a listed instance that cannot answer"


async def test_a_failing_subscription_callback_logs_a_count_not_a_traceback_per_message(make_runtime, caplog):
    runtime = await make_runtime()
    messaging = runtime.backend.messaging
    ratelog.reset()
    seen = 0

    async def broken(msg: Any) -> None:
        nonlocal seen
        seen += 1
        raise ValueError("bad")

    await messaging.subscribe("hardening.broken", broken)
    await messaging.flush()
    with caplog.at_level(logging.WARNING):
        for _ in range(50):
            await messaging.publish("hardening.broken", b"x")
        await eventually(lambda: seen == 50, timeout=10)
    lines = [r for r in caplog.records if "callback" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert sum(n for key, n in ratelog.counts().items() if "callback:hardening.broken" in key) == 50
