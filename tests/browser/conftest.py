"""Fixtures of the browser tests (marked ``browser``: they need the system Chromium and start JupyterLab)."""

from __future__ import annotations

from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def lite_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The JupyterLite site, built once per session by ``scripts/lite`` (downloads cached between sessions), with
    its app exposed to the tests as ``window.jupyterapp``."""
    import json

    from .lite import build_site

    site = build_site(tmp_path_factory.mktemp("lite") / "site")
    config_path = site / "jupyter-lite.json"
    config = json.loads(config_path.read_text())
    config["jupyter-config-data"]["exposeAppInBrowser"] = "true"
    # every cell stays in the DOM (no windowing), as in the JupyterLab tests
    config["jupyter-config-data"]["settingsOverrides"] = {
        "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"}}
    config_path.write_text(json.dumps(config))
    return site
