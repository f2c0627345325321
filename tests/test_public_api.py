"""The public surface users import, and what importing it costs."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from types import ModuleType

import dynamo_nb

# Exactly what ``from dynamo_nb import *`` gives: a name added to or dropped from ``__all__`` must be added or
# dropped here too, on purpose.
PINNED = {
    "DistributedRuntime", "attach", "explain", "Namespace", "Component", "Endpoint", "EndpointBuilder", "ServedEndpoint",
    "RequestContext", "Client", "ResponseStream", "State", "EmbeddedWorld", "ManualClock", "LocalCluster",
    "diagram", "live", "Diagram", "LiveView", "Limits", "set_limits", "set_language", "load_recording", "Timeline",
    "service", "dynamo_endpoint", "endpoint", "depends", "async_on_start", "serve",
    "DynamoError", "InvalidNameError", "InvalidReferenceError", "BackendError", "BackendUnavailableError",
    "NoRespondersError", "PayloadTooLargeError", "RegistrationError", "EndpointError", "NoInstancesError",
    "InstanceNotFoundError", "RemoteError", "StreamIncompleteError", "RuntimeClosedError", "WaitTimeoutError",
}

# The whole tree, as ``dynamo_nb.errors`` exports it.
ERRORS = {
    "DynamoError", "InvalidNameError", "InvalidReferenceError", "ConfigurationError", "ServiceConfigError", "BackendError",
    "BackendUnavailableError", "CertificateError", "BackendTimeoutError", "NoRespondersError", "PayloadTooLargeError",
    "PermissionDeniedError", "ResponseStreamError", "StreamRefusedError",
    "StreamClosedError", "ResponseInjectionError", "StreamStalledError", "ProtocolError", "FrameError", "RegistrationError", "LeaseExpiredError", "EndpointError",
    "NoInstancesError", "InstanceNotFoundError", "RemoteError", "StreamIncompleteError", "IllegalTransitionError",
    "UndeclaredFieldError", "RecordingFormatError", "RuntimeClosedError", "WaitTimeoutError", "DotError",
    "DotNotFoundError", "DotFailedError",
    "BinaryNotFoundError", "ClusterStartError", "ClusterStateError",
}

# Builtin bases kept so that code catching them keeps working.
BUILTIN_BASES = {
    "InvalidNameError": ValueError, "InvalidReferenceError": ValueError, "PayloadTooLargeError": ValueError,
    "ProtocolError": ValueError, "FrameError": ValueError, "BackendUnavailableError": ConnectionError,
    "BackendTimeoutError": TimeoutError, "WaitTimeoutError": TimeoutError, "StreamStalledError": TimeoutError, "ResponseStreamError": ConnectionError,
    "StreamRefusedError": ConnectionRefusedError, "StreamClosedError": ConnectionResetError,
    "InstanceNotFoundError": LookupError, "PermissionDeniedError": PermissionError,
    "IllegalTransitionError": RuntimeError, "DotError": RuntimeError,
    "UndeclaredFieldError": KeyError, "ConfigurationError": ValueError, "RecordingFormatError": ValueError,
    "ServiceConfigError": ValueError,
    "DotNotFoundError": RuntimeError, "DotFailedError": RuntimeError, "BinaryNotFoundError": RuntimeError,
    "ClusterStartError": RuntimeError, "ClusterStateError": RuntimeError,
}


def _package_modules() -> list[ModuleType]:
    modules = [dynamo_nb]
    for info in pkgutil.walk_packages(dynamo_nb.__path__, "dynamo_nb."):
        if info.name != "dynamo_nb.__main__":
            modules.append(importlib.import_module(info.name))
    return modules


def test_all_is_pinned_exactly_and_every_name_resolves():
    assert len(dynamo_nb.__all__) == len(set(dynamo_nb.__all__)), "a name is listed twice"
    assert set(dynamo_nb.__all__) == PINNED
    for name in dynamo_nb.__all__:
        assert getattr(dynamo_nb, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from dynamo_nb import *", namespace)
    assert set(namespace) - {"__builtins__"} == PINNED


def test_every_module_declares_all_and_each_name_resolves():
    for module in _package_modules():
        assert hasattr(module, "__all__"), f"{module.__name__} has no __all__"
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.__all__ lists {name!r}, which does not exist"


def test_errors_are_one_tree():
    from dynamo_nb import errors

    assert set(errors.__all__) == ERRORS
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.DynamoError), name
        assert name in errors.__doc__, f"{name} is missing from the tree drawn in errors.py's docstring"
    for name, base in BUILTIN_BASES.items():
        assert issubclass(getattr(errors, name), base), (name, base)


def test_every_exception_class_in_the_package_is_in_the_tree():
    """Including the ones defined for, or re-exported by, the display, transport, lifecycle and cluster modules."""
    from dynamo_nb.errors import DynamoError

    seen = set()
    for module in _package_modules():
        for name, value in vars(module).items():
            ours = isinstance(value, type) and value.__module__.startswith("dynamo_nb")
            if ours and issubclass(value, BaseException):
                seen.add(f"{module.__name__}.{name}")
                assert issubclass(value, DynamoError), f"{module.__name__}.{name} is not a DynamoError"
    for where in ("dynamo_nb.display.svg.DotNotFoundError", "dynamo_nb.display.svg.DotFailedError",
                  "dynamo_nb.transport.frames.FrameError", "dynamo_nb.transport.profile.ProtocolError",
                  "dynamo_nb.core.lifecycle.IllegalTransitionError"):
        assert where in seen, f"{where} is no longer importable from where users found it"


def test_import_loads_no_backend_or_notebook_library():
    code = (
        "import sys, dynamo_nb\n"
        "heavy = [m for m in ('aetcd', 'nats', 'grpc', 'IPython', 'ipywidgets', 'graphviz', 'networkx')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
