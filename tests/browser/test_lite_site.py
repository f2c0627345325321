"""The static JupyterLite site: built by ``scripts/lite`` from the registries alone, then every walkthrough run
top to bottom in Chromium with every non-loopback request aborted, and the control panel driven (serve, call,
kill until the lease expires). Prints the site's size and the time from opening the page to an idle kernel."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import pytest

from .lab import CHROMIUM
from .lite import LITE_JS, SiteServer, offline_page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]


def _build_module() -> Any:
    """``lite/build.py``, the one place that says which walkthroughs cannot run in a page."""
    spec = importlib.util.spec_from_file_location("dynamo_nb_lite_build", REPO / "lite" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NOT_IN_BROWSER = set(_build_module().NOT_IN_BROWSER)
MERMAID = ".jp-RenderedMermaid"
MERMAID_DRAWN = ".jp-RenderedMermaid:not(.jp-mod-warning) img[src^='data:image/svg+xml']"


def expected_notebooks() -> list[str]:
    root = REPO / "notebooks"
    found = [*sorted(root.glob("*.ipynb")), *sorted((root / "zh").glob("*.ipynb"))]
    return [str(p.relative_to(root)) for p in found if p.name not in NOT_IN_BROWSER]


def test_the_site_hosts_pyodide_and_every_wheel_and_takes_every_walkthrough(lite_site: Path) -> None:
    figures = json.loads((lite_site / "build.json").read_text())
    print(f"\nsite {figures['site_mb']} MB without source maps (Pyodide and wheels {figures['pyodide_mb']} MB), "
          f"built in {figures['seconds']} s")
    assert figures["site_mb"] <= 60
    assert not list(lite_site.rglob("*.map"))
    assert figures["notebooks"] == expected_notebooks()
    for name in figures["notebooks"]:
        notebook = json.loads((lite_site / "files" / name).read_text())
        assert notebook["metadata"]["kernelspec"]["name"] == "python", name  # the lite kernel: no kernel dialog
    assert not (lite_site / "files" / "09-real-dynamo.ipynb").exists()
    assert not (lite_site / "files" / "zh" / "09-real-dynamo.ipynb").exists()

    settings = json.loads((lite_site / "jupyter-lite.json").read_text())["jupyter-config-data"]
    kernel = settings["litePluginSettings"]["@jupyterlite/pyodide-kernel-extension:kernel"]
    assert kernel["pyodideUrl"] == "./static/pyodide/pyodide.mjs" and kernel["disablePyPIFallback"] is True
    assert kernel["loadPyodideOptions"]["packages"] == ["micropip", "dynamo-nb", "ipywidgets"]
    hosted = lite_site / "static" / "pyodide"
    lock = json.loads((hosted / "pyodide-lock.json").read_text())["packages"]
    for name, entry in lock.items():  # every locked wheel is in the site, with the hash the kernel will check
        assert hashlib.sha256((hosted / entry["file_name"]).read_bytes()).hexdigest() == entry["sha256"], name
        assert set(entry["depends"]) <= set(lock), name
    assert {"dynamo-nb", "ipywidgets", "micropip", "ipython", "networkx"} <= set(lock)
    assert sorted(p.name for p in hosted.glob("*.whl")) == sorted(e["file_name"] for e in lock.values())
    assert (lite_site / "extensions" / "@jupyter-widgets" / "jupyterlab-manager").is_dir()


def _wait_run(page: Any, name: str) -> None:
    page.evaluate("p => __lite.run(p)", name)
    page.wait_for_function("p => window.__liteRun !== 'running' && !__lite.busy(p)", arg=name, timeout=240_000,
                           polling=250)


def _wait_text(page: Any, selector: str, text: str, timeout: float = 30.0) -> None:
    """Wait until an element's text holds ``text`` (whether or not it is scrolled into view)."""
    page.wait_for_function("([s, t]) => [...document.querySelectorAll(s)].some(e => e.textContent.includes(t))",
                           arg=[selector, text], timeout=timeout * 1000, polling=100)


