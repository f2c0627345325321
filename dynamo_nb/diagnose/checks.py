"""The checklist behind ``explain``: why a call to one endpoint fails, one step at a time, never hanging.

Every server call runs under what is left of one deadline, so a server that is down or frozen costs a bounded
wait and the steps after it say they were skipped. The servers are the ones ``DistributedRuntime.create()``
would use (arguments, else ``ETCD_ENDPOINTS`` / ``NATS_SERVER``, else this loop's embedded world), or an
attached runtime's; connections explain opens itself it also closes.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import re
import uuid
from dataclasses import replace
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Sequence, TypeVar

from ..backends.base import Backend, Discovery, KeyValue, Messaging, Msg
from ..errors import BackendTimeoutError, BackendUnavailableError, CertificateError, ConfigurationError
from ..transport.frames import encode_frame
from ..transport.profile import InstanceInfo, SeedProfile
from .causes import match_error, reference_in
from .findings import Findings, InstanceFinding, Step

if TYPE_CHECKING:
    from ..backends.embedded import EmbeddedWorld
    from ..core.runtime import DistributedRuntime

__all__ = ["run_checklist", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 4.0  # seconds for the whole checklist; closing what it opened adds at most one more
_T = TypeVar("_T")
_SEED_KEY = re.compile(r"^([^/]+)/components/([^/]+)/(.+):([0-9a-f]+)$")
_HASH_SUFFIX = re.compile(r"[-_][0-9a-f]{4,}$")


class _OutOfTime(BackendTimeoutError):
    """The checklist's deadline passed before this step could ask."""


@dataclass
class _Run:
    deadline: float
    steps: list[Step] = field(default_factory=list)
    leases: dict[int, float | None] = field(default_factory=dict)  # lease id → seconds left, as etcd said
    reachable: dict[int, bool] = field(default_factory=dict)  # instance id → its TCP address accepted a connect

    def left(self, cap: float) -> float:
        left = min(cap, self.deadline - asyncio.get_running_loop().time())
        if left <= 0.01:
            raise _OutOfTime()
        return left

    async def bounded(self, awaitable: Awaitable[_T], cap: float) -> _T:
        return await asyncio.wait_for(awaitable, self.left(cap))

    def add(self, step_id: str, status: str, detail: str = "", cause: str = "", fix: str = "",
            lines: Sequence[str] = ()) -> Step:
        step = Step(step_id, status, detail, cause, fix, tuple(lines))
        self.steps.append(step)
        return step

    def skip(self, step_id: str, why: str) -> None:
        self.add(step_id, "skip", why)


@dataclass(frozen=True)
class _Entry:
    """A key that looks like an instance key in either profile's layout."""

    layout: str
    namespace: str
    component: str
    endpoint: str
    kv: KeyValue

    @property
    def reference(self) -> str:
        return f"{self.namespace}.{self.component}.{self.endpoint}"


def _entries(kvs: Sequence[KeyValue]) -> list[_Entry]:
    out = []
    for kv in kvs:
        if kv.key.startswith("v1/instances/"):
            parts = kv.key.split("/")
            if len(parts) >= 6:
                out.append(_Entry("dynamo", parts[2], parts[3], "/".join(parts[4:-1]), kv))
            continue
        found = _SEED_KEY.match(kv.key)
        if found:
            out.append(_Entry("seed", found.group(1), found.group(2), found.group(3), kv))
    return out


