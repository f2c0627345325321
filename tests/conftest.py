"""Shared fixtures: every contract and runtime test runs once per backend kind.

``embedded`` uses a fresh in-process world per test; ``servers`` uses real etcd + nats-server processes started
on free loopback ports (see the servers block below).
"""

from __future__ import annotations

import asyncio as _asyncio
import concurrent.futures as _futures
from typing import Any, AsyncIterator, Awaitable, Callable, Coroutine, Iterator

import pytest

from dynamo_nb import DistributedRuntime
from dynamo_nb.backends.base import Backend
from dynamo_nb.backends.embedded import EmbeddedWorld
from dynamo_nb.cluster import LocalCluster

BACKEND_KINDS: list[Any] = ["embedded"]

# --- servers (real etcd + NATS) begin ---
# One real nats-server + etcd pair for the whole session (etcd starts in ~0.1 s with LocalCluster's fast flags).
# Tests that restart or break servers start their own LocalCluster instead of disturbing this one.
BACKEND_KINDS.append(pytest.param("servers", marks=pytest.mark.servers))

#: Fixtures that start or use real servers: every test that asks for one carries the ``servers`` marker, so
#: ``pytest -m "not servers"`` runs exactly the tests that need no nats-server or etcd.
SERVER_FIXTURES = {"_session_cluster", "local_cluster"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.servers)


def _run_aside(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion on a private loop in a helper thread.

    The fixture may be requested from inside a running test loop; LocalCluster only spawns and polls processes,
    so which loop starts or stops it does not matter.
    """
    with _futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(_asyncio.run, coro).result()


def _start_local_cluster(**kwargs: Any) -> LocalCluster:
    cluster = LocalCluster(**kwargs)
    _run_aside(cluster.start())
    return cluster


def _wipe_etcd(cluster: LocalCluster) -> None:
    """Delete every key through etcd's JSON gateway, so each test starts from an empty store (as embedded does)."""
    import json
    import urllib.request

    body = json.dumps({"key": "AA==", "range_end": "AA=="}).encode()  # "\\0".."\\0": the whole keyspace
    request = urllib.request.Request(cluster.etcd_endpoints + "/v3/kv/deleterange", data=body, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    with opener.open(request, timeout=5) as answer:
        answer.read()


@pytest.fixture(scope="session")
def _session_cluster() -> Iterator[LocalCluster]:
    cluster = _start_local_cluster()
    try:
        yield cluster
    finally:
        _run_aside(cluster.close())


@pytest.fixture
def local_cluster(_session_cluster: LocalCluster) -> LocalCluster:
    """Real etcd + NATS on free 127.0.0.1 ports, shared by the session; etcd is emptied before each test."""
    _wipe_etcd(_session_cluster)
    return _session_cluster


async def real_runtime(cluster: LocalCluster, **kwargs: Any) -> DistributedRuntime:
    """A runtime wired to ``cluster``'s servers (what the "servers" backend kind creates)."""
    return await DistributedRuntime.create(etcd_endpoints=cluster.etcd_endpoints,
                                           nats_server=cluster.nats_server, **kwargs)
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
            runtime = await real_runtime(cluster, **kwargs)
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
