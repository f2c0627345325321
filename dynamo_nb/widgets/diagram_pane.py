"""The control panel's diagram: a :class:`~dynamo_nb.display.live.LiveView` drawn into an ipywidgets ``Output``.

The panel decides *what* to draw (its runtimes, or the newest instance's story) and the reader picks the kind;
drawing, following the recorders and coalescing redraws is the LiveView's job, the same engine as
``dynamo_nb.live()``, at its interval. When the subject changes (a worker started, an instance gone) or another
kind is picked, a new view replaces the old one. The bundle goes into the ``Output`` without ``text/html``
(JupyterLab ≥ 4.1 then shows the Mermaid); reassigning ``Output.outputs`` updates reliably from background tasks.

Readable at any size: the drawing keeps at least its natural size (JupyterLab would shrink it to the column,
down to unreadable text) and scrolls sideways in JupyterLab's own figure; it can be zoomed or given the panel's
full width.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Hashable, Sequence

import ipywidgets as widgets

from ..display import Limits
from ..display.live import DEFAULT_INTERVAL, LiveView
from .messages import Message

__all__ = ["DiagramPane", "DEFAULT_KINDS", "ZOOMS", "BASE_ZOOM"]

log = logging.getLogger(__name__)

DEFAULT_KINDS = ("hierarchy", "lifecycle", "sequence", "startup", "registry", "structure")
ZOOMS = (1.0, 1.5, 2.0)  # never below 1: the natural size is the smallest readable one
#: kinds whose natural size has text under 12 px, drawn this much larger: Mermaid's class diagrams put
#: multiplicities in 11 px type (× 1.125 ≈ 12.4 px, with room for the image's rounding)
BASE_ZOOM = {"structure": 1.125}

Subject = Callable[[str], Any]  # kind -> the object (or list of objects) to draw; None: nothing yet

# JupyterLab caps a Mermaid image at the output's width (max-width: 100%); here it keeps its natural width and
# the figure around it (overflow: auto) scrolls. ``zoom`` enlarges it, layout included, so scrolling follows.
_CSS = """<style>
.dnb-diagram-frame .jp-RenderedMermaid img, .dnb-diagram-frame .jp-RenderedSVG img,
.dnb-diagram-frame .jp-RenderedSVG svg { max-width: none !important; height: auto; }
.dnb-diagram-frame .jp-RenderedSVG { overflow-x: auto; }
""" + "".join(f".dnb-zoom-{round(z * 100)} .jp-OutputArea-output {{ zoom: {z:g}; }}\n" for z in ZOOMS) + "".join(
    f".dnb-diagram.dnb-kind-{kind} {{ zoom: {z:.4f}; }}\n" for kind, z in BASE_ZOOM.items()) + "</style>"


def _identity(obj: Any) -> Hashable:
    items = obj if isinstance(obj, (list, tuple)) else [obj]
    return tuple(id(item) for item in items)


class DiagramPane(widgets.VBox):
    """A kind chooser, zoom and width controls, and a live drawing of ``subject(kind)``.

    ``subject(kind)`` is asked again by :meth:`changed` (the panel calls it when its workers or instances
    change); the drawing itself follows the system through the LiveView. ``frames`` counts the drawings sent
    to the ``Output``.
    """

    def __init__(self, subject: Subject, *, kinds: Sequence[str] = DEFAULT_KINDS, kind: str | None = None,
                 placeholder: str = "nothing to draw yet", interval: float = DEFAULT_INTERVAL,
                 limits: Limits | None = None, lang: str | None = None) -> None:
        self.subject = subject
        self.lang = lang
        self.placeholder = placeholder
        self.interval = interval
        self.limits = limits
        self.view: LiveView | None = None
        self.frames = 0
        self.last_bundle: dict[str, Any] = {}
        self._key: Hashable = None
        self._stopped = False

        self.kind = widgets.Dropdown(options=list(kinds), value=kind or kinds[0], description="diagram",
                                     style={"description_width": "60px"}, layout=widgets.Layout(width="240px"))
        self.kind.add_class("dnb-diagram-kind")
        self.zoom = widgets.ToggleButtons(options=[(f"{z:g}×", z) for z in ZOOMS], value=ZOOMS[0],
                                          style={"button_width": "60px"},
                                          tooltips=["natural size", "larger", "larger still"])
        self.zoom.add_class("dnb-diagram-zoom")
        self.wide = widgets.ToggleButton(value=False, description="full width", icon="arrows-h",
                                         tooltip="draw below the controls, across the whole panel",
                                         layout=widgets.Layout(width="110px"))
        self.wide.add_class("dnb-diagram-wide")
        self.message = Message("dnb-diagram-message")
        # Sized by the flex layout (not width: 100%), so the boxes' margins never push it past the cell's edge.
        self.out = widgets.Output(layout=widgets.Layout(flex="1 1 auto", min_width="0"))
        self.out.add_class("dnb-diagram")
        self.frame = widgets.Box([self.out], layout=widgets.Layout(min_height="160px"))
        self.frame.add_class("dnb-diagram-frame")
        self._zoomed(ZOOMS[0])
        self.kind.observe(lambda _: self.changed(), names="value")
        self.zoom.observe(lambda change: self._zoomed(change["new"]), names="value")
        bar = widgets.HBox([self.kind, self.zoom, self.wide], layout=widgets.Layout(align_items="center",
                                                                                    flex_flow="row wrap"))
        super().__init__([widgets.HTML(_CSS), bar, self.message, self.frame], layout=widgets.Layout(width="100%"))
        self.add_class("dnb-diagram-pane")
        self.changed()

    # -- following the panel --------------------------------------------------------------------------
    def changed(self, *_: Any) -> bool:
        """Ask the subject again; a new view when it (or the kind) changed, else a redraw soon. True if new."""
        if self._stopped:
            return False
        kind = self.kind.value
        try:
            obj = self.subject(kind)
        except Exception as exc:  # the panel must survive a subject it cannot compute
            self._replace(None, ("error", kind))
            self._show_problem(f"cannot draw {kind!r}: {type(exc).__name__}: {exc}")
            return True
        key = (kind, None if obj is None else _identity(obj))
        if key == self._key and (obj is None or self.view is not None):
            if self.view is not None:
                self.view.refresh()  # e.g. a new client: nothing a recorder saw
            return False
        self._replace(obj, key)
        return True

    def _replace(self, obj: Any, key: tuple[Any, ...]) -> None:
        if self.view is not None:
            self.view.stop()
            self.view = None
        self._key = key
        if obj is None:
            self.message.clear()
            self._render({"text/plain": self.placeholder})
            return
        try:
            self.view = LiveView(obj, key[0], interval=self.interval, limits=self.limits, target=self._render,
                                 lang=self.lang)
        except Exception as exc:
            self._show_problem(f"cannot draw {key[0]!r}: {type(exc).__name__}: {exc}")
            return
        self.message.clear()

    def _show_problem(self, problem: str) -> None:
        self.message.show(problem, "warning")
        self._render({"text/plain": problem})

    def _render(self, data: dict[str, Any]) -> None:
        """The view's target: one drawing into the ``Output`` (never ``text/html``, it would hide the Mermaid)."""
        data = {mime: value for mime, value in data.items() if mime != "text/html"}
        if data == self.last_bundle:
            return
        self.last_bundle = data
        self.frames += 1
        kind = self._key[0] if isinstance(self._key, tuple) else None
        for k in BASE_ZOOM:
            if k != kind:
                self.out.remove_class(f"dnb-kind-{k}")
        if kind in BASE_ZOOM:
            self.out.add_class(f"dnb-kind-{kind}")
        self.out.outputs = ({"output_type": "display_data", "data": data, "metadata": {}},)

    def _zoomed(self, zoom: float) -> None:
        for z in ZOOMS:
            self.frame.remove_class(f"dnb-zoom-{round(z * 100)}")
        self.frame.add_class(f"dnb-zoom-{round(zoom * 100)}")

    # -- reading it -----------------------------------------------------------------------------------
    @property
    def mermaid(self) -> str:
        """The Mermaid text drawn last ("" when there is none)."""
        return str(self.last_bundle.get("text/vnd.mermaid", ""))

    async def settle(self, timeout: float | None = 5.0) -> None:
        """Wait until everything recorded so far is drawn into the ``Output``."""
        if self.view is not None:
            await self.view.settle(timeout)

    def stop(self) -> None:
        """Stop following the system; the last picture stays."""
        self._stopped = True
        if self.view is not None:
            self.view.stop()

    def close(self) -> None:
        self.stop()
        super().close()

    def __repr__(self) -> str:
        first = self.mermaid.splitlines()[0] if self.mermaid else self.last_bundle.get("text/plain", "")
        return f"DiagramPane({self.kind.value}, frames={self.frames}, {first!r})"
