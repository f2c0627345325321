"""Calling an endpoint: live instance list from the shared watcher, routing, failover, response streams."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
import uuid
from typing import TYPE_CHECKING, Any, Coroutine

from ..errors import (
    BackendTimeoutError,
    EndpointError,
    InstanceNotFoundError,
    NoInstancesError,
    NoRespondersError,
    PayloadTooLargeError,
    RemoteError,
    StreamIncompleteError,
    StreamStalledError,
    WaitTimeoutError,
)
from ..transport.frames import encode_frame
from ..transport.profile import InstanceInfo, ProtocolError
from .drawable import Drawable
from .recorder import Kind
from .served import serving_instance
from .snapshot import CallSnap, ClientSnap, Focus, Part

if TYPE_CHECKING:
    from ..backends.base import ResponseReceiver
    from .model import Endpoint
    from .registry import SharedWatcher

__all__ = ["Client", "ResponseStream"]

_client_ids = itertools.count(1)


class _RequestIds:
    """UUID-shaped request ids (version 4 layout): the first 80 bits of one uuid4 per process, then a counter. A fresh
    ``uuid4()`` per call costs more than the rest of building the request."""

    def __init__(self) -> None:
        self.reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._head = str(uuid.uuid4())[:24]
        self._count = itertools.count(random.getrandbits(32))

    def next(self) -> str:
        return f"{self._head}{next(self._count) & 0xFFFFFFFFFFFF:012x}"


_request_ids = _RequestIds()


class ResponseStream:
    """The items one call streams back; async-iterate it, or ``aclose()`` to stop early (the handler sees it)."""

    __slots__ = ("client", "request_id", "instance_id", "codec", "items", "complete", "stopped", "_receiver",
                 "_frames", "_ready", "_profile", "_prologue_seen", "_closed", "__weakref__")

    def __init__(self, client: "Client", receiver: "ResponseReceiver", request_id: str, instance_id: int,
                 codec: str = "json") -> None:
        self.client = client
        self.request_id = request_id
        self.instance_id = instance_id
        self.codec = codec
        self.items = 0
        self.complete = False
        self.stopped = False  # stop() asked the worker to end the stream early
        self._receiver = receiver
        self._frames = receiver.__aiter__()
        self._ready = getattr(receiver, "next_ready", None)  # a frame already here, read without awaiting
        self._profile = client.runtime.profile
        self._prologue_seen = False
        self._closed = False

    def __aiter__(self) -> "ResponseStream":
        return self

    async def __anext__(self) -> Any:
        profile = self._profile
        endpoint = self.client.endpoint._reference
        ready = self._ready
        while not self._closed:
            frame = ready() if ready is not None else None
            try:
                header, body = frame if frame is not None else await self._frames.__anext__()
            except StopAsyncIteration:
                await self.aclose()
                if self.complete or self.stopped:  # a stopped Dynamo worker just closes: a clean end
                    raise
                raise StreamIncompleteError(endpoint, f"instance {self.instance_id:x} closed the stream "
                                                      f"after {self.items} item(s)") from None
            except StreamStalledError as exc:
                await self.aclose()
                raise StreamStalledError(endpoint, f"instance {self.instance_id:x}, after {self.items} item(s): "
                                                   f"{exc.detail}") from None
            except BaseException:
                await self.aclose()
                raise
            try:
                if not self._prologue_seen:
                    self._prologue_seen = True
                    if not getattr(self._receiver, "frames_implied", False):  # else it was OK, and not sent
                        error = profile.parse_prologue(header)
                        if error:
                            await self.aclose()
                            raise RemoteError("PrologueError", str(error), endpoint, self.instance_id)
                        continue
                if header and not body:  # the sentinel closes the stream
                    self.complete = self.complete or self.stopped
                    await self.aclose()
                    if not self.complete:
                        raise StreamIncompleteError(endpoint, "sentinel before complete_final")
                    raise StopAsyncIteration
                item = profile.parse_body(body, self.codec)
            except ProtocolError as exc:
                await self.aclose()
                raise EndpointError(f"malformed response from {endpoint} instance {self.instance_id:x}: {exc}") from exc
            if item.kind == "data":
                self.items += 1
                return item.data
            if item.kind == "final":
                self.complete = True
                continue
            if item.kind == "skip":
                continue
            await self.aclose()
            raise RemoteError(item.error_type, item.error_message, endpoint, self.instance_id, details=item.details)
        raise StopAsyncIteration

    async def stop(self) -> None:
        """Ask the worker to stop soon (Dynamo's ``"stop"``) and keep reading: what it sends until then still
        arrives, and the stream then ends cleanly. Profiles without control frames close the stream instead."""
        if self._closed or self.complete:
            return
        self.stopped = True
        if not (self.client.runtime.profile.cancel_with_control and self._receiver.send_control(
                self.client.runtime.profile.STOP)):
            await self.aclose()

    async def aclose(self) -> None:
        """Close the stream; if it was not complete, the worker's handler is told to stop."""
        if not self._closed:
            self._closed = True
            self.client._closed_stream(self)
            if not self.complete and self._profile.cancel_with_control:
                self._receiver.send_control(self._profile.KILL)  # as Dynamo's callers do
            await self._receiver.close()

    def __del__(self) -> None:
        # A caller that broke out of ``async for`` and dropped the stream still stops the handler.
        if not self._closed:
            self._closed = True
            self.client._closed_stream(self)
            try:
                asyncio.get_running_loop().create_task(self._receiver.close())
            except RuntimeError:  # no loop any more: nothing left to tell
                pass

    async def collect(self) -> list[Any]:
        """Every item, as a list."""
        return [item async for item in self]

    async def __aenter__(self) -> "ResponseStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "complete" if self.complete else ("closed" if self._closed else "open")
        return f"ResponseStream(request={self.request_id}, instance={self.instance_id:x}, items={self.items}, {state})"


class Client(Drawable):
    """A caller of one endpoint. ``instance_ids()`` is kept current by the component's shared watcher."""

    ACK_TIMEOUT = 5.0
    DOWN_FOR = 5.0  # seconds an instance that gave no responders is skipped unless the watcher says otherwise

    def __init__(self, endpoint: "Endpoint", watcher: "SharedWatcher", client_id: int) -> None:
        self.endpoint = endpoint
        self.runtime = endpoint.runtime
        self.id = client_id
        self._label = f"client#{client_id}"
        self._watcher = watcher
        self._rr = itertools.count()
        self._down: dict[int, float] = {}
        self._closed = False
        self.calls = 0
        self._calls_to: dict[tuple[str, int, int], list[float]] = {}  # (caller, caller id, callee id) → [n, last]
        # The receivers of open streams by the instance they come from (receivers, not streams: a stream the
        # caller drops is still collected, and says goodbye here from ``__del__``)
        self._open: dict[int, dict[str, ResponseReceiver]] = {}
        self._live_from: dict[int, InstanceInfo] | None = None  # the watcher's dict the sorted list was made of
        self._live: list[InstanceInfo] = []
        self._unlisten = watcher.subscribe(self._on_change)

    @classmethod
    async def create(cls, endpoint: "Endpoint") -> "Client":
        runtime = endpoint.runtime
        runtime._check_open()
        client_id = next(_client_ids)
        label = f"client#{client_id} → {endpoint.reference()}"
        watcher = await runtime.registry.watcher(endpoint.namespace.name, endpoint.component.name, client_id, label)
        client = cls(endpoint, watcher, client_id)
        runtime._clients.add(client)
        runtime.recorder.changed()  # a new client draws (and time travel keeps it) with no record of its own
        return client

    @property
    def watcher(self) -> "SharedWatcher":
        return self._watcher

    def _on_change(self, kind: str, info: InstanceInfo) -> None:
        self._down.pop(info.instance_id, None)
        if kind == "delete" and info.endpoint == self.endpoint.name:  # the watcher sees the whole component
            # A dead (frozen, partitioned) worker's streams end now, not when a socket timeout notices.
            receivers = self._open.pop(info.instance_id, None)
            for receiver in tuple((receivers or {}).values()):
                receiver.expire(f"instance {info.instance_id:x} left discovery: its key was deleted")

    def _closed_stream(self, stream: ResponseStream) -> None:
        receivers = self._open.get(stream.instance_id)
        if receivers is not None:
            receivers.pop(stream.request_id, None)
            if not receivers:
                del self._open[stream.instance_id]

    # -- instances -----------------------------------------------------------------------------------
    def instances(self) -> list[InstanceInfo]:
        found = self._watcher.endpoint_instances(self.endpoint.name)
        if found is not self._live_from:  # the watcher gives a new dict after every change
            self._live_from, self._live = found, [found[i] for i in sorted(found)]
        return list(self._live)

    def _available(self) -> list[InstanceInfo]:
        if not self._down:
            found = self._watcher.endpoint_instances(self.endpoint.name)
            if found is not self._live_from:
                self._live_from, self._live = found, [found[i] for i in sorted(found)]
            return self._live  # read only by the router
        live = self.instances()
        now = asyncio.get_running_loop().time()
        up = [i for i in live if self._down.get(i.instance_id, 0.0) <= now]
        return up or live

    def instance_ids(self) -> list[int]:
        """Live instance ids (= lease ids), sorted; updated by etcd watch events."""
        return sorted(self._watcher.endpoint_instances(self.endpoint.name))

    def silent_ids(self) -> list[int]:
        """Registered instances that did not answer this client lately (skipped for ``DOWN_FOR`` seconds, or until
        etcd says something new about them): where what etcd lists and what answers differ."""
        try:
            now = asyncio.get_running_loop().time()
        except RuntimeError:  # drawn from synchronous code: the loop's clock is the monotonic one
            now = time.monotonic()
        return sorted(i for i, until in self._down.items() if until > now and i in self.instance_ids())

    async def wait_for_instances(self, timeout: float | None = None) -> list[int]:
        """Wait until at least one instance is live; returns the ids."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while not self.instance_ids():
            remaining = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(f"no instance of {self.endpoint.reference()!r} appeared within {timeout} s")
            try:
                await asyncio.wait_for(self._watcher.wait_changed(), remaining)
            except asyncio.TimeoutError:
                pass
        return self.instance_ids()

    # -- routing -------------------------------------------------------------------------------------
    # The routing methods hand back the routed call itself (``await client.round_robin(request)`` as ever): one
    # coroutine fewer to make and resume on every call.
    def generate(self, request: Any) -> Coroutine[Any, Any, ResponseStream]:
        """Default routing (round-robin), as Dynamo's ``client.generate``."""
        return self._routed(request, self._next_in_turn)

    def round_robin(self, request: Any) -> Coroutine[Any, Any, ResponseStream]:
        return self._routed(request, self._next_in_turn)

    def _next_in_turn(self, live: list[InstanceInfo]) -> InstanceInfo:
        return live[next(self._rr) % len(live)]

    def random(self, request: Any) -> Coroutine[Any, Any, ResponseStream]:
        return self._routed(request, random.choice)

    async def direct(self, request: Any, instance_id: int) -> ResponseStream:
        """Call one chosen instance; no failover."""
        self.runtime._check_open()
        found = self._watcher.endpoint_instances(self.endpoint.name)
        info = found.get(instance_id)
        if info is None:
            raise InstanceNotFoundError(self.endpoint.reference(), instance_id, sorted(found))
        try:
            return await self._call(info, request)
        except (NoRespondersError, BackendTimeoutError) as exc:
            self._mark_down(info.instance_id)
            raise EndpointError(f"instance {instance_id:x} of {self.endpoint.reference()!r} did not answer "
                                "(its worker is gone; its key vanishes when the lease expires)") from exc

    async def _routed(self, request: Any, choose: Any) -> ResponseStream:
        """Pick an instance; if it does not answer (dead worker, lease not yet expired), try the others."""
        self.runtime._check_open()
        tried: set[int] = set()
        last: Exception | None = None
        while True:
            live = self._available()
            if tried or not live:
                live = ([i for i in live if i.instance_id not in tried]
                        or [i for i in self.instances() if i.instance_id not in tried])  # recently silent ones last
            if not live:
                # Agree with instance_ids(): a killed worker's key is still registered, it just did not answer.
                raise NoInstancesError(self.endpoint.reference(), self.instance_ids(), tried) from last
            info = choose(live)
            try:
                return await self._call(info, request)
            except (NoRespondersError, BackendTimeoutError) as exc:
                # No ack: a request published as its worker died is lost with it (NATS still had the dead
                # connection's subscription), so it is safe to try another instance.
                tried.add(info.instance_id)
                self._mark_down(info.instance_id)
                last = exc

    def _mark_down(self, instance_id: int) -> None:
        self._down[instance_id] = asyncio.get_running_loop().time() + self.DOWN_FOR
        self._watcher.mark_unanswered(instance_id)  # figures mark the key as outliving its process

    async def _call(self, info: InstanceInfo, request: Any) -> ResponseStream:
        runtime = self.runtime
        profile, backend = runtime.profile, runtime.backend
        codec = profile.call_codec(info)  # the instance's own codec: each worker is called as it asks
        plane = backend.request_plane(info.plane)
        body = profile.encode(request, codec)
        request_id = _request_ids.next()
        receiver = await backend.responses.open_receiver(request_id)
        payload = encode_frame(profile.request_header(request_id, receiver.connection_info, codec), body)
        if info.plane == "nats" and len(payload) > backend.messaging.max_payload:
            await receiver.close()
            raise PayloadTooLargeError(len(payload), backend.messaging.max_payload, what="request")
        self.calls += 1
        caller = serving_instance.get()
        caller_ref, caller_id = (caller.actor, caller.lease_id) if caller is not None else ("", 0)
        key = (caller_ref, caller_id, info.instance_id)
        tally = self._calls_to.get(key)
        if tally is None:
            tally = self._calls_to[key] = [0, 0.0]
        tally[0] += 1
        tally[1] = runtime.recorder.record(Kind.CALL, self._label, self.endpoint.reference(), request_id=request_id,
                                           instance_id=info.instance_id, subject=info.subject, client_id=self.id,
                                           caller=caller_ref, caller_instance=caller_id).ts
        try:
            # a multiplexed stream's opening says the request was taken, as the ack does (TCP receivers only)
            ack = await plane.request(info.subject, payload, timeout=self.ACK_TIMEOUT,
                                      headers=profile.request_headers(request_id, self.ACK_TIMEOUT, time.time_ns()),
                                      accept_early=getattr(receiver, "accept_early", None))
        except BackendTimeoutError:
            if not receiver.claimed:
                await receiver.close()
                raise
            # The ack was lost (e.g. across a NATS reconnect) but the worker already streams back: the request is
            # running there. Failing over would run it twice; take the stream it is sending instead.
            ack = b""
        except BaseException:
            await receiver.close()
            raise
        if ack:
            await receiver.close()
            text = ack[:200].decode(errors="replace")
            if text.startswith("Server unavailable"):  # the worker no longer serves it (stopping): try another
                raise NoRespondersError(info.subject, f"instance {info.instance_id:x} refused the request: {text}")
            raise EndpointError(f"instance {info.instance_id:x} refused the request: {text}")
        stream = ResponseStream(self, receiver, request_id, info.instance_id, codec)
        receivers = self._open.get(info.instance_id)
        if receivers is None:
            receivers = self._open[info.instance_id] = {}
        receivers[request_id] = receiver
        return stream

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._unlisten()
            self.runtime._clients.discard(self)
            self.runtime._retire_calls(self.call_snapshots())
            await self.runtime.registry.release_watcher(self._watcher, self.id)

    # -- snapshots ------------------------------------------------------------------------------------
    def snapshot(self) -> ClientSnap:
        ep = self.endpoint
        return ClientSnap(self.id, self.runtime.name, ep.namespace.name, ep.component.name, ep.name,
                          tuple(self.instance_ids()), self.calls, tuple(self.silent_ids()))

    def call_snapshots(self) -> list[CallSnap]:
        """The calls this client made, one entry per caller and instance called."""
        callee = self.endpoint.reference()
        return [CallSnap(self.runtime.name, self.id, callee, instance, int(n), caller, caller_id, last)
                for (caller, caller_id, instance), (n, last) in self._calls_to.items()]

    def _part(self) -> Part:
        ep = self.endpoint
        return Part(Focus("client", self.runtime.name, ep.namespace.name, ep.component.name, ep.name,
                          client_id=self.id, scope=ep.component.path()), (self.runtime.snapshot(),))

    def _subscribe(self, listener: Any) -> Any:
        return self.runtime.recorder.subscribe(listener)

    def __repr__(self) -> str:
        ids = ", ".join(f"{i:x}" for i in self.instance_ids()) or "none"
        return f"Client({self.endpoint.reference()!r}, instances=[{ids}])"
