"""The service SDK: decorators, config, and ``serve()`` in this process, on both backends (seed §7.2, §7.3)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from support import eventually

from dynamo_nb import DistributedRuntime, InvalidNameError, diagram
from dynamo_nb.backends.embedded import EmbeddedWorld
from dynamo_nb.errors import ServiceConfigError
from dynamo_nb.sdk import async_on_start, depends, dynamo_endpoint, endpoint, serve, service
from dynamo_nb.sdk.config import load_config, settings_for
from dynamo_nb.sdk.decorators import spec_of
from dynamo_nb.sdk.graph import plan_graph
from dynamo_nb.sdk.resources import assign_gpus

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
import sdk_graph  # noqa: E402
from sdk_graph import Frontend, Processor, VllmWorker  # noqa: E402

YAML = DATA / "sdk_graph.yaml"


@pytest.fixture
async def options(backend_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    """What serve() needs to put its workers on this test's backend, and a caller runtime beside them."""
    if backend_kind == "embedded":
        yield {"world": EmbeddedWorld(), "health_check_interval": 0.05}
    else:
        cluster = request.getfixturevalue("local_cluster")
        yield {"etcd_endpoints": cluster.etcd_endpoints, "nats_server": cluster.nats_server,
               "health_check_interval": 0.05}


# ------------------------------------------------------------------------------------------------ decorators
def test_a_decorated_class_knows_its_names_and_stays_a_plain_class():
    spec = spec_of(VllmWorker)
    assert (spec.namespace, spec.component, spec.workers) == ("production", "VllmWorker", 1)
    assert [e.name for e in spec.endpoints] == ["generate"]
    assert [e.name for e in spec_of(Frontend).endpoints] == ["chat/completions"]
    assert spec.on_start == ("load",)
    assert spec_of(Processor).dependencies["worker"].target is VllmWorker
    assert endpoint is dynamo_endpoint
    assert isinstance(Processor(), Processor)


async def test_a_method_is_unit_tested_without_serving():
    class FakeWorker:
        async def generate(self, request):
            yield {"token": "x"}

    proc = Processor()
    proc.worker = FakeWorker()  # what serving would put there: a client of VllmWorker

    class Ctx:
        def id(self):
            return "r1"

    assert [i async for i in proc.generate({}, Ctx())] == [{"token": "x", "via": "Processor", "request_id": "r1"}]
    w = VllmWorker()
    w.config = {"model": "m"}
    await w.load()
    assert [i["token"] async for i in w.generate({"prompt": "a b"})] == ["a", "b"]


def test_names_are_checked_when_the_class_is_decorated():
    with pytest.raises(InvalidNameError, match="namespace"):
        @service(dynamo={"namespace": "Production"})
        class Bad:
            pass
    with pytest.raises(InvalidNameError, match="endpoint"):
        @service(dynamo={"namespace": "ok"})
        class BadEndpoint:
            @dynamo_endpoint(name="gen.erate")
            async def gen(self, request):
                yield request
    with pytest.raises(TypeError, match="parentheses"):
        dynamo_endpoint(lambda self, r: r)
    with pytest.raises(TypeError, match="async generator"):
        dynamo_endpoint()(lambda self, r: r)
    with pytest.raises(ServiceConfigError, match="positive integer"):
        service(workers=0)(type("Zero", (), {}))


def test_link_picks_declared_dependencies_only():
    @service(dynamo={"namespace": "t"})
    class A:
        @dynamo_endpoint()
        async def gen(self, request):
            yield request

    @service(dynamo={"namespace": "t"})
    class B:
        @dynamo_endpoint()
        async def gen(self, request):
            yield request

    @service(dynamo={"namespace": "t"})
    class Entry:
        a = depends(A)
        b = depends(B)

    assert [s.name for s in plan_graph(Entry).services] == ["A", "B", "Entry"]  # no link: every dependency
    assert Entry.link(A) is A
    assert [s.name for s in plan_graph(Entry).services] == ["A", "Entry"]  # linked: only A
    with pytest.raises(ValueError, match="does not depends"):
        A.link(B)


