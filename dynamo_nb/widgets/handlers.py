"""Example handlers the control panel can serve, so a reader can try every kind of stream without writing one.

Each is an ordinary Dynamo-style handler (an async generator; every ``yield`` is one streamed response) and comes
with an example request, which the panel puts in its request box when that handler is served.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Mapping

from ..core.served import RequestContext

__all__ = ["HandlerSpec", "BUILTIN_HANDLERS", "echo", "tokens", "counter", "fails", "handler_specs"]


@dataclass(frozen=True)
class HandlerSpec:
    """A handler with a label for the dropdown and a request that shows what it does."""

    name: str
    fn: Callable[..., Any]
    description: str = ""
    example: Any = field(default_factory=lambda: {"prompt": "hello from the control panel"})

    def __post_init__(self) -> None:
        plain = inspect.isfunction(self.fn) or inspect.ismethod(self.fn)
        target = self.fn if plain else getattr(self.fn, "__call__", None)  # noqa: B004  # the object's method
        if not (inspect.isasyncgenfunction(target) or inspect.iscoroutinefunction(target)):
            raise TypeError(f"handler {self.name!r} must be an async generator function "
                            f"(async def ...: yield ...), got {self.fn!r}")


def _field(request: Any, key: str, default: Any) -> Any:
    return request.get(key, default) if isinstance(request, dict) else default


def _delay(request: Any, default: float) -> float:
    try:
        return min(max(float(_field(request, "delay", default)), 0.0), 10.0)
    except (TypeError, ValueError):
        return default


async def echo(request: Any) -> AsyncIterator[Any]:
    """Stream the request back, once."""
    yield {"echo": request}


async def tokens(request: Any, context: RequestContext) -> AsyncIterator[Any]:
    """Stream the words of ``request["prompt"]``, one every ``delay`` seconds (default 0.3), like an LLM."""
    prompt = _field(request, "prompt", request if isinstance(request, str) else "")
    for index, word in enumerate(str(prompt).split()):
        await asyncio.sleep(_delay(request, 0.3))
        if context.is_stopped():
            return
        yield {"index": index, "token": word}


async def counter(request: Any) -> AsyncIterator[Any]:
    """Count from 1 to ``request["to"]`` (default 5, at most 1000), one number every ``delay`` s (default 0.1)."""
    try:
        to = max(0, min(int(_field(request, "to", 5)), 1000))
    except (TypeError, ValueError):
        to = 5
    for n in range(1, to + 1):
        await asyncio.sleep(_delay(request, 0.1))
        yield {"count": n}


async def fails(request: Any) -> AsyncIterator[Any]:
    """Yield one item, then raise: the caller's stream ends with the remote error, the worker keeps serving."""
    yield {"step": 1, "note": "about to fail"}
    await asyncio.sleep(_delay(request, 0.2))
    raise RuntimeError(str(_field(request, "message", "this handler fails on purpose")))


BUILTIN_HANDLERS: dict[str, HandlerSpec] = {
    spec.name: spec
    for spec in (
        HandlerSpec("tokens", tokens, "token streamer with a delay",
                    {"prompt": "the quick brown fox jumps over the lazy dog", "delay": 0.3}),
        HandlerSpec("echo", echo, "echoes the request once", {"prompt": "hello", "n": 1}),
        HandlerSpec("counter", counter, "counts to 'to'", {"to": 5, "delay": 0.2}),
        HandlerSpec("fails", fails, "yields once, then raises", {"message": "boom"}),
    )
}


def handler_specs(extra: Mapping[str, Any] | None = None) -> dict[str, HandlerSpec]:
    """The built-in handlers plus a notebook's own (``{"name": async_gen_fn}`` or ``{"name": HandlerSpec}``).

    A notebook's handler with the same name as a built-in replaces it. A value that is not an async
    generator function raises ``TypeError`` here, when the panel is built, not later when it is served.
    """
    specs = dict(BUILTIN_HANDLERS)
    for name, value in (extra or {}).items():
        if isinstance(value, HandlerSpec):
            specs[name] = value
        else:
            doc = (inspect.getdoc(value) or "").split("\n")[0]
            specs[name] = HandlerSpec(name, value, doc)
    return specs
