"""The TCP response plane under forged requests: no name resolution on the loop, reachable advertise address."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any, AsyncIterator

import pytest

from conftest import real_runtime
from dynamo_nb.backends.real import connect_real
from dynamo_nb.transport.frames import encode_frame

from support import eventually

pytestmark = pytest.mark.servers
REF = "plane.Worker.generate"


async def echo(request: Any) -> AsyncIterator[Any]:
    yield request


class SlowResolver:
    """``socket.getaddrinfo`` for one name takes as long as the test says (bounded): a slow DNS, on loopback."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.release = threading.Event()
        self.calls = 0
        self.pending = False
        self._real = socket.getaddrinfo

    def __call__(self, host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != self.name:
            return self._real(host, *args, **kwargs)
        self.calls += 1
        self.pending = True
        try:
            self.release.wait(timeout=15)  # bounded: the test releases it long before
            return self._real("127.0.0.1", *args, **kwargs)
        finally:
            self.pending = False


def forged_request(address: str) -> bytes:
    info = json.dumps({"address": address, "subject": "nobody", "context": "r", "stream_type": "response"})
    header = json.dumps({"id": "forged", "request_type": "single_in", "response_type": "many_out",
                         "connection_info": {"transport": "tcp_server", "info": info}}).encode()
    return encode_frame(header, b'"x"')


@pytest.mark.timeout(60)
async def test_a_request_naming_a_slow_host_does_not_freeze_the_worker(local_cluster, monkeypatch):
    worker = await real_runtime(local_cluster, lease_ttl=1)
    caller = await real_runtime(local_cluster)
    resolver = SlowResolver("localhost")
    try:
        served = await worker.endpoint(REF).endpoint_builder().handler(echo).start()
        client = await caller.endpoint(REF).client()
        await client.wait_for_instances(timeout=10)
        await caller.backend.responses.start()
        port = caller.backend.responses.port
        monkeypatch.setattr(socket, "getaddrinfo", resolver)

        ack = await caller.backend.messaging.request(served.subject, forged_request(f"localhost:{port}"), timeout=5)
        assert ack.data == b""
        await eventually(lambda: resolver.pending, timeout=10)
        keepalives, answered = worker.keepalives, 0
        while resolver.pending and (answered < 5 or worker.keepalives < keepalives + 2):
            assert await (await client.generate(answered)).collect() == [answered]
            answered += 1 if resolver.pending else 0
            await asyncio.sleep(0.05)
        still_pending = resolver.pending
        resolver.release.set()
        assert still_pending, "the resolution ended before the worker was seen serving meanwhile"
        assert answered >= 5 and worker.keepalives >= keepalives + 2 and worker.lease_alive

        # A name that takes longer than the connect bound fails that one stream, on the worker only.
        resolver.release.clear()
        worker.backend.responses.connect_timeout = 0.3
        errors = served.stats.num_errors
        await caller.backend.messaging.request(served.subject, forged_request(f"localhost:{port}"), timeout=5)
        await eventually(lambda: served.stats.num_errors > errors, timeout=10)
        assert "did not resolve within" in served.stats.last_error
        resolver.release.set()
        assert await (await client.generate("after")).collect() == ["after"]
    finally:
        resolver.release.set()
        await caller.shutdown()
        await worker.shutdown()


async def test_a_listener_on_every_interface_advertises_a_reachable_address(local_cluster, monkeypatch):
    monkeypatch.setenv("DYNAMO_NB_RESPONSE_HOST", "0.0.0.0")
    monkeypatch.delenv("DYNAMO_NB_RESPONSE_ADVERTISE", raising=False)
    backend = await connect_real(local_cluster.etcd_endpoints, local_cluster.nats_server)
    try:
        plane = backend.responses
        await plane.start()
        assert plane.host == "0.0.0.0" and plane.address == f"127.0.0.1:{plane.port}"
        assert "0.0.0.0:" not in json.dumps(plane.profile.connection_info(plane.address, "s", "r"))
    finally:
        for part in (backend.responses, backend.messaging, backend.discovery):
            await part.close()
    monkeypatch.setenv("DYNAMO_NB_RESPONSE_ADVERTISE", "127.0.0.1")
    worker = await real_runtime(local_cluster)
    caller = await real_runtime(local_cluster)
    try:
        await worker.endpoint(REF).endpoint_builder().handler(echo).start()
        client = await caller.endpoint(REF).client()
        await client.wait_for_instances(timeout=10)
        assert await (await client.generate("over 0.0.0.0")).collect() == ["over 0.0.0.0"]
        assert caller.backend.responses.address.startswith("127.0.0.1:")
    finally:
        await caller.shutdown()
        await worker.shutdown()
