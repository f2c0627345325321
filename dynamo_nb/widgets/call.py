"""The "call" half of the control panel: send a JSON request to an endpoint and watch the stream arrive.

Routing is the client's: round-robin, random, or direct to an instance picked from a dropdown that the
component's shared watcher keeps current — a killed worker's instance leaves the list when its lease expires.
A refused call ("nothing was sent") is reported until the request, the target, the routing or the live
instances change: then it no longer describes the present.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from typing import Any, Callable

import ipywidgets as widgets

from ..core.client import Client, ResponseStream
from ..core.model import Endpoint
from ..core.runtime import DistributedRuntime
from ..errors import (DynamoError, EndpointError, InvalidNameError, InvalidReferenceError, NoInstancesError,
                      RemoteError)
from .messages import LEVELS, Message
from .tasks import TaskRunner

__all__ = ["CallForm", "ROUTINGS"]

_LABEL = {"description_width": "86px"}
_INDENT = "94px"  # label width + gap: messages line up under the input box
ROUTINGS = ("round_robin", "random", "direct")
_NONE = -1


class CallForm(widgets.VBox):
    """Endpoint reference, JSON request, routing, instance; Call and Cancel; the streamed items as they come."""

    MAX_LINES = 500  # items kept in the output box

    def __init__(self, runtime: DistributedRuntime, runner: TaskRunner, *, target: str = "",
                 request: Any = None, label_for: Callable[[int], str] | None = None) -> None:
        self.runtime = runtime
        self.runner = runner
        self.label_for = label_for or (lambda instance_id: "")
        self.clients: dict[str, Client] = {}
        self.items: list[Any] = []
        self.stream: ResponseStream | None = None
        self.last_error: str = ""
        self.calls = 0
        self._client: Client | None = None
        self._unwatch: Callable[[], None] | None = None
        self._call_task: asyncio.Future[Any] | None = None
        self._lines: list[str] = []
        self._listeners: list[Callable[[], object]] = []
        self._refused = False  # the status line reports a call that was not sent

        self.target = widgets.Combobox(value=target, options=[], ensure_option=False, description="endpoint",
                                       placeholder="namespace.Component.endpoint", style=_LABEL,
                                       continuous_update=False, layout=widgets.Layout(width="440px"))
        self.target.add_class("dnb-call-target")
        self.target_message = Message("dnb-call-target-message", indent=_INDENT)
        self.request = widgets.Textarea(
            value=json.dumps({"prompt": "hello world"} if request is None else request), description="request",
            placeholder='JSON, e.g. {"prompt": "hello"}', style=_LABEL, continuous_update=True,
            layout=widgets.Layout(width="440px", height="64px"))
        self.request.add_class("dnb-request")
        self.request_message = Message("dnb-request-message", indent=_INDENT)
        self.routing = widgets.ToggleButtons(options=[("round robin", "round_robin"), ("random", "random"),
                                                      ("direct", "direct")], value="round_robin",
                                             style={"button_width": "104px"}, tooltips=[
                                                 "each call to the next live instance", "a random live instance",
                                                 "the instance chosen below"])
        self.routing.add_class("dnb-routing")
        self.instance = widgets.Dropdown(options=[("(no instances)", _NONE)], value=_NONE, description="instance",
                                         style=_LABEL, layout=widgets.Layout(width="440px"), disabled=True)
        self.instance.add_class("dnb-instance")
        self.instance_message = Message("dnb-instance-message", indent=_INDENT)
        self.call_button = widgets.Button(description="Call", icon="paper-plane", button_style="success")
        self.call_button.add_class("dnb-call-button")
        self.cancel_button = widgets.Button(description="Cancel", icon="times", disabled=True,
                                            tooltip="close the stream: the handler sees the caller leave")
        self.cancel_button.add_class("dnb-cancel-button")
        self.status = Message("dnb-call-status")
        self.output = widgets.HTML(layout=widgets.Layout(width="100%", max_height="260px", overflow="auto"))
        self.output.add_class("dnb-call-output")

        self.target.observe(lambda _: self.runner.spawn(self.select_target(), name="dnb:target"), names="value")
        self.request.observe(lambda _: self.check_request(), names="value")
        self.routing.observe(lambda _: self._routing_changed(), names="value")
        for box in (self.target, self.request, self.routing, self.instance):
            box.observe(lambda _: self._forget_refusal(), names="value")
        self.call_button.on_click(lambda _: self._start_call())
        self.cancel_button.on_click(lambda _: self.cancel())

        super().__init__([
            widgets.HTML("<b>Call an endpoint</b>"),
            self.target, self.target_message,
            self.request, self.request_message,
            widgets.HBox([widgets.HTML('<div style="width:78px;text-align:right;padding-right:8px">routing</div>',
                                       layout=widgets.Layout(width="86px")), self.routing]),
            self.instance, self.instance_message,
            widgets.HBox([self.call_button, self.cancel_button]), self.status,
            self.output,
        ])
        self.add_class("dnb-call-form")
        self._render()
        if target:
            try:
                self.runner.spawn(self.select_target(), name="dnb:target")
            except RuntimeError:
                pass

    # -- target and instances ------------------------------------------------------------------------
    def parse_target(self) -> Endpoint | None:
        """The endpoint named in the target box, or None with the reason shown beside it."""
        ref = self.target.value.strip()
        if not ref:
            self.target_message.show("enter an endpoint reference, e.g. dynamo.Processor.generate", "error")
            return None
        try:
            endpoint = self.runtime.endpoint(ref)
        except (InvalidReferenceError, InvalidNameError) as exc:
            self.target_message.show(str(exc), "error")
            return None
        self.target_message.clear()
        return endpoint

    async def client_for(self, endpoint: Endpoint) -> Client:
        """One client per endpoint, created on first use and kept (its watcher is shared per component)."""
        ref = endpoint.reference()
        client = self.clients.get(ref)
        if client is None:
            client = await endpoint.client()
            self.clients[ref] = client
        return client

    async def select_target(self) -> Client | None:
        """Point the form (and its instance dropdown) at the endpoint in the target box."""
        endpoint = self.parse_target()
        if endpoint is None:
            self._watch(None)
            return None
        try:
            client = await self.client_for(endpoint)
        except DynamoError as exc:
            self.target_message.show(f"{type(exc).__name__}: {exc}", "error")
            self._watch(None)
            return None
        if self.target.value.strip() == endpoint.reference():  # still the same target after the await
            self._watch(client)
        return client

    def subscribe(self, listener: Callable[[], object]) -> Callable[[], None]:
        """Call ``listener()`` when the form starts using another client (a diagram may want to redraw)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _watch(self, client: Client | None) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        changed = client is not self._client
        self._client = client
        if client is not None:
            self._unwatch = client.watcher.subscribe(lambda kind, info: self.refresh_instances())
        if changed and self.instance_message.level == "error":
            self.instance_message.clear()  # it spoke of the previous target
        self.refresh_instances()
        if changed:
            for listener in tuple(self._listeners):
                listener()

    def refresh_instances(self) -> None:
        """Rebuild the instance dropdown from the client's live list (the watcher calls this on every change)."""
        ids = self._client.instance_ids() if self._client is not None else []
        if ids:
            options = [(f"{i:x}" + (f"  ({label})" if (label := self.label_for(i)) else ""), i) for i in ids]
        else:
            options = [("(no instances)", _NONE)]
        if options != list(self.instance.options):
            current = self.instance.value
            self.instance.options = options
            self.instance.value = current if current in ids else options[0][1]
            self._forget_refusal()
        self.instance.disabled = not ids or self.routing.value != "direct"
        if ids or self._client is None:
            self.instance_message.clear()
        elif self.instance_message.level != "error":  # keep a call's error visible
            self.instance_message.show("no live instance — serve this endpoint first", "warning")

    def set_target_options(self, references: list[str]) -> None:
        self.target.options = sorted(set(references))

    def _routing_changed(self) -> None:
        self.refresh_instances()

    def _refuse(self, why: str) -> None:
        self.status.show(why, "error")
        self._refused = True

    def _forget_refusal(self) -> None:
        """What the call was refused for has changed: the refusal no longer describes the present."""
        if self._refused:
            self._refused = False
            self.status.clear()

    # -- request ---------------------------------------------------------------------------------------
    def check_request(self) -> tuple[bool, Any]:
        """Parse the request box; show where the JSON breaks. Returns ``(ok, request)``."""
        text = self.request.value
        if not text.strip():
            self.request_message.show("the request is empty; enter JSON, e.g. {\"prompt\": \"hi\"}", "error")
            return False, None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            self.request_message.show(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", "error")
            return False, None
        self.request_message.clear()
        return True, value

    # -- calling ---------------------------------------------------------------------------------------
    def _start_call(self) -> None:
        if self._call_task is not None and not self._call_task.done():
            self.status.show("a call is still streaming — Cancel it first", "warning")
            return
        self._call_task = self.runner.spawn(self.call(), name="dnb:call")

    async def call(self) -> list[Any] | None:
        """Send the request with the chosen routing and show every item as it arrives. Never raises."""
        endpoint = self.parse_target()
        ok, request = self.check_request()
        if endpoint is None or not ok:
            self._refuse("fix the field marked above; nothing was sent")
            return None
        routing = self.routing.value
        try:
            client = await self.client_for(endpoint)
        except DynamoError as exc:
            self._refuse(f"{type(exc).__name__}: {exc}; nothing was sent")
            return None
        if self._client is not client:
            self._watch(client)
        if not client.instance_ids():
            self.instance_message.show(str(NoInstancesError(endpoint.reference())), "error")
            self._refuse("nothing was sent")
            return None
        instance_id = self.instance.value
        if routing == "direct" and instance_id not in client.instance_ids():
            self.instance_message.show("choose a live instance for direct routing", "error")
            self._refuse("nothing was sent")
            return None

        self._refused = False
        self.calls += 1
        self.items = []
        self.last_error = ""
        self._lines = []
        self.call_button.disabled = True
        self.cancel_button.disabled = False
        self.status.show(f"calling {endpoint.reference()} ({routing}) …", "info")
        started = time.perf_counter()
        stream: ResponseStream | None = None
        outcome = "complete"
        try:
            if routing == "direct":
                stream = await client.direct(request, instance_id)
            elif routing == "random":
                stream = await client.random(request)
            else:
                stream = await client.round_robin(request)
            self.stream = stream
            label = self.label_for(stream.instance_id)
            self._line("head", f"→ instance {stream.instance_id:x}" + (f" ({label})" if label else "")
                               + f", {routing.replace('_', '-')}")
            async for item in stream:
                self.items.append(item)
                self._line("item", f"{len(self.items):>3}  {json.dumps(item, ensure_ascii=False)}")
        except asyncio.CancelledError:
            outcome = "cancelled"
            if stream is not None:
                await stream.aclose()
            self._line("warning", "■ cancelled: the stream was closed; the handler was told to stop")
        except RemoteError as exc:
            outcome = "error"
            self.last_error = str(exc)
            self._line("error", f"✗ {exc}")
        except (EndpointError, DynamoError, TypeError, ValueError, ConnectionError, asyncio.TimeoutError) as exc:
            outcome = "error"
            self.last_error = f"{type(exc).__name__}: {exc}"
            if stream is None and isinstance(exc, EndpointError):
                self.instance_message.show(str(exc), "error")
            self._line("error", f"✗ {type(exc).__name__}: {exc}")
        finally:
            self.call_button.disabled = False
            self.cancel_button.disabled = True
            self._call_task = None
        took = time.perf_counter() - started
        summary = f"{len(self.items)} item(s) in {took:.2f} s"
        if outcome == "complete":
            self.status.show(f"complete: {summary}", "ok")
        elif outcome == "cancelled":
            self.status.show(f"cancelled after {summary}", "warning")
        else:
            self.status.show(f"failed after {summary}: {self.last_error}", "error")
        return self.items

    def cancel(self) -> None:
        """Stop the running call; the worker's handler sees the caller leave."""
        if self._call_task is not None and not self._call_task.done():
            self._call_task.cancel()

    async def wait_call(self, timeout: float | None = 30.0) -> None:
        task = self._call_task
        if task is not None:
            await asyncio.wait_for(asyncio.shield(task), timeout)

    @property
    def calling(self) -> bool:
        return self._call_task is not None and not self._call_task.done()

    # -- output ----------------------------------------------------------------------------------------
    def _line(self, kind: str, text: str) -> None:
        self._lines.append(f"{kind}\x00{text}")
        if len(self._lines) > self.MAX_LINES:
            self._lines = self._lines[:1] + ["warning\x00…"] + self._lines[-(self.MAX_LINES - 2):]
        self._render()

    @property
    def output_text(self) -> str:
        return "\n".join(line.split("\x00", 1)[1] for line in self._lines)

    def _render(self) -> None:
        if not self._lines:
            self.output.value = ('<pre style="margin:0;color:var(--jp-ui-font-color2)">'
                                 'streamed items appear here as they arrive</pre>')
            return
        colours = {"error": LEVELS["error"][1], "warning": LEVELS["warning"][1],
                   "head": "var(--jp-ui-font-color2)", "item": "var(--jp-content-font-color1)"}
        body = "\n".join(f'<span style="color:{colours.get(kind, "inherit")}">{html.escape(text)}</span>'
                         for kind, text in (line.split("\x00", 1) for line in self._lines))
        self.output.value = (f'<pre style="margin:0;padding:4px;font-size:12px;'
                             f'background:var(--jp-layout-color2);white-space:pre-wrap">{body}</pre>')

    async def aclose(self) -> None:
        if self._call_task is not None:
            self._call_task.cancel()
        self._watch(None)
        for client in list(self.clients.values()):
            await client.close()
        self.clients.clear()

    def __repr__(self) -> str:
        last = f", last call: {len(self.items)} item(s)" if self.calls else ""
        return f"CallForm({self.target.value!r}, routing={self.routing.value}{last})"
