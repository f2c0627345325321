"""Display hooks and live views: what Jupyter receives from every object, with and without graphviz.

Bundles carry Mermaid, SVG (when ``dot`` exists) and text, never HTML; a missing ``dot`` costs only the SVG;
live views coalesce bursts, stop cleanly, and replace the previous view of the same object.
"""

from __future__ import annotations

import asyncio
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

import dynamo_nb
from dynamo_nb import DistributedRuntime, WaitTimeoutError
from dynamo_nb.backends.embedded import EmbeddedWorld
from dynamo_nb.display import DotNotFoundError, live_views, stop_all, svg
from dynamo_nb.display.kinds import KINDS
from dynamo_nb.display.hooks import MIME_TYPES, mimebundle

HAS_DOT = shutil.which("dot") is not None


async def tokens(request: Any) -> AsyncIterator[dict[str, str]]:
    for tok in str(request.get("prompt", "")).split():
        yield {"token": tok}


@pytest.fixture
async def world() -> AsyncIterator[EmbeddedWorld]:
    yield EmbeddedWorld()
    stop_all()


@pytest.fixture
async def small(world: EmbeddedWorld) -> AsyncIterator[dict[str, Any]]:
    """One worker runtime serving dynamo.Worker.generate and a frontend runtime calling it."""
    worker = await DistributedRuntime.create(world=world, name="worker", lease_ttl=60, health_check_interval=3600)
    frontend = await DistributedRuntime.create(world=world, name="frontend", lease_ttl=60,
                                               health_check_interval=3600)
    served = await worker.endpoint("dynamo.Worker.generate").endpoint_builder().handler(tokens).start()
    await served.wait_for_state("Healthy")
    client = await frontend.endpoint("dynamo.Worker.generate").client()
    await client.wait_for_instances(timeout=5)
    yield {"worker": worker, "frontend": frontend, "served": served, "client": client}
    for rt in (frontend, worker):
        await rt.shutdown()


def every_object(small: dict[str, Any]) -> list[Any]:
    worker, served = small["worker"], small["served"]
    return [worker, worker.namespace("dynamo"), worker.namespace("dynamo").component("Worker"), served.endpoint,
            served, small["client"], worker.registry, dynamo_nb.LocalCluster()]


# ------------------------------------------------------------------------------------------------ bundles
async def test_every_object_has_a_mermaid_svg_and_text_bundle_and_no_html(small: dict[str, Any]) -> None:
    assert HAS_DOT, "these tests expect graphviz's dot on this machine"
    for obj in every_object(small):
        bundle = obj._repr_mimebundle_()
        assert set(bundle) == {"text/vnd.mermaid", "image/svg+xml", "text/plain"}, type(obj).__name__
        assert "text/html" not in bundle
        root = ET.fromstring(bundle["image/svg+xml"])
        assert root.tag.endswith("svg") and root.find(".//{http://www.w3.org/2000/svg}g") is not None
        assert bundle["text/plain"].startswith(repr(obj)[:40])
        body = bundle["text/vnd.mermaid"]
        if body.startswith("---\n"):  # front matter (flowcharts set their wrapping width)
            body = body.split("\n---\n", 1)[1]
        assert body.split()[0] in ("flowchart", "sequenceDiagram", "classDiagram", "stateDiagram-v2")


async def test_text_plain_is_a_readable_tree(small: dict[str, Any]) -> None:
    text = small["worker"]._repr_mimebundle_(include=["text/plain"])["text/plain"]
    lines = text.splitlines()
    assert lines[0].startswith("DistributedRuntime('worker'")
    assert "[Namespace: dynamo]" in lines[2]  # the namespace box, then what it holds, indented
    assert lines[3].startswith("  [Component Worker")
    assert any(line.startswith("    Endpoint generate") for line in lines)
    assert any(line.strip().startswith("└─ instance") for line in lines)
    assert f"instance {small['served'].lease_id:x} · Healthy · worker" in text


async def test_include_and_exclude_pick_from_one_table(small: dict[str, Any]) -> None:
    rt = small["worker"]
    assert list(rt._repr_mimebundle_(include=["text/plain"])) == ["text/plain"]
    assert set(rt._repr_mimebundle_(exclude=["image/svg+xml"])) == {"text/vnd.mermaid", "text/plain"}
    assert rt._repr_mimebundle_(include=["text/html"]) == {}
    assert list(MIME_TYPES) == ["text/vnd.mermaid", "image/svg+xml", "text/plain"]


