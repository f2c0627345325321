"""The real Dynamo peer: ``ai-dynamo-runtime==1.6.1`` in its own interpreter, run as separate processes.

The interpreter is, in order: ``DYNAMO_NB_DYNAMO_PYTHON``; the repository's ``.venv-dynamo`` (built by
``scripts/setup``); ``${XDG_CACHE_HOME:-~/.cache}/dynamo_nb/dynamo-1.6.1``. Without one the tests fail, naming
the reason: a run can never pass green without the peer.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

from dynamo_nb.cluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
PEERS = Path(__file__).resolve().parent / "peers"
VERSION = "1.6.1"
collect_ignore_glob = ["peers/*"]  # run by the peer interpreter, never imported here


def _candidates() -> list[Path]:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    found = [Path(os.environ["DYNAMO_NB_DYNAMO_PYTHON"])] if os.environ.get("DYNAMO_NB_DYNAMO_PYTHON") else []
    return found + [ROOT / ".venv-dynamo" / "bin" / "python", cache / "dynamo_nb" / f"dynamo-{VERSION}" / "bin" / "python"]


def _probe(python: Path) -> str | None:
    """None when ``python`` imports dynamo.runtime at the pinned version; else why not."""
    if not python.exists():
        return f"{python} does not exist"
    code = "import importlib.metadata as m, dynamo.runtime; print(m.version('ai-dynamo-runtime'))"
    try:
        out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{python}: {exc}"
    if out.returncode != 0:
        return f"{python} cannot import dynamo.runtime: {out.stderr.strip()[-300:]}"
    if out.stdout.strip() != VERSION:
        return f"{python} has ai-dynamo-runtime {out.stdout.strip()}, not {VERSION}"
    return None


@pytest.fixture(scope="session")
def dynamo_python() -> Path:
    reasons = []
    for python in _candidates():
        reason = _probe(python)
        if reason is None:
            return python
        reasons.append(reason)
    why = ("no ai-dynamo-runtime 1.6.1 interpreter (run scripts/setup, or set DYNAMO_NB_DYNAMO_PYTHON): "
           + "; ".join(reasons))
    pytest.fail(why)  # scripts/setup builds the peer: a missing one is a defect to fix, never a skip


class Peer:
    """One real Dynamo process; ``fact(key)`` waits (bounded) for the next JSON line that has ``key``."""

    def __init__(self, proc: asyncio.subprocess.Process, argv: list[str], stderr: Any) -> None:
        self.proc = proc
        self.argv = argv
        self.facts: list[dict[str, Any]] = []
        self._seen = 0
        self._stderr = stderr

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    async def fact(self, key: str, timeout: float = 15.0) -> dict[str, Any]:
        for fact in self.facts[self._seen:]:
            self._seen += 1
            if key in fact:
                return fact
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"peer {self.argv} printed no {key!r} within {timeout} s; "
                                     f"facts {self.facts}; stderr {self.stderr()}")
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), remaining)
            except asyncio.TimeoutError:
                continue
            if not line:
                await asyncio.wait_for(self.proc.wait(), 5)
                raise AssertionError(f"peer {self.argv} exited ({self.proc.returncode}) before printing "
                                     f"{key!r}; facts {self.facts}; stderr {self.stderr()}")
            try:
                fact = json.loads(line)
            except ValueError:
                continue
            self.facts.append(fact)
            self._seen = len(self.facts)
            if key in fact:
                return fact

    async def ready(self) -> dict[str, Any]:
        fact = await self.fact("ready", timeout=30)
        assert fact["version"] == VERSION, fact
        assert fact["core"].endswith("_core.abi3.so") and "/dynamo/" in fact["core"], fact
        return fact

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@pytest.fixture
async def peers(dynamo_python: Path, local_cluster: LocalCluster) -> AsyncIterator[Callable[..., Any]]:
    """Start real Dynamo peer programs against the session's LocalCluster; every one is ended afterwards."""
    started: list[Peer] = []

    async def start(script: str, *args: str, plane: str = "tcp", codec: str | None = None,
                    env: dict[str, str] | None = None) -> Peer:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("DYN_", "ETCD_", "NATS_"))}
        environ.update(ETCD_ENDPOINTS=local_cluster.etcd_endpoints, NATS_SERVER=local_cluster.nats_server,
                       DYN_REQUEST_PLANE=plane, DYN_TCP_RPC_HOST="127.0.0.1",
                       DYN_TCP_RESPONSE_STREAM_HOST="127.0.0.1", DYN_EVENT_PLANE_HOST="127.0.0.1",
                       DYN_SYSTEM_HOST="127.0.0.1", DYN_LOG="warn", PYTHONUNBUFFERED="1")
        if codec:
            environ["DYN_REQUEST_PLANE_CODEC"] = codec
        environ.update(env or {})
        argv = [str(dynamo_python), str(PEERS / script), *args]
        stderr = tempfile.TemporaryFile()
        proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE, stderr=stderr,
                                                    env=environ, cwd=str(PEERS))
        peer = Peer(proc, argv, stderr)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        await peer.stop(timeout=5)
        peer._stderr.close()


@pytest.fixture
async def nb_runtime(local_cluster: LocalCluster) -> AsyncIterator[Callable[..., Any]]:
    """dynamo_nb runtimes on the dynamo profile, shut down afterwards."""
    from dynamo_nb import DistributedRuntime

    made = []

    async def make(plane: str | None = None, **kwargs: Any) -> DistributedRuntime:
        kwargs.setdefault("profile", "dynamo")
        if plane is not None or kwargs["profile"] == "dynamo":
            kwargs["request_plane"] = plane or "tcp"
        runtime = await DistributedRuntime.create(etcd_endpoints=local_cluster.etcd_endpoints,
                                                  nats_server=local_cluster.nats_server, **kwargs)
        made.append(runtime)
        return runtime

    yield make
    for runtime in reversed(made):
        try:
            await runtime.shutdown()
        except Exception:
            pass


