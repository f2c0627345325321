"""Benchmark the real backend on a LocalCluster, worker and caller in separate processes, next to raw nats-py.

Run ``python benchmarks/bench_cluster.py`` (``--quick`` for a shorter run). It prints one table: one-item call
latency against a raw nats-py request/reply between two processes, items/s of one 10,000-item stream against raw
nats-py pub/sub, calls/s with 64 concurrent callers, how long a waiting client in another process takes to see an
instance after ``start()`` returns, the worker's peak RSS, and whether ``import dynamo_nb`` stays light.

Every process runs on uvloop when it is installed, as ``dynamo-nb serve`` does (``--loop asyncio`` for asyncio's
own loop, which a notebook kernel keeps). ``--profile DIR`` writes cProfile stats of the worker and the caller for
the latency and the concurrent phases (``DIR/{worker,caller}-{latency,concurrent}.prof``) and prints their top
entries.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dynamo_nb.cluster import LocalCluster  # noqa: E402

__all__ = ["main"]

PROC = Path(__file__).resolve().parent / "bench_proc.py"
#: ratios against raw nats-py measured in the same run (call: at most; stream and concurrent: at least)
TARGETS = {"call": 1.4, "stream": 0.9, "concurrent": 0.5, "discovery_ms": 10.0, "rss_mib": 60.0}


class Proc:
    """One role process of ``bench_proc.py``, driven line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, role: str, cluster: LocalCluster) -> "Proc":
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(PROC), role, cluster.etcd_endpoints, cluster.nats_server,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(REPO))
        self = cls(proc)
        self.role = role
        ready = await self._read(60)
        assert ready.get("ready") == role, ready
        self.loop = ready.get("loop", "?")
        return self

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"bench process {self.proc.pid} exited")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"bench process {self.proc.pid}: {answer['error']}")
        return answer

    def send(self, cmd: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())

    async def ask(self, cmd: str, timeout: float = 120, **args: Any) -> dict[str, Any]:
        self.send(cmd, **args)
        return await self._read(timeout)

    async def profiled(self, profile: str | None, name: str, procs: list["Proc"], cmd: str,
                       **args: Any) -> dict[str, Any]:
        """``ask(cmd)``, with ``procs`` profiled meanwhile when ``profile`` names a directory."""
        if profile:
            for p in procs:
                await p.ask("profile_start")
        try:
            return await self.ask(cmd, **args)
        finally:
            if profile:
                for p in procs:
                    await p.ask("profile_stop", path=os.path.join(profile, f"{p.role}-{name}.prof"))

    async def close(self) -> None:
        if self.proc.returncode is None:
            try:
                await self.ask("quit", timeout=10)
            except Exception:
                pass
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except asyncio.TimeoutError:
            self.proc.kill()  # a process this script started
            await self.proc.wait()


