"""Waiting on conditions, not on wall-clock windows: tests stay green on a busy machine."""

from __future__ import annotations

import asyncio
from typing import Callable

__all__ = ["eventually"]


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> None:
    """Return once ``predicate()`` is true; fail after ``timeout`` seconds (a bound, not a measurement)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
