"""Notebook 09 runs top to bottom with a real Dynamo worker beside a dynamo_nb worker, as a reader would run it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_notebooks import NOTEBOOK_DIR, _kernel_env, check_outputs, outputs, run_notebook  # noqa: E402

NOTEBOOK = NOTEBOOK_DIR / "09-real-dynamo.ipynb"

pytestmark = [pytest.mark.servers, pytest.mark.timeout(300)]


def test_the_notebook_is_stored_without_outputs() -> None:
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")


async def test_notebook_09_draws_and_calls_a_real_worker(dynamo_python: Path) -> None:
    nb = await run_notebook(NOTEBOOK, _kernel_env(DYNAMO_NB_DYNAMO_PYTHON=str(dynamo_python)))
    check_outputs(NOTEBOOK, nb)
    text = "\n".join(o.get("text", "") for o in outputs(nb) if o["output_type"] == "stream")
    assert f"real Dynamo peer: {dynamo_python}" in text
    assert "real worker:" in text and "not available" not in text
