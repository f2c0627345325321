"""Bounding an await in time without ``asyncio.wait_for``.

Before Python 3.12, ``wait_for`` can swallow a cancellation that arrives in the same loop turn as the result; a
task cancelled at that moment (a runtime shutting down) then carries on as if nothing happened. Connection set-up
in this package is bounded with :func:`bounded` instead, which always lets the caller's cancellation through.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, TypeVar

__all__ = ["bounded", "being_cancelled"]

T = TypeVar("T")


async def bounded(awaitable: Awaitable[T], timeout: float) -> T:
    """Await ``awaitable``; raise :class:`asyncio.TimeoutError` if it takes longer than ``timeout`` seconds."""
    task = asyncio.ensure_future(awaitable)
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    handle = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        return await task
    except asyncio.CancelledError:
        if expired and not being_cancelled():
            raise asyncio.TimeoutError(f"timed out after {timeout} s") from None
        raise
    finally:
        handle.cancel()


def being_cancelled(default: bool = False) -> bool:
    """Whether someone asked to cancel the current task; ``default`` on Python 3.10, which cannot tell."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling()) if cancelling is not None else default
