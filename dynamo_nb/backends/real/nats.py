"""Messaging over a real NATS server, through nats-py.

nats-py already gives what the object model needs — queue groups, request/reply with no-responders status
(servers ≥ 2.2), a per-subscription task that runs callbacks one at a time, in order, and subscriptions that are
re-sent after a reconnect. This adapter turns its messages into :class:`~dynamo_nb.backends.base.Msg`, maps its
errors onto dynamo_nb's tree, and sets the connection up to outlive a restarted server: it fails fast while
connecting the first time (an unreachable URL is an error, not a hang) and reconnects without limit afterwards.

``NATS_SERVER`` may list the nodes of a NATS cluster (comma-separated); nats-py then reconnects to another node
when its own dies. Two cluster facts are handled here: a subscriber that has just moved to another node is not
seen by the others until its interest crosses the routes, so "no responders" is retried for a moment before it
is believed; and a server with users and subject permissions refuses a subscription *after* accepting it, so
with credentials a subscription is confirmed by a round trip and a refusal raises
:class:`~dynamo_nb.errors.PermissionDeniedError` (a refused publish surfaces when its request times out).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import re
import time
import uuid
from collections import deque
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import urlsplit

import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg as NatsMsg
from nats.aio.subscription import Subscription as NatsSubscription

from ...errors import (
    BackendTimeoutError,
    BackendUnavailableError,
    NoRespondersError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RuntimeClosedError,
)
from ...ratelog import warn_limited
from ..base import AcceptEarly, Msg
from ._deadline import being_cancelled, bounded
from .urls import redact, redact_text

__all__ = ["NatsMessaging", "NatsSubscriptionHandle", "PermissionViolation", "nats_auth_from_env"]

log = logging.getLogger(__name__)

_INITIAL_ATTEMPTS = 3  # tries per URL before the first connect gives up (a refused port fails each at once)
_RECONNECT_WAIT = 0.25  # seconds between reconnect attempts once connected
_PENDING_SIZE = 8 * 1024 * 1024  # bytes nats-py buffers while reconnecting
_SETTLE = 3.0  # seconds after a reconnect in which a silent subject is blamed on the outage, not on the workers
_PROBE_TIMEOUT = 1.0  # a server that does not answer a PING within this, after a request timed out, is frozen
# In a cluster, how long "no responders" is retried: a subscriber whose node died is seen again on the others
# once it has reconnected and its interest crossed the routes (tens of milliseconds on one host).
_NO_RESPONDERS_GRACE = 0.5
_CONFIRM_TIMEOUT = 2.0  # seconds a subscription's confirming round trip may take (with credentials)
_VIOLATION = re.compile(r"permissions violation for (subscription|publish) to \"?([^\"\s]+)", re.IGNORECASE)


_NO_RESPONDERS_STATUS = "503"  # the status header of nats-server's "no responders" answer


def _time_out(future: "asyncio.Future[Any]") -> None:
    if not future.done():
        future.set_exception(nats.errors.TimeoutError())


_EMPTY_REPLY = NatsMsg(None, data=b"")  # type: ignore[arg-type]  # never published: it only ends a wait


def _accept(future: "asyncio.Future[Any]") -> None:
    if not future.done():
        future.set_result(_EMPTY_REPLY)


try:  # what nats-py's _send_publish writes headers with (see _Client._send_publish)
    from nats.aio.client import _HEADER_VALUE_NEWLINES
    from nats.protocol.command import hpub_cmd as _hpub_cmd
except ImportError:  # another nats-py: its own _send_publish does it all
    _HEADER_VALUE_NEWLINES = _hpub_cmd = None  # type: ignore[assignment]


class _Client(NatsClient):
    """nats-py's client, reading message headers without a generator step per character of each name (a third
    of a worker's own work per request went there: every request carries three headers), and writing them
    with each header name checked once, not on every message."""

    _header_names: dict[str, bytes] = {}  # names nats-py's own _send_publish accepted, as ``b"name: "``

    async def _send_publish(self, subject: str, reply: str, payload: bytes, payload_size: int,
                            headers: dict[str, Any] | None) -> None:
        names = self._header_names
        if not headers or _hpub_cmd is None or not subject or not all(k in names for k in headers):
            await super()._send_publish(subject, reply, payload, payload_size, headers)
            for k in headers or ():  # the names it took without complaint (invalid ones raised BadHeaderError)
                names.setdefault(k, k.strip().encode() + b": " if k.strip() else b"")
            return
        # What nats-py writes: the NATS/1.0 line, "name: value" lines (no newline inside a value), a blank line
        parts = [b"NATS/1.0\r\n"]
        for k, v in headers.items():
            name = names[k]
            if name:
                parts += (name, v.strip().translate(_HEADER_VALUE_NEWLINES).encode(), b"\r\n")
        parts.append(b"\r\n")
        self.stats["out_msgs"] += 1
        self.stats["out_bytes"] += payload_size
        await self._send_command(_hpub_cmd(subject, reply, b"".join(parts), payload))
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        """What nats-py's parser returns: ``Name: Value`` lines, names in ASCII without inner whitespace."""
        out: dict[str, str] = {}
        for line in raw.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            try:
                key = name.strip().decode("ascii")
            except UnicodeDecodeError:
                continue
            if key and len(key.split()) != 1:  # whitespace inside the name: not a header name
                continue
            out[key] = value.strip().decode("utf-8", "replace")
        return out


