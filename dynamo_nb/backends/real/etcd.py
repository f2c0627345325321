"""Discovery over a real etcd v3 cluster: aetcd's gRPC stubs on blocking-API gRPC channels, bridged to asyncio.

Why not ``aetcd.Client``: it opens only insecure channels (Dynamo's ``ETCD_AUTH_CA`` / ``ETCD_AUTH_CLIENT_CERT`` /
``ETCD_AUTH_CLIENT_KEY`` need TLS), and it is built on ``grpc.aio``, whose completion queue is shared by every
event loop of the process: completions of calls made on a loop that has since closed (``asyncio.run`` twice, a
test suite's loop per test) are handed to the next loop, fail there with "Event loop is closed" and take other
calls' completions down with them — a watch then never wakes up. The blocking gRPC API has no loop affinity: unary
calls run as gRPC futures whose results are posted to the caller's loop, and each prefix watch reads its stream on
a small daemon thread of its own.

Several endpoints (``ETCD_ENDPOINTS=http://a:2379,http://b:2379,...``, by IP or host name) are the members of one
cluster, as etcd's own client treats them: one channel per member, calls go to the current one, and a call that
finds it gone (refused, no leader, no answer in its share of the deadline) moves on to the next member and is
retried there within the same deadline. A watch whose member dies resumes on another member from the revision
after the last event it delivered, so nothing is missed; lease keep-alives fail over the same way.

Every call has a deadline, a refused connection fails at once instead of waiting for the channel, and a watch
*ends* (raises) only when no member takes it back, so the shared watcher then re-reads from its last revision
(``core/registry.py``), as etcd's own clients do.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Iterator, Mapping, Sequence
from urllib.parse import urlsplit

import grpc
from aetcd import rpc
from aetcd.utils import prefix_range_end

from ...errors import (BackendError, BackendUnavailableError, CertificateError, ConfigurationError,
                       LeaseExpiredError, RuntimeClosedError)
from ..base import KeyValue, WatchEvent
from .tls import check_tls_material, is_certificate_failure
from .urls import split_credentials

__all__ = ["EtcdDiscovery", "EtcdWatch", "EtcdEndpoint", "parse_etcd_endpoints", "etcd_auth_from_env"]

log = logging.getLogger(__name__)

_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    # A restarted etcd is found again within half a second, not after gRPC's default back-off of up to two minutes.
    # (Not grpc.min_reconnect_backoff_ms: it is also the floor of a connection attempt's own timeout, and a
    # TLS handshake with a distant etcd may well need more than a few hundred milliseconds.)
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    # Notice a dead peer on an idle-looking watch stream (etcd allows pings every 5 s or slower).
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    # etcd is reached directly; an http_proxy meant for the web must not capture it.
    ("grpc.enable_http_proxy", 0),
]
# Answers that say "this member cannot serve you now" (gone, no leader, leader changed, frozen): try another.
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_MIN_ATTEMPT = 0.5  # seconds: the least share of a deadline one member gets before the next is tried
_RETRY_PAUSE = (0.02, 0.25)  # first and longest pause between two attempts (an election takes ~0.1-1 s)


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """Run ``callback`` on ``loop`` from a gRPC thread; a loop that has closed meanwhile is ignored."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        pass


def _settle(call: Any, result: "asyncio.Future[Any]") -> None:
    if result.done():
        return
    try:
        result.set_result(call.result())
    except grpc.FutureCancelledError:
        result.cancel()
    except grpc.RpcError as exc:
        result.set_exception(exc)


