"""Live views: diagrams that redraw themselves as the running system changes."""

from __future__ import annotations

from typing import Any

__all__ = ["live"]


def live(obj: Any, kind: str | None = None, **kwargs: Any) -> Any:
    raise NotImplementedError("live views are not available yet")
