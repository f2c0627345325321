"""An in-process NATS: token subjects with ``*``/``>`` wildcards, queue groups, request/reply, no-responders."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from typing import Any, Awaitable, Callable, Coroutine

from ...errors import BackendTimeoutError, NoRespondersError, PayloadTooLargeError, RuntimeClosedError
from ...ratelog import warn_limited
from ..base import AcceptEarly, Msg, RequestHandler
from .channel import Channel
from .sublist import SubList

__all__ = ["EmbeddedNats", "EmbeddedMessaging", "subject_matches", "DEFAULT_MAX_PAYLOAD"]

log = logging.getLogger(__name__)

DEFAULT_MAX_PAYLOAD = 1024 * 1024  # nats-server's default max_payload
_INBOX_PREFIX = "_INBOX.embedded."  # where requests wait for their replies, one numbered inbox each


def _check_subject(subject: str, *, wildcards: bool) -> None:
    if not isinstance(subject, str) or not subject:
        raise ValueError(f"invalid subject {subject!r}: must be a non-empty str")
    if any(c.isspace() for c in subject):
        raise ValueError(f"invalid subject {subject!r}: whitespace is not allowed")
    tokens = subject.split(".")
    if any(not t for t in tokens):
        raise ValueError(f"invalid subject {subject!r}: empty token")
    if not wildcards and any(t in ("*", ">") for t in tokens):
        raise ValueError(f"invalid subject {subject!r}: wildcards are only for subscriptions")
    if wildcards and ">" in tokens[:-1]:
        raise ValueError(f"invalid subject {subject!r}: '>' must be the last token")


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS matching: ``*`` is one token, ``>`` one or more trailing tokens.

    >>> subject_matches("namespace.dynamo.>", "namespace.dynamo.component.a.kv")
    True
    >>> subject_matches("a.*.c", "a.b.c"), subject_matches("a.*", "a.b.c")
    (True, False)
    """
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


