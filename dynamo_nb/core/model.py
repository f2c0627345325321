"""Namespace → Component → Endpoint: cheap, validated handles that know their derived names (seed §2–4)."""

from __future__ import annotations

import asyncio

from typing import TYPE_CHECKING, Any, Callable

from .. import names
from .drawable import Drawable
from .events import EventSubscription
from .snapshot import ComponentSnap, EndpointSnap, Focus, InstanceSnap, NamespaceSnap, Part, RuntimeState

if TYPE_CHECKING:
    from .client import Client
    from .runtime import DistributedRuntime
    from .served import EndpointBuilder, Handler, ServedEndpoint

__all__ = ["Namespace", "Component", "Endpoint"]


class _Handle(Drawable):
    """Equality and hashing by (runtime, path): asking twice for a name gives an equal object."""

    runtime: "DistributedRuntime"

    def _key(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash((type(self).__name__,) + self._key())

    def _subscribe(self, listener: Callable[..., None]) -> Callable[[], None]:
        return self.runtime.recorder.subscribe(listener)

    def _part_with(self, focus: Focus) -> Part:
        return Part(focus, (self.runtime.snapshot(),))


class Namespace(_Handle):
    """Logical isolation: components and events of one namespace never see another's (seed §2.1)."""

    def __init__(self, runtime: "DistributedRuntime", name: str) -> None:
        self.runtime = runtime
        self.name = names.validate_namespace(name)

    def _key(self) -> tuple[Any, ...]:
        return (id(self.runtime), self.name)

    def component(self, name: str) -> "Component":
        return Component(self, name)

    def components(self) -> list["Component"]:
        """Components of this namespace the runtime knows: served here, or seen live by a watcher."""
        return [c for c in self.runtime.known_components() if c.namespace == self]

    def event_subject(self, event: str) -> str:
        return self.runtime.profile.namespace_event_subject(self.name, names.validate_event(event))

    def snapshot(self) -> NamespaceSnap:
        """This namespace as its runtime knows it now: its components, endpoints and live instances."""
        return NamespaceSnap(self.name, tuple(c.snapshot() for c in self.components()))

    def _part(self) -> Part:
        return self._part_with(Focus("namespace", self.runtime.name, self.name, scope=self.name))

    async def publish(self, event: str, data: Any) -> None:
        """Send ``data`` (JSON) to every subscriber of ``event`` in this namespace."""
        await self.runtime._publish_event(self.event_subject(event), data, self.name, event)

    def subscribe(self, event: str) -> EventSubscription:
        """Async-iterate the namespace's ``event`` messages (``await`` it to be subscribed before publishing)."""
        return EventSubscription(self.runtime, self.event_subject(event), self.name, event)

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"


class Component(_Handle):
    """A deployable service unit: one NATS service, one etcd prefix, many endpoints (seed §3)."""

    def __init__(self, namespace: Namespace, name: str) -> None:
        self.namespace = namespace
        self.runtime = namespace.runtime
        self.name = names.validate_component(name)

    def _key(self) -> tuple[Any, ...]:
        return (id(self.runtime), self.namespace.name, self.name)

    def endpoint(self, name: str) -> "Endpoint":
        return Endpoint(self, name)

    def endpoints(self) -> list["Endpoint"]:
        """Endpoints of this component the runtime knows: served here, or seen live by a watcher."""
        return [e for e in self.runtime.known_endpoints() if e.component == self]

    def etcd_path(self) -> str:
        return self.runtime.profile.instance_prefix(self.namespace.name, self.name)

    def service_name(self) -> str:
        return self.runtime.profile.service_name(self.namespace.name, self.name)

    def path(self) -> str:
        return self.runtime.profile.component_path(self.namespace.name, self.name)

    def event_subject(self, event: str) -> str:
        return self.runtime.profile.component_event_subject(self.namespace.name, self.name,
                                                            names.validate_event(event))

    def snapshot(self) -> ComponentSnap:
        """This component with its derived names and the endpoints (and live instances) its runtime knows."""
        state = self.runtime.snapshot()
        return ComponentSnap(self.namespace.name, self.name, tuple(e.snapshot(state) for e in self.endpoints()),
                             self.etcd_path(), self.service_name(), self.path())

    def _part(self) -> Part:
        return self._part_with(Focus("component", self.runtime.name, self.namespace.name, self.name,
                                     scope=self.path()))

    async def publish(self, event: str, data: Any) -> None:
        """Send ``data`` (JSON) on ``namespace.{ns}.component.{name}.{event}`` (seed §3.4)."""
        await self.runtime._publish_event(self.event_subject(event), data, self.path(), event)

    def subscribe(self, event: str) -> EventSubscription:
        """Async-iterate this component's ``event`` messages."""
        return EventSubscription(self.runtime, self.event_subject(event), self.path(), event)

    async def scrape_stats(self, timeout: float = 1.0) -> list[dict[str, Any]]:
        """``$SRV.STATS`` from every live instance of this component's service, gathered over messaging."""
        return await self.runtime._scrape_stats(self, timeout)

    def __repr__(self) -> str:
        return f"Component({self.path()!r})"


class Endpoint(_Handle):
    """A callable entry point of a component (seed §4)."""

    def __init__(self, component: Component, name: str) -> None:
        self.component = component
        self.runtime = component.runtime
        self.name = names.validate_endpoint(name)
        self._reference = f"{component.namespace.name}.{component.name}.{self.name}"
        self._names = (component.namespace.name, component.name, self.name)  # what a snapshot lists it as

    def _key(self) -> tuple[Any, ...]:
        return (id(self.runtime), self.component.namespace.name, self.component.name, self.name)

    @property
    def namespace(self) -> Namespace:
        return self.component.namespace

    def reference(self) -> str:
        """The seed's reference form, ``namespace.Component.endpoint``."""
        return self._reference

    def path(self) -> str:
        return f"{self.component.path()}/{self.name}"

    def instance_key(self, lease_id: int) -> str:
        return self.runtime.profile.instance_key(self.namespace.name, self.component.name, self.name, lease_id)

    def subject(self, lease_id: int) -> str:
        return self.runtime.profile.endpoint_subject(self.namespace.name, self.component.name, self.name, lease_id)

    def event_subject(self, topic: str) -> str:
        """``namespace.{ns}.component.{comp}.endpoint.{ep}.{topic}``: where Dynamo publishes an endpoint's events."""
        c = self.component
        return self.runtime.profile.endpoint_event_subject(c.namespace.name, c.name, self.name,
                                                           names.validate_event(topic))

    async def publish(self, topic: str, data: Any) -> None:
        """Send ``data`` as this endpoint's ``topic`` event, in the profile's envelope.

        On the dynamo profile that is a real worker's msgpack envelope (publisher id, sequence, timestamp), and
        the publisher is announced under ``v1/event_channels/`` on the lease, so Dynamo's own subscribers
        (``DYN_EVENT_PLANE=nats``) receive it; on the seed profile it is the data as JSON.
        """
        await self.runtime._publish_event(self.event_subject(topic), data, self.path(), topic, self)

    def subscribe(self, topic: str) -> EventSubscription:
        """Async-iterate this endpoint's ``topic`` events (a real worker's ``kv_metrics``, ``kv-events``, …);
        ``.events()`` also gives each publisher's id and sequence."""
        return EventSubscription(self.runtime, self.event_subject(topic), self.path(), topic)

    def endpoint_builder(self) -> "EndpointBuilder":
        from .served import EndpointBuilder

        return EndpointBuilder(self)

    async def serve_endpoint(self, handler: "Handler", **options: Any) -> None:
        """Serve ``handler`` and return only when the endpoint stops (as Dynamo's ``serve_endpoint``).

        In a worker script, SIGINT/SIGTERM stop it gracefully (deregistered at once, not at lease expiry) and a
        second signal ends the process; where those signals already have handlers of their own they are kept.
        """
        from .signals import graceful_signals, restore_signals

        loop = asyncio.get_running_loop()
        signalled = asyncio.Event()
        taken = graceful_signals(loop, signalled)  # before registering: a signal during start is kept
        waits: set[asyncio.Future[Any]] = set()
        try:
            served = await self.endpoint_builder().handler(handler).options(**options).start()
            waits = {asyncio.ensure_future(served.wait_stopped()), asyncio.ensure_future(signalled.wait())}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if signalled.is_set():
                await served.stop()
        finally:
            for waiting in waits:
                waiting.cancel()
            restore_signals(loop, taken)

    async def client(self) -> "Client":
        from .client import Client

        return await Client.create(self)

    def served(self) -> list["ServedEndpoint"]:
        """Instances of this endpoint served by this runtime."""
        return [s for s in self.runtime.served_endpoints() if s.endpoint == self]

    def snapshot(self, state: "RuntimeState | None" = None) -> EndpointSnap:
        """This endpoint and the live instances its runtime serves or sees (from ``state`` when given)."""
        state = state or self.runtime.snapshot()
        found: dict[int, InstanceSnap] = {}
        for inst in state.served + state.watched:
            if inst.reference == self._reference:
                found.setdefault(inst.instance_id, inst)
        return EndpointSnap(self.namespace.name, self.component.name, self.name,
                            tuple(found[i] for i in sorted(found)))

    def _part(self) -> Part:
        c = self.component
        return self._part_with(Focus("endpoint", self.runtime.name, c.namespace.name, c.name, self.name,
                                     scope=c.path()))

    def __repr__(self) -> str:
        return f"Endpoint({self.reference()!r})"
