"""The control panel's diagram in a real JupyterLab: every kind readable, in the light and the dark theme.

The playground notebook runs, two workers are served and called by clicking, then every kind of the panel's
diagram is measured as drawn: the smallest text in the SVG (its computed font size) times the scale the image
is shown at must be at least 12 px. Zooming enlarges it and the full-width placement keeps it readable.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from dynamo_nb.widgets.diagram_pane import DEFAULT_KINDS

from .lab import CHROMIUM, NotebookPage, browser_page, running_lab

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parents[2]
PLAYGROUND = next((REPO / "notebooks").glob("07-*.ipynb"))
MIN_TEXT_PX = 12.0
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}

# The drawn image's SVG, put back into the page (hidden) so the browser computes its text styles; the scale is
# the image's rendered width over the SVG's own width (viewBox), CSS zoom included.
MEASURE = r"""
() => {
  const img = document.querySelector('.dnb-diagram .jp-RenderedMermaid img');
  if (!img || !img.complete) return null;
  const src = img.getAttribute('src'), data = src.slice(src.indexOf(',') + 1);
  const text = src.slice(0, src.indexOf(',')).endsWith(';base64') ? atob(data) : decodeURIComponent(data);
  const host = document.createElement('div');
  host.style.cssText = 'position:absolute;left:-100000px;top:0;visibility:hidden';
  host.innerHTML = text;
  document.body.appendChild(host);
  try {
    const svg = host.querySelector('svg');
    const box = svg.viewBox && svg.viewBox.baseVal && svg.viewBox.baseVal.width ? svg.viewBox.baseVal.width
              : parseFloat(svg.getAttribute('width'));
    const rect = img.getBoundingClientRect();
    const scale = rect.width / box;
    let smallest = Infinity, sample = '';
    for (const el of svg.querySelectorAll('*')) {
      if (el.closest('style, title, desc, defs')) continue;
      const own = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('').trim();
      if (!own) continue;
      const size = parseFloat(getComputedStyle(el).fontSize);
      if (size < smallest) { smallest = size; sample = own.slice(0, 40); }
    }
    return {font: smallest, scale, px: smallest * scale, sample, width: rect.width, source: svg.id};
  } finally { host.remove(); }
}
"""


# Every part of the controls shows its whole content (none squeezed to a height smaller than what it holds).
FITS = r"""
() => [...document.querySelectorAll('.dnb-serve-form, .dnb-instance-table, .dnb-call-form')]
        .every(e => e.scrollHeight <= e.clientHeight + 1)
"""

# The drawing scrolls sideways within the cell: its nearest scrolling box lies inside the cell's output (no
# ancestor clips it) and can be scrolled to the far end.
SCROLLS = r"""
() => {
  const img = document.querySelector('.dnb-diagram .jp-RenderedMermaid img');
  let box = img.parentElement;
  while (box && !(box.scrollWidth > box.clientWidth + 50 && /auto|scroll/.test(getComputedStyle(box).overflowX)))
    box = box.parentElement;
  if (!box) return {scrollable: false};
  const area = document.querySelector('.dnb-control-panel').closest('.jp-OutputArea-output').getBoundingClientRect();
  const r = box.getBoundingClientRect();
  box.scrollLeft = box.scrollWidth;
  const moved = box.scrollLeft > 0;
  box.scrollLeft = 0;
  return {scrollable: true, moved, inside: r.left >= area.left - 1 && r.right <= area.right + 1,
          box: box.tagName, left: r.left, right: r.right, areaLeft: area.left, areaRight: area.right,
          content: box.scrollWidth, image: img.getBoundingClientRect().width};
}
"""


def diagram_source(page: Any) -> str:
    return str(page.evaluate("() => { const e = document.querySelector('.dnb-diagram .jp-RenderedMermaid');"
                             " return e ? e.textContent : ''; }"))


def choose_kind(page: Any, kind: str) -> None:
    """Pick ``kind`` in the pane's dropdown and wait until the image of that kind is drawn."""
    before = page.evaluate("() => { const i = document.querySelector('.dnb-diagram .jp-RenderedMermaid img');"
                           " return i ? i.getAttribute('src') : ''; }")
    page.select_option(".dnb-diagram-kind select", kind)
    page.wait_for_function("before => { const i = document.querySelector('.dnb-diagram .jp-RenderedMermaid img');"
                           " return !!i && i.complete && i.naturalWidth > 0 && i.getAttribute('src') !== before; }",
                           arg=before, timeout=20_000)


