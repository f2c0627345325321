"""In-process response plane: the caller's receiver is found by its subject, frames pass through a queue."""

from __future__ import annotations

import asyncio
import itertools
import time
import types
import uuid
from collections import deque
from typing import Any, Callable, Generator

from ...errors import StreamClosedError, StreamRefusedError, StreamStalledError
from ...transport.profile import SEED
from .channel import Channel

__all__ = ["EmbeddedResponsePlane"]

_EOF = (b"", b"\x00eof")
GONE_GRACE = 1.0  # seconds a stream lives on without a frame once its instance's key is gone (as on TCP)
IO_POLL_EVERY = 0.001  # seconds a caller whose streams never wait may go on calling before I/O is polled again


@types.coroutine
def _turn() -> Generator[None, None, None]:
    """Let the event loop run once (``asyncio.sleep(0)``, one frame shorter)."""
    yield


class _Turns:
    """When a caller that found its whole stream there at once lets the event loop turn, as it closes the stream.

    A caller that waited for its worker let the loop turn meanwhile. One that never waited turns it whenever that
    changes what runs next: when a callback or task is ready or a timer is due (so everything else runs when it
    would have with a turn per call), and at least every :data:`IO_POLL_EVERY` seconds, to poll for I/O. A turn
    (a selector call and the loop's bookkeeping) is a sixth of a one-item call's time: a burst of calls that
    nothing else waits on is spared it. On a loop whose queues are not asyncio's own (uvloop, a browser's), every
    such close turns it.
    """

    __slots__ = ("_poll_at", "_loop", "_queues")

    def __init__(self) -> None:
        self._poll_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: tuple[Any, Any, Any] | None = None  # the loop's ready queue, timer heap and clock

    def due(self) -> bool:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # looked up once per loop: a loop keeps its queues for life
            self._loop = loop
            ready, timers = getattr(loop, "_ready", None), getattr(loop, "_scheduled", None)
            clock = (time.monotonic if type(loop).time is asyncio.BaseEventLoop.time  # what it reads, called direct
                     else loop.time)
            self._queues = ((ready, timers, clock) if isinstance(loop, asyncio.BaseEventLoop) and ready is not None
                            and timers is not None else None)
        queues = self._queues
        if queues is None:
            return True
        ready, timers, clock = queues
        now = clock()
        if ready or now >= self._poll_at or (timers and timers[0]._when <= now):
            self._poll_at = now + IO_POLL_EVERY
            return True
        return False


class _Receiver(Channel[Any]):
    """The caller's end of one stream: the channel its frames wait in until read.

    As on a multiplexed TCP connection (version 2), a stream's OK prologue and its sentinel are implied, not sent:
    a served instance sends neither, and its caller's stream ends cleanly at the end after ``complete_final``.
    Whatever a sender does send arrives as sent."""

    frames_implied = True

    __slots__ = ("subject", "connection_info", "closed", "frames_in", "claimed", "_plane", "_ended",
                 "_on_close", "_on_control", "_waited")

    def __init__(self, plane: "EmbeddedResponsePlane", subject: str, request_id: str) -> None:
        self._items = deque()  # the channel's own two fields (one call fewer per stream than Channel.__init__)
        self._waiter = None
        self.subject = subject
        self.connection_info = SEED.connection_info(plane.address, subject, request_id)
        self._plane = plane
        self.closed = False
        self.frames_in = 0
        self._ended = False
        self._on_close: list[Callable[[], None]] = []
        self._on_control: list[Callable[[str], None]] = []
        self.claimed = False  # a worker connected: the request reached it, whether or not its ack arrives
        self._waited = False  # the caller waited for a frame at least once

    def __aiter__(self) -> "_Receiver":
        return self

    async def __anext__(self) -> tuple[bytes, bytes]:
        items = self._items
        if items:  # frames usually wait already
            frame = items.popleft()
        else:
            self._waited = True
            frame = await self.get()
        if frame.__class__ is tuple and frame is not _EOF:
            return frame
        if isinstance(frame, BaseException):
            self.put(frame)  # stay failed for any later read
            raise frame
        if frame is _EOF:
            self.put(_EOF)  # stay ended for any later read
            raise StopAsyncIteration
        return frame

    def expire(self, reason: str) -> None:
        """The worker's instance left discovery: end the stream unless a frame arrives within a short grace."""
        if self.closed or self._ended:
            return
        seen = self.frames_in

        def check() -> None:
            if not self.closed and not self._ended and self.frames_in == seen:
                self._ended = True
                self.put(StreamStalledError(detail=f"no frame on response stream {self.subject} for "
                                                          f"{GONE_GRACE} s: its instance is gone ({reason})"))
        asyncio.get_running_loop().call_later(GONE_GRACE, check)

    def send_control(self, header: bytes) -> bool:
        word = header.strip(b'"').decode(errors="replace")
        for callback in tuple(self._on_control):
            callback(word)
        return bool(self._on_control)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            plane = self._plane
            plane._receivers.pop(self.subject, None)
            plane._by_info.pop(self.connection_info["info"], None)
            if self._on_close:
                callbacks, self._on_close = self._on_close, []
                for callback in callbacks:
                    callback()
            if not self._waited:  # every frame was there at once (the worker streamed as it was called): the
                self._waited = True  # loop still turns, as when the caller waited for its worker, when it matters
                if plane._turns.due():
                    await _turn()


