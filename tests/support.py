"""Helpers shared by the test modules (imported as ``support``: pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import asyncio
from typing import Callable

__all__ = ["eventually"]


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> float:
    """Wait until ``predicate()`` holds; return how long it took. AssertionError after ``timeout`` s.

    A bound on a condition, never a measurement: tests wait for what they expect instead of sleeping a guess.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
    return loop.time() - start
