"""Serving an endpoint: the builder, the start sequence of seed §4.4, request handling, graceful stop (§6.2)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import time
import weakref
from dataclasses import replace
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Union

from ..backends.base import Accepted, Msg, RequestHandler, Subscription
from ..errors import PayloadTooLargeError, RegistrationError, RuntimeClosedError
from ..ratelog import warn_limited
from ..transport.frames import FrameError, decode_frame
from ..transport.profile import ProtocolError, RequestHeader
from .drawable import Drawable
from .eager import current_task
from .health import ensure_registered
from .lifecycle import TRANSITIONS, Lifecycle, State
from .recorder import Kind
from .snapshot import Focus, InstanceSnap, LeaseSnap, Part

if TYPE_CHECKING:
    from .model import Endpoint
    from .registry import EndpointStats, ServiceGroup, StatsHandler

__all__ = ["RequestContext", "EndpointBuilder", "ServedEndpoint", "Handler", "serving_instance"]

log = logging.getLogger(__name__)

#: The served instance whose handler is running in this task (None outside handlers): a client that calls from
#: inside a handler records its caller from this, so figures draw who really called whom.
serving_instance: contextvars.ContextVar["ServedEndpoint | None"] = contextvars.ContextVar(
    "serving_instance", default=None)

Handler = Union[Callable[[Any], AsyncIterator[Any]], Callable[[Any, "RequestContext"], AsyncIterator[Any]]]


class RequestContext:
    """What a handler knows about its request: the id, and whether the caller stopped listening."""

    __slots__ = ("request_id", "_stopped", "_task")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self._stopped = False
        self._task: asyncio.Task[Any] | None = None

    def id(self) -> str:
        return self.request_id

    def is_stopped(self) -> bool:
        """True once the caller closed its stream (or the worker is being killed)."""
        return self._stopped

    def stop_generating(self) -> None:
        self._stopped = True

    def _caller_left(self) -> None:
        """The caller closed its stream: tell the handler, and cancel it if it is blocked."""
        self._stopped = True
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    def _caller_stops(self, word: str) -> None:
        """Dynamo's control frames: ``"stop"`` ends the stream after the current item, ``"kill"`` at once."""
        self._stopped = True
        if word == "kill":
            self._caller_left()

    def __repr__(self) -> str:
        return f"RequestContext({self.request_id!r}, stopped={self._stopped})"


_ARITIES: "weakref.WeakKeyDictionary[Callable[..., Any], int]" = weakref.WeakKeyDictionary()


def _handler_arity(handler: Callable[..., Any]) -> int:
    """:func:`_read_arity`, remembered per plain function (one handler often serves thousands of endpoints)."""
    if not inspect.isfunction(handler):
        return _read_arity(handler)
    arity = _ARITIES.get(handler)
    if arity is None:
        arity = _ARITIES[handler] = _read_arity(handler)
    return arity


