"""Clocks for lease expiry: the event loop's, or a manual one that tests advance by hand."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Callable, Protocol

__all__ = ["Clock", "TimerHandle", "LoopClock", "ManualClock"]


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle: ...


class LoopClock:
    """Real time, from the running event loop."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_at(when, callback)


class _ManualTimer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """Time that moves only when ``advance()`` is called: lease expiry without waiting.

    >>> clock = ManualClock(); fired = []
    >>> _ = clock.call_at(5, lambda: fired.append(clock.now()))
    >>> clock.advance(4); fired
    []
    >>> clock.advance(1); fired
    [5.0]
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._timers: list[tuple[float, int, Callable[[], None], _ManualTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        handle = _ManualTimer()
        heapq.heappush(self._timers, (float(when), next(self._seq), callback, handle))
        return handle

    def advance(self, seconds: float) -> None:
        """Move time forward, firing every timer that falls due, in order."""
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, callback, handle = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            if not handle.cancelled:
                callback()
        self._now = target
