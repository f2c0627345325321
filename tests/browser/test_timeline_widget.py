"""The Timeline widget in a real JupyterLab: step it with ▶ ◀ and its slider, as a reader would.

A small notebook serves an endpoint on the embedded backend, calls it, stops it, and shows two timelines of what
happened: the hierarchy in English and the instance's lifecycle in Chinese. In headless Chromium the slider is
dragged and the step buttons clicked; after each step the label is that event's whole line (wrapped, not cut
off) and the figure (drawn by JupyterLab's Mermaid) is the system as it was then: the instance created, running,
stopping, then gone; a step back brings the earlier figure back. No JavaScript error and no Mermaid error along
the way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from .lab import CHROMIUM, NotebookPage, browser_page, running_lab

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

CELLS = [
    """import asyncio, json
import dynamo_nb
from dynamo_nb import DistributedRuntime

runtime = await DistributedRuntime.create(name="lab")
async def generate(request):
    for word in request["prompt"].split():
        yield {"token": word}
served = await runtime.endpoint("demo.Worker.generate").endpoint_builder().handler(generate).start()""",
    """client = await runtime.endpoint("demo.Worker.generate").client()
await client.wait_for_instances(timeout=5)
await (await client.round_robin({"prompt": "a b"})).collect()""",
    """await served.stop()
async def deleted():  # until the client's watch has seen the key go
    while client.instance_ids():
        await client.watcher.wait_changed()
await asyncio.wait_for(deleted(), 5)""",
    """timeline = dynamo_nb.Timeline(runtime, kind="hierarchy")
timeline""",
    """timeline_zh = dynamo_nb.Timeline(served, kind="lifecycle", lang="zh")
timeline_zh""",
    """print(json.dumps({"instance": f"{served.instance_id:x}",
                  "captions": [[t.caption(i) for i in range(len(t))] for t in (timeline, timeline_zh)]}))""",
]

# The k-th timeline as shown: its label (and whether all of it fits), its figure's Mermaid source and drawn image.
SHOWN = r"""
k => {
  const t = document.querySelectorAll('.dnb-timeline')[k];
  if (!t) return null;
  const caption = t.querySelector('.dnb-timeline-caption');
  const out = t.querySelector('.dnb-timeline-figure .jp-RenderedMermaid');
  const img = out && out.querySelector('img');
  const inside = [caption, ...caption.querySelectorAll('*')].every(e => e.scrollWidth <= e.clientWidth + 1);
  return {caption: caption.textContent.trim(), fits: inside, source: out ? out.textContent : '',
          warning: !!t.querySelector('.jp-mod-warning'),
          image: img && img.complete && img.naturalWidth ? img.getAttribute('src') : null};
}
"""


class Shown:
    """One timeline widget on the page, read and driven the way a reader would."""

    def __init__(self, page: Any, k: int, captions: list[str]) -> None:
        self.page, self.k, self.captions = page, k, captions
        self.root = page.locator(".dnb-timeline").nth(k)

    def now(self) -> dict[str, Any]:
        return dict(self.page.evaluate(SHOWN, self.k))

    def wait(self, step: int, has: str = "", lacks: str = "", source: str = "") -> dict[str, Any]:
        """Wait until the label is event ``step``'s and the figure is drawn from a source with ``has`` and
        without ``lacks`` (or exactly ``source``); return what is shown."""
        from playwright.sync_api import TimeoutError

        try:
            self.page.wait_for_function(
                f"([k, caption, has, lacks, source]) => {{ const s = ({SHOWN})(k);"
                " return s && s.caption === caption && !!s.image && s.source.includes(has)"
                " && !(lacks && s.source.includes(lacks)) && (!source || s.source === source); }",
                arg=[self.k, self.captions[step], has, lacks, source], timeout=15_000)
        except TimeoutError:
            shown = self.now()
            raise AssertionError(f"step {step} ({self.captions[step]!r}) wanted a figure with {has!r}"
                                 f"{f' and without {lacks!r}' if lacks else ''}; shown: {shown['caption']!r}\n"
                                 f"{shown['source']}") from None
        shown = self.now()
        assert shown["fits"], f"the label is cut off: {shown['caption']}"
        assert not shown["warning"], "Mermaid could not draw the figure"
        return shown

    def click(self, part: str) -> None:
        self.root.locator(f".dnb-timeline-{part}").click()

    def drag_to(self, step: int) -> None:
        """Drag the slider's handle to ``step`` (of ``len(captions)``), with the mouse."""
        track = self.root.locator(".dnb-timeline-slider .noUi-base").bounding_box()
        handle = self.root.locator(".dnb-timeline-slider .noUi-handle").bounding_box()
        y = handle["y"] + handle["height"] / 2
        self.page.mouse.move(handle["x"] + handle["width"] / 2, y)
        self.page.mouse.down()
        self.page.mouse.move(track["x"] + track["width"] * step / (len(self.captions) - 1), y, steps=8)
        self.page.mouse.up()


