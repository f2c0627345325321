"""The same scripted system drawn on every backend: diagrams read state and recorded traffic, not the backend.

Runs the scenario of ``test_diagrams`` through the shared ``make_runtime`` fixture (embedded world, or real etcd
+ nats-server) and compares against the same golden files. ``topology`` differs by design (which servers), and
the ``sequence`` drain note depends on timing, so those two are checked by their content instead.
"""

from __future__ import annotations

import pytest

import dynamo_nb
from test_diagrams import GOLDEN, build_system, lint_mermaid, normalize, target

pytestmark = pytest.mark.timeout(120)

SAME_ON_EVERY_BACKEND = ("hierarchy", "structure", "reference", "startup", "registry", "lifecycle", "pubsub")


async def test_traffic_diagrams_match_the_goldens_on_every_backend(make_runtime, backend_kind):
    system = await build_system(make_runtime)
    for kind in SAME_ON_EVERY_BACKEND:
        drawn = dynamo_nb.diagram(target(system, kind), kind)
        lint_mermaid(drawn.mermaid)
        got = normalize(drawn.mermaid, system)
        assert got == (GOLDEN / f"{kind}.mmd").read_text(encoding="utf-8"), f"{kind} on {backend_kind}"

    raw = dynamo_nb.diagram(target(system, "sequence"), "sequence").mermaid
    lint_mermaid(raw)
    sequence = normalize(raw, system)
    for expected in ("grant lease (TTL 60 s)", "register dynamo/components/Worker/generate:<worker-2-lease>",
                     "loop running", "requests ×1", "revoke lease <worker-2-lease>",
                     "watch delete dynamo/components/Worker/generate:<worker-2-lease>"):
        assert expected in sequence, f"{expected!r} missing from the sequence on {backend_kind}"

    topology = dynamo_nb.diagram(system.all, "topology").mermaid
    assert ("embedded world" in topology) == (backend_kind == "embedded")
