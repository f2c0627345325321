"""The lifecycle state machine of a served endpoint instance (seed §6.1), with every transition recorded.

The seed's machine, plus what a real process also goes through: a start that fails leaves through Stopping,
and a process that dies (``runtime.kill()``) is Killed, from any state: nothing is deregistered, and its keys
stay in etcd until its lease expires. :data:`TRANSITIONS` is the machine; :data:`SEED_EDGES` the edges the seed
draws; :data:`LABELS` the seed's words for each edge (the lifecycle figure is derived from these three).
"""

from __future__ import annotations

import asyncio
import time
from enum import Enum
from typing import Callable

from ..errors import IllegalTransitionError, WaitTimeoutError

__all__ = ["State", "TRANSITIONS", "SEED_EDGES", "LABELS", "Edge", "Lifecycle", "IllegalTransitionError"]


class State(str, Enum):
    CREATED = "Created"
    REGISTERED = "Registered"
    RUNNING = "Running"
    HEALTHY = "Healthy"
    STOPPING = "Stopping"
    DEREGISTERED = "Deregistered"
    KILLED = "Killed"

    def __str__(self) -> str:
        return self.value


#: The seed's diagram, plus the exits a failed start or a stop during start needs, and a crash from anywhere.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.CREATED: frozenset({State.REGISTERED, State.STOPPING, State.KILLED}),
    State.REGISTERED: frozenset({State.RUNNING, State.STOPPING, State.KILLED}),
    State.RUNNING: frozenset({State.HEALTHY, State.STOPPING, State.KILLED}),
    State.HEALTHY: frozenset({State.RUNNING, State.STOPPING, State.KILLED}),
    State.STOPPING: frozenset({State.DEREGISTERED, State.KILLED}),
    State.DEREGISTERED: frozenset(),
    State.KILLED: frozenset(),
}

#: An edge of the figure: ``None`` stands for the start/end point ``[*]``.
Edge = tuple["State | None", "State | None"]

#: The edges the seed's figure (§6.1) draws; the others are drawn once an instance takes them.
SEED_EDGES: tuple[Edge, ...] = (
    (None, State.CREATED),
    (State.CREATED, State.REGISTERED),
    (State.REGISTERED, State.RUNNING),
    (State.RUNNING, State.HEALTHY),
    (State.HEALTHY, State.RUNNING),
    (State.RUNNING, State.STOPPING),
    (State.HEALTHY, State.STOPPING),
    (State.STOPPING, State.DEREGISTERED),
    (State.DEREGISTERED, None),
)

#: The seed's words for each edge (English, then the seed's own Chinese).
LABELS: dict[Edge, tuple[str, str]] = {
    (None, State.CREATED): ("create", "创建"),
    (State.CREATED, State.REGISTERED): ("register in etcd", "注册到 etcd"),
    (State.REGISTERED, State.RUNNING): ("start serving", "启动服务"),
    (State.RUNNING, State.HEALTHY): ("health check passed", "健康检查通过"),
    (State.HEALTHY, State.RUNNING): ("keeps running", "持续运行"),
    (State.RUNNING, State.STOPPING): ("stop signal received", "收到停止信号"),
    (State.HEALTHY, State.STOPPING): ("stop signal received", "收到停止信号"),
    (State.STOPPING, State.DEREGISTERED): ("deregister from etcd", "从 etcd 注销"),
    (State.CREATED, State.STOPPING): ("start failed", "启动失败"),
    (State.REGISTERED, State.STOPPING): ("start failed", "启动失败"),
    **{(s, State.KILLED): ("process killed", "进程被杀") for s in State if State.KILLED in TRANSITIONS.get(s, ())},
    (State.KILLED, None): ("lease expires: etcd deletes its keys", "租约到期: etcd 删除其键"),
    (State.DEREGISTERED, None): ("", ""),
}


Listener = Callable[[State, float], None]


class Lifecycle:
    """Current state, the ``(state, timestamp)`` history, and listeners told of every change."""

    def __init__(self) -> None:
        now = time.time()
        self.state = State.CREATED
        self.history: list[tuple[State, float]] = [(State.CREATED, now)]
        self._listeners: list[Listener] = []
        self._changed: asyncio.Event | None = None  # made when someone waits (thousands of instances wait for none)

    def to(self, state: State) -> bool:
        """Move to ``state``; returns False for a no-op (already there)."""
        if state == self.state:
            return False
        if state not in TRANSITIONS[self.state]:
            raise IllegalTransitionError(f"{self.state} -> {state} is not a lifecycle transition")
        now = time.time()
        self.state = state
        self.history.append((state, now))
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()
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
            if changed is None:
                changed = self._changed = asyncio.Event()
            remaining = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if remaining is not None and remaining <= 0:
                wanted = "/".join(map(str, states))
                raise WaitTimeoutError(f"state is {self.state}, still not {wanted} after {timeout} s")
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except asyncio.TimeoutError:
                continue
        return self.state
