"""The NATS request plane: a request is a NATS request to the instance's subject (queue group ``q``).

Thin on purpose: it only gives the :class:`~dynamo_nb.backends.base.Messaging` interface the shape of a
:class:`~dynamo_nb.backends.base.RequestPlane`, so the seed's wire stays exactly what it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, Coroutine

if TYPE_CHECKING:  # base builds this plane on demand: import it only for types
    from .base import AcceptEarly, Messaging, Msg, Subscription

__all__ = ["NatsRequestPlane"]


class NatsRequestPlane:
    """Requests over messaging; works on every backend that has one."""

    kind = "nats"
    address = ""

    def __init__(self, messaging: "Messaging") -> None:
        self.messaging = messaging

    async def start(self) -> None:
        pass

    async def serve(self, route: str, cb: "Callable[[Msg], Awaitable[None]]") -> "Subscription":
        return await self.messaging.subscribe(route, cb, queue="q")

    def address_for(self, route: str) -> str:
        return route

    def request(self, target: str, payload: bytes, *, headers: dict[str, str] | None = None,
                timeout: float, accept_early: AcceptEarly | None = None) -> "Coroutine[Any, Any, bytes]":
        """The ack (``await`` it); headers are optional on this plane (real workers accept a header-less request).
        A connection that answers with the ack's bytes alone is asked so: no coroutine or message in between."""
        request_data = getattr(self.messaging, "request_data", None)
        if request_data is not None:
            return request_data(target, payload, timeout, headers, accept_early)
        return self._request(target, payload, headers, timeout, accept_early)

    async def _request(self, target: str, payload: bytes, headers: dict[str, str] | None, timeout: float,
                       accept_early: AcceptEarly | None) -> bytes:
        return (await self.messaging.request(target, payload, timeout=timeout, headers=headers,
                                             accept_early=accept_early)).data

    async def close(self) -> None:
        pass  # the messaging connection is the backend's to close

    def __repr__(self) -> str:
        return f"NatsRequestPlane({self.messaging.url})"
