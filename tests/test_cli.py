"""The ``dynamo-nb`` command line on real servers: serve as processes (signals, restarts, GPUs) and every command.

Each CLI runs as ``python -m dynamo_nb`` in a subprocess with this checkout on ``PYTHONPATH``; every process a
test starts is ended by its PID.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from support import eventually

from dynamo_nb import DistributedRuntime
from dynamo_nb.cli import main
from dynamo_nb.cluster import LocalCluster

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"


def cli_env(cluster: LocalCluster | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ETCD_ENDPOINTS", "NATS_SERVER")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(DATA)])
    if cluster is not None:
        env.update(ETCD_ENDPOINTS=cluster.etcd_endpoints, NATS_SERVER=cluster.nats_server)
    return env


class Cli:
    """One ``python -m dynamo_nb ...`` process, read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def line(self, timeout: float = 30.0) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            err = await self.proc.stderr.read() if self.proc.stderr else b""
            raise AssertionError(f"the CLI ended: {err.decode()[-2000:]}")
        self.lines.append(raw.decode().rstrip("\n"))
        return self.lines[-1]

    async def event(self, **match: Any) -> dict[str, Any]:
        """The next JSON line whose fields include ``match``."""
        while True:
            doc = json.loads(await self.line())
            if all(doc.get(k) == v for k, v in match.items()):
                return doc

    async def end(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), timeout)


async def start_cli(*args: str, cluster: LocalCluster | None, cwd: Path = DATA) -> Cli:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dynamo_nb", *args, cwd=cwd, env=cli_env(cluster),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    return Cli(proc)


async def run_cli(*args: str, cluster: LocalCluster | None, timeout: float = 60.0) -> tuple[int, str, str]:
    cli = await start_cli(*args, cluster=cluster)
    out, err = await asyncio.wait_for(cli.proc.communicate(), timeout)
    return cli.proc.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def caller(local_cluster: LocalCluster) -> AsyncIterator[DistributedRuntime]:
    rt = await DistributedRuntime.create(etcd_endpoints=local_cluster.etcd_endpoints,
                                         nats_server=local_cluster.nats_server)
    yield rt
    await rt.shutdown()


@pytest.fixture
async def served_graph(local_cluster: LocalCluster) -> AsyncIterator[Cli]:
    cli = await start_cli("serve", "sdk_graph:Frontend", "-f", "sdk_graph.yaml", "--gpus", "8", "--json",
                          "--VllmWorker.model=cli-model", cluster=local_cluster)
    try:
        await cli.event(event="serving")
        yield cli
    finally:
        if cli.proc.returncode is None:
            cli.proc.kill()
            await cli.proc.wait()


# ------------------------------------------------------------------------------------------------ serve
async def test_serve_runs_processes_with_gpus_restarts_a_killed_worker_and_stops_on_sigterm(
        served_graph: Cli, caller: DistributedRuntime) -> None:
    cli = served_graph
    started = [json.loads(x) for x in cli.lines if '"started"' in x]
    ready = {d["worker"]: d for d in (json.loads(x) for x in cli.lines) if d.get("event") == "ready"}
    gpus = {d["worker"]: d["gpus"] for d in started}
    assert [gpus[f"VllmWorker-{i}"] for i in range(4)] == [[0], [1], [2], [3]]
    assert gpus["Frontend-0"] == [] and len(ready) == 6
    assert len({d["pid"] for d in ready.values()}) == 6  # six processes

    worker_client = await caller.endpoint("production.VllmWorker.generate").client()
    await eventually(lambda: len(worker_client.instance_ids()) == 4)
    front = await caller.endpoint("production.Frontend.chat/completions").client()
    await front.wait_for_instances(timeout=5)
    seen = {}
    for _ in range(8):
        items = [i async for i in await front.round_robin({"prompt": "a b"})]
        assert [i["token"] for i in items] == ["a", "b"] and items[0]["model"] == "cli-model"
        seen[items[0]["pid"]] = items[0]["gpus"]
    assert sorted(seen.values()) == ["0", "1", "2", "3"]  # every worker reached, each with its own GPU

    victim = ready["VllmWorker-2"]
    os.kill(victim["pid"], signal.SIGKILL)
    crashed = await cli.event(event="crashed", worker="VllmWorker-2")
    assert crashed["code"] == -signal.SIGKILL and crashed["restart"] == 1
    back = await cli.event(event="ready", worker="VllmWorker-2")
    assert back["pid"] != victim["pid"]
    await eventually(lambda: back["instance_id"] in worker_client.instance_ids())

    # the lease TTL is 10 s: keys gone well before it means each worker deregistered itself (all but the
    # SIGKILLed worker's first key, which stays until its lease expires)
    everything = await caller.registry.scan()
    live = lambda: [i for i in everything.instances.values()  # noqa: E731
                    if i.namespace == "production" and i.instance_id != victim["instance_id"]]
    await eventually(lambda: len(live()) == 6)
    began = time.monotonic()
    cli.proc.send_signal(signal.SIGTERM)
    await eventually(lambda: not live(), timeout=5.0)
    print(f"\nserve stopped by SIGTERM: every key gone {time.monotonic() - began:.3f} s after the signal")
    code = await asyncio.wait_for(cli.proc.wait(), 30)  # (another signal now would kill the workers)
    assert code == 0