def test_the_timeline_widget_steps_through_the_story_in_jupyterlab(tmp_path: Path, artifacts: Path) -> None:
    assert Path(CHROMIUM).exists(), "Debian chromium is required (apt-get install chromium)"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "timeline.ipynb")
    with running_lab(tmp_path) as lab, browser_page(1280, 1000) as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
        notebook = NotebookPage(page, lab, "timeline.ipynb").open()
        try:
            notebook.run_all()
            assert notebook.errors() == []
            told = json.loads(page.locator(".jp-OutputArea-output pre").last.inner_text())
            step_through(page, told["instance"], *told["captions"], artifacts)
        except BaseException:
            notebook.screenshot(artifacts / "timeline-widget-failure.png")
            raise
        assert errors == []


def step_through(page: Any, instance: str, english: list[str], chinese: list[str], artifacts: Path) -> None:
    en, zh = Shown(page, 0, english), Shown(page, 1, chinese)
    last = len(english) - 1
    gone = en.wait(last, has="no live instance", lacks=instance)  # it opens on the last event: all stopped
    assert "watch.delete" in english[last]

    en.drag_to(0)  # the first event: the lease, and the instance just created
    first = en.wait(0, has=f"instance {instance}<br/>Created")
    assert "lease.grant" in english[0] and first["image"] != gone["image"]
    en.click("forward")
    en.wait(1, has=f"instance {instance}<br/>Created")
    assert "lifecycle" in english[1] and "state=Created" in english[1]

    running = next(i for i, c in enumerate(english) if "state=Running" in c)
    en.drag_to(running)
    then = en.wait(running, has=f"instance {instance}<br/>Running")
    assert then["image"] not in (first["image"], gone["image"])
    en.click("forward")
    en.wait(running + 1, has=f"instance {instance}")
    en.click("back")  # back: the same figure as before
    assert en.wait(running, source=then["source"])["image"] == then["image"]
    stopping = next(i for i, c in enumerate(english) if "state=Stopping" in c)
    en.drag_to(stopping)  # the stop takes one turn of the loop; its first step still draws the instance stopping
    en.wait(stopping, has=f"instance {instance}<br/>Stopping")
    page.evaluate("() => document.querySelector('.dnb-timeline').closest('.jp-Cell').scrollIntoView()")
    page.screenshot(path=str(artifacts / "timeline-widget-en.png"))

    # In Chinese: the lifecycle of the instance, the label and the figure in the seed's words.
    zh_last = len(chinese) - 1
    zh.wait(zh_last, has="当前 Deregistered")
    zh.click("back")
    zh.click("back")
    revoked = zh.wait(zh_last - 2, has="当前 Stopping")
    assert "Revoke Lease (lease.revoke)" in chinese[zh_last - 2] and "收到停止信号" in revoked["source"]
    assert zh.root.locator(".dnb-timeline-back").get_attribute("title") == "上一个事件"
    page.evaluate("() => document.querySelectorAll('.dnb-timeline')[1].closest('.jp-Cell').scrollIntoView()")
    page.screenshot(path=str(artifacts / "timeline-widget-zh.png"))