async def test_without_any_layout_engine_the_bundle_has_no_svg_and_nothing_is_printed(
        small: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(svg, "ENGINES", ("dot",))  # hides the graphviz-pure wheel beside the interpreter too
    for obj in every_object(small):
        bundle = obj._repr_mimebundle_()
        assert set(bundle) == {"text/vnd.mermaid", "text/plain"}, type(obj).__name__
    drawn = dynamo_nb.diagram(small["worker"])
    assert "image/svg+xml" not in drawn._repr_mimebundle_()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    with pytest.raises(DotNotFoundError, match="graphviz's `dot` executable was not found.*pip install graphviz-pure"):
        drawn.svg()


def _svg_parts(text: str) -> tuple[list[str], list[str]]:
    """The node and edge titles and the text of an SVG from graphviz: what a reader sees, not where."""
    root = ET.fromstring(text)
    ns = "{http://www.w3.org/2000/svg}"
    return sorted(t.text or "" for t in root.iter(f"{ns}title")), sorted(t.text or "" for t in root.iter(f"{ns}text"))


async def test_without_dot_on_path_every_kind_still_has_the_same_svg(
        small: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The graphviz-pure wheel (the ``notebook`` extra) draws every kind, with the nodes, edges and text of dot's."""
    targets = {kind: [small["served"], small["worker"], small["frontend"]] for kind in KINDS}
    by_dot = {kind: _svg_parts(dynamo_nb.diagram(t, kind).svg()) for kind, t in targets.items()}
    monkeypatch.setenv("PATH", "")
    assert (svg.dot_executable() or "").endswith("graphviz-pure")
    for obj in every_object(small):
        assert "image/svg+xml" in obj._repr_mimebundle_(), type(obj).__name__
    for kind, target in targets.items():
        drawn = dynamo_nb.diagram(target, kind)
        titles, texts = _svg_parts(drawn._repr_mimebundle_()["image/svg+xml"])
        assert len(titles) > 1 and (titles, texts) == by_dot[kind], kind
        assert 'font-family="Helvetica' in drawn.svg(), kind  # measured as the first family of the list


async def test_a_hook_never_raises(small: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def __repr__(self) -> str:
            return "<Broken>"

    assert mimebundle(Broken()) == {"text/plain": "<Broken>"}
    assert mimebundle(Broken(), exclude=["text/plain"]) == {}
    assert "could not draw <Broken>" in caplog.text


async def test_diagram_saves_by_suffix(small: dict[str, Any], tmp_path: Path) -> None:
    drawn = dynamo_nb.diagram(small["served"], "startup")
    assert drawn.save(tmp_path / "a.mmd").read_text().split("---\n")[-1].startswith("sequenceDiagram")  # after its config
    assert drawn.save(tmp_path / "a.dot").read_text().startswith("digraph G {")
    ET.fromstring(drawn.save(tmp_path / "a.svg").read_text())
    assert drawn.save(tmp_path / "a.txt").read_text().startswith("startup · instance")
    with pytest.raises(ValueError, match="suffix"):
        drawn.save(tmp_path / "a.png")


async def test_dot_output_survives_hostile_names(world: EmbeddedWorld) -> None:
    hostile = 'r"1|<b>#;\\n{x}'
    rt = await DistributedRuntime.create(world=world, name=hostile, lease_ttl=60, health_check_interval=3600)
    try:
        served = await rt.endpoint("dynamo.a-b_C.chat/completions").endpoint_builder().handler(tokens).start()
        for kind in ("hierarchy", "structure", "sequence", "registry"):
            drawn = dynamo_nb.diagram([served, rt] if kind == "sequence" else rt, kind)
            svg = ET.fromstring(drawn.svg())
            texts = " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
            assert "a-b_C" in texts or kind == "registry" and "dynamo|a-b_C" in texts, kind
            if kind in ("hierarchy", "structure"):
                assert hostile in texts, texts
    finally:
        await rt.shutdown()


def test_import_loads_no_notebook_or_graph_library() -> None:
    import subprocess
    import sys

    code = ("import sys, dynamo_nb; d = dynamo_nb.diagram; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'IPython', 'ipywidgets', 'graphviz', 'networkx'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------------------------------------ live views
async def test_live_view_coalesces_a_burst_of_a_thousand_events(small: dict[str, Any]) -> None:
    component = small["worker"].namespace("dynamo").component("Worker")
    view = dynamo_nb.live(small["worker"], "pubsub", display=False)
    assert view.redraws == 0
    for i in range(1000):
        await component.publish("kv_events", {"i": i})
        if i % 10 == 9:
            await asyncio.sleep(0.01)  # the burst spans about a second
    final = await view.settle(timeout=5)
    assert 2 <= view.redraws <= 10, view.redraws
    assert '#quot;i#quot;: 999' in final.mermaid
    assert "earlier messages not shown" in final.mermaid
    assert view.diagram is final


async def test_live_view_follows_instances_and_lifecycle(small: dict[str, Any]) -> None:
    worker = small["worker"]
    view = worker.live()  # the runtime's default kind
    assert view.kind == "hierarchy"
    second = await worker.endpoint("dynamo.Worker.health").endpoint_builder().handler(tokens).start()
    drawn = await view.wait_redraws(1, timeout=5)
    assert "Endpoint health" in (await view.settle()).mermaid
    await second.stop()
    await view.settle()
    assert "Endpoint health" not in view.diagram.mermaid
    assert drawn is not view.diagram
    life = dynamo_nb.live(small["served"], display=False)
    assert life.kind == "lifecycle" and "class s3 current" in life.diagram.mermaid
    await small["served"].stop()
    await life.settle()
    assert "class s5 current" in life.diagram.mermaid


async def test_a_new_view_of_the_same_object_stops_the_old_one(small: dict[str, Any]) -> None:
    rt = small["worker"]
    first = dynamo_nb.live(rt, "hierarchy", display=False)
    second = dynamo_nb.live(rt, display=False)  # same object, same (default) kind
    other = dynamo_nb.live(rt, "registry", display=False)
    assert first.stopped and not second.stopped and not other.stopped
    await asyncio.sleep(0)
    assert first._task is not None and first._task.done()
    assert set(live_views()) == {second, other}
    second.stop()
    other.stop()
    assert live_views() == []
    refreshes = second.refreshes
    await rt.namespace("dynamo").component("Worker").publish("kv_events", {"after": "stop"})
    await asyncio.sleep(0.3)
    assert second.refreshes == refreshes
    with pytest.raises(WaitTimeoutError, match="not running"):
        await second.wait_redraws(second.redraws + 1, timeout=0.5)


async def test_wait_redraws_times_out_when_nothing_changes(small: dict[str, Any]) -> None:
    view = dynamo_nb.live(small["served"].endpoint, display=False)
    with pytest.raises(WaitTimeoutError, match="redraw #1 did not happen within 0.3 s"):
        await view.wait_redraws(1, timeout=0.3)


async def test_live_view_bundle_is_the_current_diagram(small: dict[str, Any]) -> None:
    view = dynamo_nb.live(small["client"], display=False)
    bundle = view._repr_mimebundle_()
    assert "text/html" not in bundle and bundle["text/vnd.mermaid"] == view.diagram.mermaid
    assert bundle["text/plain"].startswith("<LiveView hierarchy of client#")


async def test_a_live_view_with_a_target_sends_it_every_frame_first_one_included(small: dict[str, Any]) -> None:
    from dynamo_nb.display.live import LiveView

    frames: list[dict[str, str]] = []
    worker = small["worker"]
    view = LiveView(worker, "hierarchy", target=frames.append)
    assert frames == []  # the first frame is drawn by the view's task, off the cell
    await view.settle()
    assert len(frames) == 1 and frames[0]["text/vnd.mermaid"] == view.diagram.mermaid
    assert "text/html" not in frames[0] and frames[0]["text/plain"].startswith("<LiveView hierarchy")
    second = await worker.endpoint("dynamo.Worker.health").endpoint_builder().handler(tokens).start()
    await second.wait_for_state("Healthy")
    await view.settle()
    assert "Endpoint health" in frames[-1]["text/vnd.mermaid"] == view.diagram.mermaid
    assert len(frames) == 1 + view.redraws  # one frame per change of the drawing
    drawn = len(frames)
    view.refresh()  # nothing changed: the view looks again, the target gets nothing new
    await view.settle()
    assert len(frames) == drawn
    view.stop()
    await second.stop()
    await asyncio.sleep(0)
    assert len(frames) == drawn