def _split(reference: str) -> tuple[str, str, str] | None:
    parts = reference.removeprefix("dyn://").split(".", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and all(parts) else None


async def run_checklist(
    reference: str | None = None,
    *,
    error: str | None = None,
    request: Any = None,
    runtime: "DistributedRuntime | None" = None,
    etcd_endpoints: str | Sequence[str] | None = None,
    nats_server: str | None = None,
    profile: "str | SeedProfile | None" = None,
    request_plane: str | None = None,
    world: "EmbeddedWorld | None" = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Findings:
    """Run every step for ``reference`` (and/or place ``error``'s text on the step that finds its cause)."""
    from ..core.runtime import choose_profile

    loop = asyncio.get_running_loop()
    started = loop.time()
    run = _Run(started + timeout)
    cause = match_error(error) if error else None
    reference = reference or (reference_in(error) if error else None)
    chosen = runtime.profile if runtime is not None else choose_profile(profile, request_plane)
    opened: list[Any] = []
    backend: Backend | None = runtime.backend if runtime is not None else None
    discovery: Discovery | None = backend.discovery if backend else None
    messaging: Messaging | None = backend.messaging if backend else None
    etcd_url = nats_url = ""
    try:
        if backend is None:
            etcd_url, nats_url, discovery, messaging, backend = await _connect(
                run, etcd_endpoints, nats_server, world, opened)
        else:
            etcd_url, nats_url = discovery.url if discovery else "", messaging.url if messaging else ""
            run.add("etcd", "ok", f"{etcd_url} (through {runtime.name if runtime else 'the runtime'})")
            run.add("nats", "ok", f"{nats_url} (through {runtime.name if runtime else 'the runtime'})")
        instances: list[InstanceFinding] = []
        if reference is not None:
            instances = await _endpoint_steps(run, reference, chosen, discovery, messaging, backend, request)
    finally:
        await _close(opened)
    error_step = cause.step if cause else ""
    meaning = cause.meaning if cause else ("no known pattern: run the checklist on the endpoint the call named"
                                           if error else "")
    failed = [s for s in run.steps if s.status == "fail"]
    if error and failed and error_step not in {s.id for s in failed}:  # the text fits several causes: the
        error_step, meaning = failed[0].id, failed[0].cause                # checklist found which one it is
    return Findings(
        reference=reference or "", profile=chosen.name, caller_plane=chosen.serve_plane, etcd=etcd_url,
        nats=nats_url, steps=tuple(run.steps), instances=tuple(instances) if reference else (),
        error=error or "", error_step=error_step, error_meaning=meaning,
        elapsed=round(loop.time() - started, 3))


# ----------------------------------------------------------------------------------------------- servers
async def _connect(run: _Run, etcd_endpoints: str | Sequence[str] | None, nats_server: str | None,
                   world: "EmbeddedWorld | None", opened: list[Any],
                   ) -> tuple[str, str, Discovery | None, Messaging | None, Backend | None]:
    etcd_endpoints = etcd_endpoints or os.environ.get("ETCD_ENDPOINTS") or None
    nats_server = nats_server or os.environ.get("NATS_SERVER") or None
    if world is not None or not (etcd_endpoints or nats_server):
        from ..backends.embedded import default_world

        backend = (world or default_world()).connect()
        opened.extend([backend.discovery, backend.messaging, backend.responses])
        run.add("etcd", "ok", "embedded etcd of this event loop (no ETCD_ENDPOINTS set)")
        run.add("nats", "ok", "embedded NATS of this event loop (no NATS_SERVER set)")
        return "embedded", "embedded", backend.discovery, backend.messaging, backend
    from ..backends.real import DEFAULT_ETCD_ENDPOINT, DEFAULT_NATS_SERVER
    from ..backends.real.etcd import EtcdDiscovery, etcd_auth_from_env
    from ..backends.real.nats import NatsMessaging, nats_auth_from_env

    etcd_url = etcd_endpoints if isinstance(etcd_endpoints, str) else ",".join(etcd_endpoints or ())
    etcd_url = etcd_url or DEFAULT_ETCD_ENDPOINT
    nats_url = (nats_server or DEFAULT_NATS_SERVER).strip()
    cap = min(1.5, run.left(1.5))
    got = await asyncio.gather(
        run.bounded(EtcdDiscovery.connect(etcd_url, connect_timeout=cap, request_timeout=cap,
                                          auth=etcd_auth_from_env()), cap + 0.2),
        run.bounded(NatsMessaging.connect(nats_url, connect_timeout=cap, auth=nats_auth_from_env(),
                                          name="dynamo_nb explain"), cap + 0.2),
        return_exceptions=True)
    discovery: Discovery | None = None
    messaging: Messaging | None = None
    if isinstance(got[0], BaseException):
        _server_failed(run, "etcd", etcd_url, got[0])
    else:
        discovery = got[0]
        opened.append(discovery)
        run.add("etcd", "ok", etcd_url)
    if isinstance(got[1], BaseException):
        _server_failed(run, "nats", nats_url, got[1])
    else:
        messaging = got[1]
        opened.append(messaging)
        run.add("nats", "ok", messaging.url)
    return etcd_url, nats_url, discovery, messaging, None


def _server_failed(run: _Run, step: str, url: str, exc: BaseException) -> None:
    name, variable = ("etcd", "ETCD_ENDPOINTS") if step == "etcd" else ("NATS", "NATS_SERVER")
    text = str(exc) or type(exc).__name__
    if isinstance(exc, CertificateError):
        run.add(step, "fail", text, f"TLS with {name} failed: a CA, certificate or key is wrong or unreadable",
                f"check the {variable.split('_')[0]}_AUTH_CA / CLIENT_CERT / CLIENT_KEY files")
    elif isinstance(exc, ConfigurationError) or re.search(r"auth|password|permission|denied", text, re.I):
        run.add(step, "fail", text, f"{name} refused this client's credentials",
                f"set the {variable.split('_')[0]}_AUTH_* variables to a user {name} knows")
    elif isinstance(exc, (BackendUnavailableError, asyncio.TimeoutError, OSError, _OutOfTime)):
        run.add(step, "fail", text or f"no answer within the time allowed from {url}",
                f"{name} at {url} does not answer: it is not running, {variable} names the wrong address, or "
                "it is frozen", f"start {name} there or point {variable} at the server the workers use")
    else:
        run.add(step, "fail", f"{type(exc).__name__}: {text}", f"{name} at {url} answered with an error",
                f"check {name}'s log")


async def _close(opened: list[Any]) -> None:
    for part in opened:
        try:
            await asyncio.wait_for(part.close(), 0.5)
        except (asyncio.TimeoutError, Exception):
            pass


# ---------------------------------------------------------------------------------------------- endpoint
async def _endpoint_steps(run: _Run, reference: str, profile: SeedProfile, discovery: Discovery | None,
                          messaging: Messaging | None, backend: Backend | None, request: Any,
                          ) -> list[InstanceFinding]:
    parts = _split(reference)
    if parts is None:
        run.add("keys", "fail", f"{reference!r} is not a reference", "an endpoint is named 'namespace.Component."
                "endpoint'", "give all three parts, e.g. 'dynamo.backend.generate'")
        return []
    ns, comp, ep = parts
    instances: list[tuple[InstanceInfo, KeyValue]] = []
    if discovery is None:
        for step in ("keys", "leases", "plane", "reach"):
            run.skip(step, "etcd is not reachable")
    else:
        try:
            _, kvs = await run.bounded(discovery.get_prefix(profile.scan_prefix), 1.5)
        except _OutOfTime:
            run.skip("keys", "out of time")
            kvs = None
        except Exception as exc:
            text = str(exc)
            if re.search(r"permission|denied|auth", text, re.I):
                run.steps[0] = Step("etcd", "fail", text, "etcd refused to let this user read the instance keys",
                                    "grant the user read access to the keys' prefix (etcdctl role grant-permission)")
            run.skip("keys", f"reading the keys failed: {text}")
            kvs = None
        if kvs is None:
            for step in ("leases", "plane", "reach"):
                run.skip(step, "the keys could not be read")
        else:
            instances = _keys_step(run, ns, comp, ep, profile, _entries(kvs))
            await _leases_step(run, profile, discovery, instances)
            _plane_step(run, profile, instances)
            await _reach_step(run, backend, instances)
    findings = {info.instance_id: _finding(info, kv) for info, kv in instances}
    await _responders_step(run, profile, messaging, ns, comp, instances, findings)
    _payload_step(run, profile, messaging, instances, request)
    _jetstream_step(run, profile, messaging)
    return list(findings.values())


def _finding(info: InstanceInfo, kv: KeyValue) -> InstanceFinding:
    return InstanceFinding(info.instance_id, kv.key, info.plane, info.subject, kv.lease)


def _keys_step(run: _Run, ns: str, comp: str, ep: str, profile: SeedProfile,
               entries: list[_Entry]) -> list[tuple[InstanceInfo, KeyValue]]:
    ours = "dynamo" if profile.name == "dynamo" else "seed"
    target = f"{ns}.{comp}.{ep}"
    matches = [e for e in entries if e.layout == ours and (e.namespace, e.component, e.endpoint) == (ns, comp, ep)]
    prefix = profile.instance_prefix(ns, comp)
    found: list[tuple[InstanceInfo, KeyValue]] = []
    bad: list[str] = []
    for entry in matches:
        try:
            info = profile.parse_instance(prefix, entry.kv.key, entry.kv.value)
        except Exception as exc:
            bad.append(f"{entry.kv.key}: value does not check out: {exc}")
            continue
        if info is not None:
            found.append((info, entry.kv))
    lines = [f"instance {info.instance_id:x} at {kv.key}" for info, kv in found] + bad
    # Dynamo's prefix match without a trailing '/' also picks up these (another deployment's workers).
    sharing = sorted({e.reference for e in entries if e.layout == ours and e.reference != target
                      and (e.namespace, e.component) == (ns, comp) and e.endpoint.startswith(ep)}
                     | {e.reference for e in entries if e.layout == ours and e.namespace != ns
                        and e.namespace.startswith(ns) and (e.component, e.endpoint) == (comp, ep)})
    if found:
        extra = [f"also under this name's prefix: {r} (a client matching by prefix without '/' would call it)"
                 for r in sharing[:5]]
        run.add("keys", "ok", f"{len(found)} instance key(s) under {prefix}/", lines=lines + extra)
        return found
    if bad:
        run.add("keys", "fail", f"keys under {prefix}/ whose values do not check out", "a worker wrote an instance "
                "value this profile cannot read", "run the worker with the same profile and version", lines=bad)
        return []
    cause, fix, nearest = _nearest(ns, comp, ep, ours, entries)
    run.add("keys", "fail", f"no instance key of {target} under {prefix}/", cause, fix, lines=nearest)
    return []


def _nearest(ns: str, comp: str, ep: str, ours: str, entries: list[_Entry]) -> tuple[str, str, list[str]]:
    """The registered names nearest to the one asked for, and what the nearest one says went wrong."""
    target = f"{ns}.{comp}.{ep}"
    names: dict[tuple[str, str], _Entry] = {(e.layout, e.reference): e for e in entries}
    other = "seed" if ours == "dynamo" else "dynamo"
    lines: list[str] = []
    verdict: tuple[str, str] | None = None

    def note(line: str, cause: str, fix: str) -> None:
        nonlocal verdict
        lines.append(line)
        if verdict is None:
            verdict = (cause, fix)

    same = [e for (layout, ref), e in names.items() if layout == ours]
    if (other, target) in names:
        note(f"{target} is registered in the {other} profile's layout ({names[(other, target)].kv.key})",
             f"the worker registers with profile={other!r}, the caller looks with profile={ours!r}",
             f"run both with the same profile (profile=... or DYNAMO_NB_PROFILE={other})")
    for e in same:
        if e.reference != target and e.reference.lower() == target.lower():
            note(f"{e.reference} differs only in case", f"the worker's name is {e.reference!r}: names are "
                 "case-sensitive", f"call {e.reference!r} exactly")
    for e in same:
        if (e.component, e.endpoint) == (comp, ep) and e.namespace != ns and (
                _HASH_SUFFIX.sub("", e.namespace) == ns or _HASH_SUFFIX.sub("", ns) == e.namespace):
            note(f"{e.reference}: the namespace with a hash suffix added or removed",
                 f"the deployment's namespace is {e.namespace!r}, not {ns!r} (a suffix was added to it)",
                 f"call {e.reference!r}, or set DYN_NAMESPACE to {e.namespace!r} on the caller")
    for e in same:
        if (e.component, e.endpoint) == (comp, ep) and e.namespace != ns and e.reference not in " ".join(lines):
            note(f"{e.reference}: the same component and endpoint in namespace {e.namespace!r}",
                 f"{comp}.{ep} is served in namespace {e.namespace!r}, not {ns!r} (an unset DYN_NAMESPACE "
                 "falls back to a default)", f"use namespace {e.namespace!r} on both sides")
    siblings = sorted({e.endpoint for e in same if (e.namespace, e.component) == (ns, comp)})
    if siblings:
        note(f"{ns}.{comp} serves: {', '.join(siblings[:8])}", f"{ns}.{comp} has no endpoint {ep!r}",
             f"call one of {', '.join(siblings[:3])}")
    close = difflib.get_close_matches(target, sorted({e.reference for e in same}), n=3, cutoff=0.75)
    for ref in close:
        if ref not in " ".join(lines):
            note(f"did you mean {ref}?", f"nothing is registered as {target!r}; {ref!r} is", f"call {ref!r}")
    if verdict is None:
        total = len({e.reference for e in same})
        return (f"no worker serving {target} is registered with these servers ({total} other endpoint(s) are)",
                "start the worker, and check it uses the same ETCD_ENDPOINTS as the caller", lines)
    return verdict[0], verdict[1], lines


async def _leases_step(run: _Run, profile: SeedProfile, discovery: Discovery,
                       instances: list[tuple[InstanceInfo, KeyValue]]) -> None:
    if not instances:
        run.skip("leases", "no instance key")
        return
    ids = sorted({kv.lease for _, kv in instances if kv.lease})
    try:
        left = dict(zip(ids, await run.bounded(asyncio.gather(*(discovery.lease_time_left(i) for i in ids)), 1.0),
                        strict=True))
    except (_OutOfTime, asyncio.TimeoutError):
        run.skip("leases", "etcd did not say the leases' time left in time")
        return
    except Exception as exc:
        run.skip("leases", f"reading the leases failed: {exc}")
        return
    ttl = profile.lease_ttl or 10.0
    lines, status, cause, fix = [], "ok", "", ""
    for info, kv in instances:
        if not kv.lease:
            lines.append(f"instance {info.instance_id:x}: key has no lease, it never expires")
            status, cause, fix = "fail", ("a key without a lease outlives its process: callers are sent to it "
                                          "for ever"), f"delete it (etcdctl del {kv.key}) and register under a lease"
            continue
        t = left.get(kv.lease)
        if t is None:
            lines.append(f"instance {info.instance_id:x}: lease {kv.lease:x} is gone but the key is still there")
            status, cause, fix = "fail", "the key's lease no longer exists", "delete the key; restart the worker"
        elif t < ttl / 3:
            lines.append(f"instance {info.instance_id:x}: lease {kv.lease:x} has {t:.0f} s left (about to expire)")
            if status == "ok":
                status, cause, fix = "warn", ("the lease is not being renewed: its process has stopped keeping it "
                                              "alive"), "check the worker's process and its link to etcd"
        else:
            lines.append(f"instance {info.instance_id:x}: lease {kv.lease:x} has {t:.0f} s left")
    run.add("leases", status, f"{len(instances)} key(s); under {ttl / 3:.0f} s left is a lease about to expire",
            cause, fix, lines)
    run.leases = left


def _plane_step(run: _Run, profile: SeedProfile, instances: list[tuple[InstanceInfo, KeyValue]]) -> None:
    if not instances:
        run.skip("plane", "no instance key")
        return
    caller = profile.serve_plane
    wrong = [info for info, _ in instances if info.plane != caller]
    lines = [f"instance {info.instance_id:x}: {info.plane} plane ({info.subject})" for info, _ in instances]
    if not wrong:
        run.add("plane", "ok", f"every instance on the {caller} plane, as the caller", lines=lines)
        return
    other = wrong[0].plane
    symptom = ("a real Dynamo client fails at once with \"Invalid TCP address\"" if caller == "tcp"
               else "a real Dynamo client's request hangs until it times out")
    run.add("plane", "fail", f"{len(wrong)} of {len(instances)} instance(s) on the {other} plane, the caller on "
            f"{caller}", f"the worker serves on the {other} request plane and the caller uses {caller}: {symptom} "
            "(dynamo_nb clients call either)", f"use the same DYN_REQUEST_PLANE on both sides "
            f"(DYN_REQUEST_PLANE={other} on the caller, or {caller} on the worker)", lines)


async def _reach_step(run: _Run, backend: Backend | None, instances: list[tuple[InstanceInfo, KeyValue]]) -> None:
    tcp = [(info, kv) for info, kv in instances if info.plane == "tcp"]
    if not tcp:
        run.skip("reach", "no instance on the TCP request plane")
        return
    if backend is not None and backend.kind == "embedded":
        run.skip("reach", "embedded TCP listeners have no socket to connect to")
        return
    from ..backends.real.tcp_request import split_target

    async def probe(address: str) -> str:
        try:
            host, port, _ = split_target(address)
        except ValueError as exc:
            return f"not an address: {exc}"
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), run.left(1.0))
        except asyncio.TimeoutError:
            return f"no answer from {host}:{port} within the time allowed"
        except _OutOfTime:
            return "out of time"
        except OSError as exc:
            return f"{host}:{port}: {exc.strerror or exc}"
        writer.close()
        return ""

    results = await asyncio.gather(*(probe(info.subject) for info, _ in tcp))
    lines = [f"instance {info.instance_id:x}: {info.subject.partition('/')[0]} "
             + ("accepts connections" if not why else f"unreachable ({why})") for (info, _), why in zip(
                 tcp, results, strict=True)]
    run.reachable = {info.instance_id: not why for (info, _), why in zip(tcp, results, strict=True)}
    if not any(results):
        run.add("reach", "ok", f"{len(tcp)} address(es) accept connections", lines=lines)
        return
    hung = any("no answer" in why for why in results)
    left = run.leases
    dead = [kv for (info, kv), why in zip(tcp, results, strict=True) if why]
    until = left.get(dead[0].lease) if dead else None
    lease = f"; its key stays until its lease expires (in {until:.0f} s)" if until is not None else ""
    cause = ("the advertised address does not answer, so requests hang until they time out: it is an address "
             "callers cannot reach" if hung else
             f"nothing listens at the advertised address: the worker died{lease}, or it advertises an address "
             "it does not listen on")
    run.add("reach", "fail", f"{sum(1 for r in results if r)} of {len(tcp)} address(es) unreachable", cause,
            "restart the worker; if it runs, set DYN_TCP_RPC_HOST (and _PORT) on it to an address callers "
            "can reach", lines)


