"""``await serve(Entry, config=...)``: a service graph running in this process, each worker its own runtime.

Workers start dependencies first (a service's workers together), so a ``depends`` client finds its instances;
``stop()`` goes the other way, dependents first, so nothing is left calling a service that is gone. Every worker
records its lifecycle in its own runtime, so every diagram draws it; the handle itself draws the ``graph`` kind.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..core.drawable import Drawable
from ..core.runtime import DistributedRuntime
from ..core.snapshot import Focus, GraphSnap, Part, ServiceNodeSnap, WorkerSnap
from ..errors import ServiceConfigError
from .config import ServiceSettings, load_config, settings_for
from .decorators import ServiceSpec
from .graph import GraphPlan, plan_graph
from .resources import assign_gpus, detect_gpus
from .worker import Worker

__all__ = ["ServiceGraph", "serve"]


class ServiceGraph(Drawable):
    """A running graph: ``.services`` (class name → running workers), ``.scale(Service, n)``, ``.stop()``."""

    def __init__(self, plan: GraphPlan, settings: dict[str, ServiceSettings], runtime_options: dict[str, Any],
                 gpus: int | None) -> None:
        self.plan = plan
        self.settings = settings
        self.runtime_options = runtime_options
        self.gpus = gpus
        self.services: dict[str, list[Worker]] = {s.name: [] for s in plan.services}
        self.wanted: dict[str, int] = {s.name: settings[s.name].workers for s in plan.services}
        self.stopped = False
        self._next_index: dict[str, int] = {s.name: 0 for s in plan.services}
        self._listeners: list[Callable[..., None]] = []
        self._unsubscribe: dict[int, list[Callable[[], None]]] = {}
        self._lock = asyncio.Lock()

    # -- running --------------------------------------------------------------------------------------------
    @property
    def entry(self) -> type:
        return self.plan.entry.cls

    def workers(self) -> list[Worker]:
        return [w for s in self.plan.services for w in self.services[s.name]]

    def runtimes(self) -> list[DistributedRuntime]:
        return [w.runtime for w in self.workers() if w.runtime is not None]

    async def _make_runtime(self, name: str) -> DistributedRuntime:
        return await DistributedRuntime.create(name=name, **self.runtime_options)

    def _free_gpus(self, spec: ServiceSpec, count: int) -> list[list[int]]:
        per = self.settings[spec.name].gpus
        if not per:
            return [[] for _ in range(count)]
        used = {g for w in self.workers() for g in w.gpus}
        free = [g for g in range(self.gpus or 0) if g not in used]
        if self.gpus is None or len(free) < per * count:
            raise ServiceConfigError(
                "scale()", f"{spec.name}.ServiceArgs.resources.gpu",
                f"{count} more worker(s) x {per} GPU(s) asked, {len(free)} of {self.gpus or 0} GPU(s) free",
                "fewer workers, or gpus= naming more GPUs")
        return [free[i * per:(i + 1) * per] for i in range(count)]

    async def _add(self, spec: ServiceSpec, gpus: list[list[int]]) -> None:
        new = []
        for ids in gpus:
            index = self._next_index[spec.name]
            self._next_index[spec.name] = index + 1
            new.append(Worker(spec, index, self.settings[spec.name], ids))
        results = await asyncio.gather(*(w.start(self._make_runtime) for w in new), return_exceptions=True)
        started = [w for w, r in zip(new, results, strict=True) if not isinstance(r, BaseException)]
        self.services[spec.name].extend(started)
        for worker in started:
            self._watch(worker)
        self._changed()
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]

    async def _start(self, assignment: dict[tuple[str, int], list[int]]) -> None:
        for spec in self.plan.services:
            await self._add(spec, [assignment[(spec.name, i)] for i in range(self.settings[spec.name].workers)])

    async def scale(self, service: type | str, n: int) -> list[Worker]:
        """Run ``n`` workers of ``service``: start new ones, or stop the newest gracefully. Returns them all."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"scale() takes a number of workers, 0 or more, got {n!r}")
        spec = self.plan.spec(service)
        async with self._lock:
            if self.stopped:
                raise RuntimeError("this service graph was stopped")
            self.wanted[spec.name] = n
            running = self.services[spec.name]
            if n > len(running):
                await self._add(spec, self._free_gpus(spec, n - len(running)))
            elif n < len(running):
                extra = running[n:]
                del running[n:]
                await asyncio.gather(*(w.stop() for w in reversed(extra)))
                for w in extra:
                    self._unwatch(w)
                self._changed()
            return list(self.services[spec.name])

    async def stop(self) -> None:
        """Graceful, dependents first: each worker stops intake, drains, and revokes its lease."""
        async with self._lock:
            if self.stopped:
                return
            self.stopped = True
            for spec in reversed(self.plan.services):
                workers = self.services[spec.name]
                await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
            self._changed()

    async def __aenter__(self) -> "ServiceGraph":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- drawing ----------------------------------------------------------------------------------------------
    def snapshot(self) -> GraphSnap:
        nodes = []
        for spec in self.plan.services:
            workers = tuple(
                WorkerSnap(w.name, w.runtime.name if w.runtime else "", w.instance_id,
                           "" if w.stopped or not w.served else str(w.served[0].state), tuple(w.gpus))
                for w in self.services[spec.name])
            deps = tuple((attr, dep.target.__name__) for attr, dep in spec.dependencies.items()
                         if dep.target in spec.served_dependencies())
            resources = tuple((str(k), str(v)) for k, v in self.settings[spec.name].resources.items())
            nodes.append(ServiceNodeSnap(spec.name, spec.namespace, spec.component,
                                         tuple(e.name for e in spec.endpoints), workers, self.wanted[spec.name],
                                         resources, deps))
        return GraphSnap(self.plan.entry.name, tuple(nodes), "stopped" if self.stopped else "running")

    def _part(self) -> Part:
        entry = self.plan.entry
        return Part(Focus("graph", "", entry.namespace, entry.name),
                    tuple(rt.snapshot() for rt in self.runtimes()), graph=self.snapshot())

    def _subscribe(self, listener: Callable[..., None]) -> Callable[[], None]:
        self._listeners.append(listener)
        for worker in self.workers():
            if worker.runtime is not None:
                self._unsubscribe.setdefault(id(worker), []).append(worker.runtime.recorder.subscribe(listener))

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
        return unsubscribe

    def _watch(self, worker: Worker) -> None:
        if worker.runtime is not None:
            self._unsubscribe[id(worker)] = [worker.runtime.recorder.subscribe(fn) for fn in self._listeners]

    def _unwatch(self, worker: Worker) -> None:
        for undo in self._unsubscribe.pop(id(worker), []):
            undo()

    def _changed(self) -> None:
        for listener in tuple(self._listeners):
            listener(None)

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}×{len(ws)}" for name, ws in self.services.items())
        return f"<ServiceGraph {self.plan.entry.name}: {counts}{' (stopped)' if self.stopped else ''}>"