def measure(page: Any) -> dict[str, Any]:
    handle = page.wait_for_function(f"() => ({MEASURE})()", timeout=20_000)
    return dict(handle.json_value())


def set_theme(page: Any, theme: str) -> None:
    page.evaluate("t => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", THEMES[theme])
    page.wait_for_function("dark => document.body.dataset.jpThemeLight === (dark ? 'false' : 'true')",
                           arg=theme == "dark", timeout=20_000)


def test_every_kind_of_the_panel_diagram_is_readable_in_both_themes(tmp_path: Path, artifacts: Path) -> None:
    assert Path(CHROMIUM).exists(), "Debian chromium is required (apt-get install chromium)"
    shutil.copy(PLAYGROUND, tmp_path / PLAYGROUND.name)
    with running_lab(tmp_path) as lab, browser_page(height=1300) as page:
        nb = NotebookPage(page, lab, PLAYGROUND.name).open()
        try:
            drive(page, nb, artifacts)
        except BaseException:
            nb.screenshot(artifacts / "panel-legibility-failure.png")
            raise


def drive(page: Any, nb: NotebookPage, artifacts: Path) -> None:
    nb.run_all()
    assert nb.errors() == []
    panel = page.locator(".dnb-control-panel")
    panel.wait_for()
    for n in (1, 2):  # two workers and a call: every kind has something to draw
        page.click("button.dnb-serve-button")
        page.wait_for_function(f"() => document.querySelectorAll('.dnb-instance-row').length === {n}")
    page.fill(".dnb-request textarea", json.dumps({"prompt": "a b c", "delay": 0}))
    page.click("button.dnb-call-button")
    page.locator(".dnb-call-status").get_by_text("complete: 3 item(s)").wait_for(timeout=15_000)
    page.wait_for_function("() => document.querySelector('.dnb-diagram .jp-RenderedMermaid')"
                           " && document.querySelector('.dnb-diagram .jp-RenderedMermaid').textContent"
                           ".includes('worker-2')", timeout=20_000)

    seen: dict[str, dict[str, Any]] = {}
    for theme in ("light", "dark"):
        set_theme(page, theme)
        for kind in DEFAULT_KINDS:
            if page.input_value(".dnb-diagram-kind select") != kind:
                choose_kind(page, kind)
            got = measure(page)
            seen[f"{theme}/{kind}"] = got
            assert got["scale"] >= 0.99, (theme, kind, got)  # never shrunk below its own size (1 % for rounding)
            assert got["px"] >= MIN_TEXT_PX, (theme, kind, got)
        page.evaluate("() => document.querySelector('.dnb-control-panel').closest('.jp-Cell')"
                      ".scrollIntoView({block: 'start'})")
        nb.screenshot(artifacts / f"panel-legibility-{theme}.png")

    # Zoom enlarges the drawing (layout included: the frame scrolls); full width keeps the scale.
    choose_kind(page, "hierarchy")
    natural = measure(page)
    page.click(".dnb-diagram-zoom button:has-text('2×')")
    page.wait_for_function(f"() => ({MEASURE})().px > {natural['px'] * 1.9}", timeout=10_000)
    page.click(".dnb-diagram-zoom button:has-text('1×')")
    page.click("button.dnb-diagram-wide")
    page.wait_for_function("() => getComputedStyle(document.querySelector('.dnb-control-panel .widget-hbox')"
                           ").flexDirection === 'column'", timeout=10_000)
    wide = measure(page)
    assert abs(wide["px"] - natural["px"]) < 0.01, (wide, natural)
    # Below the controls, nothing of them is cut off; the drawing wider than the column scrolls in its frame.
    page.wait_for_function(FITS, timeout=10_000)
    choose_kind(page, "registry")
    page.wait_for_function(FITS, timeout=10_000)
    page.click(".dnb-diagram-zoom button:has-text('2×')")  # twice its size: wider than the column, so it scrolls
    page.wait_for_function(f"() => ({SCROLLS})().scrollable", timeout=10_000)
    scroll = page.evaluate(SCROLLS)
    assert scroll["scrollable"] and scroll["inside"] and scroll["moved"], json.dumps(scroll)
    nb.screenshot(artifacts / "panel-legibility-wide.png")
    (artifacts / "panel-legibility.json").write_text(json.dumps(seen, indent=1))
    assert nb.errors() == []
