"""The two narrow interfaces the object model talks through: discovery (etcd) and messaging (NATS).

Plus the request planes (how a request reaches a worker: a NATS subject, or Dynamo 1.6's TCP listener routed by
path) and the response plane: how a worker streams responses back to the caller (Dynamo's ``tcp_server`` call-home).
Each has an embedded implementation (``backends.embedded``) and a real one (etcd via aetcd, NATS via nats-py,
TCP via asyncio streams). The object model imports only this module, never a backend library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol, runtime_checkable

from ..errors import BackendError

__all__ = [
    "KeyValue",
    "WatchEvent",
    "Msg",
    "RequestHandler",
    "Subscription",
    "Watch",
    "Discovery",
    "Messaging",
    "ResponseSender",
    "ResponseReceiver",
    "ResponsePlane",
    "RequestPlane",
    "Backend",
    "PeerOpener",
]


@dataclass(frozen=True)
class KeyValue:
    """One stored key, with etcd's revision bookkeeping."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    def as_dict(self) -> dict[str, Any]:
        """The shape Dynamo's ``EtcdClient.kv_get_prefix`` returns to Python."""
        return {
            "key": self.key,
            "value": self.value,
            "create_revision": self.create_revision,
            "mod_revision": self.mod_revision,
            "version": self.version,
            "lease": self.lease,
        }


@dataclass(frozen=True)
class WatchEvent:
    """A put or delete seen by a prefix watch; ``value`` is empty for deletes."""

    kind: str  # "put" | "delete"
    key: str
    value: bytes
    revision: int


@dataclass
class Msg:
    """A message delivered to a subscriber; ``respond()`` answers a request."""

    subject: str
    data: bytes
    reply: str = ""
    _respond: Callable[[bytes], Awaitable[None]] | None = field(default=None, repr=False)
    headers: dict[str, str] | None = None  # the request's headers (NATS headers, or the TCP plane's map)

    async def respond(self, data: bytes = b"") -> None:
        if self._respond is None:
            raise BackendError(f"message on {self.subject!r} expects no reply")
        await self._respond(data)


#: What :class:`RequestHandler`'s ``accept`` returns: the reply (None: no reply), and what to start once the
#: reply is on its way (None: nothing).
Accepted = tuple["bytes | None", "Callable[[], None] | None"]

#: ``accept_early(accept)`` is handed, while a request waits for its ack, a function that ends the wait as if an
#: empty ack had come, and then ``accept_early(None)`` once the wait is over: a caller that learns another way that
#: its request was taken (a multiplexed response stream opening) need not wait for the ack to cross the server.
#: A plane whose acks come back at once may ignore it.
AcceptEarly = Callable[["Callable[[], None] | None"], None]


class RequestHandler:
    """A subscription callback whose work never waits: ``accept(msg)`` does it at once and returns the reply and
    what to start after it. Every backend can await it like any callback; an in-process bus may instead call
    ``accept`` as it delivers, which spares a hand-off to the subscription's task on every request.

    The reply goes first: over NATS it is then written before the work it starts (a response stream that
    connects back to the caller), so the two travel side by side instead of one after the other."""

    __slots__ = ("accept",)

    def __init__(self, accept: Callable[[Msg], Accepted]) -> None:
        self.accept = accept

    async def __call__(self, msg: Msg) -> None:
        answer, start = self.accept(msg)
        try:
            if answer is not None and msg.reply:
                await msg.respond(answer)
        finally:
            if start is not None:
                start()


class Subscription(Protocol):
    subject: str
    queue: str

    async def unsubscribe(self) -> None: ...


class Watch(Protocol):
    """A running prefix watch; iterate it for events, ``cancel()`` to stop."""

    def __aiter__(self) -> AsyncIterator[WatchEvent]: ...

    async def cancel(self) -> None: ...


@runtime_checkable
class Discovery(Protocol):
    """Key/value store with leases and prefix watches: what Dynamo uses etcd for."""

    url: str

    async def grant_lease(self, ttl: float) -> int: ...

    async def keep_alive(self, lease_id: int) -> bool:
        """Refresh a lease; False when it no longer exists."""
        ...

    async def revoke_lease(self, lease_id: int) -> None: ...

    async def lease_time_left(self, lease_id: int) -> float | None:
        """Seconds until the lease expires unless kept alive; None when it does not exist (expired, revoked).

        The server's granularity applies: etcd answers in whole seconds, rounded down.
        """
        ...

    async def create(self, key: str, value: bytes, lease_id: int | None = None) -> bool:
        """Put only if the key does not exist; True when created."""
        ...

    async def put(self, key: str, value: bytes, lease_id: int | None = None) -> int: ...

    async def delete(self, key: str) -> int: ...

    async def get_prefix(self, prefix: str) -> tuple[int, list[KeyValue]]:
        """All keys under ``prefix`` and the store revision they were read at."""
        ...

    async def watch_prefix(self, prefix: str, start_revision: int) -> Watch:
        """Events under ``prefix`` from ``start_revision`` (inclusive) on."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class Messaging(Protocol):
    """Subject-based publish/subscribe and request/reply: what Dynamo uses NATS for."""

    url: str

    @property
    def max_payload(self) -> int:
        """The largest message the server accepts, in bytes."""
        ...

    async def publish(self, subject: str, data: bytes, reply: str = "") -> None:
        """Fire and forget; ``reply`` names a subject where answers should go (for scatter-gather)."""
        ...

    async def subscribe(
        self, subject: str, cb: Callable[[Msg], Awaitable[None]], queue: str = ""
    ) -> Subscription: ...

    async def request(self, subject: str, data: bytes, timeout: float,
                      headers: dict[str, str] | None = None, accept_early: AcceptEarly | None = None) -> Msg:
        """Raises :class:`~dynamo_nb.errors.NoRespondersError` at once when nobody listens, and
        :class:`~dynamo_nb.errors.BackendTimeoutError` when no reply came within ``timeout`` s."""
        ...

    async def flush(self) -> None: ...

    def outage(self) -> BackendError | None:
        """The error that says the server is out of reach now (None while connected): a fire-and-forget
        publish made now would be buffered, and most likely never reach subscribers."""
        ...

    async def close(self) -> None: ...


class ResponseSender(Protocol):
    """Worker side of one response stream."""

    async def send(self, header: bytes | None, body: bytes | None) -> None:
        """Send one TwoPart frame; raises :class:`~dynamo_nb.errors.StreamClosedError` when the caller went away."""
        ...

    def closed_by_peer(self) -> bool: ...

    def on_peer_closed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when the caller closes the stream (it stopped reading)."""
        ...

    def on_control(self, callback: Callable[[str], None]) -> None:
        """Call ``callback("stop"|"kill")`` when the caller sends a control frame (Dynamo's cancellation)."""
        ...

    async def close(self) -> None: ...