def prepare(entry: type, config: Mapping[str, Any] | str | Path | None = None, overrides: Iterable[str] = (),
            gpus: int | None = None) -> tuple[GraphPlan, dict[str, ServiceSettings],
                                               dict[tuple[str, int], list[int]], int | None]:
    """Everything checked before any worker starts: the graph, each service's settings and its GPU ids."""
    plan = plan_graph(entry)
    source = load_config(config, overrides)
    settings = settings_for(plan.services, source)
    asked = [(s.name, settings[s.name].workers, settings[s.name].gpus) for s in plan.services]
    available = gpus if gpus is not None else (detect_gpus() if any(g for _, _, g in asked) else None)
    where = f"{source.source} (with --gpus {gpus})" if gpus is not None else source.source
    assignment = assign_gpus(asked, available, where)
    return plan, settings, assignment, available


async def serve(entry: type, config: Mapping[str, Any] | str | Path | None = None, *,
                overrides: Iterable[str] = (), gpus: int | None = None, **runtime_options: Any) -> ServiceGraph:
    """Serve the graph of ``entry`` here, on the current backend; returns once every worker is registered.

    ``config`` is a dict or a YAML path (seed §7.3); ``overrides`` are ``--Service.key=value`` strings;
    ``gpus`` says how many GPUs exist when none can be detected. ``runtime_options`` go to each worker's
    :meth:`DistributedRuntime.create` (``etcd_endpoints=``, ``nats_server=``, ``world=``, ``lease_ttl=`` …).
    A worker that fails to start stops the ones already started, and its error is raised.
    """
    if "name" in runtime_options:
        raise TypeError("serve() names each worker's runtime itself (Service-0, Service-1, …)")
    plan, settings, assignment, available = prepare(entry, config, overrides, gpus)
    graph = ServiceGraph(plan, settings, dict(runtime_options), available)
    try:
        await graph._start(assignment)
    except BaseException:
        await graph.stop()
        raise
    return graph