async def _await_call(call: Any) -> Any:
    """Await a gRPC future on the running loop; cancelling the awaiting task cancels the RPC."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[Any] = loop.create_future()
    call.add_done_callback(lambda c: _post(loop, _settle, c, result))
    try:
        return await result
    except asyncio.CancelledError:
        call.cancel()
        raise


def _code(exc: BaseException) -> Any:
    return exc.code() if isinstance(exc, grpc.RpcError) and hasattr(exc, "code") else None


def _details(exc: grpc.RpcError) -> str:
    return (exc.details() if hasattr(exc, "details") else "") or ""


@dataclass(frozen=True)
class EtcdEndpoint:
    """One etcd client URL, split; ``url`` never holds the credentials a URL may carry (they are kept apart)."""

    url: str
    host: str
    port: int
    tls: bool
    username: str | None = field(default=None, repr=False, compare=False)
    password: str | None = field(default=None, repr=False, compare=False)

    @property
    def target(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_etcd_endpoints(endpoints: str | Sequence[str]) -> list[EtcdEndpoint]:
    """``"http://a:2379,https://b:2379"``, a list of URLs, or bare ``host:port`` → endpoints.

    >>> [e.target for e in parse_etcd_endpoints("http://127.0.0.1:2379, localhost:3379")]
    ['127.0.0.1:2379', 'localhost:3379']
    """
    items = endpoints.split(",") if isinstance(endpoints, str) else [str(e) for e in endpoints]
    out: list[EtcdEndpoint] = []
    for raw in (item.strip() for item in items):
        if not raw:
            continue
        text, username, password = split_credentials(raw if "://" in raw else f"http://{raw}")
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"bad etcd endpoint {text!r}: expected http(s)://host:port")
        try:
            port = parts.port or 2379
        except ValueError:
            raise ValueError(f"bad etcd endpoint {text!r}: bad port") from None
        out.append(EtcdEndpoint(text, parts.hostname, port, parts.scheme == "https", username, password))
    if not out:
        raise ValueError(f"no etcd endpoint in {endpoints!r}")
    return out


def etcd_auth_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Credentials from Dynamo's ``ETCD_AUTH_*`` variables: username/password and TLS file contents."""
    env = os.environ if env is None else env
    auth: dict[str, Any] = {}
    if env.get("ETCD_AUTH_USERNAME") or env.get("ETCD_AUTH_PASSWORD"):
        auth["username"] = env.get("ETCD_AUTH_USERNAME", "")
        auth["password"] = env.get("ETCD_AUTH_PASSWORD", "")
    for var, key in (("ETCD_AUTH_CA", "ca"), ("ETCD_AUTH_CLIENT_CERT", "cert"), ("ETCD_AUTH_CLIENT_KEY", "key")):
        path = env.get(var)
        if path:
            try:
                with open(path, "rb") as f:
                    auth[key] = f.read()
            except OSError as exc:
                raise ValueError(f"{var}={path!r} cannot be read: {exc}") from exc
    return auth


def _url_credentials(endpoints: list[EtcdEndpoint], auth: dict[str, Any]) -> dict[str, Any]:
    """``auth`` with the user and password a URL carries: used, never dropped; conflicting ones refused."""
    found = {(e.username, e.password or "") for e in endpoints if e.username is not None}
    if not found:
        return auth
    url = ",".join(e.url for e in endpoints)
    if len(found) > 1:
        raise ConfigurationError(f"etcd endpoints {url} carry different credentials; give one user for all")
    (username, password), = found
    if auth.get("username") is not None and (auth["username"], auth.get("password", "")) != (username, password):
        raise ConfigurationError(f"etcd at {url}: the URL names user {username!r} but ETCD_AUTH_USERNAME/PASSWORD "
                                 "say otherwise; give the credentials once")
    return {**auth, "username": username, "password": password}


class _Member:
    """One member's gRPC channel (by its own host name, so TLS checks that name) and the stubs on it."""

    def __init__(self, endpoint: EtcdEndpoint, credentials: grpc.ChannelCredentials | None) -> None:
        self.endpoint = endpoint
        if credentials is not None:
            self.channel = grpc.secure_channel(endpoint.target, credentials, options=_CHANNEL_OPTIONS)
        else:
            self.channel = grpc.insecure_channel(endpoint.target, options=_CHANNEL_OPTIONS)
        self.kv = rpc.KVStub(self.channel)
        self.lease = rpc.LeaseStub(self.channel)
        self.watch = rpc.WatchStub(self.channel)
        self.auth = rpc.AuthStub(self.channel)

    @property
    def url(self) -> str:
        return self.endpoint.url

    def close(self) -> None:
        self.channel.close()


_END = object()  # request-stream terminator / end-of-responses marker


