"""A private JupyterLab and a headless Chromium page on it, for browser tests (Playwright's sync API).

JupyterLab runs on a free 127.0.0.1 port with no token and throw-away config, data, runtime, settings and
workspace dirs; autosave is off so the notebook under test is never written back. Chromium is Debian's
(``/usr/bin/chromium``): no browser is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

__all__ = ["CHROMIUM", "CHROME_ARGS", "Lab", "running_lab", "browser_page", "NotebookPage"]

CHROMIUM = "/usr/bin/chromium"
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]

_SETTINGS = {
    # every cell stays in the DOM (no windowing), no kernel picker, no autosave, no news/update toasts
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False,
                                                    "doNotDisturbMode": True},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lab:
    """A JupyterLab server process serving ``root``."""

    def __init__(self, root: Path, env: dict[str, str] | None = None, start_timeout: float = 90.0) -> None:
        self.root = root
        self.tmp = Path(tempfile.mkdtemp(prefix="dnb-lab-"))
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = self.tmp / "lab.log"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._env = env or {}

    def _environment(self) -> dict[str, str]:
        for name, values in _SETTINGS.items():
            f = self.tmp / "settings" / f"{name}.jupyterlab-settings"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(values))
        env = dict(os.environ)
        for key in ("ETCD_ENDPOINTS", "NATS_SERVER", "DYNAMO_NB_USE_CLUSTER"):
            env.pop(key, None)
        env.update(JUPYTER_CONFIG_DIR=str(self.tmp / "config"), JUPYTER_DATA_DIR=str(self.tmp / "data"),
                   JUPYTER_RUNTIME_DIR=str(self.tmp / "runtime"), IPYTHONDIR=str(self.tmp / "ipython"),
                   JUPYTERLAB_SETTINGS_DIR=str(self.tmp / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(self.tmp / "workspaces"), PYTHONUNBUFFERED="1")
        env.update(self._env)
        return env

    def start(self) -> "Lab":
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={self.root}",
               "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
               f"--FileCheckpoints.checkpoint_dir={self.tmp / 'checkpoints'}", "--LabApp.expose_app_in_browser=True",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.tmp, env=self._environment(), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base + "/api/status", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not answer within {self.start_timeout:g} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _descendants(self) -> dict[int, bytes]:
        """{pid: cmdline} of every process below the server (its kernels), read from /proc."""
        if self.proc is None:
            return {}
        children: dict[int, list[tuple[int, bytes]]] = {}
        for d in Path("/proc").glob("[0-9]*"):
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append((int(d.name), (d / "cmdline").read_bytes()))
            except (OSError, ValueError, IndexError):
                pass
        found: dict[int, bytes] = {}
        todo = [self.proc.pid]
        while todo:
            for pid, cmdline in children.get(todo.pop(), []):
                found[pid] = cmdline
                todo.append(pid)
        return found

    def stop(self) -> None:
        """Shut the server down (kernels too); then make sure, by PID, that nothing it started is left."""
        if self.proc is not None:
            kids = self._descendants()
            try:
                urllib.request.urlopen(urllib.request.Request(self.base + "/api/shutdown", method="POST"), timeout=10)
            except OSError:
                pass
            for stop in (lambda: None, self.proc.terminate, self.proc.kill):
                stop()
                try:
                    self.proc.wait(10)
                    break
                except subprocess.TimeoutExpired:
                    pass
            for pid, cmdline in kids.items():
                try:
                    if Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline:
                        os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            self.proc = None
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextmanager
def running_lab(root: Path, **kwargs: Any) -> Iterator[Lab]:
    lab = Lab(root, **kwargs)
    try:
        yield lab.start()
    finally:
        lab.stop()


@contextmanager
def browser_page(width: int = 1500, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium page (system Chromium, no download)."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


_JS = r"""
window.__dnb = {
  panel(path) {
    const app = window.jupyterapp; if (!app) return null;
    for (const w of app.shell.widgets('main'))
      if (w.context && w.context.path === path && w.content && w.content.widgets) return w;
    return null; },
  ready(path) { const p = this.panel(path); return !!(p && p.context.isReady && p.sessionContext.session
                  && p.sessionContext.session.kernel && p.sessionContext.session.kernel.status === 'idle'); },
  busy(path) { const p = this.panel(path); const s = p.sessionContext.session;
    return !(s && s.kernel && s.kernel.status === 'idle')
      || [...p.node.querySelectorAll('.jp-InputPrompt')].some(e => e.textContent.includes('*')); },
  run(path) { window.__dnbRun = 'running';
    const app = window.jupyterapp, p = this.panel(path);
    app.shell.activateById(p.id);
    app.commands.execute('notebook:run-all-cells').then(() => { window.__dnbRun = 'done'; },
                                                        e => { window.__dnbRun = 'failed: ' + e; }); },
  errors(path) { const p = this.panel(path);
    return p.content.widgets.filter(c => c.model.type === 'code')
      .flatMap(c => c.model.outputs.toJSON()).filter(o => o.output_type === 'error')
      .map(o => o.ename + ': ' + o.evalue); },
};
"""


class NotebookPage:
    """One notebook opened in JupyterLab in ``page``: open it, run it, find things in it."""

    def __init__(self, page: Any, lab: Lab, name: str) -> None:
        self.page = page
        self.lab = lab
        self.name = name

    def open(self, timeout: float = 90.0) -> "NotebookPage":
        self.page.add_init_script(_JS)
        self.page.goto(f"{self.lab.base}/lab/tree/{quote(self.name)}", wait_until="domcontentloaded")
        self.page.wait_for_function("p => __dnb.ready(p)", arg=self.name, timeout=timeout * 1000, polling=250)
        self.page.evaluate("() => { const a = window.jupyterapp; a.shell.collapseLeft(); a.shell.collapseRight(); }")
        return self

    def run_all(self, timeout: float = 120.0) -> None:
        self.page.evaluate("p => __dnb.run(p)", self.name)
        self.page.wait_for_function("p => window.__dnbRun !== 'running' && !__dnb.busy(p)", arg=self.name,
                                    timeout=timeout * 1000, polling=250)

    def errors(self) -> list[str]:
        return list(self.page.evaluate("p => __dnb.errors(p)", self.name))

    def screenshot(self, path: Path, full: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=full, animations="disabled", caret="hide")
