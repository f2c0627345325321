"""``binder/start``: real servers in the background, their URLs exported, then the given command."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

import pytest

from dynamo_nb import DistributedRuntime
from dynamo_nb.cluster import free_port

ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.servers, pytest.mark.timeout(120)]  # binder/start runs nats-server and etcd


async def test_binder_start_runs_servers_and_exports_their_urls(tmp_path):
    state = tmp_path / "state"
    ports = {"DYNAMO_NB_NATS_PORT": free_port(), "DYNAMO_NB_ETCD_PORT": free_port(),
             "DYNAMO_NB_ETCD_PEER_PORT": free_port()}
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "DYNAMO_NB_STATE_DIR": str(state),
           "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("ETCD_ENDPOINTS", None)
    env.pop("NATS_SERVER", None)
    show = "import os; print(os.environ['ETCD_ENDPOINTS']); print(os.environ['NATS_SERVER'])"
    try:
        out = subprocess.run([str(ROOT / "binder" / "start"), sys.executable, "-c", show], env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        etcd_url, nats_url = out.stdout.split()
        assert etcd_url == f"http://127.0.0.1:{ports['DYNAMO_NB_ETCD_PORT']}"
        assert nats_url == f"nats://127.0.0.1:{ports['DYNAMO_NB_NATS_PORT']}"
        runtime = await DistributedRuntime.create(etcd_endpoints=etcd_url, nats_server=nats_url)
        try:
            assert runtime.backend.kind == "real"

            async def echo(request):
                yield request

            await runtime.endpoint("binder.check.echo").endpoint_builder().handler(echo).start()
            client = await runtime.endpoint("binder.check.echo").client()
            await client.wait_for_instances(timeout=10)
            assert await (await client.generate("hi")).collect() == ["hi"]
        finally:
            await runtime.shutdown()
    finally:
        for name in ("nats-server", "etcd"):  # stop exactly the servers binder/start launched
            pid_file = state / f"{name}.pid"
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text()), signal.SIGTERM)
                except ProcessLookupError:
                    pass
