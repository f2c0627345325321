"""Notebook 09 and its Chinese twin run top to bottom with a real Dynamo worker beside a dynamo_nb worker, as a
reader would run them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_notebooks import (  # noqa: E402
    NOTEBOOK_DIR, ZH_DIR, _kernel_env, check_chinese_figures, check_outputs, outputs, run_notebook)

NOTEBOOK = NOTEBOOK_DIR / "09-real-dynamo.ipynb"
ZH_NOTEBOOK = ZH_DIR / NOTEBOOK.name  # generated from the English one by scripts/zh_notebooks.py

pytestmark = [pytest.mark.servers, pytest.mark.timeout(300)]


@pytest.mark.parametrize("path", [NOTEBOOK, ZH_NOTEBOOK], ids=["09", "zh-09"])
def test_the_notebook_is_stored_without_outputs(path: Path) -> None:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", [NOTEBOOK, ZH_NOTEBOOK], ids=["09", "zh-09"])
async def test_notebook_09_draws_and_calls_a_real_worker(dynamo_python: Path, path: Path) -> None:
    nb = await run_notebook(path, _kernel_env(DYNAMO_NB_DYNAMO_PYTHON=str(dynamo_python)))
    check_outputs(path, nb)
    if path.parent == ZH_DIR:
        check_chinese_figures(nb)
    text = "\n".join(o.get("text", "") for o in outputs(nb) if o["output_type"] == "stream")
    assert f"real Dynamo peer: {dynamo_python}" in text
    assert "real worker:" in text and "not available" not in text
    assert "Dynamo → dynamo_nb:" in text and "dynamo_nb → Dynamo:" in text
