"""An in-process etcd: revisions, create-only puts, leases with TTL, prefix watches with history."""

from __future__ import annotations

import asyncio
import random
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field
from typing import AsyncIterator

from ...errors import LeaseExpiredError, RuntimeClosedError
from ..base import KeyValue, WatchEvent
from .clock import Clock, LoopClock, TimerHandle

__all__ = ["EmbeddedEtcd", "EmbeddedDiscovery"]

_HISTORY = 10_000  # events kept for watches that start from an older revision


@dataclass
class _Lease:
    id: int
    ttl: float
    deadline: float
    keys: set[str] = field(default_factory=set)
    timer: TimerHandle | None = None


class _StoreWatch:
    """One prefix watch: events are queued by the store and read by ``async for``."""

    def __init__(self, store: "EmbeddedEtcd", prefix: str) -> None:
        self.prefix = prefix
        self._store = store
        self._queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()
        self.cancelled = False

    def _push(self, event: WatchEvent) -> None:
        if not self.cancelled:
            self._queue.put_nowait(event)

    async def __aiter__(self) -> AsyncIterator[WatchEvent]:
        while True:
            event = await self._queue.get()
            if event is None:
                return
            yield event

    async def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._store._watches.discard(self)
            self._queue.put_nowait(None)


class EmbeddedEtcd:
    """The key/value store shared by every runtime of one embedded world."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or LoopClock()
        self.revision = 1
        self._data: dict[str, KeyValue] = {}
        self._sorted: list[str] = []  # the keys in order, so a prefix read costs its answer, not the store
        self._leases: dict[int, _Lease] = {}
        self._watches: set[_StoreWatch] = set()
        self._history: deque[WatchEvent] = deque(maxlen=_HISTORY)

    # -- inspection (diagrams and tests read these) -------------------------------------------------
    def keys(self) -> list[str]:
        return list(self._sorted)

    def leases(self) -> dict[int, float]:
        """Live lease ids and their remaining seconds."""
        now = self.clock.now()
        return {lid: max(0.0, lease.deadline - now) for lid, lease in self._leases.items()}

    def lease_ttl_remaining(self, lease_id: int) -> float | None:
        lease = self._leases.get(lease_id)
        return None if lease is None else max(0.0, lease.deadline - self.clock.now())

    # -- leases ---------------------------------------------------------------------------------------
    def grant_lease(self, ttl: float) -> int:
        if ttl <= 0:
            raise ValueError(f"lease TTL must be positive, got {ttl}")
        lease_id = random.getrandbits(63) or 1
        while lease_id in self._leases:
            lease_id = random.getrandbits(63) or 1
        lease = _Lease(lease_id, ttl, self.clock.now() + ttl)
        self._leases[lease_id] = lease
        self._schedule(lease)
        return lease_id

    def _schedule(self, lease: _Lease) -> None:
        if lease.timer is not None:
            lease.timer.cancel()
        lease.timer = self.clock.call_at(lease.deadline, lambda: self._expire(lease.id))

    def _expire(self, lease_id: int) -> None:
        lease = self._leases.get(lease_id)
        if lease is None:
            return
        if lease.deadline > self.clock.now():
            # Early (a keep-alive moved the deadline, or a loop whose timers fire before their time, such as
            # Pyodide's by up to 0.5 ms): wait again, or the lease would never expire.
            self._schedule(lease)
            return
        self.revoke_lease(lease_id)

    def keep_alive(self, lease_id: int) -> bool:
        lease = self._leases.get(lease_id)
        if lease is None:
            return False
        lease.deadline = self.clock.now() + lease.ttl
        self._schedule(lease)
        return True

    def revoke_lease(self, lease_id: int) -> None:
        lease = self._leases.pop(lease_id, None)
        if lease is None:
            return
        if lease.timer is not None:
            lease.timer.cancel()
        if lease.keys:
            self.revision += 1  # etcd deletes a lease's keys in one transaction: one revision
            for key in sorted(lease.keys):
                if self._pop(key) is not None:
                    self._emit(WatchEvent("delete", key, b"", self.revision))

    # -- keys -----------------------------------------------------------------------------------------
    def _check_lease(self, lease_id: int | None) -> None:
        if lease_id and lease_id not in self._leases:
            raise LeaseExpiredError(f"lease {lease_id:x} not found (expired or revoked)")

    def put(self, key: str, value: bytes, lease_id: int | None = None) -> int:
        self._check_lease(lease_id)
        self.revision += 1
        old = self._data.get(key)
        if old is not None and old.lease and old.lease != lease_id and old.lease in self._leases:
            self._leases[old.lease].keys.discard(key)
        kv = KeyValue(
            key,
            bytes(value),
            create_revision=old.create_revision if old else self.revision,
            mod_revision=self.revision,
            version=(old.version + 1) if old else 1,
            lease=lease_id or 0,
        )
        if old is None:
            insort(self._sorted, key)
        self._data[key] = kv
        if lease_id:
            self._leases[lease_id].keys.add(key)
        self._emit(WatchEvent("put", key, kv.value, self.revision))
        return self.revision

    def create(self, key: str, value: bytes, lease_id: int | None = None) -> bool:
        if key in self._data:
            return False
        self.put(key, value, lease_id)
        return True

    def _pop(self, key: str) -> KeyValue | None:
        kv = self._data.pop(key, None)
        if kv is not None:
            del self._sorted[bisect_left(self._sorted, key)]
        return kv

    def delete(self, key: str) -> int:
        kv = self._pop(key)
        if kv is None:
            return 0
        if kv.lease in self._leases:
            self._leases[kv.lease].keys.discard(key)
        self.revision += 1
        self._emit(WatchEvent("delete", key, b"", self.revision))
        return 1

    def get_prefix(self, prefix: str) -> tuple[int, list[KeyValue]]:
        keys, out = self._sorted, []
        for i in range(bisect_left(keys, prefix), len(keys)):
            if not keys[i].startswith(prefix):
                break
            out.append(self._data[keys[i]])
        return self.revision, out

    # -- watches --------------------------------------------------------------------------------------
    def _emit(self, event: WatchEvent) -> None:
        self._history.append(event)
        for watch in tuple(self._watches):
            if event.key.startswith(watch.prefix):
                watch._push(event)

    def watch_prefix(self, prefix: str, start_revision: int) -> _StoreWatch:
        watch = _StoreWatch(self, prefix)
        for event in self._history:
            if event.revision >= start_revision and event.key.startswith(prefix):
                watch._push(event)
        self._watches.add(watch)
        return watch

    @property
    def watch_count(self) -> int:
        return len(self._watches)


class EmbeddedDiscovery:
    """One runtime's connection to the embedded store; closing it cancels its watches."""

    def __init__(self, store: EmbeddedEtcd) -> None:
        self.store = store
        self.url = "embedded://etcd"
        self._watches: set[_StoreWatch] = set()
        self._closed = False

    def _live(self) -> EmbeddedEtcd:
        if self._closed:
            raise RuntimeClosedError("discovery connection is closed")
        return self.store

    async def grant_lease(self, ttl: float) -> int:
        return self._live().grant_lease(ttl)

    async def keep_alive(self, lease_id: int) -> bool:
        return self._live().keep_alive(lease_id)

    async def revoke_lease(self, lease_id: int) -> None:
        self._live().revoke_lease(lease_id)

    async def lease_time_left(self, lease_id: int) -> float | None:
        return self._live().lease_ttl_remaining(lease_id)

    async def create(self, key: str, value: bytes, lease_id: int | None = None) -> bool:
        return self._live().create(key, value, lease_id)

    async def put(self, key: str, value: bytes, lease_id: int | None = None) -> int:
        return self._live().put(key, value, lease_id)

    async def delete(self, key: str) -> int:
        return self._live().delete(key)

    async def get_prefix(self, prefix: str) -> tuple[int, list[KeyValue]]:
        return self._live().get_prefix(prefix)

    async def watch_prefix(self, prefix: str, start_revision: int) -> _StoreWatch:
        watch = self._live().watch_prefix(prefix, start_revision)
        self._watches.add(watch)
        return watch

    async def close(self) -> None:
        self._closed = True
        for watch in tuple(self._watches):
            await watch.cancel()
        self._watches.clear()
