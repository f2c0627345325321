"""A timeline exported as HTML replays its story in Chromium with the network off, one frame per step.

The page is built from a small real system (embedded backend: serve, call, stop), in Chinese, opened from a file
with every request that is not that file aborted, and stepped with its slider and its ◀ ▶ buttons: at each step
the frame shown is the one the timeline drew for that event, and the caption is that event's line.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

import dynamo_nb
from dynamo_nb import DistributedRuntime

from .lab import CHROMIUM, browser_page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


async def _story(path: Path) -> dynamo_nb.Timeline:
    worker = await DistributedRuntime.create(name="worker")
    front = await DistributedRuntime.create(name="frontend")

    async def tokens(request: Any) -> Any:
        for tok in str(request.get("prompt", "")).split():
            yield {"token": tok}

    served = await worker.endpoint("dynamo.Worker.generate").endpoint_builder().handler(tokens).start()
    client = await front.endpoint("dynamo.Worker.generate").client()
    await client.wait_for_instances(timeout=5)
    await (await client.round_robin({"prompt": "a b"})).collect()
    await served.stop()
    await front.shutdown()
    await worker.shutdown()
    timeline = dynamo_nb.Timeline([served, worker], kind="lifecycle", lang="zh")
    timeline.export_html(path)
    return timeline


def test_the_exported_timeline_steps_through_its_frames_offline(tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "Debian chromium is required (apt-get install chromium)"
    path = tmp_path / "story.html"
    timeline = asyncio.run(_story(path))
    text = path.read_text(encoding="utf-8")
    index = json.loads(re.search(r"const index = (.*);", text).group(1))  # type: ignore[union-attr]
    captions = json.loads(re.search(r"const captions = (.*);", text).group(1))  # type: ignore[union-attr]
    assert len(index) == len(timeline) and len(set(index)) >= 4  # a frame per lifecycle state, at least
    requested: list[str] = []
    with browser_page(1000, 800) as page:
        def only_the_file(route: Any) -> None:
            requested.append(route.request.url)
            (route.continue_() if route.request.url == path.as_uri() else route.abort())
        page.route("**/*", only_the_file)
        page.goto(path.as_uri())

        def shown() -> tuple[list[str], str, str]:
            return (page.eval_on_selector_all(".frame:not([hidden])", "fs => fs.map(f => f.id)"),
                    page.text_content("#caption") or "", page.get_attribute("body", "data-step") or "")

        last = len(timeline) - 1
        assert shown() == ([f"f{index[last]}"], captions[last], str(last))
        for i in (0, len(timeline) // 2, last - 1):  # the slider, dragged to a step
            page.eval_on_selector("#slider", "(s, i) => { s.value = i; s.dispatchEvent(new Event('input')); }", i)
            assert shown() == ([f"f{index[i]}"], captions[i], str(i))
        page.click("#forward")
        assert shown() == ([f"f{index[last]}"], captions[last], str(last))
        page.click("#back")
        assert shown()[2] == str(last - 1)
        frame_svg = page.inner_html(f"#f{index[last - 1]}")
        assert "<svg" in frame_svg and "当前" in frame_svg  # the figure itself, in Chinese
    assert requested == [path.as_uri()], requested  # nothing but the page itself was asked for
