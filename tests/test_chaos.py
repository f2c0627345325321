"""A bounded chaos soak: load on worker processes while one is killed, one frozen past its lease, and both servers
restarted, in turn, on one LocalCluster (loopback only).

A caller runtime in this process drives a few concurrent callers; every call carries a unique tag (the worker
prints ``RAN <tag>`` when its handler starts) and streams a few items. Afterwards every call must have either
completed exactly once with all its items in order, or raised one package error (never hung, never a silent
partial stream); no handler may have run twice; and the caller's file descriptors and memory must be back near
where they started. The figures (calls, items, errors by kind, longest stall) are printed.

Bounded in count (``MAX_CALLS`` per caller) and in time (each call, each wait, and the whole soak).
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from conftest import real_runtime
from dynamo_nb import DynamoError
from dynamo_nb.cluster import LocalCluster
from support import WorkerProcess, eventually, worker_pool

pytestmark = pytest.mark.servers

REF = "chaos.Worker.generate"
TTL = 1.0  # the workers' lease: a frozen worker leaves discovery after about this long
CALLERS = 6
ITEMS = 6  # items streamed by each call
ITEM_DELAY = 0.02  # seconds between items, so streams are in flight when a fault strikes
MAX_CALLS = 1500  # per caller: the load is bounded in count as well as in time
CALL_BOUND = 25.0  # no call may take longer (ack timeout 5 s + stream idle timeout 5 s + failover, with room)
SOAK_BOUND = 50.0  # the chaos phase as a whole (the test, with setup, stays within about 60 s)
FD_MARGIN = 12  # descriptors above the baseline still counted as "back" (sockets the servers' clients reopened)
RSS_MARGIN = 96 * 1024 * 1024  # bytes: generous, a busy machine and the allocator keep some; a leak is far more


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@dataclass
class Outcome:
    tag: str
    items: list[Any] = field(default_factory=list)
    error: BaseException | None = None
    hung: bool = False
    stall: float = 0.0  # longest wait for the next item (or for the stream's end) within this call
    phase: str = ""  # the fault under way when the call started


class Load:
    """``CALLERS`` loops calling ``client.round_robin`` with unique tags until told to stop."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.outcomes: list[Outcome] = []
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.phase = "steady"

    def completed(self) -> int:
        return sum(1 for o in self.outcomes if o.error is None and not o.hung)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._drive(k)) for k in range(CALLERS)]

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), CALL_BOUND + 5)

    async def _drive(self, k: int) -> None:
        for n in range(MAX_CALLS):
            if self.stop.is_set():
                return
            outcome = Outcome(f"c{k}-{n}", phase=self.phase)
            self.outcomes.append(outcome)
            try:
                await asyncio.wait_for(self._call(outcome), CALL_BOUND)
            except asyncio.TimeoutError:
                outcome.hung = True
            except Exception as exc:  # anything but a package error is a finding, kept for the assertions
                outcome.error = exc
            if outcome.error is not None or outcome.hung:
                await asyncio.sleep(0.05)  # no tight loop of failures while a server is away
            else:
                await asyncio.sleep(0.005)

    async def _call(self, outcome: Outcome) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        try:
            stream = await self.client.round_robin({"tag": outcome.tag, "n": ITEMS, "delay": ITEM_DELAY})
            async for item in stream:
                now = loop.time()
                outcome.stall, last = max(outcome.stall, now - last), now
                outcome.items.append(item)
        except DynamoError as exc:
            outcome.error = exc
        outcome.stall = max(outcome.stall, loop.time() - last)


