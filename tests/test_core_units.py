"""Small pieces of the object model on their own: the lifecycle machine and the recorder's bound."""

from __future__ import annotations

import pytest

from dynamo_nb import State, WaitTimeoutError
from dynamo_nb.core.lifecycle import TRANSITIONS, IllegalTransitionError, Lifecycle
from dynamo_nb.core.recorder import Recorder


def test_lifecycle_follows_the_seed_diagram():
    life = Lifecycle()
    seen = []
    life.subscribe(lambda state, ts: seen.append(state))
    for state in (State.REGISTERED, State.RUNNING, State.HEALTHY, State.RUNNING, State.HEALTHY,
                  State.STOPPING, State.DEREGISTERED):
        assert life.to(state) is True
    assert seen[-1] == State.DEREGISTERED and len(life.history) == 8
    assert life.to(State.DEREGISTERED) is False  # already there: no new history entry
    assert len(life.history) == 8


@pytest.mark.parametrize("start,bad", [(State.CREATED, State.RUNNING), (State.REGISTERED, State.HEALTHY),
                                       (State.DEREGISTERED, State.RUNNING), (State.STOPPING, State.HEALTHY)])
def test_lifecycle_refuses_transitions_it_does_not_have(start, bad):
    life = Lifecycle()
    path = {State.CREATED: [], State.REGISTERED: [State.REGISTERED],
            State.STOPPING: [State.REGISTERED, State.STOPPING],
            State.DEREGISTERED: [State.REGISTERED, State.STOPPING, State.DEREGISTERED]}[start]
    for state in path:
        life.to(state)
    with pytest.raises(IllegalTransitionError):
        life.to(bad)


def test_every_state_can_reach_deregistered():
    for state in State:
        frontier, seen = {state}, set()
        while frontier:
            seen |= frontier
            frontier = {n for s in frontier for n in TRANSITIONS[s]} - seen
        assert State.DEREGISTERED in seen


async def test_wait_for_state_times_out_clearly():
    life = Lifecycle()
    with pytest.raises(WaitTimeoutError, match="Created"):
        await life.wait_for(State.HEALTHY, timeout=0.05)


def test_recorder_is_bounded_and_selects():
    rec = Recorder(capacity=100)
    heard = []
    unsubscribe = rec.subscribe(heard.append)
    for i in range(250):
        rec.record("lease.keepalive" if i % 2 else "kv.put", "rt", "etcd", n=i)
    assert len(rec) == 100
    assert [r.detail["n"] for r in rec][0] == 150
    assert len(heard) == 250
    unsubscribe()
    rec.record("kv.put", "rt", "etcd", n=999)
    assert len(heard) == 250
    assert all(r.kind.startswith("lease.") for r in rec.select("lease."))
    assert [r.detail["n"] for r in rec.select("kv.put", n=999)] == [999]
