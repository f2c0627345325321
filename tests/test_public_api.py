"""The public surface users import, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys

import dynamo_nb

PINNED = {
    "DistributedRuntime", "Namespace", "Component", "Endpoint", "EndpointBuilder", "ServedEndpoint",
    "RequestContext", "Client", "ResponseStream", "State", "EmbeddedWorld", "ManualClock", "LocalCluster",
    "diagram", "live", "Diagram", "LiveView",
    "DynamoError", "InvalidNameError", "InvalidReferenceError", "BackendError", "BackendUnavailableError",
    "NoRespondersError", "PayloadTooLargeError", "RegistrationError", "EndpointError", "NoInstancesError",
    "InstanceNotFoundError", "RemoteError", "StreamIncompleteError", "RuntimeClosedError", "WaitTimeoutError",
}


def test_all_is_pinned_and_every_name_resolves():
    assert PINNED <= set(dynamo_nb.__all__)
    for name in dynamo_nb.__all__:
        assert getattr(dynamo_nb, name) is not None, name


def test_errors_are_one_tree():
    from dynamo_nb import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.DynamoError), name
    assert issubclass(errors.InvalidNameError, ValueError)
    assert issubclass(errors.WaitTimeoutError, TimeoutError)


def test_import_loads_no_backend_or_notebook_library():
    code = (
        "import sys, dynamo_nb\n"
        "heavy = [m for m in ('aetcd', 'nats', 'grpc', 'IPython', 'ipywidgets', 'graphviz', 'networkx')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