@pytest.mark.timeout(110)
async def test_bounded_chaos_soak(monkeypatch: pytest.MonkeyPatch) -> None:
    # The caller gives up on a silent stream after 5 s instead of 30 s (a frozen worker's streams end sooner still,
    # once its key is gone); the bound keeps every call well inside CALL_BOUND.
    monkeypatch.setenv("DYNAMO_NB_STREAM_IDLE_TIMEOUT", "5")
    workers: dict[int, WorkerProcess] = {}
    async with LocalCluster() as cluster, worker_pool(REF) as start_worker:

        async def start() -> WorkerProcess:
            worker = await start_worker(cluster, TTL)
            workers[worker.pid] = worker
            return worker

        victim, sleeper = await start(), await start()
        caller = await real_runtime(cluster, health_check_interval=0.2)
        try:
            role = {victim.pid: "killed", sleeper.pid: "frozen"}
            client = await caller.endpoint(REF).client()
            await eventually(lambda: set(client.instance_ids()) == {victim.instance_id, sleeper.instance_id}, 15)
            for n in range(8):  # warm up: connections, codecs and caches exist before the baseline is taken
                assert len(await asyncio.wait_for((await client.round_robin({"tag": f"warm-{n}", "n": ITEMS}))
                                                  .collect(), CALL_BOUND)) == ITEMS
            gc.collect()
            fds0, rss0 = open_fds(), rss_bytes()

            load = Load(client)
            load.start()

            async def progress(after: int, timeout: float = 20.0) -> None:
                """Wait until more calls have completed since ``after`` (the load resumed after a fault)."""
                await eventually(lambda: load.completed() > after + 8 * CALLERS, timeout)

            async def chaos() -> None:
                await progress(0)
                # 1. SIGKILL one worker; start a replacement.
                load.phase = "kill"
                victim.signal(signal.SIGKILL)
                await asyncio.wait_for(victim.proc.wait(), 10)
                spare = await start()
                role[spare.pid] = "replacement"
                await eventually(lambda: set(client.instance_ids()) == {sleeper.instance_id, spare.instance_id},
                                 TTL + 15)
                await progress(load.completed())
                # 2. SIGSTOP another past its lease (its key goes), then SIGCONT: it registers again.
                load.phase = "freeze"
                frozen_id = sleeper.instance_id
                sleeper.signal(signal.SIGSTOP)
                try:
                    await eventually(lambda: frozen_id not in client.instance_ids(), TTL + 15)
                    await progress(load.completed())
                finally:
                    sleeper.signal(signal.SIGCONT)
                await sleeper.wait_instance(timeout=20, other_than=frozen_id)
                await eventually(lambda: sleeper.instance_id in client.instance_ids(), 15)
                await progress(load.completed())
                # 3. nats-server restarted on the same port.
                load.phase = "nats restart"
                done = load.completed()
                await cluster.restart_nats(downtime=0.5)
                await progress(done)
                # 4. etcd restarted with the same data.
                load.phase = "etcd restart"
                done = load.completed()
                await cluster.restart_etcd(downtime=1.0)
                await progress(done)
                await eventually(lambda: set(client.instance_ids()) == {sleeper.instance_id, spare.instance_id}, 20)
                await progress(load.completed())

            try:
                await asyncio.wait_for(chaos(), SOAK_BOUND)
            finally:
                await load.finish()

            outcomes = load.outcomes
            completed = [o for o in outcomes if o.error is None and not o.hung]
            failed = [o for o in outcomes if o.error is not None]
            errors = Counter(type(o.error).__name__ for o in failed)
            longest = max(outcomes, key=lambda o: o.stall)
            print(f"\nchaos soak: {len(outcomes)} calls, {len(completed)} completed, "
                  f"{sum(len(o.items) for o in outcomes)} items, errors by kind {dict(errors) or 'none'}, "
                  f"longest stall {longest.stall:.2f} s ({longest.tag}), "
                  f"hung {sum(o.hung for o in outcomes)}")

            # Never hung, and every error is one clear package error.
            assert not [o.tag for o in outcomes if o.hung], "calls hung past their bound"
            foreign = [(o.tag, repr(o.error)) for o in failed if not isinstance(o.error, DynamoError)]
            assert not foreign, f"errors that are not the package's own: {foreign[:5]}"
            assert completed and len(completed) >= len(outcomes) // 2, "the load hardly ran"

            # A completed call has all its items, in order, from one worker; a failed one got a prefix of them.
            for o in completed:
                assert [item["i"] for item in o.items] == list(range(ITEMS)), f"{o.tag}: items {o.items}"
                assert len({item["pid"] for item in o.items}) == 1, f"{o.tag}: items from several workers"
            for o in failed:
                assert [item["i"] for item in o.items] == list(range(len(o.items))), f"{o.tag}: items {o.items}"

            # The caller's descriptors and memory are back near their baseline once the load has stopped.
            gc.collect()
            try:
                await eventually(lambda: open_fds() <= fds0 + FD_MARGIN, 15, interval=0.1)
            except AssertionError:
                raise AssertionError(f"file descriptors: {open_fds()} now, {fds0} before the load") from None
            rss = rss_bytes()
            print(f"caller: {fds0} → {open_fds()} fds, RSS {rss0 / 2**20:.1f} → {rss / 2**20:.1f} MiB")
            assert rss <= rss0 + RSS_MARGIN, f"RSS {rss0 / 2**20:.1f} → {rss / 2**20:.1f} MiB"

            # Each completed call's handler ran on the worker that answered it, and no handler ran twice anywhere.
            # The workers stop gracefully first, so every ``RAN`` line they printed has been read.
            for worker in workers.values():
                worker.signal(signal.SIGTERM)
            for worker in workers.values():
                await asyncio.wait_for(worker.proc.wait(), 20)
            await eventually(lambda: all(w._reader.done() for w in workers.values()), 10)
            runs = Counter(tag for worker in workers.values() for tag in worker.ran)
            twice = sorted(tag for tag, count in runs.items() if count > 1)
            by_tag = {o.tag: o for o in outcomes}
            assert not twice, "handlers ran twice: " + "; ".join(
                f"{tag} (during {by_tag[tag].phase}; ran on {[role[w.pid] for w in workers.values() if tag in w.ran]}; "
                f"caller got {len(by_tag[tag].items)} items, {by_tag[tag].error!r}, stall {by_tag[tag].stall:.1f} s)"
                for tag in twice[:10])
            for o in completed:
                assert runs[o.tag] == 1 and o.tag in workers[o.items[0]["pid"]].ran, f"{o.tag} did not run once there"
            assert set(runs) <= {o.tag for o in outcomes} | {f"warm-{n}" for n in range(8)}
        finally:
            await asyncio.wait_for(caller.shutdown(), 15)
