"""The object model as a user drives it (SPEC §1–6), on every backend."""

from __future__ import annotations

import asyncio
import json

import pytest

from dynamo_nb import (
    EndpointError,
    InstanceNotFoundError,
    InvalidNameError,
    NoInstancesError,
    RegistrationError,
    RemoteError,
    RuntimeClosedError,
    State,
    StreamIncompleteError,
    WaitTimeoutError,
)
from support import eventually

pytestmark = pytest.mark.timeout(60)


async def tokens(request):
    for tok in request["prompt"].split():
        yield {"token": tok}


# -- object model ------------------------------------------------------------------------------------------

async def test_handles_and_derived_names(runtime):
    ns = runtime.namespace("dynamo")
    comp = ns.component("processor")
    ep = comp.endpoint("generate")
    assert ns == runtime.namespace("dynamo") and hash(ns) == hash(runtime.namespace("dynamo"))
    assert ep == runtime.namespace("dynamo").component("processor").endpoint("generate")
    assert ep != comp.endpoint("other")
    assert comp.etcd_path() == "dynamo/components/processor"
    assert comp.service_name() == "dynamo|processor"
    assert comp.path() == "dynamo/processor"
    ref = runtime.endpoint("dynamo.Processor.chat/completions")
    assert (ref.namespace.name, ref.component.name, ref.name) == ("dynamo", "Processor", "chat/completions")
    assert ref.reference() == "dynamo.Processor.chat/completions"


async def test_bad_names_raise_before_anything_happens(runtime):
    with pytest.raises(InvalidNameError, match="namespace"):
        runtime.namespace("Production")
    with pytest.raises(InvalidNameError, match="component"):
        runtime.namespace("ok").component("bad.name")
    with pytest.raises(InvalidNameError, match="endpoint"):
        runtime.namespace("ok").component("ok").endpoint("a b")
    assert await runtime.etcd_client().kv_get_prefix("") == []


# -- serving and registration ----------------------------------------------------------------------------

async def test_start_registers_key_value_and_subject(runtime):
    ep = runtime.namespace("dynamo").component("processor").endpoint("generate")
    served = await ep.endpoint_builder().handler(tokens).start()
    lease = runtime.primary_lease_id
    assert served.lease_id == served.instance_id == lease
    assert served.state in (State.RUNNING, State.HEALTHY)
    assert served.key == f"dynamo/components/processor/generate:{lease:x}"
    assert served.subject == f"dynamo|processor.generate-{lease:x}"
    [kv] = await runtime.etcd_client().kv_get_prefix("dynamo/components/processor/")
    assert kv["key"] == served.key and kv["lease"] == lease
    assert json.loads(kv["value"]) == {
        "component": "processor", "endpoint": "generate", "namespace": "dynamo", "lease_id": lease,
        "transport": {"nats_tcp": f"dynamo|processor.generate-{lease:x}"},
    }
    assert list(json.loads(kv["value"])) == ["component", "endpoint", "namespace", "lease_id", "transport"]


async def test_second_instance_of_same_endpoint_in_one_runtime_is_an_error(runtime):
    ep = runtime.namespace("dynamo").component("processor").endpoint("generate")
    served = await ep.endpoint_builder().handler(tokens).start()
    with pytest.raises(RegistrationError, match="already served"):
        await ep.endpoint_builder().handler(tokens).start()
    assert served.state in (State.RUNNING, State.HEALTHY)
    assert len(await runtime.etcd_client().kv_get_prefix("dynamo/")) == 1


async def test_builder_rejects_non_handlers(runtime):
    ep = runtime.namespace("dynamo").component("processor").endpoint("generate")

    def sync_handler(request):
        return request

    with pytest.raises(TypeError, match="async generator"):
        ep.endpoint_builder().handler(sync_handler)
    with pytest.raises(TypeError, match="no handler"):
        await ep.endpoint_builder().start()


