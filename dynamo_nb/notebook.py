"""The first cell of every walkthrough notebook: one call that picks the backend and returns a runtime.

By default the notebooks run on the embedded backend (no servers, works anywhere, also on Binder and in
JupyterLite, where it is the only one: ``DYNAMO_NB_USE_CLUSTER`` is ignored in a browser and
:func:`backend_summary` says why). Set ``DYNAMO_NB_USE_CLUSTER=1`` and the first call starts a
:class:`~dynamo_nb.cluster.LocalCluster` (real nats-server and etcd on loopback) and exports ``ETCD_ENDPOINTS`` /
``NATS_SERVER``; set those two yourself (Binder's ``start`` script does) and the real servers they name are used.
Either way every later ``DistributedRuntime.create()`` in the notebook — a worker, a frontend — joins the same
system.
"""

from __future__ import annotations

import os
from typing import Any

from .browser import in_browser
from .core.runtime import DistributedRuntime

__all__ = ["USE_CLUSTER_ENV", "notebook_runtime", "use_cluster", "backend_summary", "close_cluster"]

USE_CLUSTER_ENV = "DYNAMO_NB_USE_CLUSTER"
_TRUE = {"1", "true", "yes", "on"}

_cluster: Any = None  # the LocalCluster this kernel started, if any


def use_cluster() -> bool:
    """Whether ``DYNAMO_NB_USE_CLUSTER`` asks for a LocalCluster."""
    return os.environ.get(USE_CLUSTER_ENV, "").strip().lower() in _TRUE


def _servers_configured() -> bool:
    return bool(os.environ.get("ETCD_ENDPOINTS") or os.environ.get("NATS_SERVER"))


async def notebook_runtime(**kwargs: Any) -> DistributedRuntime:
    """A runtime on the backend this notebook should use (see the module docstring).

    Keyword arguments go to :meth:`DistributedRuntime.create` (``name=``, ``lease_ttl=`` …).
    """
    global _cluster
    if use_cluster() and not _servers_configured() and not in_browser():  # a page cannot start servers
        from .cluster import LocalCluster

        if _cluster is None or not _cluster.running:
            _cluster = LocalCluster()
            await _cluster.start()
        os.environ.update(_cluster.env())
    return await DistributedRuntime.create(**kwargs)


def backend_summary(runtime: DistributedRuntime) -> str:
    """One line saying where the runtime's etcd and NATS are."""
    backend = runtime.backend
    where = f"etcd {backend.discovery.url}, NATS {backend.messaging.url}"
    label = backend.description or backend.kind
    suffix = " (a LocalCluster started by this kernel)" if _cluster is not None and backend.kind != "embedded" else ""
    if in_browser() and backend.kind == "embedded":
        suffix = " (in this browser tab: a web page cannot reach real servers, so everything runs in the kernel)"
    return f"{runtime.name}: {label} — {where}{suffix}"


async def close_cluster() -> None:
    """Stop the LocalCluster this kernel started (it also stops when the kernel exits)."""
    global _cluster
    if _cluster is not None:
        await _cluster.close()
        for key in ("ETCD_ENDPOINTS", "NATS_SERVER"):
            os.environ.pop(key, None)
        _cluster = None
