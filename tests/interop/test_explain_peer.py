"""explain against real Dynamo 1.6.1 processes: the real layout all green, and a plane mismatch named.

The mismatch is made as users meet it: a real worker on the NATS plane, a real client on the TCP plane (Dynamo's
default), whose call fails with "Invalid TCP address"; explain, given that text or the endpoint, names the plane.
"""

from __future__ import annotations

import pytest

import dynamo_nb

pytestmark = pytest.mark.dynamo_interop


async def test_a_real_worker_explains_green_in_the_real_layout(peers, local_cluster, nb_runtime):
    peer = await peers("worker.py", "demo.backend.generate", plane="tcp", codec="json")
    ready = await peer.ready()  # printed just before serve_endpoint() registers the instance
    watching = await (await nb_runtime("tcp")).endpoint("demo.backend.generate").client()
    await watching.wait_for_instances(timeout=10)
    report = await dynamo_nb.explain("demo.backend.generate", profile="dynamo", request_plane="tcp",
                                     request={"n": 1}, etcd_endpoints=local_cluster.etcd_endpoints,
                                     nats_server=local_cluster.nats_server)
    assert report.ok, report.text
    statuses = {s.id: s.status for s in report.steps}
    assert statuses["keys"] == statuses["leases"] == statuses["plane"] == statuses["reach"] == "ok", report.text
    [found] = report.findings.instances
    assert found.instance_id == ready["connection_id"] and found.key.startswith("v1/instances/demo/backend/")
    assert found.time_left is not None and found.time_left <= 30  # Dynamo's 30 s lease, read from etcd


async def test_a_plane_mismatch_with_a_real_worker_and_client(peers, local_cluster):
    worker = await peers("worker.py", "demo.backend.generate", plane="nats", codec="json")
    await worker.ready()
    client = await peers("client.py", "demo.backend.generate", "call", '{"n": 1}', plane="tcp")
    await client.ready()
    failed = await client.fact("error")
    assert "Invalid TCP address" in failed["error"], failed  # what the real client says
    servers = {"etcd_endpoints": local_cluster.etcd_endpoints, "nats_server": local_cluster.nats_server}
    report = await dynamo_nb.explain("demo.backend.generate", profile="dynamo", request_plane="tcp", **servers)
    assert report.failed is not None and report.failed.id == "plane", report.text
    assert "DYN_REQUEST_PLANE=nats" in report.failed.fix and "Invalid TCP address" in report.failed.cause
    assert report.step("responders").status == "ok", report.text  # the worker itself answers on NATS
    from_text = await dynamo_nb.explain(error=failed["error"], profile="dynamo", request_plane="tcp", **servers)
    assert from_text.findings.error_step == "plane", from_text.text