async def test_serve_refuses_more_gpus_than_exist_before_starting_anything(local_cluster: LocalCluster) -> None:
    code, out, err = await run_cli("serve", "sdk_graph:Frontend", "-f", "sdk_graph.yaml", "--gpus", "2",
                                   cluster=local_cluster)
    assert code == 1 and "started" not in out
    assert "VllmWorker asks 4 worker(s) x 1 GPU(s) = 4, but only 2 of 2 GPU(s) are left" in err
    code, out, err = await run_cli("serve", "sdk_graph:Frontend", "-f", "sdk_graph.yaml", "--Nope.x=1",
                                   "--gpus", "8", cluster=local_cluster)
    assert code == 1 and "Nope" in err and "is not a service of this graph" in err


async def test_serve_without_servers_starts_a_local_cluster_and_prints_it() -> None:
    cli = await start_cli("serve", "sdk_graph:Processor", "--json", "--Processor.ServiceArgs.workers=1",
                          cluster=None)
    try:
        info = await cli.event(event="cluster")
        assert info["ETCD_ENDPOINTS"].startswith("http://127.0.0.1:")
        await cli.event(event="serving")
        assert await cli.end(signal.SIGINT) == 0
    finally:
        if cli.proc.returncode is None:
            cli.proc.kill()
            await cli.proc.wait()


async def test_a_plain_serve_endpoint_script_deregisters_on_sigterm(tmp_path: Path, local_cluster: LocalCluster,
                                                                   caller: DistributedRuntime) -> None:
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent("""
        import asyncio
        from dynamo_nb import DistributedRuntime

        async def gen(request):
            yield request

        async def main():
            runtime = await DistributedRuntime.create()
            endpoint = runtime.endpoint("script.Worker.generate")
            print("serving", flush=True)
            await endpoint.serve_endpoint(gen)
            print("stopped gracefully", flush=True)
            await runtime.shutdown()

        asyncio.run(main())
    """))
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script), env=cli_env(local_cluster),
                                                stdout=asyncio.subprocess.PIPE)
    try:
        client = await caller.endpoint("script.Worker.generate").client()
        await client.wait_for_instances(timeout=30)
        proc.send_signal(signal.SIGTERM)
        await eventually(lambda: client.instance_ids() == [], timeout=5.0)  # lease TTL is 10 s
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert b"stopped gracefully" in out and proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# ------------------------------------------------------------------------------------------------ the rest
async def test_ls_call_stats_diagram_on_a_served_graph(served_graph: Cli, local_cluster: LocalCluster,
                                                      tmp_path: Path) -> None:
    code, out, _ = await run_cli("ls", "--json", cluster=local_cluster)
    rows = json.loads(out)["instances"]
    assert code == 0
    assert sorted({(r["component"], r["endpoint"]) for r in rows}) == [
        ("Frontend", "chat/completions"), ("Processor", "generate"), ("VllmWorker", "generate")]
    assert len([r for r in rows if r["component"] == "VllmWorker"]) == 4
    code, out, _ = await run_cli("ls", cluster=local_cluster)
    assert "production/\n  Frontend/\n    chat/completions\n" in out

    code, out, _ = await run_cli("call", "production.Frontend.chat/completions", '{"prompt": "x y z"}',
                                 cluster=local_cluster)
    assert code == 0 and [json.loads(line)["token"] for line in out.splitlines()] == ["x", "y", "z"]

    code, out, _ = await run_cli("stats", "--json", cluster=local_cluster)
    stats = {c["component"]: c for c in json.loads(out)["components"]}
    assert code == 0 and len(stats["VllmWorker"]["services"]) == 4
    assert stats["Frontend"]["services"][0]["endpoints"][0]["num_requests"] >= 1

    for suffix, expect in ((".mmd", "flowchart"), (".txt", "Component VllmWorker"), (".dot", "digraph")):
        target = tmp_path / f"h{suffix}"
        code, out, err = await run_cli("diagram", "hierarchy", "production", "-o", str(target), cluster=local_cluster)
        assert code == 0, err
        assert expect in target.read_text()
    code, _, err = await run_cli("diagram", "nosuchkind", "-o", str(tmp_path / "x.txt"), cluster=local_cluster)
    assert code == 1 and "unknown diagram kind" in err