async def test_lifecycle_history_reaches_healthy(runtime):
    ep = runtime.namespace("dynamo").component("worker").endpoint("generate")
    served = await ep.endpoint_builder().handler(tokens).start()
    seen = []
    served.on_transition(lambda state, ts: seen.append(state))
    await served.wait_for_state(State.HEALTHY, timeout=5)
    states = [s for s, _ in served.history]
    assert states[:4] == [State.CREATED, State.REGISTERED, State.RUNNING, State.HEALTHY]
    times = [t for _, t in served.history]
    assert times == sorted(times)
    await served.stop()
    assert [s for s, _ in served.history][-2:] == [State.STOPPING, State.DEREGISTERED]
    assert seen[-2:] == [State.STOPPING, State.DEREGISTERED]
    assert served.state == State.DEREGISTERED


async def test_serve_endpoint_returns_only_when_stopped(runtime):
    ep = runtime.namespace("dynamo").component("worker").endpoint("generate")
    task = asyncio.create_task(ep.serve_endpoint(tokens))
    await eventually(lambda: ep.served())
    await asyncio.sleep(0.05)
    assert not task.done()
    await ep.served()[0].stop()
    await asyncio.wait_for(task, 5)


async def test_kv_get_prefix_matches_dynamo_bindings_shape(runtime):
    client = runtime.etcd_client()
    await client.kv_create("custom/key", b"v")
    with pytest.raises(RegistrationError):
        await client.kv_create("custom/key", b"again")
    [kv] = await client.kv_get_prefix("custom/")
    assert set(kv) == {"key", "value", "create_revision", "mod_revision", "version", "lease"}
    assert kv["value"] == b"v" and isinstance(kv["value"], bytes)


# -- clients ------------------------------------------------------------------------------------------------

async def test_context_goes_only_to_handlers_that_ask_for_it(make_runtime):
    worker, caller = await make_runtime(), await make_runtime()
    seen = []

    def tagged(tag):
        async def gen(request, _tag=tag):  # the closure idiom: the default must stay
            yield {"tag": _tag}
        return gen

    async def named(request, context=None):  # named ``context``: passed although it has a default
        yield {"context": type(context).__name__}

    async def positional(request, ctx):  # any name, no default: passed
        yield {"context": type(ctx).__name__}

    class Method:
        async def generate(self, request, tag="method"):
            yield {"tag": tag}

    handlers = {"tagged": tagged("blue"), "named": named, "positional": positional, "method": Method().generate}
    for name, handler in handlers.items():
        await worker.endpoint(f"dynamo.ctx.{name}").endpoint_builder().handler(handler).start()
    for name in handlers:
        client = await caller.endpoint(f"dynamo.ctx.{name}").client()
        await client.wait_for_instances(timeout=5)
        seen.append((name, await (await client.generate({})).collect()))
    assert seen == [("tagged", [{"tag": "blue"}]), ("named", [{"context": "RequestContext"}]),
                    ("positional", [{"context": "RequestContext"}]), ("method", [{"tag": "method"}])]


def test_handlers_that_cannot_be_called_with_request_and_context_are_refused_early(runtime):
    async def three(request, context, extra):
        yield extra

    async def none():
        yield 1

    builder = runtime.endpoint("dynamo.ctx.bad").endpoint_builder()
    for handler in (three, none):
        with pytest.raises(TypeError, match=r"must take \(request\) or \(request, context\)"):
            builder.handler(handler)


async def test_round_trip_and_routing_modes(make_runtime):
    frontend = await make_runtime()
    workers = [await make_runtime() for _ in range(2)]
    served = []
    for i, w in enumerate(workers):
        async def handler(request, context, i=i):
            yield {"worker": i, "request_id": context.request_id, "echo": request}
        served.append(await w.namespace("dynamo").component("backend").endpoint("generate")
                      .endpoint_builder().handler(handler).start())
    client = await frontend.endpoint("dynamo.backend.generate").client()
    ids = await client.wait_for_instances(timeout=5)
    await eventually(lambda: len(client.instance_ids()) == 2)
    assert client.instance_ids() == sorted(s.instance_id for s in served)

    rr = [(await (await client.round_robin({"n": k})).collect())[0]["worker"] for k in range(4)]
    assert sorted(rr) == [0, 0, 1, 1] and rr[0] != rr[1]
    for s in served:
        [item] = await (await client.direct("hi", s.instance_id)).collect()
        assert item["worker"] == served.index(s) and item["echo"] == "hi" and item["request_id"]
    randoms = {(await (await client.random(1)).collect())[0]["worker"] for _ in range(30)}
    assert randoms == {0, 1}
    items = await (await client.generate({"x": 1})).collect()
    assert items[0]["echo"] == {"x": 1}
    assert ids