class PermissionViolation:
    """One subject the server refused this connection (``action`` is ``"subscribe"`` or ``"publish"``)."""

    __slots__ = ("at", "action", "subject")

    def __init__(self, action: str, subject: str) -> None:
        self.at = time.monotonic()
        self.action = action
        self.subject = subject

    def __repr__(self) -> str:
        return f"PermissionViolation({self.action} {self.subject!r})"


def _parse_violation(exc: BaseException) -> PermissionViolation | None:
    m = _VIOLATION.search(str(exc))
    if m is None:
        return None
    return PermissionViolation("subscribe" if m.group(1).lower() == "subscription" else "publish", m.group(2))


def nats_auth_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """nats-py connect options from Dynamo's ``NATS_AUTH_*`` variables (only the ones that are set)."""
    env = os.environ if env is None else env
    opts: dict[str, Any] = {}
    if env.get("NATS_AUTH_USERNAME") or env.get("NATS_AUTH_PASSWORD"):
        opts["user"] = env.get("NATS_AUTH_USERNAME", "")
        opts["password"] = env.get("NATS_AUTH_PASSWORD", "")
    if env.get("NATS_AUTH_TOKEN"):
        opts["token"] = env["NATS_AUTH_TOKEN"]
    if env.get("NATS_AUTH_CREDENTIALS_FILE"):
        opts["user_credentials"] = env["NATS_AUTH_CREDENTIALS_FILE"]
    return opts


def _explain(errors: list[BaseException], final: BaseException) -> str:
    """The most telling reason a first connect failed: a refused login beats the socket reset that follows it."""
    for exc in errors:
        if isinstance(exc, nats.errors.AuthorizationError) or "authorization" in str(exc).lower():
            return f"authorization failed ({exc}); check NATS_AUTH_* variables"
    if errors:
        return repr(errors[-1])
    return type(final).__name__ + (f": {final}" if str(final) else "")


class NatsSubscriptionHandle:
    """A live subscription; ``unsubscribe()`` is safe after the connection closed."""

    __slots__ = ("subject", "queue", "_sub")

    def __init__(self, sub: NatsSubscription, subject: str, queue: str) -> None:
        self.subject = subject
        self.queue = queue
        self._sub = sub

    async def unsubscribe(self) -> None:
        try:
            await self._sub.unsubscribe()
        except (nats.errors.ConnectionClosedError, nats.errors.BadSubscriptionError,
                nats.errors.ConnectionDrainingError):
            pass

    def __repr__(self) -> str:
        queue = f", queue={self.queue!r}" if self.queue else ""
        return f"NatsSubscription({self.subject!r}{queue})"


