"""A diagram beside the controls that redraws itself as the system the panel drives changes.

It draws with :func:`dynamo_nb.diagram` (pure: snapshot → Mermaid) and redraws when the recorders of the
runtimes it follows record something, coalesced to a few frames a second. The snapshot is taken on the loop;
the text and the graphviz SVG are made in a worker thread, so the kernel stays responsive. The drawing goes
into an ``Output`` widget as a MIME bundle without ``text/html`` (JupyterLab ≥ 4.1 then shows the Mermaid);
reassigning ``Output.outputs`` updates reliably from background tasks.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Iterable, Sequence

import ipywidgets as widgets

from .messages import Message
from .tasks import TaskRunner

__all__ = ["DiagramPane", "diagram_of", "bundle_of", "DEFAULT_KINDS"]

log = logging.getLogger(__name__)

DEFAULT_KINDS = ("hierarchy", "lifecycle", "sequence", "startup", "registry", "structure")

Subject = Callable[[str], Any]  # kind -> the object (or list of objects) to draw


def diagram_of(obj: Any, kind: str) -> Any:
    """``dynamo_nb.diagram(obj, kind)``: takes the snapshot now (call it on the loop)."""
    from .. import diagram  # type: ignore[attr-defined]

    return diagram(obj, kind)


def bundle_of(drawing: Any) -> dict[str, Any]:
    """The MIME bundle of a diagram, never with ``text/html`` (it would hide the Mermaid view)."""
    if hasattr(drawing, "_repr_mimebundle_"):
        result = drawing._repr_mimebundle_()
        data = dict(result[0] if isinstance(result, tuple) else result)
    else:
        data = {"text/vnd.mermaid": drawing.mermaid}
    data.pop("text/html", None)
    data.setdefault("text/plain", str(getattr(drawing, "mermaid", drawing)))
    return data


class DiagramPane(widgets.VBox):
    """A kind chooser and a drawing of ``subject(kind)`` that follows the running system.

    ``subject(kind)`` returns what to draw for ``kind`` (None: nothing yet, ``placeholder`` is shown);
    ``recorders()`` returns the recorders whose new records should trigger a redraw (asked again on every
    redraw, so runtimes started later are followed too).
    """

    INTERVAL = 0.3  # seconds: at most ~3 redraws a second

    def __init__(self, subject: Subject, runner: TaskRunner, *, kinds: Sequence[str] = DEFAULT_KINDS,
                 kind: str | None = None, recorders: Callable[[], Iterable[Any]] = lambda: (),
                 placeholder: str = "nothing to draw yet") -> None:
        self.subject = subject
        self.runner = runner
        self.recorders = recorders
        self.placeholder = placeholder
        self.frames = 0
        self.last_bundle: dict[str, Any] = {}
        self._pending: asyncio.Future[Any] | None = None
        self._listening: dict[int, Callable[[], None]] = {}
        self._stopped = False
        self._generation = 0

        self.kind = widgets.Dropdown(options=list(kinds), value=kind or kinds[0], description="diagram",
                                     style={"description_width": "60px"}, layout=widgets.Layout(width="240px"))
        self.kind.add_class("dnb-diagram-kind")
        self.message = Message("dnb-diagram-message")
        self.out = widgets.Output(layout=widgets.Layout(min_height="160px", width="100%"))
        self.out.add_class("dnb-diagram")
        self.kind.observe(lambda _: self.redraw(), names="value")
        super().__init__([self.kind, self.message, self.out], layout=widgets.Layout(width="100%"))
        self.add_class("dnb-diagram-pane")
        self.redraw()

    # -- drawing -----------------------------------------------------------------------------------------
    def _drawing(self) -> tuple[Any, str]:
        """The diagram to show now (snapshot taken here, on the loop), or None with the reason."""
        self._follow()
        kind = self.kind.value
        try:
            obj = self.subject(kind)
            if obj is None:
                return None, self.placeholder
            return diagram_of(obj, kind), ""
        except Exception as exc:  # an unavailable kind must not break the panel
            return None, f"cannot draw {kind!r}: {type(exc).__name__}: {exc}"

    def _show(self, bundle: dict[str, Any], problem: str) -> bool:
        if problem and not problem.startswith(self.placeholder):
            self.message.show(problem, "warning")
        else:
            self.message.clear()
        if bundle == self.last_bundle:
            return False
        self.last_bundle = bundle
        self.frames += 1
        self.out.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)
        return True

    def redraw(self) -> bool:
        """Draw now, on the calling thread; True when the picture changed."""
        self._generation += 1
        drawing, problem = self._drawing()
        try:
            bundle = bundle_of(drawing) if drawing is not None else {"text/plain": problem}
        except Exception as exc:
            bundle, problem = {"text/plain": f"{type(exc).__name__}: {exc}"}, f"{type(exc).__name__}: {exc}"
        return self._show(bundle, problem)

    async def redraw_async(self) -> bool:
        """Snapshot now, render in a thread (graphviz may take a moment), then show."""
        self._generation += 1
        generation = self._generation
        drawing, problem = self._drawing()
        try:
            bundle = (await asyncio.to_thread(bundle_of, drawing)) if drawing is not None else {"text/plain": problem}
        except Exception as exc:
            bundle, problem = {"text/plain": f"{type(exc).__name__}: {exc}"}, f"{type(exc).__name__}: {exc}"
        if generation != self._generation or self._stopped:  # a newer drawing was made meanwhile
            return False
        return self._show(bundle, problem)

    @property
    def mermaid(self) -> str:
        return str(self.last_bundle.get("text/vnd.mermaid", ""))

    def changed(self, *_: Any) -> None:
        """Something happened: redraw soon (coalesced)."""
        if self._stopped or (self._pending is not None and not self._pending.done()):
            return
        try:
            self._pending = self.runner.spawn(self._later(), name="dnb:diagram", background=True)
        except RuntimeError:
            self.redraw()

    async def _later(self) -> None:
        await asyncio.sleep(self.INTERVAL)
        self._pending = None
        if not self._stopped:
            await self.redraw_async()

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until a scheduled redraw (if any) has happened."""
        async def wait() -> None:
            while self._pending is not None and not self._pending.done():
                await asyncio.wait({self._pending})
        await asyncio.wait_for(wait(), timeout)

    def _follow(self) -> None:
        """Listen to every recorder currently relevant (new workers appear over time)."""
        for recorder in self.recorders():
            if id(recorder) not in self._listening:
                self._listening[id(recorder)] = recorder.subscribe(self.changed)

    def stop(self) -> None:
        """Stop following the system; the last picture stays."""
        self._stopped = True
        for unlisten in self._listening.values():
            unlisten()
        self._listening.clear()
        if self._pending is not None:
            self._pending.cancel()

    def close(self) -> None:
        self.stop()
        super().close()

    def __repr__(self) -> str:
        first = self.mermaid.splitlines()[0] if self.mermaid else self.last_bundle.get("text/plain", "")
        return f"DiagramPane({self.kind.value}, frames={self.frames}, {first!r})"