class CpuMeter:
    """CPU seconds each process spends during one phase, per call: the cost a busy shared machine does not blur
    (wall-clock rates move with other people's load; CPU per call barely does)."""

    def __init__(self, cluster: LocalCluster, procs: dict[str, Proc]) -> None:
        self.procs = procs
        self.nats_pid = cluster.nats_pid
        self.before: dict[str, float] = {}

    def _nats_cpu(self) -> float:
        with open(f"/proc/{self.nats_pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    async def _read(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, p in self.procs.items():
            answer = await p.ask("cpu")
            out[name], out[f"{name} (kernel)"] = answer["cpu"], answer["sys"]
        out["nats"] = self._nats_cpu()
        return out

    async def start(self) -> None:
        self.before = await self._read()

    async def per_call(self, result: dict[str, Any]) -> dict[str, float]:
        after = await self._read()
        calls = result["calls"]
        return {k: (after[k] - self.before[k]) / calls * 1e6 for k in after}


def import_check() -> tuple[list[str], float]:
    """Modules ``import dynamo_nb`` pulls in that it should not, and the import's wall time."""
    code = ("import sys, time; t = time.perf_counter(); import dynamo_nb; t = time.perf_counter() - t; "
            "print(sorted(m for m in ('aetcd', 'nats', 'grpc', 'IPython', 'ipywidgets') if m in sys.modules), t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    heavy, took = out.stdout.rsplit(" ", 1)
    return json.loads(heavy.replace("'", '"')), float(took)


async def run(quick: bool, profile: str | None = None) -> list[tuple[str, str, str, str, str]]:
    n_lat = 500 if quick else 3000
    repeat = 3 if quick else 7
    seconds = 2.0 if quick else 5.0
    discoveries = 10 if quick else 30
    rows: list[tuple[str, str, str, str, str]] = []
    async with LocalCluster() as cluster:
        raw = await Proc.start("raw-server", cluster)
        worker = await Proc.start("worker", cluster)
        caller = await Proc.start("caller", cluster)
        try:
            # 1. one-item call latency vs raw request/reply
            rows.append(("event loop of every process", caller.loop, raw.loop, "-", ""))
            raw_lat = await caller.ask("raw_latency", n=n_lat)
            lat = await caller.profiled(profile, "latency", [worker, caller], "latency", n=n_lat)
            ratio = lat["median"] / raw_lat["median"]
            rows.append(("one-item call latency, median / p90",
                         f"{lat['median'] * 1e6:.0f} / {lat['p90'] * 1e6:.0f} µs",
                         f"{raw_lat['median'] * 1e6:.0f} / {raw_lat['p90'] * 1e6:.0f} µs (request/reply)",
                         f"{ratio:.2f}× raw (target ≤ {TARGETS['call']}×)",
                         "ok" if ratio <= TARGETS["call"] else "MISS"))
            # 2. one 10,000-item stream vs raw pub/sub
            raw_stream = await caller.ask("raw_stream_rate", n=10_000, repeat=repeat)
            stream = await caller.ask("stream_rate", n=10_000, repeat=repeat)
            ratio = stream["median"] / raw_stream["median"]
            rows.append(("10,000-item stream, items/s (median, best)",
                         f"{stream['median']:,.0f} ({stream['best']:,.0f})",
                         f"{raw_stream['median']:,.0f} ({raw_stream['best']:,.0f}) msgs/s (pub/sub)",
                         f"{ratio:.2f}× raw (target ≥ {TARGETS['stream']}×)",
                         "ok" if ratio >= TARGETS["stream"] else "MISS"))
            # 3. 64 concurrent callers
            cpu = CpuMeter(cluster, {"caller": caller, "server": raw})
            await cpu.start()
            raw_conc = await caller.ask("concurrent", callers=64, seconds=seconds, raw=True)
            raw_cpu = await cpu.per_call(raw_conc)
            cpu = CpuMeter(cluster, {"caller": caller, "server": worker})
            await cpu.start()
            conc = await caller.profiled(profile, "concurrent", [worker, caller], "concurrent", callers=64,
                                         seconds=seconds)
            conc_cpu = await cpu.per_call(conc)
            ratio = conc["calls_per_s"] / raw_conc["calls_per_s"]
            rows.append(("calls/s, 64 concurrent callers",
                         f"{conc['calls_per_s']:,.0f}",
                         f"{raw_conc['calls_per_s']:,.0f} (request/reply)",
                         f"{ratio:.2f}× raw (target ≥ {TARGETS['concurrent']}×)",
                         "ok" if ratio >= TARGETS["concurrent"] else "MISS"))
            def cpu_text(cpu: dict[str, float]) -> str:
                return " / ".join(f"{cpu[k]:.0f}" + (f" ({cpu[k + ' (kernel)']:.0f})" if k != "nats" else "")
                                  for k in ("caller", "server", "nats"))

            def total(cpu: dict[str, float]) -> float:
                return cpu["caller"] + cpu["server"] + cpu["nats"]

            rows.append(("  CPU µs per call: caller / worker / nats-server (kernel share)", cpu_text(conc_cpu),
                         cpu_text(raw_cpu) + " (worker: raw echo)", f"{total(conc_cpu) / total(raw_cpu):.2f}× raw "
                         "in all", ""))
            # 4. discovery: start() returning in the worker → the caller's watcher applying the put
            after_return, after_call = [], []
            for i in range(discoveries):
                await caller.ask("watch", i=i)
                caller.send("wait_seen", i=i)
                started = await worker.ask("start", i=i)
                seen = (await caller._read(30))["seen"]
                after_return.append((seen - started["returned"]) * 1000)
                after_call.append((seen - started["called"]) * 1000)
                await worker.ask("stop", i=i)
            median = statistics.median(after_return)
            rows.append(("start() returned → client in another process sees it",
                         f"{median:+.2f} ms median, {max(after_return):+.2f} ms max",
                         "-", f"target ≤ {TARGETS['discovery_ms']:.0f} ms",
                         "ok" if median <= TARGETS["discovery_ms"] else "MISS"))
            rows.append(("  (start() called → seen; < 0 above: seen before start() returned)",
                         f"{statistics.median(after_call):.2f} ms median", "-", "-", ""))
            # 5. worker peak RSS
            rss = await worker.ask("rss")
            mib = rss["vm_hwm_kib"] / 1024
            rows.append(("worker peak RSS (VmHWM)", f"{mib:.1f} MiB", "-", f"target ≤ {TARGETS['rss_mib']:.0f} MiB",
                         "ok" if mib <= TARGETS["rss_mib"] and not rss["modules"] else "MISS"))
        finally:
            for proc in (caller, worker, raw):
                await proc.close()
    heavy, took = import_check()
    rows.append(("`import dynamo_nb` loads aetcd/nats/grpc/IPython/ipywidgets?",
                 ", ".join(heavy) if heavy else "none", "-", f"import takes {took * 1000:.0f} ms",
                 "ok" if not heavy else "MISS"))
    return rows


def print_table(rows: list[tuple[str, str, str, str, str]]) -> None:
    header = ("measure", "dynamo_nb", "raw nats-py", "vs target", "")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def print_profiles(directory: str, top: int = 12) -> None:
    """The top entries (own time) of each profiled process and phase."""
    import pstats

    for name in sorted(os.listdir(directory)):
        if name.endswith(".prof"):
            print(f"\n== {name}")
            pstats.Stats(os.path.join(directory, name)).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (about 20 s instead of a minute)")
    parser.add_argument("--profile", metavar="DIR", help="cProfile the worker and the caller during the latency "
                        "and concurrent phases, into DIR/ROLE-PHASE.prof, and print their top entries")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="the event loop of every process (uvloop when installed, as `dynamo-nb serve`)")
    args = parser.parse_args()
    if args.loop == "asyncio":
        os.environ["DYNAMO_NB_LOOP"] = "asyncio"
    profile = os.path.abspath(args.profile) if args.profile else None
    if profile:
        os.makedirs(profile, exist_ok=True)
    started = time.monotonic()
    rows = asyncio.run(run(args.quick, profile))
    print_table(rows)
    if profile:
        print_profiles(profile)
    print(f"\n({time.monotonic() - started:.0f} s; nats-server, etcd, worker and caller share this machine's "
          f"CPUs, so figures move with its load)")


if __name__ == "__main__":
    main()