class _WatchStream:
    """One gRPC watch stream on one member, read by a daemon thread that posts what it reads to the loop."""

    def __init__(self, watch: "EtcdWatch", member: _Member, start_revision: int) -> None:
        self.member = member
        self.start_revision = start_revision
        self._watch = watch
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._responses: Any = None
        self.created: asyncio.Future[Any] = watch._loop.create_future()

    def _request_stream(self) -> Iterator[Any]:
        while True:
            request = self._requests.get()
            if request is _END:
                return
            yield request

    def start(self, metadata: Any) -> None:
        key = self._watch.prefix.encode()
        # the empty prefix is the whole keyspace ("\0".."\0"); prefix_range_end(b"") would name one empty key
        key, end = (key, prefix_range_end(key)) if key else (b"\0", b"\0")
        create = rpc.WatchCreateRequest(key=key, range_end=end, start_revision=max(0, self.start_revision))
        self._requests.put(rpc.WatchRequest(create_request=create))
        self._responses = self.member.watch.Watch(self._request_stream(), metadata=metadata)
        threading.Thread(target=self._pump, name=f"etcd-watch:{self._watch.prefix}", daemon=True).start()

    def _pump(self) -> None:
        loop = self._watch._loop
        try:
            for response in self._responses:
                _post(loop, self._watch._on_response, self, response)
        except grpc.RpcError as exc:
            _post(loop, self._watch._on_end, self, exc)
        except Exception as exc:  # never let the thread die silently
            _post(loop, self._watch._on_end, self, exc)
        else:
            _post(loop, self._watch._on_end, self, None)
        finally:
            self._requests.put(_END)  # releases gRPC's thread that feeds the request stream

    def stop(self) -> None:
        self._requests.put(_END)
        if self._responses is not None:
            self._responses.cancel()