class NatsMessaging:
    """One process's NATS connection, as the object model's :class:`~dynamo_nb.backends.base.Messaging`.

    ``url`` is the server URL with any password or token in it replaced by ``***``: it is what every description,
    repr, log line and error shows.
    """

    def __init__(self, url: str, nc: NatsClient, *, authenticated: bool = False) -> None:
        self.url = redact(url)
        self._nc = nc
        self._publish = nc.publish
        self._closed = False
        self._authenticated = authenticated
        self.disconnects = 0
        self.reconnects = 0
        self.reconnected_at = float("-inf")  # loop time of the last reconnect
        self.no_responder_retries = 0  # "no responders" answers retried while a cluster's interest settled
        self.permission_violations: deque[PermissionViolation] = deque(maxlen=100)  # the latest refusals
        self._warned_subjects: set[tuple[str, str]] = set()
        self._tokens = itertools.count(1)  # reply tokens of :meth:`_request_once`, unique per connection
        self._inbox: tuple[Any, str] = (None, "")  # nats-py's response prefix, and it as text

    def _on_violation(self, violation: PermissionViolation) -> None:
        self.permission_violations.append(violation)
        key = (violation.action, violation.subject)
        if key not in self._warned_subjects and len(self._warned_subjects) < 100:  # one line per subject
            self._warned_subjects.add(key)
            log.warning("NATS refused to let this connection %s %r (permissions)", violation.action,
                        violation.subject)

    def _refused(self, action: str, subject: str, since: float) -> bool:
        return any(v.action == action and v.subject == subject and v.at >= since
                   for v in tuple(self.permission_violations))

    # -- connecting ---------------------------------------------------------------------------------
    @classmethod
    async def connect(cls, url: str, *, connect_timeout: float = 5.0, name: str | None = None,
                      auth: dict[str, Any] | None = None) -> "NatsMessaging":
        """Connect, or raise :class:`BackendUnavailableError` naming ``url`` within ``connect_timeout`` s."""
        messaging: NatsMessaging | None = None
        last_error: list[BaseException] = []
        raw_url, url = url, redact(url)  # the raw one only goes to nats-py

        async def error_cb(exc: Exception) -> None:
            violation = _parse_violation(exc)
            if messaging is None:
                last_error.append(exc)
            elif violation is not None:
                messaging._on_violation(violation)
            else:
                log.debug("NATS %s: %s", url, redact_text(str(exc), raw_url))

        async def disconnected_cb() -> None:
            if messaging is not None and not messaging._closed:
                messaging.disconnects += 1
                log.warning("NATS %s: disconnected; reconnecting", url)

        async def reconnected_cb() -> None:
            if messaging is not None:
                messaging.reconnects += 1
                messaging.reconnected_at = asyncio.get_running_loop().time()
                log.warning("NATS %s: reconnected", url)

        servers = [u.strip() for u in raw_url.split(",") if u.strip()]  # NATS_SERVER may list several
        if not servers:
            raise ValueError(f"no NATS server in {url!r}")
        nc = _Client()
        options: dict[str, Any] = dict(
            servers=servers,
            name=name or "dynamo_nb",
            error_cb=error_cb,
            disconnected_cb=disconnected_cb,
            reconnected_cb=reconnected_cb,
            allow_reconnect=True,
            connect_timeout=max(0.1, min(connect_timeout, 2.0)),
            reconnect_time_wait=min(_RECONNECT_WAIT, connect_timeout / (_INITIAL_ATTEMPTS + 1)),
            max_reconnect_attempts=_INITIAL_ATTEMPTS - 1,
            pending_size=_PENDING_SIZE,
            ping_interval=20,
            max_outstanding_pings=3,
        )
        options.update(auth or {})
        try:
            await bounded(nc.connect(**options), connect_timeout)
        except (asyncio.TimeoutError, nats.errors.Error, OSError) as exc:
            detail = redact_text(_explain(last_error, exc), raw_url)
            try:
                await nc.close()
            except Exception:
                pass
            raise BackendUnavailableError("NATS", url, detail) from exc
        # Connected: from now on reconnect for as long as it takes (a restarted server on the same port).
        nc.options["max_reconnect_attempts"] = -1
        nc.options["reconnect_time_wait"] = _RECONNECT_WAIT
        authenticated = bool(auth) or any(urlsplit(s if "://" in s else f"nats://{s}").username for s in servers)
        messaging = cls(raw_url, nc, authenticated=authenticated)
        return messaging

    # -- Messaging --------------------------------------------------------------------------------------
    @property
    def max_payload(self) -> int:
        """The server's ``max_payload`` from its INFO (read again after every reconnect)."""
        return self._nc.max_payload

    @property
    def server_info(self) -> dict[str, Any]:
        """The INFO the server sent on connect (``jetstream``, ``max_payload``, ``server_name``, ...)."""
        return dict(self._nc._server_info)

    @property
    def client(self) -> NatsClient:
        """The underlying nats-py client (for inspection; the object model never touches it)."""
        return self._nc

    @property
    def connected(self) -> bool:
        return self._nc.is_connected

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeClosedError("NATS connection is closed")

    async def publish(self, subject: str, data: bytes, reply: str = "") -> None:
        self._check_open()
        try:
            await self._publish(subject, data, reply)
        except nats.errors.MaxPayloadError:
            raise PayloadTooLargeError(len(data), self._nc.max_payload) from None
        except nats.errors.OutboundBufferLimitError:
            raise BackendUnavailableError("NATS", self.url, "disconnected, and the reconnect buffer is full") from None
        except nats.errors.ConnectionClosedError as exc:
            raise RuntimeClosedError("NATS connection is closed") from exc

    def _respond(self, reply: str) -> Callable[[bytes], Awaitable[None]]:
        return functools.partial(self.publish, reply)

    @property
    def clustered(self) -> bool:
        """Whether the server pool has several nodes (listed in the URL, or announced by the server)."""
        return len(self._nc.servers) > 1

    async def subscribe(self, subject: str, cb: Callable[[Msg], Awaitable[None]],
                        queue: str = "") -> NatsSubscriptionHandle:
        """Messages reach ``cb`` one at a time, in order; a callback that raises is logged, not fatal.

        With credentials, a round trip confirms the server accepted the subscription:
        :class:`PermissionDeniedError` if it refused it (else the subscriber would wait forever, unaware).
        """
        self._check_open()
        since = time.monotonic()
        respond = self._respond

        async def deliver(m: NatsMsg) -> None:
            reply = m.reply
            msg = Msg(m.subject, m.data, reply, respond(reply) if reply else None, m.headers)
            try:
                await cb(msg)
            except asyncio.CancelledError:
                if being_cancelled(default=True):
                    raise  # the subscription is being torn down
                log.warning("callback on %r was cancelled; the subscription keeps going", subject)
            except Exception as exc:  # one line per interval, not a traceback per message
                warn_limited(log, f"callback:{subject}", "subscription callback on %r failed: %s: %s", subject,
                             type(exc).__name__, exc)
                log.debug("subscription callback on %r failed", subject, exc_info=True)

        try:
            sub = await self._nc.subscribe(subject, queue=queue, cb=deliver)
        except nats.errors.BadSubjectError:
            raise ValueError(f"invalid subject {subject!r}") from None
        except nats.errors.ConnectionClosedError as exc:
            raise RuntimeClosedError("NATS connection is closed") from exc
        handle = NatsSubscriptionHandle(sub, subject, queue)
        if self._authenticated and self._nc.is_connected:
            try:
                await self.flush(_CONFIRM_TIMEOUT)  # the server answers a refused SUB before this PONG
            except BackendTimeoutError:
                pass  # not confirmed, not refused: a reconnect re-sends it, and a refusal is logged then
            if self._refused("subscribe", subject, since):
                await handle.unsubscribe()
                raise PermissionDeniedError("subscribe to", subject)
        return handle

    async def request(self, subject: str, data: bytes, timeout: float,
                      headers: dict[str, str] | None = None,
                      accept_early: AcceptEarly | None = None) -> Msg:
        """Request/reply; :class:`NoRespondersError` when nobody subscribes to ``subject``.

        ``accept_early``: see :data:`~dynamo_nb.backends.base.AcceptEarly`.

        At once on a single server; in a cluster only once no responder has appeared for a moment (interest
        crosses the routes asynchronously), and never later than ``timeout``. A request that finds nobody, or
        no answer, while NATS itself is the trouble (disconnected, restarted a moment ago so workers are still
        subscribing again, or connected but frozen) raises :class:`BackendUnavailableError` saying so, instead
        of blaming the workers.
        """
        self._check_open()
        loop = asyncio.get_running_loop()
        since, start = time.monotonic(), loop.time()
        deadline = start + timeout
        pause = 0.01
        while True:
            try:
                m = await self._request_once(subject, data, max(0.001, deadline - loop.time()), headers,
                                             accept_early)
                break
            except nats.errors.NoRespondersError:
                grace_end = min(start + _NO_RESPONDERS_GRACE, deadline)
                if not self.clustered or loop.time() + pause >= grace_end:
                    raise self._outage() or NoRespondersError(subject) from None
                self.no_responder_retries += 1
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.1)
            except nats.errors.MaxPayloadError:
                raise PayloadTooLargeError(len(data), self._nc.max_payload, what="request") from None
            except nats.errors.TimeoutError:
                if self._refused("publish", subject, since):
                    raise PermissionDeniedError("publish to", subject, "the request was dropped") from None
                raise (self._outage() or await self._frozen()
                       or BackendTimeoutError(f"no reply on {subject!r} within {timeout} s")) from None
            except nats.errors.OutboundBufferLimitError:
                raise BackendUnavailableError("NATS", self.url,
                                              "disconnected, and the reconnect buffer is full") from None
            except nats.errors.ConnectionClosedError as exc:
                raise RuntimeClosedError("NATS connection is closed") from exc
        return Msg(m.subject, m.data)

    async def _request_once(self, subject: str, data: bytes, timeout: float, headers: dict[str, str] | None,
                            accept_early: AcceptEarly | None = None) -> NatsMsg:
        """``nc.request()`` on nats-py's own response subscription, with a timer instead of ``wait_for`` and a
        counter instead of random bytes for the reply token: the same messages for a third of its cost. Falls
        back to ``nc.request()`` where nats-py's internals are not the ones this was written against."""
        nc = self._nc
        if not hasattr(nc, "_resp_sub_prefix") or nc.is_draining_pubs:
            return await nc.request(subject, data, timeout=timeout, headers=headers)
        prefix = nc._resp_sub_prefix
        if not prefix:
            await nc._init_request_sub()  # makes the response map too
            prefix = nc._resp_sub_prefix
        resp_map = getattr(nc, "_resp_map", None)
        if not isinstance(resp_map, dict):
            return await nc.request(subject, data, timeout=timeout, headers=headers)
        known, text = self._inbox
        if known is not prefix:
            text = bytes(prefix or b"").decode()
            self._inbox = (prefix, text)
        token = f"{next(self._tokens):x}"
        loop = asyncio.get_running_loop()
        future: asyncio.Future[NatsMsg] = loop.create_future()
        resp_map[token] = future
        try:
            await nc.publish(subject, data, reply=text + token, headers=headers)
            timer = loop.call_later(timeout, _time_out, future)
            if accept_early is not None:
                accept_early(functools.partial(_accept, future))
            try:
                msg = await future
            finally:
                timer.cancel()
                if accept_early is not None:
                    accept_early(None)
        finally:
            resp_map.pop(token, None)  # the reply, if it comes after an early accept, finds no taker
        if msg.headers and msg.headers.get("Status") == _NO_RESPONDERS_STATUS:
            raise nats.errors.NoRespondersError
        return msg

    def outage(self) -> BackendUnavailableError | None:
        """Disconnected, and re-connecting: say so (see :meth:`Messaging.outage`)."""
        if self._closed or self._nc.is_connected:
            return None
        return BackendUnavailableError("NATS", self.url, "the connection is lost and being re-made; an event "
                                       "published now would be lost (NATS keeps no messages): not published")

    def _outage(self) -> BackendUnavailableError | None:
        if not self._nc.is_connected:
            return BackendUnavailableError("NATS", self.url, "the connection is lost and being re-made; "
                                           "calls fail until NATS is back")
        since = asyncio.get_running_loop().time() - self.reconnected_at
        if since < _SETTLE:
            return BackendUnavailableError("NATS", self.url, f"NATS came back {since:.1f} s ago after an outage; "
                                           "workers are still subscribing again, try again shortly")
        return None

    async def _frozen(self) -> BackendUnavailableError | None:
        """After a silent request: does the server itself still answer? A request nobody serves must come back
        at once with "no responders" from a live server (its own round trip, not nats-py's PING bookkeeping)."""
        try:
            await self._nc.request(f"_dynamo_nb.probe.{uuid.uuid4().hex}", b"", timeout=_PROBE_TIMEOUT)
        except nats.errors.NoRespondersError:
            return None
        except (nats.errors.TimeoutError, asyncio.TimeoutError):
            return BackendUnavailableError("NATS", self.url, "connected, but the server answers nothing (frozen or "
                                           f"overloaded: no answer to a probe within {_PROBE_TIMEOUT} s)")
        except nats.errors.Error:
            return self._outage()
        return None

    async def flush(self, timeout: float = 5.0) -> None:
        """Round trip to the server: everything sent before (subscriptions included) has been processed."""
        self._check_open()
        try:
            # nats-py writes the PING straight to the socket while SUB/PUB commands wait in its pending buffer,
            # so its flush() can return before the server has seen a subscription made just before it, and a
            # publish from another connection is then lost. Push the pending commands out first.
            flush_pending = getattr(self._nc, "_flush_pending", None)
            send_ping = getattr(self._nc, "_send_ping", None)
            if flush_pending is not None and self._nc.is_connected:
                await flush_pending(force_flush=True)
            if send_ping is None or not self._nc.is_connected:
                await self._nc.flush(timeout=timeout)  # type: ignore[arg-type]
                return
            # nats-py's own flush cancels its PONG future on a timeout, and the PONG that arrives later then
            # raises inside its read loop and kills the connection. Wait on a shield: the late PONG lands in a
            # future still pending, harmlessly.
            pong: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            await send_ping(pong)
            await bounded(asyncio.shield(pong), timeout)
        except (nats.errors.TimeoutError, asyncio.TimeoutError):
            raise BackendTimeoutError(f"NATS {self.url} did not answer a flush within {timeout} s") from None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._nc.close()
        except Exception as exc:
            log.debug("closing NATS %s: %s", self.url, exc)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self._nc.is_connected else "reconnecting")
        return f"NatsMessaging({self.url}, {state}, max_payload={self.max_payload})"
