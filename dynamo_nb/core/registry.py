"""The per-runtime Registry (seed §5): shared NATS services, shared etcd watchers, stats handlers.

Without it every endpoint would create its own NATS service and every client its own etcd watch; with it a
component has one service and one watcher, however many endpoints and clients use it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from ..backends.base import Msg, Subscription, WatchEvent
from ..ratelog import warn_limited
from ..transport.profile import InstanceInfo
from .drawable import Drawable
from .recorder import Kind
from .snapshot import Focus, LeaseSnap, Part, RegistrySnap, ServiceSnap, WatcherSnap

if TYPE_CHECKING:
    from .runtime import DistributedRuntime

__all__ = ["Registry", "ServiceGroup", "EndpointStats", "SharedWatcher", "StatsHandler"]

log = logging.getLogger(__name__)

StatsHandler = Callable[[], Any]


@dataclass
class EndpointStats:
    """Counters one endpoint reports in ``$SRV.STATS``."""

    name: str
    subject: str
    num_requests: int = 0
    num_errors: int = 0
    last_error: str = ""
    processing_time_ns: int = 0
    wire_name: str = ""  # the name in $SRV replies, when the profile names it otherwise (Dynamo: ns_comp-ep-lease)

    def as_stats(self, data: Any, with_data: bool = True) -> dict[str, Any]:
        avg = self.processing_time_ns // self.num_requests if self.num_requests else 0
        doc = {"name": self.wire_name or self.name, "subject": self.subject, "queue_group": "q",
               "num_requests": self.num_requests, "num_errors": self.num_errors, "last_error": self.last_error,
               "processing_time": self.processing_time_ns, "average_processing_time": avg}
        if with_data or data is not None:
            doc["data"] = data
        return doc


class ServiceGroup:
    """One NATS service per component, answering ``$SRV.PING/INFO/STATS`` for all its endpoints.

    Its name, version, description and endpoint names come from the runtime's profile (``service_version``).
    """

    def __init__(self, runtime: "DistributedRuntime", namespace: str, component: str) -> None:
        self.runtime = runtime
        self.namespace = namespace
        self.component = component
        self.service_name = runtime.profile.service_name(namespace, component)
        self.slug = runtime.profile.service_slug(namespace, component)
        self.id = uuid.uuid4().hex[:22]
        self.started = datetime.now(timezone.utc)
        self.endpoints: dict[str, EndpointStats] = {}
        self._subs: list[Subscription] = []
        self._answered_at = 0.0  # monotonic time of the last PING it answered in a health check
        self._ping: asyncio.Future[None] | None = None

    def control_subjects(self) -> list[str]:
        """Every ``$SRV`` subject the service answers, as the NATS services API defines them."""
        return [f"$SRV.{verb}{suffix}" for verb in ("PING", "INFO", "STATS")
                for suffix in ("", f".{self.slug}", f".{self.slug}.{self.id}")]

    @property
    def listening(self) -> bool:
        """Whether it answers ``$SRV`` (a real Dynamo worker on the TCP plane has no NATS service)."""
        return bool(self._subs)

    async def start(self) -> None:
        if not self.runtime.profile.nats_service_enabled:
            return
        messaging = self.runtime.backend.messaging
        for subject in self.control_subjects():
            self._subs.append(await messaging.subscribe(subject, self._on_control))

    async def check(self, timeout: float) -> None:
        """PING the service over messaging, as a health check of one of its endpoints does; raises if unanswered.

        Every endpoint of a component checks the one service they share, so an answer less than one health
        interval old stands for all of them: one PING per service per interval, not one per endpoint.
        """
        if self._answered_at and time.monotonic() - self._answered_at < self.runtime.health_check_interval:
            return
        if self._ping is None or self._ping.done():  # checks that wake together wait for the same answer
            self._ping = asyncio.ensure_future(self._ping_once(timeout))
            self._ping.add_done_callback(lambda f: f.cancelled() or f.exception())
        await asyncio.shield(self._ping)

    async def _ping_once(self, timeout: float) -> None:
        await self.runtime.backend.messaging.request(f"$SRV.PING.{self.slug}.{self.id}", b"", timeout=timeout)
        self._answered_at = time.monotonic()

    async def stop(self) -> None:
        if self._ping is not None:
            self._ping.cancel()
        subs, self._subs = self._subs, []
        for sub in subs:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection may already be gone
                pass

    def _base(self, kind: str) -> dict[str, Any]:
        profile = self.runtime.profile
        return {"type": f"io.nats.micro.v1.{kind}_response", "name": self.slug, "id": self.id,
                "version": profile.service_version,
                "metadata": profile.service_metadata(self.namespace, self.component)}

    def ping(self) -> dict[str, Any]:
        return self._base("ping")

    def info(self) -> dict[str, Any]:
        doc = self._base("info")
        doc["description"] = self.runtime.profile.service_description(self.namespace, self.component)
        doc["endpoints"] = [{"name": s.wire_name or s.name, "subject": s.subject, "queue_group": "q", "metadata": {}}
                            for s in self.endpoints.values()]
        return doc

    def stats(self) -> dict[str, Any]:
        doc = self._base("stats")
        with_data = self.runtime.profile.stats_data
        if not with_data:
            del doc["metadata"]  # as a real Dynamo worker answers
        doc["started"] = self.started.isoformat().replace("+00:00", "Z")
        handlers = self.runtime.registry.stats_handlers.get(self.service_name, {})
        endpoints = []
        for ep_name, stats in self.endpoints.items():
            handler = handlers.get(ep_name)
            data = None
            if handler is not None:
                try:
                    data = handler()
                except Exception as exc:  # a broken stats handler must not break STATS for everyone
                    data = {"error": f"{type(exc).__name__}: {exc}"}
            endpoints.append(stats.as_stats(data, with_data))
        doc["endpoints"] = endpoints
        return doc

    async def _on_control(self, msg: Msg) -> None:
        verb = msg.subject.split(".")[1]
        doc = {"PING": self.ping, "INFO": self.info, "STATS": self.stats}[verb]()
        if msg.reply:
            await msg.respond(json.dumps(doc, default=str).encode())


class SharedWatcher:
    """One etcd prefix watch per component, shared by every client of that component in the runtime.

    Keeps the live instance map current; if the watch breaks it re-reads from the last revision rather than
    forgetting every instance (a failure mode Dynamo's users have reported). A value that does not check out is
    skipped, counted in ``rejected`` and logged at most once per interval: one bad key must not hide the others.

    Every ``LEASE_REFRESH`` seconds it also reads each watched key's lease and its time left from etcd
    (``leases``), so figures show what etcd says rather than a guess; ``mark_unanswered`` records a call that
    found no one behind a key (the key outlived its process).
    """

    LEASE_REFRESH = 2.0  # seconds between lease readings (0: only when refresh_leases() is called)

    def __init__(self, runtime: "DistributedRuntime", namespace: str, component: str, *, scan: bool = False) -> None:
        self.runtime = runtime
        self.namespace = namespace
        self.component = component
        self.scan = scan  # watch the whole deployment (every namespace and component), not one component
        self.prefix = (runtime.profile.scan_prefix.rstrip("/") if scan
                       else runtime.profile.instance_prefix(namespace, component))
        self.watch_prefix = runtime.profile.scan_prefix if scan else self.prefix + "/"
        self.instances: dict[str, InstanceInfo] = {}
        self._by_endpoint: dict[str, dict[int, InstanceInfo]] = {}
        self.sharers: dict[int, str] = {}
        self.revision = 0
        self.resyncs = 0
        self.rejected = 0  # instance values skipped because they did not check out
        self._listeners: list[Callable[[str, InstanceInfo], None]] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watch: Any = None
        self._ready = asyncio.Event()
        self.leases: dict[str, LeaseSnap] = {}  # instance key → its lease as last read from etcd
        self.unanswered: dict[int, float] = {}  # instance id → wall clock of a call nobody answered
        self._lease_task: asyncio.Task[None] | None = None
        #: bumped by every change a snapshot shows (instances, leases, unanswered calls, sharers), so a snapshot
        #: rebuilds this watcher's part only when it moved
        self.version = 0

    @property
    def share_count(self) -> int:
        return len(self.sharers)

    def endpoint_instances(self, endpoint: str) -> dict[int, InstanceInfo]:
        """Live instances of one endpoint by id (cached until the next change: callers must not mutate it)."""
        found = self._by_endpoint.get(endpoint)
        if found is None:
            found = {i.instance_id: i for i in self.instances.values() if i.endpoint == endpoint}
            self._by_endpoint[endpoint] = found
        return found

    def subscribe(self, listener: Callable[[str, InstanceInfo], None]) -> Callable[[], None]:
        """``listener("put"|"delete", info)`` on every instance change."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def wait_changed(self) -> None:
        await self._changed.wait()

    async def start(self) -> None:
        await self._sync()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name=f"watch:{self.prefix}")
        if self.LEASE_REFRESH > 0:
            self._lease_task = loop.create_task(self._read_leases(), name=f"leases:{self.prefix}")

    def mark_unanswered(self, instance_id: int) -> None:
        """A call to this instance found nobody (no responders, refused, no ack) while its key is there."""
        if any(i.instance_id == instance_id for i in self.instances.values()):
            self.unanswered[instance_id] = time.time()
            self.version += 1

    def lease_of(self, key: str) -> LeaseSnap | None:
        """The key's lease as last read, with any unanswered call marked."""
        lease = self.leases.get(key)
        info = self.instances.get(key)
        if lease is None or info is None:
            return lease
        at = self.unanswered.get(info.instance_id, 0.0)
        return lease if at == lease.unanswered_at else LeaseSnap(lease.instance_id, lease.endpoint, lease.lease_id,
                                                                 lease.time_left, lease.read_at, at)

    async def refresh_leases(self) -> dict[str, LeaseSnap]:
        """Read every watched key's lease and its time left from etcd now (one range read, one call per lease)."""
        discovery = self.runtime.backend.discovery
        _, kvs = await discovery.get_prefix(self.watch_prefix)
        owned = {kv.key: kv.lease for kv in kvs if kv.key in self.instances}
        ids = sorted({lease for lease in owned.values() if lease})
        left = dict(zip(ids, await asyncio.gather(*(discovery.lease_time_left(i) for i in ids)), strict=True))
        now = time.time()
        self.leases = {key: LeaseSnap(info.instance_id, info.endpoint, owned[key],
                                      left.get(owned[key]) if owned[key] else None, now)
                       for key, info in self.instances.items() if key in owned}
        self.version += 1
        return self.leases

    async def _read_leases(self) -> None:
        while not self.runtime.closed:
            try:
                await asyncio.wait_for(self.refresh_leases(), max(self.LEASE_REFRESH, 1.0))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # etcd away for now: the last reading stays, with its time
                log.debug("reading the leases under %s failed: %s", self.prefix, exc)
            await asyncio.sleep(self.LEASE_REFRESH)

    async def _sync(self) -> None:
        """Read the prefix and make ``instances`` equal to it, announcing only the differences."""
        revision, kvs = await self.runtime.backend.discovery.get_prefix(self.watch_prefix)
        seen: dict[str, InstanceInfo] = {}
        for kv in kvs:
            info = self._parse(kv.key, kv.value)
            if info is not None:
                seen[kv.key] = info
        for key in set(self.instances) - set(seen):
            self._apply(WatchEvent("delete", key, b"", revision))
        for key, info in seen.items():
            if self.instances.get(key) != info:
                self._apply(WatchEvent("put", key, b"", revision), info)
        self.revision = revision
        self._ready.set()

    def _parse(self, key: str, value: bytes) -> InstanceInfo | None:
        profile = self.runtime.profile
        try:
            if self.scan:
                return profile.parse_any_instance(key, value)
            return profile.parse_instance(self.prefix, key, value)
        except Exception as exc:  # whatever a value holds, it must not break discovery for everyone
            self.rejected += 1
            warn_limited(log, f"instance:{self.prefix}", "skipped the value of %s: %s", key[:200], exc)
            return None

    def _apply(self, event: WatchEvent, info: InstanceInfo | None = None) -> None:
        if event.kind == "put":
            if info is None:
                info = self._parse(event.key, event.value)
                if info is None:
                    # A key that no longer holds a valid instance no longer names one.
                    event = WatchEvent("delete", event.key, b"", event.revision)
                    info = self.instances.pop(event.key, None)
                    if info is None:
                        return
            if event.kind == "put":
                self.instances[event.key] = info
        else:
            info = self.instances.pop(event.key, None)
            if info is None:
                return
        self._by_endpoint.clear()
        self.version += 1
        self.unanswered.pop(info.instance_id, None)  # a new key (or none): the old verdict no longer holds
        kind = Kind.WATCH_PUT if event.kind == "put" else Kind.WATCH_DELETE
        self.runtime.recorder.record(kind, self.runtime.name, "etcd", key=event.key,
                                     instance_id=info.instance_id, endpoint=info.endpoint,
                                     revision=event.revision)
        for listener in tuple(self._listeners):
            listener(event.kind, info)
        self._changed.set()
        self._changed = asyncio.Event()

    async def _run(self) -> None:
        delay = 0.05
        while True:
            try:
                self._watch = await self.runtime.backend.discovery.watch_prefix(self.watch_prefix, self.revision + 1)
                async for event in self._watch:
                    self.revision = max(self.revision, event.revision)
                    self._apply(event)
                    delay = 0.05
                # The watch ended without being cancelled: the server went away. Fall through and resync.
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("watch on %s broke (%s); resyncing", self.prefix, exc)
            if self.runtime.closed:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
            try:
                await self._sync()
                self.resyncs += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("resync of %s failed (%s); retrying", self.prefix, exc)

    async def stop(self) -> None:
        lease_task, self._lease_task = self._lease_task, None
        if lease_task is not None:
            lease_task.cancel()
            await asyncio.wait({lease_task}, timeout=1.0)
        if self._watch is not None:
            try:
                await self._watch.cancel()
            except Exception:
                pass
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # bounded: a backend call that swallows the cancellation must not hang the runtime's shutdown
            await asyncio.wait({task}, timeout=5.0)
            if task.done() and not task.cancelled():
                task.exception()  # retrieved, so asyncio does not log it as never retrieved


