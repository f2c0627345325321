"""The worker's side of a response connection, as far as writing goes: one buffered, non-blocking socket writer.

A per-stream connection (:class:`~.tcp.TcpSender`) and a shared one (:class:`~.tcp_mux.MuxConnection`) write the
same way: what is written within one loop turn leaves in one ``send``, or in several of 4 KiB on a busy turn (the
caller starts on the first streams while the worker makes the rest, instead of the two taking turns); what the socket
does not take waits for it to be writable; a sender waits while more than 256 KiB is unsent, and goes on once it
is below 64 KiB. Each says what losing the connection means to it (:meth:`BufferedWriter._lost`), and a
per-stream one what having sent everything means (:meth:`BufferedWriter._all_sent`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Callable

__all__ = ["BufferedWriter", "FLUSH_BYTES", "HIGH_WATER", "LOW_WATER", "WOULD_BLOCK", "dispatch_control"]

FLUSH_BYTES = 4 * 1024  # send at once when this much is buffered: the caller starts on it while more is made
HIGH_WATER = 256 * 1024  # a sender waits while more than this is unsent
LOW_WATER = 64 * 1024
WOULD_BLOCK = (BlockingIOError, InterruptedError)


class BufferedWriter:
    """Buffered writes on a non-blocking socket owned by the loop ``_loop`` (a mixin: the owner keeps the socket)."""

    _loop: asyncio.AbstractEventLoop
    _sock: socket.socket | None
    _fd: int

    def _init_writer(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, connected: bool) -> None:
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._connected = connected  # False while a non-blocking connect is under way
        self._buf: list[bytes] = []
        self._buffered = 0
        self._unsent = bytearray()  # what the socket did not take yet
        self._flush_scheduled = False
        self._writing = False
        self._drain: asyncio.Future[Any] | None = None

    def _lost(self) -> None:
        """The connection failed while writing or connecting."""
        raise NotImplementedError

    def _all_sent(self) -> None:
        """Everything written has left (called when the socket took the last unsent bytes)."""

    def write(self, data: bytes) -> None:
        if self._sock is None:
            return
        self._buf.append(data)
        self._buffered += len(data)
        if self._buffered >= FLUSH_BYTES:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def over_high_water(self) -> bool:
        return len(self._unsent) > HIGH_WATER

    def _flush(self) -> None:
        self._flush_scheduled = False
        sock = self._sock
        if not self._buf or sock is None:
            return
        data = self._buf[0] if len(self._buf) == 1 else b"".join(self._buf)
        self._buf.clear()
        self._buffered = 0
        if self._unsent or not self._connected:
            self._unsent += data
        else:
            try:
                sent = sock.send(data)
            except WOULD_BLOCK:
                sent = 0
            except OSError:
                self._lost()
                return
            if sent == len(data):
                return
            self._unsent += memoryview(data)[sent:]
        if not self._writing:
            self._writing = True
            self._loop.add_writer(self._fd, self._on_writable)

    def _on_writable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        if not self._connected:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self._lost()
                return
            self._connected = True
        if self._unsent:
            try:
                sent = sock.send(self._unsent)
            except WOULD_BLOCK:
                sent = 0
            except OSError:
                self._lost()
                return
            del self._unsent[:sent]
        if not self._unsent:
            self._stop_writing()
            self._all_sent()
        if len(self._unsent) <= LOW_WATER:
            self._release_drain()

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)

    def _release_drain(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    async def _wait_drained(self, timeout: float, overdue: Callable[["asyncio.Future[Any]"], None]) -> None:
        """Wait until the unsent bytes fall below the low-water mark; ``overdue(drain)`` runs after ``timeout``."""
        if self._drain is None:
            self._drain = self._loop.create_future()
        drain = self._drain
        timer = self._loop.call_later(timeout, overdue, drain)
        try:
            await drain
        finally:
            timer.cancel()


def dispatch_control(header: bytes, callbacks: "list[Callable[[str], None]]", log: logging.Logger) -> None:
    """A caller's control frame: ``"stop"`` (finish soon) or ``"kill"`` (stop now) to each callback; else nothing."""
    word = header.strip(b'"').decode(errors="replace")
    if word not in ("stop", "kill"):
        log.debug("ignoring control frame %r", header[:40])
        return
    for callback in tuple(callbacks):
        try:
            callback(word)
        except Exception:
            log.exception("control callback failed")

