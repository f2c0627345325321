"""Live views: diagrams that redraw themselves as the running system changes.

A view listens to its runtimes' recorders (watch events, lifecycle transitions, requests, events …) and to the
lifecycle of any served endpoint it draws. A listener only marks the view dirty and wakes one asyncio task on
the loop that created the view; that task redraws at most every ``interval`` seconds (4 a second by default),
so a burst of a thousand events costs a handful of redraws, and recording stays cheap when nobody draws.

In Jupyter the view is shown with a display id, and every redraw sends ``update_display_data`` with the full
bundle (Mermaid, SVG, text). The updates are sent outside the creating cell's context, so they are attributed to
whichever cell is running at that moment: JupyterLab routes them by display id to every copy of the view, and a
headless run (nbclient) saves the ones made while a later cell is running. Without IPython the view still works:
``view.diagram`` is always current.

Making a new view of the same object and kind stops the previous one, so re-running a cell never leaves tasks
behind; ``view.stop()`` stops one explicitly.

``LiveView(obj, kind, target=fn)`` sends every bundle to ``fn(bundle)`` instead (e.g. into an ipywidgets
``Output``), first frame included, from the same task and at the same interval.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import uuid
from typing import Any, Callable, Hashable

from ..errors import WaitTimeoutError
from .diagram import Diagram, describe_focus
from .mime import bundle
from .kinds import Limits, default_limits
from .snapshot import part_of, snapshot

__all__ = ["LiveView", "live", "live_views", "stop_all"]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.25  # seconds between redraws: at most 4 a second
CLUSTER_POLL = 1.0  # objects that record nothing (a LocalCluster): look again this often

_views: dict[Hashable, "LiveView"] = {}


def _identity(obj: Any) -> Hashable:
    key = getattr(obj, "_key", None)
    if callable(key):
        return (type(obj).__name__,) + tuple(key())
    return (type(obj).__name__, id(obj))


def _items(obj: Any) -> list[Any]:
    return list(obj) if isinstance(obj, (list, tuple, set, frozenset)) else [obj]


class LiveView:
    """A diagram of ``obj`` kept current; displayed in Jupyter it updates in place.

    ``view.diagram`` is the latest :class:`Diagram`; ``view.redraws`` counts the times the drawing changed;
    ``await view.wait_redraws(n)`` waits until it has changed ``n`` times; ``await view.settle()`` waits until
    everything that happened so far is drawn; ``view.stop()`` ends it.
    """

    def __init__(self, obj: Any, kind: str | None = None, *, interval: float = DEFAULT_INTERVAL,
                 limits: Limits | None = None, target: Callable[[dict[str, str]], None] | None = None,
                 lang: str | None = None) -> None:
        if interval < 0:
            raise ValueError(f"interval must be >= 0, got {interval}")
        self.obj = obj
        self.interval = float(interval)
        self.limits = limits or default_limits()
        self._diagram = Diagram(snapshot(obj), kind, self.limits, lang)
        self.lang = self._diagram.lang
        self.kind = self._diagram.kind
        self.redraws = 0
        self.refreshes = 0
        self.display_id = f"dynamo-live-{uuid.uuid4().hex}"
        self.stopped = False
        self._dirty = False
        self._busy = False
        self._displayed = False
        self._displayed_in: int | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.get_ident()
        self._target = target
        self._unsent = target is not None  # a target's first frame is drawn by the task too (dot runs off the loop)
        self._displayed = target is not None
        self._poll = CLUSTER_POLL if any(part_of(o).poll for o in _items(obj)) else None
        self._listen()
        self._start_task()
        if self._unsent:
            if self._task is None:
                self._display_now()  # no loop to draw on later
            else:
                self.refresh()

    # -- listening ---------------------------------------------------------------------------------------
    def _listen(self) -> None:
        for item in _items(self.obj):
            subscribe = getattr(item, "_subscribe", None)
            if callable(subscribe):
                self._unsubscribe.append(subscribe(self._on_event))

    def refresh(self) -> None:
        """Redraw soon, coalesced like any recorded fact: for changes no recorder sees."""
        self._on_event()

    def _on_event(self, *_: Any) -> None:
        """Called for every recorded fact: must stay O(1) and never draw."""
        if self.stopped:
            return
        self._dirty = True
        wake = self._wake
        if wake is None or wake.is_set():
            return
        if threading.get_ident() == self._thread:
            wake.set()
        elif self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(wake.set)

    def _start_task(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (plain Python): .diagram redraws on demand
        self._loop = loop
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        # An empty context: display updates then belong to the cell running when they are sent (see module doc).
        self._task = contextvars.Context().run(loop.create_task, self._run(), name=f"live:{self.kind}")

    async def _run(self) -> None:
        assert self._wake is not None and self._loop is not None
        loop, last = self._loop, float("-inf")
        while not self.stopped:
            try:
                if self._poll is None:
                    await self._wake.wait()
                else:
                    await asyncio.wait_for(self._wake.wait(), self._poll)
            except asyncio.TimeoutError:
                self._dirty = True
            self._wake.clear()
            pause = last + self.interval - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
            if self.stopped:
                break
            last = loop.time()
            try:
                await self._refresh()
            except Exception as exc:  # a broken redraw must not kill the view
                log.warning("live %s view: redraw failed: %s: %s", self.kind, type(exc).__name__, exc)
                self._busy = False
                self._notify()

    # -- drawing -----------------------------------------------------------------------------------------
    def _rebuild(self) -> bool:
        """Take a new snapshot; True when the drawing changed."""
        self._dirty = False
        new = Diagram(snapshot(self.obj), self.kind, self.limits, self.lang)
        self.refreshes += 1
        changed = new.mermaid != self._diagram.mermaid
        self._diagram = new
        if changed:
            self.redraws += 1
        return changed

    async def _refresh(self) -> None:
        self._busy = True
        try:
            if (self._rebuild() or self._unsent) and self._displayed:
                drawn = self._diagram
                data = await asyncio.to_thread(bundle, drawn, plain=self._plain())  # dot runs off the loop
                if drawn is self._diagram and not self.stopped:
                    self._unsent = False
                    self._publish(data, update=True)
        finally:
            self._busy = False
            self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    @property
    def diagram(self) -> Diagram:
        """The current diagram (redrawn now if something changed and no task is about to)."""
        if self._dirty and (self._task is None or self._task.done()):
            self._rebuild()
        return self._diagram

    # -- waiting -----------------------------------------------------------------------------------------
    async def _wait(self, done: Callable[[], bool], timeout: float | None, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not done():
            if self._changed is None or self._task is None or self._task.done():
                if self._dirty:
                    self._rebuild()
                if done():
                    return
                raise WaitTimeoutError(f"live {self.kind} view is not running, so {what} will never happen")
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(f"{what} did not happen within {timeout} s (redraws={self.redraws})")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def wait_redraws(self, count: int = 1, timeout: float | None = 5.0) -> Diagram:
        """Wait until the drawing has changed ``count`` times in all (``view.redraws >= count``)."""
        await self._wait(lambda: self.redraws >= count, timeout, f"redraw #{count}")
        return self._diagram

    async def settle(self, timeout: float | None = 5.0) -> Diagram:
        """Wait until everything recorded so far is drawn; returns the diagram."""
        await asyncio.sleep(0)
        await self._wait(lambda: not self._dirty and not self._busy, timeout, "settling")
        return self._diagram

    # -- stopping ----------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop listening and redrawing; the last drawing stays where it is displayed."""
        if self.stopped:
            return
        self.stopped = True
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        for key, view in list(_views.items()):
            if view is self:
                del _views[key]
        self._notify()

    # -- Jupyter -----------------------------------------------------------------------------------------
    def _publish(self, data: dict[str, str], *, update: bool) -> None:
        if self._target is not None:
            self._target(data)
            return
        try:
            from IPython.display import display, update_display
        except ImportError:
            return
        if update:
            update_display(data, raw=True, display_id=self.display_id)
        else:
            display(data, raw=True, display_id=self.display_id)

    def show(self) -> "LiveView":
        """Display the view here (it can be shown in several places; every copy updates)."""
        self._display_now()
        return self

    def _ipython_display_(self) -> None:
        shell = _shell()
        count = getattr(shell, "execution_count", None)
        if self._displayed_in is not None and count == self._displayed_in:
            return  # live() already showed it in this cell: the cell's result is the same view
        self._display_now()

    def _display_now(self) -> None:
        self._displayed = True
        shell = _shell()
        self._displayed_in = getattr(shell, "execution_count", None)
        self._publish(bundle(self.diagram, plain=self._plain()), update=False)

    def _plain(self) -> str:
        return f"{self!r}\n{self.diagram.text}"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **_: Any) -> dict[str, str]:
        return bundle(self.diagram, include, exclude, plain=self._plain())

    def __repr__(self) -> str:
        what = ", ".join(describe_focus(f) for f in self._diagram.snapshot.focus[:2])
        state = "stopped" if self.stopped else "live"
        return f"<LiveView {self.kind} of {what}: {state}, {self.redraws} redraws>"


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _in_kernel() -> bool:
    shell = _shell()
    return shell is not None and getattr(shell, "kernel", None) is not None


def live(obj: Any, kind: str | None = None, *, interval: float = DEFAULT_INTERVAL, limits: Limits | None = None,
         display: bool | None = None, lang: str | None = None) -> LiveView:
    """Show ``obj`` as ``kind`` and keep redrawing it as the system changes; returns the :class:`LiveView`.
    ``lang="zh"`` draws it with the seed's Chinese terms.

    In a Jupyter kernel the view is displayed at once (``display=False`` to only create it); elsewhere it is
    just created. A previous live view of the same object and kind is stopped.
    """
    for old in list(_views.values()):  # views whose event loop is gone can never redraw again
        if old._loop is not None and old._loop.is_closed():
            old.stop()
    view = LiveView(obj, kind, interval=interval, limits=limits, lang=lang)
    key = (tuple(_identity(o) for o in _items(obj)), view.kind)
    previous = _views.pop(key, None)
    if previous is not None:
        previous.stop()
    _views[key] = view
    if display if display is not None else _in_kernel():
        view._display_now()
    return view


def live_views() -> list[LiveView]:
    """Every live view still running."""
    return list(_views.values())


def stop_all() -> None:
    """Stop every live view."""
    for view in list(_views.values()):
        view.stop()