async def test_streams_every_item_in_order(make_runtime):
    worker, caller = await make_runtime(), await make_runtime()

    async def count(request):
        for i in range(request["n"]):
            yield i

    await worker.endpoint("dynamo.counter.count").endpoint_builder().handler(count).start()
    client = await caller.endpoint("dynamo.counter.count").client()
    await client.wait_for_instances(timeout=5)
    stream = await client.round_robin({"n": 500})
    assert [i async for i in stream] == list(range(500))
    assert stream.complete and stream.items == 500


async def test_plain_async_function_gives_one_response(runtime):
    async def once(request):
        return {"double": request * 2}

    await runtime.endpoint("dynamo.math.double").endpoint_builder().handler(once).start()
    client = await runtime.endpoint("dynamo.math.double").client()
    await client.wait_for_instances(timeout=5)
    assert await (await client.generate(21)).collect() == [{"double": 42}]


async def test_no_instances_is_an_immediate_error_naming_the_endpoint(runtime):
    client = await runtime.endpoint("dynamo.nobody.generate").client()
    assert client.instance_ids() == []
    loop = asyncio.get_running_loop()
    start = loop.time()
    for call in (client.round_robin, client.random, client.generate):
        with pytest.raises(NoInstancesError, match="dynamo.nobody.generate"):
            await call({})
    assert loop.time() - start < 1.0
    with pytest.raises(WaitTimeoutError, match="dynamo.nobody.generate"):
        await client.wait_for_instances(timeout=0.1)


async def test_unknown_instance_id_is_named(runtime):
    await runtime.endpoint("dynamo.w.gen").endpoint_builder().handler(tokens).start()
    client = await runtime.endpoint("dynamo.w.gen").client()
    await client.wait_for_instances(timeout=5)
    with pytest.raises(InstanceNotFoundError, match="dead"):
        await client.direct({"prompt": "x"}, 0xDEAD)


async def test_handler_error_reaches_caller_and_worker_keeps_serving(make_runtime):
    worker, caller = await make_runtime(), await make_runtime()

    async def flaky(request):
        yield "first"
        if request == "boom":
            raise KeyError("no such model: llama")
        yield "second"

    served = await worker.endpoint("dynamo.flaky.gen").endpoint_builder().handler(flaky).start()
    client = await caller.endpoint("dynamo.flaky.gen").client()
    await client.wait_for_instances(timeout=5)
    got = []
    with pytest.raises(RemoteError) as info:
        async for item in await client.generate("boom"):
            got.append(item)
    assert got == ["first"]
    assert info.value.remote_type == "KeyError" and "no such model: llama" in info.value.remote_message
    assert info.value.instance_id == served.instance_id
    assert await (await client.generate("fine")).collect() == ["first", "second"]
    assert served.stats.num_errors == 1 and served.stats.num_requests == 2


async def test_caller_stopping_early_stops_the_handler(make_runtime):
    worker, caller = await make_runtime(), await make_runtime()
    finished = asyncio.Event()
    observed = {}

    async def endless(request, context):
        i = 0
        try:
            while not context.is_stopped():
                yield i
                i += 1
                await asyncio.sleep(0.005)
        finally:
            observed["stopped"] = context.is_stopped()
            finished.set()

    served = await worker.endpoint("dynamo.endless.gen").endpoint_builder().handler(endless).start()
    client = await caller.endpoint("dynamo.endless.gen").client()
    await client.wait_for_instances(timeout=5)
    stream = await client.generate({})
    got = []
    async for item in stream:
        got.append(item)
        if len(got) == 3:
            break
    await stream.aclose()
    await asyncio.wait_for(finished.wait(), 5)
    assert got == [0, 1, 2] and observed["stopped"] is True
    await eventually(lambda: served.inflight == 0)


async def test_request_that_is_not_json_is_a_caller_error(runtime):
    await runtime.endpoint("dynamo.w.gen").endpoint_builder().handler(tokens).start()
    client = await runtime.endpoint("dynamo.w.gen").client()
    await client.wait_for_instances(timeout=5)
    with pytest.raises(TypeError, match="JSON"):
        await client.generate({"not json": object()})


