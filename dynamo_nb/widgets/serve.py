"""The "serve" half of the control panel: name an endpoint, pick a handler, start it in a worker; list instances.

Names are checked as they are typed with the same rules the runtime enforces (SPEC §2), so a bad name shows its
``InvalidNameError`` message beside the field and the Serve button creates nothing. The status line under the
button speaks of the present: a refusal goes once the form is edited, "serving …" once that instance is not.
"""

from __future__ import annotations

import asyncio
import html
from typing import Any, Callable

import ipywidgets as widgets

from .. import faults, names
from ..errors import DynamoError, InvalidNameError
from .handlers import HandlerSpec
from .messages import Message
from .language import localize
from .tasks import TaskRunner
from .workers import Instance, Worker, WorkerPool

__all__ = ["ServeForm", "InstanceRow", "InstanceTable"]

_LABEL = {"description_width": "86px"}
_INDENT = "94px"  # label width + gap: messages line up under the input box
_NEW_WORKER = ""
SLOW_DELAY = 0.5  # seconds the "Slow" fault adds before each streamed item


def _text(description: str, value: str, css: str, placeholder: str = "") -> widgets.Text:
    box = widgets.Text(value=value, description=description, placeholder=placeholder, style=_LABEL,
                       layout=widgets.Layout(width="340px"), continuous_update=True)
    box.add_class(css)
    return box


