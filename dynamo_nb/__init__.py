"""dynamo_nb: NVIDIA Dynamo's component system — DistributedRuntime → Namespace → Component → Endpoint,
registered in etcd under leases and called over NATS — drawn live in Jupyter.

Importing it loads no etcd, NATS, IPython or ipywidgets module; those load when first used.
"""

from __future__ import annotations

from typing import Any

from .core.client import Client, ResponseStream
from .core.lifecycle import State
from .core.model import Component, Endpoint, Namespace
from .core.runtime import DistributedRuntime
from .core.served import EndpointBuilder, RequestContext, ServedEndpoint
from .errors import (
    BackendError,
    BackendUnavailableError,
    DynamoError,
    EndpointError,
    InstanceNotFoundError,
    InvalidNameError,
    InvalidReferenceError,
    NoInstancesError,
    NoRespondersError,
    PayloadTooLargeError,
    RegistrationError,
    RemoteError,
    RuntimeClosedError,
    StreamIncompleteError,
    WaitTimeoutError,
)

__version__ = "0.1.0"


async def attach(**kwargs: Any) -> DistributedRuntime:
    """``await attach(etcd_endpoints=..., nats_server=..., profile="dynamo")``: a read-only runtime that draws
    everything registered, live (see :meth:`DistributedRuntime.attach`)."""
    return await DistributedRuntime.attach(**kwargs)


__all__ = [
    "DistributedRuntime",
    "attach",
    "explain",
    "Namespace",
    "Component",
    "Endpoint",
    "EndpointBuilder",
    "ServedEndpoint",
    "RequestContext",
    "Client",
    "ResponseStream",
    "State",
    "EmbeddedWorld",
    "ManualClock",
    "LocalCluster",
    "diagram",
    "live",
    "Diagram",
    "LiveView",
    "Limits",
    "set_limits",
    "set_language",
    "load_recording",
    "Timeline",
    "service",
    "dynamo_endpoint",
    "endpoint",
    "depends",
    "async_on_start",
    "serve",
    "DynamoError",
    "InvalidNameError",
    "InvalidReferenceError",
    "BackendError",
    "BackendUnavailableError",
    "NoRespondersError",
    "PayloadTooLargeError",
    "RegistrationError",
    "EndpointError",
    "NoInstancesError",
    "InstanceNotFoundError",
    "RemoteError",
    "StreamIncompleteError",
    "RuntimeClosedError",
    "WaitTimeoutError",
]

_LAZY = {
    "explain": ("dynamo_nb.diagnose", "explain"),
    "EmbeddedWorld": ("dynamo_nb.backends.embedded", "EmbeddedWorld"),
    "ManualClock": ("dynamo_nb.backends.embedded", "ManualClock"),
    "LocalCluster": ("dynamo_nb.cluster", "LocalCluster"),
    "diagram": ("dynamo_nb.display.diagram", "diagram"),
    "live": ("dynamo_nb.display.live", "live"),
    "Diagram": ("dynamo_nb.display.diagram", "Diagram"),
    "LiveView": ("dynamo_nb.display.live", "LiveView"),
    "Limits": ("dynamo_nb.display.kinds", "Limits"),
    "set_limits": ("dynamo_nb.display.kinds", "set_limits"),
    "set_language": ("dynamo_nb.display.i18n", "set_language"),
    "load_recording": ("dynamo_nb.core.recording", "load_recording"),
    "Timeline": ("dynamo_nb.display.timeline", "Timeline"),
    "service": ("dynamo_nb.sdk.decorators", "service"),
    "dynamo_endpoint": ("dynamo_nb.sdk.decorators", "dynamo_endpoint"),
    "endpoint": ("dynamo_nb.sdk.decorators", "endpoint"),
    "depends": ("dynamo_nb.sdk.decorators", "depends"),
    "async_on_start": ("dynamo_nb.sdk.decorators", "async_on_start"),
    "serve": ("dynamo_nb.sdk.serve", "serve"),
}


def __getattr__(name: str) -> Any:
    """Load the heavier parts only when asked for."""
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'dynamo_nb' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value