async def test_ls_watch_redraws_and_events_print_as_they_come(local_cluster: LocalCluster,
                                                             caller: DistributedRuntime) -> None:
    watch = await start_cli("ls", "--watch", "--json", cluster=local_cluster)
    events = await start_cli("events", "evns", "--json", cluster=local_cluster)
    try:
        assert json.loads(await watch.line())["instances"] == []
        await events.event(event="subscribed")

        async def gen(request):
            yield request
        served = await caller.endpoint("evns.Comp.generate").endpoint_builder().handler(gen).start()
        while not json.loads(await watch.line())["instances"]:
            pass
        comp = caller.namespace("evns").component("Comp")
        await comp.publish("kv_events", {"blocks": 3})
        await caller.namespace("evns").publish("hello", {"n": 1})
        got = [await events.event(), await events.event()]
        assert [g["subject"] for g in got] == ["namespace.evns.component.Comp.kv_events", "namespace.evns.hello"]
        assert got[0]["data"] == {"blocks": 3}
        await served.stop()
        while json.loads(await watch.line())["instances"]:
            pass
        assert await watch.end(signal.SIGINT) == 0 and await events.end(signal.SIGINT) == 0
    finally:
        for cli in (watch, events):
            if cli.proc.returncode is None:
                cli.proc.kill()
                await cli.proc.wait()


async def test_call_ctrl_c_cancels_the_remote_handler(local_cluster: LocalCluster, caller: DistributedRuntime) -> None:
    stopped = asyncio.Event()

    async def slow(request, context):
        try:
            for i in range(1000):
                yield {"i": i}
                await asyncio.sleep(0.05)
                if context.is_stopped():
                    break
        finally:
            stopped.set()
    served = await caller.endpoint("calls.Slow.generate").endpoint_builder().handler(slow).start()
    cli = await start_cli("call", "calls.Slow.generate", "{}", cluster=local_cluster)
    try:
        assert json.loads(await cli.line()) == {"i": 0}
        code = await cli.end(signal.SIGINT)
        await asyncio.wait_for(stopped.wait(), 10)
        assert code == 130 and served.stats.num_requests == 1
    finally:
        if cli.proc.returncode is None:
            cli.proc.kill()
            await cli.proc.wait()
        await served.stop()


async def test_up_prints_exports_for_servers_that_answer() -> None:
    cli = await start_cli("up", "--json", cluster=None)
    try:
        env = json.loads(await cli.line())
        rt = await DistributedRuntime.create(etcd_endpoints=env["ETCD_ENDPOINTS"], nats_server=env["NATS_SERVER"])
        await rt.shutdown()
        assert await cli.end(signal.SIGINT) == 0
    finally:
        if cli.proc.returncode is None:
            cli.proc.kill()
            await cli.proc.wait()


def test_the_console_script_target_runs_a_command(local_cluster: LocalCluster, capsys, monkeypatch) -> None:
    monkeypatch.setenv("ETCD_ENDPOINTS", local_cluster.etcd_endpoints)
    monkeypatch.setenv("NATS_SERVER", local_cluster.nats_server)
    assert main(["ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"instances": []}
    monkeypatch.delenv("ETCD_ENDPOINTS")
    assert main(["ls"]) == 1
    assert "dynamo-nb up" in capsys.readouterr().err
