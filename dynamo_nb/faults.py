"""The fault lab: production failures caused on purpose from a cell or the control panel, on either backend.

Each fault is a recorded fact (a ``fault`` record: which fault, on or off, on what), so the figures drawn from the
records and snapshots show it while it lasts, and a recording replays it.

- :func:`pause_keepalive` — the worker stops renewing its lease but keeps serving, as in a network partition
  from etcd: the lease runs out, etcd deletes its keys and clients drop it. :func:`resume_keepalive` ends the
  partition: the next keep-alive finds the lease gone, and the worker re-registers under a new one.
- :func:`cut_off` — the worker's request route is dropped (NATS forgets its subscription, or the TCP listener
  its path) while its key stays in etcd: clients still list it, calls to it get no responders and fail over.
  :func:`reconnect` restores the route under the same key.
- :func:`slow_down` — the handler waits ``delay`` seconds before each item it streams (0 restores it).
- :func:`restart_etcd`, :func:`restart_nats` — a :class:`~dynamo_nb.cluster.LocalCluster`'s server is stopped
  and started again on the same ports (etcd keeps its data), recorded in the runtimes given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from .core.recorder import Kind

if TYPE_CHECKING:
    from .cluster import LocalCluster
    from .core.runtime import DistributedRuntime
    from .core.served import ServedEndpoint

__all__ = ["pause_keepalive", "resume_keepalive", "cut_off", "reconnect", "slow_down", "restart_etcd",
           "restart_nats", "active_faults"]


def _record(runtime: "DistributedRuntime", target: str, fault: str, active: bool, **detail: object) -> None:
    runtime.recorder.record(Kind.FAULT, "App", target, fault=fault, active=active, **detail)


async def pause_keepalive(runtime: "DistributedRuntime") -> None:
    """Stop renewing the runtime's primary lease; every instance on it keeps serving until etcd drops its key."""
    runtime._check_open()
    if not runtime.keepalive_paused:
        runtime.keepalive_paused = True
        _record(runtime, runtime.name, "keepalive", True, lease_id=runtime.primary_lease_id)


async def resume_keepalive(runtime: "DistributedRuntime") -> None:
    """Renew again; a lease that ran out meanwhile is replaced and its instances registered anew."""
    if runtime.keepalive_paused:
        runtime.keepalive_paused = False
        _record(runtime, runtime.name, "keepalive", False, lease_id=runtime.primary_lease_id)


async def cut_off(served: "ServedEndpoint") -> None:
    """Drop the instance's request route and keep its key: etcd says it is there, nothing answers."""
    if served.cut_off or served.killed:
        return
    served.cut_off = True
    if served._sub is not None:
        await served._sub.unsubscribe()
        served._sub = None
    _record(served.runtime, served.actor, "cut_off", True, instance_id=served.lease_id)


async def reconnect(served: "ServedEndpoint") -> None:
    """Restore the request route of an instance that was cut off (same subject, same key)."""
    if not served.cut_off:
        return
    runtime = served.runtime
    if served._sub is None and not served.killed:
        plane = runtime.backend.request_plane(runtime.profile.serve_plane)
        served._sub = await plane.serve(served.subject, served._on_request)
        await runtime.backend.messaging.flush()
    served.cut_off = False
    _record(runtime, served.actor, "cut_off", False, instance_id=served.lease_id)


def slow_down(served: "ServedEndpoint", delay: float) -> None:
    """Make the handler wait ``delay`` seconds before each streamed item (a slow consumer or overloaded GPU)."""
    if delay < 0:
        raise ValueError(f"delay must be ≥ 0, got {delay}")
    served.delay = float(delay)
    _record(served.runtime, served.actor, "slow", bool(delay), instance_id=served.lease_id, delay=float(delay))


async def _restart(cluster: "LocalCluster", server: str, record_in: Iterable["DistributedRuntime"],
                   downtime: float) -> None:
    runtimes = list(record_in)
    for rt in runtimes:
        _record(rt, server, "restart", True, server=server, downtime=downtime)
    try:
        if server == "etcd":
            await cluster.restart_etcd(downtime)
        else:
            await cluster.restart_nats(downtime)
    finally:
        for rt in runtimes:
            _record(rt, server, "restart", False, server=server, downtime=downtime)


async def restart_etcd(cluster: "LocalCluster", record_in: Iterable["DistributedRuntime"] = (),
                       downtime: float = 0.0) -> None:
    """Stop etcd and start it again with its data (leases keep their remaining time); recorded in ``record_in``."""
    await _restart(cluster, "etcd", record_in, downtime)


async def restart_nats(cluster: "LocalCluster", record_in: Iterable["DistributedRuntime"] = (),
                       downtime: float = 0.0) -> None:
    """Stop nats-server and start it again on the same port; clients and workers reconnect on their own."""
    await _restart(cluster, "NATS", record_in, downtime)


def active_faults(runtime: "DistributedRuntime") -> dict[str, tuple[str, ...]]:
    """Instance actor → the faults active on it, for this runtime's served instances."""
    return {s.actor: s.snapshot().faults for s in runtime.served_endpoints() if s.snapshot().faults}
