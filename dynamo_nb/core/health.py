"""Whether a served instance can be found, not only whether it runs: its own key is read back on every check.

An instance whose key was deleted while its lease lives (by hand, by a wipe, by a re-registration that failed half
way) answers PINGs but no client can reach it. The check puts the key back under the instance's lease when it is
missing or altered; when that fails it says why, and the instance leaves Healthy until it succeeds.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import heapq
import itertools
import logging
import math
from typing import TYPE_CHECKING

from ..ratelog import warn_limited
from .eager import Resumed, drive
from .recorder import Kind

if TYPE_CHECKING:
    from .served import ServedEndpoint

__all__ = ["ensure_registered", "HealthSweeper"]

log = logging.getLogger(__name__)

SWEEP_SLOT = 0.02  # seconds: the health checks due within one slot of each other are run together


async def ensure_registered(served: "ServedEndpoint") -> str:
    """``""`` when the instance key holds this instance's value under its lease (restored if need be); else why not."""
    runtime, ep = served.runtime, served.endpoint
    discovery = runtime.backend.discovery
    expected = served.instance_value()
    try:
        _, kvs = await discovery.get_prefix(served.key)
        found = next((kv for kv in kvs if kv.key == served.key), None)
        if found is not None and found.value == expected and found.lease == served.lease_id:
            return ""
        what = "missing" if found is None else "altered"
        await discovery.put(served.key, expected, served.lease_id)
    except Exception as exc:  # etcd unreachable, lease gone, ...: not reachable by clients until this works
        reason = f"instance key {served.key} could not be read or restored: {exc}"
        warn_limited(log, f"health:{served.key}", "%s: %s", served.actor, reason)
        return reason
    log.warning("%s: instance key %s was %s; registered it again", served.actor, served.key, what)
    runtime.recorder.record(Kind.KV_CREATE, served.actor, "etcd", key=served.key, lease_id=served.lease_id, ok=True,
                            replaces=served.key, namespace=ep.namespace.name, component=ep.component.name,
                            endpoint=ep.name, subject=served.subject)
    return ""


class HealthSweeper:
    """Every health check of one runtime's instances, from one timer instead of one task per instance.

    An instance is checked as it starts, then the runtime's ``health_check_interval`` after each check ended, as
    its own loop did; the instances due are checked in order. A check that finishes without waiting (the embedded
    backend's, once its service answered a PING this interval) costs no task; one that waits (a PING, a real etcd
    read) goes on in a task of its own, so a slow check never holds back the others (on real servers every check
    runs in a task, their client libraries' code included). Thousands of instances then cost one timer, not
    thousands of sleeping tasks and their timers the garbage collector walks.
    """

    def __init__(self) -> None:
        self._due: list[tuple[float, int, "ServedEndpoint"]] = []  # (when, ticket, instance): a heap
        self._tickets = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._when = 0.0  # what the timer was set for
        self._sweeping = False

    def add(self, served: "ServedEndpoint", delay: float = 0.0) -> None:
        """Check ``served`` in ``delay`` seconds (at once: on the next turn of the loop)."""
        loop = asyncio.get_running_loop()
        if delay <= 0 and served.runtime.backend.kind != "embedded":
            served._health_ticket = -1  # its task starts now, and reads the key on the next turn, as it always did
            self._check(loop, served)
            return
        when = loop.time() + delay
        ticket = served._health_ticket = next(self._tickets)
        heapq.heappush(self._due, (when, ticket, served))
        if not self._sweeping and (self._timer is None or when < self._when):
            self._arm(loop, when)  # (a sweep sets the timer once it is done, for the earliest of all)

    def remove(self, served: "ServedEndpoint") -> None:
        """No more checks of ``served``; a check under way is cancelled (as its task was)."""
        served._health_ticket = -1
        task, served._health_check = served._health_check, None
        if task is not None:
            task.cancel()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for _, _, served in self._due:
            self.remove(served)
        self._due.clear()

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        # On the next slot's edge: the checks due within one slot run in one sweep, so thousands of instances
        # make a timer come due once a slot, not every few microseconds (a caller on the same loop lets it turn
        # whenever one is due). A check runs at most a slot late.
        when = math.ceil(when / SWEEP_SLOT) * SWEEP_SLOT
        if self._timer is not None:
            if when == self._when:
                return
            self._timer.cancel()
        self._when = when
        # call_later, never call_at: Pyodide's loop refuses a time already past, and "now" is past by the call
        self._timer = loop.call_later(max(0.0, when - loop.time()), self._sweep,
                                      context=contextvars.Context())  # nobody's context

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = None
        until = max(loop.time(), self._when)  # a loop may fire a timer early: what it was set for is due
        due, ready = self._due, []
        while due and due[0][0] <= until:  # the checks due now; those they book go to a later sweep
            ready.append(heapq.heappop(due))
        self._sweeping = True
        try:
            for _, ticket, served in ready:
                if served._health_ticket == ticket:  # else stopped, killed, or checked again since
                    served._health_ticket = -1
                    self._check(loop, served)
        finally:
            self._sweeping = False
        while due and due[0][1] != due[0][2]._health_ticket:
            heapq.heappop(due)
        if due and (self._timer is None or due[0][0] < self._when):
            self._arm(loop, due[0][0])

    def _check(self, loop: asyncio.AbstractEventLoop, served: "ServedEndpoint") -> None:
        coro = served._health_round()
        if served.runtime.backend.kind != "embedded":  # others' client libraries may want to run in a task
            served._health_check = task = loop.create_task(coro, name=f"health:{served.key}")
            task.add_done_callback(functools.partial(_done, served))
            return
        try:
            waiting = coro.send(None)
        except (StopIteration, asyncio.CancelledError):  # done; or cancelled from within, which ends it as in a task
            return
        except Exception:  # as an instance's own loop did, an unexpected failure ends its checks (and says so)
            log.exception("%s: health check failed", served.actor)
            return
        served._health_check = task = loop.create_task(drive(Resumed(coro, waiting)), name=f"health:{served.key}")
        task.add_done_callback(functools.partial(_done, served))


def _done(served: "ServedEndpoint", task: "asyncio.Task[None]") -> None:
    if served._health_check is task:
        served._health_check = None
    if not task.cancelled() and task.exception() is not None:
        log.error("%s: health check failed", served.actor, exc_info=task.exception())
