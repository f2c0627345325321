"""Running graphviz's ``dot`` executable: DOT text in, SVG text out. Knows nothing about diagrams.

A missing executable is one named error, :class:`DotNotFoundError`, raised only by explicit calls such as
``Diagram.svg()``; display hooks ask :func:`dot_available` first and simply leave the SVG out.
"""

from __future__ import annotations

import shutil
import subprocess

from ..errors import DotFailedError, DotNotFoundError

__all__ = ["DotNotFoundError", "DotFailedError", "dot_executable", "dot_available", "render_svg"]

DOT_TIMEOUT = 10.0


def dot_executable() -> str | None:
    """Path of ``dot`` on the current PATH, or None."""
    return shutil.which("dot")


def dot_available() -> bool:
    return dot_executable() is not None


def render_svg(source: str, *, timeout: float = DOT_TIMEOUT) -> str:
    """SVG text of the DOT ``source``; raises :class:`DotNotFoundError` or :class:`DotFailedError`."""
    exe = dot_executable()
    if exe is None:
        raise DotNotFoundError()
    try:
        proc = subprocess.run([exe, "-Tsvg"], input=source.encode("utf-8"), capture_output=True, timeout=timeout,
                              check=False)
    except FileNotFoundError as exc:  # removed between the lookup and the call
        raise DotNotFoundError() from exc
    except subprocess.TimeoutExpired as exc:
        raise DotFailedError(f"dot took longer than {timeout:g} s") from exc
    if proc.returncode != 0 or not proc.stdout:
        raise DotFailedError(f"dot exited with {proc.returncode}: {proc.stderr.decode('utf-8', 'replace').strip()}")
    return proc.stdout.decode("utf-8")
