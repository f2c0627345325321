"""A LocalCluster leaves nothing behind when Python is ended by SIGTERM or SIGINT (issue 15)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.servers
ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from dynamo_nb import LocalCluster
    async def main():
        cluster = await LocalCluster().start()
        print(cluster.data_dir, cluster.nats_pid, cluster.etcd_pid, flush=True)
        await asyncio.sleep(60)
    asyncio.run(main())
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too (its parent, the killed script, may not have reaped it yet)
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_temp_dir_and_servers_go_when_python_is_ended_by_a_signal(signum):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()  # bounded by the test timeout: the script prints once started
        data_dir, nats_pid, etcd_pid = line.split()
        assert Path(data_dir).is_dir()
        proc.send_signal(signum)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert not Path(data_dir).exists(), proc.stderr.read()[-2000:]
    deadline = time.monotonic() + 10  # a bound on the wait, not a measurement
    while any(_alive(int(p)) for p in (nats_pid, etcd_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(int(p)) for p in (nats_pid, etcd_pid))
    if signum == signal.SIGTERM:
        assert proc.returncode == -signal.SIGTERM  # still dies of the signal, as the sender expects
