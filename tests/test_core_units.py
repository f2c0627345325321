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


async def test_a_large_runtime_spaces_its_frames_a_small_one_frames_every_change():
    """A frame of 10,000 instances costs milliseconds: taking one after every start made starting quadratic."""
    import asyncio

    from dynamo_nb.core.recorder import SMALL, SPACING_PER_ITEM

    for items, most in ((SMALL, 6), (10_000, 2)):
        rec = Recorder()
        captures = []
        rec.track(lambda rec=rec, captures=captures: captures.append(len(rec.records)))
        rec.weigh(items)
        for _ in range(6):  # six changes, each in its own turn of the loop, well within one spacing
            rec.record(Kind.START, "App", "EndpointBuilder", endpoint="a.b.c")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        assert len(captures) <= most and captures[0] == 1
        if items > SMALL:
            assert rec.spacing == items * SPACING_PER_ITEM
            await asyncio.sleep(rec.spacing + 0.05)
            assert captures[-1] == 6, "the spaced frame still comes, with every record before it"
        else:
            assert len(captures) == 6 and rec.spacing == 0


async def test_endpoints_of_one_component_share_one_ping_per_health_interval(world):
    """Health checks PING the component's service; every endpoint of it checking on its own was n PINGs a turn."""
    import asyncio

    from dynamo_nb import DistributedRuntime
    from dynamo_nb.backends.base import Msg

    pings: list[str] = []

    async def count(msg: Msg) -> None:
        pings.append(msg.subject)

    probe = world.connect()
    await probe.messaging.subscribe("$SRV.PING.>", count)
    rt = await DistributedRuntime.create(world=world, health_check_interval=0.2)

    async def echo(request):
        yield request

    served = [await rt.endpoint(f"ns.Comp.ep{i}").endpoint_builder().handler(echo).start() for i in range(8)]
    await asyncio.sleep(0.5)
    checks = sum(1 for s in served for state, _ in s.history if state is State.HEALTHY)
    assert checks == 8 and all(s.state is State.HEALTHY for s in served)
    # 8 endpoints × 3 checks (at 0, 0.2 and 0.4 s) were 24 PINGs, one per check
    assert 1 <= len(pings) <= 8, f"{len(pings)} PINGs for 8 endpoints of one service in 0.5 s"
    await rt.shutdown()


async def test_health_checks_need_no_task_per_endpoint_and_a_stuck_one_holds_back_no_other(world):
    """One runtime checks all its instances; a check that waits (here for ever) waits alone, and a stop ends it."""
    import asyncio

    from dynamo_nb import DistributedRuntime

    rt = await DistributedRuntime.create(world=world, health_check_interval=0.05)

    async def echo(request):
        yield request

    served = [await rt.endpoint(f"ns.Comp{i}.ep{i}").endpoint_builder().handler(echo).start() for i in range(2)]
    before = len(asyncio.all_tasks())  # with both components' services up
    served += [await rt.endpoint(f"ns.Comp{i % 2}.ep{i}").endpoint_builder().handler(echo).start()
               for i in range(2, 50)]
    for s in served:
        await s.wait_for_state(State.HEALTHY, timeout=5)
    assert len(asyncio.all_tasks()) - before < 5, "a task per endpoint"

    stuck, other = served[0], served[1]
    async def hang(timeout: float) -> None:
        await asyncio.get_running_loop().create_future()

    stuck.service.check = hang  # its component's PING never answers: its checks wait
    other.service._answered_at = 0.0  # the other component's next check PINGs again
    await asyncio.sleep(0.2)
    assert other.service._answered_at > 0.0, "the other component's checks were held back"
    assert [s.state for s in served] == [State.HEALTHY] * 50  # a check under way changes nothing yet
    await stuck.stop(drain_timeout=0.1)  # ends its check under way
    assert stuck.state is State.DEREGISTERED
    await rt.shutdown()