# ------------------------------------------------------------------------------------------------ config
def test_config_gives_each_service_its_keys_common_values_and_service_args():
    source = load_config(YAML, ["--VllmWorker.model=other/model", "--Processor.ServiceArgs.workers=2"])
    settings = settings_for(plan_graph(Frontend).services, source)
    assert settings["VllmWorker"].config == {"model": "other/model", "enable-prefix-caching": True}
    assert (settings["VllmWorker"].workers, settings["VllmWorker"].resources) == (4, {"gpu": 1})
    assert settings["Processor"].config == {"model": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"}
    assert settings["Processor"].workers == 2
    assert settings["Frontend"].workers == 1  # the decorator's


@pytest.mark.parametrize("text, key, expected", [
    ("Nope: {a: 1}\n", "Nope", "one of: Frontend, Processor, VllmWorker"),
    ("VllmWorker:\n  ServiceArgs:\n    workers: 0\n", "VllmWorker.ServiceArgs.workers", "a positive integer"),
    ("VllmWorker:\n  ServiceArgs:\n    workers: four\n", "VllmWorker.ServiceArgs.workers", "a positive integer"),
    ("VllmWorker:\n  ServiceArgs:\n    workers: 1.5\n", "VllmWorker.ServiceArgs.workers", "a positive integer"),
    ("VllmWorker:\n  model: [unclosed\n", "", "malformed YAML at line 3"),
    ("- a list\n", "", "a mapping of service class names"),
    ("VllmWorker: 3\n", "VllmWorker", "a mapping of settings"),
    ("Processor:\n  common-configs: [model]\n", "Processor.common-configs", "'model' is not in Common"),
    ("VllmWorker:\n  ServiceArgs:\n    resources: {gpu: -1}\n", "VllmWorker.ServiceArgs.resources.gpu", "GPUs"),
])
def test_config_errors_name_the_file_the_key_and_what_was_expected(tmp_path, text, key, expected):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ServiceConfigError) as err:
        settings_for(plan_graph(Frontend).services, load_config(path))
    assert str(path) in str(err.value)
    assert err.value.key == key
    assert expected in str(err.value)


def test_an_override_is_named_as_the_source_of_its_error():
    with pytest.raises(ServiceConfigError, match=r"^--VllmWorker.ServiceArgs.workers: VllmWorker.ServiceArgs.workers: got -2"):
        settings_for(plan_graph(Frontend).services, load_config(YAML, ["--VllmWorker.ServiceArgs.workers=-2"]))
    with pytest.raises(ServiceConfigError, match="--Service.key=value"):
        load_config(None, ["--nodot=1"])


def test_gpus_are_distinct_per_worker_and_too_many_fail_naming_the_service():
    ids = assign_gpus([("Frontend", 1, 0), ("VllmWorker", 4, 1)], 8)
    assert [ids[("VllmWorker", i)] for i in range(4)] == [[0], [1], [2], [3]]
    assert ids[("Frontend", 0)] == []
    with pytest.raises(ServiceConfigError, match=r"VllmWorker asks 4 worker\(s\) x 2 GPU\(s\) = 8.*of 6 GPU"):
        assign_gpus([("VllmWorker", 4, 2)], 6, "config.yaml")
    with pytest.raises(ServiceConfigError, match="--gpus N"):
        assign_gpus([("VllmWorker", 1, 1)], None)


