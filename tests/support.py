"""Helpers shared by the test modules (imported as ``support``: pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

__all__ = ["embedded_client", "eventually", "freeze", "WorkerProcess", "start_worker", "WORKER"]

WORKER = Path(__file__).resolve().parent / "faults" / "worker.py"


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> float:
    """Wait until ``predicate()`` holds; return how long it took. AssertionError after ``timeout`` s.

    A bound on a condition, never a measurement: tests wait for what they expect instead of sleeping a guess.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
    return loop.time() - start


class WorkerProcess:
    """One ``faults/worker.py`` process; its stdout lines announce its instance id and each handler run."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.instance_id = 0
        self.instances: list[int] = []
        self.lines: list[str] = []
        self.ran: list[str] = []  # the ``tag`` of every request whose handler started, in order
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode().strip()
            if line.startswith("RAN "):
                self.ran.append(line[4:])
                continue
            self.lines.append(line)
            if line.startswith(("READY ", "INSTANCE ")):
                self.instance_id = int(line.split()[1], 16)
                self.instances.append(self.instance_id)

    async def wait_instance(self, timeout: float = 30.0, other_than: int = 0) -> int:
        await eventually(lambda: self.instance_id not in (0, other_than), timeout)
        return self.instance_id

    def signal(self, sig: int) -> None:
        if self.proc.returncode is None:
            os.kill(self.pid, sig)  # only ever a process this test started

    async def reap(self) -> None:
        if self.proc.returncode is None:
            self.signal(signal.SIGCONT)  # a stopped process would not die of SIGKILL before it is reaped
            self.signal(signal.SIGKILL)
        await self.proc.wait()
        self._reader.cancel()


async def freeze(pid: int) -> None:
    """SIGSTOP ``pid`` and return once every one of its threads has stopped: the signal is asynchronous, and a
    server thread still running for a moment could answer what is sent right after ``kill()`` returns."""
    os.kill(pid, signal.SIGSTOP)

    def stopped() -> bool:
        states = []
        for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
            try:
                states.append(stat.read_text().rsplit(")", 1)[1].split()[0])
            except (OSError, IndexError):
                continue
        return bool(states) and all(state in ("T", "t") for state in states)

    await eventually(stopped, timeout=5.0, interval=0.001)


async def start_worker(cluster: Any, lease_ttl: float, reference: str, started: list[WorkerProcess],
                       env: dict[str, str] | None = None) -> WorkerProcess:
    """Start ``faults/worker.py`` against ``cluster``'s servers; it is added to ``started`` for reaping."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), cluster.etcd_endpoints, cluster.nats_server, reference, str(lease_ttl),
        stdout=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})})
    worker = WorkerProcess(proc)
    started.append(worker)
    return worker


@contextlib.asynccontextmanager
async def worker_pool(reference: str) -> AsyncIterator[Callable[[Any, float], Awaitable[WorkerProcess]]]:
    """``start(cluster, lease_ttl)`` runs one ``faults/worker.py`` serving ``reference`` and waits until it is
    registered; every worker started is reaped on the way out."""
    started: list[WorkerProcess] = []

    async def start(cluster: Any, lease_ttl: float) -> WorkerProcess:
        worker = await start_worker(cluster, lease_ttl, reference, started)
        await worker.wait_instance()
        return worker

    try:
        yield start
    finally:
        for worker in started:
            await worker.reap()



@contextlib.asynccontextmanager
async def embedded_client(handler: Callable[..., Any], reference: str = "dynamo.w.gen") -> AsyncIterator[Any]:
    """A client of ``handler``, served by another runtime of one embedded world (both shut down after)."""
    from dynamo_nb import DistributedRuntime, EmbeddedWorld

    world = EmbeddedWorld()
    worker = await DistributedRuntime.create(world=world)
    caller = await DistributedRuntime.create(world=world)
    try:
        await worker.endpoint(reference).endpoint_builder().handler(handler).start()
        client = await caller.endpoint(reference).client()
        await client.wait_for_instances(timeout=2)
        yield client
    finally:
        await caller.shutdown()
        await worker.shutdown()
