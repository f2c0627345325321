"""Time travel at scale: drawing any kind at a time ``t`` from a recording of 10,000 events, and an exported story.

Serves two endpoints on the embedded backend and calls them until the runtime has recorded ``--events`` records
(each call records a call, a request and a response; the recorder keeps as many frames as records), saves the
recording, loads it back, and prints the median time of ``diagram(recording, kind, at=t)`` at five times for
every kind (budget 20 ms), and the first such figure of a recording just loaded, with nothing kept from earlier
figures (median of ``--firsts``, each after loading the file again: loading merges and groups the records, the
first figure of an instance indexes its own; later times cut that), with the garbage collections that ran during
those first figures (the benchmark's own heap is collected as a user's would be: GC stays on), the median load
time, the file's size, and the size of a walkthrough-sized timeline exported as HTML (budget 2 MB).

    python benchmarks/bench_time_travel.py [--events 10000] [--runs 5] [--firsts 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import statistics
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any, AsyncIterator

import dynamo_nb
from dynamo_nb import DistributedRuntime
from dynamo_nb.display.kinds import KINDS

BUDGET_MS = 20.0
HTML_BUDGET = 2_000_000


async def _tokens(request: Any) -> AsyncIterator[dict[str, str]]:
    for tok in str(request.get("prompt", "")).split():
        yield {"token": tok}


async def _record(events: int, folder: Path) -> tuple[Path, Path]:
    frontend = await DistributedRuntime.create(name="frontend")
    worker = await DistributedRuntime.create(name="worker")
    for rt in (frontend, worker):  # room for every event (the default ring keeps 2,000)
        rt.recorder.records = deque(rt.recorder.records, maxlen=events)
        rt.recorder.frames = deque(rt.recorder.frames, maxlen=events)
    component = worker.namespace("dynamo").component("Worker")
    served = [await component.endpoint(name).endpoint_builder().handler(_tokens).start()
              for name in ("generate", "embed")]
    client = await frontend.endpoint("dynamo.Worker.generate").client()
    await client.wait_for_instances()
    story = folder / "story.jsonl"
    await (await client.round_robin({"prompt": "hello dynamo"})).collect()
    await component.publish("kv_events", {"blocks": 1})
    await served[1].stop()
    walkthrough = folder / "walkthrough.html"
    dynamo_nb.Timeline([frontend, worker], kind="hierarchy").export_html(walkthrough)
    while len(worker.recorder.records) < events:
        await (await client.round_robin({"prompt": "a"})).collect()
    worker.recorder.save(story)
    await frontend.shutdown()
    await worker.shutdown()
    return story, walkthrough


class _Collections:
    """What the garbage collector did while it is on: how many collections, how many full ones, and their time."""

    def __init__(self) -> None:
        self.count = self.full = 0
        self.ms = 0.0
        self._since = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._since = time.perf_counter()
            return
        self.count += 1
        self.full += info["generation"] == 2
        self.ms += (time.perf_counter() - self._since) * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--firsts", type=int, default=3, help="first figures per kind, each of a fresh load")
    args = parser.parse_args(argv)
    kept = importlib.import_module("dynamo_nb.display.snapshot")  # what it keeps between figures
    loads: list[float] = []
    load_cpu: list[float] = []

    def load(story: Path) -> Any:
        for name in ("_LAYOUTS", "_MERGES", "_LATEST"):
            getattr(kept, name, {}).clear()
        start, cpu_start = time.perf_counter(), time.process_time()
        recording = dynamo_nb.load_recording(story)
        loads.append((time.perf_counter() - start) * 1000)
        load_cpu.append((time.process_time() - cpu_start) * 1000)
        return recording

    with tempfile.TemporaryDirectory() as tmp:
        story, walkthrough = asyncio.run(_record(args.events, Path(tmp)))
        recording = load(story)
        times = recording.times()
        moments = [times[int(i * (len(times) - 1) / 4)] for i in range(5)]
        print(f"recording: {len(recording)} events, {len(recording.states[0].frames)} frames, "
              f"{story.stat().st_size / 1e6:.1f} MB; median of {args.runs} runs at each of 5 times, first figures "
              f"the median of {args.firsts} fresh loads; budget {BUDGET_MS:g} ms")
        worst = worst_first = 0.0
        collections = _Collections()
        for kind in KINDS:
            firsts, cpu = [], []
            for _ in range(args.firsts):  # each of a recording just loaded, with nothing kept from other figures
                fresh = load(story)
                gc.callbacks.append(collections)
                t0, c0 = time.perf_counter(), time.process_time()
                _ = dynamo_nb.diagram(fresh, kind, at=moments[2]).mermaid
                firsts.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
                gc.callbacks.remove(collections)
                del fresh
            first = statistics.median(firsts)
            worst_first = max(worst_first, first)
            samples = []
            for t in moments:
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    _ = dynamo_nb.diagram(recording, kind, at=t).mermaid
                    samples.append((time.perf_counter() - t0) * 1000)
            ms = statistics.median(samples)
            worst = max(worst, max(statistics.median(samples[i:i + args.runs])
                                   for i in range(0, len(samples), args.runs)))
            print(f"  {kind:<10} {ms:7.2f} ms median, slowest moment {max(samples):7.2f} ms, "
                  f"first figure {first:7.2f} ms ({statistics.median(cpu):.2f} ms CPU)")
        print(f"slowest kind at its slowest moment (median): {worst:.2f} ms "
              f"({'within' if worst <= BUDGET_MS else 'OVER'} the {BUDGET_MS:g} ms budget)")
        print(f"slowest first figure (median): {worst_first:.2f} ms "
              f"({'within' if worst_first <= BUDGET_MS else 'OVER'} the {BUDGET_MS:g} ms budget); garbage "
              f"collections during the {len(KINDS) * args.firsts} first figures: {collections.count} "
              f"({collections.full} full), {collections.ms:.1f} ms in all")
        print(f"loading the recording: {statistics.median(loads):.0f} ms ({statistics.median(load_cpu):.0f} ms CPU; "
              f"median of {len(loads)} loads)")
        size = walkthrough.stat().st_size
        print(f"a walkthrough's timeline as HTML: {size / 1e6:.2f} MB "
              f"({'within' if size <= HTML_BUDGET else 'OVER'} the {HTML_BUDGET / 1e6:g} MB budget)")


if __name__ == "__main__":
    main()
