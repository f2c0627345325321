"""The test suite's own rules: ``-m "not servers"`` needs no server, and shared helpers live once."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

_LIST_ITEMS = """
import sys, pytest
class Lister:
    def pytest_collection_finish(self, session):
        for item in session.items:
            marked = "servers" if item.get_closest_marker("servers") else "-"
            print("ITEM", item.nodeid, marked, ",".join(getattr(item, "fixturenames", ())), sep="\\t")
sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", sys.argv[1]], plugins=[Lister()]))
"""

SERVER_MODULES = ("test_binder.py", "test_cluster.py", "test_faults.py", "test_real_backend.py")


def test_every_test_that_needs_servers_carries_the_servers_marker():
    """So ``pytest -m "not servers"`` runs exactly the tests that need no nats-server or etcd."""
    out = subprocess.run([sys.executable, "-c", _LIST_ITEMS, str(TESTS)], cwd=TESTS.parent,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    marked, unmarked = [], []
    for line in out.stdout.splitlines():
        if line.startswith("ITEM\t"):
            _, nodeid, marker, fixtures = line.split("\t")
            needs = ("[servers]" in nodeid or bool(set(fixtures.split(",")) & {"local_cluster", "_session_cluster"})
                     or nodeid.split("::")[0].endswith(SERVER_MODULES))
            (marked if marker == "servers" else unmarked).append(nodeid)
            assert needs <= (marker == "servers"), f"{nodeid} needs real servers but is not marked"
            assert not nodeid.endswith("[embedded]") or marker != "servers", f"{nodeid} is embedded but marked"
    assert any(n.endswith("[servers]") for n in marked) and any(n.endswith("[embedded]") for n in unmarked)


def test_wait_helpers_live_once_in_support():
    copies = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.name == "support.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in {"eventually", "_until",
                                                                                              "until", "wait_until"}:
                copies.append(f"{path.relative_to(TESTS)}:{node.lineno} {node.name}")
    assert copies == [], "use support.eventually instead of a copy"
