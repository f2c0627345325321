"""The one place the object model reaches the drawing layer: objects that draw themselves in Jupyter.

An object of the model only says what it is and what it knows, as plain data (:meth:`Drawable._part`), and
how to hear that it changed (:meth:`Drawable._subscribe`). Everything else — choosing a figure, rendering
Mermaid and SVG, redrawing live — belongs to ``dynamo_nb.display``, which this mixin imports only when a
drawing is asked for, so importing the model never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .snapshot import Part

__all__ = ["Drawable"]


class Drawable:
    """``_repr_mimebundle_`` (Jupyter's display hook) and ``live()`` for any object that can describe itself."""

    def _part(self) -> "Part":
        """What this object contributes to a drawing (plain data; no I/O)."""
        raise NotImplementedError

    def _subscribe(self, listener: Callable[..., None]) -> Callable[[], None]:
        """Call ``listener`` whenever what this object draws may have changed; returns an unsubscribe function."""
        return lambda: None

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from ..display.hooks import mimebundle

        return mimebundle(self, include, exclude)

    @staticmethod
    def _merged_ahead(states: Any) -> object:
        """The drawing layer's merge of records that will never change (a loaded recording's), made once, now."""
        from ..display.snapshot import held_merge

        return held_merge(states)

    def live(self, kind: str | None = None, **kwargs: Any) -> Any:
        """Display a diagram of this object that redraws itself as the system changes."""
        from ..display.live import live

        return live(self, kind, **kwargs)
