"""Discovery over a real etcd v3 cluster: aetcd's gRPC stubs on one blocking-API gRPC channel, bridged to asyncio.

Why not ``aetcd.Client``: it opens only insecure channels (Dynamo's ``ETCD_AUTH_CA`` / ``ETCD_AUTH_CLIENT_CERT`` /
``ETCD_AUTH_CLIENT_KEY`` need TLS), and it is built on ``grpc.aio``, whose completion queue is shared by every
event loop of the process: completions of calls made on a loop that has since closed (``asyncio.run`` twice, a
test suite's loop per test) are handed to the next loop, fail there with "Event loop is closed" and take other
calls' completions down with them — a watch then never wakes up. The blocking gRPC API has no loop affinity: unary
calls run as gRPC futures whose results are posted to the caller's loop, and each prefix watch reads its stream on
a small daemon thread of its own.

Every call has a deadline, a refused connection fails at once instead of waiting for the channel, and a watch
*ends* (raises) when its stream breaks, so the shared watcher re-reads from its last revision
(``core/registry.py``), as etcd's own clients do.
"""

from __future__ import annotations

import asyncio
import ipaddress
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
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


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


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _grpc_target(endpoints: list[EtcdEndpoint]) -> str:
    """One gRPC target; several IP endpoints become one ``ipv4:``/``ipv6:`` list that gRPC fails over within."""
    if len(endpoints) == 1:
        return endpoints[0].target
    if all(_is_ip(e.host) and ":" not in e.host for e in endpoints):
        return "ipv4:" + ",".join(e.target for e in endpoints)
    if all(_is_ip(e.host) and ":" in e.host for e in endpoints):
        return "ipv6:" + ",".join(e.target for e in endpoints)
    raise ValueError("several etcd endpoints by host name are not supported; use IP addresses or one name")


_END = object()  # request-stream terminator / end-of-responses marker


