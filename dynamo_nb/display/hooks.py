"""Display hooks: the MIME bundle of any dynamo_nb object, built from state it already holds (no I/O).

The bundle's MIME types come from one table (:mod:`.mime`). A missing ``dot`` executable only leaves
``image/svg+xml`` out, and a diagram that cannot be built leaves only ``text/plain``: a hook never raises.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from .diagram import diagram
from .mime import MIME_TYPES, bundle, wanted

__all__ = ["MIME_TYPES", "bundle", "mimebundle"]

log = logging.getLogger(__name__)

def mimebundle(obj: Any, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None) -> dict[str, str]:
    """What ``obj._repr_mimebundle_`` returns: its default diagram, and ``repr(obj)`` over a text tree."""
    try:
        drawn = diagram(obj)
        head = repr(obj)
        if len(head) > 160:  # e.g. the Registry dataclass repr, which nests every service
            head = head[:159] + "…"
        return bundle(drawn, include, exclude, plain=f"{head}\n{drawn.text}")
    except Exception as exc:  # a display hook must never break a cell's output
        log.warning("could not draw %r: %s: %s", obj, type(exc).__name__, exc)
        if "text/plain" in wanted(include, exclude):
            return {"text/plain": repr(obj)}
        return {}
