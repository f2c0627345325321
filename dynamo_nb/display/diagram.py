"""``dynamo_nb.diagram(obj, kind)``: one picture of the running system, as Mermaid, DOT, SVG and text.

A :class:`Diagram` is taken from a snapshot at the moment it is made and never changes; ``live()`` makes new
ones as the system moves. Its text forms are computed on first use and kept.
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import dot as _dot
from . import mermaid as _mermaid
from . import text as _text
from .i18n import kind_name, language, say, translate
from .kinds import KINDS, Limits, build, default_kind, default_limits
from .mime import bundle
from .model import Flow, Model
from .snapshot import Focus, Snapshot, snapshot
from .svg import DotFailedError, DotNotFoundError, dot_available, render_svg

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["Diagram", "diagram", "describe_focus"]

log = logging.getLogger(__name__)

_SUFFIXES = {".mmd": "mermaid", ".mermaid": "mermaid", ".dot": "dot", ".gv": "dot", ".svg": "svg", ".txt": "text"}


def describe_focus(focus: Focus) -> str:
    """A few words naming what a focus points at, for titles."""
    if focus.kind == "runtime":
        return f"runtime {focus.runtime}"
    if focus.kind == "namespace":
        return f"namespace {focus.namespace}"
    if focus.kind == "component":
        return f"component {focus.namespace}/{focus.component}"
    if focus.kind == "endpoint":
        return f"endpoint {focus.namespace}.{focus.component}.{focus.endpoint}"
    if focus.kind == "instance":
        return f"instance {focus.instance_id:x} of {focus.namespace}.{focus.component}.{focus.endpoint}"
    if focus.kind == "client":
        return f"client#{focus.client_id} of {focus.namespace}.{focus.component}.{focus.endpoint}"
    if focus.kind == "graph":
        return f"service graph of {focus.component}"
    if focus.kind == "registry":
        return f"registry of {focus.runtime}"
    return "LocalCluster"


class Diagram:
    """A diagram of one kind, drawn from one snapshot: ``.mermaid``, ``.dot``, ``.svg()``, ``.text``, ``.save()``.

    Displayed in Jupyter it shows as Mermaid (rendered natively by JupyterLab ≥ 4.1), with SVG beside it (from
    graphviz's ``dot``, or the ``graphviz-pure`` wheel without it) for every other frontend, and plain text.
    """

    def __init__(self, snap: Snapshot, kind: str | None = None, limits: Limits | None = None,
                 lang: str | None = None) -> None:
        kind = kind or default_kind(snap)
        if kind not in KINDS:
            raise ValueError(f"unknown diagram kind {kind!r}; choose one of: {', '.join(KINDS)}")
        self.snapshot = snap
        self.kind = kind
        self.limits = limits or default_limits()
        self.lang = language(lang)

    @cached_property
    def model(self) -> Model:
        """The intermediate diagram model (a Flow, SequenceModel, ClassModel or StateModel), in ``lang``."""
        return translate(build(self.snapshot, self.kind, self.limits), self.lang)

    @property
    def graph(self) -> "nx.DiGraph | None":
        """The networkx graph of flowchart kinds (hierarchy, reference, registry, topology), else None."""
        return self.model.graph if isinstance(self.model, Flow) else None

    @cached_property
    def mermaid(self) -> str:
        return _mermaid.render(self.model)

    @cached_property
    def dot(self) -> str:
        return _dot.render(self.model)

    @cached_property
    def title(self) -> str:
        zh = self.lang == "zh"
        what = ("、" if zh else ", ").join(say(describe_focus(f), self.lang) for f in self.snapshot.focus[:3])
        if len(self.snapshot.focus) > 3:
            what += ("、" if zh else " ") + say(f"and {len(self.snapshot.focus) - 3} more", self.lang)
        kind = kind_name(self.kind, self.lang)
        return f"{kind} · {what}" if what else kind

    @cached_property
    def text(self) -> str:
        return f"{self.title}\n{_text.render(self.model)}"

    def svg(self) -> str:
        """SVG from a graphviz engine; raises :class:`~dynamo_nb.display.svg.DotNotFoundError` without one."""
        cached = self.__dict__.get("_svg")
        if cached is None:
            cached = self.__dict__["_svg"] = render_svg(self.dot)
        return cached

    def svg_or_none(self) -> str | None:
        """SVG, or None when no engine is installed or it fails (for display hooks, which must not fail)."""
        if not dot_available():
            return None
        try:
            return self.svg()
        except (DotNotFoundError, DotFailedError) as exc:
            log.debug("no SVG for %s: %s", self.title, exc)
            return None

    def _repr_mermaid(self) -> str:
        return self.mermaid

    def _repr_plain(self) -> str:
        return self.text

    def save(self, path: str | Path) -> Path:
        """Write the diagram; the suffix picks the format: ``.mmd``, ``.dot``, ``.svg`` (or ``.txt``)."""
        path = Path(path)
        fmt = _SUFFIXES.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"cannot tell the format of {path.name!r} from its suffix; use one of "
                             f"{', '.join(sorted(_SUFFIXES))}")
        content = self.svg() if fmt == "svg" else getattr(self, fmt)
        path.write_text(content, encoding="utf-8")
        return path

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **_: Any) -> dict[str, str]:
        return bundle(self, include, exclude)

    def __repr__(self) -> str:
        return f"<Diagram {self.title}>"


def diagram(obj: Any, kind: str | None = None, *, lang: str | None = None, at: float | None = None,
            limits: Limits | None = None) -> Diagram:
    """Draw ``obj`` — a runtime, namespace, component, endpoint, served endpoint, client, registry,
    LocalCluster or recording, or a list of them drawn together — as ``kind`` (its default kind when None).

    ``lang="zh"`` draws with the seed's Chinese terms (default: :func:`dynamo_nb.set_language`); ``at=t`` draws
    the system as it was at wall-clock time ``t`` (seconds, as ``time.time()`` gives them), from the frames and
    records its runtimes kept — a live object's or a loaded recording's.

    Kinds: hierarchy, structure, reference, startup, registry, lifecycle, sequence, pubsub, topology, graph.
    """
    if isinstance(obj, (Diagram, Snapshot)):
        if at is not None:
            raise ValueError("at= needs the object or recording itself: a diagram or snapshot is one moment only")
        if isinstance(obj, Snapshot):
            return Diagram(obj, kind, limits, lang)
        if kind in (None, obj.kind) and lang is None:
            return obj
        return Diagram(obj.snapshot, kind or obj.kind, limits or obj.limits, lang)
    return Diagram(snapshot(obj, at), kind, limits, lang)
