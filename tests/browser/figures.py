"""Measuring drawn figures in JupyterLab: the smallest text a reader sees and the width against the column.

JupyterLab draws a Mermaid output (and an ``image/svg+xml`` one) as an ``<img>`` holding the SVG, scaled to fit
its output. Text inside an image cannot be queried, so each figure's SVG is laid out again in a hidden iframe at
exactly the size the image is drawn, where every text node's computed font size times the SVG's screen scale is
the size on screen. Graphviz SVG that JupyterLab does not draw (Mermaid is preferred in the same bundle) is drawn
the way a frontend that prefers SVG would: an image in a copy of the output, with JupyterLab's own CSS.

Notebooks are opened, run and closed inside one page (``docmanager:open``), so one JupyterLab start serves them
all; the theme is switched with JupyterLab's own command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Figure", "NotebookRunner", "MIN_TEXT_PX"]

#: the smallest readable text, in CSS px, as drawn on the page
MIN_TEXT_PX = 12.0

_JS = r"""
window.__fig = {
  panel(path) {
    for (const w of window.jupyterapp.shell.widgets('main'))
      if (w.context && w.context.path === path && w.content && w.content.widgets) return w;
    return null; },
  ready(path) { const p = this.panel(path); return !!(p && p.context.isReady && p.sessionContext.session
                  && p.sessionContext.session.kernel && p.sessionContext.session.kernel.status === 'idle'); },
  busy(path) { const p = this.panel(path); const s = p.sessionContext.session;
    return !(s && s.kernel && s.kernel.status === 'idle')
      || [...p.node.querySelectorAll('.jp-InputPrompt')].some(e => e.textContent.includes('*')); },
  open(path) { window.__figOpen = 'opening';
    window.jupyterapp.commands.execute('docmanager:open', {path, factory: 'Notebook'}).then(
      () => { window.__figOpen = 'done'; }, e => { window.__figOpen = 'failed: ' + e; }); },
  run(path) { window.__figRun = 'running';
    const app = window.jupyterapp, p = this.panel(path);
    this.svgs = [];
    p.sessionContext.session.kernel.iopubMessage.connect((_, msg) => {
      const data = (msg.content || {}).data || {};
      if (data['image/svg+xml'] && data['text/vnd.mermaid']) this.svgs.push(data['image/svg+xml']); });
    app.shell.activateById(p.id);
    app.commands.execute('notebook:run-all-cells').then(() => { window.__figRun = 'done'; },
                                                        e => { window.__figRun = 'failed: ' + e; }); },
  async close(path) { const p = this.panel(path); if (!p) return;
    await p.sessionContext.shutdown(); p.dispose(); },
  mermaid(path) { return [...this.panel(path).node.querySelectorAll('.jp-RenderedMermaid figure code')]
                   .map(c => c.textContent); },
  errors(path) { const p = this.panel(path);
    return p.content.widgets.filter(c => c.model.type === 'code')
      .flatMap(c => c.model.outputs.toJSON()).filter(o => o.output_type === 'error')
      .map(o => o.ename + ': ' + o.evalue); },
  pending(path) {  // figures not drawn yet
    const p = this.panel(path);
    const mermaid = [...p.node.querySelectorAll('.jp-OutputArea-output.jp-RenderedMermaid')];
    return mermaid.filter(o => !o.matches('.jp-mod-warning') && !o.querySelector('.jp-mod-warning')
                               && !([...o.querySelectorAll('img')].some(i => i.complete && i.naturalWidth))).length; },
  warnings(path) { return this.panel(path).node.querySelectorAll('.jp-RenderedMermaid.jp-mod-warning, '
                                                                 + '.jp-RenderedMermaid .jp-mod-warning').length; },

  // The text sizes on screen of the SVG drawn by `img`: laid out again in an iframe at the image's drawn size.
  async measureImage(img) {
    const box = img.getBoundingClientRect();
    const src = decodeURIComponent(img.getAttribute('src').replace(/^data:image\/svg\+xml(;charset=[^,;]*)?,/, ''));
    const frame = document.createElement('iframe');
    frame.style.cssText = `position:fixed;left:-20000px;top:0;border:0;width:${box.width}px;height:${box.height}px`;
    document.body.appendChild(frame);
    try {
      const doc = frame.contentDocument;
      doc.open(); doc.write('<!doctype html><html><body style="margin:0"></body></html>'); doc.close();
      const svg = doc.importNode(new DOMParser().parseFromString(src, 'image/svg+xml').documentElement, true);
      doc.body.appendChild(svg);
      svg.removeAttribute('style');
      svg.setAttribute('width', box.width); svg.setAttribute('height', box.height);
      await doc.fonts.ready;
      const sizes = [];
      const walker = doc.createTreeWalker(svg, NodeFilter.SHOW_TEXT);
      for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const text = n.textContent.trim();
        const el = n.parentElement;
        if (!text || !el || el.closest('style, title, desc, defs')) continue;
        const graphic = el.closest('foreignObject') || el.closest('text');
        if (!graphic || !graphic.getScreenCTM) continue;
        const m = graphic.getScreenCTM();
        const scale = Math.sqrt(Math.abs(m.a * m.d - m.b * m.c));
        const r = el.getBoundingClientRect();
        if (r.width === 0 && r.height === 0) continue;  // not drawn
        sizes.push([parseFloat(frame.contentWindow.getComputedStyle(el).fontSize) * scale, text.slice(0, 60)]);
      }
      sizes.sort((a, b) => a[0] - b[0]);
      return sizes;
    } finally { frame.remove(); }
  },

  async figures(path) {
    const p = this.panel(path), out = [];
    const cells = p.content.widgets;
    for (let ci = 0; ci < cells.length; ci++) {
      const cell = cells[ci];
      if (cell.model.type !== 'code') continue;
      const outputs = [...cell.node.querySelectorAll('.jp-OutputArea-output')];
      for (const node of outputs) {
        const img = node.querySelector('.jp-RenderedMermaid img, .jp-RenderedSVG img, img');
        if (!img || img.closest('.jp-OutputArea-output') !== node) continue;  // nested outputs: measured once
        if (!/^data:image\/svg\+xml/.test(img.getAttribute('src') || '')) continue;
        out.push(await this.one(ci, node.classList.contains('jp-RenderedMermaid') ? 'mermaid' : 'svg', node, img));
      }
    }
    // JupyterLab's Mermaid renderer replaces the bundle's graphviz SVG with its own drawing, so the graphviz SVG is
    // kept as it came from the kernel and drawn as a frontend preferring SVG would: an image in an output.
    const mermaid = [...p.node.querySelectorAll('.jp-OutputArea-output.jp-RenderedMermaid')];
    const host = mermaid[0] || p.node.querySelector('.jp-OutputArea-output');
    for (const [i, svg] of (this.svgs || []).entries()) {
      const row = host.parentElement.cloneNode(false), prompt = host.previousElementSibling;
      if (prompt) row.appendChild(prompt.cloneNode(false));
      const copy = document.createElement('div');
      copy.className = 'lm-Widget jp-RenderedSVG jp-OutputArea-output';
      copy.dataset.mimeType = 'image/svg+xml';
      const img = document.createElement('img');
      img.src = 'data:image/svg+xml,' + encodeURIComponent(svg);
      copy.appendChild(img);
      row.appendChild(copy);
      host.parentElement.after(row);
      await img.decode();
      try { out.push(await this.one(i, 'graphviz', copy, img)); } finally { row.remove(); }
    }
    return out; },

  natural(img) {  // the width the SVG asks for, in CSS px (Mermaid: its max-width; graphviz: width in pt)
    const src = decodeURIComponent(img.getAttribute('src').replace(/^data:image\/svg\+xml(;charset=[^,;]*)?,/, ''));
    const svg = new DOMParser().parseFromString(src, 'image/svg+xml').documentElement;
    const max = parseFloat(svg.style && svg.style.maxWidth);
    if (max) return max;
    const w = svg.getAttribute('width') || '', units = {pt: 4 / 3, px: 1, '': 1, in: 96, cm: 96 / 2.54};
    const m = w.match(/^([0-9.]+)(pt|px|in|cm|)$/);
    if (m) return parseFloat(m[1]) * units[m[2]];
    const vb = (svg.getAttribute('viewBox') || '').split(/[\s,]+/).map(Number);
    return vb.length === 4 ? vb[2] : img.naturalWidth; },

  async one(cell, kind, node, img) {
    const box = img.getBoundingClientRect(), area = node.getBoundingClientRect();
    const style = getComputedStyle(node);
    const scrolls = node.scrollWidth > node.clientWidth + 1 && /auto|scroll/.test(style.overflowX);
    const sizes = await this.measureImage(img);
    const code = img.closest('figure') && img.closest('figure').querySelector('code');
    const first = (code ? code.textContent : '').split('\n').find(l => /^\s*(flowchart|sequenceDiagram|classDiagram|stateDiagram)/.test(l)) || '';
    return {cell, kind, diagram: first.trim().split(' ')[0], width: box.width, height: box.height,
            natural: this.natural(img), column: area.width - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight),
            scrolls, smallest: sizes.length ? sizes[0][0] : null, smallest_text: sizes.length ? sizes[0][1] : '',
            texts: sizes.length}; },
};
"""


@dataclass(frozen=True)
class Figure:
    """One drawn figure: where it is, how wide it is drawn, and its smallest text on screen."""

    notebook: str
    theme: str
    cell: int
    kind: str  # mermaid | svg | graphviz
    diagram: str
    width: float
    height: float
    natural: float
    column: float
    scrolls: bool
    smallest: float | None
    smallest_text: str
    texts: int

    @property
    def fits(self) -> bool:
        """Not wider than the notebook's column, or scrolling inside its output at full size."""
        return self.width <= self.column + 1 or (self.scrolls and self.width >= self.natural - 1)

    @property
    def legible(self) -> bool:
        return self.smallest is not None and self.smallest >= MIN_TEXT_PX - 0.05

    def __str__(self) -> str:
        return (f"{self.notebook} [{self.theme}] cell {self.cell} {self.kind} {self.diagram or ''}: "
                f"{self.width:.0f}x{self.height:.0f} px drawn (natural {self.natural:.0f}, column {self.column:.0f}),"
                f" smallest text {self.smallest or 0:.1f} px {self.smallest_text!r}")


