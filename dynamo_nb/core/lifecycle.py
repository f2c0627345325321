"""The lifecycle state machine of a served endpoint instance (seed §6.1), with every transition recorded."""

from __future__ import annotations

import asyncio
import time
from enum import Enum
from typing import Callable

from ..errors import IllegalTransitionError, WaitTimeoutError

__all__ = ["State", "TRANSITIONS", "Lifecycle", "IllegalTransitionError"]


class State(str, Enum):
    CREATED = "Created"
    REGISTERED = "Registered"
    RUNNING = "Running"
    HEALTHY = "Healthy"
    STOPPING = "Stopping"
    DEREGISTERED = "Deregistered"

    def __str__(self) -> str:
        return self.value


#: The seed's diagram, plus the exits a failed start or a stop during start needs.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.CREATED: frozenset({State.REGISTERED, State.STOPPING}),
    State.REGISTERED: frozenset({State.RUNNING, State.STOPPING}),
    State.RUNNING: frozenset({State.HEALTHY, State.STOPPING}),
    State.HEALTHY: frozenset({State.RUNNING, State.STOPPING}),
    State.STOPPING: frozenset({State.DEREGISTERED}),
    State.DEREGISTERED: frozenset(),
}


Listener = Callable[[State, float], None]


class Lifecycle:
    """Current state, the ``(state, timestamp)`` history, and listeners told of every change."""

    def __init__(self) -> None:
        now = time.time()
        self.state = State.CREATED
        self.history: list[tuple[State, float]] = [(State.CREATED, now)]
        self._listeners: list[Listener] = []
        self._changed = asyncio.Event()

    def to(self, state: State) -> bool:
        """Move to ``state``; returns False for a no-op (already there)."""
        if state == self.state:
            return False
        if state not in TRANSITIONS[self.state]:
            raise IllegalTransitionError(f"{self.state} -> {state} is not a lifecycle transition")
        now = time.time()
        self.state = state
        self.history.append((state, now))
        self._changed.set()
        self._changed = asyncio.Event()
        for listener in tuple(self._listeners):
            listener(state, now)
        return True

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(state, timestamp)`` on every transition; returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    @property
    def visited(self) -> set[State]:
        return {state for state, _ in self.history}

    async def wait_for(self, *states: State, timeout: float | None = None) -> State:
        """Wait until the current state is one of ``states``."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while self.state not in states:
            changed = self._changed
            remaining = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(f"state is {self.state}, still not {'/'.join(map(str, states))} after {timeout} s")
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except asyncio.TimeoutError:
                continue
        return self.state
