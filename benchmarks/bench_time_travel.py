"""Time travel at scale: drawing any kind at a time ``t`` from a recording of 10,000 events, and an exported story.

Serves two endpoints on the embedded backend and calls them until the runtime has recorded ``--events`` records
(each call records a call, a request and a response; the recorder keeps as many frames as records), saves the
recording, loads it back, and prints the median time of ``diagram(recording, kind, at=t)`` at five times for
every kind (budget 20 ms), and the first such figure with nothing kept from earlier figures (median of three:
the first one merges the recording's records and indexes them; later times cut that), the file's size, and the size of a
walkthrough-sized timeline exported as HTML (budget 2 MB).

    python benchmarks/bench_time_travel.py [--events 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        story, walkthrough = asyncio.run(_record(args.events, Path(tmp)))
        start = time.perf_counter()
        recording = dynamo_nb.load_recording(story)
        load_s = time.perf_counter() - start
        times = recording.times()
        moments = [times[int(i * (len(times) - 1) / 4)] for i in range(5)]
        print(f"recording: {len(recording)} events, {len(recording.states[0].frames)} frames, "
              f"{story.stat().st_size / 1e6:.1f} MB, loaded in {load_s * 1000:.0f} ms; "
              f"median of {args.runs} runs at each of 5 times; budget {BUDGET_MS:g} ms")
        worst = 0.0
        kept = importlib.import_module("dynamo_nb.display.snapshot")  # what it keeps between figures
        for kind in KINDS:
            firsts = []
            for _ in range(3):  # the median of three first figures, each with nothing kept
                for name in ("_LAYOUTS", "_MERGES", "_LATEST"):
                    getattr(kept, name, {}).clear()
                t0 = time.perf_counter()
                _ = dynamo_nb.diagram(recording, kind, at=moments[2]).mermaid
                firsts.append((time.perf_counter() - t0) * 1000)
            first = statistics.median(firsts)
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
                  f"first figure {first:7.2f} ms")
        print(f"slowest kind at its slowest moment (median): {worst:.2f} ms "
              f"({'within' if worst <= BUDGET_MS else 'OVER'} the {BUDGET_MS:g} ms budget)")
        size = walkthrough.stat().st_size
        print(f"a walkthrough's timeline as HTML: {size / 1e6:.2f} MB "
              f"({'within' if size <= HTML_BUDGET else 'OVER'} the {HTML_BUDGET / 1e6:g} MB budget)")


if __name__ == "__main__":
    main()