async def test_item_that_is_not_json_is_a_remote_error(runtime):
    async def bad_items(request):
        yield object()

    await runtime.endpoint("dynamo.w.bad").endpoint_builder().handler(bad_items).start()
    client = await runtime.endpoint("dynamo.w.bad").client()
    await client.wait_for_instances(timeout=5)
    with pytest.raises(RemoteError, match="JSON"):
        await (await client.generate(1)).collect()


# -- registry ---------------------------------------------------------------------------------------------

async def test_registry_shares_service_and_watcher(runtime):
    comp = runtime.namespace("dynamo").component("processor")
    await comp.endpoint("generate").endpoint_builder().handler(tokens).stats_handler(lambda: {"load": 0.5}).start()
    await comp.endpoint("chat/completions").endpoint_builder().handler(tokens).start()
    await runtime.namespace("dynamo").component("worker").endpoint("generate").endpoint_builder().handler(tokens).start()
    reg = runtime.registry
    assert sorted(reg.services) == ["dynamo|processor", "dynamo|worker"]
    assert sorted(reg.services["dynamo|processor"].endpoints) == ["chat/completions", "generate"]
    assert reg.stats_handlers == {"dynamo|processor": {"generate": reg.stats_handlers["dynamo|processor"]["generate"]}}

    a = await comp.endpoint("generate").client()
    b = await comp.endpoint("chat/completions").client()
    c = await runtime.endpoint("dynamo.worker.generate").client()
    assert sorted(reg.watchers) == ["dynamo/components/processor", "dynamo/components/worker"]
    assert reg.watchers["dynamo/components/processor"].share_count == 2
    assert a.watcher is b.watcher and a.watcher is not c.watcher
    await a.close()
    assert reg.watchers["dynamo/components/processor"].share_count == 1
    await b.close()
    assert "dynamo/components/processor" not in reg.watchers
    summary = reg.summary()
    assert summary["services"]["dynamo|processor"] == ["chat/completions", "generate"]


async def test_stats_over_the_services_api(make_runtime):
    w1, w2, caller = await make_runtime(), await make_runtime(), await make_runtime()
    for i, w in enumerate((w1, w2)):
        await (w.endpoint("dynamo.processor.generate").endpoint_builder().handler(tokens)
               .stats_handler(lambda i=i: {"worker": i}).start())
    client = await caller.endpoint("dynamo.processor.generate").client()
    await eventually(lambda: len(client.instance_ids()) == 2)
    for _ in range(4):
        await (await client.round_robin({"prompt": "a b"})).collect()
    stats = await caller.namespace("dynamo").component("processor").scrape_stats(timeout=0.5)
    assert len(stats) == 2
    assert {s["name"] for s in stats} == {"dynamo_processor"}
    assert all(s["type"] == "io.nats.micro.v1.stats_response" for s in stats)
    endpoints = [e for s in stats for e in s["endpoints"]]
    assert sorted(e["data"]["worker"] for e in endpoints) == [0, 1]
    assert sum(e["num_requests"] for e in endpoints) == 4


# -- lifecycle: stop and kill ------------------------------------------------------------------------------

async def test_graceful_stop_drains_in_flight_then_revokes(make_runtime):
    worker, caller = await make_runtime(), await make_runtime()

    async def slow(request):
        for i in range(5):
            await asyncio.sleep(0.02)
            yield i

    served = await worker.endpoint("dynamo.slow.gen").endpoint_builder().handler(slow).start()
    client = await caller.endpoint("dynamo.slow.gen").client()
    await client.wait_for_instances(timeout=5)
    stream = await client.generate({})
    first = await stream.__anext__()
    await served.stop()
    rest = [i async for i in stream]
    assert [first] + rest == [0, 1, 2, 3, 4] and stream.complete
    assert await worker.etcd_client().kv_get_prefix("dynamo/") == []
    await eventually(lambda: client.instance_ids() == [])
    assert worker.recorder.select("lease.revoke")
    with pytest.raises(NoInstancesError):
        await client.generate({})


