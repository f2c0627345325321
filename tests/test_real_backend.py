"""The real backend against real servers: connecting, auth, the wire as SPEC §8 states it, and what only sockets do.

The contract suites (``test_contract_*``) already run every interface method on the "servers" kind; this file
checks what they cannot: bytes seen by programs written from the spec alone (a raw nats-py caller with a raw TCP
listener, a raw worker on aetcd + nats-py), the services API answered over a real NATS, connection failures that
must be quick and name the URL, credentials passed from Dynamo's environment variables, and socket-level
behaviour of the response plane (back-pressure, callers that never get called back).
"""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import aetcd
import grpc
import nats
import pytest
from aetcd import rpc

from conftest import real_runtime
from dynamo_nb import DistributedRuntime
from dynamo_nb.backends import real
from dynamo_nb.backends.real import connect_real
from dynamo_nb.backends.real.etcd import etcd_auth_from_env, parse_etcd_endpoints
from dynamo_nb.backends.real.nats import nats_auth_from_env
from dynamo_nb.backends.real.tcp import TcpResponsePlane, parse_address
from dynamo_nb.cluster import LocalCluster, free_port
from dynamo_nb.errors import BackendError, BackendUnavailableError
from support import eventually

pytestmark = [pytest.mark.servers, pytest.mark.timeout(60)]

REPO = Path(__file__).resolve().parents[1]
PREFIX = struct.Struct(">QQQ")


def read_frames(data: bytes) -> list[tuple[bytes, bytes]]:
    """TwoPart frames, decoded by hand from SPEC §8 (not with dynamo_nb's decoder)."""
    frames, offset = [], 0
    while offset < len(data):
        header_len, body_len, checksum = PREFIX.unpack_from(data, offset)
        assert checksum == 0
        start = offset + PREFIX.size
        frames.append((data[start:start + header_len], data[start + header_len:start + header_len + body_len]))
        offset = start + header_len + body_len
    assert offset == len(data), "trailing bytes after the last frame"
    return frames


def frame(header: bytes = b"", body: bytes = b"") -> bytes:
    return PREFIX.pack(len(header), len(body), 0) + header + body


@pytest.fixture
async def runtimes(local_cluster: LocalCluster) -> AsyncIterator[Any]:
    created: list[DistributedRuntime] = []

    async def make(**kwargs: Any) -> DistributedRuntime:
        runtime = await real_runtime(local_cluster, **kwargs)
        created.append(runtime)
        return runtime

    yield make
    for runtime in reversed(created):
        await runtime.shutdown()


def raw_etcd(cluster: LocalCluster) -> aetcd.Client:
    return aetcd.Client(host="127.0.0.1", port=cluster.etcd_port, timeout=5)


# -- connecting -------------------------------------------------------------------------------------------

