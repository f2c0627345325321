"""One worker of a service: its own runtime (own lease, own instance id), its instance, its endpoints served.

Start order inside a worker: create the instance → set ``self.config`` → give each ``depends`` attribute a
:class:`DependencyClient` → run the ``@async_on_start`` methods → serve every ``@dynamo_endpoint``. So set-up
finishes before the service registers, and a service can call its dependencies from set-up.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable

from ..core.client import Client
from ..core.runtime import DistributedRuntime
from ..core.served import ServedEndpoint
from .config import ServiceSettings
from .decorators import ServiceSpec, spec_of

__all__ = ["Worker", "DependencyClient", "EndpointCaller", "DEPENDENCY_WAIT"]

#: how long a call through ``depends`` waits for the dependency's first instance before giving up
DEPENDENCY_WAIT = 10.0


class EndpointCaller:
    """``self.worker.generate(request)``: an async iterator over the streamed items, round-robin."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def __call__(self, request: Any) -> AsyncIterator[Any]:
        return self._stream(request)

    async def _stream(self, request: Any) -> AsyncIterator[Any]:
        if not self.client.instance_ids():
            await self.client.wait_for_instances(timeout=DEPENDENCY_WAIT)
        stream = await self.client.round_robin(request)
        try:
            async for item in stream:
                yield item
        finally:
            await stream.aclose()

    def __repr__(self) -> str:
        return f"<endpoint {self.client.endpoint.reference()}: {len(self.client.instance_ids())} instance(s)>"


class DependencyClient:
    """What a ``depends(Other)`` attribute is on a running instance: one attribute per endpoint of ``Other``."""

    def __init__(self, spec: ServiceSpec, callers: dict[str, EndpointCaller]) -> None:
        self._spec = spec
        self._callers = callers

    def __getattr__(self, name: str) -> EndpointCaller:
        callers = self.__dict__.get("_callers", {})
        if name in callers:
            return callers[name]
        spec = self.__dict__.get("_spec")
        have = ", ".join(callers) or "none"
        raise AttributeError(f"{getattr(spec, 'name', '?')} has no endpoint {name!r} (it has: {have})")

    def endpoint(self, name: str) -> EndpointCaller:
        """For endpoint names that are not Python identifiers (``chat/completions``)."""
        return self._callers[name]

    @property
    def clients(self) -> dict[str, Client]:
        return {name: caller.client for name, caller in self._callers.items()}

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._callers))

    def __repr__(self) -> str:
        return f"<depends {self._spec.name}: {', '.join(self._callers)}>"


class Worker:
    """One running worker: ``.runtime``, ``.instance`` (the service object), ``.served``, ``.instance_id``."""

    def __init__(self, spec: ServiceSpec, index: int, settings: ServiceSettings, gpus: list[int] | None = None
                 ) -> None:
        self.spec = spec
        self.index = index
        self.settings = settings
        self.gpus = list(gpus or [])
        self.runtime: DistributedRuntime | None = None
        self.instance: Any = None
        self.served: list[ServedEndpoint] = []
        self.clients: list[Client] = []
        self.stopped = False

    @property
    def name(self) -> str:
        return f"{self.spec.name}-{self.index}"

    @property
    def instance_id(self) -> int:
        return self.runtime.primary_lease_id if self.runtime is not None else 0

    async def start(self, make_runtime: Callable[[str], Any]) -> "Worker":
        """Create the runtime (``await make_runtime(name)``), the instance, then serve; undone on failure."""
        self.runtime = await make_runtime(self.name)
        try:
            await self._start_instance()
        except BaseException:
            await self.stop()
            raise
        return self

    async def _start_instance(self) -> None:
        runtime = self.runtime
        assert runtime is not None
        spec = self.spec
        obj = spec.cls()
        obj.config = dict(self.settings.config)
        for attr, dep in spec.dependencies.items():
            if dep.target not in spec.served_dependencies():
                continue
            target = spec_of(dep.target)
            component = runtime.namespace(target.namespace).component(target.component)
            callers: dict[str, EndpointCaller] = {}
            for ep in target.endpoints:
                client = await component.endpoint(ep.name).client()
                self.clients.append(client)
                callers[ep.name] = EndpointCaller(client)
            obj.__dict__[attr] = DependencyClient(target, callers)
        self.instance = obj
        for attr in spec.on_start:
            await getattr(obj, attr)()
        component = runtime.namespace(spec.namespace).component(spec.component)
        for ep in spec.endpoints:
            served = await component.endpoint(ep.name).endpoint_builder().handler(getattr(obj, ep.attr)).start()
            self.served.append(served)

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Graceful: each endpoint stops intake and drains, the clients close, the lease is revoked."""
        if self.stopped:
            return
        self.stopped = True
        await asyncio.gather(*(s.stop(drain_timeout) for s in self.served), return_exceptions=True)
        for client in self.clients:
            try:
                await client.close()
            except Exception:
                pass
        if self.runtime is not None and not self.runtime.closed:
            await self.runtime.shutdown()

    async def kill(self) -> None:
        """As if the process died: nothing deregisters; the keys go when the lease expires."""
        self.stopped = True
        if self.runtime is not None and not self.runtime.closed:
            await self.runtime.kill()

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else "running"
        return f"<Worker {self.name} instance {self.instance_id:x} {state}>"
