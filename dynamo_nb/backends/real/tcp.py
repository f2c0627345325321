"""The TCP response plane of Dynamo's ``nats_tcp`` transport (SPEC §8): workers call the caller back.

The caller runs one listening socket per runtime. For each call it registers a receiver under a fresh uuid
*subject* and sends ``connection_info`` (its ``ip:port`` and that subject) inside the NATS request. The worker
connects to the address, sends a header-only handshake frame ``{"subject": ..., "stream_type": "response"}``,
then the prologue, items, ``complete_final`` and the sentinel as TwoPart frames, and closes. The caller closes
its end when it stops reading; the worker sees EOF and cancels the handler — that is how an early ``aclose()``
on a response stream reaches the remote generator.

Every call opens and closes one connection (that is the protocol), so the per-connection cost is most of the
cost of a short call. Between two dynamo_nb runtimes the caller advertises, and the worker uses, the multiplexed
plane of :mod:`.tcp_mux` instead: one connection per caller for all its streams. The listener takes both kinds.

Both ends drive non-blocking sockets straight from the event loop's
``add_reader``/``add_writer`` instead of building an asyncio transport and protocol per call: an accepted
connection is read in the same callback that accepted it, a loopback ``connect`` that completed at once is used
at once, and the frames a handler produces within one loop turn leave in one ``send``. Back-pressure is kept:
the worker waits when the caller's socket stops taking data, and the caller stops reading a stream whose
consumer falls behind.

Every wait is bounded. The caller gives up on a stream whose worker sends nothing for ``stream_idle_timeout``
seconds (or, once the worker's instance key is gone, for a short grace), and drops a connection whose first
frame is not a small handshake. The worker gives up on a caller that takes no data for ``send_drain_timeout``
seconds. A second connection presenting a subject that is already claimed fails the call with
:class:`~dynamo_nb.errors.ResponseInjectionError` naming both peers: the subject travels in clear in the request,
so a stranger who can read it could otherwise slip items into someone else's stream.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections import deque
from typing import Any, Callable

from ...errors import ResponseInjectionError, StreamClosedError, StreamRefusedError, StreamStalledError
from ...ratelog import warn_limited
from ...transport import fastjson
from ...transport.frames import PREFIX, FrameDecoder, FrameError
from ...transport.profile import SEED, ProtocolError, SeedProfile
from . import tcp_mux
from ._deadline import bounded
from .addresses import resolve
from .sockout import FLUSH_BYTES, HIGH_WATER, WOULD_BLOCK, BufferedWriter, dispatch_control
from .tcp_mux import (MUX_ADVERT, MUX_HELLOS, MUX_VERSION, TAG, MuxConnection, MuxSender, RecordDecoder, mux_version,
                      record)

__all__ = ["TcpResponsePlane", "TcpReceiver", "TcpSender", "parse_address"]

log = logging.getLogger(__name__)

_RECV_SIZE = 256 * 1024
_PAUSE_FRAMES = 4096  # caller: stop reading a stream when this many frames wait for its consumer
_RESUME_FRAMES = 1024
_READ_INFOS_MAX = 4096  # worker: connection_info read as requests were taken, kept until their streams connect
_ACCEPT_BATCH = 64
_HANDSHAKE_MAX = 4096  # caller: the largest first frame a connection may send (a handshake is ~70 bytes)
_CONTROL_MAX = 4096  # worker: the largest control frame a caller may send ("stop", "kill")
_MUX_OUT_MAX = 1024 * 1024  # caller: records a multiplexing worker may leave unread before its connection is dropped
STREAM_IDLE_TIMEOUT = 30.0  # caller: seconds without a frame from a connected worker before the stream fails
SEND_DRAIN_TIMEOUT = 30.0  # worker: seconds a caller may take no data before the stream is dropped
GONE_GRACE = 1.0  # caller: seconds a stream lives on without a frame once its instance's key is gone
_EOF = object()
_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)  # Linux: one system call fewer per connection


def parse_address(address: str) -> tuple[str, int]:
    """``"127.0.0.1:4567"`` or ``"[::1]:4567"`` → ``(host, port)``; ValueError otherwise.

    >>> parse_address("127.0.0.1:4567"), parse_address("[::1]:80")
    (('127.0.0.1', 4567), ('::1', 80))
    """
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"bad response address {address!r}: expected host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


# --------------------------------------------------------------------------------------------- caller side


class TcpReceiver:
    """Caller side of one response stream: async-iterate for ``(header, body)`` frames after the handshake.

    Iteration ends when the worker closes its connection. If no worker connects within ``connect_timeout``
    seconds (it died between acknowledging the request and calling back), iteration ends too, so the caller
    reports an incomplete stream instead of waiting forever.
    """

    __slots__ = ("subject", "request_id", "connection_info", "connect_timeout", "idle_timeout", "closed", "peer",
                 "_plane", "_frames", "_waiter", "_conn", "_connected", "_ended", "_timer", "_idle_timer",
                 "_last_frame", "_gone", "_accept", "frames_implied", "__weakref__")

    def __init__(self, plane: "TcpResponsePlane", subject: str, request_id: str) -> None:
        self.subject = subject
        self.request_id = request_id
        self.connection_info: dict[str, Any] = plane.profile.connection_info(plane.address, subject, request_id,
                                                                              mux=plane.mux)
        self.connect_timeout = plane.stream_connect_timeout
        self.idle_timeout = plane.stream_idle_timeout
        self.closed = False
        self.peer = ""  # host:port of the connection that claimed this stream
        self._plane = plane
        self._frames: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._conn: _Inbound | _Lane | None = None
        self._connected = False
        self._ended = False
        self._timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_frame = 0.0
        self._gone = ""  # why the worker is known to be gone (its key was deleted)
        self._accept: Callable[[], None] | None = None  # ends the wait for the request's ack (see accept_early)
        #: the stream comes over a version-2 multiplexed connection: its prologue (OK) and its sentinel are not
        #: among its frames (its OPEN and END stand for them; see :mod:`.tcp_mux`)
        self.frames_implied = False

    def accept_early(self, accept: Callable[[], None] | None) -> None:
        """Given by the request plane while the call waits for its ack: ``accept()`` ends that wait."""
        self._accept = accept

    @property
    def claimed(self) -> bool:
        """A worker connected to this stream (so the request reached it, even if its ack is lost)."""
        return self._connected

    # -- fed by the connection ---------------------------------------------------------------------
    def _attach(self, conn: "_Inbound | _Lane") -> bool:
        if self.closed or self._connected:
            return False
        self._conn = conn
        self._connected = True
        self.peer = conn.peer
        if conn.__class__ is _Lane:
            self.frames_implied = conn._conn._frames_implied
            if self._accept is not None:
                # A multiplexing worker opens the stream only once it has taken the request, so the ack can only
                # say "taken": the call goes on now (the worker sends no ack to such a caller over NATS).
                self._accept()
        self._last_frame = conn._loop.time()
        if self._timer is not None:  # the connect timer goes on as the idle timer: one timer per call, not two
            self._idle_timer, self._timer = self._timer, None
        # else the idle timer starts when the caller first waits for a frame: a short stream, all here before it
        # is read, needs none
        return True

    def _push(self, frames: list[tuple[bytes, bytes]]) -> None:
        self._frames.extend(frames)
        self._last_frame = self._plane._now()
        self._wake()
        if len(self._frames) >= _PAUSE_FRAMES and self._conn is not None:
            self._conn.pause()

    def _end(self) -> None:
        self._conn = None
        self._ended = True
        self._cancel_idle()
        self._frames.append(_EOF)
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        """End the stream with ``exc``: frames not yet read are dropped (they may not be the worker's)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn._receiver = None
            conn.close()
        self._ended = True
        self._cancel_idle()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._plane._receivers.pop(self.subject, None)
        self._frames.clear()
        self._frames.append(exc)
        self._wake()

    def _claimed_again(self, other: "_Inbound | _Lane") -> None:
        warn_limited(log, "injection", "response stream %s claimed twice (by %s, then by %s): failing the call",
                     self.subject, self.peer, other.peer)
        self._fail(ResponseInjectionError(self.subject, self.peer, other.peer))

    # -- idle bound ----------------------------------------------------------------------------------
    def _idle_bound(self) -> float:
        return min(self.idle_timeout, GONE_GRACE) if self._gone else self.idle_timeout

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self.closed or self._ended:
            return
        now, bound = self._plane._now(), self._idle_bound()
        if self._frames:  # the consumer is behind, not the worker: measure from when it caught up
            self._last_frame = now
        idle = now - self._last_frame
        if idle < bound:
            self._idle_timer = self._plane._call_later(bound - idle, self._idle_check)
            return
        why = f"its instance is gone ({self._gone})" if self._gone else "the worker is frozen or unreachable"
        peer = self.peer or "any worker"
        self._fail(StreamStalledError(detail=f"no frame on response stream {self.subject} from {peer} "
                                             f"for {idle:.1f} s: {why}"))

    def expire(self, reason: str) -> None:
        """The worker's instance left discovery: the stream ends unless a frame arrives within a short grace."""
        if self.closed or self._ended or self._gone:
            return
        self._gone = reason or "its key was deleted"
        if self._timer is not None and not self._connected:  # still waiting for the worker to call back
            self._timer.cancel()
            self._timer = self._plane._call_later(GONE_GRACE, self._connect_timed_out)
        if self._connected:
            self._cancel_idle()
            self._idle_timer = self._plane._call_later(GONE_GRACE, self._idle_check)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _connect_timed_out(self) -> None:
        if self._connected:  # the timer became the idle timer when the worker connected
            self._idle_timer = None
            self._idle_check()
            return
        self._timer = None
        if not self.closed:
            if self._gone:
                self._fail(StreamStalledError(detail=f"no worker called back on response stream {self.subject}: "
                                                     f"its instance is gone ({self._gone})"))
                return
            warn_limited(log, "no-callback", "no worker called back on response stream %s within %.1f s",
                         self.subject, self.connect_timeout)
            self._plane._receivers.pop(self.subject, None)
            self._end()

    # -- consumed by the caller --------------------------------------------------------------------
    def __aiter__(self) -> "TcpReceiver":
        return self

    async def __anext__(self) -> tuple[bytes, bytes]:
        frames = self._frames
        while not frames:
            if self.closed:
                raise StopAsyncIteration
            loop = asyncio.get_running_loop()
            if self._connected:
                if self._idle_timer is None:  # measured from the last frame, as if it had run since
                    self._idle_timer = loop.call_later(max(0.0, self._idle_bound() - (loop.time() - self._last_frame)),
                                                       self._idle_check)
            elif self._timer is None:
                self._timer = loop.call_later(GONE_GRACE if self._gone else self.connect_timeout,
                                              self._connect_timed_out)
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        frame = frames.popleft()
        if frame.__class__ is not tuple:
            frames.appendleft(frame)  # stay ended (or failed) for any later read
            if frame is _EOF:
                raise StopAsyncIteration
            raise frame
        if len(frames) == _RESUME_FRAMES and self._conn is not None:
            self._conn.resume()
        return frame

    def next_ready(self) -> tuple[bytes, bytes] | None:
        """The next frame if it is already here (None: await the iterator instead): what most reads of a short
        stream find, without a coroutine per frame."""
        frames = self._frames
        if not frames or frames[0].__class__ is not tuple or len(frames) == _RESUME_FRAMES + 1:
            return None
        return frames.popleft()

    def send_control(self, header: bytes) -> bool:
        """Send one header-only control frame to the worker (best effort, never blocks); True if it went."""
        conn = self._conn
        return conn is not None and conn.send_control(header)

    async def close(self) -> None:
        """Stop listening: unregister, and close the socket so the worker's handler learns the caller left."""
        if self.closed:
            return
        self.closed = True
        self._plane._receivers.pop(self.subject, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._cancel_idle()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._wake()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("connected" if self._connected else "waiting")
        return f"TcpReceiver({self.subject}, {state}, buffered={len(self._frames)})"


class _Inbound:
    """One worker's connection to the caller's listener: handshake first, then frames for one receiver, or, after
    a multiplexing hello (:mod:`.tcp_mux`), records for many."""

    __slots__ = ("_plane", "_loop", "_sock", "_fd", "_decoder", "_receiver", "_reading", "_paused", "peer",
                 "_lanes", "_out", "_writing", "_rdec", "_frames_implied")

    def __init__(self, plane: "TcpResponsePlane", loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 peer: str = "") -> None:
        self._plane = plane
        self._loop = loop
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        self.peer = peer
        self._decoder = FrameDecoder(first_max=_HANDSHAKE_MAX)  # nothing large before the peer says who it is
        self._receiver: TcpReceiver | None = None
        self._reading = False  # registered with the loop
        self._paused = False  # held back because the consumer is behind
        self._lanes: dict[int, _Lane] | None = None  # a multiplexed connection's open streams
        self._rdec: RecordDecoder | None = None  # a multiplexed connection's decoder (after the hello)
        self._frames_implied = False  # a version-2 multiplexed connection: prologue and sentinel are not sent
        self._out = bytearray()  # multiplexed: records for the worker the socket did not take yet
        self._writing = False
        plane._inbound.add(self)

    def start(self) -> None:
        self._on_readable()  # the worker usually sent its first frames before we even accepted
        self._watch()
        if self._sock is not None and self._receiver is None and self._lanes is None:
            # No handshake yet: do not let a silent connection hold a descriptor for ever.
            self._loop.call_later(self._plane.stream_connect_timeout, self._handshake_overdue)

    def _handshake_overdue(self) -> None:
        if self._sock is not None and self._receiver is None and self._lanes is None:
            warn_limited(log, "no-handshake", "dropping a response connection that sent no handshake")
            self.close()

    def _watch(self) -> None:
        if not self._reading and not self._paused and self._sock is not None:
            self._reading = True
            self._loop.add_reader(self._fd, self._on_readable)

    def _unwatch(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def _on_readable(self) -> None:
        # Read until the socket is drained (a few times at most, to stay fair to other connections): a short
        # stream is then read *and* found finished in one go, without ever registering with the loop.
        for _ in range(4):
            sock = self._sock
            if sock is None or self._paused:
                return
            try:
                data = sock.recv(_RECV_SIZE)
            except WOULD_BLOCK:
                return
            except OSError:
                data = b""  # reset by the worker: the same as EOF for the stream
            if not data:
                self._finish()
                return
            rdec = self._rdec
            try:
                if rdec is not None:
                    records = rdec.feed(data)
                else:
                    frames = self._decoder.feed(data)
                    version = MUX_HELLOS.get(frames[0][0]) if frames and self._receiver is None else None
                    if version is not None and self._plane.mux:
                        # A multiplexing worker: what follows the hello are records (see tcp_mux).
                        self._lanes = {}
                        self._frames_implied = version >= 2
                        rdec = self._rdec = RecordDecoder(self._decoder.take_pending())
                        records = []
                        for header, body in frames[1:]:
                            if len(header) < TAG.size:
                                raise FrameError("a record without its tag")
                            records.append((*TAG.unpack_from(header), header[TAG.size:], body))
            except FrameError as exc:
                warn_limited(log, "bad-frame", "dropping a response connection that sent a bad frame: %s", exc)
                self._drop()
                return
            if rdec is not None:
                if records:
                    self._records(records)
                if not self._lanes and rdec.pending > _HANDSHAKE_MAX and self._sock is not None:
                    # Large frames are for claimed streams only: a peer that named none must not make us hold them.
                    self._bad_record(f"{rdec.pending} bytes pending while no stream is claimed")
                    return
                continue
            if not frames:
                continue
            if self._receiver is None:
                if not self._handshake(frames[0][0]):
                    self.close()
                    return
                del frames[0]
            if frames and self._receiver is not None:
                self._receiver._push(frames)

    def _handshake(self, header: bytes) -> bool:
        try:
            subject = fastjson.loads(header)["subject"]
        except (ValueError, KeyError, TypeError, RecursionError):
            warn_limited(log, "bad-handshake", "dropping a response connection without a handshake (got %r)",
                         header[:100])
            return False
        return self._claim(subject, self) is not None

    def _claim(self, subject: Any, conn: "_Inbound | _Lane") -> TcpReceiver | None:
        """The receiver waiting on ``subject``, now fed by ``conn``; None if there is none to claim."""
        receiver = self._plane._receivers.get(subject) if isinstance(subject, str) else None
        if receiver is not None and receiver._connected and not receiver.closed:
            receiver._claimed_again(conn)  # one of the two is forged: never mix their items
            return None
        if receiver is None or not receiver._attach(conn):
            # The caller already gave up on this stream: closing tells the worker to stop generating.
            log.debug("no caller waiting on response stream %r", subject)
            return None
        conn._receiver = receiver
        return receiver

    # -- multiplexed ---------------------------------------------------------------------------------
    def _records(self, records: list[tuple[int, int, bytes, bytes]]) -> None:
        """Dispatch a multiplexed connection's records; anything malformed drops the whole connection."""
        lanes = self._lanes
        assert lanes is not None
        batch: _Lane | None = None  # consecutive frames of one stream are handed over together
        pending: list[tuple[bytes, bytes]] = []
        for stream, kind, header, body in records:
            if kind == 2:  # tcp_mux.FRAME, the one kind met once per item
                lane = lanes.get(stream)
                if lane is None:
                    continue  # a stream this caller closed: what was in flight is dropped
                if lane is not batch:
                    if batch is not None and pending:
                        batch._push(pending)
                    batch, pending = lane, []
                pending.append((header, body))
                continue
            if batch is not None and pending:
                batch._push(pending)
            batch, pending = None, []
            if kind == tcp_mux.OPEN:
                if stream in lanes:
                    self._bad_record(f"stream {stream} opened twice")
                    return
                lane = _Lane(self, stream)
                try:
                    subject = header.decode()
                except UnicodeDecodeError:
                    subject = ""
                if self._claim(subject, lane) is None:
                    self.send_record(record(stream, tcp_mux.CLOSE))  # tells the worker to stop generating
                else:
                    lanes[stream] = lane
            elif kind == tcp_mux.END:
                lane = lanes.pop(stream, None)
                if lane is not None:
                    lane._ended()
            else:
                self._bad_record(f"record kind {kind}")
                return
            if self._sock is None:
                return
        if batch is not None and pending:
            batch._push(pending)

    def _bad_record(self, what: str) -> None:
        warn_limited(log, "bad-frame", "dropping a multiplexed response connection from %s: %s", self.peer, what)
        self._drop()

    def send_record(self, data: bytes) -> bool:
        """Queue a record for the worker (a multiplexed connection: a lost ``CLOSE`` would leave its handler
        running, so what the socket does not take now goes when it can)."""
        sock = self._sock
        if sock is None:
            return False
        if not self._out:
            try:
                sent = sock.send(data)
            except WOULD_BLOCK:
                sent = 0
            except OSError:
                return False
            if sent == len(data):
                return True
            data = data[sent:]
        self._out += data
        if len(self._out) > _MUX_OUT_MAX:  # the worker reads nothing: its streams are lost anyway
            self._bad_record("the worker reads none of the caller's records")
            return False
        if not self._writing:
            self._writing = True
            self._loop.add_writer(self._fd, self._on_writable)
        return True

    def _on_writable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sent = sock.send(self._out)
        except WOULD_BLOCK:
            return
        except OSError:
            sent = len(self._out)
        del self._out[:sent]
        if not self._out and self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)

    # -- ending --------------------------------------------------------------------------------------
    def _finish(self) -> None:
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            receiver._end()
        self._end_lanes()
        self.close()

    def _drop(self) -> None:
        """Close after bad input: a multiplexed connection's streams end now (they can no longer be trusted)."""
        self._end_lanes()
        self.close()

    def _end_lanes(self) -> None:
        lanes = self._lanes
        if lanes:
            self._lanes = {}
            for lane in lanes.values():
                lane._ended()

    def send(self, data: bytes) -> bool:
        sock = self._sock
        if sock is None:
            return False
        try:
            return sock.send(data) == len(data)
        except OSError:  # full or gone: a cancel is best effort
            return False

    def send_control(self, header: bytes) -> bool:
        return self.send(PREFIX.pack(len(header), 0, 0) + header)

    def pause(self) -> None:
        self._paused = True
        self._unwatch()

    def resume(self) -> None:
        self._paused = False
        self._watch()

    def close(self, now: bool = False) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self._unwatch()
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)
        self._plane._inbound.discard(self)
        if now:
            sock.close()
        else:
            # Closed on the next turn, after the consumer woken by this stream's end has run: the syscall is
            # then off the path of the result. (Unregistered first, and still open until then, so its
            # descriptor number cannot be reused under the loop's feet.)
            self._loop.call_soon(sock.close)


class _Lane:
    """One stream of a multiplexed connection, as its receiver sees it: what ``_Inbound`` is to a per-stream one."""

    __slots__ = ("_conn", "stream", "_receiver", "peer", "_loop", "_held")

    def __init__(self, conn: _Inbound, stream: int) -> None:
        self._conn = conn
        self.stream = stream
        self._receiver: TcpReceiver | None = None
        self.peer = conn.peer
        self._loop = conn._loop
        self._held = False

    def _push(self, frames: list[tuple[bytes, bytes]]) -> None:
        if self._receiver is not None:
            self._receiver._push(frames)

    def _ended(self) -> None:
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            receiver._end()

    def send_control(self, header: bytes) -> bool:
        return self._conn.send_record(record(self.stream, tcp_mux.CONTROL, header))

    def pause(self) -> None:
        """The consumer is behind: the worker holds this stream (the shared connection keeps being read)."""
        if not self._held:
            self._held = True
            self._conn.send_record(record(self.stream, tcp_mux.PAUSE))

    def resume(self) -> None:
        if self._held:
            self._held = False
            self._conn.send_record(record(self.stream, tcp_mux.RESUME))

    def close(self, now: bool = False) -> None:
        """The caller stopped reading: only this stream ends at the worker."""
        conn = self._conn
        lanes = conn._lanes
        if lanes is not None and lanes.get(self.stream) is self:
            del lanes[self.stream]
            conn.send_record(record(self.stream, tcp_mux.CLOSE))
        self._receiver = None


# --------------------------------------------------------------------------------------------- worker side


class TcpSender(BufferedWriter):
    """Worker side of one response stream: a connection to the caller, frames written in order.

    ``send`` buffers the frame and writes at the end of the current loop turn (or at once past 4 KiB), so a
    handler that yields many items at once costs one syscall per batch; it waits only while the socket has more
    than 256 KiB it could not take.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, connected: bool,
                 on_done: Callable[["TcpSender"], None] | None = None,
                 drain_timeout: float = SEND_DRAIN_TIMEOUT) -> None:
        self._init_writer(loop, sock, connected)
        self.drain_timeout = drain_timeout
        self._on_done = on_done
        self._peer_closed = False
        self._closed = False
        self._callbacks: list[Callable[[], None]] = []
        self._control_callbacks: list[Callable[[str], None]] = []
        self._control = FrameDecoder(max_frame=_CONTROL_MAX)
        self.frames_sent = 0
        # The caller talks only to stop the stream, so "readable" mostly means it hung up. Most short streams are
        # over within the loop turn that opened them; watching starts on the next turn, which spares those two
        # epoll calls.
        self._watching = False
        loop.call_soon(self._watch_peer)

    def _watch_peer(self) -> None:
        if self._sock is not None and not self._watching:
            self._watching = True
            self._loop.add_reader(self._fd, self._on_readable)

    # -- socket events ------------------------------------------------------------------------------
    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(4096)
        except WOULD_BLOCK:
            return
        except OSError:
            data = b""
        if not data:
            self._peer_gone()
            return
        # Dynamo's callers send header-only control frames: "stop" (finish soon) and "kill" (stop now).
        try:
            frames = self._control.feed(data)
        except FrameError:
            log.debug("ignoring garbage from the caller on a response stream")
            self._control = FrameDecoder(max_frame=_CONTROL_MAX)
            return
        for header, _ in frames:
            dispatch_control(header, self._control_callbacks, log)

    def _lost(self) -> None:
        self._peer_gone()

    def _all_sent(self) -> None:
        if self._closed:
            self._shutdown()

    def _peer_gone(self) -> None:
        if self._peer_closed:
            return
        self._peer_closed = True
        self._buf.clear()
        self._buffered = 0
        self._unsent.clear()
        self._shutdown()
        self._release_drain()
        if self._closed:
            return  # we had finished: the caller closing afterwards is the normal end
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("peer-closed callback failed")

    def _shutdown(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._watching:  # unregister before close: the descriptor number may be reused at once
            self._watching = False
            self._loop.remove_reader(self._fd)
        self._stop_writing()
        sock.close()
        if self._on_done is not None:
            self._on_done(self)

    # -- ResponseSender -------------------------------------------------------------------------------
    async def send(self, header: bytes | None, body: bytes | None) -> None:
        if self._peer_closed:
            raise StreamClosedError("the caller closed the response stream")
        if self._closed:
            raise StreamClosedError("response stream already closed")
        header = header or b""
        body = body or b""
        self._buf.append(PREFIX.pack(len(header), len(body), 0) + header + body)
        self._buffered += PREFIX.size + len(header) + len(body)
        self.frames_sent += 1
        if self._buffered >= FLUSH_BYTES:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        if len(self._unsent) > HIGH_WATER:  # over_high_water(), spelt out: this is once per item
            await self._wait_drained(self.drain_timeout, self._drain_overdue)
            if self._peer_closed:
                raise StreamClosedError(self._why_closed)

    _why_closed = "the caller closed the response stream"

    def _drain_overdue(self, drain: "asyncio.Future[Any]") -> None:
        """A caller that stops reading must not hold this handler (and its socket) for ever."""
        if drain.done() or self._sock is None:
            return
        warn_limited(log, "drain-overdue", "dropping a response stream whose caller took no data for %.1f s",
                     self.drain_timeout)
        self._why_closed = f"the caller took no data for {self.drain_timeout} s; stream dropped"
        self._peer_gone()

    def closed_by_peer(self) -> bool:
        return self._peer_closed

    def on_peer_closed(self, callback: Callable[[], None]) -> None:
        if self._peer_closed and not self._closed:
            callback()
        else:
            self._callbacks.append(callback)

    def on_control(self, callback: Callable[[str], None]) -> None:
        """Call ``callback("stop"|"kill")`` for each control frame the caller sends."""
        self._control_callbacks.append(callback)

    async def close(self) -> None:
        """Send what is buffered and close; unsent bytes finish in the background."""
        if self._closed:
            return
        self._flush()
        self._closed = True
        self._callbacks.clear()
        if not self._unsent:
            self._shutdown()

    def abort(self) -> None:
        """Drop the connection at once (the worker is going away)."""
        self._closed = True
        self._callbacks.clear()
        self._unsent.clear()
        self._shutdown()


# --------------------------------------------------------------------------------------------- the plane


class TcpResponsePlane:
    """One listening socket per runtime for the streams it calls, and outgoing connections for those it serves.

    ``host`` is where the listener binds (loopback by default); ``advertise_host`` is the address workers are
    told to call back on (defaults to ``host``; set it when binding ``0.0.0.0``). ``mux`` (default: on, unless
    ``DYNAMO_NB_RESPONSE_MUX=0``) advertises and accepts the multiplexed response plane of :mod:`.tcp_mux`, so
    streams between two dynamo_nb runtimes share one connection; off, every call gets its own, as in Dynamo 1.6.1.
    """

    def __init__(self, host: str = "127.0.0.1", *, advertise_host: str | None = None,
                 profile: SeedProfile = SEED, stream_connect_timeout: float = 10.0,
                 connect_timeout: float = 5.0, stream_idle_timeout: float | None = None,
                 send_drain_timeout: float | None = None, mux: bool | None = None) -> None:
        self.host = host
        self.advertise_host = advertise_host or host
        self.profile = profile
        self.stream_connect_timeout = stream_connect_timeout
        self.connect_timeout = connect_timeout
        self.stream_idle_timeout = _seconds("DYNAMO_NB_STREAM_IDLE_TIMEOUT", stream_idle_timeout,
                                            STREAM_IDLE_TIMEOUT)
        self.send_drain_timeout = _seconds("DYNAMO_NB_SEND_DRAIN_TIMEOUT", send_drain_timeout, SEND_DRAIN_TIMEOUT)
        self.mux = mux if mux is not None else os.environ.get("DYNAMO_NB_RESPONSE_MUX", "1") != "0"
        self.port = 0
        self.accepted = 0  # connections the listener accepted (one per stream, or one per multiplexing worker)
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._receivers: dict[str, TcpReceiver] = {}
        self._inbound: set[_Inbound] = set()
        self._senders: set[TcpSender] = set()
        self._mux_out: dict[str, MuxConnection] = {}  # by the caller's address as its requests give it
        self._dialing: dict[str, asyncio.Future[MuxConnection]] = {}
        self._read_infos: dict[str, dict[str, Any]] = {}  # see _parse_info
        self._random, self._random_at = b"", 0  # see _unguessable
        self._closed = False

    @property
    def address(self) -> str:
        """``ip:port`` workers connect to; empty until the listener has started."""
        if not self.port:
            return ""
        host = f"[{self.advertise_host}]" if ":" in self.advertise_host else self.advertise_host
        return f"{host}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._listener is not None

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    def _call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        loop = self._loop or asyncio.get_running_loop()
        return loop.call_later(delay, callback)

    def receivers(self) -> list[str]:
        """Subjects of the streams this runtime is waiting on (for inspection)."""
        return list(self._receivers)

    async def start(self) -> None:
        """Start the listener (done on first use; calling it early takes the cost out of the first call)."""
        if self._listener is not None:
            return
        if self._closed:
            raise StreamClosedError("response plane is closed")
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "TCP_DEFER_ACCEPT"):
                # Linux: wake the listener only once the worker's first bytes are there, so one wake-up both
                # accepts and reads the handshake (workers always speak first).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
            sock.bind((self.host, 0))
            sock.listen(1024)
            sock.setblocking(False)
            loop.add_reader(sock.fileno(), self._on_accept)
        except BaseException:
            sock.close()
            raise
        self._loop = loop
        self._listener = sock
        self.port = int(sock.getsockname()[1])

    def _on_accept(self) -> None:
        listener, loop = self._listener, self._loop
        if listener is None or loop is None:
            return
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, peer = listener.accept()
            except WOULD_BLOCK:
                return
            except OSError as exc:  # out of file descriptors and the like: try again on the next event
                if exc.errno not in (errno.ECONNABORTED, errno.EPROTO):
                    log.warning("response listener cannot accept: %s", exc)
                return
            conn.setblocking(False)
            self.accepted += 1
            if not _is_loopback(peer):
                _keep_alive(conn)
            _Inbound(self, loop, conn, _format_peer(peer)).start()

    async def open_receiver(self, request_id: str) -> TcpReceiver:
        if self._listener is None:
            await self.start()
        receiver = TcpReceiver(self, self._unguessable(), request_id)
        self._receivers[receiver.subject] = receiver
        return receiver

    def _unguessable(self) -> str:
        """A new stream subject: 16 bytes from the system's random source, as a uuid4's hex. They are read 4 KiB
        at a time: a ``urandom`` call per stream cost more than its bytes."""
        pos = self._random_at
        if pos >= len(self._random):
            self._random, pos = os.urandom(4096), 0
        self._random_at = pos + 16
        return self._random[pos:pos + 16].hex()

    def _parse_info(self, connection_info: dict[str, Any], keep: bool) -> dict[str, Any]:
        """``connection_info`` read. A request's is read twice, as it is taken (``keep``: is its opening the ack?)
        and as its stream connects, with the rest of the batch taken in between: the first reading is kept for
        the second."""
        text = connection_info.get("info") if isinstance(connection_info, dict) else None
        read = self._read_infos
        if isinstance(text, str):
            info = read.pop(text, None) if not keep else read.get(text)
            if info is not None:
                return info
        info = self.profile.parse_connection_info(connection_info)
        if keep and isinstance(text, str):
            if len(read) >= _READ_INFOS_MAX:  # streams that never connected (their worker stopped first)
                read.clear()
            read[text] = info
        return info

    def opening_acks(self, connection_info: dict[str, Any]) -> bool:
        """Whether the stream's opening tells this caller its request was taken, so no ack need cross the NATS
        server: a multiplexing caller's early accept (see :meth:`TcpReceiver._attach`). Any other caller, and
        every real Dynamo one, gets the ack."""
        if not self.mux:
            return False
        try:
            return mux_version(self._parse_info(connection_info, keep=True).get(MUX_ADVERT)) > 0
        except ProtocolError:
            return False

    async def connect(self, connection_info: dict[str, Any]) -> TcpSender | MuxSender:
        """Call the caller back and queue the handshake; :class:`StreamRefusedError` if it cannot be reached.

        A caller that advertises the multiplexed plane gets the stream on its shared connection of the version it
        reads (dialled on first use, and again after it broke); any other gets a connection of its own."""
        try:
            info = self._parse_info(connection_info, keep=False)
            address = str(info["address"])
            version = mux_version(info.get(MUX_ADVERT)) if self.mux else 0
            key = address if version == MUX_VERSION else f"{address} (v{version})"
            conn = self._mux_out.get(key) if version else None
            if conn is not None:
                return conn.open(str(info["subject"]))
            host, port = parse_address(address)
        except (ProtocolError, ValueError) as exc:
            raise StreamRefusedError(f"cannot call back: {exc}") from exc
        if version:
            return (await self._mux_dial(key, host, port, version)).open(str(info["subject"]))
        sock, connected = await self._dial(host, port)
        loop = asyncio.get_running_loop()
        sender = TcpSender(loop, sock, connected, self._senders.discard, self.send_drain_timeout)
        self._senders.add(sender)
        await sender.send(self.profile.handshake(str(info["subject"])), None)
        return sender

    async def _mux_dial(self, key: str, host: str, port: int, version: int) -> MuxConnection:
        """The shared connection ``key`` names (a caller's address, and the version it reads): concurrent first
        calls wait for one dial, not one each."""
        dialing = self._dialing.get(key)
        if dialing is not None:
            return await asyncio.shield(dialing)
        loop = asyncio.get_running_loop()
        dialing = self._dialing[key] = loop.create_future()
        try:
            sock, connected = await self._dial(host, port)
            if self._closed:
                sock.close()
                raise StreamClosedError("response plane is closed")
            conn = MuxConnection(loop, sock, connected, key, self._mux_done, self.send_drain_timeout, version)
            self._mux_out[key] = conn
            dialing.set_result(conn)
            return conn
        except BaseException as exc:
            dialing.set_exception(exc)
            dialing.exception()  # retrieved: no waiter may be left to see it
            raise
        finally:
            del self._dialing[key]

    def _mux_done(self, conn: MuxConnection) -> None:
        if self._mux_out.get(conn.key) is conn:
            del self._mux_out[conn.key]

    def mux_connections(self) -> list[MuxConnection]:
        """The shared connections this runtime's workers hold to callers (for inspection)."""
        return list(self._mux_out.values())

    async def _dial(self, host: str, port: int) -> tuple[socket.socket, bool]:
        """A non-blocking socket connected (or connecting, on a slow path) to the caller's listener."""
        loop = asyncio.get_running_loop()
        try:  # a host name is resolved off the loop, bounded: a forged request must not freeze this worker
            family, sockaddr = await resolve(host, port, self.connect_timeout)
        except asyncio.TimeoutError:
            raise StreamRefusedError(f"cannot call back {host}:{port}: the name did not resolve within "
                                     f"{self.connect_timeout} s") from None
        except OSError as exc:
            raise StreamRefusedError(f"cannot call back {host}:{port}: {exc}") from None
        sock = socket.socket(family, socket.SOCK_STREAM | _NONBLOCK)  # non-blocking from birth where it can be
        try:
            if not _NONBLOCK:
                sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if not _is_loopback(sockaddr):
                _keep_alive(sock)
            error = sock.connect_ex(sockaddr)
            connected = error == 0
            if error in (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                connected = not error and _is_connected(sock)
                if not error and not connected:  # not loopback-fast: wait for the handshake, bounded
                    await bounded(_writable(loop, sock), self.connect_timeout)
                    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    connected = not error
            if error:
                raise StreamRefusedError(error, f"cannot call back {host}:{port}: {os.strerror(error)}")
        except asyncio.TimeoutError:
            sock.close()
            raise StreamRefusedError(f"no answer from response listener {host}:{port} "
                                     f"within {self.connect_timeout} s") from None
        except StreamRefusedError:
            sock.close()
            raise
        except OSError as exc:  # out of descriptors, no route, ...: the same to the worker as a refusal
            sock.close()
            raise StreamRefusedError(exc.errno, f"cannot call back {host}:{port}: {exc.strerror or exc}") from exc
        except BaseException:
            sock.close()
            raise
        return sock, connected

    async def close(self) -> None:
        """Stop listening, end every waiting receiver, drop outgoing streams."""
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None and self._loop is not None:
            self._loop.remove_reader(listener.fileno())
            listener.close()
        for receiver in list(self._receivers.values()):
            await receiver.close()
        for conn in list(self._inbound):
            claimed, conn._receiver = conn._receiver, None
            if claimed is not None:
                claimed._end()
            conn._end_lanes()
            conn.close(now=True)
        for sender in list(self._senders):
            sender.abort()
        self._senders.clear()
        for mux in list(self._mux_out.values()):
            mux.abort()

    def __repr__(self) -> str:
        where = self.address or "not listening"
        return f"TcpResponsePlane({where}, waiting={len(self._receivers)})"


def _seconds(variable: str, given: float | None, default: float) -> float:
    """A positive number of seconds: ``given``, else the environment variable, else ``default``."""
    if given is None:
        text = os.environ.get(variable, "")
        try:
            given = float(text) if text else default
        except ValueError:
            raise ValueError(f"{variable} must be a number of seconds, got {text!r}") from None
    if not given > 0:
        raise ValueError(f"{variable.lower()} must be positive, got {given}")
    return given


def _format_peer(address: Any) -> str:
    try:
        host, port = address[0], address[1]
    except (TypeError, IndexError):
        return str(address)
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _is_loopback(address: Any) -> bool:
    """A peer on this host: no keep-alive needed (the kernel ends the connection when either side dies), which
    spares four system calls per connection on the local path."""
    try:
        host = str(address[0])
    except (TypeError, IndexError):
        return False
    return host.startswith("127.") or host == "::1"


def _keep_alive(sock: socket.socket, idle: int = 10, interval: int = 5, count: int = 3) -> None:
    """TCP keep-alive, so a peer host that vanishes without closing its socket ends the stream (~25 s)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval), ("TCP_KEEPCNT", count)):
        option = getattr(socket, name, None)
        if option is not None:  # Linux names; other systems keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


def _is_connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


async def _writable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    future: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()
    def ready() -> None:
        if not future.done():
            future.set_result(None)

    loop.add_writer(fd, ready)
    try:
        await future
    finally:
        loop.remove_writer(fd)