def _read_arity(handler: Callable[..., Any]) -> int:
    """1 for ``handler(request)``, 2 for ``handler(request, context)``; TypeError otherwise.

    The context goes only where it is asked for: a second positional parameter without a default, or one named
    ``context`` (or ``*args``). ``async def gen(request, _tag=tag)``, the closure idiom, keeps its default.
    """
    if not callable(handler):
        raise TypeError(f"handler must be an async generator function, got {type(handler).__name__}")
    plain = inspect.isfunction(handler) or inspect.ismethod(handler)
    target: Any = handler if plain else getattr(handler, "__call__")  # noqa: B004, B009  # a callable object's method
    if not (inspect.isasyncgenfunction(target) or inspect.iscoroutinefunction(target)):
        raise TypeError(
            f"handler {getattr(handler, '__name__', handler)!r} must be an async generator function "
            "(async def ... yield ...) or an async function"
        )
    try:
        signature = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return 1
    params = [p for p in signature if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    has_varargs = any(p.kind == p.VAR_POSITIONAL for p in signature)
    if len(params) >= 2:
        second = params[1]
        arity = 2 if second.default is second.empty or second.name == "context" else 1
    else:
        arity = 2 if has_varargs else 1
    required = [p for p in params if p.default is p.empty]
    if (params or has_varargs) and len(required) <= arity:
        return arity
    raise TypeError(f"handler {getattr(handler, '__name__', handler)!r} must take (request) or (request, context)")


async def _as_stream(result: Any) -> AsyncIterator[Any]:
    """Let plain ``async def`` handlers return one response."""
    yield await result


class EndpointBuilder:
    """``endpoint.endpoint_builder().handler(h).stats_handler(fn).start()`` (Dynamo's builder)."""

    def __init__(self, endpoint: "Endpoint") -> None:
        self.endpoint = endpoint
        self._handler: Handler | None = None
        self._stats_handler: StatsHandler | None = None
        self._drain_timeout: float | None = None
        self._metadata: dict[str, Any] = {}

    def handler(self, handler: Handler) -> "EndpointBuilder":
        _handler_arity(handler)
        self._handler = handler
        return self

    def stats_handler(self, fn: "StatsHandler") -> "EndpointBuilder":
        """``fn()`` returns the ``data`` of this endpoint's ``$SRV.STATS`` entry."""
        if not callable(fn):
            raise TypeError("stats_handler must be callable")
        self._stats_handler = fn
        return self

    def options(self, *, drain_timeout: float | None = None, **metadata: Any) -> "EndpointBuilder":
        self._drain_timeout = drain_timeout
        self._metadata.update(metadata)
        return self

    async def start(self) -> "ServedEndpoint":
        """Register and listen; return once both are done (seed §4.4)."""
        if self._handler is None:
            raise TypeError(f"no handler given for {self.endpoint.reference()}: call .handler(fn) before .start()")
        served = ServedEndpoint(self.endpoint, self._handler, self._stats_handler, self._drain_timeout)
        await served._start()
        return served


class _Latch:
    """A one-way flag that can be awaited. Its ``asyncio.Event`` is made only if someone waits before it is set:
    thousands of instances wait for none of theirs, and each event is objects the garbage collector walks."""

    __slots__ = ("is_set", "_event")

    def __init__(self) -> None:
        self.is_set = False
        self._event: asyncio.Event | None = None

    def set(self) -> None:
        self.is_set = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        if not self.is_set:
            if self._event is None:
                self._event = asyncio.Event()
            await self._event.wait()


class ServedEndpoint(Drawable):
    """One served instance: its lease, key, subject, lifecycle, in-flight requests and counters."""

    def __init__(self, endpoint: "Endpoint", handler: Handler, stats_handler: "StatsHandler | None",
                 drain_timeout: float | None) -> None:
        self.endpoint = endpoint
        self.runtime = endpoint.runtime
        self.handler = handler
        self._arity = _handler_arity(handler)
        self._stats_handler = stats_handler
        self.drain_timeout = self.runtime.drain_timeout if drain_timeout is None else drain_timeout
        self.lifecycle = Lifecycle()
        self.lifecycle.subscribe(self._record_transition)
        self.lease_id = 0
        self.key = ""
        self.subject = ""  # the request route: a NATS subject, or the TCP listener's path
        self.address = ""  # what callers are told in etcd (the subject, or "host:port/path" on TCP)
        self._value = b""
        self._value_for: tuple[int, str] | None = None
        self.service: ServiceGroup | None = None
        self.stats: EndpointStats | None = None
        self.killed = False
        #: the request callback of every request plane (an in-process bus runs it as it delivers)
        self._on_request = RequestHandler(self._accept)
        self.dropped_late = 0  # requests read after their ack deadline: the caller had failed over, so not run
        self._sub: Subscription | None = None
        self._key_created = False  # this start wrote the instance key (so an aborted start must delete it)
        self._inflight: set[asyncio.Task[None]] = set()
        # Events and the stop lock are made when first waited for: thousands of instances wait for none of them.
        self._stopped = _Latch()
        self._health_ticket = -1  # its place in the runtime's health sweeper (-1: no check booked)
        self._health_check: asyncio.Task[None] | None = None  # a check that had to wait, still under way
        self.health_reason = ""  # why the last health check failed ("" when it passed)
        self._stop_lock: asyncio.Lock | None = None
        self._start_settled = _Latch()  # start() finished, either way: a stop waits for it
        self.killed_at = 0.0
        self.lease_expires_at = 0.0  # once killed: when the lease (and with it the key) runs out
        self.cut_off = False  # faults caused on purpose (dynamo_nb.faults): no request route, key kept
        self.delay = 0.0  # and seconds added before each streamed item (a slow handler)
        self._snap: tuple[tuple[Any, ...], InstanceSnap] | None = None
        self._leased: tuple[InstanceSnap, LeaseSnap | None, InstanceSnap] | None = None
        self.runtime.recorder.record_at(self.lifecycle.history[0][1], Kind.LIFECYCLE, self.actor, self.actor,
                                        state=State.CREATED.value)

    # -- public view ---------------------------------------------------------------------------------
    @property
    def instance_id(self) -> int:
        return self.lease_id

    @property
    def state(self) -> State:
        return self.lifecycle.state

    @property
    def history(self) -> list[tuple[State, float]]:
        return list(self.lifecycle.history)

    @property
    def actor(self) -> str:
        return self.endpoint._reference

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def on_transition(self, listener: Callable[[State, float], None]) -> Callable[[], None]:
        """Call ``listener(state, timestamp)`` on every lifecycle transition."""
        return self.lifecycle.subscribe(listener)

    async def wait_for_state(self, *states: State | str, timeout: float | None = 5.0) -> State:
        return await self.lifecycle.wait_for(*(State(s) for s in states), timeout=timeout)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def _record_transition(self, state: State, ts: float) -> None:
        reason = {"reason": self.health_reason} if state is State.RUNNING and self.health_reason else {}
        self.runtime.recorder.record_at(ts, Kind.LIFECYCLE, self.actor, self.actor, state=state.value,
                                        instance_id=self.lease_id, **reason)

    # -- start (seed §4.4) ---------------------------------------------------------------------------
    async def _start(self) -> None:
        try:
            await self._start_steps()
        finally:
            self._start_settled.set()

    async def _start_steps(self) -> None:
        runtime, ep = self.runtime, self.endpoint
        if runtime.closed:
            raise RuntimeClosedError(f"runtime {runtime.name} is shut down; cannot serve {ep.reference()}")
        rec = runtime.recorder.record
        rec(Kind.START, "App", "EndpointBuilder", endpoint=ep.reference())
        lease_id = await runtime._acquire_lease(self)
        self._bind(lease_id)
        for other in runtime._instances_of(ep):
            if other is not self and other.lease_id == lease_id:
                runtime._release_lease(self)
                raise RegistrationError(
                    f"{ep.reference()} is already served by this runtime (instance {lease_id:x}); "
                    "stop it first, or serve from another runtime for a second instance"
                )
        ns, comp = ep.namespace.name, ep.component.name
        try:
            self.service, created = await runtime.registry.service(ns, comp)
            rec(Kind.REGISTRY_SERVICE, "EndpointBuilder", "Registry", service=self.service.service_name,
                created=created,
                endpoint=ep.reference())
            from .registry import EndpointStats

            self.stats = EndpointStats(ep.name, self.subject,
                                       wire_name=runtime.profile.service_endpoint_name(ns, comp, ep.name, lease_id))
            self.service.endpoints[ep.name] = self.stats
            rec(Kind.SERVICE_ENDPOINT, "EndpointBuilder", "NATS", service=self.service.service_name,
                endpoint=ep.name, subject=self.subject)
            if self._stats_handler is not None:
                runtime.registry.add_stats_handler(self.service.service_name, ep.name, self._stats_handler)
            rec(Kind.PUSH_ENDPOINT, "EndpointBuilder", "Handler", subject=self.subject)

            plane = runtime.backend.request_plane(runtime.profile.serve_plane)
            await plane.start()  # the TCP listener's port goes into the value
            self.address = plane.address_for(self.subject)
            value = self.instance_value()
            made_key, subscribed = await asyncio.gather(
                runtime.backend.discovery.create(self.key, value, lease_id),
                plane.serve(self.subject, self._on_request),
                return_exceptions=True,
            )
            self._key_created = made_key is True
            if not isinstance(subscribed, BaseException):
                self._sub = subscribed
            for outcome in (made_key, subscribed):  # the key written but no listener: the abort deletes it
                if isinstance(outcome, BaseException):
                    raise outcome
            created_key = bool(made_key)
            rec(Kind.KV_CREATE, "EndpointBuilder", "etcd", key=self.key, lease_id=lease_id, ok=created_key,
                namespace=ns, component=comp, endpoint=ep.name, subject=self.subject)
            rec(Kind.LISTEN, "Handler", "NATS", subject=self.subject, queue="q")
            if not created_key:
                raise RegistrationError(f"instance key {self.key!r} already exists in etcd; "
                                        f"{ep.reference()} is already registered under lease {lease_id:x}")
            self.lifecycle.to(State.REGISTERED)
            await runtime.backend.messaging.flush()
            self.lifecycle.to(State.RUNNING)
            rec(Kind.READY, "Handler", "NATS", subject=self.subject, instance_id=lease_id)
        except BaseException:
            await self._abort_start()
            raise
        runtime._health.add(self)

    def instance_value(self) -> bytes:
        """The value this instance registers at its key (with the address callers reach it at, on a TCP plane).

        Kept while the lease and the address stay the same: every health check compares the key against it.
        """
        made_for = (self.lease_id, self.address)
        if self._value_for != made_for:
            ep = self.endpoint
            self._value = self.runtime.profile.instance_value(ep.namespace.name, ep.component.name, ep.name,
                                                              self.lease_id, address=self.address)
            self._value_for = made_for
        return self._value

    def _bind(self, lease_id: int) -> None:
        self.lease_id = lease_id
        self.key = self.endpoint.instance_key(lease_id)
        self.subject = self.endpoint.subject(lease_id)

    async def _abort_start(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        if self.service is not None and self.service.endpoints.get(self.endpoint.name) is self.stats:
            del self.service.endpoints[self.endpoint.name]
        if self._key_created or self.lifecycle.state != State.CREATED:
            try:
                await self.runtime.backend.discovery.delete(self.key)
            except Exception:
                pass
        if State.STOPPING in TRANSITIONS[self.lifecycle.state]:
            self.lifecycle.to(State.STOPPING)
            self.lifecycle.to(State.DEREGISTERED)
        self.runtime._release_lease(self)
        self._stopped.set()

    async def _reregister(self, lease_id: int) -> None:
        """After the lease was lost (etcd restarted, lease expired), come back under a new one."""
        if self._sub is not None:
            await self._sub.unsubscribe()
        old_key = self.key
        if self.service is not None:
            self.service.endpoints.pop(self.endpoint.name, None)
        self._bind(lease_id)
        ep = self.endpoint
        plane = self.runtime.backend.request_plane(self.runtime.profile.serve_plane)
        self.address = plane.address_for(self.subject)
        value = self.instance_value()
        self._sub = await plane.serve(self.subject, self._on_request)
        await self.runtime.backend.discovery.create(self.key, value, lease_id)
        if self.stats is not None and self.service is not None:
            self.stats.subject = self.subject
            self.stats.wire_name = self.runtime.profile.service_endpoint_name(
                ep.namespace.name, ep.component.name, ep.name, lease_id)
            self.service.endpoints[ep.name] = self.stats
        self.runtime.recorder.record(Kind.KV_CREATE, self.actor, "etcd", key=self.key, lease_id=lease_id,
                                     ok=True, replaces=old_key, namespace=ep.namespace.name,
                                     component=ep.component.name, endpoint=ep.name, subject=self.subject)

    # -- health ----------------------------------------------------------------------------------------
    async def check_health(self) -> bool:
        """Lease alive, the component's service answers a PING over messaging (or, on a request plane without
        ``$SRV``, such as Dynamo's TCP plane, the listener is open), and the instance key is there (restored if not).

        When it fails, ``health_reason`` says why (the Running record carries it too).
        """
        if self.service is None or self._sub is None or not self.runtime.lease_alive:
            self.health_reason = "not listening, or the lease is gone"
            return False
        if not self.runtime.profile.nats_service_enabled:
            if not self.runtime.backend.request_plane(self.runtime.profile.serve_plane).address:
                self.health_reason = "the request-plane listener is not open"
                return False
        else:
            try:
                await self.service.check(timeout=2.0)
            except Exception as exc:
                self.health_reason = f"the service did not answer a PING: {exc}"
                return False
        self.health_reason = await ensure_registered(self)
        return not self.health_reason

    async def _health_round(self) -> None:
        """One check and the transition it calls for; the runtime's sweeper then books the next one."""
        if self.lifecycle.state not in (State.RUNNING, State.HEALTHY):
            return
        ok = await self.check_health()
        if self.lifecycle.state not in (State.RUNNING, State.HEALTHY):
            return
        self.lifecycle.to(State.HEALTHY if ok else State.RUNNING)
        self.runtime._health.add(self, self.runtime.health_check_interval)

    # -- requests --------------------------------------------------------------------------------------
    def _accept(self, msg: Msg) -> Accepted:
        """Take one request: the ack (None: no reply at all) and what starts its stream once the ack is sent.
        Never waits."""
        profile = self.runtime.profile
        try:
            header, body = decode_frame(msg.data)
            control = profile.parse_request(header)
            request = profile.decode(body, control.codec)
        except (FrameError, ProtocolError) as exc:
            self._count_error(f"bad request: {exc}")
            warn_limited(log, f"malformed:{self.subject}", "%s: dropped a malformed request on %s: %s",
                         self.actor, msg.subject, exc)
            # A non-empty ack refuses the call at once (a real Dynamo worker acks and then stays silent).
            return (profile.encode({"error": f"malformed request: {exc}"}) if profile.name == "seed"
                    else f"malformed request: {exc}".encode()), None
        late = profile.ack_overdue(msg.headers, time.time_ns())
        if late:
            # At most once: the caller stopped waiting for this ack (and tried another instance) before this
            # worker read the request — it was frozen, or its backlog is draining. Running it now runs it twice.
            self.dropped_late += 1
            self.runtime.recorder.record(Kind.REQUEST_DROP, self.actor, self.actor, request_id=control.request_id,
                                         instance_id=self.lease_id, late_s=round(late, 3),
                                         reason="ack deadline passed")
            warn_limited(log, f"late:{self.subject}", "%s: dropped a request read %.1f s after its ack deadline "
                         "(the caller has failed over)", self.actor, late)
            return None, None
        # The ack: the request is accepted, responses follow over the stream (started once the ack is sent).
        # A caller that takes the stream's opening as the ack is spared one (on NATS: two messages less per call).
        start = functools.partial(self._start_stream, control, request)
        opening_acks = getattr(self.runtime.backend.responses, "opening_acks", None)
        if opening_acks is not None and opening_acks(control.connection_info):
            return None, start
        return b"", start

    def _start_stream(self, control: RequestHeader, request: Any) -> None:
        stream = self._stream(control.request_id, control.connection_info, request, control.codec)
        if getattr(self.runtime.backend.responses, "eager", False):
            self.runtime._eager.start(stream, self._inflight)  # frames never wait there: most streams end at once
            return
        task = asyncio.get_running_loop().create_task(stream)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    def _count_error(self, message: str) -> None:
        if self.stats is not None:
            self.stats.num_errors += 1
            self.stats.last_error = message
            self.runtime._touch(self)  # a malformed request records nothing: its snapshot must be built again

    async def _stream(self, request_id: str, connection_info: dict[str, Any], request: Any,
                      codec: str = "json") -> None:
        runtime, profile, actor = self.runtime, self.runtime.profile, self.endpoint._reference
        started = time.perf_counter_ns()
        if self.stats is not None:
            self.stats.num_requests += 1
        serving_instance.set(self)
        runtime.recorder.record(Kind.REQUEST, "Client", actor, request_id=request_id, instance_id=self.lease_id)
        try:
            sender = await runtime.backend.responses.connect(connection_info)
        except Exception as exc:
            self._count_error(f"cannot reach caller: {exc}")
            warn_limited(log, f"callback:{self.subject}", "%s: cannot open response stream for %s: %s",
                         self.actor, request_id[:100], exc)
            return
        context = RequestContext(request_id)
        context._task = current_task(asyncio.get_running_loop())
        sender.on_peer_closed(context._caller_left)
        sender.on_control(context._caller_stops)
        items = 0
        outcome = "complete"
        stream: AsyncIterator[Any] | None = None
        try:
            result = self.handler(request, context) if self._arity == 2 else self.handler(request)  # type: ignore[call-arg]
            stream = result if hasattr(result, "__anext__") else _as_stream(result)
            implied = getattr(sender, "frames_implied", False)  # prologue and sentinel go unsent (see tcp_mux)
            if not implied:
                await sender.send(profile.prologue(None), None)
            max_payload = (runtime.backend.messaging.max_payload if profile.limit_items_to_nats_payload
                           else float("inf"))
            try:
                async for item in stream:
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    body = profile.item(item, codec)
                    if len(body) > max_payload:
                        raise PayloadTooLargeError(len(body), int(max_payload), what="item")
                    await sender.send(None, body)
                    items += 1
                    if context._stopped:
                        outcome = "stopped"
                        break
                else:
                    stream = None  # ran to its end: nothing left to close
            except (ConnectionError, asyncio.CancelledError):
                raise
            except Exception as exc:
                outcome = "error"
                name = type(exc).__name__
                self._count_error(f"{name}: {exc}")
                await sender.send(None, profile.error_item_for(exc, codec))
            if outcome != "stopped":
                await sender.send(None, profile.final(codec))
                if not implied:
                    await sender.send(profile.SENTINEL, None)
        except (ConnectionError, asyncio.CancelledError) as exc:
            outcome = "cancelled" if context._stopped else ("killed" if self.killed else "broken")
            if isinstance(exc, asyncio.CancelledError) and not context._stopped:
                raise
        finally:
            if stream is not None and hasattr(stream, "aclose"):
                try:
                    await stream.aclose()
                except BaseException:
                    pass
            try:
                await sender.close()
            except Exception:
                pass
            if self.stats is not None:
                self.stats.processing_time_ns += time.perf_counter_ns() - started
            state = self.lifecycle.state
            runtime.recorder.record(Kind.RESPONSE, actor, "Client", request_id=request_id, items=items,
                                    outcome=outcome, instance_id=self.lease_id,
                                    after_stop=state is not State.RUNNING and state is not State.HEALTHY)

    # -- stop (seed §6.2) -----------------------------------------------------------------------------
    async def stop(self, drain_timeout: float | None = None) -> None:
        """Graceful: stop intake → drain in-flight streams (bounded) → deregister and revoke the lease.

        A stop that comes while the instance is still starting waits for the start to finish first.
        """
        await self._start_settled.wait()
        if self._stop_lock is None:
            self._stop_lock = asyncio.Lock()
        async with self._stop_lock:
            if self.lifecycle.state in (State.STOPPING, State.DEREGISTERED) or self.killed:
                return
            runtime, rec = self.runtime, self.runtime.recorder.record
            timeout = self.drain_timeout if drain_timeout is None else drain_timeout
            runtime.recorder.settle()  # the steps before the stop draw the instance as it served them...
            self.lifecycle.to(State.STOPPING)
            rec(Kind.STOP, "App", self.actor, instance_id=self.lease_id)
            runtime.recorder.settle()  # ...and its Stopping step draws it stopping, though the rest may share the turn
            runtime._health.remove(self)
            if self._sub is not None:
                await self._sub.unsubscribe()  # on TCP, later requests get the unknown-endpoint refusal
                self._sub = None
            rec(Kind.UNLISTEN, self.actor, "NATS", subject=self.subject)
            inflight = {task for task in self._inflight if not task.done()}  # finished ones may linger a turn
            if inflight:
                done, pending = await asyncio.wait(inflight, timeout=timeout)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=1.0)
                rec(Kind.DRAIN, self.actor, self.actor, drained=len(done), cancelled=len(pending),
                    instance_id=self.lease_id)
            if self.service is not None and self.service.endpoints.get(self.endpoint.name) is self.stats:
                del self.service.endpoints[self.endpoint.name]
                runtime.registry.remove_stats_handler(self.service.service_name, self.endpoint.name)
            try:
                await runtime._deregister(self)
            finally:
                self.lifecycle.to(State.DEREGISTERED)
                self._stopped.set()

    def _kill(self) -> None:
        """The process died: no deregistration, in-flight streams end abruptly (called by runtime.kill)."""
        self.killed = True
        self.killed_at = time.time()
        self.lease_expires_at = self.runtime.lease_expires_at
        self.runtime._health.remove(self)
        for task in tuple(self._inflight):
            task.cancel()
        self.runtime.recorder.record(Kind.KILL, "App", self.actor, instance_id=self.lease_id,
                                     lease_expires_at=self.lease_expires_at)
        if State.KILLED in TRANSITIONS[self.lifecycle.state]:
            self.lifecycle.to(State.KILLED)
        self._stopped.set()

    # -- snapshots --------------------------------------------------------------------------------------
    def snapshot(self) -> InstanceSnap:
        """This instance now: names, state and its history, load and counters (plain data).

        The last one is kept and given again while nothing it shows has changed, so a frame of a runtime that
        serves thousands of instances reuses the snapshots of all but the few that changed."""
        stats, runtime = self.stats, self.runtime
        paused = runtime.keepalive_paused
        version = (self.lifecycle.state, len(self.lifecycle.history), len(self._inflight),
                   stats.num_requests if stats else 0, stats.num_errors if stats else 0, self.killed,
                   self.lease_expires_at, paused and runtime.lease_expires_at, self.cut_off, self.delay,
                   self.lease_id, self.key, self.subject, self.address)
        if self._snap is not None and self._snap[0] == version:
            return self._snap[1]
        snap = self._fresh_snapshot()
        self._snap = (version, snap)
        return snap

    def _leased_snapshot(self, lease: LeaseSnap | None) -> InstanceSnap:
        """:meth:`snapshot` with the lease etcd last told of (the same object again while both are unchanged)."""
        snap = self.snapshot()
        if self._leased is not None and self._leased[0] is snap and self._leased[1] == lease:
            return self._leased[2]
        leased = replace(snap, lease=lease)
        self._leased = (snap, lease, leased)
        return leased

    def _fresh_snapshot(self) -> InstanceSnap:
        ep, stats, profile = self.endpoint, self.stats, self.runtime.profile
        return InstanceSnap(
            ep.namespace.name, ep.component.name, ep.name, self.lease_id, self.key, self.subject,
            runtime=self.runtime.name, state=self.lifecycle.state.value,
            history=tuple((s.value, ts) for s, ts in self.lifecycle.history),
            inflight=len(self._inflight), requests=stats.num_requests if stats else 0,
            errors=stats.num_errors if stats else 0, killed=self.killed,
            lease_expires_at=self.lease_expires_at or (self.runtime.lease_expires_at if self.runtime.keepalive_paused
                                                       else 0.0),
            faults=self._faults(),
            plane=profile.serve_plane, address=self.address or self.subject, codec=profile.codec,
            device_type=getattr(profile, "device_type", ""),
        )

    def _faults(self) -> tuple[str, ...]:
        """The faults active on this instance, in words a figure can show."""
        out = []
        if self.runtime.keepalive_paused and not self.killed:
            out.append("keep-alive paused")
        if self.cut_off:
            out.append("cut off from NATS")
        if self.delay:
            out.append(f"slow: +{self.delay:g} s per item")
        return tuple(out)

    def _part(self) -> Part:
        ep = self.endpoint
        return Part(Focus("instance", self.runtime.name, ep.namespace.name, ep.component.name, ep.name,
                          self.lease_id, scope=ep.component.path()),
                    (self.runtime.snapshot(),), instance=self.snapshot())

    def _subscribe(self, listener: Callable[..., None]) -> Callable[[], None]:
        unsubscribe = (self.runtime.recorder.subscribe(listener), self.lifecycle.subscribe(listener))

        def stop() -> None:
            for u in unsubscribe:
                u()
        return stop

    def __repr__(self) -> str:
        killed = ", killed" if self.killed else ""
        return (f"ServedEndpoint({self.endpoint.reference()!r}, instance={self.lease_id:x}, "
                f"state={self.state.value}{killed})")
