"""Whether a served instance can be found, not only whether it runs: its own key is read back on every check.

An instance whose key was deleted while its lease lives (by hand, by a wipe, by a re-registration that failed half
way) answers PINGs but no client can reach it. The check puts the key back under the instance's lease when it is
missing or altered; when that fails it says why, and the instance leaves Healthy until it succeeds.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..ratelog import warn_limited
from .recorder import Kind

if TYPE_CHECKING:
    from .served import ServedEndpoint

__all__ = ["ensure_registered"]

log = logging.getLogger(__name__)


async def ensure_registered(served: "ServedEndpoint") -> str:
    """``""`` when the instance key holds this instance's value under its lease (restored if need be); else why not."""
    runtime, ep = served.runtime, served.endpoint
    discovery = runtime.backend.discovery
    expected = served.instance_value()
    try:
        _, kvs = await discovery.get_prefix(served.key)
        found = next((kv for kv in kvs if kv.key == served.key), None)
        if found is not None and found.value == expected and found.lease == served.lease_id:
            return ""
        what = "missing" if found is None else "altered"
        await discovery.put(served.key, expected, served.lease_id)
    except Exception as exc:  # etcd unreachable, lease gone, ...: not reachable by clients until this works
        reason = f"instance key {served.key} could not be read or restored: {exc}"
        warn_limited(log, f"health:{served.key}", "%s: %s", served.actor, reason)
        return reason
    log.warning("%s: instance key %s was %s; registered it again", served.actor, served.key, what)
    runtime.recorder.record(Kind.KV_CREATE, served.actor, "etcd", key=served.key, lease_id=served.lease_id, ok=True,
                            replaces=served.key, namespace=ep.namespace.name, component=ep.component.name,
                            endpoint=ep.name, subject=served.subject)
    return ""
