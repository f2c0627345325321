"""Running a coroutine's first step at once, in the turn that starts it, without a task of its own unless it waits.

A served instance's request on the embedded backend is published from its caller's task; its stream usually runs
to its end without waiting (its frames go into an in-process queue), so it needs no task, and its caller reads
every frame without waiting for the task's turn. While the step runs it still looks as in a task: in a copy of
the starter's context, with ``asyncio.current_task()`` giving a task parked for the purpose (so
``asyncio.timeout()``, task groups and ``current_task().cancel()`` work), and a step that waits goes on in that
very task from where it stopped; the next start parks another. A step that ends without waiting leaves the
parked task to the next start, unless the step kept a reference to it (a task kept from ``current_task()`` and
cancelled later must not cancel someone else's stream): then that task just ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import operator
import sys
from asyncio.tasks import _enter_task, _leave_task
from typing import Any, Callable, Coroutine, Generator

__all__ = ["EagerStarter", "Resumed", "current_task", "drive"]


#: True while a first step runs. A start inside one (a handler calling another endpoint, of any runtime) gets a
#: plain task: first steps never nest, so a chain of calls never deepens the stack.
_stepping = False

# Looked up once: a start runs on every request of a served instance.
_get_running_loop = asyncio.get_running_loop
#: ``asyncio.current_task(loop)``, as cheaply as this Python allows (a served request asks it twice): on 3.11 that
#: function is Python around one lookup in asyncio's own table, which is looked up directly instead
current_task: "Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None]" = asyncio.current_task
if sys.version_info < (3, 12):
    current_task = asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]

_copy_context = contextvars.copy_context
_refcount = sys.getrefcount


class EagerStarter:
    """Starts coroutines eagerly on one event loop (a runtime's), with one parked task kept for the next start."""

    def __init__(self) -> None:
        self._spare: _Spare | None = None

    def start(self, coro: Coroutine[Any, Any, None], inflight: "set[asyncio.Task[None]]") -> None:
        """Run ``coro`` until it ends or first waits; what waits goes on in a task, kept in ``inflight`` until
        done (the task is there during the first step too)."""
        global _stepping
        loop = _get_running_loop()
        if _stepping:
            task = loop.create_task(coro)
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            return
        spare = self._spare
        if spare is None or spare.task.done() or spare.handover.done() or _cancel_asked(spare.task):
            spare = self._spare = _Spare(loop)
        task = spare.task
        context = _copy_context()
        caller = current_task(loop)
        if caller is not None:
            _leave_task(loop, caller)
        _enter_task(loop, task)
        inflight.add(task)
        _stepping = True
        refs = _refcount(task)
        try:
            waiting = context.run(coro.send, None)
        except BaseException as exc:  # ended (StopIteration), or failed as a task's coroutine would
            if _refcount(task) > refs:  # the step kept its task somewhere: it is not handed to the next
                self._spare = None
                if not spare.handover.done():  # (done: the step cancelled it, and it ends so)
                    spare.handover.set_result(None)
            inflight.discard(task)
            if exc.__class__ is not StopIteration and not isinstance(exc, asyncio.CancelledError):
                loop.call_exception_handler({"message": "eagerly started coroutine failed", "exception": exc})
            return
        finally:
            _stepping = False
            _leave_task(loop, task)
            if caller is not None:
                _enter_task(loop, caller)
        # It waits: the parked task takes it from here (a new one is parked for the next start).
        self._spare = None
        if spare.handover.done() or _cancel_asked(task):
            # The step cancelled its own task: as in a task, what it waits for is cancelled, and the cancellation
            # reaches it there (in a task of its own, the cancelled one having ended).
            if waiting is not None and hasattr(waiting, "cancel"):
                waiting.cancel()
            inflight.discard(task)
            task = loop.create_task(drive(Resumed(coro, waiting, context, throw=asyncio.CancelledError())))
            inflight.add(task)
        else:
            task._log_destroy_pending = True  # type: ignore[attr-defined]  # it now runs a stream
            spare.handover.set_result(Resumed(coro, waiting, context))
        task.add_done_callback(inflight.discard)

    def close(self) -> None:
        """Let the parked task end (a runtime that shuts down leaves no task pending)."""
        spare, self._spare = self._spare, None
        if spare is not None and not spare.handover.done():
            spare.handover.set_result(None)


def _cancel_asked(task: "asyncio.Task[Any]") -> bool:
    """Whether ``task`` was asked to cancel (a task that has not run yet ends so without running anything)."""
    return bool(task._must_cancel)  # type: ignore[attr-defined]  # (Python 3.10: no Task.cancelling())


if sys.version_info >= (3, 11):
    _cancel_asked = operator.methodcaller("cancelling")  # type: ignore[assignment]  # the same, without a frame


class _Spare:
    __slots__ = ("handover", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.handover: asyncio.Future[Resumed | None] = loop.create_future()
        self.task = loop.create_task(self._park())
        self.task._log_destroy_pending = False  # type: ignore[attr-defined]  # parked: nothing lost if dropped

    async def _park(self) -> None:
        resumed = await self.handover
        if resumed is not None:
            await resumed


async def drive(resumed: "Resumed") -> None:
    """What a task runs to take over a :class:`Resumed` coroutine."""
    await resumed


class Resumed:
    """A coroutine that already ran up to its first wait, to be awaited from there on (by a task).

    It hands the task what the coroutine is waiting for (or first throws ``throw`` in where it waits), then passes
    on whatever the task sends or throws (a result, a cancellation), as ``await`` itself would have; each step in
    ``context`` when one is given.
    """

    __slots__ = ("_coro", "_waiting", "_context", "_throw")

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting: Any, context: contextvars.Context | None = None,
                 throw: BaseException | None = None) -> None:
        self._coro, self._waiting, self._context, self._throw = coro, waiting, context, throw

    def __await__(self) -> Generator[Any, Any, None]:
        coro, waiting, context, throw = self._coro, self._waiting, self._context, self._throw
        self._waiting = self._throw = None
        if throw is not None:
            try:
                waiting = coro.throw(throw) if context is None else context.run(coro.throw, throw)
            except StopIteration:
                return
        while True:
            try:
                sent = yield waiting
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    waiting = coro.throw(exc) if context is None else context.run(coro.throw, exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting = coro.send(sent) if context is None else context.run(coro.send, sent)
                except StopIteration:
                    return
