"""Live views in a real kernel, run headless by nbclient: updates made while a later cell runs are saved.

This is the path a notebook test or a CI run takes: the view is displayed in one cell, the system changes in a
later cell that waits, and the saved output of the first cell must show the final state (the updates carry the
full bundle and are attributed to the running cell).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.timeout(120)

CELLS = [
    """import asyncio, dynamo_nb
from dynamo_nb import DistributedRuntime
rt = await DistributedRuntime.create(name="nb", lease_ttl=60, health_check_interval=3600)
async def gen(request):
    yield {"ok": True}""",
    "view = rt.live()",
    'rt.live("registry")',
    """served = await rt.endpoint("dynamo.Worker.generate").endpoint_builder().handler(gen).start()
await view.wait_redraws(1)
await view.settle()
await asyncio.sleep(0.5)
print(view.redraws, len(dynamo_nb.display.live_views()))""",
    """view2 = rt.live()
print(view.stopped, view2 is not view, len(dynamo_nb.display.live_views()))""",
]


async def test_live_view_updates_are_saved_by_a_headless_run(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    env = {k: v for k, v in os.environ.items() if k not in ("ETCD_ENDPOINTS", "NATS_SERVER")}
    client = NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    await client.async_execute(env=env)
    view_out = nb.cells[1].outputs
    assert len(view_out) == 1 and view_out[0]["output_type"] == "display_data"
    data = view_out[0]["data"]
    assert "text/html" not in data
    assert {"text/vnd.mermaid", "text/plain"} <= set(data)
    assert "Endpoint generate" in data["text/vnd.mermaid"], "the update made during cell 4 was not saved"
    assert "Healthy" in data["text/vnd.mermaid"]
    if "image/svg+xml" in data:  # the update carries the whole bundle
        assert "generate" in data["image/svg+xml"]
    assert len(nb.cells[2].outputs) == 1  # live() as the last expression is shown once, not twice
    registry = nb.cells[2].outputs[0]["data"]["text/vnd.mermaid"]
    assert "Services Map" in registry and "dynamo#124;Worker" in registry
    assert nb.cells[3].outputs[-1]["text"].split()[1] == "2"
    assert nb.cells[4].outputs[-1]["text"].split() == ["True", "True", "2"]
