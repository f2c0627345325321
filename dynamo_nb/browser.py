"""Whether this kernel runs inside a web page (Pyodide, e.g. the JupyterLite site), where only the embedded
backend can work: a page has no sockets to reach etcd or NATS, and no subprocesses to start them or ``dot``."""

from __future__ import annotations

import sys

__all__ = ["in_browser", "NO_SERVERS_IN_BROWSER"]

NO_SERVERS_IN_BROWSER = ("this kernel runs in a web browser (Pyodide), which has no sockets or subprocesses, so it "
                         "can neither reach nor start etcd and NATS: use the embedded backend "
                         "(DistributedRuntime.create() with no servers), or scripts/lab or Binder for real servers")


def in_browser() -> bool:
    """True under Pyodide (``sys.platform == "emscripten"``), read at each call so tests can pretend."""
    return sys.platform == "emscripten"