async def test_stop_drain_is_bounded(runtime):
    async def stuck(request):
        yield "started"
        await asyncio.sleep(3600)
        yield "never"

    served = await runtime.endpoint("dynamo.stuck.gen").endpoint_builder().handler(stuck).start()
    client = await runtime.endpoint("dynamo.stuck.gen").client()
    await client.wait_for_instances(timeout=5)
    stream = await client.generate({})
    assert await stream.__anext__() == "started"
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await served.stop(drain_timeout=0.2)
    assert loop.time() - t0 < 3
    with pytest.raises(StreamIncompleteError):
        await stream.__anext__()


async def test_stopping_one_of_two_endpoints_keeps_the_other(runtime):
    a = await runtime.endpoint("dynamo.comp.a").endpoint_builder().handler(tokens).start()
    b = await runtime.endpoint("dynamo.comp.b").endpoint_builder().handler(tokens).start()
    await a.stop()
    keys = [kv["key"] for kv in await runtime.etcd_client().kv_get_prefix("dynamo/")]
    assert keys == [b.key]
    assert b.state in (State.RUNNING, State.HEALTHY)
    client = await runtime.endpoint("dynamo.comp.b").client()
    await client.wait_for_instances(timeout=5)
    assert await (await client.generate({"prompt": "x"})).collect() == [{"token": "x"}]


async def test_start_after_stop_gets_a_new_lease(runtime):
    ep = runtime.endpoint("dynamo.comp.gen")
    first = await ep.endpoint_builder().handler(tokens).start()
    await first.stop()
    second = await ep.endpoint_builder().handler(tokens).start()
    assert second.lease_id != first.lease_id and second.lease_id == runtime.primary_lease_id
    assert [kv["key"] for kv in await runtime.etcd_client().kv_get_prefix("dynamo/")] == [second.key]


async def test_kill_leaves_keys_until_lease_expiry_and_clients_fail_over(make_runtime):
    caller = await make_runtime()
    doomed = await make_runtime(lease_ttl=1)
    survivor = await make_runtime()

    async def who(name):
        async def handler(request):
            yield name
        return handler

    dead = await doomed.endpoint("dynamo.pool.gen").endpoint_builder().handler(await who("doomed")).start()
    alive = await survivor.endpoint("dynamo.pool.gen").endpoint_builder().handler(await who("survivor")).start()
    client = await caller.endpoint("dynamo.pool.gen").client()
    await eventually(lambda: len(client.instance_ids()) == 2)
    await doomed.kill()
    assert dead.instance_id in client.instance_ids(), "a crash revokes nothing: the key stays until expiry"
    for _ in range(6):  # every call lands on the survivor, none fails
        assert await (await client.round_robin({})).collect() == ["survivor"]
    with pytest.raises(EndpointError):
        await client.direct({}, dead.instance_id)
    await eventually(lambda: client.instance_ids() == [alive.instance_id], timeout=6)
    with pytest.raises(RuntimeClosedError):
        await doomed.endpoint("dynamo.pool.gen").client()


async def test_right_after_a_kill_the_error_agrees_with_instance_ids(make_runtime):
    caller = await make_runtime()
    worker = await make_runtime(lease_ttl=30)  # the key outlives the worker for the whole test
    served = await worker.endpoint("dynamo.gone.gen").endpoint_builder().handler(tokens).start()
    client = await caller.endpoint("dynamo.gone.gen").client()
    await client.wait_for_instances(timeout=5)
    await worker.kill()
    for _attempt in range(2):  # the second call finds the instance marked silent, and still tries it
        with pytest.raises(NoInstancesError) as info:
            await client.generate({"prompt": "x"})
        error, message = info.value, str(info.value)
        assert client.instance_ids() == [served.instance_id], "a crash revokes nothing: the key stays"
        assert error.registered == client.instance_ids() and error.tried == [served.instance_id]
        assert f"{served.instance_id:x} did not answer" in message and "until its lease expires" in message
        assert "are live" not in message and "dynamo.gone.gen" in message
    with pytest.raises(NoInstancesError) as nobody:  # nothing registered at all: the other case
        await (await caller.endpoint("dynamo.nobody.gen").client()).generate({})
    assert nobody.value.registered == nobody.value.tried == []
    assert "none is registered" in str(nobody.value)


