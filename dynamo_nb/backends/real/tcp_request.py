"""Dynamo 1.6's TCP request plane: one listener per worker process, requests routed by path, acks in order.

Wire (``../shared/INTEROP-DYNAMO.md`` §3): a caller sends ``u16 path_len | path | u16 headers_len | headers
(JSON object) | u32 payload_len | payload`` (the payload is one TwoPart frame); the worker answers each request
with ``u32 len | bytes``, empty for "accepted", a text for a refusal. Acks carry no id and callers pipeline many
requests on one connection, so the worker acks strictly in arrival order, and the caller matches acks to
requests first in, first out.

Where the listener binds: ``DYN_TCP_RPC_HOST`` / ``DYN_TCP_RPC_PORT`` (Dynamo's variables), else the runtime's
response host, else loopback. A real worker defaults to the machine's primary address instead: across hosts,
set ``DYN_TCP_RPC_HOST`` on both sides.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import socket
import struct
from collections import deque
from typing import Awaitable, Callable

from ...errors import BackendTimeoutError, NoRespondersError, ProtocolError
from ..base import AcceptEarly, Msg

__all__ = ["TcpRequestPlane", "encode_request", "decode_request", "MAX_MESSAGE_ENV", "split_target"]

log = logging.getLogger(__name__)

MAX_MESSAGE_ENV = "DYNAMO_NB_TCP_MAX_MESSAGE"
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
UNKNOWN_ENDPOINT = "Server unavailable: unknown endpoint "  # a real worker's refusal text, word for word


def encode_request(path: str, headers: dict[str, str], payload: bytes) -> bytes:
    """One request frame.

    >>> encode_request("1/demo/backend/generate", {}, b"x").hex()
    '0017312f64656d6f2f6261636b656e642f67656e657261746500027b7d0000000178'
    """
    p = path.encode()
    h = json.dumps(headers, separators=(",", ":")).encode()
    return _U16.pack(len(p)) + p + _U16.pack(len(h)) + h + _U32.pack(len(payload)) + payload


def decode_request(data: bytes) -> tuple[str, dict[str, str], bytes]:
    """Split exactly one request frame into ``(path, headers, payload)``; ProtocolError otherwise."""
    try:
        (plen,) = _U16.unpack_from(data, 0)
        path = data[2:2 + plen].decode()
        o = 2 + plen
        (hlen,) = _U16.unpack_from(data, o)
        headers = json.loads(data[o + 2:o + 2 + hlen]) if hlen else {}
        o += 2 + hlen
        (n,) = _U32.unpack_from(data, o)
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"not a TCP request frame: {exc}") from exc
    if o + 4 + n != len(data):
        raise ProtocolError(f"TCP request frame says {o + 4 + n} bytes, has {len(data)}")
    return path, headers, bytes(data[o + 4:])


def _headers(raw: bytes) -> dict[str, str] | None:
    """The request's header map, or None when it is not a JSON object of strings (headers are optional)."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    return {k: v for k, v in doc.items() if isinstance(v, str)}


def split_target(target: str) -> tuple[str, int, str]:
    """``"host:port/path"`` → ``(host, port, path)`` (the address a worker advertises in etcd).

    >>> split_target("127.0.0.1:35733/51c6a233e0443d07/demo/backend/generate")
    ('127.0.0.1', 35733, '51c6a233e0443d07/demo/backend/generate')
    """
    hostport, sep, path = target.partition("/")
    host, _, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"bad TCP request address {target!r}: expected host:port/path")
    return host.strip("[]"), int(port), path


class _Route:
    """What ``serve`` returns: unsubscribing removes the route (later requests get the unknown-endpoint ack)."""

    queue = "q"

    def __init__(self, plane: "TcpRequestPlane", subject: str) -> None:
        self.subject = subject
        self._plane = plane

    async def unsubscribe(self) -> None:
        self._plane._routes.pop(self.subject, None)


def _time_out(future: "asyncio.Future[bytes]") -> None:
    if not future.done():
        future.set_exception(asyncio.TimeoutError())


def _accept(future: "asyncio.Future[bytes]") -> None:
    if not future.done():
        future.set_result(b"")


