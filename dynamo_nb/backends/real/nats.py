"""Messaging over a real NATS server, through nats-py.

nats-py already gives what the object model needs — queue groups, request/reply with no-responders status
(servers ≥ 2.2), a per-subscription task that runs callbacks one at a time, in order, and subscriptions that are
re-sent after a reconnect. This adapter turns its messages into :class:`~dynamo_nb.backends.base.Msg`, maps its
errors onto dynamo_nb's tree, and sets the connection up to outlive a restarted server: it fails fast while
connecting the first time (an unreachable URL is an error, not a hang) and reconnects without limit afterwards.

What every call does takes a shorter path than nats-py's own (see :class:`_Client`): a request handler, whose
work never waits, runs in the read loop as its request is read, one at a time and in order as in the task it
no longer needs; replies reach their request there too; and publishing while connected awaits nothing.

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
import inspect
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
from ..base import Accepted, AcceptEarly, Msg, RequestHandler
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


def _not_now(*args: Any) -> bool:
    return False  # publish() itself, always


def _time_out(future: "asyncio.Future[Any]") -> None:
    if not future.done():
        future.set_exception(nats.errors.TimeoutError())


_TIMEOUT_SLOT = 0.01  # seconds: a request times out within this much after it is due


class _Timeouts:
    """Request timeouts by slot of :data:`_TIMEOUT_SLOT` seconds, one loop timer per slot in use instead of one
    per request (a timer and its cancellation cost as much as the rest of a request's own bookkeeping)."""

    __slots__ = ("loop", "_slots")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._slots: dict[int, set[asyncio.Future[Any]]] = {}

    def add(self, future: "asyncio.Future[Any]", timeout: float) -> set["asyncio.Future[Any]"]:
        """Time ``future`` out after ``timeout`` s unless it is done or discarded from the set returned first."""
        slot = int((self.loop.time() + timeout) / _TIMEOUT_SLOT) + 1
        due = self._slots.get(slot)
        if due is None:
            due = self._slots[slot] = set()
            self.loop.call_at(slot * _TIMEOUT_SLOT, self._expire, slot)
        due.add(future)
        return due

    def _expire(self, slot: int) -> None:
        for future in self._slots.pop(slot, ()):
            _time_out(future)


_EMPTY_REPLY = NatsMsg(None, data=b"")  # type: ignore[arg-type]  # never published: it only ends a wait


def _accept(future: "asyncio.Future[Any]") -> None:
    if not future.done():
        future.set_result(_EMPTY_REPLY)


try:  # the nats-py internals _Client's fast paths are written against (another nats-py: its own paths only)
    from nats.aio.client import _HEADER_KEY_RE, _HEADER_VALUE_NEWLINES, _validate_subject
    from nats.aio.client import parse_email as _parse_email
    from nats.protocol.parser import AWAITING_CONTROL_LINE as _AWAITING_CONTROL_LINE
    from nats.protocol.parser import Parser as _NatsParser

    _FAST = (_parse_email is None and isinstance(getattr(NatsClient, "CONNECTED", None), int)
             and list(inspect.signature(NatsClient._process_msg).parameters)
             == ["self", "sid", "subject", "reply", "data", "headers"]
             and list(inspect.signature(_NatsParser.__init__).parameters) == ["self", "nc"])
except (ImportError, AttributeError, TypeError, ValueError):
    _FAST = False
    _NatsParser = object  # type: ignore[assignment,misc]

# Bytes waiting to be written at which a publish writes them itself, instead of leaving them all to nats-py's
# flusher at the end of the loop turn: the server, and the process it delivers to, start on the first ones while
# this one goes on producing. Below a turn's worth of busy traffic (64 concurrent calls publish about 29 KiB per
# turn), above a few messages (each write costs the server a read and a delivery).
_WRITE_AT = 20 * 1024
_HEADER_NAMES: dict[bytes, str | None] = {}  # header names as read: the name, or None when nats-py skips it
_STATUS = 32  # the byte after "NATS/1.0" of a status message ("NATS/1.0 503")


def _header_name(raw: bytes) -> str | None:
    try:
        key = raw.strip().decode("ascii")
    except UnicodeDecodeError:
        return None  # not ASCII: not a header name
    if key and len(key.split()) != 1:
        return None  # whitespace inside the name
    return key


def _header_lines(raw: bytes) -> dict[str, str]:
    """What nats-py's parser returns for a block of ``Name: Value`` lines (names in ASCII without inner
    whitespace), with each name checked once, not on every message."""
    out: dict[str, str] = {}
    names = _HEADER_NAMES
    for line in raw.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep:
            key: Any = names.get(name, False)
            if key is False:
                key = _header_name(name)
                if len(names) < 512:
                    names[bytes(name)] = key
            if key is not None:
                out[key] = value.strip().decode("utf-8", "replace")
    return out


class _Route:
    """How the read loop itself takes the messages of one subscription (see :meth:`_Client._deliver`):
    ``accept`` is a :class:`~dynamo_nb.backends.base.RequestHandler`'s, which never waits."""

    __slots__ = ("subject", "accept", "respond")

    def __init__(self, subject: str, accept: Callable[[Msg], Accepted] | None,
                 respond: Callable[[str], Callable[[bytes], Awaitable[None]]] | None) -> None:
        self.subject = subject
        self.accept = accept
        self.respond = respond

    def failed(self, exc: BaseException) -> None:
        """As a failing callback in a subscription's task: one line per interval, not a traceback per message."""
        warn_limited(log, f"callback:{self.subject}", "subscription callback on %r failed: %s: %s", self.subject,
                     type(exc).__name__, exc)
        log.debug("subscription callback on %r failed", self.subject, exc_info=exc)

    def cancelled(self) -> None:
        if being_cancelled(default=True):
            raise asyncio.CancelledError  # the read loop itself is being cancelled
        log.warning("callback on %r was cancelled; the subscription keeps going", self.subject)


_RESPONSES = _Route("", None, None)  # nats-py's response subscription: replies go straight to their request


class _Parser(_NatsParser):
    """nats-py's protocol parser, reading the messages a server sends (MSG, HMSG) in fewer steps and handing them
    over through :meth:`_Client._deliver` (nothing to await for most). Anything else, from the first line that is
    not a whole message on, is nats-py's own parse; so is everything when the client is not on its fast paths."""

    async def parse(self, data: bytes = b"") -> None:
        buf: bytearray = self.buf
        buf.extend(data)
        nc = self.nc
        if self.state != _AWAITING_CONTROL_LINE or not nc._fast:
            return await super().parse()
        deliver = nc._deliver
        pos, size = 0, len(buf)
        try:
            while pos < size:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return  # the rest of the line has not come yet
                if buf.startswith(b"HMSG ", pos):  # HMSG <subject> <sid> [reply] <header size> <total size>
                    args = bytes(buf[pos + 5:eol]).split()
                    if len(args) == 5:
                        subject, sid, reply, head, total = args
                    elif len(args) == 4:
                        subject, sid, head, total = args
                        reply = b""
                    else:
                        break
                elif buf.startswith(b"MSG ", pos):  # MSG <subject> <sid> [reply] <size>
                    args = bytes(buf[pos + 4:eol]).split()
                    if len(args) == 4:
                        subject, sid, reply, total = args
                    elif len(args) == 3:
                        subject, sid, total = args
                        reply = b""
                    else:
                        break
                    head = b"0"
                else:
                    break
                if not (sid.isdigit() and head.isdigit() and total.isdigit()):
                    break  # nats-py's parse says what is wrong with it
                start = eol + 2
                end = start + int(total)
                if end + 2 > size:
                    return  # the rest of the message has not come yet: read again from its first line
                hsize = int(head)
                if hsize:
                    headers: bytes | None = bytes(buf[start:start + hsize])
                    start += hsize
                else:
                    headers = None
                payload = bytes(buf[start:end])
                pos = end + 2
                step = deliver(int(sid), subject, reply, payload, headers)
                if step is not None:
                    await step
                    if self.buf is not buf:
                        return  # reset meanwhile (a reconnect): the rest is of the old connection
        finally:
            if pos:
                del buf[:pos]
        await super().parse()


class _Client(NatsClient):
    """nats-py's client, with a shorter path for what every call does, on both sides.

    * Publishing while connected (:meth:`_publish_now`) appends the command nats-py would write to its pending
      buffer without awaiting anything, header names checked once; once :data:`_WRITE_AT` bytes wait, it
      writes them out itself, in order, ahead of the flusher.
    * The read loop hands a request to a :class:`~dynamo_nb.backends.base.RequestHandler` subscription, and a
      reply to the request waiting for it, as the message is read (:meth:`_deliver`): no nats-py message,
      queue and task hop per message.

    Anything else, and every state but connected, takes nats-py's own path; so does everything when nats-py's
    internals are not the ones this was written against (then ``_fast`` stays False)."""

    _fast = False  # set by :meth:`_go_fast` once connected
    _header_names: dict[str, str] = {}  # header names written so far, as ``"name: "`` ("": skipped, empty)

    def __init__(self) -> None:
        super().__init__()
        if _FAST:
            self._ps = _Parser(self)
        self._routes: dict[int, _Route] = {}  # by subscription id
        self._subjects_ok: set[str] = set()  # subjects published to so far (valid ones)

    def _go_fast(self) -> None:
        """Take the fast paths if this client has the internals they use."""
        self._fast = bool(
            _FAST and isinstance(getattr(self, "_pending", None), list)
            and isinstance(getattr(self, "_pending_data_size", None), int)
            and isinstance(getattr(self, "_flush_queue", None), asyncio.Queue)
            and isinstance(getattr(self, "_subs", None), dict) and isinstance(getattr(self, "_resp_map", None), dict)
            and isinstance(getattr(self, "stats", None), dict) and hasattr(self, "_flusher_task")
            and hasattr(self, "_max_pending_size") and hasattr(self, "_skip_subject_validation"))

    # -- publishing -------------------------------------------------------------------------------------
    def _publish_now(self, subject: str, payload: bytes, reply: str = "",
                     headers: dict[str, str] | None = None) -> bool:
        """``publish()`` without awaiting: True once sent; False (nothing sent) when ``publish()`` itself must do
        it (not connected: its errors, or its buffer while reconnecting; its pending buffer full). ``reply`` is
        not checked: it is this client's inbox. Raises what ``publish()`` raises for a bad subject, header name
        or a payload over the server's limit."""
        if not self._fast or self._status != NatsClient.CONNECTED:
            return False
        flusher = self._flusher_task
        if flusher is None or flusher.done():
            return False
        if subject not in self._subjects_ok:
            if not subject:
                raise nats.errors.BadSubjectError
            if not self._skip_subject_validation:
                _validate_subject(subject)
            if len(self._subjects_ok) >= 4096:
                self._subjects_ok.clear()
            self._subjects_ok.add(subject)
        size = len(payload)
        if size > self._max_payload:
            raise nats.errors.MaxPayloadError
        return self._append(self._command(subject, reply, payload, headers), size)

    def _reply_now(self, inbox: str, payload: bytes) -> bool:
        """:meth:`_publish_now` to a request's reply subject (as the server sent it: a valid subject)."""
        if not self._fast or self._status != NatsClient.CONNECTED:
            return False
        flusher = self._flusher_task
        if flusher is None or flusher.done():
            return False
        size = len(payload)
        if size > self._max_payload:
            raise nats.errors.MaxPayloadError
        return self._append(f"PUB {inbox}  {size}\r\n".encode() + payload + b"\r\n", size)

    def _append(self, cmd: bytes, size: int) -> bool:
        """What nats-py's ``_send_publish`` does with a command, while connected and its buffer has room."""
        waiting = self._pending_data_size + len(cmd)
        if 0 < self._max_pending_size < waiting:
            return False  # publish() waits for the flusher first
        stats = self.stats
        stats["out_msgs"] += 1
        stats["out_bytes"] += size
        pending = self._pending
        pending.append(cmd)
        if waiting >= _WRITE_AT:  # only while the socket takes all at once: else the flusher's drain paces it
            writer: Any = getattr(self._transport, "_io_writer", None)
            transport = getattr(writer, "transport", None)
            if transport is not None and not transport.is_closing() and not transport.get_write_buffer_size():
                writer.writelines(pending)
                self._pending = []
                waiting = 0
        self._pending_data_size = waiting
        if not waiting:
            return True
        kick = self._flush_queue
        if kick is not None and kick.empty():  # kick the flusher, as _send_publish does
            kick.put_nowait(asyncio.get_running_loop().create_future())
        return True

    def _command(self, subject: str, reply: str, payload: bytes, headers: dict[str, str] | None) -> bytes:
        """The bytes nats-py's ``_send_publish`` writes (``pub_cmd``, ``hpub_cmd``), in fewer steps."""
        size = len(payload)
        if headers is None:
            return f"PUB {subject} {reply} {size}\r\n".encode() + payload + b"\r\n"
        block = self._header_block(headers)
        if block.isascii():  # its length in bytes is its length (a check that costs nothing)
            n = len(block)
            return f"HPUB {subject} {reply} {n} {n + size}\r\n{block}".encode() + payload + b"\r\n"
        raw = block.encode()
        n = len(raw)
        return f"HPUB {subject} {reply} {n} {n + size}\r\n".encode() + raw + payload + b"\r\n"

    def _header_block(self, headers: dict[str, str]) -> str:
        """The header block nats-py writes: the NATS/1.0 line, ``name: value`` lines with the value stripped and
        without newlines, a blank line. Raises nats-py's BadHeaderError for an invalid name."""
        names = self._header_names
        parts = ["NATS/1.0\r\n"]
        for k, v in headers.items():
            name = names.get(k)
            if name is None:
                key = k.strip()
                if key and not _HEADER_KEY_RE.fullmatch(key):
                    raise nats.errors.BadHeaderError(key)
                name = f"{key}: " if key else ""  # an empty name: skipped
                if len(names) < 512:
                    names[k] = name
            if name:
                v = v.strip()
                if "\r" in v or "\n" in v:
                    v = v.translate(_HEADER_VALUE_NEWLINES)
                parts += (name, v, "\r\n")
        parts.append("\r\n")
        return "".join(parts)

    # -- receiving --------------------------------------------------------------------------------------
    def _route(self, sub: NatsSubscription, route: _Route) -> bool:
        """Have the read loop take ``sub``'s messages as ``route`` says; False if it cannot."""
        if not self._fast or self._subs.get(getattr(sub, "_id", -1)) is not sub or not all(
                hasattr(sub, a) for a in ("_received", "_max_msgs", "_stop_processing")) or sub._received:
            return False  # (a message already went through its queue: the next ones must not overtake it)
        self._routes[sub._id] = route
        return True

    def _unroute(self, sub: NatsSubscription) -> None:
        self._routes.pop(getattr(sub, "_id", None), None)  # type: ignore[arg-type]

    async def _init_request_sub(self) -> None:
        await super()._init_request_sub()
        sub = self._subs.get(self._sid) if self._fast else None
        if sub is not None and sub._cb == self._request_sub_callback:  # the response subscription just made
            self._route(sub, _RESPONSES)

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes) -> None:
        """nats-py's own for a subscription not routed here; else :meth:`_deliver`."""
        if sid not in self._routes:
            return await super()._process_msg(sid, subject, reply, data, headers)
        step = self._deliver(sid, subject, reply, data, headers)
        if step is not None:
            await step

    def _deliver(self, sid: int, subject: bytes, reply: bytes, data: bytes,
                 headers: bytes | None) -> Awaitable[None] | None:
        """Hand one message over, as the read loop reads it: None once done, else what to await first (nats-py's
        own ``_process_msg`` for a subscription not routed here, or the rest of a hand-over that must wait).

        For a routed subscription: what nats-py does before handing a message over (counters, auto-unsubscribe),
        then the hand-over itself without its message, queue and task."""
        route = self._routes.get(sid)
        if route is None:
            return super()._process_msg(sid, subject, reply, data, headers)  # type: ignore[arg-type]
        stats = self.stats
        stats["in_msgs"] += 1
        stats["in_bytes"] += len(data)
        sub = self._subs.get(sid)
        if sub is None:  # unsubscribed, drained or closed
            del self._routes[sid]
            return None
        sub._received += 1
        if 0 < sub._max_msgs <= sub._received:
            self._subs.pop(sid, None)
            del self._routes[sid]
            sub._stop_processing()
        if not headers:
            return self._hand(route, sid, subject, reply, data, None)
        if len(headers) > 10 and headers[8] != _STATUS:
            return self._hand(route, sid, subject, reply, data, _header_lines(headers[10:]) or None)
        return self._hand_status(route, sid, subject, reply, data, headers)  # a status: nats-py reads it

    async def _hand_status(self, route: _Route, sid: int, subject: bytes, reply: bytes, data: bytes,
                           headers: bytes) -> None:
        step = self._hand(route, sid, subject, reply, data, await self._process_headers(headers))
        if step is not None:
            await step

    def _hand(self, route: _Route, sid: int, subject: bytes, reply: bytes, data: bytes,
              hdr: dict[str, str] | None) -> Awaitable[None] | None:
        if route is _RESPONSES:  # as _request_sub_callback
            future = self._resp_map.get(subject[len(self._inbox_prefix) + 24:].decode())
            if future is not None and not future.done():
                future.set_result(self._build_message(sid, subject, reply, data, hdr))
            return None
        return self._take(route, subject, reply, data, hdr)

    def _take(self, route: _Route, subject: bytes, reply: bytes, data: bytes,
              hdr: dict[str, str] | None) -> Awaitable[None] | None:
        """What :class:`~dynamo_nb.backends.base.RequestHandler` does as a callback: accept, reply, start; a reply
        that cannot be sent at once is left to :meth:`_reply_later`. A failure is logged, as from the
        subscription's task: nothing here raises into the read loop."""
        assert route.accept is not None and route.respond is not None
        inbox = reply.decode() if reply else ""
        msg = Msg(subject.decode(), data, inbox, route.respond(inbox) if inbox else None, hdr)
        try:
            answer, start = route.accept(msg)
        except Exception as exc:
            route.failed(exc)
            return None
        except asyncio.CancelledError:
            route.cancelled()
            return None
        if answer is not None and inbox:
            try:
                sent = self._reply_now(inbox, answer)
            except Exception:
                sent = False  # publish() raises it again, as the callback saw it
            if not sent:
                return self._reply_later(route, msg, answer, start)
        if start is not None:
            try:
                start()
            except Exception as exc:
                route.failed(exc)
            except asyncio.CancelledError:
                route.cancelled()
        return None

    async def _reply_later(self, route: _Route, msg: Msg, answer: bytes, start: Callable[[], None] | None) -> None:
        try:
            try:
                await msg.respond(answer)
            finally:
                if start is not None:
                    start()
        except Exception as exc:
            route.failed(exc)
        except asyncio.CancelledError:
            route.cancelled()

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:  # nats-py's own path (other subscriptions)
        return _header_lines(raw)


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
        conn = getattr(self._sub, "_conn", None)
        if isinstance(conn, _Client):
            conn._unroute(self._sub)
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
        self._publish_now: Callable[..., bool] = getattr(nc, "_publish_now", _not_now)
        self._closed = False
        self._authenticated = authenticated
        self.disconnects = 0
        self.reconnects = 0
        self.reconnected_at = float("-inf")  # loop time of the last reconnect
        self.no_responder_retries = 0  # "no responders" answers retried while a cluster's interest settled
        self.permission_violations: deque[PermissionViolation] = deque(maxlen=100)  # the latest refusals
        self._warned_subjects: set[tuple[str, str]] = set()
        self._tokens = itertools.count(1)  # reply tokens of :meth:`_prepare_request`, unique per connection
        self._inbox: tuple[Any, str] = (None, "")  # nats-py's response prefix, and it as text
        self._timeouts: _Timeouts | None = None  # of :meth:`_prepare_request`

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
        nc._go_fast()
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
            if reply or not self._publish_now(subject, data):
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
        if isinstance(cb, RequestHandler) and isinstance(self._nc, _Client):  # the read loop runs it (see _Client)
            self._nc._route(sub, _Route(subject, cb.accept, respond))
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
        m = await self._request(subject, data, timeout, headers, accept_early)
        return Msg(m.subject, m.data)

    async def request_data(self, subject: str, data: bytes, timeout: float,
                           headers: dict[str, str] | None = None,
                           accept_early: AcceptEarly | None = None) -> bytes:
        """:meth:`request`, answered with the reply's bytes alone: what a request plane's ack is, with no
        message made for it."""
        return (await self._request(subject, data, timeout, headers, accept_early)).data

    async def _request(self, subject: str, data: bytes, timeout: float, headers: dict[str, str] | None,
                       accept_early: AcceptEarly | None) -> NatsMsg:
        self._check_open()
        nc, loop = self._nc, asyncio.get_running_loop()
        since, start = time.monotonic(), loop.time()
        deadline = start + timeout
        pause = 0.01
        while True:
            try:
                remaining = max(0.001, deadline - loop.time())
                prepared = self._prepare_request(remaining, accept_early, loop)
                if prepared is None and getattr(nc, "_resp_sub_prefix", 0) is None:
                    await nc._init_request_sub()  # the first request makes nats-py's response subscription
                    prepared = self._prepare_request(remaining, accept_early, loop)
                if prepared is None:  # not the nats-py this was written against: its own request
                    return await nc.request(subject, data, timeout=remaining, headers=headers)
                future, token, due, inbox = prepared
                try:
                    if not self._publish_now(subject, data, inbox, headers):
                        await nc.publish(subject, data, reply=inbox, headers=headers)  # reconnecting: buffered
                    m = await future
                finally:
                    due.discard(future)
                    if accept_early is not None:
                        accept_early(None)
                    nc._resp_map.pop(token, None)  # a reply after an early accept finds no taker
                if m.headers and m.headers.get("Status") == _NO_RESPONDERS_STATUS:
                    raise nats.errors.NoRespondersError
                return m
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

    def _prepare_request(self, timeout: float, accept_early: AcceptEarly | None, loop: asyncio.AbstractEventLoop
                         ) -> "tuple[asyncio.Future[NatsMsg], str, set[asyncio.Future[Any]], str] | None":
        """A request on nats-py's own response subscription, before it is published: its reply's future (timed
        out after ``timeout``, ended early by ``accept_early``), token, timeout slot and reply subject. A counter
        instead of random bytes for the token, and a slot instead of ``wait_for``: the same messages as
        ``nc.request()`` for a third of its cost. None until that subscription exists, or where nats-py's
        internals are not the ones this was written against."""
        nc = self._nc
        prefix, resp_map = getattr(nc, "_resp_sub_prefix", None), getattr(nc, "_resp_map", None)
        if not prefix or not isinstance(resp_map, dict):
            return None
        known, text = self._inbox
        if known is not prefix:
            text = bytes(prefix).decode()
            self._inbox = (prefix, text)
        token = f"{next(self._tokens):x}"
        future: asyncio.Future[NatsMsg] = loop.create_future()
        resp_map[token] = future
        timeouts = self._timeouts
        if timeouts is None or timeouts.loop is not loop:
            timeouts = self._timeouts = _Timeouts(loop)
        due = timeouts.add(future, timeout)
        if accept_early is not None:
            accept_early(functools.partial(_accept, future))
        return future, token, due, text + token

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
        # Connected again but not yet reconnected as far as nats-py's callback goes (it comes after a round trip,
        # and a reply read meanwhile reaches its request first): NATS came back just now.
        since = 0.0 if self.disconnects > self.reconnects else asyncio.get_running_loop().time() - self.reconnected_at
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
