"""One embedded world: the etcd, NATS and response plane that in-process runtimes share."""

from __future__ import annotations

import asyncio
import weakref

from ..base import Backend
from .bus import DEFAULT_MAX_PAYLOAD, EmbeddedMessaging, EmbeddedNats
from .clock import Clock
from .kv import EmbeddedDiscovery, EmbeddedEtcd
from .requests import EmbeddedNatsPlane, EmbeddedRoutes, EmbeddedTcpPlane
from .streams import EmbeddedResponsePlane

__all__ = ["EmbeddedWorld", "default_world"]


class EmbeddedWorld:
    """Servers that live in this process. Runtimes created against one world see each other.

    Pass ``clock=ManualClock()`` to make lease expiry happen only when the test says so.
    """

    def __init__(self, clock: Clock | None = None, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.etcd = EmbeddedEtcd(clock)
        self.nats = EmbeddedNats(max_payload)
        self.streams = EmbeddedResponsePlane()
        self.routes = EmbeddedRoutes()

    @property
    def clock(self) -> Clock:
        return self.etcd.clock

    def connect(self) -> Backend:
        """A fresh set of connections, as one process would open to real servers."""
        messaging = EmbeddedMessaging(self.nats)
        backend = Backend(
            kind="embedded",
            discovery=EmbeddedDiscovery(self.etcd),
            messaging=messaging,
            responses=self.streams,
            description="embedded (in-process etcd + NATS)",
            opener=self._connect_peer,
        )
        backend.requests["nats"] = EmbeddedNatsPlane(messaging)
        backend.requests["tcp"] = EmbeddedTcpPlane(self.routes)
        return backend

    async def _connect_peer(self) -> Backend:
        return self.connect()


_worlds: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, EmbeddedWorld]" = weakref.WeakKeyDictionary()


def default_world() -> EmbeddedWorld:
    """The world shared by every runtime created on this event loop without servers."""
    loop = asyncio.get_running_loop()
    world = _worlds.get(loop)
    if world is None:
        world = _worlds[loop] = EmbeddedWorld()
    return world
