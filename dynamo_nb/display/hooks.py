"""Display hooks: build the MIME bundle of any dynamo_nb object from state it already holds (no I/O)."""

from __future__ import annotations

from typing import Any

__all__ = ["mimebundle"]


def mimebundle(obj: Any, include: Any = None, exclude: Any = None) -> dict[str, str]:
    return {"text/plain": repr(obj)}
