"""Worker processes for the control panel: each is a separate runtime on the same etcd and NATS.

Serving an endpoint from a panel starts it in a *worker* runtime with a short lease, as a separate Dynamo
process would: its connections come from the backend's ``connect_peer()``. Stopping an instance is the graceful
path of seed §6.2; killing a worker is a crash: its keys stay in etcd until its lease expires, which the pool
counts down by asking discovery for the lease's time left. Nothing here imports ipywidgets.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from .. import names
from ..core.runtime import DistributedRuntime
from ..core.served import ServedEndpoint
from ..errors import RuntimeClosedError
from .handlers import HandlerSpec

__all__ = ["Worker", "Instance", "WorkerPool", "DEFAULT_WORKER_LEASE_TTL"]

log = logging.getLogger(__name__)

DEFAULT_WORKER_LEASE_TTL = 4.0  # seconds: short enough to watch a crashed worker's lease expire

WorkerFactory = Callable[[str, float], Awaitable[DistributedRuntime]]


@dataclass(eq=False)
class Worker:
    """One worker runtime (a "process") started by the pool."""

    name: str
    runtime: DistributedRuntime
    lease_ttl: float
    killed_at: float | None = None
    lease_at_kill: int = 0
    lease_left: float | None = None  # seconds left on that lease at the last look (None: gone, or not killed)

    @property
    def killed(self) -> bool:
        return self.runtime.killed

    @property
    def alive(self) -> bool:
        return not self.runtime.closed

    def __repr__(self) -> str:
        state = "killed" if self.killed else ("shut down" if self.runtime.closed else "running")
        return f"Worker({self.name!r}, lease={self.runtime.primary_lease_id:x}, ttl={self.lease_ttl:g}s, {state})"


@dataclass(eq=False)
class Instance:
    """One endpoint instance served by a pool worker, and what became of it."""

    worker: Worker
    served: ServedEndpoint
    handler: str
    gone_at: float | None = None  # when its key left etcd (stop, or lease expiry after a kill)
    _unlisten: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def reference(self) -> str:
        return self.served.endpoint.reference()

    @property
    def instance_id(self) -> int:
        return self.served.instance_id

    @property
    def gone(self) -> bool:
        return self.gone_at is not None

    def status(self, lease_remaining: float | None = None) -> str:
        """A short human summary: lifecycle state, or the crash countdown."""
        if self.worker.killed:
            if self.gone:
                return "worker killed; lease expired, key deleted"
            if lease_remaining is not None:
                return f"worker killed; lease expires in {lease_remaining:.1f} s"
            return "worker killed; waiting for the lease to expire"
        active = self.served.snapshot().faults
        return " · ".join((self.served.state.value, *active))

    def __repr__(self) -> str:
        return (f"Instance({self.reference!r}, id={self.instance_id:x}, worker={self.worker.name!r}, "
                f"handler={self.handler!r}, {self.status()})")


class WorkerPool:
    """Starts worker runtimes beside ``runtime`` (same embedded world, or same servers) and tracks them.

    ``worker_factory(name, lease_ttl)`` may replace how a worker runtime is created.
    """

    def __init__(self, runtime: DistributedRuntime, *, lease_ttl: float = DEFAULT_WORKER_LEASE_TTL,
                 worker_factory: WorkerFactory | None = None) -> None:
        if lease_ttl <= 0:
            raise ValueError(f"lease_ttl must be positive, got {lease_ttl}")
        self.runtime = runtime
        self.lease_ttl = float(lease_ttl)
        self.workers: list[Worker] = []
        self.instances: list[Instance] = []
        self._factory = worker_factory or self._default_factory
        self._names = itertools.count(1)
        self._listeners: list[Callable[[], object]] = []
        self._closed = False

    # -- change notification -------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[], object]) -> Callable[[], None]:
        """Call ``listener()`` after any change: a worker started or killed, a state change, a key gone."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _changed(self) -> None:
        for listener in tuple(self._listeners):
            try:
                listener()
            except Exception:  # a display that fails to redraw must not break the pool
                log.exception("worker pool listener failed")

    # -- workers ---------------------------------------------------------------------------------------
    async def _default_factory(self, name: str, lease_ttl: float) -> DistributedRuntime:
        """A runtime on new connections to the panel runtime's world or servers (closed when it shuts down)."""
        backend = await self.runtime.backend.connect_peer()
        return await DistributedRuntime.create(backend=backend, lease_ttl=lease_ttl, name=name,
                                               profile=self.runtime.profile,
                                               health_check_interval=self.runtime.health_check_interval)

    async def start_worker(self, lease_ttl: float | None = None) -> Worker:
        """A new worker runtime with its own lease (``lease_ttl`` defaults to the pool's)."""
        if self._closed:
            raise RuntimeClosedError("this worker pool is closed")
        ttl = self.lease_ttl if lease_ttl is None else float(lease_ttl)
        if ttl <= 0:
            raise ValueError(f"lease TTL must be positive, got {ttl:g}")
        name = f"worker-{next(self._names)}"
        runtime = await self._factory(name, ttl)
        worker = Worker(name, runtime, ttl)
        self.workers.append(worker)
        self._changed()
        return worker

    def live_workers(self) -> list[Worker]:
        return [w for w in self.workers if w.alive]

    def worker(self, name: str) -> Worker:
        for w in self.workers:
            if w.name == name:
                return w
        raise KeyError(f"no worker named {name!r}")

    # -- serving ---------------------------------------------------------------------------------------
    @staticmethod
    def validate(namespace: str, component: str, endpoint: str) -> None:
        """Raise :class:`~dynamo_nb.errors.InvalidNameError` for the first bad name, before anything is created."""
        names.validate_namespace(namespace)
        names.validate_component(component)
        names.validate_endpoint(endpoint)

    async def serve(self, namespace: str, component: str, endpoint: str, handler: HandlerSpec, *,
                    worker: Worker | None = None, lease_ttl: float | None = None) -> Instance:
        """Serve ``handler`` at ``namespace.component.endpoint`` from ``worker`` (a new one by default).

        Bad names raise before a worker is started; if the start fails, a worker started for it is shut down.
        """
        self.validate(namespace, component, endpoint)
        new = worker is None
        if worker is None:
            worker = await self.start_worker(lease_ttl)
        elif not worker.alive:
            raise RuntimeClosedError(f"{worker.name} is {'killed' if worker.killed else 'shut down'}")
        ep = worker.runtime.namespace(namespace).component(component).endpoint(endpoint)
        try:
            served = await ep.endpoint_builder().handler(handler.fn).start()
        except BaseException:
            if new:
                await self._discard_worker(worker)
            raise
        instance = Instance(worker, served, handler.name)
        instance._unlisten = served.on_transition(lambda state, ts: self._on_transition(instance))
        self.instances.append(instance)
        self._changed()
        return instance

    async def _discard_worker(self, worker: Worker) -> None:
        try:
            await worker.runtime.shutdown()
        finally:
            if worker in self.workers:
                self.workers.remove(worker)
            self._changed()

    def _on_transition(self, instance: Instance) -> None:
        if instance.served.state.value == "Deregistered" and instance.gone_at is None:
            instance.gone_at = time.monotonic()
        self._changed()

    async def stop(self, instance: Instance, drain_timeout: float | None = None) -> None:
        """Graceful stop (seed §6.2): intake stops, in-flight streams drain, the lease is revoked."""
        await instance.served.stop(drain_timeout)
        self._changed()

    async def kill(self, worker: Worker) -> None:
        """Crash ``worker``: no deregistration; its instances vanish when its lease expires."""
        if worker.runtime.closed:
            return
        worker.lease_at_kill = worker.runtime.primary_lease_id if worker.runtime.lease_alive else 0
        worker.killed_at = time.monotonic()
        await worker.runtime.kill()
        await self._look_up_lease(worker)
        self._changed()

    # -- lease countdown ---------------------------------------------------------------------------------
    async def _look_up_lease(self, worker: Worker) -> bool:
        """Ask discovery how long the killed worker's lease has left; True when the answer changed."""
        before = worker.lease_left
        if worker.lease_at_kill:
            try:
                worker.lease_left = await self.runtime.backend.discovery.lease_time_left(worker.lease_at_kill)
            except Exception as exc:  # etcd briefly unreachable: keep the last answer, look again next time
                log.debug("looking up lease %x failed: %s", worker.lease_at_kill, exc)
        return worker.lease_left != before

    def lease_remaining(self, worker: Worker) -> float | None:
        """Seconds until a killed worker's lease expires, as discovery said at the last look (:meth:`refresh`);
        None when it is gone (or the worker was not killed)."""
        if not worker.killed or not worker.lease_at_kill:
            return None
        return worker.lease_left

    def pending_expiry(self) -> list[Instance]:
        """Instances of killed workers whose keys are still in etcd."""
        return [i for i in self.instances if i.worker.killed and not i.gone]

    async def refresh(self) -> bool:
        """Look up killed workers' instance keys and leases; mark the instances etcd dropped. True if anything
        changed; listeners hear of dropped instances (the countdown itself is read with :meth:`lease_remaining`)."""
        gone = False
        discovery = self.runtime.backend.discovery
        workers = {id(i.worker): i.worker for i in self.pending_expiry()}
        for instance in self.pending_expiry():
            try:
                _, kvs = await discovery.get_prefix(instance.served.key)
            except Exception as exc:  # etcd briefly unreachable: look again next time
                log.debug("looking up %s failed: %s", instance.served.key, exc)
                continue
            if not any(kv.key == instance.served.key for kv in kvs):
                instance.gone_at = time.monotonic()
                gone = True
        counted = False
        for worker in workers.values():  # after the keys: a key seen gone means its lease is gone too
            counted = await self._look_up_lease(worker) or counted
        if gone:
            self._changed()
        return gone or counted

    async def wait_expired(self, timeout: float | None = None, interval: float = 0.1) -> None:
        """Wait until every killed worker's keys are gone."""
        async def loop() -> None:
            while self.pending_expiry():
                await self.refresh()
                if self.pending_expiry():
                    await asyncio.sleep(interval)
        await asyncio.wait_for(loop(), timeout)

    def forget_finished(self) -> int:
        """Drop instances that are gone from the lists (and workers with nothing left); returns how many."""
        done = [i for i in self.instances if i.gone]
        for instance in done:
            if instance._unlisten is not None:
                instance._unlisten()
            self.instances.remove(instance)
        busy = {id(i.worker) for i in self.instances}
        self.workers = [w for w in self.workers if w.alive or id(w) in busy]
        if done:
            self._changed()
        return len(done)

    # -- teardown ------------------------------------------------------------------------------------------
    async def close(self) -> None:
        """Shut every live worker down gracefully."""
        self._closed = True
        for worker in list(self.workers):
            if worker.alive:
                try:
                    await worker.runtime.shutdown()
                except Exception as exc:
                    log.warning("shutting down %s failed: %s", worker.name, exc)
        self._changed()

    def __repr__(self) -> str:
        return (f"WorkerPool(runtime={self.runtime.name!r}, workers={len(self.live_workers())} live/"
                f"{len(self.workers)}, instances={len(self.instances)}, lease_ttl={self.lease_ttl:g}s)")