class ResponseReceiver(Protocol):
    """Caller side of one response stream: yields ``(header, body)`` frames after the handshake."""

    connection_info: dict[str, Any]

    @property
    def claimed(self) -> bool:
        """A worker has connected to this stream: the request reached it, whether or not its ack arrives."""
        ...

    def __aiter__(self) -> AsyncIterator[tuple[bytes, bytes]]: ...

    def send_control(self, header: bytes) -> bool:
        """Send a header-only control frame to the worker (best effort); True if it went out."""
        ...

    def expire(self, reason: str) -> None:
        """The worker's instance left discovery: fail the stream with
        :class:`~dynamo_nb.errors.StreamStalledError` unless a frame arrives within a short grace."""
        ...

    async def close(self) -> None: ...


class ResponsePlane(Protocol):
    """Call-home streams: the caller listens, the worker connects and streams frames to it.

    A plane may also have ``opening_acks(connection_info) -> bool``: True when the caller that sent this
    ``connection_info`` takes the stream's opening as its request's ack (see :data:`AcceptEarly`), so the worker
    sends none over NATS. Without it every request is acked."""

    async def open_receiver(self, request_id: str) -> ResponseReceiver: ...

    async def connect(self, connection_info: dict[str, Any]) -> ResponseSender:
        """Call the caller back; :class:`~dynamo_nb.errors.StreamRefusedError` when it cannot be reached."""
        ...

    async def close(self) -> None: ...


PeerOpener = Callable[[], Awaitable["Backend"]]


class RequestPlane(Protocol):
    """How a request reaches a worker and its one-message ack comes back (Dynamo: NATS or TCP).

    A worker ``serve``s a route; callers ``request`` the address the worker advertised in etcd
    (``address_for(route)``). The ack is empty when the worker accepted the request (responses then follow over
    the response plane), and a refusal text otherwise.
    """

    kind: str  # "nats" | "tcp"

    @property
    def address(self) -> str:
        """This runtime's listener (``host:port`` on TCP, once started; empty on NATS)."""
        ...

    async def start(self) -> None: ...

    async def serve(self, route: str, cb: Callable[[Msg], Awaitable[None]]) -> Subscription:
        """Deliver requests for ``route`` to ``cb``; ``cb`` acks with ``msg.respond()``."""
        ...

    def address_for(self, route: str) -> str:
        """What callers put in ``request(target=...)`` to reach ``route`` here."""
        ...

    async def request(self, target: str, payload: bytes, *, headers: dict[str, str], timeout: float,
                      accept_early: AcceptEarly | None = None) -> bytes:
        """Send one request, return its ack; :class:`~dynamo_nb.errors.NoRespondersError` when nothing
        listens there, :class:`~dynamo_nb.errors.BackendTimeoutError` when no ack came within ``timeout``."""
        ...

    async def close(self) -> None: ...


@dataclass
class Backend:
    """What a runtime is wired to: one of each interface, and a label for displays.

    ``opener`` opens one more, independent set of connections to the same servers (or embedded world) with the
    same credentials; whoever builds a backend knows how, so nobody else has to take one apart to get a peer.
    """

    kind: str  # "embedded" | "real"
    discovery: Discovery
    messaging: Messaging
    responses: ResponsePlane
    description: str = ""
    opener: PeerOpener | None = field(default=None, repr=False, compare=False)
    requests: dict[str, RequestPlane] = field(default_factory=dict)  # by kind: "nats", "tcp"

    async def connect_peer(self) -> "Backend":
        """New connections to the same world or servers, as another process would open: close them separately."""
        if self.opener is None:
            raise BackendError(f"this {self.kind} backend does not know how to connect another peer")
        return await self.opener()

    def request_plane(self, kind: str) -> RequestPlane:
        """The request plane of that kind (NATS always; TCP where the backend has one)."""
        plane = self.requests.get(kind)
        if plane is None:
            if kind != "nats":
                raise BackendError(f"the {self.kind} backend has no {kind!r} request plane")
            from .nats_plane import NatsRequestPlane

            plane = self.requests[kind] = NatsRequestPlane(self.messaging)
        return plane
