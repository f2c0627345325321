"""Stop signals for a serving process (seed §6.2: graceful stop starts on a stop signal).

SIGINT/SIGTERM start a graceful stop once; a second one ends the process at once. Handlers are installed only
where the signal still has its default handler, so a notebook kernel's or an application's own stays alone.
"""

from __future__ import annotations

import asyncio
import os
import signal

__all__ = ["graceful_signals", "restore_signals"]


def graceful_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> list[int]:
    """SIGINT/SIGTERM set ``stop`` once; a second signal ends the process at once (exit 128 + signal).

    Installed only where the signal still has its default handler (a notebook kernel's own SIGINT is left
    alone); returns the signals taken, for :func:`restore_signals`.
    """
    taken: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        current = signal.getsignal(sig)
        if current not in (signal.SIG_DFL, signal.default_int_handler):
            continue

        def on_signal(sig: int = sig) -> None:
            if stop.is_set():
                os._exit(128 + sig)
            stop.set()
        try:
            loop.add_signal_handler(sig, on_signal)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            continue
        taken.append(sig)
    return taken


def restore_signals(loop: asyncio.AbstractEventLoop, taken: list[int]) -> None:
    """Give back the signals :func:`graceful_signals` took."""
    for sig in taken:
        loop.remove_signal_handler(sig)