class _Sub:
    """A subscription; messages are handled one at a time, in order, by its own task.

    A callback that never waits (a served instance's requests) runs as the message is published, in order, one
    at a time, as the task would run it: such a subscription needs no task, which spares a task, its inbox and
    their futures for each of the thousands of endpoints one runtime may serve.
    """

    def __init__(self, bus: "EmbeddedNats", conn: "EmbeddedMessaging", subject: str, queue: str,
                 cb: Callable[[Msg], Awaitable[None]]) -> None:
        self.subject = subject
        self.queue = queue
        self.conn = conn
        self._bus = bus
        self._cb = cb
        self.delivered = 0
        self._accept = cb.accept if isinstance(cb, RequestHandler) else None
        self._inbox: Channel[Msg | None] | None = None
        self._task: asyncio.Task[None] | None = None
        if self._accept is None:
            self._inbox = Channel()
            self._task = asyncio.get_running_loop().create_task(self._pump(self._inbox), name=f"sub:{subject}")

    def deliver(self, msg: Msg) -> None:
        self.delivered += 1
        accept = self._accept
        if accept is None:
            assert self._inbox is not None
            self._inbox.put(msg)
            return
        try:
            answer, start = accept(msg)
        except Exception as exc:  # as in the task: a failing callback must not break the publisher
            self._failed(exc)
            return
        try:
            if answer is not None and msg.reply:
                self._bus.publish(msg.reply, answer)
        finally:
            if start is not None:
                start()

    def take(self, msg: Msg) -> bytes | None:
        """A request handed straight to an accepting callback: its reply (None: it sends none), what the
        callback starts once the reply is on its way being started before this returns."""
        self.delivered += 1
        try:
            answer, start = self._accept(msg)  # type: ignore[misc]  # only called on accepting subscriptions
        except Exception as exc:  # as in deliver()
            self._failed(exc)
            return None
        try:
            if answer is not None and len(answer) > self._bus.max_payload:
                raise PayloadTooLargeError(len(answer), self._bus.max_payload)
        finally:
            if start is not None:
                start()
        return answer

    async def _pump(self, inbox: "Channel[Msg | None]") -> None:
        while True:
            msg = await inbox.get()
            if msg is None:
                return
            try:
                await self._cb(msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failing callback must not kill the subscription (as in nats-py)
                self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        warn_limited(log, f"callback:{self.subject}", "subscription callback on %r failed: %s: %s",
                     self.subject, type(exc).__name__, exc)
        log.debug("subscription callback on %r failed", self.subject, exc_info=exc)

    async def unsubscribe(self) -> None:
        self.conn._subs.discard(self)
        if self._bus._remove(self) and self._inbox is not None:
            self._inbox.put(None)


class EmbeddedNats:
    """The message bus shared by every runtime of one embedded world."""

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._subs: dict[_Sub, None] = {}  # in subscription order
        self._sublist: SubList[_Sub] = SubList()
        self._match_cache: dict[str, list[_Sub]] = {}  # answers per subject until the next (un)subscribe
        self._replies: dict[str, asyncio.Future[Msg]] = {}
        self._inbox_ids = itertools.count(1)
        self.published = 0

    def subscriptions(self) -> list[tuple[str, str]]:
        """(subject, queue) of every live subscription: what a diagram or test inspects."""
        return [(s.subject, s.queue) for s in self._subs]

    def _add(self, sub: _Sub) -> None:
        self._subs[sub] = None
        self._sublist.insert(sub.subject, sub)
        self._match_cache.clear()

    def _remove(self, sub: _Sub) -> bool:
        if self._subs.pop(sub, False) is False:
            return False
        self._sublist.remove(sub.subject, sub)
        self._match_cache.clear()
        return True

    def _matching(self, subject: str) -> list[_Sub]:
        """The subscriptions a message on ``subject`` reaches, in subscription order (a trie walk, cached)."""
        subs = self._match_cache.get(subject)
        if subs is None:
            _check_subject(subject, wildcards=False)
            subs = self._sublist.match(subject)
            if len(self._match_cache) > 4096:
                self._match_cache.clear()
            self._match_cache[subject] = subs
        return subs

    def publish(self, subject: str, data: bytes, reply: str = "", headers: dict[str, str] | None = None) -> int:
        """Deliver to every plain subscriber and one member per queue group; returns deliveries."""
        if len(data) > self.max_payload:
            raise PayloadTooLargeError(len(data), self.max_payload)
        future = self._replies.pop(subject, None)
        if future is not None:
            if not future.done():
                future.set_result(Msg(subject, bytes(data)))
            return 1
        self.published += 1
        subs = self._matching(subject)
        if len(subs) == 1:  # one subscriber (a served instance's subject): it gets the message, queue or not
            only = subs[0]
            if only._accept is not None:  # answered as delivered (below): the message needs no respond()
                only.deliver(Msg(subject, bytes(data), reply, None, headers))
            else:
                only.deliver(self._message(subject, data, reply, headers))
            return 1
        if not subs:
            return 0
        groups: dict[str, list[_Sub]] = {}
        count = 0
        for sub in subs:
            if sub.queue:
                groups.setdefault(sub.queue, []).append(sub)
            else:
                sub.deliver(self._message(subject, data, reply, headers))
                count += 1
        for members in groups.values():
            member = members[0] if len(members) == 1 else random.choice(members)
            member.deliver(self._message(subject, data, reply, headers))
            count += 1
        return count

    def _message(self, subject: str, data: bytes, reply: str, headers: dict[str, str] | None = None) -> Msg:
        if not reply:
            return Msg(subject, bytes(data), headers=headers)

        async def respond(answer: bytes) -> None:
            self.publish(reply, answer)

        return Msg(subject, bytes(data), reply, respond, headers)

    async def request(self, subject: str, data: bytes, timeout: float,
                      headers: dict[str, str] | None = None, accept_early: AcceptEarly | None = None) -> Msg:
        """(``accept_early`` is not needed: a served instance acks as the request is delivered.)"""
        inbox = self._new_inbox()
        return Msg(inbox, await self.exchange(subject, data, timeout, headers, inbox))

    async def exchange(self, subject: str, data: bytes, timeout: float, headers: dict[str, str] | None = None,
                       inbox: str = "") -> bytes:
        """The reply to one request: what :meth:`request` returns, without the message around it.

        A served instance's subject (its one subscriber accepts requests as they are delivered) is asked directly:
        the reply is what its callback returns, with no inbox future waiting for it to be published.
        """
        if not inbox:
            inbox = f"{_INBOX_PREFIX}{next(self._inbox_ids)}"
        if len(data) > self.max_payload:
            raise PayloadTooLargeError(len(data), self.max_payload)
        subs = self._match_cache.get(subject)
        if subs is None:
            subs = self._matching(subject)
        if len(subs) == 1 and subs[0]._accept is not None and subject not in self._replies:
            self.published += 1
            answer = subs[0].take(Msg(subject, bytes(data), inbox, None, headers))
            if answer is not None:
                return answer
            return await self._reply_to(inbox, subject, timeout, data=None)  # none comes: it times out
        return await self._reply_to(inbox, subject, timeout, data, headers)

    async def _reply_to(self, inbox: str, subject: str, timeout: float, data: bytes | None,
                        headers: dict[str, str] | None = None) -> bytes:
        """Wait for the reply published on ``inbox`` (after publishing the request ``data``, unless None)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Msg] = loop.create_future()
        self._replies[inbox] = future
        try:
            if data is not None and self.publish(subject, data, reply=inbox, headers=headers) == 0:
                raise NoRespondersError(subject)
            if future.done():  # answered as it was delivered (a served instance's ack): no timer needed
                return future.result().data
            timer = loop.call_later(timeout, _expire, future, subject, timeout)
            try:
                return (await future).data
            finally:
                timer.cancel()
        finally:
            self._replies.pop(inbox, None)

    def _new_inbox(self) -> str:
        return f"{_INBOX_PREFIX}{next(self._inbox_ids)}"


def _expire(future: "asyncio.Future[Msg]", subject: str, timeout: float) -> None:
    if not future.done():
        future.set_exception(BackendTimeoutError(f"no reply on {subject!r} within {timeout} s"))


class EmbeddedMessaging:
    """One runtime's connection to the embedded bus; closing it drops its subscriptions."""

    def __init__(self, bus: EmbeddedNats) -> None:
        self.bus = bus
        self.url = "embedded://nats"
        self.max_payload = bus.max_payload
        self._subs: set[_Sub] = set()
        self._closed = False

    def _live(self) -> EmbeddedNats:
        if self._closed:
            raise RuntimeClosedError("messaging connection is closed")
        return self.bus

    async def publish(self, subject: str, data: bytes, reply: str = "") -> None:
        self._live().publish(subject, data, reply)

    async def subscribe(self, subject: str, cb: Callable[[Msg], Awaitable[None]], queue: str = "") -> _Sub:
        bus = self._live()
        _check_subject(subject, wildcards=True)
        sub = _Sub(bus, self, subject, queue, cb)
        bus._add(sub)
        self._subs.add(sub)
        return sub

    def request(self, subject: str, data: bytes, timeout: float,
                headers: dict[str, str] | None = None,
                accept_early: AcceptEarly | None = None) -> Coroutine[Any, Any, Msg]:
        """The bus's own request (this returns its coroutine: one frame fewer on every call)."""
        return self._live().request(subject, data, timeout, headers)

    def ask(self, subject: str, data: bytes, timeout: float,
            headers: dict[str, str] | None = None) -> Coroutine[Any, Any, bytes]:
        """:meth:`request`'s reply payload, for the request plane (the bus's coroutine, as in :meth:`request`)."""
        return self._live().exchange(subject, data, timeout, headers)

    async def flush(self) -> None:
        await asyncio.sleep(0)

    def outage(self) -> None:
        """The embedded bus is never out of reach."""
        return None

    async def close(self) -> None:
        self._closed = True
        for sub in tuple(self._subs):
            await sub.unsubscribe()
        self._subs.clear()
