"""The playground notebook in a real JupyterLab: run it, then serve, call, kill and stop endpoints by clicking.

JupyterLab is started by the test on a free 127.0.0.1 port (no token, throw-away dirs) and driven by headless
Debian Chromium through Playwright. Screenshots of each stage go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from .lab import CHROMIUM, NotebookPage, browser_page, running_lab

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
PLAYGROUND = next((REPO / "notebooks").glob("07-*.ipynb"))

MERMAID_DRAWN = ".jp-RenderedMermaid:not(.jp-mod-warning) img[src^='data:image/svg+xml']"


def wait_diagram(page: Any, predicate: str, timeout: float = 15.0) -> None:
    """Wait until the Mermaid text the panel's diagram shows satisfies the JS ``predicate`` (JupyterLab keeps the
    source beside the drawn SVG)."""
    page.wait_for_function(f"() => {{ const e = document.querySelector('.dnb-diagram .jp-RenderedMermaid');"
                           f" return !!e && ({predicate})(e.textContent); }}", timeout=timeout * 1000)


def instance_id(row_text: str) -> str:
    match = re.search(r"instance ([0-9a-f]+)", row_text)
    assert match, row_text
    return match.group(1)


def test_playground_serves_calls_kills_and_stops_from_the_browser(tmp_path: Path, artifacts: Path) -> None:
    assert Path(CHROMIUM).exists(), "Debian chromium is required (apt-get install chromium)"
    shutil.copy(PLAYGROUND, tmp_path / PLAYGROUND.name)
    with running_lab(tmp_path) as lab, browser_page(height=1300) as page:
        nb = NotebookPage(page, lab, PLAYGROUND.name).open()
        try:
            drive(page, nb, artifacts)
        except BaseException:
            nb.screenshot(artifacts / "playground-failure.png")
            raise


def drive(page: Any, nb: NotebookPage, artifacts: Path) -> None:
    """Run the notebook, then use the panel as a reader would; screenshots at each stage."""

    def shot(name: str) -> None:
        page.evaluate("() => document.querySelector('.dnb-control-panel').closest('.jp-Cell')"
                      ".scrollIntoView({block: 'start'})")
        nb.screenshot(artifacts / name)

    nb.run_all()
    assert nb.errors() == []

    # Mermaid outputs were drawn as SVG by JupyterLab itself, and no diagram failed to parse.
    page.wait_for_selector(MERMAID_DRAWN, timeout=30_000)
    assert page.locator(".jp-RenderedMermaid.jp-mod-warning").count() == 0
    panel = page.locator(".dnb-control-panel")
    panel.wait_for()
    panel.scroll_into_view_if_needed()
    shot("playground-1-after-run.png")

    # A bad name: the field says why, nothing is created.
    page.fill(".dnb-namespace input", "Bad Name")
    message = page.locator(".dnb-namespace-message")
    message.get_by_text("invalid namespace name 'Bad Name'").wait_for()
    page.click("button.dnb-serve-button")
    page.locator(".dnb-serve-status").get_by_text("nothing was created").wait_for()
    assert page.locator(".dnb-instance-row").count() == 0
    shot("playground-2-bad-name.png")
    page.fill(".dnb-namespace input", "dynamo")
    page.wait_for_function("() => !document.querySelector('.dnb-namespace-message').textContent.trim()")

    # Serve: an instance row appears and the diagram beside the controls shows the endpoint.
    page.click("button.dnb-serve-button")
    page.locator(".dnb-serve-status").get_by_text("serving dynamo.Processor.generate").wait_for()
    assert page.locator(".dnb-instance-row").count() == 1
    wait_diagram(page, "s => s.includes('generate') && s.includes('worker-1')")
    page.wait_for_selector(".dnb-diagram " + MERMAID_DRAWN)

    # Call: the streamed items appear one by one, before the stream completes.
    request = {"prompt": "one two three four five six seven eight", "delay": 0.4}
    page.fill(".dnb-request textarea", json.dumps(request))
    page.click("button.dnb-call-button")
    output = page.locator(".dnb-call-output")
    output.get_by_text('"token": "one"').wait_for(timeout=10_000)
    assert "complete" not in page.inner_text(".dnb-call-status")
    assert '"token": "eight"' not in output.inner_text()
    shot("playground-3-streaming.png")
    page.locator(".dnb-call-status").get_by_text("complete: 8 item(s)").wait_for(timeout=15_000)
    assert output.inner_text().count('"token"') == 8

    # Invalid JSON is reported beside the request; nothing is sent.
    page.fill(".dnb-request textarea", '{"prompt": ')
    page.locator(".dnb-request-message").get_by_text("invalid JSON").wait_for()
    page.click("button.dnb-call-button")
    page.locator(".dnb-call-status").get_by_text("nothing was sent").wait_for()
    page.fill(".dnb-request textarea", json.dumps({"prompt": "again", "delay": 0}))

    # A second worker, then kill it: the lease counts down, then the instance is gone, from the list and the diagram.
    page.click("button.dnb-serve-button")
    page.wait_for_function("() => document.querySelectorAll('.dnb-instance-row').length === 2")
    page.wait_for_function("() => document.querySelectorAll('.dnb-instance select option').length === 2")
    assert json.loads(page.input_value(".dnb-request textarea")) == {"prompt": "again", "delay": 0}
    rows = page.locator(".dnb-instance-row")
    killed_id, kept_id = (instance_id(rows.nth(i).inner_text()) for i in (1, 0))
    rows.nth(1).locator("button.dnb-kill-button").click()
    rows.nth(1).get_by_text("lease expires in").wait_for()
    assert rows.nth(1).locator(".dnb-lease-countdown").is_visible()
    wait_diagram(page, "s => s.includes('killed')")
    shot("playground-4-lease-countdown.png")
    rows.nth(1).get_by_text("lease expired, key deleted").wait_for(timeout=20_000)
    page.wait_for_function("() => document.querySelectorAll('.dnb-instance select option').length === 1")
    wait_diagram(page, f"s => !s.includes('{killed_id}') && s.includes('{kept_id}')")

    # Stop the other instance gracefully: its row says so and it leaves the diagram; calling now fails inline.
    rows.nth(0).locator("button.dnb-stop-button").click()
    rows.nth(0).get_by_text("Deregistered").wait_for()
    wait_diagram(page, f"s => !s.includes('{kept_id}') && s.includes('no live instance')")
    page.wait_for_selector(".dnb-diagram " + MERMAID_DRAWN)
    page.wait_for_function("() => document.querySelector('.dnb-instance select').textContent"
                           ".replace(/\\u00a0/g, ' ') === '(no instances)'")  # Dropdown shows spaces as NBSP
    page.click("button.dnb-call-button")
    page.locator(".dnb-instance-message").get_by_text(
        "no instances of endpoint 'dynamo.Processor.generate' are live").wait_for()
    shot("playground-5-stopped.png")
    assert nb.errors() == []
    assert page.locator(".jp-OutputArea-output.jupyter-widgets").count() == 0  # no "Error displaying widget"