async def test_worker_killed_mid_stream_gives_incomplete_error(make_runtime):
    worker, caller = await make_runtime(), await make_runtime()
    started = asyncio.Event()

    async def long(request):
        yield 0
        started.set()
        await asyncio.sleep(3600)
        yield 1

    await worker.endpoint("dynamo.long.gen").endpoint_builder().handler(long).start()
    client = await caller.endpoint("dynamo.long.gen").client()
    await client.wait_for_instances(timeout=5)
    stream = await client.generate({})
    assert await stream.__anext__() == 0
    await asyncio.wait_for(started.wait(), 5)
    await worker.kill()
    with pytest.raises(StreamIncompleteError, match="ended before"):
        await asyncio.wait_for(stream.__anext__(), 10)


async def test_shutdown_revokes_and_refuses_more_work(make_runtime):
    worker, caller = await make_runtime(), await make_runtime()
    served = await worker.endpoint("dynamo.w.gen").endpoint_builder().handler(tokens).start()
    client = await caller.endpoint("dynamo.w.gen").client()
    await client.wait_for_instances(timeout=5)
    await worker.shutdown()
    assert served.state == State.DEREGISTERED
    await eventually(lambda: client.instance_ids() == [])
    with pytest.raises(RuntimeClosedError):
        await worker.endpoint("dynamo.w.gen").endpoint_builder().handler(tokens).start()
    await worker.shutdown()  # twice is harmless


# -- event plane ------------------------------------------------------------------------------------------

async def test_component_events_with_namespace_isolation(make_runtime):
    a, b = await make_runtime(), await make_runtime()
    sub = await b.namespace("dynamo").component("a").subscribe("kv_events")
    ns_sub = await b.namespace("dynamo").subscribe("kv_events")
    other = await b.namespace("other").component("a").subscribe("kv_events")
    assert sub.subject == "namespace.dynamo.component.a.kv_events"
    assert ns_sub.subject == "namespace.dynamo.kv_events"
    await a.namespace("dynamo").component("a").publish("kv_events", {"blocks": 3})
    await a.namespace("dynamo").publish("kv_events", {"scope": "namespace"})
    await a.namespace("other").component("b").publish("kv_events", {"blocks": 99})
    assert await sub.get(timeout=5) == {"blocks": 3}
    assert await ns_sub.get(timeout=5) == {"scope": "namespace"}
    await asyncio.sleep(0.1)
    assert other.received == 0 and sub.received == 1 and ns_sub.received == 1
    await sub.close()
    await a.namespace("dynamo").component("a").publish("kv_events", {"blocks": 4})
    await asyncio.sleep(0.1)
    assert sub.received == 1
    assert [x async for x in sub] == []  # a closed subscription ends iteration


async def test_endpoint_events_in_dynamos_envelope(make_runtime):
    a, b = await make_runtime(profile="dynamo"), await make_runtime(profile="dynamo")
    sub = await b.endpoint("demo.backend.generate").subscribe("kv_metrics")
    assert sub.subject == "namespace.demo.component.backend.endpoint.generate.kv_metrics"
    for blocks in (3, 4):
        await a.endpoint("demo.backend.generate").publish("kv_metrics", {"worker_id": a.primary_lease_id,
                                                                          "kv_used_blocks": blocks})
    assert await sub.get(timeout=5) == {"worker_id": a.primary_lease_id, "kv_used_blocks": 3}
    second = await asyncio.wait_for(anext(sub.events()), 5)
    assert second.data["kv_used_blocks"] == 4 and second.sequence == 1 and second.topic == "kv_metrics"
    # the publisher is announced on a's lease, as a real Dynamo publisher does, and leaves with it
    _, found = await b.backend.discovery.get_prefix("v1/event_channels/namespace/demo/")
    assert [kv.key.rpartition("/")[2] for kv in found] == [f"{second.publisher_id:x}"]
    assert found[0].lease == a.primary_lease_id
    await a.shutdown()  # revokes the lease: etcd deletes the channel with it
    _, found = await b.backend.discovery.get_prefix("v1/event_channels/")
    assert found == []
    await sub.close()


async def test_waiting_for_an_event_that_never_comes_is_a_wait_timeout(runtime):
    sub = await runtime.namespace("dynamo").component("quiet").subscribe("kv_events")
    with pytest.raises(WaitTimeoutError, match="namespace.dynamo.component.quiet.kv_events"):
        await sub.get(timeout=0.05)
    await sub.close()