class NotebookRunner:
    """One JupyterLab page that opens, runs, measures and closes notebooks, one after the other."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        page.add_init_script(_JS)
        page.goto(f"{base}/lab", wait_until="domcontentloaded")
        page.wait_for_function("() => !!window.jupyterapp && !!window.__fig", timeout=90_000, polling=250)
        page.evaluate("() => window.jupyterapp.restored")
        page.wait_for_function("() => document.body.dataset.jpThemeName", timeout=90_000, polling=250)

    def theme(self, name: str) -> None:
        """Switch JupyterLab's theme (``JupyterLab Light`` / ``JupyterLab Dark``) and wait until it is applied."""
        self.page.evaluate("t => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", name)
        self.page.wait_for_function("t => document.body.dataset.jpThemeName === t", arg=name, timeout=30_000)

    def run(self, path: str, timeout: float = 180.0) -> list[str]:
        """Open ``path``, run every cell, wait until every figure is drawn; the error outputs."""
        page = self.page
        page.evaluate("p => __fig.open(p)", path)
        page.wait_for_function("() => window.__figOpen !== 'opening'", timeout=90_000, polling=250)
        assert page.evaluate("() => window.__figOpen") == "done", page.evaluate("() => window.__figOpen")
        page.wait_for_function("p => __fig.ready(p)", arg=path, timeout=90_000, polling=250)
        page.evaluate("() => { const a = window.jupyterapp; a.shell.collapseLeft(); a.shell.collapseRight(); }")
        page.evaluate("p => __fig.run(p)", path)
        page.wait_for_function("p => window.__figRun !== 'running' && !__fig.busy(p)", arg=path,
                               timeout=timeout * 1000, polling=250)
        page.wait_for_function("p => __fig.pending(p) === 0", arg=path, timeout=60_000, polling=250)
        return list(page.evaluate("p => __fig.errors(p)", path))

    def mermaid_errors(self, path: str) -> int:
        """How many Mermaid outputs JupyterLab could not draw (shown as a warning with the source)."""
        return int(self.page.evaluate("p => __fig.warnings(p)", path))

    def figures(self, path: str, theme: str) -> list[Figure]:
        return [Figure(notebook=path, theme=theme, **f) for f in self.page.evaluate("p => __fig.figures(p)", path)]

    def close(self, path: str) -> None:
        self.page.evaluate("p => __fig.close(p)", path)