class EtcdWatch:
    """One prefix watch on its own gRPC stream, read by a daemon thread and delivered to the caller's loop.

    Iterating ends when the watch is cancelled, and raises when the stream breaks (server gone, compaction):
    either way the caller knows the watch stopped and can re-read from its last revision.
    """

    def __init__(self, discovery: "EtcdDiscovery", prefix: str, start_revision: int) -> None:
        self.prefix = prefix
        self.start_revision = start_revision
        self.watch_id = -1
        self.events_seen = 0
        self._discovery = discovery
        self._loop = asyncio.get_running_loop()
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._responses: Any = None
        self._items: asyncio.Queue[Any] = asyncio.Queue()
        self._created: asyncio.Future[Any] = self._loop.create_future()
        self._cancelled = False

    # -- the reading thread -------------------------------------------------------------------------
    def _request_stream(self) -> Iterator[Any]:
        while True:
            request = self._requests.get()
            if request is _END:
                return
            yield request

    def _pump(self) -> None:
        try:
            for response in self._responses:
                _post(self._loop, self._on_response, response)
        except grpc.RpcError as exc:
            _post(self._loop, self._on_end, exc)
        except Exception as exc:  # never let the thread die silently
            _post(self._loop, self._on_end, exc)
        else:
            _post(self._loop, self._on_end, None)
        finally:
            self._requests.put(_END)  # releases gRPC's thread that feeds the request stream

    def _on_response(self, response: Any) -> None:
        if not self._created.done():
            self._created.set_result(response)
            return
        self._items.put_nowait(response)

    def _on_end(self, error: BaseException | None) -> None:
        if not self._created.done():
            self._created.set_exception(error or BackendUnavailableError(
                "etcd", self._discovery.url, f"watch on {self.prefix!r} closed while being created"))
            return
        self._items.put_nowait(error if error is not None else _END)

    # -- opening ---------------------------------------------------------------------------------------
    async def _open(self, timeout: float) -> None:
        d = self._discovery
        key = self.prefix.encode()
        create = rpc.WatchCreateRequest(key=key, range_end=prefix_range_end(key),
                                        start_revision=max(0, self.start_revision))
        self._requests.put(rpc.WatchRequest(create_request=create))
        self._responses = d._watch_stub.Watch(self._request_stream(), metadata=d._metadata)
        threading.Thread(target=self._pump, name=f"etcd-watch:{self.prefix}", daemon=True).start()
        # A timer instead of asyncio.wait_for, which (before Python 3.12) can swallow a cancellation that
        # arrives as the answer does; the caller's task must stay cancellable here.
        timer = self._loop.call_later(timeout, self._creation_timed_out, timeout)
        try:
            response = await self._created
        except grpc.RpcError as exc:
            self._stop_stream()
            raise d._map_error(exc, "watch") from None
        except BaseException:
            self._stop_stream()
            raise
        finally:
            timer.cancel()
        if response.compact_revision:
            self._stop_stream()
            raise BackendError(f"etcd: revision {self.start_revision} of {self.prefix!r} is compacted "
                               f"(oldest kept: {response.compact_revision}); re-read and watch again")
        if not response.created or response.canceled:
            self._stop_stream()
            raise BackendError(f"etcd refused a watch on {self.prefix!r}: {response.cancel_reason or 'canceled'}")
        self.watch_id = response.watch_id
        if response.events:
            self._items.put_nowait(response)

    def _creation_timed_out(self, timeout: float) -> None:
        if not self._created.done():
            self._created.set_exception(BackendUnavailableError(
                "etcd", self._discovery.url, f"watch on {self.prefix!r} not created within {timeout} s"))

    # -- consuming -------------------------------------------------------------------------------------
    async def __aiter__(self) -> AsyncIterator[WatchEvent]:
        d = self._discovery
        while not self._cancelled:
            item = await self._items.get()
            if item is _END or self._cancelled:
                if self._cancelled:
                    return
                raise BackendUnavailableError("etcd", d.url, f"watch stream on {self.prefix!r} ended")
            if isinstance(item, BaseException):
                if isinstance(item, grpc.RpcError):
                    raise d._map_error(item, f"watch on {self.prefix!r}") from None
                raise BackendError(f"etcd watch on {self.prefix!r} failed: {item!r}") from item
            if item.compact_revision:
                raise BackendError(f"etcd compacted past the watch on {self.prefix!r} "
                                   f"(oldest kept: {item.compact_revision}); re-read and watch again")
            for event in item.events:
                yield self._convert(event)
            if item.canceled:
                raise BackendError(f"etcd cancelled the watch on {self.prefix!r}: {item.cancel_reason}")

    def _convert(self, event: Any) -> WatchEvent:
        self.events_seen += 1
        kv = event.kv
        if event.type == rpc.Event.DELETE:
            return WatchEvent("delete", kv.key.decode(), b"", kv.mod_revision)
        return WatchEvent("put", kv.key.decode(), kv.value, kv.mod_revision)

    def _stop_stream(self) -> None:
        self._requests.put(_END)
        if self._responses is not None:
            self._responses.cancel()

    async def cancel(self) -> None:
        if self._cancelled:
            return
        self._cancelled = True
        self._discovery._watches.discard(self)
        self._stop_stream()
        self._items.put_nowait(_END)

    def __repr__(self) -> str:
        state = "cancelled" if self._cancelled else "live"
        return f"EtcdWatch({self.prefix!r}, from={self.start_revision}, {state}, events={self.events_seen})"


