"""The event loop of a process dynamo_nb starts itself: uvloop when it is installed, as Dynamo's workers use.

Only the command line (``dynamo-nb ...``) and the worker processes ``serve`` starts choose their loop; a notebook
kernel keeps the loop it has (dynamo_nb never sets a loop policy). ``DYNAMO_NB_LOOP=asyncio`` keeps asyncio's
own loop even where uvloop is installed (the ``fast`` extra installs it).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Coroutine, TypeVar

__all__ = ["run", "loop_name"]

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on uvloop when it is installed and not declined."""
    if os.environ.get("DYNAMO_NB_LOOP", "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``"uvloop"`` or ``"asyncio"``: what the running (or given) loop is, for reports and ready lines."""
    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
