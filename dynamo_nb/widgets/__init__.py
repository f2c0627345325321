"""ipywidgets that drive a running system from a notebook: serve, call, stop and kill endpoints.

``ControlPanel(runtime)`` is the whole playground; its parts (``ServeForm``, ``InstanceTable``, ``CallForm``,
``DiagramPane``) and the ``WorkerPool`` behind them can be used on their own. Importing this package imports
ipywidgets (the ``notebook`` extra); the rest of dynamo_nb does not need it.
"""

from __future__ import annotations

from .call import CallForm
from .diagram_pane import DiagramPane
from .handlers import BUILTIN_HANDLERS, HandlerSpec, counter, echo, fails, handler_specs, tokens
from .messages import Message
from .panel import ControlPanel
from .serve import InstanceRow, InstanceTable, ServeForm
from .tasks import TaskRunner
from .workers import DEFAULT_WORKER_LEASE_TTL, Instance, Worker, WorkerPool

__all__ = [
    "ControlPanel",
    "ServeForm",
    "InstanceTable",
    "InstanceRow",
    "CallForm",
    "DiagramPane",
    "Message",
    "TaskRunner",
    "WorkerPool",
    "Worker",
    "Instance",
    "HandlerSpec",
    "BUILTIN_HANDLERS",
    "DEFAULT_WORKER_LEASE_TTL",
    "handler_specs",
    "echo",
    "tokens",
    "counter",
    "fails",
]
