"""The event plane (seed §3.4): events on NATS subjects scoped by namespace, component or endpoint.

The profile decodes each message: JSON for the seed's events, Dynamo's msgpack envelope for a real worker's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Generator

from ..backends.base import Msg, Subscription
from ..errors import ProtocolError, RuntimeClosedError, WaitTimeoutError
from ..ratelog import warn_limited
from ..transport.profile import Event
from .recorder import Kind
from .snapshot import SubscriptionSnap

if TYPE_CHECKING:
    from .runtime import DistributedRuntime

__all__ = ["EventSubscription"]

log = logging.getLogger(__name__)

_CLOSED = object()


class EventSubscription:
    """Subscribed on ``await`` or on first iteration; yields each event's decoded data; ``close()`` ends it.

    At most ``max_queued`` events wait unread; past that, new ones are dropped and counted in ``dropped`` (a
    subscriber that stops reading must not grow without limit).
    """

    MAX_QUEUED = 10_000

    def __init__(self, runtime: "DistributedRuntime", subject: str, scope: str, event: str,
                 max_queued: int | None = None) -> None:
        self.runtime = runtime
        self.subject = subject
        self.scope = scope
        self.event = event
        self.received = 0
        self.dropped = 0
        self.max_queued = self.MAX_QUEUED if max_queued is None else max_queued
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._sub: Subscription | None = None
        self._closed = False

    async def start(self) -> "EventSubscription":
        if self._sub is None and not self._closed:
            self._sub = await self.runtime.backend.messaging.subscribe(self.subject, self._on_msg)
            await self.runtime.backend.messaging.flush()
            self.runtime._event_subscriptions.add(self)
            self.runtime.recorder.record(Kind.EVENT_SUBSCRIBE, self.runtime.name, "NATS", subject=self.subject,
                                         scope=self.scope, event=self.event)
        return self

    def __await__(self) -> Generator[Any, None, "EventSubscription"]:
        return self.start().__await__()

    async def _on_msg(self, msg: Msg) -> None:
        try:
            event = self.runtime.profile.decode_event(msg.subject, msg.data)
        except ProtocolError as exc:
            log.warning("dropped an undecodable event on %s: %s", msg.subject, exc)
            return
        if self._queue.qsize() >= self.max_queued:
            self.dropped += 1
            warn_limited(log, f"event-queue:{self.subject}", "dropped an event on %s: %d unread events wait "
                         "(the subscriber is not reading)", msg.subject, self.max_queued)
            return
        self.received += 1
        sender = {} if event.publisher_id is None else {
            "publisher": event.publisher_id, "sequence": event.sequence,
            "payload": json.dumps(event.data, default=repr).encode()[:256]}  # a bounded preview for diagrams
        self.runtime.recorder.record(Kind.EVENT_DELIVER, "NATS", self.runtime.name, subject=msg.subject,
                                     scope=self.scope, event=self.event, **sender)
        self._queue.put_nowait(event)

    def _handled(self, event: Event) -> Event:
        """The subscriber's own code takes the event now (the seed's last step: B handles it)."""
        self.runtime.recorder.record(Kind.EVENT_HANDLE, self.runtime.name, self.runtime.name,
                                     subject=event.subject, scope=self.scope, event=self.event)
        return event

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate(lambda event: event.data)

    def events(self) -> AsyncIterator[Event]:
        """Iterate whole :class:`Event` s: the data, and a Dynamo publisher's id, sequence and timestamp."""
        return self._iterate(lambda event: event)

    async def _iterate(self, take: Callable[[Event], Any]) -> AsyncIterator[Any]:
        await self.start()
        while True:
            item = await self._queue.get()
            if item is _CLOSED:
                return
            yield take(self._handled(item))

    async def get(self, timeout: float | None = None) -> Any:
        """The next event's data (subscribing first if needed); :class:`WaitTimeoutError` after ``timeout`` s."""
        await self.start()
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            raise WaitTimeoutError(f"no event on {self.subject!r} within {timeout} s") from None
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # stay closed for any later read
            raise RuntimeClosedError(f"the subscription to {self.subject!r} is closed")
        return self._handled(item).data

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.runtime._event_subscriptions.discard(self)
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:
                pass
        self._queue.put_nowait(_CLOSED)

    async def __aenter__(self) -> "EventSubscription":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def snapshot(self) -> SubscriptionSnap:
        return SubscriptionSnap(self.runtime.name, self.subject, self.scope, self.event, self.received,
                                self._queue.qsize(), self.dropped)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("subscribed" if self._sub else "not yet subscribed")
        return f"EventSubscription({self.subject!r}, {state}, received={self.received})"
