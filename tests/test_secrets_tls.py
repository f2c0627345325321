"""Credentials and TLS material: used, refused clearly, never printed; never a process abort (issue 15)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any, AsyncIterator

import grpc
import pytest
from aetcd import rpc

from dynamo_nb import DistributedRuntime, LocalCluster, diagram
from dynamo_nb.backends.real.etcd import EtcdDiscovery
from dynamo_nb.cluster import free_port
from dynamo_nb.errors import BackendError, BackendUnavailableError, CertificateError, ConfigurationError

from support import eventually

pytestmark = pytest.mark.servers
ROOT = Path(__file__).resolve().parent.parent


async def _echo(request: Any) -> AsyncIterator[Any]:
    yield request


def _openssl_self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.mark.parametrize("given", ["ETCD_AUTH_CLIENT_CERT", "ETCD_AUTH_CLIENT_KEY"])
def test_half_a_client_key_pair_is_a_clear_error_not_an_abort(tmp_path, given):
    cert, key = _openssl_self_signed(tmp_path, "client")
    script = textwrap.dedent("""
        import asyncio
        from dynamo_nb import DistributedRuntime
        from dynamo_nb.errors import ConfigurationError
        async def main():
            try:
                await DistributedRuntime.create(etcd_endpoints="https://127.0.0.1:1", nats_server="nats://127.0.0.1:1",
                                                connect_timeout=2)
            except ConfigurationError as exc:
                print("refused:", exc)
        asyncio.run(main())
    """)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), given: str(cert if given.endswith("CERT") else key)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])  # a signal would be negative
    assert "refused:" in done.stdout and "ETCD_AUTH_CLIENT_CERT" in done.stdout and "ETCD_AUTH_CLIENT_KEY" in done.stdout


async def test_a_ca_that_is_not_a_certificate_is_a_certificate_error(tmp_path):
    with pytest.raises(CertificateError, match="ETCD_AUTH_CA"):
        await EtcdDiscovery.connect(f"https://127.0.0.1:{free_port()}", connect_timeout=2,
                                    auth={"ca": b"-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n"})
    cert, key = _openssl_self_signed(tmp_path, "client")
    with pytest.raises(CertificateError, match="not a usable PEM pair"):
        await EtcdDiscovery.connect(f"https://127.0.0.1:{free_port()}", connect_timeout=2,
                                    auth={"cert": cert.read_bytes(), "key": b"garbage"})


async def test_a_server_signed_by_another_ca_is_a_certificate_error_not_unreachable(tmp_path):
    import asyncio
    import ssl

    server_cert, server_key = _openssl_self_signed(tmp_path, "server")
    other_ca, _ = _openssl_self_signed(tmp_path, "other-ca")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(server_cert, server_key)
    ctx.set_alpn_protocols(["h2"])

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(CertificateError) as refused:
            await EtcdDiscovery.connect(f"https://127.0.0.1:{port}", connect_timeout=3,
                                        auth={"ca": other_ca.read_bytes()})
        assert "cannot reach" not in str(refused.value)
    finally:
        server.close()


@pytest.mark.timeout(90)
async def test_nats_credentials_never_appear_in_descriptions_reprs_logs_or_errors(caplog):
    secret = "s3cretPW"
    async with LocalCluster(nats_args=["--user", "alice", "--pass", secret]) as cluster:
        host_port = cluster.nats_server.split("://", 1)[1]
        url = f"nats://alice:{secret}@{host_port}"
        with caplog.at_level(logging.DEBUG, logger="dynamo_nb"), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(BackendUnavailableError) as refused:
                await DistributedRuntime.create(etcd_endpoints=cluster.etcd_endpoints,
                                                nats_server=f"nats://alice:wrong{secret}@{host_port}", connect_timeout=3)
            runtime = await DistributedRuntime.create(etcd_endpoints=cluster.etcd_endpoints, nats_server=url)
            try:
                await runtime.endpoint("secret.w.gen").endpoint_builder().handler(_echo).start()
                messaging = runtime.backend.messaging
                await cluster.restart_nats()
                await eventually(lambda: messaging.reconnects >= 1, timeout=20)
                shown = [runtime.backend.description, repr(runtime), repr(messaging), repr(runtime.backend),
                         messaging.url, str(refused.value), diagram(runtime).text]
                assert "alice:***@" in runtime.backend.description
            finally:
                await runtime.shutdown()
        shown += [r.getMessage() for r in caplog.records] + [str(w.message) for w in caught]
        assert any("reconnected" in line for line in shown)
        assert not [line for line in shown if secret in line]


@pytest.mark.timeout(90)
async def test_etcd_url_credentials_are_used_never_ignored_nor_shown():
    async with LocalCluster() as cluster:
        channel = grpc.insecure_channel(f"127.0.0.1:{cluster.etcd_port}")
        try:
            auth = rpc.AuthStub(channel)
            auth.UserAdd(rpc.AuthUserAddRequest(name="root", password="rootpw"), timeout=5)
            auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user="root", role="root"), timeout=5)
            auth.AuthEnable(rpc.AuthEnableRequest(), timeout=5)
        finally:
            channel.close()
        where = f"127.0.0.1:{cluster.etcd_port}"
        with pytest.raises(BackendError, match="refused user 'root'") as refused:
            await DistributedRuntime.create(etcd_endpoints=f"http://root:wrongpw@{where}",
                                            nats_server=cluster.nats_server, connect_timeout=3)
        assert "wrongpw" not in str(refused.value)
        with pytest.raises(ConfigurationError, match="different credentials"):
            await DistributedRuntime.create(etcd_endpoints=f"http://root:rootpw@{where},http://bob:x@{where}",
                                            nats_server=cluster.nats_server, connect_timeout=3)
        runtime = await DistributedRuntime.create(etcd_endpoints=f"http://root:rootpw@{where}",
                                                  nats_server=cluster.nats_server, lease_ttl=2)
        try:
            await runtime.endpoint("auth.w.gen").endpoint_builder().handler(_echo).start()
            client = await runtime.endpoint("auth.w.gen").client()
            await client.wait_for_instances(timeout=5)
            assert await (await client.generate(1)).collect() == [1]
            assert "rootpw" not in runtime.backend.description + repr(runtime.backend.discovery)
        finally:
            await runtime.shutdown()