class ServeForm(widgets.VBox):
    """namespace / component / endpoint / handler / worker / lease TTL, and a Serve button."""

    def __init__(self, pool: WorkerPool, handlers: dict[str, HandlerSpec], runner: TaskRunner, *,
                 namespace: str = "dynamo", component: str = "Processor", endpoint: str = "generate",
                 handler: str | None = None) -> None:
        self.pool = pool
        self.handlers = handlers
        self.runner = runner
        self._served_listeners: list[Callable[[Instance], None]] = []

        self.namespace = _text("namespace", namespace, "dnb-namespace", "a-z 0-9 - _")
        self.component = _text("component", component, "dnb-component", "A-Z a-z 0-9 - _")
        self.endpoint = _text("endpoint", endpoint, "dnb-endpoint", "e.g. generate or chat/completions")
        self.messages = {
            "namespace": Message("dnb-namespace-message", indent=_INDENT),
            "component": Message("dnb-component-message", indent=_INDENT),
            "endpoint": Message("dnb-endpoint-message", indent=_INDENT),
        }
        self._validators: dict[str, Callable[[str], str]] = {
            "namespace": names.validate_namespace,
            "component": names.validate_component,
            "endpoint": names.validate_endpoint,
        }
        for key, box in self._fields().items():
            box.observe(lambda change, key=key: self.validate_field(key), names="value")

        options = [(f"{name} — {spec.description}" if spec.description else name, name)
                   for name, spec in handlers.items()]
        self.handler = widgets.Dropdown(options=options, value=handler or next(iter(handlers)),
                                        description="handler", style=_LABEL, layout=widgets.Layout(width="440px"))
        self.handler.add_class("dnb-handler")
        self.worker = widgets.Dropdown(options=[("new worker", _NEW_WORKER)], value=_NEW_WORKER,
                                       description="worker", style=_LABEL, layout=widgets.Layout(width="260px"))
        self.worker.add_class("dnb-worker")
        self.lease_ttl = widgets.BoundedFloatText(value=pool.lease_ttl, min=0.5, max=600.0, step=0.5,
                                                  description="lease TTL (s)", style={"description_width": "84px"},
                                                  layout=widgets.Layout(width="172px"),
                                                  tooltip="lease TTL of a new worker (seconds)")
        self.lease_ttl.add_class("dnb-lease-ttl")
        self.serve_button = widgets.Button(description="Serve", icon="play", button_style="primary",
                                           tooltip="start this endpoint in a worker runtime")
        self.serve_button.add_class("dnb-serve-button")
        self.status = Message("dnb-serve-status")
        self.serve_button.on_click(lambda _: self.runner.spawn(self.serve(), name="dnb:serve"))
        self._serving: Instance | None = None  # the instance the status line says is serving
        self._unlisten = pool.subscribe(self._pool_changed)
        for box in (*self._fields().values(), self.handler, self.worker, self.lease_ttl):
            box.observe(lambda _: self._edited(), names="value")

        super().__init__([
            widgets.HTML("<b>Serve an endpoint</b>"),
            self.namespace, self.messages["namespace"],
            self.component, self.messages["component"],
            self.endpoint, self.messages["endpoint"],
            self.handler,
            widgets.HBox([self.worker, self.lease_ttl]),
            self.serve_button, self.status,
        ])
        self.add_class("dnb-serve-form")
        for key in self._fields():
            self.validate_field(key)

    def _fields(self) -> dict[str, widgets.Text]:
        return {"namespace": self.namespace, "component": self.component, "endpoint": self.endpoint}

    def on_served(self, callback: Callable[[Instance], None]) -> None:
        """Call ``callback(instance)`` after each successful Serve."""
        self._served_listeners.append(callback)

    # -- validation ------------------------------------------------------------------------------------
    def validate_field(self, key: str) -> bool:
        """Check one name; show its error beside the field. True when valid."""
        message = self.messages[key]
        try:
            self._validators[key](self._fields()[key].value)
        except InvalidNameError as exc:
            message.show(str(exc), "error")
            return False
        message.clear()
        return True

    def validate(self) -> bool:
        return all([self.validate_field(key) for key in self._fields()])

    @property
    def reference(self) -> str:
        return f"{self.namespace.value}.{self.component.value}.{self.endpoint.value}"

    # -- actions ---------------------------------------------------------------------------------------
    async def serve(self) -> Instance | None:
        """Validate, then serve the chosen handler in a (new or chosen) worker. Never raises."""
        self._serving = None
        if not self.validate():
            self.status.show("fix the name marked above; nothing was created", "error")
            return None
        spec = self.handlers[self.handler.value]
        worker: Worker | None = None
        if self.worker.value != _NEW_WORKER:
            try:
                worker = self.pool.worker(self.worker.value)
            except KeyError as exc:
                self.status.show(str(exc), "error")
                return None
        self.serve_button.disabled = True
        self.status.show(f"starting {self.reference} …", "info")
        try:
            instance = await self.pool.serve(self.namespace.value, self.component.value, self.endpoint.value,
                                             spec, worker=worker, lease_ttl=self.lease_ttl.value)
        except InvalidNameError as exc:
            self.status.show(str(exc), "error")
            return None
        except (DynamoError, ValueError, TypeError, ConnectionError, asyncio.TimeoutError) as exc:
            self.status.show(f"{type(exc).__name__}: {exc}", "error")
            return None
        finally:
            self.serve_button.disabled = False
        self.status.show(f"serving {instance.reference} as instance {instance.instance_id:x} "
                         f"on {instance.worker.name}", "ok")
        self._serving = instance
        for callback in tuple(self._served_listeners):
            callback(instance)
        return instance

    def _edited(self) -> None:
        """A refusal was about what the form said before: it no longer applies."""
        if self.status.level == "error":
            self.status.clear()

    def _pool_changed(self) -> None:
        self._refresh_workers()
        inst = self._serving
        if inst is not None and (inst.gone or inst.worker.killed
                                 or inst.served.state.value in ("Stopping", "Deregistered")):
            self._serving = None
            self.status.clear()

    def _refresh_workers(self) -> None:
        options = [("new worker", _NEW_WORKER)] + [
            (f"{w.name} (lease {w.runtime.primary_lease_id:x})", w.name) for w in self.pool.live_workers()]
        if options != list(self.worker.options):
            current = self.worker.value
            self.worker.options = options
            self.worker.value = current if current in [v for _, v in options] else _NEW_WORKER

    def close(self) -> None:
        self._unlisten()
        super().close()

    def __repr__(self) -> str:
        return (f"ServeForm({self.reference!r}, handler={self.handler.value!r}, "
                f"worker={self.worker.value or 'new'!r}, lease_ttl={self.lease_ttl.value:g})")


