"""DistributedRuntime: one process's connection to discovery and messaging, its primary lease and registry."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import random
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

from .. import names
from ..backends.base import Backend
from ..errors import RuntimeClosedError
from ..transport.profile import SEED, SeedProfile
from .eager import EagerStarter
from .events import EventSubscription
from .health import HealthSweeper
from .drawable import Drawable
from .model import Component, Endpoint, Namespace
from .recorder import Kind
from .recording import RuntimeRecorder
from .registry import Registry
from .snapshot import CallSnap, ComponentSnap, Focus, InstanceSnap, LeaseSnap, Part, RuntimeSnap, RuntimeState

if TYPE_CHECKING:
    from ..backends.embedded import EmbeddedWorld
    from .client import Client
    from .served import ServedEndpoint

__all__ = ["DistributedRuntime", "EtcdClient", "DEFAULT_LEASE_TTL", "PROFILE_ENV", "choose_profile"]

log = logging.getLogger(__name__)

DEFAULT_LEASE_TTL = 10.0  # the seed's primary lease TTL (seconds); the dynamo profile brings its own (30 s)
PROFILE_ENV = "DYNAMO_NB_PROFILE"
_runtime_ids = itertools.count(1)


def choose_profile(profile: "str | SeedProfile | None" = None, request_plane: str | None = None) -> SeedProfile:
    """The naming profile of a new runtime: the argument, else ``DYNAMO_NB_PROFILE``, else the seed's.

    For ``"dynamo"`` the request plane is the argument, else Dynamo's ``DYN_REQUEST_PLANE``, else ``"tcp"``
    (Dynamo 1.6's default), and the advertised codec is ``DYN_REQUEST_PLANE_CODEC``, else msgpack when it is
    installed, else JSON.
    """
    if profile is not None and not isinstance(profile, str):
        if request_plane is not None and getattr(profile, "serve_plane", None) != request_plane:
            raise ValueError(f"request_plane={request_plane!r} contradicts the profile given ({profile!r})")
        return profile
    name = (profile or os.environ.get(PROFILE_ENV) or "seed").strip().lower()
    if name == "seed":
        if request_plane not in (None, "nats"):
            raise ValueError(f"the seed profile has only the NATS request plane, not {request_plane!r}")
        return SEED
    if name == "dynamo":
        from ..transport.dynamo import DynamoProfile

        plane = (request_plane or os.environ.get("DYN_REQUEST_PLANE") or "tcp").strip().lower()
        return DynamoProfile(plane, codec=os.environ.get("DYN_REQUEST_PLANE_CODEC") or None)
    raise ValueError(f"unknown profile {name!r}: use 'seed' or 'dynamo'")


class EtcdClient:
    """The small etcd surface Dynamo's Python bindings expose (``runtime.etcd_client()``), on every backend."""

    def __init__(self, runtime: "DistributedRuntime") -> None:
        self._runtime = runtime

    def primary_lease_id(self) -> int:
        return self._runtime.primary_lease_id

    async def kv_get_prefix(self, prefix: str) -> list[dict[str, Any]]:
        """Every key under ``prefix`` as ``{"key", "value", "create_revision", "mod_revision", "version", "lease"}``."""
        _, kvs = await self._runtime.backend.discovery.get_prefix(prefix)
        return [kv.as_dict() for kv in kvs]

    async def kv_create(self, key: str, value: bytes, lease_id: int | None = None) -> None:
        """Create-only put; raises if the key exists."""
        from ..errors import RegistrationError

        if not await self._runtime.backend.discovery.create(key, bytes(value), lease_id):
            raise RegistrationError(f"key {key!r} already exists")

    async def kv_put(self, key: str, value: bytes, lease_id: int | None = None) -> None:
        await self._runtime.backend.discovery.put(key, bytes(value), lease_id)

    async def kv_delete(self, key: str) -> int:
        return await self._runtime.backend.discovery.delete(key)


class DistributedRuntime(Drawable):
    """Root of the object model (seed §1): ``runtime.namespace(n).component(c).endpoint(e)``.

    ``await DistributedRuntime.create()`` uses the embedded backend unless servers are given (or configured in
    ``ETCD_ENDPOINTS`` / ``NATS_SERVER``). Every runtime on one event loop without servers shares one embedded
    world, so a notebook can run a frontend and several workers as separate runtimes.
    """

    def __init__(self, backend: Backend, *, lease_ttl: float = DEFAULT_LEASE_TTL, name: str | None = None,
                 health_check_interval: float = 1.0, drain_timeout: float = 5.0,
                 profile: SeedProfile = SEED, record_capacity: int = 2000) -> None:
        if lease_ttl <= 0:
            raise ValueError(f"lease_ttl must be positive, got {lease_ttl}")
        self.id = next(_runtime_ids)
        self.name = name or f"runtime-{self.id}"
        self.backend = backend
        self.lease_ttl = float(lease_ttl)
        self.health_check_interval = health_check_interval
        self.drain_timeout = drain_timeout
        self.profile = profile
        self.recorder = RuntimeRecorder(record_capacity, name=self.name, profile=profile.name)
        self.registry = Registry(self)
        self.primary_lease_id = 0
        self.lease_alive = False
        self.closed = False
        self.killed = False
        self.read_only = False  # attach(): watches and draws a deployment, registers nothing
        self._served: dict[ServedEndpoint, None] = {}  # in start order; a dict so a stop costs one removal
        self._serving: dict[Any, dict[ServedEndpoint, None]] = {}  # endpoint key -> its instances served here
        self._clients: set[Client] = set()
        self._event_subscriptions: set[EventSubscription] = set()
        # endpoint event subject -> [publisher id, next sequence, lease its channel was announced on]
        self._event_publishers: dict[str, list[int]] = {}
        # calls made by clients since closed (they still happened), merged per caller and callee instance
        self._past_calls: dict[tuple[str, int, str, int], CallSnap] = {}
        self._keepalive_task: asyncio.Task[None] | None = None
        self._health = HealthSweeper()  # every served instance's health checks
        self._eager = EagerStarter()  # request streams on a plane whose frames never wait
        self._lease_lock = asyncio.Lock()
        self.keepalives = 0
        self.events_unsent = 0  # events publish() raised for because NATS was down (never silently lost)
        self.lease_renewed_at = 0.0  # wall clock of the last grant or keep-alive etcd confirmed
        self.keepalive_paused = False  # a fault caused on purpose (dynamo_nb.faults): etcd hears nothing
        self._parts = _Parts()  # what the last snapshot built, so the next rebuilds only what changed
        self.recorder.track(self.snapshot)  # a frame after each burst of records: what time travel draws
        self.lease_reading: tuple[float | None, float] = (None, 0.0)  # (time left, read at) as etcd last said

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    async def create(
        cls,
        *,
        etcd_endpoints: str | Sequence[str] | None = None,
        nats_server: str | None = None,
        lease_ttl: float | None = None,
        world: "EmbeddedWorld | None" = None,
        name: str | None = None,
        health_check_interval: float = 1.0,
        drain_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        profile: "str | SeedProfile | None" = None,
        request_plane: str | None = None,
        backend: Backend | None = None,
    ) -> "DistributedRuntime":
        """Connect and grant the primary lease.

        Servers come from the arguments, else from ``ETCD_ENDPOINTS`` / ``NATS_SERVER``; with neither, the
        embedded world of this event loop (or ``world``) is used. ``backend`` hands over connections opened
        beforehand (``other.backend.connect_peer()``: a second process on the same servers); the runtime closes
        them when it shuts down. ``profile="dynamo"`` registers, serves and
        calls as a real Dynamo 1.6 process does, on ``request_plane="tcp"`` (its default) or ``"nats"``
        (see :func:`choose_profile`); ``lease_ttl`` then defaults to Dynamo's 30 s.
        """
        if backend is not None and (etcd_endpoints or nats_server or world is not None):
            raise ValueError("give either backend= (connections already open) or servers / world=, not both")
        chosen = choose_profile(profile, request_plane)
        if lease_ttl is None:
            lease_ttl = chosen.lease_ttl or DEFAULT_LEASE_TTL
        backend = backend or await _connect(etcd_endpoints, nats_server, world, connect_timeout)
        runtime = cls(backend, lease_ttl=lease_ttl, name=name, health_check_interval=health_check_interval,
                      drain_timeout=drain_timeout, profile=chosen)
        try:
            await runtime._grant_primary_lease()
        except BaseException:
            await runtime._close_backend()
            raise
        return runtime

    @classmethod
    async def attach(
        cls,
        *,
        etcd_endpoints: str | Sequence[str] | None = None,
        nats_server: str | None = None,
        profile: "str | SeedProfile | None" = None,
        request_plane: str | None = None,
        world: "EmbeddedWorld | None" = None,
        name: str | None = None,
        connect_timeout: float = 5.0,
    ) -> "DistributedRuntime":
        """A read-only runtime that watches everything registered (no names given in advance) and draws it live.

        It takes no lease and registers nothing (serving or publishing raises); its clients can still call.
        Servers and profile come as for :meth:`create`.
        """
        chosen = choose_profile(profile, request_plane)
        backend = await _connect(etcd_endpoints, nats_server, world, connect_timeout)
        runtime = cls(backend, lease_ttl=chosen.lease_ttl or DEFAULT_LEASE_TTL, profile=chosen,
                      name=name or f"attached-{next(_runtime_ids)}")
        runtime.read_only = True
        try:
            await runtime.registry.scan(runtime.name)
        except BaseException:
            await runtime._close_backend()
            raise
        return runtime

    # -- object model ----------------------------------------------------------------------------------
    def namespace(self, name: str) -> Namespace:
        return Namespace(self, name)

    def endpoint(self, reference: str) -> Endpoint:
        """Parse the seed's reference form ``namespace.Component.endpoint/path`` (§4.2)."""
        ref = names.parse_endpoint_ref(reference)
        return self.namespace(ref.namespace).component(ref.component).endpoint(ref.endpoint)

    def etcd_client(self) -> EtcdClient:
        return EtcdClient(self)

    def served_endpoints(self) -> list["ServedEndpoint"]:
        return list(self._served)

    def clients(self) -> list["Client"]:
        return sorted(self._clients, key=lambda c: c.id)

    def known_endpoints(self) -> list[Endpoint]:
        """Endpoints served here or seen live through this runtime's watchers, for displays."""
        seen: dict[Any, Endpoint] = {}
        for served in self._served:
            seen.setdefault(served.endpoint._key(), served.endpoint)
        for client in self._clients:
            seen.setdefault(client.endpoint._key(), client.endpoint)
        for watcher in self.registry.watchers.values():
            for info in watcher.instances.values():
                ep = self.namespace(info.namespace).component(info.component).endpoint(info.endpoint)
                seen.setdefault(ep._key(), ep)
        return list(seen.values())

    def known_components(self) -> list[Component]:
        seen: dict[Any, Component] = {}
        for ep in self.known_endpoints():
            seen.setdefault(ep.component._key(), ep.component)
        return list(seen.values())

    def known_namespaces(self) -> list[Namespace]:
        seen: dict[Any, Namespace] = {}
        for comp in self.known_components():
            seen.setdefault(comp.namespace._key(), comp.namespace)
        return list(seen.values())

    @property
    def lease_expires_at(self) -> float:
        """Wall-clock time the primary lease runs out unless renewed (0 when there is none)."""
        return self.lease_renewed_at + self.lease_ttl if self.lease_renewed_at else 0.0

    # -- snapshots ---------------------------------------------------------------------------------------
    def snapshot(self) -> RuntimeState:
        """Everything this runtime knows now, as plain data: what it serves, watches and calls, and its records
        and earlier frames (this state is kept as a frame too, so whatever is drawn live can be drawn again).

        Incremental: only the parts touched since the last snapshot are built again (see :class:`_Parts`); the
        others are the same objects as in the last frame, so the result equals a snapshot built from nothing."""
        watched, leases = self._watched()
        served = self._served_snapshots(leases)
        clients = self.clients()
        endpoints, components = self._names(clients)
        state = "killed" if self.killed else ("shut down" if self.closed else "running")
        frame = RuntimeState(
            runtime=RuntimeSnap(self.name, self.backend.kind, self.primary_lease_id, self.lease_ttl,
                                self.lease_alive, state, self.keepalives),
            served=served,
            watched=watched,
            components=components,
            endpoints=endpoints,
            clients=tuple(c.snapshot() for c in clients),
            calls=tuple(call for c in clients for call in c.call_snapshots()) + tuple(self._past_calls.values()),
            registry=self.registry.snapshot(),
            subscriptions=tuple(sub.snapshot() for sub in self._event_subscriptions),
            events_unsent=self.events_unsent,
        )
        self.recorder.weigh(len(served) + len(watched))
        self.recorder.keep(frame)
        return replace(frame, records=tuple(self.recorder.records), dropped=self.recorder.dropped,
                       frames=tuple(self.recorder.frames))

    def _watched(self) -> tuple[tuple[InstanceSnap, ...], dict[str, LeaseSnap]]:
        """Every watched instance, and each watched key's lease; a watcher's part is rebuilt when it changed."""
        parts, kept = self._parts, self._parts.watchers
        versions = tuple((prefix, id(w), w.version) for prefix, w in self.registry.watchers.items())
        if versions == parts.watch_versions:
            return parts.watched, parts.leases
        fresh: dict[str, _Watched] = {}
        for prefix, watcher in self.registry.watchers.items():
            old = kept.get(prefix)
            if old is None or old.watcher is not watcher or old.version != watcher.version:
                leases = {key: lease for key in watcher.instances if (lease := watcher.lease_of(key)) is not None}
                snaps = tuple(
                    InstanceSnap(info.namespace, info.component, info.endpoint, info.instance_id, key,
                                 info.subject, seen_by=(self.name,), lease=leases.get(key), plane=info.plane,
                                 address=info.subject, codec=info.codec, device_type=info.device_type or "")
                    for key, info in watcher.instances.items())
                names = tuple(dict.fromkeys((i.namespace, i.component, i.endpoint) for i in watcher.instances.values()))
                old = _Watched(watcher, watcher.version, snaps, leases, names)
            fresh[prefix] = old
        merged: dict[str, LeaseSnap] = {}
        for entry in fresh.values():  # a key two watchers hold: the later one's reading, as one comprehension had it
            merged.update(entry.leases)
        parts.watchers = fresh
        parts.watch_versions = versions
        parts.watched = tuple(itertools.chain.from_iterable(entry.snaps for entry in fresh.values()))
        if merged != parts.leases:  # a served instance whose key is watched here too shows that reading
            parts.touched.update(parts.served)
        parts.leases = merged
        return parts.watched, merged

    def _served_snapshots(self, leases: dict[str, LeaseSnap]) -> tuple[InstanceSnap, ...]:
        """The served instances' snapshots: built again only for those touched since the last snapshot."""
        parts = self._parts
        parts.scan(self.recorder)
        own = (self.primary_lease_id, self.lease_reading, self.keepalive_paused,
               self.keepalive_paused and self.lease_expires_at)
        if own != parts.own:  # every instance on the runtime's lease shows it
            parts.own = own
            parts.touched.update(parts.served)
        todo = parts.touched | parts.busy
        parts.touched = set()
        if not todo and not parts.reordered:
            return parts.served_tuple
        changed = False
        for served in todo:
            if served not in parts.served:
                parts.busy.discard(served)
                continue
            snap = served._leased_snapshot(leases.get(served.key) or self._own_lease(served.lease_id,
                                                                                    served.endpoint.name))
            if snap is not parts.served[served]:
                parts.served[served] = snap
                changed = True
            if snap.inflight:  # a request ending changes nothing recorded afterwards: look again next time
                parts.busy.add(served)
            else:
                parts.busy.discard(served)
        if changed or parts.reordered:
            parts.served_tuple = tuple(parts.served.values())  # type: ignore[arg-type]
            parts.reordered = False
        return parts.served_tuple

    def _names(self, clients: "list[Client]") -> tuple[tuple[tuple[str, str, str], ...], tuple[ComponentSnap, ...]]:
        """The endpoints and components known here (served, called, watched), in that order, with the names
        the profile derives for each component; the same tuples again while none came or went."""
        parts = self._parts
        key = (parts.generation, tuple(c.endpoint._names for c in clients), parts.watch_versions)
        if key == parts.names_key:
            return parts.endpoints, parts.components
        if parts.served_names[0] != parts.generation:
            parts.served_names = (parts.generation, tuple(dict.fromkeys(s.endpoint._names for s in self._served)))
        watched = (names for entry in parts.watchers.values() for names in entry.names)
        endpoints = tuple(dict.fromkeys(itertools.chain(parts.served_names[1], key[1], watched)))
        if endpoints != parts.endpoints:
            made = parts.component_snaps
            components = []
            for ns, comp in dict.fromkeys((ns, comp) for ns, comp, _ in endpoints):
                snap = made.get((ns, comp))
                if snap is None:
                    snap = made[(ns, comp)] = ComponentSnap(
                        ns, comp, (), self.profile.instance_prefix(ns, comp), self.profile.service_name(ns, comp),
                        self.profile.component_path(ns, comp))
                components.append(snap)
            parts.endpoints, parts.components = endpoints, tuple(components)
        parts.names_key = key
        return parts.endpoints, parts.components

    def _forget_parts(self) -> None:
        """Build the next snapshot from nothing, as the first one was (what an incremental one must equal)."""
        self._parts = _Parts()
        for served in self._served:
            self._parts.add(served)
        self.registry._kept.clear()
        for served in self._served:
            served._snap = served._leased = None

    def _touch(self, served: "ServedEndpoint") -> None:
        """Something a snapshot of ``served`` shows changed with no record naming it: build it again next time."""
        self._parts.touched.add(served)

    def _own_lease(self, instance_id: int, endpoint: str) -> LeaseSnap | None:
        """A served instance's lease as etcd last told this runtime (at grant, then at each keep-alive)."""
        left, read_at = self.lease_reading
        if not read_at or instance_id != self.primary_lease_id:
            return None
        return LeaseSnap(instance_id, endpoint, self.primary_lease_id, left, read_at)

    def _part(self) -> Part:
        return Part(Focus("runtime", self.name), (self.snapshot(),))

    def _subscribe(self, listener: Any) -> Any:
        return self.recorder.subscribe(listener)

    def _retire_calls(self, calls: "Sequence[CallSnap]") -> None:
        """Keep the calls of a client that goes away, merged by who called which instance."""
        for call in calls:
            key = (call.caller, call.caller_instance, call.callee, call.callee_instance)
            old = self._past_calls.get(key)
            self._past_calls[key] = call if old is None else replace(
                call, count=old.count + call.count, last=max(old.last, call.last))

    def _check_open(self) -> None:
        if self.closed:
            state = "killed" if self.killed else "shut down"
            raise RuntimeClosedError(f"{self.name} was {state}")

    # -- lease -------------------------------------------------------------------------------------------
    async def _grant_primary_lease(self) -> int:
        lease_id = await self.backend.discovery.grant_lease(self.lease_ttl)
        self.primary_lease_id = lease_id
        self.lease_alive = True
        self.lease_renewed_at = time.time()
        self.lease_reading = (self.lease_ttl, self.lease_renewed_at)  # etcd granted exactly this TTL
        self.recorder.record(Kind.LEASE_GRANT, self.name, "etcd", lease_id=lease_id, ttl=self.lease_ttl)
        if self._keepalive_task is None or self._keepalive_task.done():
            self._keepalive_task = asyncio.get_running_loop().create_task(self._keepalive_loop(),
                                                                          name=f"keepalive:{self.name}")
        return lease_id

    async def _acquire_lease(self, served: "ServedEndpoint") -> int:
        """The primary lease for a new instance (granted anew if the last stop revoked it)."""
        self._check_open()
        if self.read_only:
            from ..errors import RegistrationError

            raise RegistrationError(f"{self.name} is attached read-only: it draws the deployment, it serves nothing")
        async with self._lease_lock:
            if not self.lease_alive:
                await self._grant_primary_lease()
            self._served[served] = None
            self._serving.setdefault(served.endpoint._key(), {})[served] = None
            self._parts.add(served)
            return self.primary_lease_id

    def _release_lease(self, served: "ServedEndpoint") -> None:
        if served not in self._served:
            return
        del self._served[served]
        self._parts.remove(served)
        key = served.endpoint._key()
        same = self._serving[key]
        del same[served]
        if not same:
            del self._serving[key]

    def _instances_of(self, endpoint: Endpoint) -> list["ServedEndpoint"]:
        """The instances of ``endpoint`` this runtime serves (a lookup, however many it serves)."""
        return list(self._serving.get(endpoint._key(), ()))

    async def _keepalive_loop(self) -> None:
        """Refresh the lease every TTL/3; if etcd lost it, take a new one and register everything again."""
        interval = max(self.lease_ttl / 3.0, 0.01)
        while not self.closed:
            await asyncio.sleep(interval)
            if not self.lease_alive or self.keepalive_paused:
                continue
            try:
                ok = await self.backend.discovery.keep_alive(self.primary_lease_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # etcd unreachable for now: try again next tick
                log.warning("%s: keep-alive failed: %s", self.name, exc)
                continue
            if ok:
                self.keepalives += 1
                self.lease_renewed_at = time.time()
                try:
                    self.lease_reading = (await self.backend.discovery.lease_time_left(self.primary_lease_id),
                                          time.time())
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.debug("%s: reading the lease's time left failed: %s", self.name, exc)
                self.recorder.record(Kind.LEASE_KEEPALIVE, self.name, "etcd", lease_id=self.primary_lease_id)
                continue
            self.recorder.record(Kind.LEASE_LOST, self.name, "etcd", lease_id=self.primary_lease_id)
            log.warning("%s: lease %x is gone; re-granting and re-registering", self.name, self.primary_lease_id)
            try:
                async with self._lease_lock:
                    self.lease_alive = False
                    await self._grant_primary_lease()
                    for served in list(self._served):
                        await served._reregister(self.primary_lease_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s: re-registration failed: %s", self.name, exc)

    async def _deregister(self, served: "ServedEndpoint") -> None:
        """Delete the instance key; revoke the lease when no other instance of this runtime holds it."""
        async with self._lease_lock:
            self._release_lease(served)
            others = any(s.lease_id == served.lease_id for s in self._served)
            if others or not self.lease_alive:
                await self.backend.discovery.delete(served.key)
                self.recorder.record(Kind.KV_DELETE, served.actor, "etcd", key=served.key, lease_id=served.lease_id)
                return
            await self.backend.discovery.revoke_lease(served.lease_id)
            self.lease_alive = False
            self.recorder.record(Kind.LEASE_REVOKE, served.actor, "etcd", lease_id=served.lease_id, keys=[served.key])

    # -- events ------------------------------------------------------------------------------------------
    async def _publish_event(self, subject: str, data: Any, scope: str, event: str,
                             endpoint: "Endpoint | None" = None) -> None:
        """Publish one event: JSON on a namespace or component subject; through the profile for an endpoint."""
        self._check_open()
        if self.read_only:
            from ..errors import RegistrationError

            raise RegistrationError(f"{self.name} is attached read-only: it publishes nothing")
        sender: dict[str, Any] = {}
        if endpoint is None:
            try:
                payload = json.dumps(data).encode()
            except (TypeError, ValueError) as exc:
                raise TypeError(f"event data must be JSON-serialisable: {exc}") from exc
            preview = payload
        else:
            publisher, sequence = await self._event_publisher(endpoint, event, subject)
            payload = self.profile.encode_event(data, topic=event, publisher_id=publisher, sequence=sequence)
            preview = json.dumps(data, default=repr).encode()
            sender = {"publisher": publisher, "sequence": sequence}
        messaging = self.backend.messaging
        outage = messaging.outage()
        if outage is not None:  # nats-py would buffer it and the subscribers, reconnecting too, would miss it
            self.events_unsent += 1
            raise outage
        await messaging.publish(subject, payload)
        self.recorder.record(Kind.EVENT_PUBLISH, scope, "NATS", subject=subject, scope=scope, event=event,
                             size=len(payload), payload=preview[:256], **sender)  # a bounded preview for diagrams

    async def _event_publisher(self, endpoint: "Endpoint", topic: str, subject: str) -> tuple[int, int]:
        """This runtime's publisher of one endpoint topic: a random id, announced on the lease (again if the
        lease changed), and the next sequence number (Dynamo's subscribers read a gap as lost events)."""
        state = self._event_publishers.setdefault(subject, [random.getrandbits(53) or 1, 0, 0])
        publisher = state[0]
        if state[2] != self.primary_lease_id or not self.lease_alive:
            c = endpoint.component
            channel = self.profile.event_channel(c.namespace.name, c.name, endpoint.name, topic, publisher)
            if channel is not None:
                async with self._lease_lock:
                    if not self.lease_alive:
                        await self._grant_primary_lease()
                key, value = channel
                await self.backend.discovery.put(key, value, self.primary_lease_id)
                self.recorder.record(Kind.KV_CREATE, self.name, "etcd", key=key, lease_id=self.primary_lease_id)
            state[2] = self.primary_lease_id
        sequence = state[1]
        state[1] += 1
        return publisher, sequence

    async def _scrape_stats(self, component: Component, timeout: float) -> list[dict[str, Any]]:
        """Collect ``$SRV.STATS`` replies from every instance of the component's service."""
        slug = self.profile.service_slug(component.namespace.name, component.name)
        messaging = self.backend.messaging
        replies: list[dict[str, Any]] = []
        inbox = f"_STATS.{self.name}.{id(replies):x}"
        done = asyncio.Event()

        async def on_reply(msg: Any) -> None:
            try:
                replies.append(json.loads(msg.data))
            except ValueError:
                pass

        # Ask the service's subject and gather every reply that arrives within the timeout.
        sub = await messaging.subscribe(inbox, on_reply)
        try:
            await messaging.publish(f"$SRV.STATS.{slug}", b"", reply=inbox)
            try:
                await asyncio.wait_for(done.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        finally:
            await sub.unsubscribe()
        return sorted(replies, key=lambda r: r.get("id", ""))

    # -- teardown ------------------------------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Stop every served endpoint gracefully, close clients and subscriptions, revoke the lease."""
        if self.closed:
            return
        for served in list(self._served):
            try:
                await served.stop()
            except Exception as exc:
                log.warning("%s: stopping %s failed: %s", self.name, served.actor, exc)
        self.closed = True
        self._health.close()
        self._eager.close()
        for client in list(self._clients):
            await client.close()
        for sub in list(self._event_subscriptions):
            await sub.close()
        if self.lease_alive:
            try:
                await self.backend.discovery.revoke_lease(self.primary_lease_id)
                self.recorder.record(Kind.LEASE_REVOKE, self.name, "etcd", lease_id=self.primary_lease_id, keys=[])
            except Exception as exc:
                log.warning("%s: revoking lease failed: %s", self.name, exc)
            self.lease_alive = False
        await self._stop_keepalive()
        await self.registry.close()
        await self._close_backend()

    async def kill(self) -> None:
        """Simulate a crash: keep-alive stops, connections drop, nothing is revoked or deleted.

        The instance keys stay in etcd until the lease expires (``lease_ttl``); clients elsewhere then drop them.
        """
        if self.closed:
            return
        self.closed = True
        self.killed = True
        await self._stop_keepalive()
        for served in list(self._served):
            served._kill()
        self._health.close()
        self._eager.close()
        self.recorder.record(Kind.KILL, "App", self.name, lease_id=self.primary_lease_id,
                             lease_expires_at=self.lease_expires_at)
        await self.backend.messaging.close()  # subscriptions vanish: callers get no-responders at once
        for client in list(self._clients):
            client._closed = True
            self._retire_calls(client.call_snapshots())
        self._clients.clear()
        await self.registry.close()
        await self._close_backend()

    async def _stop_keepalive(self) -> None:
        task, self._keepalive_task = self._keepalive_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    async def _close_backend(self) -> None:
        parts: list[Any] = [*self.backend.requests.values(), self.backend.messaging, self.backend.discovery,
                            self.backend.responses]
        for part in parts:
            try:
                await part.close()
            except Exception as exc:
                log.debug("closing %r: %s", part, exc)

    async def __aenter__(self) -> "DistributedRuntime":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    def __repr__(self) -> str:
        state = "killed" if self.killed else ("shut down" if self.closed else "running")
        return (f"DistributedRuntime({self.name!r}, backend={self.backend.kind}, lease={self.primary_lease_id:x}, "
                f"{state}, served={len(self._served)}, clients={len(self._clients)})")


class _Watched(NamedTuple):
    """One watcher's part of the last snapshot, at its ``version``."""

    watcher: Any
    version: int
    snaps: tuple[InstanceSnap, ...]
    leases: dict[str, LeaseSnap]
    names: tuple[tuple[str, str, str], ...]


class _Parts:
    """What a runtime's last snapshot built, kept so the next one rebuilds only what changed since.

    A served instance is built again when a record since the last snapshot names it (as actor or target: its
    lifecycle, requests, stop, kill, faults), when the runtime's lease or a watcher's reading changed, when it
    had requests in flight last time (one ending records nothing afterwards), or when ``runtime._touch`` says so;
    its own snapshot then compares everything it shows, so nothing that changed is missed. Watchers are rebuilt
    by their ``version``, the lists of names when an instance, client or watcher came or went.
    """

    def __init__(self) -> None:
        self.served: dict[Any, InstanceSnap | None] = {}  # in start order; None until first built
        self.served_tuple: tuple[InstanceSnap, ...] = ()
        self.reordered = False
        self.by_reference: dict[str, dict[Any, None]] = {}
        self.touched: set[Any] = set()
        self.busy: set[Any] = set()
        self.seq = 0  # the last record looked at
        self.own: Any = None
        self.generation = 0  # bumped when an instance is added or removed
        self.served_names: tuple[int, tuple[tuple[str, str, str], ...]] = (-1, ())
        self.watchers: dict[str, _Watched] = {}
        self.watch_versions: Any = None
        self.watched: tuple[InstanceSnap, ...] = ()
        self.leases: dict[str, LeaseSnap] = {}
        self.names_key: Any = None
        self.endpoints: tuple[tuple[str, str, str], ...] = ()
        self.components: tuple[ComponentSnap, ...] = ()
        self.component_snaps: dict[tuple[str, str], ComponentSnap] = {}

    def add(self, served: Any) -> None:
        self.served[served] = None
        self.by_reference.setdefault(served.actor, {})[served] = None
        self.touched.add(served)
        self.reordered = True
        self.generation += 1

    def remove(self, served: Any) -> None:
        self.served.pop(served, None)
        same = self.by_reference.get(served.actor)
        if same is not None:
            same.pop(served, None)
            if not same:
                del self.by_reference[served.actor]
        self.busy.discard(served)
        self.reordered = True
        self.generation += 1

    def scan(self, recorder: Any) -> None:
        """Touch every served instance the records since the last scan name (all of them if some went unseen)."""
        records = recorder.records
        if not records or records[-1].seq <= self.seq:
            return
        last, self.seq = self.seq, records[-1].seq
        if records[0].seq > last + 1 and last:  # the ring let go of records not looked at
            self.touched.update(self.served)
        by_reference, touched = self.by_reference, self.touched
        for rec in reversed(records):
            if rec.seq <= last:
                break
            for name in (rec.actor, rec.target):
                found = by_reference.get(name)
                if found:
                    touched.update(found)


async def _connect(etcd_endpoints: str | Sequence[str] | None, nats_server: str | None,
                   world: "EmbeddedWorld | None", connect_timeout: float) -> Backend:
    """Servers from the arguments, else ``ETCD_ENDPOINTS`` / ``NATS_SERVER``, else the embedded world."""
    etcd_endpoints = etcd_endpoints or os.environ.get("ETCD_ENDPOINTS") or None
    nats_server = nats_server or os.environ.get("NATS_SERVER") or None
    if world is None and (etcd_endpoints or nats_server):
        from ..backends.real import connect_real

        return await connect_real(etcd_endpoints, nats_server, connect_timeout=connect_timeout)
    from ..backends.embedded import default_world

    return (world or default_world()).connect()
