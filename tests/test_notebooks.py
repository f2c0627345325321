"""Every walkthrough notebook runs top to bottom, headless, on the embedded backend and on real servers.

The saved outputs must hold the seed's figures as ``text/vnd.mermaid`` (what JupyterLab draws natively), no
error output, and end with a timeline; the notebooks in the repository must be stored without outputs. The
Chinese walkthroughs (``notebooks/zh/``) are the output of ``scripts/zh_notebooks.py`` and run where their English
twins run (zh/09 beside a real Dynamo, in ``tests/interop``), drawing their figures in the seed's terms.
"""

from __future__ import annotations

import importlib.util
import os
from collections import Counter
from pathlib import Path
from typing import Any, AsyncIterator

import nbformat
import pytest
from nbclient import NotebookClient

from dynamo_nb.cluster import LocalCluster

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted([*NOTEBOOK_DIR.glob("0[0-8]-*.ipynb"), *NOTEBOOK_DIR.glob("1[0-9]-*.ipynb")])
ZH_DIR = NOTEBOOK_DIR / "zh"
ZH_NOTEBOOKS = sorted(ZH_DIR.glob("*.ipynb"))
#: the Chinese twins of the walkthroughs run here (09 runs beside a real Dynamo, in tests/interop)
ZH_EMBEDDED = [p for p in ZH_NOTEBOOKS if p.name in {en.name for en in NOTEBOOKS}]
#: words of the seed a Chinese figure speaks: each figure has one at least
SEED_TERMS = ("命名空间", "组件", "端点", "注册中心", "租约", "实例", "创建", "注册", "运行中", "当前", "消息推送")
CELL_TIMEOUT = 60

#: The seed's figures each notebook reproduces: Mermaid diagram type → how many, at least.
FIGURES = {
    "00": {"flowchart": 1, "stateDiagram-v2": 1},            # quick start: the runtime, the instance's life
    "01": {"flowchart": 3},                                   # §1 hierarchy, §2.1 two namespaces, after a stop
    "02": {"classDiagram": 1, "flowchart": 1},                # §3.1 structure, §4.2 reference
    "03": {"sequenceDiagram": 1, "flowchart": 1},             # §4.4 startup sequence, instances per lease
    "04": {"flowchart": 2},                                   # §5.1 registry, §5.3 shared watcher
    "05": {"stateDiagram-v2": 2, "sequenceDiagram": 2},       # §6.1 state machine, §6.2 lifecycle, crash
    "06": {"sequenceDiagram": 2},                             # §3.4 pub/sub
    "07": {"flowchart": 1},                                   # the playground's runtime
    "08": {"flowchart": 3},                                   # §7.2/§7.3 graph, scaled, hierarchy
    "09": {"flowchart": 1},                                   # a real Dynamo deployment, attached
    "10": {"flowchart": 3, "sequenceDiagram": 2},             # each fault on the hierarchy, faults in sequences
    "11": {"flowchart": 8},                                   # explain's checklists and a lease in view
}

pytestmark = pytest.mark.timeout(180)


def _kernel_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ETCD_ENDPOINTS", "NATS_SERVER", "DYNAMO_NB_USE_CLUSTER")}
    env.update(extra)
    return env


