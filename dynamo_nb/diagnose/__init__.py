"""``await dynamo_nb.explain("ns.Comp.ep")``: why a call to an endpoint fails, as a checklist that draws itself.

Steps (:data:`~.findings.STEPS`): etcd and NATS reachable and authorised; the endpoint's keys present, else the
nearest registered names (case, hash suffix, the other profile's layout, another namespace); each key's lease and
its time left; each instance's request plane against the caller's; a TCP connect to each advertised address;
a NATS responder on each subject; a request's size against ``max_payload``; JetStream where the profile needs
it. ``explain(error=text)`` places a raw error text (ours, or a real Dynamo client's) on the step that finds its
cause, and runs the checklist on the endpoint the text names.

The package is ``dynamo_nb.diagnose`` (the function is ``dynamo_nb.explain``): one name each, so importing a
submodule never shadows the function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from .causes import match_error
from .checks import DEFAULT_TIMEOUT, run_checklist
from .findings import STEPS, Findings, InstanceFinding, Step
from .report import Report

if TYPE_CHECKING:
    from ..backends.embedded import EmbeddedWorld
    from ..core.runtime import DistributedRuntime
    from ..transport.profile import SeedProfile

__all__ = ["explain", "Report", "Step", "Findings", "InstanceFinding", "STEPS", "match_error"]


async def explain(
    reference: str | None = None,
    *,
    error: str | None = None,
    request: Any = None,
    runtime: "DistributedRuntime | None" = None,
    etcd_endpoints: str | Sequence[str] | None = None,
    nats_server: str | None = None,
    profile: "str | SeedProfile | None" = None,
    request_plane: str | None = None,
    world: "EmbeddedWorld | None" = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Report:
    """Run the checklist for ``reference`` (``"ns.Comp.ep"``) and return a :class:`Report`.

    Servers and profile are found as ``DistributedRuntime.create()`` finds them (arguments, then
    ``ETCD_ENDPOINTS`` / ``NATS_SERVER`` / ``DYNAMO_NB_PROFILE`` / ``DYN_REQUEST_PLANE``), or are those of
    ``runtime`` (e.g. from ``attach()``). ``request`` is checked against the server's ``max_payload``. It returns
    within ``timeout`` seconds (plus at most one to close what it opened), even when every server is down or
    frozen; what it could not check in time is marked skipped.
    """
    if reference is None and error is None:
        raise ValueError("explain needs an endpoint reference ('ns.Comp.ep'), error=TEXT, or both")
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    return Report(await run_checklist(
        reference, error=error, request=request, runtime=runtime, etcd_endpoints=etcd_endpoints,
        nats_server=nats_server, profile=profile, request_plane=request_plane, world=world, timeout=timeout))