async def _responders_step(run: _Run, profile: SeedProfile, messaging: Messaging | None, ns: str, comp: str,
                           instances: list[tuple[InstanceInfo, KeyValue]],
                           findings: dict[int, InstanceFinding]) -> None:
    for info, _ in instances:  # carry what the earlier steps found into each instance's finding
        reach = run.reachable.get(info.instance_id)
        left = run.leases.get(findings[info.instance_id].lease_id)
        findings[info.instance_id] = replace(findings[info.instance_id], reachable=reach, time_left=left)
    nats = [(info, kv) for info, kv in instances if info.plane == "nats"]
    if not nats:
        run.skip("responders", "no instance on the NATS request plane" if instances else "no instance key")
        return
    if messaging is None:
        run.skip("responders", "NATS is not reachable")
        return
    slug = profile.service_slug(ns, comp)
    replies: list[dict[str, Any]] = []

    async def on_reply(msg: Msg) -> None:
        try:
            replies.append(json.loads(msg.data))
        except ValueError:
            pass

    inbox = f"_INBOX.explain.{uuid.uuid4().hex}"
    try:
        sub = await run.bounded(messaging.subscribe(inbox, on_reply), 0.5)
        try:
            await run.bounded(messaging.publish(f"$SRV.INFO.{slug}", b"", reply=inbox), 0.5)
            await asyncio.sleep(run.left(0.4))
        finally:
            await asyncio.wait_for(sub.unsubscribe(), 0.5)
    except (_OutOfTime, asyncio.TimeoutError):
        run.skip("responders", "out of time")
        return
    except Exception as exc:
        run.skip("responders", f"asking $SRV.INFO.{slug} failed: {exc}")
        return
    subjects = {e.get("subject") for r in replies if isinstance(r, dict) for e in r.get("endpoints") or ()
                if isinstance(e, dict)}
    lines, silent = [], []
    for info, kv in nats:
        ok = info.subject in subjects
        findings[info.instance_id] = replace(findings[info.instance_id], responder=ok)
        lines.append(f"instance {info.instance_id:x}: {info.subject} " + ("has a responder" if ok else "NO responder"))
        if not ok:
            silent.append((info, kv))
    if not silent:
        run.add("responders", "ok", f"{len(replies)} service instance(s) of {slug} answer for every subject",
                lines=lines)
        return
    left = findings[silent[0][0].instance_id].time_left
    lease = f" (in {left:.0f} s)" if left is not None else ""
    run.add("responders", "fail", f"{len(silent)} of {len(nats)} subject(s) without a responder",
            f"the key is registered but its process is gone: the worker died inside its lease, and its key stays "
            f"until the lease expires{lease}; calls to it get no responders meanwhile",
            "restart the worker; dynamo_nb clients fail over to live instances, others should retry until the "
            "lease expires", lines)


