"""The MIME bundle of one diagram: which MIME types a frontend gets, in one table.

One table maps each MIME type to the :class:`~.diagram.Diagram` method that produces it; ``include`` and
``exclude`` select from it as IPython asks. No ``text/html`` is ever offered: JupyterLab prefers HTML to Mermaid,
and the Mermaid view is the point. A method that returns None (no ``dot`` executable) leaves its type out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from .diagram import Diagram

__all__ = ["MIME_TYPES", "bundle", "wanted"]

#: MIME type → Diagram method; the order is the order of preference a frontend would apply.
MIME_TYPES: dict[str, str] = {
    "text/vnd.mermaid": "_repr_mermaid",
    "image/svg+xml": "svg_or_none",
    "text/plain": "_repr_plain",
}


def wanted(include: Iterable[str] | None, exclude: Iterable[str] | None) -> set[str]:
    """The MIME types asked for: ``include`` (all when None) less ``exclude``."""
    chosen = set(include) if include is not None else set(MIME_TYPES)
    return chosen - set(exclude or ())


def bundle(diagram: "Diagram", include: Iterable[str] | None = None, exclude: Iterable[str] | None = None,
           *, plain: str | None = None) -> dict[str, str]:
    """The bundle of ``diagram``; ``plain`` replaces its ``text/plain``."""
    chosen = wanted(include, exclude)
    out: dict[str, str] = {}
    for mime, method in MIME_TYPES.items():
        if mime in chosen:
            value = plain if mime == "text/plain" and plain is not None else getattr(diagram, method)()
            if value is not None:
                out[mime] = value
    return out
