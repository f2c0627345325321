"""A bounded ring buffer of what a runtime did, so diagrams can draw sequences from real traffic.

Beside the records, a recorder keeps *frames*: the runtime's plain state (a ``RuntimeState``) each time it may
have changed, captured once per turn of the event loop after new records and whenever the runtime is drawn
(and at once before and after a stop begins, :meth:`Recorder.settle`, as a whole stop may take one turn).
A figure at a past time ``t`` is the figure of the last frame at or before ``t`` with the records up to ``t``,
so time travel draws exactly what a live view showed, with no second model of the runtime to drift from it.

Every kind of record is a :class:`Kind`, and the detail fields each kind carries are declared once in
:data:`FIELDS`: the code that writes a record and the diagrams that read it share these names, and
:meth:`Recorder.record` refuses a field its kind does not declare, so the two cannot drift apart.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from enum import Enum
from typing import Any, Callable, Iterator, NamedTuple

from ..errors import UndeclaredFieldError

__all__ = ["Kind", "FIELDS", "COUNTS", "COUNT_DELAY", "SMALL", "SPACING_PER_ITEM", "COST_SHARE", "Record", "Recorder",
           "UndeclaredFieldError"]


class Kind(str, Enum):
    """What happened. The value is the name records carry (``"lease.grant"`` …)."""

    LEASE_GRANT = "lease.grant"
    LEASE_KEEPALIVE = "lease.keepalive"
    LEASE_REVOKE = "lease.revoke"
    LEASE_LOST = "lease.lost"
    KV_CREATE = "kv.create"
    KV_DELETE = "kv.delete"
    WATCH_PUT = "watch.put"
    WATCH_DELETE = "watch.delete"
    START = "start"
    REGISTRY_SERVICE = "registry.service"
    SERVICE_ENDPOINT = "service.endpoint"
    PUSH_ENDPOINT = "push.endpoint"
    LISTEN = "listen"
    READY = "ready"
    UNLISTEN = "unlisten"
    LIFECYCLE = "lifecycle"
    CALL = "call"
    REQUEST = "request"
    REQUEST_DROP = "request.drop"
    RESPONSE = "response"
    DRAIN = "drain"
    STOP = "stop"
    KILL = "kill"
    EVENT_SUBSCRIBE = "event.subscribe"
    EVENT_PUBLISH = "event.publish"
    EVENT_DELIVER = "event.deliver"
    EVENT_HANDLE = "event.handle"
    FAULT = "fault"

    # Set below from FIELDS and COUNTS, so recording reads them off the member (hashing a str Enum member runs
    # Python code): the fields a record of this kind may carry, and whether it only moves counters.
    _declared: frozenset[str]
    _counts: bool

    def __str__(self) -> str:
        return self.value


_INSTANCE = ("namespace", "component", "endpoint")

#: The detail fields each kind may carry (a record need not carry all of them).
FIELDS: dict[Kind, frozenset[str]] = {kind: frozenset(fields) for kind, fields in {
    Kind.LEASE_GRANT: ("lease_id", "ttl"),
    Kind.LEASE_KEEPALIVE: ("lease_id",),
    Kind.LEASE_REVOKE: ("lease_id", "keys"),
    Kind.LEASE_LOST: ("lease_id",),
    Kind.KV_CREATE: ("key", "lease_id", "ok", "replaces", "subject", *_INSTANCE),
    Kind.KV_DELETE: ("key", "lease_id"),
    Kind.WATCH_PUT: ("key", "instance_id", "endpoint", "revision"),
    Kind.WATCH_DELETE: ("key", "instance_id", "endpoint", "revision"),
    Kind.START: ("endpoint",),
    Kind.REGISTRY_SERVICE: ("service", "created", "endpoint"),
    Kind.SERVICE_ENDPOINT: ("service", "endpoint", "subject"),
    Kind.PUSH_ENDPOINT: ("subject",),
    Kind.LISTEN: ("subject", "queue"),
    Kind.READY: ("subject", "instance_id"),
    Kind.UNLISTEN: ("subject",),
    Kind.LIFECYCLE: ("state", "instance_id", "reason"),
    Kind.CALL: ("request_id", "instance_id", "subject", "client_id", "caller", "caller_instance"),
    Kind.REQUEST: ("request_id", "instance_id"),
    Kind.REQUEST_DROP: ("request_id", "instance_id", "late_s", "reason"),
    Kind.RESPONSE: ("request_id", "items", "outcome", "instance_id", "after_stop"),
    Kind.DRAIN: ("drained", "cancelled", "instance_id"),
    Kind.STOP: ("instance_id",),
    Kind.KILL: ("instance_id", "lease_id", "lease_expires_at"),
    Kind.EVENT_SUBSCRIBE: ("subject", "scope", "event"),
    Kind.EVENT_PUBLISH: ("subject", "scope", "event", "size", "payload", "publisher", "sequence"),
    Kind.EVENT_DELIVER: ("subject", "scope", "event", "publisher", "sequence", "payload"),
    Kind.EVENT_HANDLE: ("subject", "scope", "event"),
    Kind.FAULT: ("fault", "active", "instance_id", "lease_id", "delay", "server", "downtime"),
}.items()}


#: Records that only move counters (calls, requests, keep-alives): a busy runtime makes thousands a second, so
#: the frame after them is taken at most every :data:`COUNT_DELAY` seconds rather than after each one (a figure
#: at a past time may then show such counters up to that much off; every other change is framed at once).
COUNTS = frozenset({Kind.CALL, Kind.REQUEST, Kind.RESPONSE, Kind.LEASE_KEEPALIVE})
COUNT_DELAY = 0.05

for _kind in Kind:
    _kind._declared = FIELDS[_kind]
    _kind._counts = _kind in COUNTS

#: A frame costs time in proportion to what the runtime holds, so a runtime of more than :data:`SMALL` instances
#: spaces its frames :data:`SPACING_PER_ITEM` seconds per instance apart (0.2 s at 10,000): framing then takes a
#: bounded share of the loop, and starting the 10,000th endpoint costs what the first did. A figure at a past
#: time of such a runtime may show a state up to that spacing later; small runtimes are framed at every change.
SMALL = 200
SPACING_PER_ITEM = 20e-6
#: ...and at least this many times as long as the last frame took, on a machine slower or busier than planned
COST_SHARE = 10


class Record(NamedTuple):
    """One thing that happened: ``actor`` did ``kind`` to ``target``, with ``detail`` fields of :data:`FIELDS`."""

    seq: int
    ts: float
    kind: Kind
    actor: str
    target: str
    detail: dict[str, Any]


#: ``Record(...)`` without the Python-level ``__new__`` a NamedTuple gets (a record is made three times per call)
_new_record: Callable[[type, tuple[Any, ...]], Record] = tuple.__new__


class Recorder:
    """Keeps the last ``capacity`` records; listeners hear each new one (live views subscribe here)."""

    def __init__(self, capacity: int = 2000) -> None:
        self.records: deque[Record] = deque(maxlen=capacity)
        #: ``(wall-clock time, state)`` each time the state changed; as many as records are kept
        self.frames: deque[tuple[float, Any]] = deque(maxlen=capacity)
        self._seq = itertools.count(1)
        self._listeners: list[Callable[[Record], None]] = []
        self._capture: Callable[[], Any] | None = None
        self._pending = ""  # "soon" (this turn), "later" (counters only) or nothing
        self._timer: asyncio.Handle | None = None  # the pending frame's callback
        self._framed = 0  # seq of the last record a frame was kept after
        self.spacing = 0.0  # least seconds between frames (see SMALL); set by :meth:`weigh`
        self._flushed_at = 0.0  # monotonic time of the last frame taken after records
        self._cost = 0.0  # and the seconds it took

    def track(self, capture: Callable[[], Any]) -> None:
        """Keep a frame of ``capture()`` after every burst of records (the runtime passes its own state)."""
        self._capture = capture

    def weigh(self, items: int) -> None:
        """Space frames by how many instances the tracked state holds (see :data:`SMALL`)."""
        self.spacing = items * SPACING_PER_ITEM if items > SMALL else 0.0

    def keep(self, state: Any) -> None:
        """Keep ``state`` as a frame, unless it equals the last one (so an idle runtime costs nothing).

        A frame that follows new records is stamped with the time of the first of them: it is the state that
        burst of records (one turn of the event loop) left, so a figure at any of their times shows what they did.
        """
        last = self.records[-1] if self.records else None
        new = last.seq - self._framed if last is not None else 0
        self._framed = last.seq if last is not None else 0
        if self.frames and self.frames[-1][1] == state:
            return
        ts = self.records[-min(new, len(self.records))].ts if new > 0 else time.time()
        self.frames.append((ts, state))

    def changed(self, later: bool = False) -> None:
        """Something drawn changed (or changed without a record of its own, like a new client): take a frame
        at the end of this turn of the event loop, or within :data:`COUNT_DELAY` for mere counters."""
        if self._capture is None or self._pending == "soon" or (later and self._pending):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush()
            return
        wait = (self._flushed_at + max(self.spacing, COST_SHARE * self._cost) - time.monotonic()
                if self.spacing else 0.0)
        if wait > 0:  # a large runtime framed a moment ago: the next frame comes at the end of the spacing
            if not self._pending:
                self._pending = "later"
                self._timer = loop.call_later(max(wait, COUNT_DELAY) if later else wait, self._flush)
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if later:
            self._pending = "later"
            self._timer = loop.call_later(COUNT_DELAY, self._flush)
        else:
            self._pending = "soon"
            self._timer = loop.call_soon(self._flush)

    def settle(self) -> None:
        """Take the pending frame now rather than at the end of this turn: what follows in the same turn would
        otherwise be drawn from the earlier records' times (a stop right after a call would draw the instance
        already unserved at the call's step). Large runtimes keep their spacing (see :data:`SMALL`)."""
        if self._pending and not self.spacing:
            if self._timer is not None:
                self._timer.cancel()
            self._flush()

    def _flush(self) -> None:
        self._pending = ""
        self._timer = None
        if self._capture is not None:
            started = time.monotonic()
            self._capture()
            self._flushed_at = time.monotonic()
            self._cost = self._flushed_at - started

    @property
    def dropped(self) -> int:
        """How many records the ring buffer has let go of (the oldest first)."""
        return self.records[0].seq - 1 if self.records else 0

    def record(self, kind: Kind, actor: str, target: str, **detail: Any) -> Record:
        """Keep one record (every call makes three: this stays a few attribute reads and one append)."""
        declared = getattr(kind, "_declared", None)
        if declared is None or not declared.issuperset(detail):
            self._refuse(kind, detail)
        return self._keep(time.time(), kind, actor, target, detail)

    def record_at(self, ts: float, kind: Kind, actor: str, target: str, **detail: Any) -> Record:
        """Keep one record of a fact that has its own time already (a lifecycle transition's), so the record
        and the history it mirrors agree, and ``at=`` that time shows the new state."""
        declared = getattr(kind, "_declared", None)
        if declared is None or not declared.issuperset(detail):
            self._refuse(kind, detail)
        return self._keep(ts, kind, actor, target, detail)

    @staticmethod
    def _refuse(kind: Any, detail: dict[str, Any]) -> None:
        declared = FIELDS.get(kind) if isinstance(kind, Kind) else None
        if declared is None:
            raise UndeclaredFieldError(f"{kind!s} is not a record kind")
        undeclared = sorted(set(detail) - declared)
        raise UndeclaredFieldError(f"{kind} records declare {sorted(declared)}, not {undeclared}")

    def _keep(self, ts: float, kind: Kind, actor: str, target: str, detail: dict[str, Any]) -> Record:
        rec = _new_record(Record, (next(self._seq), ts, kind, actor, target, detail))
        self.records.append(rec)
        if self._capture is not None:
            pending = self._pending  # a frame already due covers this record: nothing to schedule
            if kind._counts:
                if not pending:
                    self.changed(later=True)
            elif pending != "soon":
                self.changed()
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
        self.frames.clear()
