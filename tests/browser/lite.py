"""The JupyterLite site in a browser test: built once, served on 127.0.0.1, opened in Chromium that can reach
nothing else (every other request is aborted and recorded, and host names resolve to nothing)."""

from __future__ import annotations

import functools
import os
import subprocess
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from .lab import CHROME_ARGS, CHROMIUM

__all__ = ["build_site", "SiteServer", "offline_page", "LITE_JS"]

REPO = Path(__file__).resolve().parents[2]

#: nothing but loopback resolves, whatever asks (the page, its workers, a service worker)
OFFLINE_ARGS = [*CHROME_ARGS, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def build_site(output: Path) -> Path:
    """``scripts/lite --output DIR``: the README's one command, its downloads cached between runs."""
    subprocess.run([str(REPO / "scripts" / "lite"), "--output", str(output)], check=True, cwd=REPO, timeout=900)
    return output


class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm",
                      ".mjs": "text/javascript", ".js": "text/javascript", ".json": "application/json"}

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        self.server.requests.append((self.path, int(code)))  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass


class SiteServer:
    """A static file server for the site on a free 127.0.0.1 port (a thread of the test process)."""

    def __init__(self, root: Path) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
        self.httpd.requests = []  # type: ignore[attr-defined]
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def requests(self) -> list[tuple[str, int]]:
        """Every (path, HTTP status) answered so far."""
        return list(self.httpd.requests)  # type: ignore[attr-defined]

    def __enter__(self) -> "SiteServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(10)


@contextmanager
def offline_page(width: int = 1500, height: int = 1100) -> Iterator[tuple[Any, list[str]]]:
    """A headless Chromium page that may load only from 127.0.0.1; yields it with the list of blocked URLs."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname in ("127.0.0.1",) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=OFFLINE_ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            context.route("**/*", guard)
            page = context.new_page()
            page.set_default_timeout(60_000)
            yield page, blocked
        finally:
            browser.close()


#: helpers the tests call in the page (JupyterLite exposes its app as ``window.jupyterapp``)
LITE_JS = r"""
window.__lite = {
  panel(path) {
    const app = window.jupyterapp; if (!app) return null;
    for (const w of app.shell.widgets('main'))
      if (w.context && w.context.path === path && w.content && w.content.widgets) return w;
    return null; },
  idle(path) { const p = this.panel(path); const k = p && p.sessionContext.session && p.sessionContext.session.kernel;
    return !!(p && p.context.isReady && k && k.status === 'idle'); },
  busy(path) { const p = this.panel(path); const k = p.sessionContext.session && p.sessionContext.session.kernel;
    return !(k && k.status === 'idle')
      || [...p.node.querySelectorAll('.jp-InputPrompt')].some(e => e.textContent.includes('*')); },
  kernelName(path) { const p = this.panel(path); return p.sessionContext.session.kernel.name; },
  open(path, activate = true) { return window.jupyterapp.commands.execute('docmanager:open',
    {path, factory: 'Notebook', options: {activate}}).then(() => null); },
  activate(path) { window.jupyterapp.shell.activateById(this.panel(path).id); },
  run(path) { window.__liteRun = 'running';
    const app = window.jupyterapp, p = this.panel(path);
    app.shell.activateById(p.id);
    app.commands.execute('notebook:run-all-cells').then(() => { window.__liteRun = 'done'; },
                                                        e => { window.__liteRun = 'failed: ' + e; }); },
  errors(path) { const p = this.panel(path);
    return p.content.widgets.filter(c => c.model.type === 'code')
      .flatMap(c => c.model.outputs.toJSON()).filter(o => o.output_type === 'error')
      .map(o => o.ename + ': ' + o.evalue); },
  unrun(path) { const p = this.panel(path);
    return p.content.widgets.filter(c => c.model.type === 'code' && c.model.sharedModel.source.trim()
      && c.model.executionCount === null).length; },
  close(path) { const p = this.panel(path);
    return p.sessionContext.shutdown().then(() => { p.dispose(); return null; }); },
};
"""
