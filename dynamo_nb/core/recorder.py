"""A bounded ring buffer of what a runtime did, so diagrams can draw sequences from real traffic."""

from __future__ import annotations

import itertools
import time
from collections import deque
from typing import Any, Callable, Iterator, NamedTuple

__all__ = ["Record", "Recorder"]


class Record(NamedTuple):
    """One thing that happened: ``actor`` did ``kind`` to ``target``.

    Kinds: ``lease.grant``, ``lease.keepalive``, ``lease.revoke``, ``lease.lost``, ``kv.create``, ``kv.put``,
    ``kv.delete``, ``watch.put``, ``watch.delete``, ``registry.service``, ``service.endpoint``,
    ``push.endpoint``, ``listen``, ``ready``, ``request``, ``response``, ``event.publish``, ``event.deliver``,
    ``lifecycle``, ``stop``, ``kill``.
    """

    seq: int
    ts: float
    kind: str
    actor: str
    target: str
    detail: dict[str, Any]


class Recorder:
    """Keeps the last ``capacity`` records; listeners hear each new one (live views subscribe here)."""

    def __init__(self, capacity: int = 2000) -> None:
        self.records: deque[Record] = deque(maxlen=capacity)
        self._seq = itertools.count(1)
        self._listeners: list[Callable[[Record], None]] = []

    def record(self, kind: str, actor: str, target: str, **detail: Any) -> Record:
        rec = Record(next(self._seq), time.time(), kind, actor, target, detail)
        self.records.append(rec)
        if self._listeners:
            for listener in tuple(self._listeners):
                listener(rec)
        return rec

    def subscribe(self, listener: Callable[[Record], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def select(self, *kinds: str, **match: Any) -> list[Record]:
        """Records of the given kinds (prefixes like ``"lease."`` work) whose detail matches ``match``."""
        def wanted(rec: Record) -> bool:
            if kinds and not any(rec.kind == k or (k.endswith(".") and rec.kind.startswith(k)) for k in kinds):
                return False
            return all(rec.detail.get(k) == v for k, v in match.items())
        return [rec for rec in self.records if wanted(rec)]

    def __iter__(self) -> Iterator[Record]:
        return iter(tuple(self.records))

    def __len__(self) -> int:
        return len(self.records)

    def clear(self) -> None:
        self.records.clear()
