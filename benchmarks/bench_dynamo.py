"""dynamo_nb beside the real Dynamo 1.6.1 runtime, all four pairs, on one LocalCluster, on both request planes.

Run ``python benchmarks/bench_dynamo.py`` (``--quick`` for a shorter run; the peer interpreter is found as the
interop tests find it: ``DYNAMO_NB_DYNAMO_PYTHON`` or ``.venv-dynamo``). Every worker and every Dynamo caller is
its own process; dynamo_nb's caller runs in this one. Figures: one-item call latency (median, p90), items/s of
one 10,000-item stream, calls/s with 64 concurrent callers, for Dynamo → Dynamo, dynamo_nb → Dynamo,
Dynamo → dynamo_nb and dynamo_nb → dynamo_nb, and each figure's ratio against the Dynamo → Dynamo pair.
Every pair runs ``--rounds`` times, interleaved, and each figure is the median of its rounds: one 10,000-item
stream is over in a fraction of a second, so a single run mostly measures what else the machine was doing.
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

from dynamo_nb import DistributedRuntime  # noqa: E402
from dynamo_nb.cluster import LocalCluster  # noqa: E402

__all__ = ["main"]

PEERS = REPO / "tests" / "interop" / "peers"


def _peer_python() -> str:
    env = os.environ.get("DYNAMO_NB_DYNAMO_PYTHON")
    python = Path(env) if env else REPO / ".venv-dynamo" / "bin" / "python"
    if not python.exists():
        sys.exit(f"no Dynamo peer interpreter at {python}: run scripts/setup or set DYNAMO_NB_DYNAMO_PYTHON")
    return str(python)


def _env(cluster: LocalCluster, plane: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DYN_", "ETCD_", "NATS_"))}
    env.update(ETCD_ENDPOINTS=cluster.etcd_endpoints, NATS_SERVER=cluster.nats_server, DYN_REQUEST_PLANE=plane,
               DYN_TCP_RPC_HOST="127.0.0.1", DYN_TCP_RESPONSE_STREAM_HOST="127.0.0.1", DYN_LOG="error",
               DYN_SYSTEM_HOST="127.0.0.1", DYN_EVENT_PLANE_HOST="127.0.0.1", PYTHONPATH=str(REPO))
    return env


async def _start(argv: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=subprocess.PIPE,
                                                stderr=subprocess.DEVNULL)
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if not line.startswith(b'{"ready"'):
        raise RuntimeError(f"{argv} did not start: {line!r}")
    return proc


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


async def _dynamo_client(python: str, env: dict[str, str], ref: str, sizes: dict[str, int]) -> dict[str, float]:
    proc = await _start([python, str(PEERS / "bench_client.py"), ref, str(sizes["calls"]), str(sizes["stream"]),
                         "64", str(sizes["per_caller"])], env)
    line = await asyncio.wait_for(proc.stdout.readline(), 300)
    await proc.wait()
    return json.loads(line)["bench"]


async def _nb_client(cluster: LocalCluster, plane: str, ref: str, sizes: dict[str, int]) -> dict[str, float]:
    runtime = await DistributedRuntime.create(etcd_endpoints=cluster.etcd_endpoints,
                                              nats_server=cluster.nats_server, profile="dynamo", request_plane=plane)
    try:
        client = await runtime.endpoint(ref).client()
        await client.wait_for_instances(timeout=10)

        async def one(request: Any) -> list[Any]:
            return await (await client.generate(request)).collect()

        for _ in range(20):
            await one({"n": 1})
        lat = []
        for _ in range(sizes["calls"]):
            t = time.perf_counter()
            await one({"n": 1})
            lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        got = len(await one({"n": sizes["stream"]}))
        items_per_s = got / (time.perf_counter() - t)

        async def caller() -> None:
            for _ in range(sizes["per_caller"]):
                await one({"n": 1})

        t = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(64)))
        calls_per_s = 64 * sizes["per_caller"] / (time.perf_counter() - t)
        return {"p50_ms": statistics.median(lat) * 1e3, "p90_ms": statistics.quantiles(lat, n=10)[8] * 1e3,
                "items_per_s": items_per_s, "calls_per_s": calls_per_s}
    finally:
        await runtime.shutdown()


async def _serve_nb(ref: str) -> None:
    """The dynamo_nb worker process (``--serve``): servers and plane from the environment, as Dynamo's."""
    runtime = await DistributedRuntime.create(profile="dynamo")

    async def generate(request: Any) -> Any:
        for i in range(request.get("n", 1)):
            yield {"i": i}

    served = await runtime.endpoint(ref).endpoint_builder().handler(generate).start()
    print(json.dumps({"ready": True, "instance": served.instance_id}), flush=True)
    stop = asyncio.Event()
    import signal

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runtime.shutdown()


async def run(quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Every pair ``rounds`` times, interleaved (so a busy moment of a shared machine hits every pair alike);
    each figure is the median over the rounds."""
    sizes = {"calls": 200 if quick else 1000, "stream": 10_000, "per_caller": 10 if quick else 40}
    python = _peer_python()
    rows = []
    async with LocalCluster() as cluster:
        for plane in ("tcp", "nats"):
            env = _env(cluster, plane)
            real = await _start([python, str(PEERS / "bench_worker.py"), f"bench{plane}.real.generate"], env)
            ours = await _start([sys.executable, __file__, "--serve", f"bench{plane}.nb.generate"], env)
            try:
                pairs = [("Dynamo → Dynamo", "real"), ("dynamo_nb → Dynamo", "real"),
                         ("Dynamo → dynamo_nb", "nb"), ("dynamo_nb → dynamo_nb", "nb")]
                runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in pairs}
                for _ in range(rounds):
                    for name, worker in pairs:
                        ref = f"bench{plane}.{worker}.generate"
                        runs[name].append(await (_dynamo_client(python, env, ref, sizes) if name.startswith("Dynamo")
                                                 else _nb_client(cluster, plane, ref, sizes)))
                for name, got in runs.items():
                    rows.append({"plane": plane, "pair": name,
                                 **{key: statistics.median(r[key] for r in got) for key in got[0]}})
            finally:
                await _stop(real)
                await _stop(ours)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="runs of every pair; figures are medians")
    parser.add_argument("--serve", metavar="REF", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve_nb(args.serve))
        return
    rows = asyncio.run(run(args.quick, args.rounds))
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'plane':5} {'pair':22} {'p50 ms':>8} {'p90 ms':>8} {'items/s':>9} {'calls/s':>8}"
          "   ratios vs Dynamo → Dynamo")
    base = {}
    for row in rows:
        if row["pair"] == "Dynamo → Dynamo":
            base = row
        ratio = (f"latency ×{base['p50_ms'] / row['p50_ms']:.2f} faster, "
                 f"items ×{row['items_per_s'] / base['items_per_s']:.2f},"
                 f" calls ×{row['calls_per_s'] / base['calls_per_s']:.2f}")
        print(f"{row['plane']:5} {row['pair']:22} {row['p50_ms']:8.3f} {row['p90_ms']:8.3f} "
              f"{row['items_per_s']:9.0f} {row['calls_per_s']:8.0f}   {ratio}")


if __name__ == "__main__":
    main()