class InstanceRow(widgets.VBox):
    """One served instance: what it is, its state or crash countdown, and Stop / Kill worker buttons."""

    def __init__(self, instance: Instance, pool: WorkerPool, runner: TaskRunner) -> None:
        self.instance = instance
        self.pool = pool
        self.runner = runner
        self.label = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.label.add_class("dnb-instance-label")
        self.countdown = widgets.FloatProgress(value=0.0, min=0.0, max=instance.worker.lease_ttl,
                                               bar_style="warning", description="lease",
                                               style={"description_width": "40px"},
                                               layout=widgets.Layout(width="170px", visibility="hidden"))
        self.countdown.add_class("dnb-lease-countdown")
        self.stop_button = widgets.Button(description="Stop", icon="stop", layout=widgets.Layout(width="80px"),
                                          tooltip="graceful: stop intake, drain, revoke the lease")
        self.stop_button.add_class("dnb-stop-button")
        self.kill_button = widgets.Button(description="Kill worker", icon="bolt", button_style="danger",
                                          layout=widgets.Layout(width="110px"),
                                          tooltip="crash the worker runtime: its key stays until the lease expires")
        self.kill_button.add_class("dnb-kill-button")
        self.stop_button.on_click(lambda _: self.runner.spawn(self.pool.stop(self.instance), name="dnb:stop"))
        self.kill_button.on_click(lambda _: self.runner.spawn(self.pool.kill(self.instance.worker), name="dnb:kill"))
        # The fault lab (dynamo_nb.faults): each toggle causes a fault while down and ends it when released.
        self.fault_buttons = {
            "keepalive": widgets.ToggleButton(description="Pause keep-alive", icon="pause",
                                              tooltip="partition from etcd: the lease runs out while it serves"),
            "cut_off": widgets.ToggleButton(description="Cut off NATS", icon="unlink",
                                            tooltip="no requests reach it; its key stays in etcd"),
            "slow": widgets.ToggleButton(description=f"Slow (+{SLOW_DELAY:g} s/item)", icon="hourglass",
                                         tooltip="the handler waits before each item it streams"),
        }
        for name, button in self.fault_buttons.items():
            button.layout = widgets.Layout(width="auto")
            button.add_class(f"dnb-fault-{name.replace('_', '-')}")
            button.observe(lambda change, name=name: self._toggle(name, bool(change["new"])), names="value")
        super().__init__([self.label, widgets.HBox([self.stop_button, self.kill_button, self.countdown],
                                                   layout=widgets.Layout(align_items="center")),
                          widgets.HBox(list(self.fault_buttons.values()), layout=widgets.Layout(flex_flow="wrap"))],
                         layout=widgets.Layout(border_bottom="1px solid var(--jp-border-color2)",
                                               padding="2px 0 4px 0", margin="0 0 4px 0"))
        self.add_class("dnb-instance-row")
        self.add_class(f"dnb-instance-{instance.instance_id:x}")
        self.update()

    def _toggle(self, fault: str, on: bool) -> None:
        served = self.instance.served

        async def apply() -> None:
            if fault == "keepalive":
                await (faults.pause_keepalive if on else faults.resume_keepalive)(served.runtime)
            elif fault == "cut_off":
                await (faults.cut_off if on else faults.reconnect)(served)
            else:
                faults.slow_down(served, SLOW_DELAY if on else 0.0)
            self.update()
        self.runner.spawn(apply(), name=f"dnb:fault:{fault}")

    def update(self) -> None:
        inst, worker = self.instance, self.instance.worker
        remaining = self.pool.lease_remaining(worker) if worker.killed and not inst.gone else None
        status = inst.status(remaining)
        colour = ("var(--jp-error-color1)" if worker.killed else
                  "var(--jp-ui-font-color2)" if inst.gone else "var(--jp-success-color1)")
        self.label.value = (
            f'<div style="line-height:1.45">'
            f'<b>{html.escape(worker.name)}</b> · instance <code>{inst.instance_id:x}</code> · '
            f'{html.escape(inst.handler)}<br><span style="font-size:12px">{html.escape(inst.reference)}</span> · '
            f'<span style="color:{colour}">{html.escape(status)}</span></div>')
        if worker.killed and not inst.gone and remaining is not None:
            self.countdown.max = worker.lease_ttl
            self.countdown.value = min(remaining, worker.lease_ttl)
            self.countdown.layout.visibility = "visible"
        else:
            self.countdown.layout.visibility = "hidden"
        stopping = inst.served.state.value in ("Stopping", "Deregistered")
        self.stop_button.disabled = stopping or worker.killed or inst.gone
        self.kill_button.disabled = not worker.alive
        for button in self.fault_buttons.values():
            button.disabled = stopping or worker.killed or inst.gone

    @property
    def text(self) -> str:
        return self.instance.status(self.pool.lease_remaining(self.instance.worker))


