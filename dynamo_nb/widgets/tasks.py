"""Run widget actions as asyncio tasks on the kernel's event loop, so a click never blocks a cell.

ipykernel runs one asyncio loop; button callbacks and top-level ``await`` both run on it. Every action is a task
kept here (so it is not garbage-collected mid-flight), and an error nobody handled is shown by the widget
instead of landing in the kernel log.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Coroutine

__all__ = ["TaskRunner"]

log = logging.getLogger(__name__)


class TaskRunner:
    """Spawns coroutines on the running loop and remembers them until they finish.

    ``on_error(exc)`` is called (on the loop) for an exception a task let escape. ``background`` tasks, such as
    a countdown ticker, are not waited for by :meth:`wait_idle`.
    """

    def __init__(self, on_error: Callable[[BaseException], None] | None = None) -> None:
        self._on_error = on_error
        self._tasks: set[asyncio.Future[Any]] = set()
        self._background: set[asyncio.Future[Any]] = set()
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None,
              background: bool = False) -> asyncio.Future[Any]:
        """Schedule ``coro``; from another thread it goes to the loop the runner was created on."""
        try:
            loop = asyncio.get_running_loop()
            task: asyncio.Future[Any] = loop.create_task(coro, name=name)
        except RuntimeError:
            if self._loop is None or not self._loop.is_running():
                coro.close()
                raise RuntimeError("no running asyncio event loop to run this action on") from None
            task = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop), loop=self._loop)
        (self._background if background else self._tasks).add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        self._background.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if self._on_error is not None:
            try:
                self._on_error(exc)
                return
            except Exception:
                log.exception("error handler failed")
        log.error("widget action failed: %s: %s", type(exc).__name__, exc)

    @property
    def pending(self) -> int:
        """Foreground tasks still running."""
        return len(self._tasks)

    async def wait_idle(self, timeout: float | None = 10.0) -> None:
        """Wait until every foreground task (including ones they spawn) has finished."""
        async def drain() -> None:
            while self._tasks:
                await asyncio.wait(set(self._tasks))
        await asyncio.wait_for(drain(), timeout)

    async def cancel_all(self) -> None:
        tasks = self._tasks | self._background
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