@dataclass(eq=False)
class Registry(Drawable):
    """Everything a runtime shares between its endpoints and clients, open to inspection."""

    runtime: "DistributedRuntime"
    services: dict[str, ServiceGroup] = field(default_factory=dict)
    watchers: dict[str, SharedWatcher] = field(default_factory=dict)
    stats_handlers: dict[str, dict[str, StatsHandler]] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict, repr=False)
    _kept: dict[Any, Any] = field(default_factory=dict, repr=False)  # the parts of the last snapshot

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def service(self, namespace: str, component: str) -> tuple[ServiceGroup, bool]:
        """The component's service, created on first use; returns ``(service, created)``."""
        name = self.runtime.profile.service_name(namespace, component)
        async with self._lock("svc:" + name):
            service = self.services.get(name)
            if service is not None:
                return service, False
            service = ServiceGroup(self.runtime, namespace, component)
            await service.start()
            self.services[name] = service
            return service, True

    async def watcher(self, namespace: str, component: str, sharer_id: int, sharer: str) -> SharedWatcher:
        """The component's shared watcher (started on first use), with ``sharer`` counted in."""
        prefix = self.runtime.profile.instance_prefix(namespace, component)
        async with self._lock("watch:" + prefix):
            watcher = self.watchers.get(prefix)
            if watcher is None:
                watcher = SharedWatcher(self.runtime, namespace, component)
                await watcher.start()
                self.watchers[prefix] = watcher
            watcher.sharers[sharer_id] = sharer
            watcher.version += 1
            return watcher

    async def scan(self, sharer: str = "scan") -> SharedWatcher:
        """One watcher over everything registered (every namespace and component), kept live; shared.

        It watches the profile's ``scan_prefix``: ``v1/instances/`` for Dynamo's keys. The seed's keys share no
        root and etcd watches prefixes, not patterns, so there it watches the whole store and skips every key
        not shaped like an instance key before reading its value (``names.split_instance_key``)."""
        key = "scan:" + self.runtime.profile.scan_prefix
        async with self._lock(key):
            watcher = self.watchers.get(key)
            if watcher is None:
                watcher = SharedWatcher(self.runtime, "", "", scan=True)
                await watcher.start()
                self.watchers[key] = watcher
            watcher.sharers[0] = sharer
            watcher.version += 1
            return watcher

    async def release_watcher(self, watcher: SharedWatcher, sharer_id: int) -> None:
        """Drop one sharer; the watch stops when nobody shares it any more."""
        watcher.sharers.pop(sharer_id, None)
        watcher.version += 1
        if not watcher.sharers and self.watchers.get(watcher.prefix) is watcher:
            del self.watchers[watcher.prefix]
            await watcher.stop()

    def add_stats_handler(self, service_name: str, endpoint: str, handler: StatsHandler) -> None:
        self.stats_handlers.setdefault(service_name, {})[endpoint] = handler

    def remove_stats_handler(self, service_name: str, endpoint: str) -> None:
        handlers = self.stats_handlers.get(service_name)
        if handlers is not None:
            handlers.pop(endpoint, None)
            if not handlers:
                del self.stats_handlers[service_name]

    def summary(self) -> dict[str, Any]:
        """Counts and sharing, as the registry diagram shows them."""
        return {
            "services": {name: sorted(s.endpoints) for name, s in self.services.items()},
            "watchers": {prefix: sorted(w.sharers.values()) for prefix, w in self.watchers.items()},
            "stats_handlers": {name: sorted(h) for name, h in self.stats_handlers.items()},
        }

    def snapshot(self) -> RegistrySnap:
        """Services, shared watchers and stats handlers, and who shares what, as plain data.

        The parts that did not change since the last call are given again (the same objects), so a runtime's
        frames share them and comparing two frames costs nothing where nothing moved."""
        kept = self._kept
        services = []
        for name, svc in sorted(self.services.items()):
            fresh = ServiceSnap(name, svc.slug, tuple(svc.endpoints), tuple(sorted(self.stats_handlers.get(name, {}))),
                                svc.component)
            old = kept.get(("svc", name))
            if old is not None and old == fresh:
                fresh = old
            kept[("svc", name)] = fresh
            services.append(fresh)
        watchers = []
        for prefix, w in sorted(self.watchers.items()):
            old = kept.get(("w", prefix))
            if old is None or old[0] is not w or old[1] != w.version:
                snap = WatcherSnap(prefix, tuple(sorted(w.sharers.items())), len(w.instances), w.component,
                                   tuple(lease for lease in map(w.lease_of, sorted(w.instances)) if lease is not None))
                old = kept[("w", prefix)] = (w, w.version, snap)
            watchers.append(old[2])
        result = RegistrySnap(self.runtime.name, tuple(services), tuple(watchers))
        last = kept.get("last")
        if last is not None and last == result:
            return last
        if len(kept) > 2 * (len(self.services) + len(self.watchers)) + 8:  # forget what is gone
            live = {("svc", n) for n in self.services} | {("w", p) for p in self.watchers}
            for key in [k for k in kept if k != "last" and k not in live]:
                del kept[key]
        kept["last"] = result
        return result

    def _part(self) -> Part:
        return Part(Focus("registry", self.runtime.name), (self.runtime.snapshot(),))

    def _subscribe(self, listener: Callable[..., None]) -> Callable[[], None]:
        return self.runtime.recorder.subscribe(listener)

    async def close(self) -> None:
        for watcher in list(self.watchers.values()):
            await watcher.stop()
        self.watchers.clear()
        for service in list(self.services.values()):
            await service.stop()
        self.services.clear()
