"""The README's first command: ``scripts/lab`` opens JupyterLab on the walkthrough notebooks."""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import signal
import subprocess
import time
import urllib.request

import pytest

from dynamo_nb.cluster import free_port

ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(300)


def test_scripts_lab_serves_the_notebooks(tmp_path):
    port, token = free_port(), secrets.token_hex(8)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    env.pop("ETCD_ENDPOINTS", None)
    env.pop("NATS_SERVER", None)
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "lab"), "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
         f"--ServerApp.token={token}"],
        cwd=ROOT, env=env, stdout=open(tmp_path / "lab.log", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        url = f"http://127.0.0.1:{port}/api/contents?token={token}"
        deadline = time.monotonic() + 240
        listing = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with opener.open(url, timeout=5) as answer:
                    listing = json.load(answer)
                break
            except OSError:
                time.sleep(0.5)
        log = (tmp_path / "lab.log").read_text(errors="replace")
        assert listing is not None, f"JupyterLab did not answer; log tail:\n{log[-2000:]}"
        names = sorted(item["name"] for item in listing["content"])
        expected = sorted([*(p.name for p in (ROOT / "notebooks").glob("*.ipynb")), "zh"])  # and the Chinese ones
        assert names == expected and "00-quickstart.ipynb" in names and len(names) >= 8
        with opener.open(f"http://127.0.0.1:{port}/lab?token={token}", timeout=10) as page:
            assert page.status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # our own process group: the script exec'd JupyterLab
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