class EtcdWatch:
    """One prefix watch, read on a daemon thread and delivered to the caller's loop, resumed across members.

    When the stream breaks (its member died or shut down), the watch reopens on another member from the revision
    after the last event it delivered, so the caller sees every event once, in order. Iterating ends when the
    watch is cancelled, and raises when no member takes it back in time (or etcd compacted past it): the caller
    then re-reads and watches again.
    """

    def __init__(self, discovery: "EtcdDiscovery", prefix: str, start_revision: int) -> None:
        self.prefix = prefix
        self.start_revision = start_revision
        self.next_revision = start_revision  # where a resumed stream starts (0: from now)
        self.watch_id = -1
        self.events_seen = 0
        self.resumes = 0
        self._discovery = discovery
        self._loop = asyncio.get_running_loop()
        self._stream: _WatchStream | None = None
        self._items: asyncio.Queue[Any] = asyncio.Queue()
        self._cancelled = False

    # -- from the reading thread (posted to the loop) ------------------------------------------------
    def _on_response(self, stream: _WatchStream, response: Any) -> None:
        if not stream.created.done():
            stream.created.set_result(response)
        elif stream is self._stream:
            self._items.put_nowait((stream, response))

    def _on_end(self, stream: _WatchStream, error: BaseException | None) -> None:
        if not stream.created.done():
            stream.created.set_exception(error or BackendUnavailableError(
                "etcd", stream.member.url, f"watch on {self.prefix!r} closed while being created"))
        elif stream is self._stream:
            self._items.put_nowait((stream, error if error is not None else _END))

    # -- opening ---------------------------------------------------------------------------------------
    async def _open(self, timeout: float) -> None:
        """Open the stream on the current member, failing over to the others until ``timeout`` runs out."""
        d = self._discovery
        loop = self._loop
        deadline = loop.time() + timeout
        pause = _RETRY_PAUSE[0]
        while True:
            member = d._current_member()
            share = max(_MIN_ATTEMPT, timeout / len(d._members))
            try:
                await self._open_on(member, min(share, max(0.05, deadline - loop.time())))
                return
            except grpc.RpcError as exc:
                if _code(exc) not in _UNREACHABLE or not d._may_retry(deadline, pause):
                    raise d._map_error(exc, f"watch on {self.prefix!r}") from None
            except BackendUnavailableError:
                if not d._may_retry(deadline, pause):
                    raise
            d._failover(member, f"watch on {self.prefix!r}")
            await asyncio.sleep(pause)
            pause = min(pause * 2, _RETRY_PAUSE[1])

    async def _open_on(self, member: _Member, timeout: float) -> None:
        d = self._discovery
        stream = _WatchStream(self, member, self.next_revision)
        self._stream = stream
        stream.start(d._metadata)
        # A timer instead of asyncio.wait_for, which (before Python 3.12) can swallow a cancellation that
        # arrives as the answer does; the caller's task must stay cancellable here.
        timer = self._loop.call_later(timeout, self._creation_timed_out, stream, timeout)
        try:
            response = await stream.created
        except BaseException:
            stream.stop()
            raise
        finally:
            timer.cancel()
        if response.compact_revision:
            stream.stop()
            raise BackendError(f"etcd: revision {self.next_revision} of {self.prefix!r} is compacted "
                               f"(oldest kept: {response.compact_revision}); re-read and watch again")
        if not response.created or response.canceled:
            stream.stop()
            raise BackendError(f"etcd refused a watch on {self.prefix!r}: {response.cancel_reason or 'canceled'}")
        self.watch_id = response.watch_id
        if self.next_revision <= 0:  # "from now": a resumed stream must start right after this revision
            self.next_revision = int(response.header.revision) + 1
        if response.events:
            self._items.put_nowait((stream, response))

    def _creation_timed_out(self, stream: _WatchStream, timeout: float) -> None:
        if not stream.created.done():
            stream.created.set_exception(BackendUnavailableError(
                "etcd", stream.member.url, f"watch on {self.prefix!r} not created within {timeout:.2g} s"))

    async def _resume(self, stream: _WatchStream, cause: object) -> None:
        """The stream broke: reopen from ``next_revision`` on another member (raises if none takes it)."""
        d = self._discovery
        why = "stream ended" if cause is _END else (_details(cause) if isinstance(cause, grpc.RpcError) else
                                                    repr(cause))
        d._failover(stream.member, f"watch on {self.prefix!r} ({why})")
        try:
            await self._open(d.request_timeout)
        except BackendError as exc:
            raise BackendUnavailableError("etcd", d.url, f"watch stream on {self.prefix!r} ended ({why}) and "
                                          f"could not be resumed: {exc}") from None
        self.resumes += 1
        log.info("etcd watch on %r resumed on %s from revision %d", self.prefix, self._stream and
                 self._stream.member.url, self.next_revision)

    # -- consuming -------------------------------------------------------------------------------------
    async def __aiter__(self) -> AsyncIterator[WatchEvent]:
        while not self._cancelled:
            stream, item = await self._items.get()
            if self._cancelled:
                return
            if stream is not self._stream:
                continue  # left over from a stream that was replaced
            if item is _END or isinstance(item, BaseException):
                if isinstance(item, BaseException) and not isinstance(item, grpc.RpcError):
                    raise BackendError(f"etcd watch on {self.prefix!r} failed: {item!r}") from item
                code = None if item is _END else _code(item)  # type: ignore[arg-type]
                resumable = item is _END or code in _UNREACHABLE or code == grpc.StatusCode.CANCELLED
                if resumable and stream is not None and len(self._discovery._members) > 1:
                    await self._resume(stream, item)
                    continue
                if item is _END:
                    raise BackendUnavailableError("etcd", self._discovery.url,
                                                  f"watch stream on {self.prefix!r} ended")
                raise self._discovery._map_error(item, f"watch on {self.prefix!r}") from None
            if item.compact_revision:
                raise BackendError(f"etcd compacted past the watch on {self.prefix!r} "
                                   f"(oldest kept: {item.compact_revision}); re-read and watch again")
            for event in item.events:
                converted = self._convert(event)
                self.next_revision = max(self.next_revision, converted.revision + 1)
                yield converted
            if item.canceled:
                raise BackendError(f"etcd cancelled the watch on {self.prefix!r}: {item.cancel_reason}")

    def _convert(self, event: Any) -> WatchEvent:
        self.events_seen += 1
        kv = event.kv
        if event.type == rpc.Event.DELETE:
            return WatchEvent("delete", kv.key.decode(), b"", kv.mod_revision)
        return WatchEvent("put", kv.key.decode(), kv.value, kv.mod_revision)

    async def cancel(self) -> None:
        if self._cancelled:
            return
        self._cancelled = True
        self._discovery._watches.discard(self)
        if self._stream is not None:
            self._stream.stop()
        self._items.put_nowait((None, _END))

    def __repr__(self) -> str:
        state = "cancelled" if self._cancelled else "live"
        return (f"EtcdWatch({self.prefix!r}, from={self.start_revision}, {state}, events={self.events_seen}"
                + (f", resumed {self.resumes}x" if self.resumes else "") + ")")