def test_importing_the_package_loads_no_client_library() -> None:
    code = ("import sys, dynamo_nb, dynamo_nb.backends.real; "
            "print(sorted(m for m in ('aetcd', 'nats', 'grpc') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


async def test_connect_real_accepts_one_url_a_comma_list_or_a_list(local_cluster: LocalCluster) -> None:
    url = local_cluster.etcd_endpoints
    for endpoints in (url, f"{url},{url}", [url, url]):
        backend = await connect_real(endpoints, local_cluster.nats_server)
        try:
            assert backend.kind == "real"
            assert url in backend.description and local_cluster.nats_server in backend.description
            assert backend.messaging.max_payload == 1024 * 1024  # from the server's INFO
            await backend.discovery.put("connect/probe", b"x")
            assert (await backend.discovery.get_prefix("connect/"))[1][0].value == b"x"
        finally:
            for part in (backend.messaging, backend.discovery, backend.responses):
                await part.close()


async def test_runtime_reads_dynamo_environment_variables(local_cluster: LocalCluster, monkeypatch) -> None:
    monkeypatch.setenv("ETCD_ENDPOINTS", local_cluster.etcd_endpoints)
    monkeypatch.setenv("NATS_SERVER", local_cluster.nats_server)
    runtime = await DistributedRuntime.create()
    try:
        assert runtime.backend.kind == "real"
        assert runtime.backend.discovery.url == local_cluster.etcd_endpoints
    finally:
        await runtime.shutdown()


async def test_unreachable_servers_fail_fast_naming_the_url(local_cluster: LocalCluster) -> None:
    dead = free_port()
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as info:
        await connect_real(f"http://127.0.0.1:{dead}", local_cluster.nats_server, connect_timeout=3)
    assert info.value.what == "etcd" and info.value.url == f"http://127.0.0.1:{dead}"
    assert f"127.0.0.1:{dead}" in str(info.value)
    with pytest.raises(BackendUnavailableError) as info:
        await connect_real(local_cluster.etcd_endpoints, f"nats://127.0.0.1:{dead}", connect_timeout=3)
    assert info.value.what == "NATS" and f"nats://127.0.0.1:{dead}" in str(info.value)
    assert time.monotonic() - started < 3, "a refused port should fail at once, not at the timeout"


async def test_a_server_that_never_answers_fails_within_the_timeout(local_cluster: LocalCluster) -> None:
    held: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for etcd, nats_url, what in ((f"http://127.0.0.1:{port}", local_cluster.nats_server, "etcd"),
                                     (local_cluster.etcd_endpoints, f"nats://127.0.0.1:{port}", "NATS")):
            started = time.monotonic()
            with pytest.raises(BackendUnavailableError) as info:
                await connect_real(etcd, nats_url, connect_timeout=1.0)
            took = time.monotonic() - started
            assert info.value.what == what and str(port) in str(info.value)
            assert 0.5 < took < 3.0, f"{what}: gave up after {took:.2f} s with a 1 s connect timeout"
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_only_one_server_given_uses_dynamos_default_for_the_other(local_cluster, monkeypatch) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setattr(real, "DEFAULT_ETCD_ENDPOINT", dead)
    monkeypatch.delenv("ETCD_ENDPOINTS", raising=False)
    with pytest.raises(BackendUnavailableError) as info:
        await DistributedRuntime.create(nats_server=local_cluster.nats_server, connect_timeout=2)
    assert info.value.what == "etcd" and info.value.url == dead
    monkeypatch.setattr(real, "DEFAULT_ETCD_ENDPOINT", local_cluster.etcd_endpoints)
    runtime = await DistributedRuntime.create(nats_server=local_cluster.nats_server)
    try:
        assert runtime.backend.discovery.url == local_cluster.etcd_endpoints
    finally:
        await runtime.shutdown()
    assert real.DEFAULT_NATS_SERVER == "nats://127.0.0.1:4222"


def test_endpoint_and_address_parsing() -> None:
    parsed = parse_etcd_endpoints(" http://127.0.0.1:2379 ,https://etcd.example:2380,10.0.0.7")
    assert [(e.host, e.port, e.tls) for e in parsed] == [
        ("127.0.0.1", 2379, False), ("etcd.example", 2380, True), ("10.0.0.7", 2379, False)]
    with pytest.raises(ValueError):
        parse_etcd_endpoints("ftp://x:1")
    with pytest.raises(ValueError):
        parse_etcd_endpoints(" , ")
    assert parse_address("127.0.0.1:80") == ("127.0.0.1", 80)
    with pytest.raises(ValueError):
        parse_address("no-port")


# -- credentials from Dynamo's variables --------------------------------------------------------------------

def test_auth_variables_become_client_options(tmp_path: Path) -> None:
    assert nats_auth_from_env({}) == {} and etcd_auth_from_env({}) == {}
    assert nats_auth_from_env({"NATS_AUTH_USERNAME": "u", "NATS_AUTH_PASSWORD": "p"}) == {"user": "u", "password": "p"}
    assert nats_auth_from_env({"NATS_AUTH_TOKEN": "t"}) == {"token": "t"}
    creds = tmp_path / "user.creds"
    assert nats_auth_from_env({"NATS_AUTH_CREDENTIALS_FILE": str(creds)}) == {"user_credentials": str(creds)}
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_bytes(name.encode())
    env = {"ETCD_AUTH_USERNAME": "root", "ETCD_AUTH_PASSWORD": "pw", "ETCD_AUTH_CA": str(tmp_path / "ca.pem"),
           "ETCD_AUTH_CLIENT_CERT": str(tmp_path / "cert.pem"), "ETCD_AUTH_CLIENT_KEY": str(tmp_path / "key.pem")}
    assert etcd_auth_from_env(env) == {"username": "root", "password": "pw", "ca": b"ca.pem",
                                       "cert": b"cert.pem", "key": b"key.pem"}
    with pytest.raises(ValueError, match="ETCD_AUTH_CA"):
        etcd_auth_from_env({"ETCD_AUTH_CA": str(tmp_path / "missing.pem")})


@pytest.mark.timeout(90)
async def test_nats_user_password_and_token_from_the_environment(monkeypatch) -> None:
    for args, env in ((["--user", "alice", "--pass", "s3cret"], {"NATS_AUTH_USERNAME": "alice",
                                                                "NATS_AUTH_PASSWORD": "s3cret"}),
                      (["--auth", "t0ken"], {"NATS_AUTH_TOKEN": "t0ken"})):
        async with LocalCluster(nats_args=args) as cluster:
            for var in ("NATS_AUTH_USERNAME", "NATS_AUTH_PASSWORD", "NATS_AUTH_TOKEN"):
                monkeypatch.delenv(var, raising=False)
            # Without credentials the server refuses (the message usually says "authorization failed"; the
            # socket reset that follows the server's -ERR can arrive first).
            with pytest.raises(BackendUnavailableError) as refused:
                await connect_real(cluster.etcd_endpoints, cluster.nats_server, connect_timeout=3)
            assert refused.value.what == "NATS" and refused.value.url == cluster.nats_server
            for var, value in env.items():
                monkeypatch.setenv(var, value)
            runtime = await real_runtime(cluster)
            try:
                await runtime.endpoint("auth.w.gen").endpoint_builder().handler(_echo).start()
                client = await runtime.endpoint("auth.w.gen").client()
                await client.wait_for_instances(timeout=5)
                assert await (await client.generate("hi")).collect() == ["hi"]
            finally:
                await runtime.shutdown()


async def _echo(request: Any) -> AsyncIterator[Any]:
    yield request


@pytest.mark.timeout(60)
async def test_a_peer_connects_with_the_credentials_of_the_first_connection(monkeypatch) -> None:
    async with LocalCluster(nats_args=["--auth", "t0ken"]) as cluster:
        monkeypatch.setenv("NATS_AUTH_TOKEN", "t0ken")
        first = await connect_real(cluster.etcd_endpoints, cluster.nats_server, connect_timeout=3)
        monkeypatch.delenv("NATS_AUTH_TOKEN")  # read once, when the first connection was made
        peer = await first.connect_peer()
        try:
            assert peer.messaging is not first.messaging
            assert peer.discovery.url == first.discovery.url and peer.messaging.url == first.messaging.url
            await peer.messaging.publish("t.peer", b"x")
            await peer.messaging.flush()
        finally:
            for backend in (peer, first):
                for part in (backend.messaging, backend.discovery, backend.responses):
                    await part.close()


@pytest.mark.timeout(90)
async def test_etcd_username_password_from_the_environment(monkeypatch) -> None:
    async with LocalCluster() as cluster:
        channel = grpc.insecure_channel(f"127.0.0.1:{cluster.etcd_port}")
        try:
            auth = rpc.AuthStub(channel)
            auth.UserAdd(rpc.AuthUserAddRequest(name="root", password="rootpw"), timeout=5)
            auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user="root", role="root"), timeout=5)
            auth.AuthEnable(rpc.AuthEnableRequest(), timeout=5)
        finally:
            channel.close()
        monkeypatch.setenv("ETCD_AUTH_USERNAME", "root")
        monkeypatch.setenv("ETCD_AUTH_PASSWORD", "wrong")
        with pytest.raises(BackendError, match="refused user 'root'"):
            await connect_real(cluster.etcd_endpoints, cluster.nats_server, connect_timeout=3)
        monkeypatch.setenv("ETCD_AUTH_PASSWORD", "rootpw")
        runtime = await real_runtime(cluster, lease_ttl=2)
        try:
            await runtime.endpoint("auth.w.gen").endpoint_builder().handler(_echo).start()
            client = await runtime.endpoint("auth.w.gen").client()
            await client.wait_for_instances(timeout=5)
            assert await (await client.generate(1)).collect() == [1]
            assert runtime.backend.discovery._metadata is not None  # calls carry the etcd token
        finally:
            await runtime.shutdown()


