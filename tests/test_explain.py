"""explain: each fault of the issue made for real on real servers, then the step and cause explain names.

Every fault is created as a user would meet it (a wrong name, a killed worker, a request over the limit, an
address nobody listens on), the failing call is made, and explain must name the failing step; a healthy system
must explain as all green. The plane mismatch against a real Dynamo worker is in ``tests/interop``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
from support import eventually

import dynamo_nb
from dynamo_nb import DistributedRuntime, NoInstancesError, PayloadTooLargeError
from dynamo_nb.cluster import LocalCluster
from dynamo_nb.diagnose import match_error
from dynamo_nb.cli import main as cli_main

Factory = Callable[..., Awaitable[DistributedRuntime]]


async def tokens(request: Any) -> AsyncIterator[dict[str, Any]]:
    for tok in str(request.get("prompt", "")).split():
        yield {"token": tok}


@pytest.fixture
async def runtimes(local_cluster: LocalCluster) -> AsyncIterator[Factory]:
    made: list[DistributedRuntime] = []

    async def make(**kwargs: Any) -> DistributedRuntime:
        rt = await DistributedRuntime.create(etcd_endpoints=local_cluster.etcd_endpoints,
                                             nats_server=local_cluster.nats_server, **kwargs)
        made.append(rt)
        return rt

    yield make
    for rt in reversed(made):
        await rt.shutdown()


def servers(cluster: LocalCluster) -> dict[str, str]:
    return {"etcd_endpoints": cluster.etcd_endpoints, "nats_server": cluster.nats_server}


def free_loopback_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("profile", ["seed", "dynamo"])
async def test_a_healthy_system_explains_as_all_green(local_cluster: LocalCluster, runtimes: Factory,
                                                      profile: str) -> None:
    worker = await runtimes(profile=profile)
    await worker.endpoint("prod.backend.generate").endpoint_builder().handler(tokens).start()
    report = await dynamo_nb.explain("prod.backend.generate", request={"prompt": "a b"}, profile=profile,
                                     **servers(local_cluster))
    statuses = {s.id: s.status for s in report.steps}
    assert report.ok and report.failed is None, report.text
    assert statuses["etcd"] == statuses["nats"] == statuses["keys"] == statuses["leases"] == "ok", report.text
    assert statuses["plane"] == statuses["payload"] == "ok", report.text
    if profile == "seed":  # the NATS plane: a responder on the subject; JetStream is not needed
        assert statuses["responders"] == "ok" and statuses["reach"] == "skip", report.text
        assert "✘" not in report.text and "!" not in report.text.split("\n", 2)[2]
    else:  # Dynamo's TCP plane: the advertised address accepts; JetStream is off on this server (a warning)
        assert statuses["reach"] == "ok" and statuses["responders"] == "skip", report.text
        assert statuses["jetstream"] == "warn", report.text
    [found] = report.findings.instances
    assert found.instance_id == worker.primary_lease_id and found.lease_id == worker.primary_lease_id
    assert found.time_left is not None and found.time_left > 0
    doc = json.loads(report.to_json())
    assert doc["ok"] is True and [s["id"] for s in doc["steps"]][:3] == ["etcd", "nats", "keys"]


async def test_wrong_namespace_with_a_hash_suffix_is_named(local_cluster: LocalCluster, runtimes: Factory) -> None:
    worker = await runtimes()
    await worker.endpoint("prod-3f9a2c.backend.generate").endpoint_builder().handler(tokens).start()
    caller = await runtimes()
    client = await caller.endpoint("prod.backend.generate").client()
    with pytest.raises(NoInstancesError) as failed:
        await client.round_robin({"prompt": "x"})
    report = await dynamo_nb.explain("prod.backend.generate", **servers(local_cluster))
    assert report.failed is not None and report.failed.id == "keys", report.text
    assert "prod-3f9a2c" in report.failed.cause and "suffix" in report.failed.cause, report.text
    assert "prod-3f9a2c.backend.generate" in report.failed.fix
    from_text = await dynamo_nb.explain(error=str(failed.value), **servers(local_cluster))
    assert from_text.findings.reference == "prod.backend.generate"
    assert from_text.findings.error_step == "keys" and from_text.failed is not None, from_text.text


async def test_case_and_the_other_profiles_layout_are_named(local_cluster: LocalCluster, runtimes: Factory) -> None:
    worker = await runtimes(profile="dynamo")
    await worker.endpoint("prod.Backend.generate").endpoint_builder().handler(tokens).start()
    seed_view = await dynamo_nb.explain("prod.Backend.generate", profile="seed", **servers(local_cluster))
    assert seed_view.failed is not None and seed_view.failed.id == "keys"
    assert "profile='dynamo'" in seed_view.failed.cause and "v1/instances/" in seed_view.text, seed_view.text
    case = await dynamo_nb.explain("prod.backend.generate", profile="dynamo", **servers(local_cluster))
    assert case.failed is not None and case.failed.id == "keys"
    assert "case" in case.failed.cause and "prod.Backend.generate" in case.failed.fix, case.text


async def test_a_request_over_max_payload(local_cluster: LocalCluster, runtimes: Factory) -> None:
    worker = await runtimes()
    await worker.endpoint("prod.backend.generate").endpoint_builder().handler(tokens).start()
    caller = await runtimes()
    client = await caller.endpoint("prod.backend.generate").client()
    await client.wait_for_instances(timeout=10)
    big = {"prompt": "x" * (caller.backend.messaging.max_payload + 1)}
    with pytest.raises(PayloadTooLargeError) as failed:
        await client.round_robin(big)
    report = await dynamo_nb.explain("prod.backend.generate", request=big, **servers(local_cluster))
    assert report.failed is not None and report.failed.id == "payload", report.text
    assert str(caller.backend.messaging.max_payload) in report.failed.detail
    assert (await dynamo_nb.explain(error=str(failed.value), timeout=1)).findings.error_step == "payload"


async def test_a_worker_killed_inside_its_lease(local_cluster: LocalCluster, runtimes: Factory) -> None:
    worker = await runtimes(lease_ttl=30)
    await worker.endpoint("prod.backend.generate").endpoint_builder().handler(tokens).start()
    caller = await runtimes()
    client = await caller.endpoint("prod.backend.generate").client()
    await client.wait_for_instances(timeout=10)
    await worker.kill()  # no revoke: the key stays until the lease expires
    with pytest.raises(NoInstancesError) as failed:
        await client.round_robin({"prompt": "x"})
    assert client.instance_ids() == [worker.primary_lease_id]  # the key is still there
    report = await dynamo_nb.explain("prod.backend.generate", **servers(local_cluster))
    assert report.step("keys").status == "ok" and report.step("leases").status == "ok", report.text  # type: ignore[union-attr]
    assert report.failed is not None and report.failed.id == "responders", report.text
    assert "died inside its lease" in report.failed.cause and " s)" in report.failed.cause
    [found] = report.findings.instances
    assert found.responder is False and found.time_left is not None and 0 < found.time_left <= 30
    from_text = await dynamo_nb.explain(error=str(failed.value), **servers(local_cluster))
    assert from_text.findings.error_step == "responders", from_text.text


async def test_an_advertised_address_nobody_listens_on(local_cluster: LocalCluster, runtimes: Factory) -> None:
    worker = await runtimes(profile="dynamo", request_plane="tcp")
    served = await worker.endpoint("prod.backend.generate").endpoint_builder().handler(tokens).start()
    # The worker advertises an address it does not listen on (as with a wrong DYN_TCP_RPC_HOST): same key and
    # lease, the address's port swapped for one nobody listens on.
    [kv] = await worker.etcd_client().kv_get_prefix(served.key)
    doc = json.loads(kv["value"])
    address = doc["transport"]["tcp"]
    hostport, _, path = address.partition("/")
    doc["transport"]["tcp"] = f"127.0.0.1:{free_loopback_port()}/{path}"
    await worker.etcd_client().kv_put(served.key, json.dumps(doc, separators=(",", ":")).encode(), kv["lease"])
    caller = await runtimes(profile="dynamo", request_plane="tcp")
    client = await caller.endpoint("prod.backend.generate").client()
    await client.wait_for_instances(timeout=10)
    with pytest.raises(NoInstancesError) as failed:
        await client.round_robin({"prompt": "x"})
    report = await dynamo_nb.explain("prod.backend.generate", profile="dynamo", request_plane="tcp",
                                     **servers(local_cluster))
    assert report.failed is not None and report.failed.id == "reach", report.text
    assert "DYN_TCP_RPC_HOST" in report.failed.fix and doc["transport"]["tcp"].partition("/")[0] in report.text
    assert report.findings.instances[0].reachable is False
    from_text = await dynamo_nb.explain(error=str(failed.value), profile="dynamo", **servers(local_cluster))
    assert from_text.findings.error_step == "reach", from_text.text


async def test_a_key_without_a_lease_is_flagged(local_cluster: LocalCluster, runtimes: Factory) -> None:
    worker = await runtimes()
    served = await worker.endpoint("prod.backend.generate").endpoint_builder().handler(tokens).start()
    [kv] = await worker.etcd_client().kv_get_prefix(served.key)
    await worker.kill()  # its health check would write the key back under its lease
    other = await runtimes()
    await other.etcd_client().kv_put(served.key, kv["value"], None)  # the same value, on no lease
    report = await dynamo_nb.explain("prod.backend.generate", **servers(local_cluster))
    assert report.failed is not None and report.failed.id == "leases", report.text
    assert "never expires" in report.text and "etcdctl del" in report.failed.fix


async def test_explain_is_bounded_when_every_server_is_down_or_frozen() -> None:
    async def frozen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(60)  # accepts the connection and never says a word

    server = await asyncio.start_server(frozen, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    try:
        for etcd, nats in ((f"http://127.0.0.1:{free_loopback_port()}", f"nats://127.0.0.1:{free_loopback_port()}"),
                           (f"http://127.0.0.1:{port}", f"nats://127.0.0.1:{port}")):
            start = loop.time()
            report = await dynamo_nb.explain("prod.backend.generate", etcd_endpoints=etcd, nats_server=nats)
            took = loop.time() - start
            assert took < 5.0, f"explain took {took:.1f} s against {etcd}"  # the bound
            assert report.step("etcd").status == "fail" and report.step("nats").status == "fail", report.text  # type: ignore[union-attr]
            assert report.step("keys").status == "skip"  # type: ignore[union-attr]
            assert "ETCD_ENDPOINTS" in report.step("etcd").fix  # type: ignore[union-attr]
    finally:
        server.close()


@pytest.mark.parametrize("text, step", [
    ("no instances found for endpoint \"dynamo.backend.generate\"", "keys"),
    ("no instances of endpoint 'dyn.backend.generate' are live: none is registered (is a worker serving it?)",
     "keys"),
    ("nats: no responders available for request", "responders"),
    ("Exception: Invalid TCP address 'demo_pure.generate-51c6a233e0443d07': invalid socket address syntax",
     "plane"),
    ("Exception: Unavailable: TCP connection to 127.0.0.1:34579 failed", "reach"),
    ("deadline has elapsed", "reach"),
    ("request of 1100000 bytes exceeds the server's max payload of 1048576 bytes", "payload"),
    ("cannot reach etcd at http://127.0.0.1:2379: connection refused", "etcd"),
    ("cannot reach NATS at nats://127.0.0.1:4222: timed out", "nats"),
    ("nats: jetstream not enabled", "jetstream"),
    ("ValueError: Unavailable: Stream ended before generation completed", "leases"),
])
def test_raw_errors_map_to_the_step_that_finds_their_cause(text: str, step: str) -> None:
    cause = match_error(text)
    assert cause is not None and cause.step == step, (text, cause)


async def test_error_text_alone_explains_without_servers_when_it_names_no_endpoint() -> None:
    report = await dynamo_nb.explain(error="deadline has elapsed", timeout=1)
    assert report.findings.error_step == "reach" and "times out" not in report.findings.error_meaning
    assert "deadline has elapsed" in report.text and report.findings.reference == ""


def run_explain(argv: list[str]) -> int:
    """``dynamo-nb explain ...`` as the console script runs it."""
    return cli_main(["explain", *argv])


def test_dynamo_nb_explain_prints_text_or_json_and_returns_an_exit_code(local_cluster: LocalCluster,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--etcd", local_cluster.etcd_endpoints, "--nats", local_cluster.nats_server]
    assert run_explain(["prod.backend.generate", *args]) == 1  # nothing serves it
    out = capsys.readouterr().out
    assert "✘ the endpoint's instance keys are in etcd" in out and "failing step: keys" in out
    ready, stop = threading.Event(), threading.Event()

    def serve() -> None:  # a worker in another thread (run_explain runs its own event loop)
        async def main() -> None:
            rt = await DistributedRuntime.create(etcd_endpoints=local_cluster.etcd_endpoints,
                                                 nats_server=local_cluster.nats_server)
            await rt.endpoint("prod.backend.generate").endpoint_builder().handler(tokens).start()
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.02)
            await rt.shutdown()
        asyncio.run(main())

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        assert ready.wait(20)
        assert run_explain(["prod.backend.generate", "--json", "--request", '{"prompt": "a"}', *args]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["ok"] is True and doc["reference"] == "prod.backend.generate"
        assert {s["id"]: s["status"] for s in doc["steps"]}["payload"] == "ok"
        assert run_explain(["--error", "Invalid TCP address 'x'", "--json", "--timeout", "1", *args]) == 0
        assert json.loads(capsys.readouterr().out)["error_step"] == "plane"
    finally:
        stop.set()
        thread.join(20)
    assert run_explain([]) == 2
    with pytest.raises(SystemExit) as usage:
        run_explain(["--no-such-option"])
    assert usage.value.code == 2


async def test_the_report_draws_a_checklist(local_cluster: LocalCluster, runtimes: Factory) -> None:
    report = await dynamo_nb.explain("prod.backend.generate", **servers(local_cluster))
    bundle = report._repr_mimebundle_()
    assert set(bundle) >= {"text/vnd.mermaid", "text/plain"} and "text/html" not in bundle
    mermaid = bundle["text/vnd.mermaid"]
    assert mermaid.count("FAILED") == 1 and "instance keys are in etcd" in mermaid
    assert "classDef killed" in mermaid  # the failing step in the colour of the other figures' failures
    assert bundle["text/plain"] == report.text
    zh = report.diagram(lang="zh").mermaid  # the frame in the seed's terms; what the checks saw as they wrote it
    assert zh.count("失败") == 1 and "端点的实例键在 etcd 中" in zh and "prod.backend.generate" in zh
    assert "FAILED" not in zh and "instance keys are in etcd" not in zh


async def test_explain_through_an_attached_runtime(local_cluster: LocalCluster, runtimes: Factory) -> None:
    worker = await runtimes()
    await worker.endpoint("prod.backend.generate").endpoint_builder().handler(tokens).start()
    attached = await dynamo_nb.attach(**servers(local_cluster))
    try:
        report = await dynamo_nb.explain("prod.backend.generate", runtime=attached)
        assert report.ok and "through attached" in report.step("etcd").detail, report.text  # type: ignore[union-attr]
    finally:
        await attached.shutdown()


@pytest.mark.parametrize("profile", ["seed", "dynamo"])
async def test_leases_in_view_read_from_etcd(local_cluster: LocalCluster, runtimes: Factory, profile: str) -> None:
    worker = await runtimes(profile=profile, lease_ttl=30)
    served = await worker.endpoint("prod.backend.generate").endpoint_builder().handler(tokens).start()
    viewer = await runtimes(profile=profile)
    client = await viewer.endpoint("prod.backend.generate").client()
    await client.wait_for_instances(timeout=10)
    await client.watcher.refresh_leases()
    hierarchy = dynamo_nb.diagram(viewer, "hierarchy").text
    registry = dynamo_nb.diagram(viewer.registry, "registry").text
    # the instance runs on its runtime's primary lease, so its id names the lease too
    assert f"instance {worker.primary_lease_id:x} · " in hierarchy and " · lease: " in hierarchy, hierarchy
    assert " s left at " in hierarchy, hierarchy
    assert f"{worker.primary_lease_id:x}: lease: " in registry, registry
    [snap] = viewer.snapshot().watched
    assert snap.lease is not None and snap.lease.lease_id == worker.primary_lease_id
    assert snap.lease.time_left is not None and 0 < snap.lease.time_left <= 30 and not snap.lease.dead
    # the worker dies inside its lease: a call finds nobody, and the figures say the key outlived its process
    await worker.kill()
    with pytest.raises(NoInstancesError):
        await client.round_robin({"prompt": "x"})
    assert "key outlived its process" in dynamo_nb.diagram(viewer, "hierarchy").text
    # a key with no lease (written by hand): shown as one that never expires
    [kv] = await viewer.etcd_client().kv_get_prefix(served.key)
    await viewer.etcd_client().kv_put(served.key, kv["value"], None)
    await client.watcher.refresh_leases()
    await eventually(lambda: "no lease: the key never expires" in dynamo_nb.diagram(viewer, "hierarchy").text)


@pytest.mark.servers  # the notebook starts its own LocalCluster
async def test_notebook_11_runs_every_fault_without_an_error_output() -> None:
    from test_notebooks import NOTEBOOK_DIR, _kernel_env, check_outputs, run_notebook

    path = NOTEBOOK_DIR / "11-debugging.ipynb"
    nb = await run_notebook(path, _kernel_env())
    check_outputs(path, nb)
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", []))
    for step in ("keys", "plane", "payload", "responders", "reach"):  # each fault names its step
        assert f"failing step: {step}" in text, step
    assert "all green" in text and "key outlived its process" in text
