"""The embedded request planes: NATS requests straight to the bus, and the twin of the TCP request plane (routes
in a table the world shares, acks through a future).

Keys and values are the same as on real servers; only the TCP listener address is a made-up
``embedded-rpc:{hex8}`` (never parse it as a socket address).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Awaitable, Callable, Coroutine

from ...errors import BackendTimeoutError, NoRespondersError
from ..base import AcceptEarly, Msg
from ..nats_plane import NatsRequestPlane
from .bus import EmbeddedMessaging

__all__ = ["EmbeddedNatsPlane", "EmbeddedTcpPlane", "EmbeddedRoutes"]

UNKNOWN_ENDPOINT = "Server unavailable: unknown endpoint "

Routes = dict[str, Callable[[Msg], Awaitable[None]]]


class EmbeddedNatsPlane(NatsRequestPlane):
    """The NATS request plane on the embedded bus: the ack is the bus's reply itself, not a reply message built
    around it and unwrapped again (the plane a caller awaits on every call)."""

    def __init__(self, messaging: EmbeddedMessaging) -> None:
        super().__init__(messaging)
        self._connection = messaging

    def request(self, target: str, payload: bytes, *, headers: dict[str, str] | None = None,
                timeout: float, accept_early: AcceptEarly | None = None) -> Coroutine[Any, Any, bytes]:
        """The ack (this returns the bus's coroutine: no frame of its own)."""
        return self._connection.ask(target, payload, timeout, headers)


class EmbeddedRoutes:
    """Every embedded TCP listener of one world, by address."""

    def __init__(self) -> None:
        self.listeners: dict[str, Routes] = {}


class _Route:
    queue = "q"

    def __init__(self, routes: Routes, subject: str) -> None:
        self.subject = subject
        self._routes = routes

    async def unsubscribe(self) -> None:
        self._routes.pop(self.subject, None)


class EmbeddedTcpPlane:
    """One runtime's listener in the embedded world (started on first serve)."""

    kind = "tcp"

    def __init__(self, world_routes: EmbeddedRoutes) -> None:
        self._world = world_routes
        self._address = ""
        self._routes: Routes = {}

    @property
    def address(self) -> str:
        return self._address

    async def start(self) -> None:
        if not self._address:
            self._address = f"embedded-rpc:{uuid.uuid4().hex[:8]}"
            self._world.listeners[self._address] = self._routes

    async def serve(self, route: str, cb: Callable[[Msg], Awaitable[None]]) -> _Route:
        await self.start()
        self._routes[route] = cb
        return _Route(self._routes, route)

    def address_for(self, route: str) -> str:
        return f"{self._address}/{route}"

    async def request(self, target: str, payload: bytes, *, headers: dict[str, str] | None = None,
                      timeout: float, accept_early: AcceptEarly | None = None) -> bytes:
        address, _, path = target.partition("/")
        routes = self._world.listeners.get(address)
        if routes is None:
            raise NoRespondersError(target, f"no embedded TCP listener at {address!r}")
        cb = routes.get(path)
        if cb is None:
            return (UNKNOWN_ENDPOINT + path).encode()
        acked: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def respond(data: bytes = b"") -> None:
            if not acked.done():
                acked.set_result(data)

        await cb(Msg(subject=path, data=payload, reply="tcp", _respond=respond, headers=headers))
        if not acked.done():
            acked.set_result(b"")
        try:
            return await asyncio.wait_for(acked, timeout)
        except asyncio.TimeoutError:
            raise BackendTimeoutError(f"no ack from {target} within {timeout} s") from None

    async def close(self) -> None:
        if self._address:
            self._world.listeners.pop(self._address, None)
        self._routes.clear()
