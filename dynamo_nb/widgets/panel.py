"""ControlPanel: serve, call, stop and kill endpoints of a running system from one notebook cell.

It composes the smaller widgets of this package around one :class:`~dynamo_nb.widgets.workers.WorkerPool`:
workers are separate runtimes on the same etcd/NATS (the same embedded world by default), so what the panel
shows — registration, routing, graceful stop, a crash and its lease expiring — is what separate Dynamo
processes would do.
"""

from __future__ import annotations

import html
from typing import Any, Mapping

import ipywidgets as widgets

from ..core.runtime import DistributedRuntime
from ..display.i18n import language, ui
from .call import CallForm
from .diagram_pane import DEFAULT_KINDS, DiagramPane
from .handlers import HandlerSpec, handler_specs
from .language import localize
from .messages import Message
from .serve import InstanceTable, ServeForm
from .tasks import TaskRunner
from .workers import DEFAULT_WORKER_LEASE_TTL, Instance, WorkerFactory, WorkerPool

__all__ = ["ControlPanel"]


class ControlPanel(widgets.VBox):
    """Serve / call / stop / kill endpoints of ``runtime``'s system, with a live diagram beside the controls.

    ``handlers`` adds the notebook's own async generators (``{"name": fn}``) to the built-in examples.
    ``lease_ttl`` is the lease of each worker the panel starts: short, so a killed worker's lease visibly
    runs out. Every action runs as a task on the kernel's loop; bad input is reported beside its field.
    ``lang="zh"`` (default: :func:`dynamo_nb.set_language`'s) labels the controls and draws the diagram in the
    seed's Chinese.
    """

    def __init__(self, runtime: DistributedRuntime, handlers: Mapping[str, Any] | None = None, *,
                 lease_ttl: float = DEFAULT_WORKER_LEASE_TTL, namespace: str = "dynamo",
                 component: str = "Processor", endpoint: str = "generate", handler: str | None = None,
                 diagram: bool = True, diagram_kind: str = "hierarchy",
                 worker_factory: WorkerFactory | None = None, lang: str | None = None) -> None:
        self.runtime = runtime
        self.lang = language(lang)
        self.handlers: dict[str, HandlerSpec] = handler_specs(handlers)
        self.status = Message("dnb-panel-status")
        self.runner = TaskRunner(on_error=self._task_failed)
        self.pool = WorkerPool(runtime, lease_ttl=lease_ttl, worker_factory=worker_factory)
        first = handler or next(iter(self.handlers))
        self.serve_form = ServeForm(self.pool, self.handlers, self.runner, namespace=namespace,
                                    component=component, endpoint=endpoint, handler=first)
        self.instance_table = InstanceTable(self.pool, self.runner, lang=self.lang)
        self.call_form = CallForm(runtime, self.runner, target=self.serve_form.reference,
                                  request=self.handlers[first].example, label_for=self._label_for)
        self.serve_form.on_served(self._served)
        self.diagram: DiagramPane | None = None
        if diagram:
            kinds = tuple(dict.fromkeys((diagram_kind, *DEFAULT_KINDS)))
            self.diagram = DiagramPane(self._subject, kinds=kinds, kind=diagram_kind,
                                       placeholder=ui("serve an endpoint to see it here", self.lang),
                                       lang=self.lang)
            self.pool.subscribe(self.diagram.changed)
            self.call_form.subscribe(self.diagram.changed)
        self._closed = False

        backend = html.escape(runtime.backend.description or runtime.backend.kind)
        title = widgets.HTML(
            f"<b>Dynamo 控制面板</b> · 运行时 <code>{html.escape(runtime.name)}</code> · {backend} · "
            f"新 worker 的租约为 {lease_ttl:g} 秒" if self.lang == "zh" else
            f"<b>Dynamo control panel</b> · runtime <code>{html.escape(runtime.name)}</code> · {backend} · "
            f"new workers get a {lease_ttl:g} s lease")
        self.controls = widgets.VBox([self.serve_form, self.instance_table, self.call_form],
                                     layout=widgets.Layout(width="460px", flex="0 0 460px", margin="0 16px 0 0"))
        body_children: list[widgets.Widget] = [self.controls]
        if self.diagram is not None:
            self.diagram.layout = widgets.Layout(flex="1 1 auto", min_width="0", width="auto")
            body_children.append(self.diagram)
        self.body = widgets.HBox(body_children, layout=widgets.Layout(width="100%", align_items="flex-start"))
        if self.diagram is not None:
            self.diagram.wide.observe(lambda change: self._place_diagram(change["new"]), names="value")
        super().__init__([title, self.body, self.status], layout=widgets.Layout(width="100%"))
        self.add_class("dnb-control-panel")
        localize(self, self.lang)

    def _place_diagram(self, wide: bool) -> None:
        """Beside the controls, or below them across the whole panel."""
        assert self.diagram is not None
        self.body.layout.flex_flow = "column" if wide else "row"
        self.controls.layout.flex = "0 0 auto" if wide else "0 0 460px"  # a column's basis is a height
        self.diagram.layout.width = "100%" if wide else "auto"
        self.diagram.layout.margin = "12px 0 0 0" if wide else "0"

    # -- wiring ------------------------------------------------------------------------------------------
    def _served(self, instance: Instance) -> None:
        """After Serve: point the call form at the new endpoint, with the handler's example request."""
        form = self.call_form
        references = [i.reference for i in self.pool.instances] + list(form.target.options)
        form.set_target_options(references)
        spec = self.handlers.get(instance.handler)
        retarget = form.target.value != instance.reference
        if retarget:
            form.target.value = instance.reference
        # Offer the handler's example request, unless the reader has written one of their own.
        untouched = form.request.value in self._examples or not form.request.value.strip()
        if spec is not None and (retarget or untouched):
            form.request.value = self._json(spec.example)
        form.refresh_instances()

    @property
    def _examples(self) -> set[str]:
        return {self._json(spec.example) for spec in self.handlers.values()}

    @staticmethod
    def _json(value: Any) -> str:
        import json

        return json.dumps(value, ensure_ascii=False)

    def _label_for(self, instance_id: int) -> str:
        for instance in self.pool.instances:
            if instance.instance_id == instance_id:
                return f"{instance.worker.name}, {instance.handler}"
        return ""

    def _task_failed(self, exc: BaseException) -> None:
        self.status.show(f"{type(exc).__name__}: {exc}", "error")

    # -- the diagram ----------------------------------------------------------------------------------------
    def _runtimes(self) -> list[DistributedRuntime]:
        """The panel's runtime and its workers: live ones, and killed ones whose keys have not expired yet."""
        pending = {id(i.worker) for i in self.pool.pending_expiry()}
        return [self.runtime] + [w.runtime for w in self.pool.workers if w.alive or id(w) in pending]

    def _subject(self, kind: str) -> Any:
        """What to draw: one instance's story for lifecycle/sequence/startup, else the whole system."""
        if kind in ("lifecycle", "sequence", "startup"):
            newest = next((i for i in reversed(self.pool.instances) if not i.worker.killed), None)
            newest = newest or (self.pool.instances[-1] if self.pool.instances else None)
            return newest.served if newest is not None else None
        return self._runtimes()

    # -- programmatic use (tests, notebooks) -----------------------------------------------------------------
    async def wait_idle(self, timeout: float | None = 10.0) -> None:
        """Wait until every action started by a click has finished."""
        await self.runner.wait_idle(timeout)

    @property
    def instances(self) -> list[Instance]:
        return list(self.pool.instances)

    async def aclose(self) -> None:
        """Shut the panel's workers and clients down and stop redrawing."""
        if self._closed:
            return
        self._closed = True
        if self.diagram is not None:
            self.diagram.stop()
        await self.call_form.aclose()
        await self.pool.close()
        await self.runner.cancel_all()

    # -- display ------------------------------------------------------------------------------------------------
    def summary(self) -> str:
        """A plain-text account of the panel's state (what a frontend without widgets shows)."""
        lines = [f"ControlPanel on {self.runtime.name} ({self.runtime.backend.kind}); "
                 f"workers get a {self.pool.lease_ttl:g} s lease"]
        lines.append(f"  serve: {self.serve_form.reference} with handler {self.serve_form.handler.value!r}")
        if self.pool.instances:
            lines.append("  instances:")
            for inst in self.pool.instances:
                remaining = self.pool.lease_remaining(inst.worker)
                lines.append(f"    {inst.worker.name:<10} {inst.reference}  {inst.instance_id:x}  "
                             f"{inst.handler:<8} {inst.status(remaining)}")
        else:
            lines.append("  instances: none")
        form = self.call_form
        if form.calls:
            state = "streaming" if form.calling else (form.last_error or "complete")
            lines.append(f"  last call: {form.target.value} ({form.routing.value}) → "
                         f"{len(form.items)} item(s), {state}")
        if self.status.text:
            lines.append(f"  {self.status.text}")
        return "\n".join(lines)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/plain"] = self.summary()
        return data

    def __repr__(self) -> str:
        return self.summary()