class EtcdDiscovery:
    """One process's etcd connection, as the object model's :class:`~dynamo_nb.backends.base.Discovery`."""

    def __init__(self, endpoints: list[EtcdEndpoint], *, username: str | None = None, password: str | None = None,
                 ca: bytes | None = None, cert: bytes | None = None, key: bytes | None = None,
                 request_timeout: float = 5.0) -> None:
        self.endpoints = endpoints
        self.url = ",".join(e.url for e in endpoints)
        self.request_timeout = request_timeout
        self._username = username
        self._password = password
        self._tls = any(e.tls for e in endpoints) or bool(ca or cert or key)
        if ca or cert or key:  # before gRPC sees them: half a key pair aborts the process inside gRPC
            check_tls_material(self.url, ca, cert, key)
        self._ca, self._cert, self._key = ca, cert, key
        self._metadata: tuple[tuple[str, str], ...] | None = None
        self._channel: grpc.Channel | None = None
        self._watches: set[EtcdWatch] = set()
        self._closed = False

    # -- connecting ---------------------------------------------------------------------------------
    @classmethod
    async def connect(cls, endpoints: str | Sequence[str], *, connect_timeout: float = 5.0,
                      auth: dict[str, Any] | None = None, request_timeout: float = 5.0) -> "EtcdDiscovery":
        """Open the channel and make one call; :class:`BackendUnavailableError` naming the URL if it fails."""
        parsed = parse_etcd_endpoints(endpoints)
        auth = _url_credentials(parsed, dict(auth or {}))
        try:
            _grpc_target(parsed)
            candidates = [parsed]
        except ValueError:
            candidates = [[e] for e in parsed]  # several host names: use the first one that answers
        errors: list[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + connect_timeout
        for group in candidates:
            discovery = cls(group, request_timeout=request_timeout, **(auth or {}))
            try:
                await discovery._open(_grpc_target(group), max(0.05, deadline - loop.time()))
                return discovery
            except CertificateError:
                await discovery.close()
                raise
            except BackendUnavailableError as exc:
                errors.append(str(exc))
                await discovery.close()
            except BaseException:
                await discovery.close()
                raise
        url = ",".join(e.url for e in parsed)
        detail = errors[0].split(": ", 1)[-1] if len(errors) == 1 else "; ".join(errors)
        raise BackendUnavailableError("etcd", url, detail)

    async def _open(self, target: str, timeout: float) -> None:
        if self._tls:
            creds = grpc.ssl_channel_credentials(root_certificates=self._ca, private_key=self._key,
                                                 certificate_chain=self._cert)
            self._channel = grpc.secure_channel(target, creds, options=_CHANNEL_OPTIONS)
        else:
            self._channel = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
        self._kv = rpc.KVStub(self._channel)
        self._lease = rpc.LeaseStub(self._channel)
        self._watch_stub = rpc.WatchStub(self._channel)
        if self._username is not None:
            await self._authenticate(timeout)
            return  # an answer to Authenticate is proof enough that etcd is there
        try:
            await _await_call(self._kv.Range.future(
                rpc.RangeRequest(key=b"\0dynamo_nb/ping", limit=1, serializable=True), timeout=timeout))
        except grpc.RpcError as exc:
            if exc.code() in _UNREACHABLE:
                raise self._unreachable(exc) from None
            # Any other answer (permission denied, ...) still proves the server is reachable.

    async def _authenticate(self, timeout: float) -> None:
        assert self._channel is not None
        request = rpc.AuthenticateRequest(name=self._username, password=self._password or "")
        try:
            resp = await _await_call(rpc.AuthStub(self._channel).Authenticate.future(request, timeout=timeout))
        except grpc.RpcError as exc:
            if exc.code() in _UNREACHABLE:
                raise self._unreachable(exc) from None
            raise BackendError(f"etcd at {self.url} refused user {self._username!r}: {exc.details()}") from None
        self._metadata = (("token", resp.token),)

    def _unreachable(self, exc: grpc.RpcError, what: str = "") -> Exception:
        """A failed connection: a certificate problem when TLS is what failed, else "cannot reach"."""
        details = (exc.details() if hasattr(exc, "details") else "") or exc.code().name
        if self._tls and is_certificate_failure(details):
            return CertificateError("etcd", self.url, f"{what}: {details}" if what else details)
        return BackendUnavailableError("etcd", self.url, f"{what}: {details}" if what else details)

    # -- calls --------------------------------------------------------------------------------------
    def _map_error(self, exc: grpc.RpcError, what: str) -> Exception:
        code = exc.code() if hasattr(exc, "code") else None
        details = (exc.details() if hasattr(exc, "details") else "") or ""
        if code in _UNREACHABLE and self._tls and is_certificate_failure(details):
            return CertificateError("etcd", self.url, f"{what}: {details}")
        if code in _UNREACHABLE:
            return BackendUnavailableError("etcd", self.url, f"{what}: {details or code.name}")
        if "lease not found" in details:
            return LeaseExpiredError(f"etcd {what}: {details}")
        return BackendError(f"etcd {what} failed: {code.name if code else 'error'}: {details}")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeClosedError("etcd connection is closed")

    async def _unary(self, method: Any, request: Any, what: str) -> Any:
        self._check_open()
        for attempt in (1, 2):
            try:
                return await _await_call(method.future(request, timeout=self.request_timeout,
                                                       metadata=self._metadata))
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
        resp = await self._unary(self._lease.LeaseGrant, rpc.LeaseGrantRequest(TTL=max(1, math.ceil(ttl))),
                                 "lease grant")
        if resp.error:
            raise BackendError(f"etcd lease grant failed: {resp.error}")
        return int(resp.ID)

    def _keep_alive_blocking(self, lease_id: int) -> int:
        responses = self._lease.LeaseKeepAlive(iter([rpc.LeaseKeepAliveRequest(ID=lease_id)]),
                                               timeout=self.request_timeout, metadata=self._metadata)
        try:
            for response in responses:
                return int(response.TTL)
        finally:
            responses.cancel()
        raise BackendUnavailableError("etcd", self.url, "lease keep-alive stream closed without an answer")

    async def keep_alive(self, lease_id: int) -> bool:
        """One keep-alive round trip (a blocking stream, so it runs on the default executor)."""
        self._check_open()
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            try:
                ttl = await loop.run_in_executor(None, self._keep_alive_blocking, lease_id)
                return ttl > 0
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED and self._username is not None and attempt == 1:
                    await self._authenticate(self.request_timeout)
                    continue
                raise self._map_error(exc, "lease keep-alive") from None
        raise AssertionError("unreachable")

    async def revoke_lease(self, lease_id: int) -> None:
        try:
            await self._unary(self._lease.LeaseRevoke, rpc.LeaseRevokeRequest(ID=lease_id), "lease revoke")
        except LeaseExpiredError:
            pass  # already gone: the goal is reached

    async def lease_ttl(self, lease_id: int) -> int:
        """Seconds left on a lease; -1 when it does not exist (for tests and inspectors)."""
        resp = await self._unary(self._lease.LeaseTimeToLive, rpc.LeaseTimeToLiveRequest(ID=lease_id),
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
        """Create-only put: a transaction that compares the key's version with 0."""
        k = key.encode()
        txn = rpc.TxnRequest(
            compare=[rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.VERSION, key=k, version=0)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=bytes(value), lease=lease_id or 0))],
        )
        resp = await self._unary(self._kv.Txn, txn, f"create {key!r}")
        return bool(resp.succeeded)

    async def put(self, key: str, value: bytes, lease_id: int | None = None) -> int:
        resp = await self._unary(self._kv.Put, rpc.PutRequest(key=key.encode(), value=bytes(value),
                                                              lease=lease_id or 0), f"put {key!r}")
        return int(resp.header.revision)

    async def delete(self, key: str) -> int:
        resp = await self._unary(self._kv.DeleteRange, rpc.DeleteRangeRequest(key=key.encode()), f"delete {key!r}")
        return int(resp.deleted)

    async def get_prefix(self, prefix: str) -> tuple[int, list[KeyValue]]:
        k = prefix.encode()
        request = (rpc.RangeRequest(key=k, range_end=prefix_range_end(k)) if k
                   else rpc.RangeRequest(key=b"\0", range_end=b"\0"))
        resp = await self._unary(self._kv.Range, request, f"get prefix {prefix!r}")
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
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"EtcdDiscovery({self.url}, {state}, watches={len(self._watches)})"
