"""How big the JupyterLite site is and how long a reader waits: opening the page to an idle in-browser kernel.

Builds the site with ``scripts/lite`` (or takes ``--site DIR``), serves it on 127.0.0.1 and opens the first
walkthrough in headless Chromium with every other host unreachable, each run in a fresh browser (cold cache).
Prints the site's size without source maps (budget 60 MB), the time until the notebook is on screen and until
its kernel is idle (budget 15 s on a 2-core machine); the browser test prints how long each walkthrough runs.

    python benchmarks/bench_lite.py [--site _site] [--runs 3] [--notebook 00-quickstart.ipynb]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
IDLE = "text=Python (Pyodide) | Idle"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def site_size(site: Path) -> float:
    return sum(f.stat().st_size for f in site.rglob("*") if f.is_file()) / 1e6


def one_run(base: str, notebook: str) -> tuple[float, float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            start = time.monotonic()
            page.goto(f"{base}/lab/index.html?path={notebook}", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            shown = time.monotonic() - start
            page.wait_for_selector(IDLE, timeout=120_000)
            idle = time.monotonic() - start
            return shown, idle
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, help="a site already built (default: build one into _site/)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--notebook", default="00-quickstart.ipynb")
    args = parser.parse_args()
    site = args.site
    if site is None:
        site = REPO / "_site"
        subprocess.run([str(REPO / "scripts" / "lite"), "--output", str(site)], check=True)
    build = json.loads((site / "build.json").read_text()) if (site / "build.json").exists() else {}
    print(f"site: {site_size(site):.1f} MB without source maps (budget 60 MB); Pyodide and wheels "
          f"{site_size(site / 'static' / 'pyodide'):.1f} MB; build {build.get('seconds', '?')} s")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        runs = [one_run(base, args.notebook) for _ in range(args.runs)]
    finally:
        httpd.shutdown()
    labels = ("notebook on screen", "kernel idle (budget 15 s)")
    for label, values in zip(labels, zip(*runs, strict=True), strict=True):
        print(f"{label}: median {statistics.median(values):.1f} s  (runs: "
              f"{', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