# ------------------------------------------------------------------------------------------------ serving
async def test_the_seed_graph_serves_and_answers_through_depends(options):
    graph = await serve(Frontend, config=YAML, gpus=8, **options)
    caller = await DistributedRuntime.create(**options)
    try:
        assert {n: len(ws) for n, ws in graph.services.items()} == {"VllmWorker": 4, "Processor": 1, "Frontend": 1}
        ids = [w.instance_id for w in graph.services["VllmWorker"]]
        assert len(set(ids)) == 4 and all(ids)
        assert [w.gpus for w in graph.services["VllmWorker"]] == [[0], [1], [2], [3]]
        client = await caller.endpoint("production.Frontend.chat/completions").client()
        await client.wait_for_instances(timeout=5)
        seen = set()
        for _ in range(8):
            items = [i async for i in await client.round_robin({"prompt": "hello dynamo"})]
            assert [i["token"] for i in items] == ["hello", "dynamo"]
            assert items[0]["via"] == "Processor" and items[0]["prefix_caching"] is True
            seen.add(items[0]["who"])
        assert len(seen) == 4  # round-robin through depends reached every VllmWorker
        figure = diagram(graph)
        assert figure.kind == "graph"
        for text in ("@service Frontend · entry", "depends · self.worker", "depends · self.processor",
                     "4 workers · gpu: 1", "endpoints: chat/completions", "GPU 3"):
            assert text in figure.text, text
        assert "production" in diagram(graph, "hierarchy").text
    finally:
        await graph.stop()
        await caller.shutdown()


async def test_scale_up_and_down_and_stop_deregisters_everything(options):
    graph = await serve(Processor, config={"VllmWorker": {"model": "m"}}, **options)
    watcher_rt = await DistributedRuntime.create(**options)
    try:
        client = await watcher_rt.endpoint("production.VllmWorker.generate").client()
        await client.wait_for_instances(timeout=5)
        await graph.scale(VllmWorker, 3)
        await eventually(lambda: len(client.instance_ids()) == 3)
        assert "3 workers" in diagram(graph).text
        await graph.scale("VllmWorker", 1)
        await eventually(lambda: len(client.instance_ids()) == 1)
        assert client.instance_ids() == [graph.services["VllmWorker"][0].instance_id]
        states = [s.state.value for w in graph.workers() for s in w.served]
        assert states and all(s in ("Running", "Healthy") for s in states)
        await graph.stop()
        await eventually(lambda: client.instance_ids() == [])
        assert all(w.runtime.closed for w in graph.workers())
        assert "Deregistered" in [str(s) for s, _ in graph.services["VllmWorker"][0].served[0].history]
    finally:
        await graph.stop()
        await watcher_rt.shutdown()


async def test_async_on_start_runs_before_registration_and_a_failing_start_stops_the_rest(options):
    order: list[str] = []

    @service(dynamo={"namespace": "t"})
    class Early:
        @async_on_start
        async def setup(self):
            order.append(f"setup:{self.config['tag']}")

        @dynamo_endpoint()
        async def gen(self, request):
            yield request

    @service(dynamo={"namespace": "t"})
    class Broken:
        early = depends(Early)

        @async_on_start
        async def setup(self):
            raise RuntimeError("no model")

    graph_ok = await serve(Early, config={"Early": {"tag": "x"}}, **options)
    assert order == ["setup:x"] and graph_ok.services["Early"][0].served
    await graph_ok.stop()
    with pytest.raises(RuntimeError, match="no model"):
        await serve(Broken, config={"Early": {"tag": "y"}}, **options)
    probe = await DistributedRuntime.create(**options)
    try:
        client = await probe.endpoint("t.Early.gen").client()
        await eventually(lambda: client.instance_ids() == [])
    finally:
        await probe.shutdown()


async def test_config_errors_stop_serve_before_anything_starts(options):
    with pytest.raises(ServiceConfigError, match="none can be detected"):
        await serve(Frontend, config=YAML, **options)  # 4 x 1 GPU and no GPU here
    with pytest.raises(ServiceConfigError, match="Unknown"):
        await serve(Frontend, config={"Unknown": {}}, **options)


def test_the_module_graph_is_what_link_chose():
    assert [s.name for s in plan_graph(sdk_graph.Frontend).services] == ["VllmWorker", "Processor", "Frontend"]
