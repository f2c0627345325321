"""Display hooks: the MIME bundle of any dynamo_nb object, built from state it already holds (no I/O).

One table maps each MIME type to the :class:`~.diagram.Diagram` method that produces it; ``include`` and
``exclude`` select from it as IPython asks. No ``text/html`` is ever offered: JupyterLab prefers HTML to Mermaid,
and the Mermaid view is the point. A missing ``dot`` executable only leaves ``image/svg+xml`` out, and a
diagram that cannot be built leaves only ``text/plain``: a hook never raises.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from .diagram import Diagram

__all__ = ["MIME_TYPES", "bundle", "mimebundle"]

log = logging.getLogger(__name__)

#: MIME type → Diagram method; the order is the order of preference a frontend would apply.
MIME_TYPES: dict[str, str] = {
    "text/vnd.mermaid": "_repr_mermaid",
    "image/svg+xml": "svg_or_none",
    "text/plain": "_repr_plain",
}


def _wanted(include: Iterable[str] | None, exclude: Iterable[str] | None) -> set[str]:
    wanted = set(include) if include is not None else set(MIME_TYPES)
    return wanted - set(exclude or ())


def bundle(diagram: "Diagram", include: Iterable[str] | None = None, exclude: Iterable[str] | None = None,
           *, plain: str | None = None) -> dict[str, str]:
    """The bundle of ``diagram``; ``plain`` replaces its ``text/plain``."""
    wanted = _wanted(include, exclude)
    out: dict[str, str] = {}
    for mime, method in MIME_TYPES.items():
        if mime in wanted:
            value = plain if mime == "text/plain" and plain is not None else getattr(diagram, method)()
            if value is not None:
                out[mime] = value
    return out


def mimebundle(obj: Any, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None) -> dict[str, str]:
    """What ``obj._repr_mimebundle_`` returns: its default diagram, and ``repr(obj)`` over a text tree."""
    try:
        from .diagram import diagram

        drawn = diagram(obj)
        head = repr(obj)
        if len(head) > 160:  # e.g. the Registry dataclass repr, which nests every service
            head = head[:159] + "…"
        return bundle(drawn, include, exclude, plain=f"{head}\n{drawn.text}")
    except Exception as exc:  # a display hook must never break a cell's output
        log.warning("could not draw %r: %s: %s", obj, type(exc).__name__, exc)
        if "text/plain" in _wanted(include, exclude):
            return {"text/plain": repr(obj)}
        return {}
