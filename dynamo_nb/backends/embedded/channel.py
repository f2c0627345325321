"""A minimal unbounded single-reader channel: the embedded backend's hand-off between tasks.

``asyncio.Queue`` does the same job with bookkeeping (maxsize, join, multiple getters) that costs several
microseconds per message on the call path; one reader and no bound need none of it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["Channel"]

T = TypeVar("T")


class Channel(Generic[T]):
    """``put()`` never blocks; ``await get()`` waits for the next item, in order."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: T) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> T:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)
