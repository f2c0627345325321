"""``dynamo-nb serve``: every worker of a graph as its own OS process, restarted with backoff when it crashes.

Workers start dependencies first, each in its own session (a Ctrl-C in the terminal reaches only the
supervisor, which then stops them in order: dependents first). Stopping sends SIGTERM, which a worker turns into
a graceful stop; :meth:`Supervisor.kill` sends SIGKILL. What happens is reported as JSON lines or plain text.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .child import SETTINGS_ENV
from .config import ServiceSettings
from .graph import GraphPlan

__all__ = ["Supervisor", "WorkerProcess", "BACKOFF_START", "BACKOFF_MAX", "STOP_TIMEOUT"]

BACKOFF_START = 0.5  # first restart delay; doubles per crash in a row
BACKOFF_MAX = 10.0
STEADY = 10.0  # a worker that ran this long before crashing starts again from the first delay
STOP_TIMEOUT = 10.0  # a worker still alive this long after SIGTERM gets SIGKILL


@dataclass
class WorkerProcess:
    service: str
    index: int
    gpus: list[int]
    proc: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restarts: int = 0
    crashes_in_a_row: int = 0
    history: list[int] = field(default_factory=list)  # pids, oldest first

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class Supervisor:
    """Starts, watches, restarts and stops the worker processes of one graph."""

    def __init__(self, target: str, plan: GraphPlan, settings: Mapping[str, ServiceSettings],
                 assignment: Mapping[tuple[str, int], list[int]], env: Mapping[str, str],
                 report: Callable[[dict[str, Any]], None]) -> None:
        self.target = target
        self.plan = plan
        self.settings = settings
        self.env = dict(env)
        self.report = report
        self.stopping = False
        self.workers: list[WorkerProcess] = [
            WorkerProcess(spec.name, i, list(assignment.get((spec.name, i), [])))
            for spec in plan.services for i in range(settings[spec.name].workers)]
        self._watchers: list[asyncio.Task[None]] = []

    def _env(self, w: WorkerProcess) -> dict[str, str]:
        env = dict(self.env)
        s = self.settings[w.service]
        env[SETTINGS_ENV] = json.dumps({"config": s.config, "workers": s.workers, "resources": s.resources})
        if s.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, w.gpus))
        else:
            env.pop("CUDA_VISIBLE_DEVICES", None)
        return env

    async def _spawn(self, w: WorkerProcess) -> None:
        w.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dynamo_nb.sdk.child", self.target, w.service, str(w.index),
            env=self._env(w), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            start_new_session=True)
        w.started_at = time.monotonic()
        w.history.append(w.proc.pid)
        self.report({"event": "started", "worker": w.name, "pid": w.proc.pid, "gpus": w.gpus,
                     "restart": w.restarts})

    async def _ready(self, w: WorkerProcess) -> bool:
        """Wait for the worker's ready line (False if it exited first); later output is passed on."""
        assert w.proc is not None and w.proc.stdout is not None
        while True:
            line = await w.proc.stdout.readline()
            if not line:
                return False
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get("event") == "ready":
                self.report({**msg, "restart": w.restarts})
                return True

    async def start(self) -> None:
        """Start every worker, a service's workers together, dependencies first; then watch them."""
        for spec in self.plan.services:
            group = [w for w in self.workers if w.service == spec.name]
            for w in group:
                await self._spawn(w)
            ready = await asyncio.gather(*(self._ready(w) for w in group))
            for w, ok in zip(group, ready, strict=True):
                self._watchers.append(asyncio.get_running_loop().create_task(self._watch(w, ok)))

    async def _watch(self, w: WorkerProcess, ok: bool) -> None:
        while True:
            assert w.proc is not None
            if ok:
                assert w.proc.stdout is not None
                while await w.proc.stdout.readline():  # keep the pipe drained
                    pass
            code = await w.proc.wait()
            if self.stopping:
                return
            ran = time.monotonic() - w.started_at
            w.crashes_in_a_row = 1 if ran >= STEADY else w.crashes_in_a_row + 1
            delay = min(BACKOFF_START * 2 ** (w.crashes_in_a_row - 1), BACKOFF_MAX)
            w.restarts += 1
            self.report({"event": "crashed", "worker": w.name, "pid": w.proc.pid, "code": code,
                         "restart_in": delay, "restart": w.restarts})
            await asyncio.sleep(delay)
            if self.stopping:
                return
            await self._spawn(w)
            ok = await self._ready(w)

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.proc is not None and w.proc.returncode is None]

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Graceful, dependents first: SIGTERM, wait (bounded), then SIGKILL what is left."""
        self.stopping = True
        for spec in reversed(self.plan.services):
            group = [w for w in self.alive() if w.service == spec.name]
            for w in group:
                _signal(w, signal.SIGTERM)
            waits = [w.proc.wait() for w in group if w.proc is not None]
            if waits:
                _, pending = await asyncio.wait([asyncio.ensure_future(x) for x in waits], timeout=timeout)
                if pending:
                    for w in group:
                        _signal(w, signal.SIGKILL)
                    await asyncio.wait(pending, timeout=5.0)
            for w in group:
                self.report({"event": "stopped", "worker": w.name, "pid": w.pid,
                             "code": w.proc.returncode if w.proc else None})
        await self._end_watchers()

    async def kill(self) -> None:
        """The second signal: SIGKILL every worker now (their keys stay until their leases expire)."""
        self.stopping = True
        for w in self.alive():
            _signal(w, signal.SIGKILL)
            self.report({"event": "killed", "worker": w.name, "pid": w.pid})
        waits = [asyncio.ensure_future(w.proc.wait()) for w in self.workers if w.proc is not None]
        if waits:
            await asyncio.wait(waits, timeout=5.0)
        await self._end_watchers()

    async def _end_watchers(self) -> None:
        for task in self._watchers:
            task.cancel()
        if self._watchers:
            await asyncio.wait(self._watchers, timeout=5.0)
        self._watchers.clear()


def _signal(w: WorkerProcess, sig: int) -> None:
    if w.proc is not None and w.proc.returncode is None:
        try:
            os.kill(w.proc.pid, sig)
        except ProcessLookupError:
            pass