# -- the wire as SPEC §8 states it ----------------------------------------------------------------------------

async def test_a_caller_written_from_the_spec_gets_the_exact_stream(local_cluster, runtimes) -> None:
    worker = await runtimes()

    async def generate(request: dict[str, Any]) -> AsyncIterator[Any]:
        for tok in request["prompt"].split():
            yield {"token": tok}

    served = await worker.endpoint("dynamo.backend.generate").endpoint_builder().handler(generate).start()

    # Discovery, read with aetcd directly: the key and value of SPEC §3, attached to the lease.
    etcd = raw_etcd(local_cluster)
    try:
        found = await etcd.get_prefix(b"dynamo/components/backend/")
    finally:
        await etcd.close()
    [kv] = list(found)
    lease = served.instance_id
    assert kv.key.decode() == f"dynamo/components/backend/generate:{lease:x}" and kv.lease == lease
    value = json.loads(kv.value)
    assert value == {"component": "backend", "endpoint": "generate", "namespace": "dynamo", "lease_id": lease,
                     "transport": {"nats_tcp": f"dynamo|backend.generate-{lease:x}"}}

    # The caller's own response listener.
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = b""
        while not data.endswith(frame(b'"sentinel"')):
            chunk = await reader.read(65536)
            if not chunk:
                break
            data += chunk
        writer.close()  # SPEC §8: the caller closes the socket
        await received.put(data)

    listener = await asyncio.start_server(on_stream, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    nc = await nats.connect(local_cluster.nats_server)
    try:
        request_id, stream_subject = str(uuid.uuid4()), uuid.uuid4().hex
        info = json.dumps({"address": f"127.0.0.1:{port}", "subject": stream_subject, "context": request_id,
                           "stream_type": "response"})
        header = json.dumps({"id": request_id, "request_type": "single_in", "response_type": "many_out",
                             "connection_info": {"transport": "tcp_server", "info": info}}).encode()
        ack = await nc.request(value["transport"]["nats_tcp"], frame(header, b'{"prompt": "a b c"}'), timeout=5)
        assert ack.data == b""  # the empty acknowledgement
        data = await asyncio.wait_for(received.get(), 5)
    finally:
        await nc.close()
        listener.close()

    frames = read_frames(data)
    assert json.loads(frames[0][0]) == {"subject": stream_subject, "stream_type": "response"}
    assert frames[0][1] == b""
    assert json.loads(frames[1][0]) == {"error": None} and frames[1][1] == b""
    assert [h for h, _ in frames[2:5]] == [b""] * 3
    assert [json.loads(b) for _, b in frames[2:5]] == [
        {"data": {"token": t}, "complete_final": False} for t in "abc"]
    assert frames[5][0] == b"" and json.loads(frames[5][1]) == {"complete_final": True}
    assert frames[6] == (b'"sentinel"', b"")
    assert len(frames) == 7


async def test_a_client_reads_a_stream_from_a_worker_written_from_the_spec(local_cluster, runtimes) -> None:
    items = [{"token": "x"}, 2, "three", None, [4]]
    caller_closed = asyncio.Event()
    nc = await nats.connect(local_cluster.nats_server)
    etcd = raw_etcd(local_cluster)
    try:
        lease = await etcd.lease(10)
        subject = f"rawns|rawworker.generate-{lease.id:x}"
        requests: list[Any] = []

        async def handle(msg: Any) -> None:
            header_len, body_len, _ = PREFIX.unpack_from(msg.data)
            header = json.loads(msg.data[PREFIX.size:PREFIX.size + header_len])
            requests.append(json.loads(msg.data[PREFIX.size + header_len:]))
            info = json.loads(header["connection_info"]["info"])
            await msg.respond(b"")
            host, port = info["address"].rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(frame(json.dumps({"subject": info["subject"], "stream_type": "response"}).encode()))
            writer.write(frame(b'{"error":null}'))
            for item in items:
                writer.write(frame(b"", json.dumps({"data": item, "complete_final": False}).encode()))
            writer.write(frame(b"", b'{"complete_final":true}'))
            writer.write(frame(b'"sentinel"'))
            await writer.drain()
            if await reader.read() == b"":  # EOF: the caller closed its end
                caller_closed.set()
            writer.close()

        await nc.subscribe(subject, queue="q", cb=handle)
        await nc.flush()
        key = f"rawns/components/rawworker/generate:{lease.id:x}"
        await etcd.put(key.encode(), json.dumps({
            "component": "rawworker", "endpoint": "generate", "namespace": "rawns", "lease_id": lease.id,
            "transport": {"nats_tcp": subject}}).encode(), lease=lease)

        caller = await runtimes()
        client = await caller.endpoint("rawns.rawworker.generate").client()
        assert await client.wait_for_instances(timeout=5) == [lease.id]
        assert await (await client.generate({"q": 1})).collect() == items
        assert requests == [{"q": 1}]
        await asyncio.wait_for(caller_closed.wait(), 5)
        await lease.revoke()
        await eventually(lambda: client.instance_ids() == [], 5)
    finally:
        await nc.close()
        await etcd.close()


# -- the services API over a real NATS -------------------------------------------------------------------------

async def test_services_api_answers_with_the_slug_and_scrape_stats_works(local_cluster, runtimes) -> None:
    w1, w2, caller = await runtimes(), await runtimes(), await runtimes()
    for i, w in enumerate((w1, w2)):
        comp = w.namespace("dynamo").component("processor")
        await (comp.endpoint("generate").endpoint_builder().handler(_echo)
               .stats_handler(lambda i=i: {"worker": i}).start())
    client = await caller.endpoint("dynamo.processor.generate").client()
    await eventually(lambda: len(client.instance_ids()) == 2, 5)
    assert await (await client.generate("x")).collect() == ["x"]

    stats = await caller.namespace("dynamo").component("processor").scrape_stats(timeout=0.5)
    assert len(stats) == 2 and {s["name"] for s in stats} == {"dynamo_processor"}
    assert sorted(s["endpoints"][0]["data"]["worker"] for s in stats) == [0, 1]
    assert sum(s["endpoints"][0]["num_requests"] for s in stats) == 1

    nc = await nats.connect(local_cluster.nats_server)
    try:
        ping = json.loads((await nc.request("$SRV.PING.dynamo_processor", b"", timeout=2)).data)
        assert ping["type"] == "io.nats.micro.v1.ping_response" and ping["name"] == "dynamo_processor"
        assert ping["metadata"] == {"service_name": "dynamo|processor"}
        info = json.loads((await nc.request(f"$SRV.INFO.dynamo_processor.{ping['id']}", b"", timeout=2)).data)
        assert info["type"] == "io.nats.micro.v1.info_response" and info["id"] == ping["id"]
        assert [e["name"] for e in info["endpoints"]] == ["generate"]
        assert info["endpoints"][0]["subject"].startswith("dynamo|processor.generate-")
        stat = json.loads((await nc.request("$SRV.STATS.dynamo_processor", b"", timeout=2)).data)
        assert stat["type"] == "io.nats.micro.v1.stats_response" and stat["endpoints"][0]["queue_group"] == "q"
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish("$SRV.PING", b"", reply=inbox)
        names = {json.loads((await sub.next_msg(timeout=2)).data)["name"] for _ in range(2)}
        assert names == {"dynamo_processor"}
    finally:
        await nc.close()


# -- etcd specifics -------------------------------------------------------------------------------------------

async def test_lease_ttl_is_whole_seconds(local_cluster) -> None:
    backend = await connect_real(local_cluster.etcd_endpoints, local_cluster.nats_server)
    try:
        d = backend.discovery
        lease = await d.grant_lease(0.3)
        assert await d.lease_ttl(lease) in (0, 1)  # rounded up to etcd's 1 s granularity
        assert await d.keep_alive(lease) is True
        await d.revoke_lease(lease)
        await d.revoke_lease(lease)  # revoking twice is not an error
        assert await d.lease_ttl(lease) == -1
    finally:
        for part in (backend.messaging, backend.discovery, backend.responses):
            await part.close()


@pytest.mark.timeout(60)
async def test_a_broken_watch_raises_instead_of_hanging_and_calls_fail_fast() -> None:
    async with LocalCluster() as cluster:
        backend = await connect_real(cluster.etcd_endpoints, cluster.nats_server)
        d = backend.discovery
        try:
            rev, _ = await d.get_prefix("w/")
            watch = await d.watch_prefix("w/", rev + 1)
            await d.put("w/1", b"1")
            iterator = watch.__aiter__()
            assert (await asyncio.wait_for(iterator.__anext__(), 5)).key == "w/1"
            restart = asyncio.get_running_loop().create_task(cluster.restart_etcd(downtime=2.0))
            started = time.monotonic()
            with pytest.raises(BackendUnavailableError, match="etcd"):
                await asyncio.wait_for(iterator.__anext__(), 10)
            assert time.monotonic() - started < 2.0, "the watch noticed only after etcd came back"
            with pytest.raises(BackendUnavailableError):
                await d.keep_alive(1)
            await restart
            # Everything works again over the same connection once etcd is back.
            for _ in range(50):
                try:
                    await d.put("w/2", b"2")
                    break
                except BackendUnavailableError:
                    await asyncio.sleep(0.1)
            watch2 = await d.watch_prefix("w/", rev + 1)
            events = [e async for e in _take(watch2, 2)]
            assert [(e.kind, e.key) for e in events] == [("put", "w/1"), ("put", "w/2")]
            await watch2.cancel()
        finally:
            for part in (backend.messaging, backend.discovery, backend.responses):
                await part.close()


async def _take(watch: Any, n: int) -> AsyncIterator[Any]:
    iterator = watch.__aiter__()
    for _ in range(n):
        yield await asyncio.wait_for(iterator.__anext__(), 5)


# -- NATS specifics -------------------------------------------------------------------------------------------

async def test_callbacks_run_one_at_a_time_in_order_and_survive_errors(local_cluster) -> None:
    backend = await connect_real(local_cluster.etcd_endpoints, local_cluster.nats_server)
    m = backend.messaging
    seen: list[int] = []
    running = 0
    overlapped = False
    done = asyncio.Event()

    async def slow(msg: Any) -> None:
        nonlocal running, overlapped
        running += 1
        overlapped |= running > 1
        n = int(msg.data)
        if n % 7 == 0:
            await asyncio.sleep(0.001)
        running -= 1
        seen.append(n)
        if n % 50 == 3:
            raise RuntimeError("a failing callback must not end the subscription")
        if n == 299:
            done.set()

    try:
        await m.subscribe("order.test", slow)
        await m.flush()
        for i in range(300):
            await m.publish("order.test", str(i).encode())
        await asyncio.wait_for(done.wait(), 10)
        assert seen == list(range(300)) and not overlapped
    finally:
        for part in (backend.messaging, backend.discovery, backend.responses):
            await part.close()


# -- the TCP response plane ------------------------------------------------------------------------------------

async def test_response_listener_is_on_loopback(runtimes) -> None:
    runtime = await runtimes()
    plane = runtime.backend.responses
    receiver = await plane.open_receiver("r")
    try:
        host, port = parse_address(json.loads(receiver.connection_info["info"])["address"])
        assert host == "127.0.0.1" and port == plane.port
        assert plane._listener is not None and plane._listener.getsockname()[0] == "127.0.0.1"
    finally:
        await receiver.close()


async def test_a_fast_worker_is_held_back_by_a_slow_caller() -> None:
    caller, worker = TcpResponsePlane(), TcpResponsePlane()
    try:
        receiver = await caller.open_receiver("r")
        sender = await worker.connect(receiver.connection_info)
        body = b"x" * 4096
        n = 10_000  # 40 MB: far more than any socket buffer

        async def produce() -> None:
            for i in range(n):
                await sender.send(None, i.to_bytes(4, "big") + body)
            await sender.close()

        producer = asyncio.get_running_loop().create_task(produce())
        await asyncio.sleep(0.5)
        assert not producer.done(), "the worker should be waiting for the caller to read"
        count = 0
        async for header, data in receiver:
            assert header == b"" and int.from_bytes(data[:4], "big") == count and len(data) == 4100
            count += 1
        await asyncio.wait_for(producer, 10)
        assert count == n
    finally:
        await caller.close()
        await worker.close()


async def test_a_worker_that_never_calls_back_ends_the_stream() -> None:
    plane = TcpResponsePlane(stream_connect_timeout=0.3)
    try:
        receiver = await plane.open_receiver("r")
        started = time.monotonic()
        assert [f async for f in receiver] == []
        assert 0.25 < time.monotonic() - started < 3
        assert plane.receivers() == []
    finally:
        await plane.close()


async def test_a_silent_connection_to_the_listener_is_dropped() -> None:
    plane = TcpResponsePlane(stream_connect_timeout=0.3)
    try:
        await plane.start()
        host, port = parse_address(plane.address)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"\0" * 10)  # less than a frame prefix, then nothing
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert not plane._inbound
    finally:
        await plane.close()


async def test_big_and_many_items_cross_intact(runtimes) -> None:
    worker, caller = await runtimes(), await runtimes()

    async def items(request: dict[str, Any]) -> AsyncIterator[Any]:
        for i in range(request["n"]):
            yield {"i": i, "pad": "p" * request["size"]}

    await worker.endpoint("dynamo.big.generate").endpoint_builder().handler(items).start()
    client = await caller.endpoint("dynamo.big.generate").client()
    await client.wait_for_instances(timeout=5)
    got = await (await client.generate({"n": 3, "size": 300_000})).collect()
    assert [g["i"] for g in got] == [0, 1, 2] and all(len(g["pad"]) == 300_000 for g in got)
    got = await (await client.generate({"n": 20_000, "size": 0})).collect()
    assert [g["i"] for g in got] == list(range(20_000))