async def run_notebook(path: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    await client.async_execute(env=env)
    return nb


MERMAID_TYPES = {"flowchart", "sequenceDiagram", "classDiagram", "stateDiagram-v2"}


def mermaid_type(text: str) -> str:
    """The diagram type keyword of a Mermaid text, after its optional ``---`` front matter and ``%%`` lines."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if lines and lines[0] == "---":
        end = lines.index("---", 1)
        lines = lines[end + 1:]
    body = [line for line in lines if line and not line.startswith("%%")]
    kind = body[0].split()[0] if body else ""
    return "flowchart" if kind == "graph" else kind


def outputs(nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]


def check_outputs(path: Path, nb: nbformat.NotebookNode) -> None:
    outs = outputs(nb)
    errors = [o for o in outs if o["output_type"] == "error"]
    assert not errors, [f"{e['ename']}: {e['evalue']}" for e in errors]
    tracebacks = [o["text"] for o in outs if o["output_type"] == "stream" and "Traceback" in o.get("text", "")]
    assert not tracebacks, tracebacks
    mermaid = [o["data"]["text/vnd.mermaid"] for o in outs
               if o["output_type"] in ("display_data", "execute_result") and "text/vnd.mermaid" in o.get("data", {})]
    found = Counter(mermaid_type(text) for text in mermaid)
    assert set(found) <= MERMAID_TYPES, found
    for kind, count in FIGURES[path.name[:2]].items():
        assert found[kind] >= count, f"{path.name}: {dict(found)} Mermaid outputs, expected ≥ {count} {kind}"
    executed = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in executed), "a code cell did not run"
    last = [o for o in executed[-1].get("outputs", []) if o["output_type"] == "execute_result"]
    assert last and last[0]["data"]["text/plain"].startswith("<Timeline "), f"{path.name} ends without a timeline"
    assert "application/vnd.jupyter.widget-view+json" in last[0]["data"], "the timeline is not a widget"


def test_there_is_one_notebook_per_seed_section() -> None:
    seed = ["00-", "01-", "02-", "03-", "04-", "05-", "06-", "07-"]  # the quick start, one per section, the panel
    assert [p.name[:3] for p in NOTEBOOKS][:8] == seed
    assert set(FIGURES) == {p.name[:2] for p in NOTEBOOKS} | {"09"}  # 09 runs beside a real Dynamo (tests/interop)


@pytest.mark.parametrize("path", NOTEBOOKS + ZH_NOTEBOOKS, ids=lambda p: p.parent.name + "/" + p.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has saved outputs"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
async def test_notebook_runs_on_the_embedded_backend(path: Path) -> None:
    nb = await run_notebook(path, _kernel_env())
    check_outputs(path, nb)
    text = "\n".join(o.get("text", "") for o in outputs(nb) if o["output_type"] == "stream")
    if path.name.startswith("01"):
        assert "embedded" in text
    if path.name.startswith("10"):  # every fault is drawn while it lasts, from the snapshots and records
        figures = "\n".join(o["data"].get("text/vnd.mermaid", "") for o in outputs(nb) if "data" in o)
        for shown in ("keep-alive paused", "cut off from NATS", "did not answer a client", "its key stays in etcd"):
            assert shown in figures, shown


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("zh_notebooks", REPO / "scripts" / "zh_notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_chinese_walkthroughs_are_the_generators_output() -> None:
    """So their code is the English code, and a change to an English walkthrough shows here until regenerated."""
    gen = _generator()
    assert [p.name for p in ZH_NOTEBOOKS] == sorted(gen.WALKTHROUGHS)
    table = gen._table()
    for name in gen.WALKTHROUGHS:
        committed = (ZH_DIR / name).read_text(encoding="utf-8")
        assert committed == gen.render(gen.build(NOTEBOOK_DIR / name, table)), \
            f"notebooks/zh/{name} is not what scripts/zh_notebooks.py makes: run it"
    assert gen.unused(table, [NOTEBOOK_DIR / n for n in gen.WALKTHROUGHS]) == []


@pytest.mark.parametrize("path", ZH_NOTEBOOKS, ids=lambda p: p.stem)
def test_a_chinese_walkthrough_runs_the_english_code_in_chinese(path: Path) -> None:
    zh = nbformat.read(path, as_version=4)
    en = nbformat.read(NOTEBOOK_DIR / path.name, as_version=4)
    code = [c.source for c in zh.cells if c.cell_type == "code"]
    assert code[0] == _generator().LANGUAGE_CELL and 'set_language("zh")' in code[0]
    assert code[1:] == [c.source for c in en.cells if c.cell_type == "code"]
    prose = "\n".join(c.source for c in zh.cells if c.cell_type == "markdown")
    assert sum("\u4e00" <= ch <= "\u9fff" for ch in prose) > len(prose) // 5, "the prose is not Chinese"


def check_chinese_figures(nb: nbformat.NotebookNode) -> None:
    """Every figure of a Chinese walkthrough speaks the seed's terms."""
    figures = [o["data"]["text/vnd.mermaid"] for o in outputs(nb) if "text/vnd.mermaid" in o.get("data", {})]
    assert all(any(term in figure for term in SEED_TERMS) for figure in figures), \
        [f.split("\n---\n")[-1].splitlines()[:4] for f in figures if not any(term in f for term in SEED_TERMS)]


def test_a_chinese_twin_runs_where_its_english_one_runs() -> None:
    assert [p.name for p in ZH_EMBEDDED] == [p.name for p in ZH_NOTEBOOKS if p.name != "09-real-dynamo.ipynb"]


@pytest.mark.parametrize("path", ZH_EMBEDDED, ids=lambda p: p.stem)
async def test_a_chinese_walkthrough_runs_on_the_embedded_backend(path: Path) -> None:
    nb = await run_notebook(path, _kernel_env())
    check_outputs(path, nb)
    check_chinese_figures(nb)


@pytest.fixture
async def cluster() -> AsyncIterator[LocalCluster]:
    async with LocalCluster() as c:
        yield c


@pytest.mark.servers
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
async def test_notebook_runs_on_a_local_cluster(path: Path, cluster: LocalCluster) -> None:
    nb = await run_notebook(path, _kernel_env(**cluster.env()))
    check_outputs(path, nb)
    text = "\n".join(o.get("text", "") for o in outputs(nb) if o["output_type"] == "stream")
    if path.name.startswith("01"):
        assert cluster.etcd_endpoints in text and "embedded" not in text


@pytest.mark.servers
async def test_the_cluster_flag_starts_a_local_cluster_inside_the_kernel() -> None:
    path = NOTEBOOK_DIR / "01-namespaces-and-isolation.ipynb"  # its first cell says where its servers are
    nb = await run_notebook(path, _kernel_env(DYNAMO_NB_USE_CLUSTER="1"))
    check_outputs(path, nb)
    text = "\n".join(o.get("text", "") for o in outputs(nb) if o["output_type"] == "stream")
    assert "a LocalCluster started by this kernel" in text and "http://127.0.0.1:" in text
