"""One warning per interval for repeated bad input, with a count, so garbage on the wire cannot flood the log.

Every place that logs input it had to drop (a malformed request, an instance value it skipped, a connection
without a handshake) goes through :func:`warn_limited`: the first occurrence of a *key* is logged at once, later
ones within ``interval`` seconds are only counted, and the next line logged for that key says how many were held
back. The counts stay readable (:func:`counts`), so a test or an inspector can see what was dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["DEFAULT_INTERVAL", "warn_limited", "counts", "reset"]

DEFAULT_INTERVAL = 10.0  # seconds between two lines for the same kind of bad input


@dataclass
class _Tally:
    total: int = 0
    held: int = 0  # counted since the last line was logged
    last: float = float("-inf")


_tallies: dict[tuple[str, str], _Tally] = {}
_lock = threading.Lock()  # the etcd watch threads and the loop may both report


def warn_limited(logger: logging.Logger, key: str, msg: str, *args: Any, interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> bool:
    """Log ``msg % args`` at WARNING unless ``key`` was logged less than ``interval`` s ago; True if logged."""
    now = clock()
    with _lock:
        tally = _tallies.setdefault((logger.name, key), _Tally())
        tally.total += 1
        if now - tally.last < interval:
            tally.held += 1
            return False
        held, tally.held, tally.last = tally.held, 0, now
    if held:
        msg += " (%d more like this in the last %.0f s)"
        args = (*args, held, interval)
    logger.warning(msg, *args)
    return True


def counts(logger_name: str | None = None) -> dict[str, int]:
    """How often each key was reported (logged or held back), for one logger or all (``"logger:key"``)."""
    with _lock:
        return {(key if logger_name else f"{name}:{key}"): t.total
                for (name, key), t in _tallies.items() if logger_name in (None, name)}


def reset() -> None:
    """Forget every count (tests)."""
    with _lock:
        _tallies.clear()
