"""Shared fixtures: every contract and runtime test runs once per backend kind.

``embedded`` uses a fresh in-process world per test; ``servers`` uses real etcd + nats-server processes started
on free loopback ports (see the servers block below).
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from dynamo_nb import DistributedRuntime
from dynamo_nb.backends.base import Backend
from dynamo_nb.backends.embedded import EmbeddedWorld

BACKEND_KINDS = ["embedded"]

# --- servers (real etcd + NATS) begin ---
# --- servers end ---


@pytest.fixture(params=BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def world() -> EmbeddedWorld:
    return EmbeddedWorld()


@pytest.fixture
async def connect(backend_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], Awaitable[Backend]]]:
    """Open a fresh set of backend connections, as one more process would; all are closed afterwards."""
    opened: list[Backend] = []
    world = EmbeddedWorld() if backend_kind == "embedded" else None
    cluster = request.getfixturevalue("local_cluster") if backend_kind == "servers" else None

    async def open_backend() -> Backend:
        if world is not None:
            backend = world.connect()
        else:
            from dynamo_nb.backends.real import connect_real

            backend = await connect_real(cluster.etcd_endpoints, cluster.nats_server)
        opened.append(backend)
        return backend

    yield open_backend
    for backend in opened:
        for part in (backend.messaging, backend.discovery, backend.responses):
            try:
                await part.close()
            except Exception:
                pass


@pytest.fixture
async def make_runtime(backend_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Awaitable[DistributedRuntime]]]:
    """Create runtimes that see each other (one world, or one cluster); all are shut down afterwards."""
    created: list[DistributedRuntime] = []
    world = EmbeddedWorld() if backend_kind == "embedded" else None
    cluster = request.getfixturevalue("local_cluster") if backend_kind == "servers" else None

    async def factory(**kwargs: Any) -> DistributedRuntime:
        kwargs.setdefault("health_check_interval", 0.05)
        if world is not None:
            runtime = await DistributedRuntime.create(world=world, **kwargs)
        else:
            runtime = await DistributedRuntime.create(etcd_endpoints=cluster.etcd_endpoints,
                                                      nats_server=cluster.nats_server, **kwargs)
        created.append(runtime)
        return runtime

    yield factory
    for runtime in reversed(created):
        try:
            await runtime.shutdown()
        except Exception:
            pass


@pytest.fixture
async def runtime(make_runtime: Callable[..., Awaitable[DistributedRuntime]]) -> DistributedRuntime:
    return await make_runtime()