def drive_panel(page: Any) -> None:
    """Serve, call (items stream in), kill: the instance's lease runs out and its key is deleted."""
    page.locator(".dnb-control-panel").wait_for(state="attached")
    page.click("button.dnb-serve-button")
    _wait_text(page, ".dnb-instance-row", "Healthy")
    assert page.locator(".dnb-instance-row").count() == 1
    page.fill(".dnb-request textarea", json.dumps({"prompt": "one two three", "delay": 0.2}))
    page.click("button.dnb-call-button")
    _wait_text(page, ".dnb-call-status", "complete: 3 item(s)")
    assert page.locator(".dnb-call-output").inner_text().count('"token"') == 3
    page.locator(".dnb-instance-row").nth(0).locator("button.dnb-kill-button").click()
    _wait_text(page, ".dnb-instance-row", "lease expires in")
    _wait_text(page, ".dnb-instance-row", "lease expired, key deleted", timeout=60)
    page.wait_for_function("() => document.querySelector('.dnb-instance select').textContent"
                           ".replace(/\\u00a0/g, ' ') === '(no instances)'")


def test_every_walkthrough_runs_in_chromium_with_nothing_but_loopback(lite_site: Path, artifacts: Path) -> None:
    assert Path(CHROMIUM).exists(), "Debian chromium is required (apt-get install chromium)"
    names = json.loads((lite_site / "build.json").read_text())["notebooks"]
    with SiteServer(lite_site) as server, offline_page() as (page, blocked):
        page_errors: list[str] = []
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        page.add_init_script(LITE_JS)
        opened = time.monotonic()
        page.goto(f"{server.base}/lab/index.html?path={names[0]}", wait_until="domcontentloaded")
        for i, name in enumerate(names):
            if i:  # opened in the background while the one before ran: its kernel has been starting since
                page.evaluate("p => __lite.activate(p)", name)
            page.wait_for_function("p => __lite.idle(p)", arg=name, timeout=180_000, polling=250)
            if i == 0:
                print(f"\nopening the page to an idle kernel: {time.monotonic() - opened:.1f} s")
            if i + 1 < len(names):  # the next walkthrough's kernel starts (on the other core) while this one runs
                page.evaluate("p => __lite.open(p, false)", names[i + 1])
            assert page.evaluate("p => __lite.kernelName(p)", name) == "python"
            ran = time.monotonic()
            try:
                _wait_run(page, name)
                print(f"{name}: kernel idle, then ran in {time.monotonic() - ran:.1f} s")
                assert page.evaluate("p => __lite.errors(p)", name) == [], name
                assert page.evaluate("p => __lite.unrun(p)", name) == 0, name
                figures = page.locator(MERMAID).count()
                page.wait_for_function(f"n => document.querySelectorAll(\"{MERMAID_DRAWN}\").length >= n",
                                       arg=figures, timeout=30_000)
                assert page.locator(f"{MERMAID}.jp-mod-warning").count() == 0, name
                if page.locator(".dnb-control-panel").count():
                    drive_panel(page)
                    assert page.evaluate("p => __lite.errors(p)", name) == [], name
                page.screenshot(path=str(artifacts / f"lite-{Path(name).stem}.png"), animations="disabled")
            except BaseException:
                page.screenshot(path=str(artifacts / f"lite-{Path(name).stem}-failure.png"))
                raise
            page.evaluate("p => __lite.close(p)", name)
        assert blocked == []
        assert page_errors == []
        # JupyterLab asks whether a printed path-like text (an etcd key) is a file, to link it: a 404 says no
        probes = ("/api/resolvePath?", "/api/contents/")
        assert [r for r in server.requests if r[1] >= 400 and not r[0].startswith(probes)] == []
        served = {path.split("?")[0] for path, _ in server.requests}
        assert "/static/pyodide/pyodide.asm.wasm" in served  # Pyodide came from the site itself
        assert any(p.startswith("/static/pyodide/dynamo_nb-") for p in served)
    assert any("07-" in n for n in names), "the control panel's walkthrough was driven"