class _Connection:
    """A caller's persistent connection to one worker address: requests pipelined, acks matched FIFO."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pending: deque[asyncio.Future[bytes]] = deque()
        self.broken: BaseException | None = None
        self.task = asyncio.get_running_loop().create_task(self._read_acks())
        self._out: list[bytes] = []

    def send(self, frame: bytes) -> None:
        """Queue one request frame; the frames of one loop turn leave in one write (64 concurrent callers
        otherwise pay a send syscall each, the largest cost of a call in this process)."""
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(frame)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self.broken is None:
            self.writer.write(out[0] if len(out) == 1 else b"".join(out))

    async def _read_acks(self) -> None:
        try:
            while True:
                (n,) = _U32.unpack(await self.reader.readexactly(4))
                ack = await self.reader.readexactly(n) if n else b""
                if self.pending:
                    future = self.pending.popleft()
                    if not future.done():
                        future.set_result(ack)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            self._fail(exc)
        except asyncio.CancelledError:
            self._fail(ConnectionResetError("request plane closed"))
            raise

    def _fail(self, exc: BaseException) -> None:
        self.broken = exc
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.set_exception(ConnectionResetError(f"connection to the worker broke: {exc}"))
        self.writer.close()

    def close(self) -> None:
        self.task.cancel()
        self.writer.close()


class TcpRequestPlane:
    """Both ends of the TCP request plane for one runtime: the shared listener and the outgoing connections."""

    kind = "tcp"

    def __init__(self, host: str | None = None, port: int | None = None, *, connect_timeout: float = 5.0,
                 max_message: int | None = None) -> None:
        self.host = os.environ.get("DYN_TCP_RPC_HOST") or host or "127.0.0.1"
        env_port = os.environ.get("DYN_TCP_RPC_PORT")
        self.port = int(env_port) if env_port else (port or 0)
        self.connect_timeout = connect_timeout
        self.max_message = max_message or int(os.environ.get(MAX_MESSAGE_ENV) or 64 * 1024 * 1024)
        self._server: asyncio.AbstractServer | None = None
        self._routes: dict[str, Callable[[Msg], Awaitable[None]]] = {}
        self._conns: dict[tuple[str, int], _Connection] = {}
        self._connecting: dict[tuple[str, int], asyncio.Future[_Connection]] = {}
        self._served: set[asyncio.StreamWriter] = set()
        self.requests_in = 0

    # -- worker side -----------------------------------------------------------------------------------
    @property
    def address(self) -> str:
        if self._server is None:
            return ""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    def routes(self) -> list[str]:
        return list(self._routes)

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._on_connection, self.host, self.port)
            self.port = int(self._server.sockets[0].getsockname()[1])

    async def serve(self, route: str, cb: Callable[[Msg], Awaitable[None]]) -> _Route:
        await self.start()
        self._routes[route] = cb
        return _Route(self, route)

    def address_for(self, route: str) -> str:
        return f"{self.address}/{route}"

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._served.add(writer)
        try:
            while True:
                (plen,) = _U16.unpack(await reader.readexactly(2))
                path = (await reader.readexactly(plen)).decode(errors="replace")
                (hlen,) = _U16.unpack(await reader.readexactly(2))
                headers = _headers(await reader.readexactly(hlen)) if hlen else None  # optional on the wire
                (n,) = _U32.unpack(await reader.readexactly(4))
                if n > self.max_message:
                    log.warning("closing a request connection: %d-byte message over the %d-byte cap",
                                n, self.max_message)
                    return
                payload = await reader.readexactly(n)
                self.requests_in += 1
                cb = self._routes.get(path)
                if cb is None:
                    self._ack(writer, (UNKNOWN_ENDPOINT + path).encode())
                    continue
                acked: list[bytes] = []

                async def respond(data: bytes = b"", _acked: list[bytes] = acked) -> None:
                    if not _acked:
                        _acked.append(data)
                        self._ack(writer, data)

                # Awaited before the next frame is read: acks leave in arrival order.
                try:
                    await cb(Msg(subject=path, data=payload, reply="tcp", _respond=respond, headers=headers))
                except Exception as exc:
                    log.warning("request on %s failed before its ack: %s", path, exc)
                    await respond(f"request failed: {exc}".encode())
                await respond(b"")
                if writer.transport.get_write_buffer_size() > 1024 * 1024:
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self._served.discard(writer)
            writer.close()

    @staticmethod
    def _ack(writer: asyncio.StreamWriter, data: bytes) -> None:
        if not writer.is_closing():
            writer.write(_U32.pack(len(data)) + data)

    # -- caller side -----------------------------------------------------------------------------------
    async def _connection(self, host: str, port: int) -> _Connection:
        key = (host, port)
        conn = self._conns.get(key)
        if conn is not None and conn.broken is None:
            return conn
        waiting = self._connecting.get(key)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future[_Connection] = asyncio.get_running_loop().create_future()
        self._connecting[key] = future
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.connect_timeout)
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = self._conns[key] = _Connection(reader, writer)
            future.set_result(conn)
            return conn
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: only concurrent waiters care
            raise
        finally:
            del self._connecting[key]

    async def request(self, target: str, payload: bytes, *, headers: dict[str, str] | None = None,
                      timeout: float, accept_early: AcceptEarly | None = None
                      ) -> bytes:
        """Send one request, return its ack (``accept_early``: see :data:`~dynamo_nb.backends.base.AcceptEarly`;
        an ack that comes after an early accept is matched and dropped)."""
        try:
            host, port, path = split_target(target)
        except ValueError as exc:
            raise NoRespondersError(target, str(exc)) from exc
        try:
            conn = await self._connection(host, port)
        except asyncio.TimeoutError:
            raise NoRespondersError(target, f"no TCP connection to {host}:{port} within "
                                            f"{self.connect_timeout} s") from None
        except OSError as exc:
            raise NoRespondersError(target, f"TCP connection to {host}:{port} failed: "
                                            f"{exc.strerror or exc}") from exc
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        conn.pending.append(future)
        conn.send(encode_request(path, {"x-endpoint-path": path, **(headers or {})}, payload))
        timer = loop.call_later(timeout, _time_out, future)  # one timer, not a wait_for task per call
        if accept_early is not None:
            accept_early(functools.partial(_accept, future))
        try:
            return await future
        except asyncio.TimeoutError:
            raise BackendTimeoutError(f"no ack from {host}:{port} for {path} within {timeout} s") from None
        except ConnectionResetError as exc:
            raise NoRespondersError(target, str(exc)) from exc
        finally:
            timer.cancel()
            if accept_early is not None:
                accept_early(None)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._served):
            writer.close()
        self._routes.clear()
        for conn in list(self._conns.values()):
            conn.close()
        self._conns.clear()

    def __repr__(self) -> str:
        return f"TcpRequestPlane({self.address or 'not listening'}, routes={len(self._routes)})"
