"""Where the response plane connects and what it advertises, without ever blocking the event loop.

A request names the address its worker must call back. A host *name* there would be resolved by a blocking
``connect`` on the loop: one forged request naming a slow host froze a worker for seconds and cost it its lease.
Names are therefore resolved on the loop's resolver (a worker thread), bounded in time; IP literals need none.
A listener bound to every interface (``0.0.0.0``) must advertise an address a worker can reach, never itself.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import socket
from typing import Mapping

from ._deadline import bounded

__all__ = ["ADVERTISE_ENV", "resolve", "advertise_host", "is_wildcard"]

ADVERTISE_ENV = "DYNAMO_NB_RESPONSE_ADVERTISE"  # the address workers call back on, when the bind address is not it


@functools.lru_cache(maxsize=256)  # the same few caller addresses come back in every request
def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_wildcard(host: str) -> bool:
    """``0.0.0.0`` / ``::`` (or empty): bound to every interface, so not an address to give out.

    >>> is_wildcard("0.0.0.0"), is_wildcard("::"), is_wildcard("127.0.0.1")
    (True, True, False)
    """
    ip = _literal(host)
    return not host or (ip is not None and ip.is_unspecified)


async def resolve(host: str, port: int, timeout: float) -> tuple[int, tuple]:
    """``(family, sockaddr)`` to connect to; a name is resolved off the loop, within ``timeout`` seconds.

    Raises :class:`OSError` (``socket.gaierror``) for a name that does not resolve and
    :class:`asyncio.TimeoutError` for one that takes too long.
    """
    ip = _literal(host)
    if ip is not None:
        return (socket.AF_INET6, (host, port, 0, 0)) if ip.version == 6 else (socket.AF_INET, (host, port))
    loop = asyncio.get_running_loop()
    infos = await bounded(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP), timeout)
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            return family, sockaddr
    raise socket.gaierror(socket.EAI_NONAME, f"{host!r} has no IPv4 or IPv6 address")


def advertise_host(bind_host: str, toward: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The address workers are told to call back on.

    ``DYNAMO_NB_RESPONSE_ADVERTISE`` if set; else the bind address unless it is a wildcard; else the local
    address the system would use to reach ``toward`` (the NATS server: workers reach it too), found with a UDP
    ``connect`` that sends nothing; loopback when nothing better is known.

    >>> advertise_host("0.0.0.0", env={"DYNAMO_NB_RESPONSE_ADVERTISE": "10.1.2.3"})
    '10.1.2.3'
    >>> advertise_host("0.0.0.0", "127.0.0.1", env={}), advertise_host("::", "::1", env={})
    ('127.0.0.1', '::1')
    """
    env = os.environ if env is None else env
    explicit = env.get(ADVERTISE_ENV, "").strip()
    if explicit:
        return explicit
    if not is_wildcard(bind_host):
        return bind_host
    six = ":" in bind_host
    fallback = "::1" if six else "127.0.0.1"
    target = _literal(toward or "")
    if target is None or (target.version == 6) != six:
        return fallback
    with socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((str(target), 9))  # UDP: picks the route and source address, sends no packet
            local = probe.getsockname()[0]
        except OSError:
            return fallback
    return fallback if is_wildcard(local) else local