class _Sender:
    """The worker's end of one stream: a frame sent is in the caller's channel at once (no bound, no wait)."""

    __slots__ = ("_receiver", "_closed")
    frames_implied = True  # see _Receiver

    def __init__(self, receiver: _Receiver) -> None:
        self._receiver = receiver
        self._closed = False

    async def send(self, header: bytes | None, body: bytes | None) -> None:
        receiver = self._receiver
        if receiver.closed:
            raise StreamClosedError("caller closed the response stream")
        if self._closed:
            raise StreamClosedError("response stream already closed")
        receiver.frames_in += 1
        if receiver._waiter is None:  # the caller is not waiting (a stream sent as it was called): nobody to wake
            receiver._items.append((header or b"", body or b""))
        else:
            receiver.put((header or b"", body or b""))

    def closed_by_peer(self) -> bool:
        return self._receiver.closed

    def on_peer_closed(self, callback: Callable[[], None]) -> None:
        if self._receiver.closed:
            callback()
        else:
            self._receiver._on_close.append(callback)

    def on_control(self, callback: Callable[[str], None]) -> None:
        self._receiver._on_control.append(callback)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._receiver._on_control.clear()
            self._receiver._on_close.clear()  # the stream is over: the caller closing its end now is the normal end
            self._receiver._ended = True
            self._receiver.put(_EOF)


class EmbeddedResponsePlane:
    """Shared by one embedded world: every runtime in it can reach every receiver."""

    #: A sender never waits here, so a worker runs the first step of each stream as it takes the request
    #: (see :mod:`dynamo_nb.core.eager`): most streams are over before their caller reads them.
    eager = True

    def __init__(self) -> None:
        self.address = f"embedded:{uuid.uuid4().hex[:8]}"
        self._receivers: dict[str, _Receiver] = {}
        self._by_info: dict[str, _Receiver] = {}  # the exact ``info`` string handed out: no JSON parse per call
        self._prefix = uuid.uuid4().hex[:12]
        self._ids = itertools.count(1)
        self._turns = _Turns()

    async def open_receiver(self, request_id: str) -> _Receiver:
        receiver = _Receiver(self, f"{self._prefix}-{next(self._ids)}", request_id)
        self._receivers[receiver.subject] = receiver
        self._by_info[receiver.connection_info["info"]] = receiver
        return receiver

    async def connect(self, connection_info: dict[str, Any]) -> _Sender:
        known = self._by_info.get(connection_info.get("info"))  # type: ignore[arg-type]
        if known is not None:
            known.claimed = True
            return _Sender(known)
        info = SEED.parse_connection_info(connection_info)
        if info["address"] != self.address:
            raise StreamRefusedError(f"no response listener at {info['address']!r}")
        receiver = self._receivers.get(info["subject"])
        if receiver is None:
            raise StreamRefusedError(f"no caller waiting on stream {info['subject']!r}")
        receiver.claimed = True
        return _Sender(receiver)

    async def close(self) -> None:
        pass