class EtcdDiscovery:
    """One process's etcd connection, as the object model's :class:`~dynamo_nb.backends.base.Discovery`."""

    def __init__(self, endpoints: list[EtcdEndpoint], *, username: str | None = None, password: str | None = None,
                 ca: bytes | None = None, cert: bytes | None = None, key: bytes | None = None,
                 request_timeout: float = 5.0) -> None:
        self.endpoints = endpoints
        self.url = ",".join(e.url for e in endpoints)
        self.request_timeout = request_timeout
        self.failovers = 0  # times a call, watch or keep-alive moved on to another member
        self._username = username
        self._password = password
        self._tls = any(e.tls for e in endpoints) or bool(ca or cert or key)
        if ca or cert or key:  # before gRPC sees them: half a key pair aborts the process inside gRPC
            check_tls_material(self.url, ca, cert, key)
        self._ca, self._cert, self._key = ca, cert, key
        self._metadata: tuple[tuple[str, str], ...] | None = None
        self._members: list[_Member] = []
        self._current = 0
        self._watches: set[EtcdWatch] = set()
        self._closed = False

    @property
    def current_url(self) -> str:
        """The member calls go to now."""
        return self.endpoints[self._current].url

    # -- connecting ---------------------------------------------------------------------------------
    @classmethod
    async def connect(cls, endpoints: str | Sequence[str], *, connect_timeout: float = 5.0,
                      auth: dict[str, Any] | None = None, request_timeout: float = 5.0) -> "EtcdDiscovery":
        """Open a channel per member and make one call; :class:`BackendUnavailableError` if no member answers."""
        parsed = parse_etcd_endpoints(endpoints)
        discovery = cls(parsed, request_timeout=request_timeout, **_url_credentials(parsed, dict(auth or {})))
        try:
            await discovery._open(connect_timeout)
        except BaseException:
            await discovery.close()
            raise
        return discovery

    async def _open(self, timeout: float) -> None:
        creds = None
        if self._tls:
            creds = grpc.ssl_channel_credentials(root_certificates=self._ca, private_key=self._key,
                                                 certificate_chain=self._cert)
        self._members = [_Member(e, creds) for e in self.endpoints]
        if self._username is not None:
            await self._authenticate(timeout)
            return  # an answer to Authenticate is proof enough that etcd is there
        ping = rpc.RangeRequest(key=b"\0dynamo_nb/ping", limit=1, serializable=True)
        try:
            await self._call(lambda m, t: m.kv.Range.future(ping, timeout=t), "connect", timeout, raw=True)
        except grpc.RpcError:
            pass  # any other answer (permission denied, ...) still proves the server is reachable

    async def _authenticate(self, timeout: float) -> None:
        request = rpc.AuthenticateRequest(name=self._username, password=self._password or "")
        try:
            resp = await self._call(lambda m, t: m.auth.Authenticate.future(request, timeout=t), "authenticate",
                                    timeout, raw=True)
        except grpc.RpcError as exc:
            raise BackendError(f"etcd at {self.url} refused user {self._username!r}: {_details(exc)}") from None
        self._metadata = (("token", resp.token),)

    # -- members ------------------------------------------------------------------------------------
    def _current_member(self) -> _Member:
        self._check_open()
        return self._members[self._current]

    def _may_retry(self, deadline: float, pause: float) -> bool:
        """Another attempt after ``pause``? Only with other members to go to (one server fails at once)."""
        return len(self._members) > 1 and asyncio.get_running_loop().time() + pause < deadline

    def _failover(self, member: _Member, what: str) -> None:
        """``member`` failed ``what``: if calls still go there, send them to the next member from now on."""
        if len(self._members) < 2 or self._members[self._current] is not member:
            return
        self._current = (self._current + 1) % len(self._members)
        self.failovers += 1
        log.info("etcd %s: %s failed; trying %s", member.url, what, self.current_url)

    async def _call(self, start: Callable[[_Member, float], Any], what: str, timeout: float | None = None,
                    *, raw: bool = False) -> Any:
        """Run one unary call on the current member, moving on to the others until the deadline.

        ``start(member, seconds)`` returns a gRPC future. A member that is gone or cannot answer (no leader,
        frozen) gets its share of the deadline; then the next is tried. Other answers are final. ``raw``
        re-raises the final gRPC error unmapped (for the caller to explain).
        """
        loop = asyncio.get_running_loop()
        timeout = self.request_timeout if timeout is None else timeout
        deadline = loop.time() + timeout
        share = max(_MIN_ATTEMPT, timeout / max(1, len(self._members)))
        pause = _RETRY_PAUSE[0]
        while True:
            member = self._current_member()
            left = deadline - loop.time()
            try:
                return await _await_call(start(member, max(0.05, min(share, left))))
            except grpc.RpcError as exc:
                code = _code(exc)
                if code not in _UNREACHABLE or not self._may_retry(deadline, pause):
                    if raw and code not in _UNREACHABLE:
                        raise
                    raise self._map_error(exc, what, member) from None
                self._failover(member, what)
            await asyncio.sleep(pause)
            pause = min(pause * 2, _RETRY_PAUSE[1])

    # -- calls --------------------------------------------------------------------------------------
    def _map_error(self, exc: grpc.RpcError, what: str, member: _Member | None = None) -> Exception:
        code = _code(exc)
        details = _details(exc)
        if code in _UNREACHABLE and self._tls and is_certificate_failure(details):
            return CertificateError("etcd", self.url, f"{what}: {details}")  # TLS is what failed, not the network
        if code in _UNREACHABLE:
            where = f" (last tried {member.url})" if member is not None and len(self._members) > 1 else ""
            return BackendUnavailableError("etcd", self.url, f"{what}: {details or code.name}{where}")
        if "lease not found" in details:
            return LeaseExpiredError(f"etcd {what}: {details}")
        return BackendError(f"etcd {what} failed: {code.name if code else 'error'}: {details}")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeClosedError("etcd connection is closed")

    async def _unary(self, method: Callable[[_Member], Any], request: Any, what: str,
                     attempts: list[int] | None = None) -> Any:
        """``method(member)`` is the stub method to call with ``request`` (and the login token, renewed once).

        ``attempts``, if given, gets one entry per time the request was sent.
        """
        self._check_open()

        def start(member: _Member, timeout: float) -> Any:
            if attempts is not None:
                attempts.append(1)
            return method(member).future(request, timeout=timeout, metadata=self._metadata)

        for attempt in (1, 2):
            try:
                return await self._call(start, what, raw=True)
            except grpc.RpcError as exc:
                expired_token = (exc.code() == grpc.StatusCode.UNAUTHENTICATED and self._username is not None
                                 and attempt == 1)
                if expired_token:  # simple tokens expire: log in again and retry once
                    await self._authenticate(self.request_timeout)
                    continue
                raise self._map_error(exc, what) from None
        raise AssertionError("unreachable")

    async def grant_lease(self, ttl: float) -> int:
        """etcd TTLs are whole seconds: ``ttl`` is rounded up (etcd may raise it to its minimum)."""
        if ttl <= 0:
            raise ValueError(f"lease TTL must be positive, got {ttl}")
        resp = await self._unary(lambda m: m.lease.LeaseGrant, rpc.LeaseGrantRequest(TTL=max(1, math.ceil(ttl))),
                                 "lease grant")
        if resp.error:
            raise BackendError(f"etcd lease grant failed: {resp.error}")
        return int(resp.ID)

    def _keep_alive_blocking(self, member: _Member, lease_id: int, timeout: float) -> int:
        responses = member.lease.LeaseKeepAlive(iter([rpc.LeaseKeepAliveRequest(ID=lease_id)]),
                                                timeout=timeout, metadata=self._metadata)
        try:
            for response in responses:
                return int(response.TTL)
        finally:
            responses.cancel()
        raise BackendUnavailableError("etcd", member.url, "lease keep-alive stream closed without an answer")

    async def keep_alive(self, lease_id: int) -> bool:
        """One keep-alive round trip (a blocking stream, so it runs on the default executor), failing over."""
        self._check_open()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        share = max(_MIN_ATTEMPT, self.request_timeout / max(1, len(self._members)))
        pause = _RETRY_PAUSE[0]
        reauthenticated = False
        while True:
            member = self._current_member()
            attempt = max(0.05, min(share, deadline - loop.time()))
            try:
                ttl = await loop.run_in_executor(None, self._keep_alive_blocking, member, lease_id, attempt)
                return ttl > 0
            except grpc.RpcError as exc:
                code = _code(exc)
                if code == grpc.StatusCode.UNAUTHENTICATED and self._username is not None and not reauthenticated:
                    reauthenticated = True
                    await self._authenticate(self.request_timeout)
                    continue
                if code not in _UNREACHABLE or not self._may_retry(deadline, pause):
                    raise self._map_error(exc, "lease keep-alive", member) from None
                self._failover(member, "lease keep-alive")
            except BackendUnavailableError:
                if not self._may_retry(deadline, pause):
                    raise
                self._failover(member, "lease keep-alive")
            await asyncio.sleep(pause)
            pause = min(pause * 2, _RETRY_PAUSE[1])

    async def revoke_lease(self, lease_id: int) -> None:
        try:
            await self._unary(lambda m: m.lease.LeaseRevoke, rpc.LeaseRevokeRequest(ID=lease_id), "lease revoke")
        except LeaseExpiredError:
            pass  # already gone: the goal is reached

    async def lease_ttl(self, lease_id: int) -> int:
        """Seconds left on a lease; -1 when it does not exist (for tests and inspectors)."""
        resp = await self._unary(lambda m: m.lease.LeaseTimeToLive, rpc.LeaseTimeToLiveRequest(ID=lease_id),
                                 "lease time-to-live")
        return int(resp.TTL)

    async def lease_time_left(self, lease_id: int) -> float | None:
        """etcd's LeaseTimeToLive: whole seconds, rounded down; None once the lease is gone."""
        try:
            ttl = await self.lease_ttl(lease_id)
        except LeaseExpiredError:
            return None
        return None if ttl < 0 else float(ttl)

    async def create(self, key: str, value: bytes, lease_id: int | None = None) -> bool:
        """Create-only put: a transaction that compares the key's version with 0.

        When it fails after the request had to be sent again (its first member died or did not answer), the
        transaction's read-back tells whether the earlier attempt went through: the key then holds this value
        on this lease, unchanged since, and the create counts as done.
        """
        k = key.encode()
        value = bytes(value)
        txn = rpc.TxnRequest(
            compare=[rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.VERSION, key=k, version=0)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value, lease=lease_id or 0))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
        )
        attempts: list[int] = []
        resp = await self._unary(lambda m: m.kv.Txn, txn, f"create {key!r}", attempts)
        if resp.succeeded:
            return True
        if len(attempts) < 2:
            return False
        for op in resp.responses:
            for kv in op.response_range.kvs:
                if kv.value == value and kv.lease == (lease_id or 0) and kv.version == 1:
                    return True
        return False

    async def put(self, key: str, value: bytes, lease_id: int | None = None) -> int:
        resp = await self._unary(lambda m: m.kv.Put, rpc.PutRequest(key=key.encode(), value=bytes(value),
                                                                    lease=lease_id or 0), f"put {key!r}")
        return int(resp.header.revision)

    async def delete(self, key: str) -> int:
        resp = await self._unary(lambda m: m.kv.DeleteRange, rpc.DeleteRangeRequest(key=key.encode()),
                                 f"delete {key!r}")
        return int(resp.deleted)

    async def get_prefix(self, prefix: str) -> tuple[int, list[KeyValue]]:
        k = prefix.encode()
        request = (rpc.RangeRequest(key=k, range_end=prefix_range_end(k)) if k
                   else rpc.RangeRequest(key=b"\0", range_end=b"\0"))
        resp = await self._unary(lambda m: m.kv.Range, request, f"get prefix {prefix!r}")
        kvs = [KeyValue(kv.key.decode(), bytes(kv.value), kv.create_revision, kv.mod_revision, kv.version, kv.lease)
               for kv in resp.kvs]
        return int(resp.header.revision), kvs

    async def watch_prefix(self, prefix: str, start_revision: int) -> EtcdWatch:
        self._check_open()
        watch = EtcdWatch(self, prefix, start_revision)
        await watch._open(self.request_timeout)
        self._watches.add(watch)
        return watch

    @property
    def watch_count(self) -> int:
        return len(self._watches)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for watch in list(self._watches):
            await watch.cancel()
        members, self._members = self._members, []
        for member in members:
            member.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        where = f", using {self.current_url}" if len(self.endpoints) > 1 else ""
        return f"EtcdDiscovery({self.url}, {state}{where}, watches={len(self._watches)})"
