"""The real backend: etcd (aetcd's gRPC stubs), NATS (nats-py) and the TCP response plane of SPEC §8.

``connect_real`` is what ``DistributedRuntime.create(etcd_endpoints=..., nats_server=...)`` calls. The client
libraries are imported only here, and only when this is called, so ``import dynamo_nb`` stays light and works
where they are not installed (the embedded backend needs neither).

If only one of the two servers is named, the other gets Dynamo's default (``http://127.0.0.1:2379`` for etcd,
``nats://127.0.0.1:4222`` for NATS — Dynamo's ``localhost`` defaults, pinned to IPv4 loopback); if that server
is not there either, the error names the default URL it tried. The response listener binds 127.0.0.1 unless
``response_host=``, ``DYN_TCP_RESPONSE_STREAM_HOST`` or ``DYNAMO_NB_RESPONSE_HOST`` names another address
(workers on other hosts must reach it); bound to ``0.0.0.0`` it advertises ``DYNAMO_NB_RESPONSE_ADVERTISE``, or the
local address that reaches NATS. The TCP request plane (Dynamo 1.6's default) listens only once a worker serves on
it, on ``DYN_TCP_RPC_HOST`` or the same host.
"""

from __future__ import annotations

import asyncio
import os
from urllib.parse import urlsplit
from typing import TYPE_CHECKING, Any, Sequence

from ..base import Backend

if TYPE_CHECKING:
    from .etcd import EtcdDiscovery
    from .nats import NatsMessaging
    from .tcp import TcpResponsePlane

__all__ = ["connect_real", "DEFAULT_ETCD_ENDPOINT", "DEFAULT_NATS_SERVER", "RESPONSE_HOST_ENV"]

DEFAULT_ETCD_ENDPOINT = "http://127.0.0.1:2379"
DEFAULT_NATS_SERVER = "nats://127.0.0.1:4222"
RESPONSE_HOST_ENV = "DYNAMO_NB_RESPONSE_HOST"  # where the response listener binds (default 127.0.0.1)


async def connect_real(
    etcd_endpoints: str | Sequence[str] | None,
    nats_server: str | None,
    *,
    connect_timeout: float = 5.0,
    request_timeout: float = 5.0,
    response_host: str | None = None,
    name: str | None = None,
    etcd_auth: dict[str, Any] | None = None,
    nats_auth: dict[str, Any] | None = None,
) -> Backend:
    """Connect to etcd and NATS (in parallel) and set up the TCP response plane.

    ``etcd_endpoints`` is one URL, a comma-separated string or a list (the members of one etcd cluster, by IP
    or host name), ``nats_server`` one URL or the comma-separated nodes of a NATS cluster; credentials come from
    Dynamo's ``ETCD_AUTH_*`` / ``NATS_AUTH_*`` variables unless ``etcd_auth`` / ``nats_auth`` give them (nats-py
    options such as ``{"user": ..., "password": ...}``, e.g. ``LocalCluster.nats_auth(user)``, when several users
    share a process). Raises :class:`~dynamo_nb.errors.BackendUnavailableError` naming the URL when a server does
    not answer within ``connect_timeout`` seconds. The backend's ``connect_peer()`` opens the same servers again
    with the same credentials (read once, here), whatever the environment says by then.
    """
    from ...browser import NO_SERVERS_IN_BROWSER, in_browser

    if in_browser():
        from ...errors import BackendUnavailableError

        raise BackendUnavailableError("etcd", str(etcd_endpoints or DEFAULT_ETCD_ENDPOINT), NO_SERVERS_IN_BROWSER)
    from .etcd import EtcdDiscovery, etcd_auth_from_env
    from .addresses import advertise_host
    from .nats import NatsMessaging, nats_auth_from_env
    from .tcp import TcpResponsePlane
    from .tcp_request import TcpRequestPlane

    if not etcd_endpoints and not nats_server:
        raise ValueError("connect_real needs etcd_endpoints or nats_server (or ETCD_ENDPOINTS / NATS_SERVER)")
    etcd_url: str | Sequence[str] = etcd_endpoints or DEFAULT_ETCD_ENDPOINT
    nats_url = (nats_server or DEFAULT_NATS_SERVER).strip()
    if connect_timeout <= 0:
        raise ValueError(f"connect_timeout must be positive, got {connect_timeout}")

    etcd_auth = etcd_auth_from_env() if etcd_auth is None else etcd_auth
    nats_auth = nats_auth_from_env() if nats_auth is None else nats_auth
    results = await asyncio.gather(
        EtcdDiscovery.connect(etcd_url, connect_timeout=connect_timeout, auth=etcd_auth,
                              request_timeout=request_timeout),
        NatsMessaging.connect(nats_url, connect_timeout=connect_timeout, auth=nats_auth, name=name),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        for r in results:
            if not isinstance(r, BaseException):
                await r.close()
        for failure in failures:
            if not isinstance(failure, Exception):
                raise failure  # cancellation and the like
        raise failures[0]
    discovery: EtcdDiscovery = results[0]  # type: ignore[assignment]
    messaging: NatsMessaging = results[1]  # type: ignore[assignment]
    host = (response_host or os.environ.get("DYN_TCP_RESPONSE_STREAM_HOST") or os.environ.get(RESPONSE_HOST_ENV)
            or "127.0.0.1")
    nats_host = urlsplit(nats_url.split(",")[0].strip()).hostname
    responses: TcpResponsePlane = TcpResponsePlane(host, advertise_host=advertise_host(host, nats_host))

    async def connect_peer() -> Backend:
        return await connect_real(etcd_url, nats_url, connect_timeout=connect_timeout,
                                  request_timeout=request_timeout, response_host=host, name=name,
                                  etcd_auth=etcd_auth, nats_auth=nats_auth)

    backend = Backend(
        kind="real",
        discovery=discovery,
        messaging=messaging,
        responses=responses,
        description=f"etcd {discovery.url} + NATS {messaging.url} (responses over TCP at {responses.advertise_host}"
                    + (f", bound to {host})" if host != responses.advertise_host else ")"),
        opener=connect_peer,
    )
    backend.requests["tcp"] = TcpRequestPlane(response_host or os.environ.get(RESPONSE_HOST_ENV))
    return backend


def __getattr__(name: str) -> Any:
    """Reach the implementation classes as ``dynamo_nb.backends.real.EtcdDiscovery`` etc. (imported on use)."""
    if name in ("EtcdDiscovery", "EtcdWatch"):
        from . import etcd

        return getattr(etcd, name)
    if name == "NatsMessaging":
        from . import nats

        return nats.NatsMessaging
    if name == "TcpRequestPlane":
        from . import tcp_request

        return tcp_request.TcpRequestPlane
    if name in ("TcpResponsePlane", "TcpReceiver", "TcpSender"):
        from . import tcp

        return getattr(tcp, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
