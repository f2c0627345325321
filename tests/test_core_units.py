"""Small pieces of the object model on their own: the lifecycle machine and the recorder's bound."""

from __future__ import annotations

import pytest

from dynamo_nb import State, WaitTimeoutError
from dynamo_nb.core.lifecycle import TRANSITIONS, IllegalTransitionError, Lifecycle
from dynamo_nb.core.recorder import FIELDS, Kind, Recorder, UndeclaredFieldError


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


def test_every_state_ends_deregistered_or_killed():
    """Every instance ends one of two ways: stopped and deregistered, or killed (its lease expires)."""
    ends = {s for s in State if not TRANSITIONS[s]}
    assert ends == {State.DEREGISTERED, State.KILLED}
    for state in State:
        frontier, seen = {state}, set()
        while frontier:
            seen |= frontier
            frontier = {n for s in frontier for n in TRANSITIONS[s]} - seen
        assert State.DEREGISTERED in seen or state is State.KILLED
        assert State.KILLED in seen or state is State.DEREGISTERED


def test_lifecycle_labels_are_the_seeds_and_cover_every_edge():
    from dynamo_nb.core.lifecycle import LABELS, SEED_EDGES

    edges = {(None, State.CREATED)} | {(s, d) for s in State for d in TRANSITIONS[s]}
    edges |= {(s, None) for s in State if not TRANSITIONS[s]}
    assert set(LABELS) == edges and set(SEED_EDGES) <= edges
    assert LABELS[(State.HEALTHY, State.RUNNING)] == ("keeps running", "持续运行")
    assert LABELS[(State.RUNNING, State.STOPPING)][1] == "收到停止信号"


async def test_wait_for_state_times_out_clearly():
    life = Lifecycle()
    with pytest.raises(WaitTimeoutError, match="Created"):
        await life.wait_for(State.HEALTHY, timeout=0.05)


def test_recorder_is_bounded_and_selects():
    rec = Recorder(capacity=100)
    heard = []
    unsubscribe = rec.subscribe(heard.append)
    for i in range(250):
        rec.record(Kind.LEASE_KEEPALIVE if i % 2 else Kind.KV_DELETE, "rt", "etcd", lease_id=i)
    assert len(rec) == 100 and rec.dropped == 150
    assert [r.detail["lease_id"] for r in rec][0] == 150
    assert len(heard) == 250
    unsubscribe()
    rec.record(Kind.KV_DELETE, "rt", "etcd", key="k", lease_id=999)
    assert len(heard) == 250
    assert all(r.kind.startswith("lease.") for r in rec.select("lease."))
    assert [r.detail["lease_id"] for r in rec.select(Kind.KV_DELETE, key="k")] == [999]


def test_records_carry_only_the_fields_their_kind_declares():
    rec = Recorder()
    with pytest.raises(UndeclaredFieldError, match="n"):
        rec.record(Kind.KV_DELETE, "rt", "etcd", n=1)
    with pytest.raises(UndeclaredFieldError, match="not a record kind"):
        rec.record("kv.put", "rt", "etcd")  # type: ignore[arg-type]
    assert len(rec) == 0
    assert set(FIELDS) == set(Kind)  # every kind declares its fields
