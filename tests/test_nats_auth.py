"""NATS authorization on endpoint subjects: a stranger cannot see an endpoint's requests; authorised users work.

``LocalCluster(auth=...)`` starts nats-server with users and per-user subject permissions. The caller accepts the
first connection that presents a stream's subject, and that subject travels in clear inside the request, so who
may *subscribe* to an endpoint's subject is what keeps responses from being injected.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import pytest

from dynamo_nb import DistributedRuntime
from dynamo_nb.backends.real.nats import NatsMessaging
from dynamo_nb.cluster import LocalCluster, NatsUser
from dynamo_nb.errors import BackendUnavailableError, PermissionDeniedError
from support import eventually

pytestmark = [pytest.mark.servers, pytest.mark.timeout(90)]

REF = "secure.backend.generate"
ENDPOINTS = "secure|backend.>"  # every instance subject of the component (SPEC §2: {service}.{endpoint}-{lease})

USERS = {
    # Serves: receives requests on its endpoint subjects and the services API, answers them (acks, $SRV replies).
    "worker": NatsUser(publish=["$SRV.>"], subscribe=[ENDPOINTS, "$SRV.>", "_INBOX.>"], allow_responses=True),
    # Calls: publishes requests, reads the replies to its own requests.
    "caller": NatsUser(publish=[ENDPOINTS, "$SRV.>"], subscribe=["_INBOX.>"]),
    # Everything else on the server, but never the endpoint subjects.
    "stranger": NatsUser(subscribe=[">"], deny_subscribe=[ENDPOINTS], deny_publish=[ENDPOINTS]),
}


async def runtime_as(cluster: LocalCluster, user: str, monkeypatch: pytest.MonkeyPatch,
                     **kw: Any) -> DistributedRuntime:
    """A runtime that logs in as ``user``, the way a deployment would: through Dynamo's NATS_AUTH_* variables."""
    for key, value in cluster.env(user).items():
        monkeypatch.setenv(key, value)
    try:
        return await DistributedRuntime.create(**kw)
    finally:
        for key in cluster.env(user):
            monkeypatch.delenv(key)


def test_users_are_validated_and_never_print_their_password() -> None:
    with pytest.raises(ValueError, match="not a NATS subject"):
        NatsUser(subscribe=["has space"])
    with pytest.raises(ValueError, match="user name"):
        LocalCluster(auth={"two words": NatsUser()})
    with pytest.raises(ValueError, match="non-empty"):
        LocalCluster(auth={})
    c = LocalCluster(auth={"a": NatsUser(password="s3cret-pw"), "b": {"subscribe": "x.>"}})
    assert c.nats_users["a"].password == "s3cret-pw" and len(c.nats_users["b"].password) >= 20
    assert c.nats_users["b"].subscribe == ("x.>",) and c.nats_users["b"].publish == (">",)
    assert c.nats_auth("a") == {"user": "a", "password": "s3cret-pw"}
    assert "s3cret-pw" not in repr(c.nats_users["a"]) and "s3cret-pw" not in c.describe()
    with pytest.raises(KeyError, match="no NATS user 'z'"):
        c.nats_auth("z")


async def test_stranger_cannot_see_requests_while_authorised_worker_and_caller_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with asyncio.timeout(60), LocalCluster(auth=USERS) as c:
        assert "-c" in (await asyncio.to_thread(lambda: open(f"/proc/{c.nats_pid}/cmdline").read())).split("\0")
        # Without credentials the server lets nobody in.
        with pytest.raises(BackendUnavailableError, match="authorization"):
            await NatsMessaging.connect(c.nats_server, connect_timeout=2.0)

        worker = await runtime_as(c, "worker", monkeypatch, name="worker")
        caller = await runtime_as(c, "caller", monkeypatch, name="caller")
        stranger = await NatsMessaging.connect(c.nats_server, auth=c.nats_auth("stranger"))
        try:
            async def generate(request: Any) -> AsyncIterator[str]:
                for word in request["prompt"].split():
                    yield word

            served = await worker.endpoint(REF).endpoint_builder().handler(generate).start()
            await served.wait_for_state("Healthy", timeout=10)  # its health check (a $SRV.PING) got through

            # The stranger asks for the endpoint's own subject: refused, and told so.
            with pytest.raises(PermissionDeniedError) as refused:
                await stranger.subscribe(served.subject, lambda m: asyncio.sleep(0))
            assert refused.value.subject == served.subject and isinstance(refused.value, PermissionError)
            # It may listen to everything else; the server then filters the endpoint subjects out of ">".
            heard: list[str] = []

            async def on_any(msg: Any) -> None:
                heard.append(msg.subject)

            await stranger.subscribe(">", on_any)
            await stranger.publish("stranger.hello", b"")
            await eventually(lambda: "stranger.hello" in heard, 5)  # the wildcard subscription is live

            client = await caller.endpoint(REF).client()
            await client.wait_for_instances(timeout=10)
            for i in range(10):
                items = [x async for x in await client.round_robin({"prompt": f"call {i} works"})]
                assert items == ["call", str(i), "works"]
            await stranger.flush()
            await caller.backend.messaging.flush()
            assert heard and not [s for s in heard if s.startswith("secure|backend.")], heard
            assert any(v.action == "subscribe" and v.subject == served.subject for v in stranger.permission_violations)

            # A caller's NATS user that may not publish there: the request is refused by name, not a silent wait.
            with pytest.raises(PermissionDeniedError, match="publish"):
                await stranger.request(served.subject, b"", timeout=0.5)
        finally:
            await stranger.close()
            await caller.shutdown()
            await worker.shutdown()


async def test_a_worker_without_permission_on_its_subject_fails_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Otherwise it would register, look healthy, and never receive a request."""
    users = {"worker": NatsUser(subscribe=["$SRV.>", "_INBOX.>"], allow_responses=True)}
    async with asyncio.timeout(60), LocalCluster(auth=users) as c:
        worker = await runtime_as(c, "worker", monkeypatch, name="worker")
        try:
            async def generate(request: Any) -> AsyncIterator[str]:
                yield "never"

            with pytest.raises(PermissionDeniedError, match=r"subscribe to 'secure\|backend\.generate-"):
                await worker.endpoint(REF).endpoint_builder().handler(generate).start()
            assert worker.served_endpoints() == []
        finally:
            await worker.shutdown()
