"""A walkthrough exported with ``nbconvert --to html`` shows every figure in Chromium, with no network.

nbconvert's HTML does not render Mermaid; what a reader sees there (as in VS Code, nbviewer or GitHub) is the
bundle's ``image/svg+xml``. So every figure output must carry SVG and draw as a visible SVG with its text, here
with ``dot`` removed from the kernel's PATH (the graphviz-pure wheel draws instead).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from .lab import CHROMIUM, browser_page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def execute(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    env = {k: v for k, v in os.environ.items() if k not in ("ETCD_ENDPOINTS", "NATS_SERVER", "DYNAMO_NB_USE_CLUSTER")}
    env["PATH"] = str(Path(sys.executable).parent)  # no system dot: only the venv's executables
    client = NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    asyncio.run(client.async_execute(env=env))
    return nb


@pytest.mark.parametrize("name", ["05-lifecycle.ipynb", "10-faults.ipynb"])
def test_exported_html_shows_every_figure_in_chromium(name: str, tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "Debian chromium is required (apt-get install chromium)"
    nb = execute(NOTEBOOKS / name)
    # figures, not widgets: a saved Timeline widget is drawn by a widget manager, where there is one
    figures = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if "text/vnd.mermaid" in o.get("data", {})
               and "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
    assert figures and all("image/svg+xml" in o["data"] for o in figures), "a figure without SVG"
    html_path = tmp_path / "walkthrough.html"
    html_path.write_text(HTMLExporter().from_notebook_node(nb)[0], encoding="utf-8")
    with browser_page() as page:
        page.context.set_offline(True)
        page.goto(html_path.as_uri())
        page.wait_for_load_state("load")
        # nbconvert embeds each SVG as an <img> data URL: drawn means decoded, with a size on the page
        drawn = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output img')]
            .filter(img => img.src.startsWith('data:image/svg+xml'))
            .map(img => { const r = img.getBoundingClientRect();
                          return {w: r.width, h: r.height, natural: img.naturalWidth, ok: img.complete}; })""")
    print(f"\n{name}: {len(figures)} figures, {len(drawn)} drawn as SVG")
    assert len(drawn) == len(figures), drawn
    assert all(d["ok"] and d["natural"] > 50 and d["w"] > 50 and d["h"] > 20 for d in drawn), drawn