def _payload_step(run: _Run, profile: SeedProfile, messaging: Messaging | None,
                  instances: list[tuple[InstanceInfo, KeyValue]], request: Any) -> None:
    limit = messaging.max_payload if messaging is not None else None
    if request is None:
        run.skip("payload", "no request given (request=...)" + (f"; the server's max_payload is {limit} bytes"
                                                              if limit else ""))
        return
    codec = profile.call_codec(instances[0][0]) if instances else "json"
    try:
        body = profile.encode(request, codec)
    except Exception as exc:
        run.add("payload", "fail", f"the request cannot be encoded: {exc}", "the request is not serialisable",
                "send JSON-able values")
        return
    rid = str(uuid.uuid4())
    header = profile.request_header(rid, profile.connection_info("255.255.255.255:65535", rid, rid), codec)
    size = len(encode_frame(header, body))
    # over NATS when an instance is on the NATS plane (or, with none known, when the caller's plane is NATS)
    over_nats = any(info.plane == "nats" for info, _ in instances) if instances else profile.serve_plane == "nats"
    if limit is None:
        run.skip("payload", f"the request is {size} bytes; NATS is not reachable to say its max_payload")
    elif over_nats and size > limit:
        run.add("payload", "fail", f"the request is {size} bytes, the NATS server takes at most {limit}",
                "a request over NATS's max_payload is refused (a real Dynamo client just times out)",
                "send less (e.g. a reference to the data), or raise max_payload in nats-server's config")
    else:
        where = "over NATS" if over_nats else "over the TCP request plane (no NATS limit)"
        run.add("payload", "ok", f"the request is {size} bytes {where}; max_payload is {limit}")


def _jetstream_step(run: _Run, profile: SeedProfile, messaging: Messaging | None) -> None:
    if messaging is None:
        run.skip("jetstream", "NATS is not reachable")
        return
    info = getattr(messaging, "server_info", None)
    if info is None:
        on = False
        where = "the embedded NATS has no JetStream"
    else:
        on = bool(info.get("jetstream"))
        where = f"JetStream is {'on' if on else 'off'} on {info.get('server_name') or messaging.url}"
    if on or profile.name != "dynamo":
        run.add("jetstream", "ok", where + ("" if on else " (not needed by this profile's calls)"))
        return
    run.add("jetstream", "warn", where, "Dynamo's KV-router events and model-file store need JetStream; plain "
            "calls work without it", "start nats-server with -js")