class InstanceTable(widgets.VBox):
    """Every instance the panel started, kept current; counts a killed worker's lease down to expiry."""

    TICK = 0.2  # seconds between countdown updates

    def __init__(self, pool: WorkerPool, runner: TaskRunner, *, lang: str = "en") -> None:
        self.pool = pool
        self.runner = runner
        self.lang = lang
        self.rows: dict[int, InstanceRow] = {}
        self.rows_box = widgets.VBox([])
        self.rows_box.add_class("dnb-instances")
        self.empty = widgets.HTML('<i style="color:var(--jp-ui-font-color2)">no instances yet — press Serve</i>')
        self.clear_button = widgets.Button(description="Clear finished", icon="eraser",
                                           layout=widgets.Layout(width="140px"),
                                           tooltip="remove stopped and expired instances from this list")
        self.clear_button.add_class("dnb-clear-button")
        self.clear_button.on_click(lambda _: self.pool.forget_finished())
        self._ticker: asyncio.Future[Any] | None = None
        self._unlisten = pool.subscribe(self.refresh)
        super().__init__([widgets.HTML("<b>Instances</b>"), self.empty, self.rows_box, self.clear_button])
        self.add_class("dnb-instance-table")
        self.refresh()

    def refresh(self) -> None:
        """Add rows for new instances, drop rows of forgotten ones, update every label."""
        live = {id(i): i for i in self.pool.instances}
        for key in [k for k in self.rows if k not in live]:
            self.rows.pop(key).close()
        for key, instance in live.items():
            if key not in self.rows:
                self.rows[key] = localize(InstanceRow(instance, self.pool, self.runner), self.lang)
        children = tuple(self.rows[k] for k in live)
        if children != self.rows_box.children:
            self.rows_box.children = children
        for row in children:
            row.update()
        self.empty.layout.display = "none" if children else None
        if self.pool.pending_expiry() and (self._ticker is None or self._ticker.done()):
            try:
                self._ticker = self.runner.spawn(self._tick(), name="dnb:lease-countdown", background=True)
            except RuntimeError:  # no loop (e.g. built outside the kernel): labels still update on events
                self._ticker = None

    async def tick(self) -> None:
        """One step of the countdown: ask discovery about killed workers' leases and keys, update every row."""
        await self.pool.refresh()
        for row in self.rows.values():
            row.update()

    async def _tick(self) -> None:
        """Count down until every killed worker's key is gone."""
        while self.pool.pending_expiry():
            await self.tick()
            await asyncio.sleep(self.TICK)
        for row in self.rows.values():
            row.update()

    def row(self, instance: Instance) -> InstanceRow:
        return self.rows[id(instance)]

    def close(self) -> None:
        self._unlisten()
        if self._ticker is not None:
            self._ticker.cancel()
        super().close()

    def __repr__(self) -> str:
        return f"InstanceTable({len(self.rows)} rows)"
