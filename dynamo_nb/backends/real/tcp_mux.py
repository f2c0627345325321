"""The multiplexed response plane (``response_mux`` v2): every stream a worker sends one caller shares one connection.

Dynamo 1.6.1's ``nats_tcp`` response plane opens one TCP connection per call, and that connection (connect,
accept, handshake, close on both sides) costs more kernel time than a whole raw NATS request/reply. Between two
dynamo_nb runtimes the connection is kept instead, and streams are told apart by a tag on every frame.

**Negotiation.** A caller that accepts it adds ``"response_mux":N`` to the ``info`` JSON string of
``connection_info``, ``N`` the highest version it reads (this one: 2; a real Dynamo 1.6.1 worker ignores the
unknown field and calls back per stream, as before). A worker that sees it keeps one connection per caller
address and version, and speaks the lower of ``N`` and its own; a worker that does not (real Dynamo) sends
exactly today's per-stream connection. The caller's listener accepts both kinds, and both versions.

**Ack.** The worker opens a multiplexed stream only once it has taken the request, so the caller takes the
``OPEN`` as the request's ack, and the worker sends no empty ack on the request plane's NATS reply subject (a
refusal still goes there). A request that no stream opens for is failed over after the ack timeout, as an
unacknowledged one always was.

**Wire.** Everything is TwoPart frames (``u64 header_len | u64 body_len | u64 checksum=0 | header | body``):

- the worker's first frame on the connection is header-only ``{"stream_type":"response_mux","version":V}``
  (where a per-stream connection sends its ``{"subject":..., "stream_type":"response"}`` handshake);
- every later frame, both ways, is a *record*: its header starts with a 5-byte tag ``u32 stream | u8 kind``
  (big-endian) followed by the inner header, its body is the inner body. ``stream`` is a number the worker
  picks for each stream on the connection.

Kinds, worker → caller: ``OPEN`` (1, inner header: the stream's subject from ``connection_info``: the handshake
of that stream), ``FRAME`` (2, one frame of the stream: prologue, item, ``complete_final``, sentinel, as on a
per-stream connection), ``END`` (3, the worker closed the stream: what EOF is on a per-stream connection).

**Version 2** differs in one thing: the two frames every stream has are implied instead of sent. The ``OPEN``
stands for the prologue ``{"error":null}``, and the ``END`` after ``complete_final`` for the sentinel, so a
one-item call's stream is four records, not six (on a busy machine a sixth of the CPU both sides spend on a
call). The frames a stream does carry are exactly those of version 1, and the caller's stream ends cleanly
at its ``END`` once ``complete_final`` came, as a per-stream one does at EOF.
Caller → worker: ``CONTROL`` (4, inner header: a control frame's header, ``"stop"``/``"kill"``), ``CLOSE``
(5, the caller stopped reading this stream, or refuses its ``OPEN``: what closing the socket is per stream),
``PAUSE`` (6) / ``RESUME`` (7), per-stream flow control: the caller never stops reading the shared connection,
so a consumer that falls behind asks the worker to hold that stream's sends instead.

**Faults.** The connection breaking (worker died, reset) ends every stream on it as EOF ends a per-stream one
(the caller then reports an incomplete stream); the worker's sends on it fail as if each caller had closed. A
record that is not well formed, a reused stream number or an unknown kind closes the connection, never the
listener. A worker drops a connection no stream has used for ``MUX_IDLE`` seconds; the next call dials again.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Callable

from ...errors import StreamClosedError
from ...ratelog import warn_limited
from ...transport.frames import MAX_FRAME, PREFIX, FrameDecoder, FrameError
from .sockout import FLUSH_BYTES, WOULD_BLOCK, BufferedWriter, dispatch_control

__all__ = ["MUX_ADVERT", "MUX_HELLO", "MUX_HELLOS", "MUX_VERSION", "MuxConnection", "MuxSender", "RecordDecoder",
           "mux_hello", "mux_version", "record", "OPEN", "FRAME",
           "END", "CONTROL", "CLOSE", "PAUSE", "RESUME", "TAG"]

log = logging.getLogger(__name__)

MUX_ADVERT = "response_mux"  # the field of connection_info's ``info``: the highest version the caller reads
MUX_VERSION = 2  # the highest version spoken here


def mux_hello(version: int) -> bytes:
    """The header-only frame a worker opens a shared connection of that version with."""
    return b'{"stream_type":"response_mux","version":%d}' % version


MUX_HELLO = mux_hello(1)
MUX_HELLOS = {mux_hello(v): v for v in range(1, MUX_VERSION + 1)}  # what a caller's listener accepts


def mux_version(advert: object) -> int:
    """The version to speak to a caller whose ``connection_info`` advertised ``advert`` (0: none, per stream).

    >>> mux_version(1), mux_version(2), mux_version(7), mux_version(None), mux_version(True), mux_version("2")
    (1, 2, 2, 0, 0, 0)
    """
    if not isinstance(advert, int) or advert.__class__ is bool or advert < 1:
        return 0
    return min(advert, MUX_VERSION)
TAG = struct.Struct(">IB")
_RECORD = struct.Struct(">QQQIB")  # the TwoPart prefix and the tag, packed at once
OPEN, FRAME, END, CONTROL, CLOSE, PAUSE, RESUME = 1, 2, 3, 4, 5, 6, 7
MUX_IDLE = 60.0  # worker: seconds a connection with no stream stays open
_CONTROL_MAX = 4096


def record(stream: int, kind: int, header: bytes = b"", body: bytes = b"") -> bytes:
    """One record: a TwoPart frame whose header is the tag then ``header``.

    >>> record(7, CLOSE).hex()
    '0000000000000005000000000000000000000000000000000000000705'
    """
    return _RECORD.pack(TAG.size + len(header), len(body), 0, stream, kind) + header + body


class RecordDecoder:
    """Incremental decoder of records: ``(stream, kind, inner header, body)`` each, cut straight from the bytes.

    A record whose header is shorter than the tag, or whose lengths pass ``max_frame``, raises
    :class:`FrameError` as soon as its prefix arrives.
    """

    def __init__(self, pending: bytes | bytearray = b"", max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray(pending)
        self.max_frame = max_frame

    def feed(self, data: bytes) -> list[tuple[int, int, bytes, bytes]]:
        buf: bytes | bytearray = data
        if self._buf:
            self._buf += data
            buf = self._buf
        records = []
        pos, size, unpack, limit = 0, len(buf), _RECORD.unpack_from, self.max_frame
        while size - pos >= 29:
            header_len, body_len, _, stream, kind = unpack(buf, pos)
            if header_len < 5:
                raise FrameError(f"a record whose header ({header_len} bytes) has no room for its tag")
            if header_len + body_len > limit:
                raise FrameError(f"record of {header_len + body_len} bytes exceeds the {limit}-byte limit")
            start = pos + 24 + header_len
            end = start + body_len
            if size < end:
                break
            records.append((stream, kind, bytes(buf[pos + 29:start]) if header_len > 5 else b"",
                            bytes(buf[start:end])))
            pos = end
        if buf is self._buf:
            del self._buf[:pos]
        elif pos < size:
            self._buf += data[pos:]
        return records

    @property
    def pending(self) -> int:
        return len(self._buf)


class MuxSender:
    """Worker side of one stream on a shared connection; the same methods as a per-stream ``TcpSender``.

    ``frames_implied``: on a version-2 connection the stream's prologue and sentinel are not to be sent (its
    ``OPEN`` and ``END`` stand for them); what does send them, sends them as frames like any other."""

    __slots__ = ("_conn", "stream", "_peer_closed", "_closed", "_paused", "_resume", "_callbacks",
                 "_control_callbacks", "frames_sent", "_why", "frames_implied")

    def __init__(self, conn: "MuxConnection", stream: int) -> None:
        self._conn = conn
        self.stream = stream
        self.frames_implied = conn.version >= 2
        self._peer_closed = False
        self._closed = False
        self._paused = False
        self._resume: asyncio.Future[None] | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._control_callbacks: list[Callable[[str], None]] = []
        self.frames_sent = 0
        self._why = "the caller closed the response stream"

    async def send(self, header: bytes | None, body: bytes | None) -> None:
        if self._peer_closed:
            raise StreamClosedError(self._why)
        if self._closed:
            raise StreamClosedError("response stream already closed")
        conn = self._conn
        header = header or b""
        body = body or b""
        if conn._sock is not None:  # conn.write(record(...)), spelt out: this is once per item
            data = _RECORD.pack(5 + len(header), len(body), 0, self.stream, FRAME) + header + body
            conn._buf.append(data)
            conn._buffered += len(data)
            if conn._buffered >= FLUSH_BYTES:
                conn._flush()
            elif not conn._flush_scheduled:
                conn._flush_scheduled = True
                conn._loop.call_soon(conn._flush)
        self.frames_sent += 1
        if conn.over_high_water():
            await conn._wait_drained(conn.drain_timeout, conn._drain_overdue)
        if self._paused and not self._peer_closed:
            await self._held()
        if self._peer_closed:
            raise StreamClosedError(self._why)

    async def _held(self) -> None:
        """Wait while the caller holds this stream (its consumer is behind), bounded like a per-stream drain."""
        loop = self._conn._loop
        resume = self._resume = loop.create_future()
        timer = loop.call_later(self._conn.drain_timeout, self._hold_overdue, resume)
        try:
            await resume
        finally:
            timer.cancel()

    def _hold_overdue(self, resume: "asyncio.Future[None]") -> None:
        if resume.done():
            return
        warn_limited(log, "drain-overdue", "dropping a response stream whose caller took no data for %.1f s",
                     self._conn.drain_timeout)
        self._why = f"the caller took no data for {self._conn.drain_timeout} s; stream dropped"
        self._conn.write(record(self.stream, END))  # the caller sees the stream end, as if the socket closed
        self._peer_gone()

    def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        if not paused:
            self._release()

    def _release(self) -> None:
        resume, self._resume = self._resume, None
        if resume is not None and not resume.done():
            resume.set_result(None)

    def _peer_gone(self) -> None:
        """The caller closed this stream, or the connection broke."""
        if self._peer_closed:
            return
        self._peer_closed = True
        self._release()
        self._conn._forget(self)
        if self._closed:
            return
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("peer-closed callback failed")

    def closed_by_peer(self) -> bool:
        return self._peer_closed

    def on_peer_closed(self, callback: Callable[[], None]) -> None:
        if self._peer_closed and not self._closed:
            callback()
        else:
            self._callbacks.append(callback)

    def on_control(self, callback: Callable[[str], None]) -> None:
        """Call ``callback("stop"|"kill")`` for each control frame the caller sends on this stream."""
        self._control_callbacks.append(callback)

    async def close(self) -> None:
        """End the stream (the caller sees its end); the connection stays for the next one."""
        if self._closed:
            return
        self._closed = True
        self._callbacks.clear()
        if not self._peer_closed:
            self._conn.write(record(self.stream, END))
        self._conn._forget(self)

    def abort(self) -> None:
        """End the stream at once (the worker is going away)."""
        if not self._closed:
            self._closed = True
            self._callbacks.clear()
            if not self._peer_closed:
                self._conn.write(record(self.stream, END))
            self._conn._forget(self)


class MuxConnection(BufferedWriter):
    """Worker side of the shared connection to one caller: writes its streams' records, reads the caller's.

    Frames written within one loop turn leave together, in ``send``s of 4 KiB (all streams mixed); sends wait
    while more than 256 KiB is unsent, and a caller that takes nothing for ``drain_timeout`` seconds loses the
    connection.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, connected: bool, key: str,
                 on_done: Callable[["MuxConnection"], None], drain_timeout: float, version: int = MUX_VERSION
                 ) -> None:
        self._init_writer(loop, sock, connected)
        self.key = key
        self.version = version
        self.drain_timeout = drain_timeout
        self._on_done = on_done
        self._streams: dict[int, MuxSender] = {}
        self._next = 0
        self._decoder = FrameDecoder(max_frame=_CONTROL_MAX)
        self._idle: asyncio.TimerHandle | None = None  # the idle check, armed while the connection may idle
        self._idle_since = 0.0  # loop time its last stream ended (read only while it has none)
        self.streams_opened = 0
        loop.add_reader(self._fd, self._on_readable)
        hello = mux_hello(version)
        self.write(PREFIX.pack(len(hello), 0, 0) + hello)

    @property
    def alive(self) -> bool:
        return self._sock is not None

    def open(self, subject: str) -> MuxSender:
        """A new stream: its number, and the ``OPEN`` record that claims ``subject`` at the caller."""
        stream = self._next = (self._next + 1) & 0xFFFFFFFF
        while stream in self._streams or not stream:
            stream = self._next = (self._next + 1) & 0xFFFFFFFF
        sender = MuxSender(self, stream)
        self._streams[stream] = sender
        self.streams_opened += 1
        self.write(record(stream, OPEN, subject.encode()))
        return sender

    def _forget(self, sender: MuxSender) -> None:
        if self._streams.get(sender.stream) is sender:
            del self._streams[sender.stream]
            if not self._streams and self._sock is not None:
                # One check stays armed and measures from the last stream's end when it runs: streams that come
                # and go one at a time (each call's, on a quiet caller) set no timer each.
                self._idle_since = self._loop.time()
                if self._idle is None:
                    self._idle = self._loop.call_later(MUX_IDLE, self._idle_check)

    def _idle_check(self) -> None:
        self._idle = None
        if self._streams or self._sock is None:
            return  # busy again: the next time its last stream ends arms the check again
        idle = self._loop.time() - self._idle_since
        if idle < MUX_IDLE:
            self._idle = self._loop.call_later(MUX_IDLE - idle, self._idle_check)
            return
        self._on_done(self)  # out of the pool first: no stream may start on a connection about to close
        if self._unsent or self._buf:
            self._loop.call_later(1.0, self.abort)
        else:
            self.abort()

    # -- writing (BufferedWriter) ----------------------------------------------------------------------
    def _lost(self) -> None:
        self._broken()

    def _drain_overdue(self, drain: "asyncio.Future[None]") -> None:
        if drain.done() or self._sock is None:
            return
        warn_limited(log, "drain-overdue", "dropping a response connection whose caller took no data for %.1f s",
                     self.drain_timeout)
        for sender in tuple(self._streams.values()):
            sender._why = f"the caller took no data for {self.drain_timeout} s; stream dropped"
        self._broken()

    # -- reading the caller's records ----------------------------------------------------------------
    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(65536)
        except WOULD_BLOCK:
            return
        except OSError:
            data = b""
        if not data:
            self._broken()
            return
        try:
            frames = self._decoder.feed(data)
        except FrameError as exc:
            warn_limited(log, "bad-mux", "dropping a multiplexed response connection: bad record from the "
                                         "caller: %s", exc)
            self._broken()
            return
        streams = self._streams
        for header, _body in frames:
            if len(header) < TAG.size:
                warn_limited(log, "bad-mux", "dropping a multiplexed response connection: untagged record")
                self._broken()
                return
            stream, kind = TAG.unpack_from(header)
            sender = streams.get(stream)
            if sender is None:
                continue  # a stream already over: its late control means nothing now
            if kind == CONTROL:
                dispatch_control(header[TAG.size:], sender._control_callbacks, log)
            elif kind == CLOSE:
                sender._peer_gone()
            elif kind == PAUSE:
                sender._set_paused(True)
            elif kind == RESUME:
                sender._set_paused(False)
            else:
                log.debug("ignoring record kind %d from the caller", kind)

    # -- ending ----------------------------------------------------------------------------------------
    def _broken(self) -> None:
        """The connection is gone: every stream on it ends as if its caller had closed it."""
        if self._sock is None:
            return
        self._on_done(self)
        self._shutdown()
        for sender in tuple(self._streams.values()):
            sender._peer_gone()
        self._streams.clear()

    def _shutdown(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self._loop.remove_reader(self._fd)  # before close: the descriptor number may be reused at once
        self._stop_writing()
        self._buf.clear()
        self._unsent.clear()
        sock.close()
        self._release_drain()

    def abort(self) -> None:
        """Close at once (the worker is going away): the caller sees every stream on it end."""
        self._on_done(self)
        senders = tuple(self._streams.values())
        self._shutdown()
        for sender in senders:
            sender._closed = True
            sender._callbacks.clear()
            sender._peer_gone()
        self._streams.clear()

    def __repr__(self) -> str:
        state = "open" if self._sock is not None else "closed"
        return f"MuxConnection({self.key}, {state}, streams={len(self._streams)})"