async def test_async_for_over_subscribe(make_runtime):
    a, b = await make_runtime(), await make_runtime()
    received = []
    ready = asyncio.Event()

    async def listen():
        async with b.namespace("dynamo").component("router").subscribe("load") as sub:
            ready.set()
            async for event in sub:
                received.append(event)
                if len(received) == 3:
                    return

    task = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 5)
    for i in range(3):
        await a.namespace("dynamo").component("router").publish("load", i)
    await asyncio.wait_for(task, 5)
    assert received == [0, 1, 2]


async def test_event_names_and_data_are_checked(runtime):
    comp = runtime.namespace("dynamo").component("a")
    with pytest.raises(InvalidNameError):
        await comp.publish("kv.events", {})
    with pytest.raises(TypeError, match="JSON"):
        await comp.publish("kv_events", {1, 2})


async def test_instances_are_isolated_by_namespace(make_runtime):
    worker, caller = await make_runtime(), await make_runtime()
    await worker.endpoint("production.worker.generate").endpoint_builder().handler(tokens).start()
    dev = await caller.endpoint("development.worker.generate").client()
    prod = await caller.endpoint("production.worker.generate").client()
    await prod.wait_for_instances(timeout=5)
    assert dev.instance_ids() == []


# -- recording -------------------------------------------------------------------------------------------

async def test_recorder_keeps_the_startup_sequence(runtime):
    await runtime.endpoint("dynamo.processor.generate").endpoint_builder().handler(tokens).start()
    kinds = [r.kind for r in runtime.recorder]
    for expected in ("lease.grant", "start", "registry.service", "service.endpoint", "push.endpoint",
                     "kv.create", "listen", "ready"):
        assert expected in kinds
    assert kinds.index("lease.grant") < kinds.index("start") < kinds.index("kv.create") < kinds.index("ready")


async def test_dropping_a_stream_without_closing_it_stops_the_handler(make_runtime):
    worker, caller = await make_runtime(), await make_runtime()
    finished = asyncio.Event()

    async def endless(request):
        try:
            i = 0
            while True:
                yield i
                i += 1
                await asyncio.sleep(0.005)
        finally:
            finished.set()

    served = await worker.endpoint("dynamo.endless.gen").endpoint_builder().handler(endless).start()
    client = await caller.endpoint("dynamo.endless.gen").client()
    await client.wait_for_instances(timeout=5)
    async for item in await client.generate({}):
        if item == 2:
            break  # no aclose(): the stream object is simply dropped
    await asyncio.wait_for(finished.wait(), 5)
    await eventually(lambda: served.inflight == 0)


@pytest.mark.parametrize("profile", ["seed", "dynamo"])
async def test_a_scan_reads_only_instance_keys(profile):
    import dynamo_nb
    from dynamo_nb import DistributedRuntime
    from dynamo_nb.backends.embedded import EmbeddedWorld

    world = EmbeddedWorld()
    worker = await DistributedRuntime.create(world=world, profile=profile)
    attached = await dynamo_nb.attach(world=world, profile=profile)
    try:
        served = await worker.endpoint("dynamo.w.chat/completions").endpoint_builder().handler(tokens).start()
        kv = worker.backend.discovery
        await kv.put("config/app", b"\xff not json")  # not an instance key: its value is never read
        await kv.put("v1/event_channels/namespace/dynamo/x", b"{}")
        # an instance-shaped key whose value names another component is not believed
        value = worker.profile.instance_value("dynamo", "other", "gen", 0x2a, address="other")
        await kv.put(worker.profile.instance_key("dynamo", "w", "gen", 0x2a), value)
        watcher = attached.registry.watchers[f"scan:{worker.profile.scan_prefix}"]
        await eventually(lambda: [i.instance_id for i in watcher.instances.values()] == [served.instance_id])
        await kv.put("config/app2", b"\xff")
        await asyncio.sleep(0.05)
        assert [i.endpoint for i in watcher.instances.values()] == ["chat/completions"]
        assert watcher.rejected == 0
    finally:
        await attached.shutdown()
        await worker.shutdown()
